#!/bin/sh
# tests/slicing.sh — every test model run as k = 2..6 contiguous slices with random cut
# points, and as 2-4 uneven row-band and channel parts of runs of layers, equals the whole
# within 1e-5 of the output's scale (tests/tools/slice_check.c).
. "$(dirname "$0")/lib.sh"
need_models
check="$top_builddir/tests/tools/slice_check"
for m in tiny_cnn tiny_dw tiny_fire tiny_mlp mobilenet_v2 resnet18 squeezenet1_1; do
  for seed in 1 2; do
    # seed 2 also sends every slice through ONNX and back, as a peer receiving weights does
    "$check" "$MODELS/$m.onnx" "$MODELS/$m.input.npy" --seed $seed --onnx $((seed - 1)) || fail "$m (seed $seed)"
  done
done
"$check" "$top_srcdir/examples/models/lenet5-fmnist.onnx" "$top_srcdir/examples/models/sample-0-ankle-boot.npy" ||
  fail "lenet5"
