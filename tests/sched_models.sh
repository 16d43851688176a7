#!/bin/sh
# tests/sched_models.sh — for every test model (MobileNetV2, ResNet-18, SqueezeNet, the tiny
# ones, LeNet), every plan the scheduler makes on a heterogeneous 4-node mesh (each policy,
# both objectives, pinned and not, two link speeds) runs in-process, parts joined, and equals
# the whole model within 1e-5 of the output's scale (tests/tools/plan_check.c).
. "$(dirname "$0")/lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
need_models
check="$top_builddir/tests/tools/plan_check"
for m in tiny_cnn tiny_dw tiny_fire tiny_mlp mobilenet_v2 resnet18 squeezenet1_1; do
  "$check" "$MODELS/$m.onnx" "$MODELS/$m.input.npy" >"$work/$m.plans.log" 2>&1 ||
    { cat "$work/$m.plans.log"; fail "$m"; }
  tail -1 "$work/$m.plans.log"
done
"$check" "$top_srcdir/examples/models/lenet5-fmnist.onnx" \
  "$top_srcdir/examples/models/sample-0-ankle-boot.npy" >"$work/lenet5.plans.log" 2>&1 ||
  { cat "$work/lenet5.plans.log"; fail "lenet5"; }
tail -1 "$work/lenet5.plans.log"
