#!/bin/sh
# tests/models.sh — whole models through `nnmesh run` against ONNX Runtime's output
# (1e-4 relative to the output's scale), with XNNPACK (1 and 2 threads) and with the
# reference kernels only.
. "$(dirname "$0")/lib.sh"
need_models
need_ort
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
models="mobilenet_v2 resnet18 squeezenet1_1 tiny_cnn tiny_dw tiny_fire tiny_mlp"
for m in $models; do
  x="$MODELS/$m.input.npy"
  ort "$MODELS/$m.onnx" "$work/$m.ort" 1 "input=$x"
  for cfg in "auto 1" "auto 2" "ref 1"; do
    set -- $cfg
    out="$work/$m.$1.$2"
    "$NNMESH" run "$MODELS/$m.onnx" -i "input=$x" --backend "$1" --threads "$2" -o "$out" >/dev/null ||
      fail "$m: nnmesh run --backend $1 --threads $2 failed"
    r=$(compare "$out/output.npy" "$work/$m.ort/output.npy") || fail "$m ($1, $2 threads): $r"
    echo "PASS $m backend=$1 threads=$2: $r"
  done
done
