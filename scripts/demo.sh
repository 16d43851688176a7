#!/bin/sh
# scripts/demo.sh — the main job of the README's first command.
# Today: the bundled LeNet-5 (Fashion-MNIST) inspected and run on this node on three sample
# images, with timings. The distributed version (a local broker and a 3-node mesh) replaces
# it when the scheduler lands.
set -eu
nnmesh=${NNMESH:-apps/nnmesh}
models=${MODELS:-$(dirname "$0")/../examples/models}
echo "== nnmesh inspect lenet5-fmnist.onnx"
"$nnmesh" inspect "$models/lenet5-fmnist.onnx"
classes="t-shirt trouser pullover dress coat sandal shirt sneaker bag ankle-boot"
for f in "$models"/sample-*.npy; do
  echo
  echo "== nnmesh run lenet5-fmnist.onnx -i $(basename "$f") --repeat 100"
  out=$("$nnmesh" run "$models/lenet5-fmnist.onnx" -i "$f" --repeat 100)
  echo "$out"
  best=$(echo "$out" | sed -n 's/.*top[0-9]*: \[\([0-9]*\)\].*/\1/p')
  i=0
  for c in $classes; do
    [ "$i" = "$best" ] && echo "predicted class: $c (file says: $(basename "$f" .npy | cut -d- -f3-))"
    i=$((i + 1))
  done
done
