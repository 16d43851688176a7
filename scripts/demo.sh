#!/bin/sh
# scripts/demo.sh — the main job of the README's first command: a local broker and a 3-node
# mesh on loopback ports (examples/mesh-up.sh), the bundled LeNet-5 (Fashion-MNIST) split
# across the nodes, three sample images sent with `nnmesh infer` and one with mosquitto_pub,
# each printed with its output and the trace of which node ran which slice; then the mesh
# is stopped. Run from the build directory (`make demo`).
set -eu
PYTHON=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")/.." && pwd)
NNMESH=${NNMESH:-$(pwd)/apps/nnmesh}
NNMESHD=${NNMESHD:-$(pwd)/apps/nnmeshd}
export NNMESH NNMESHD
models=$here/examples/models
dir=$(mktemp -d /tmp/nnmesh-demo.XXXXXX)
trap 'bash "$here/examples/mesh-down.sh" "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT INT TERM

echo "== single node: what the model is"
"$NNMESH" inspect "$models/lenet5-fmnist.onnx" | tail -12
echo
echo "== starting a broker and 3 nodes (logs in $dir)"
bash "$here/examples/mesh-up.sh" --nodes 3 "$dir" </dev/null
. "$dir/mesh.env"
pw=$(cat "$dir/shell.password")
"$NNMESH" peers --config "$dir/shell.conf" --wait 2
echo
# The adaptive policy keeps a model this small on one node (a transfer costs more than its
# whole compute); the equal-split baseline gives every node a share of every stage that can
# be split: row bands of the convolutions, output channels of the fully connected layers.
mosquitto_pub -h 127.0.0.1 -p "$BROKER_A_PORT" -u shell -P "$pw" -t "nnmesh/$MESH/ctl/n1/policy" -m equal
sleep 1
classes="t-shirt trouser pullover dress coat sandal shirt sneaker bag ankle-boot"
for f in "$models"/sample-*.npy; do
  echo "== nnmesh infer --node n1 -i $(basename "$f")"
  out=$("$NNMESH" infer --config "$dir/shell.conf" --model "$models/lenet5-fmnist.onnx" --node n1 -i "$f")
  echo "$out"
  best=$(echo "$out" | sed -n 's/.*argmax \[\([0-9]*\)\].*/\1/p')
  i=0
  for c in $classes; do
    [ "$i" = "$best" ] && echo "predicted: $c (file: $(basename "$f" .npy | cut -d- -f3-))"
    i=$((i + 1))
  done
  echo
done
echo "== from the shell: mosquitto_pub -f sample-1-pullover.npy, mosquitto_sub saves the result"
mosquitto_sub -h 127.0.0.1 -p "$BROKER_A_PORT" -u shell -P "$pw" -t "nnmesh/$MESH/res/+/demo1" -C 1 -W 20 >"$dir/result.npy" &
sub=$!
sleep 0.5
mosquitto_pub -h 127.0.0.1 -p "$BROKER_A_PORT" -u shell -P "$pw" -t "nnmesh/$MESH/req/any/demo1" -f "$models/sample-1-pullover.npy"
wait $sub
"$PYTHON" -c "import numpy as np; y = np.load('$dir/result.npy'); print('result.npy', y.shape, 'argmax', int(y.argmax()))"
echo
echo "== node stats (mosquitto_sub -t nnmesh/$MESH/stats/n1)"
mosquitto_sub -h 127.0.0.1 -p "$BROKER_A_PORT" -u shell -P "$pw" -t "nnmesh/$MESH/stats/n1" -C 1 -W 5 |
  "$PYTHON" -c "import json,sys; s=json.load(sys.stdin); print({k: s[k] for k in ('requests','slices_run','slice_ms','coordinator','peers')})"
