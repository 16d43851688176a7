#!/bin/sh
# tests/cli_errors.sh — bad input to `nnmesh run` / `nnmesh inspect`: each case prints one
# clear line naming the file, node or input, exits non-zero, and does not crash (a crash
# or sanitizer report shows as exit status >= 128 or a report on stderr).
. "$(dirname "$0")/lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lenet="$top_srcdir/examples/models/lenet5-fmnist.onnx"
sample="$top_srcdir/examples/models/sample-0-ankle-boot.npy"

# expect_error NAME PATTERN CMD...: non-zero exit below 128, one stderr line matching PATTERN
expect_error() {
  name=$1; pat=$2; shift 2
  set +e
  "$@" >"$work/out" 2>"$work/err"
  rc=$?
  set -e
  [ $rc -ne 0 ] || fail "$name: exit status 0"
  [ $rc -lt 128 ] || fail "$name: crashed (status $rc): $(cat "$work/err")"
  grep -q "Sanitizer\|runtime error" "$work/err" && fail "$name: sanitizer report: $(cat "$work/err")"
  grep -q -- "$pat" "$work/err" || fail "$name: stderr does not match '$pat': $(cat "$work/err")"
  echo "PASS $name: $(head -1 "$work/err")"
}

head -c 1000 "$lenet" >"$work/truncated.onnx"
expect_error "truncated ONNX" "truncated.onnx" "$NNMESH" run "$work/truncated.onnx" -i "$sample"
expect_error "truncated ONNX (inspect)" "truncated.onnx" "$NNMESH" inspect "$work/truncated.onnx"
echo "this is not a model" >"$work/text.onnx"
expect_error "not ONNX" "text.onnx" "$NNMESH" run "$work/text.onnx" -i "$sample"
: >"$work/empty.onnx"
expect_error "empty file" "empty.onnx" "$NNMESH" inspect "$work/empty.onnx"
expect_error "missing model" "nosuch.onnx" "$NNMESH" run "$work/nosuch.onnx" -i "$sample"

"$SYS_PYTHON" - "$work" <<'PY'
import sys, os
import numpy as np
import onnx
from onnx import helper, TensorProto
w = sys.argv[1]
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
n1 = helper.make_node("Relu", ["x"], ["r"], name="relu0")
n2 = helper.make_node("Det", ["r"], ["y"], name="det_node")
m = helper.make_model(helper.make_graph([n1, n2], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
onnx.save(m, os.path.join(w, "unsupported.onnx"))
np.save(os.path.join(w, "wrong_shape.npy"), np.zeros((1, 1, 28, 27), np.float32))
np.save(os.path.join(w, "wrong_dtype.npy"), np.zeros((1, 1, 28, 28), np.float64))
good = open(os.path.join(os.environ["top_srcdir"], "examples/models/sample-0-ankle-boot.npy"), "rb").read()
open(os.path.join(w, "corrupt.npy"), "wb").write(good[:10] + b"{'descr': '<f4', 'fortran_order': False, 'shapes': (1, 1, 28, 28), }" + good[80:])
open(os.path.join(w, "short.npy"), "wb").write(good[:-100])
PY
expect_error "unsupported op" "det_node" "$NNMESH" inspect "$work/unsupported.onnx"
expect_error "unsupported op names the op" "Det" "$NNMESH" run "$work/unsupported.onnx"
expect_error "wrong input shape" "wrong_shape.npy" "$NNMESH" run "$lenet" -i "$work/wrong_shape.npy"
expect_error "wrong input dtype" "wrong_dtype.npy" "$NNMESH" run "$lenet" -i "$work/wrong_dtype.npy"
expect_error "corrupt .npy header" "corrupt.npy" "$NNMESH" run "$lenet" -i "$work/corrupt.npy"
expect_error "truncated .npy data" "short.npy" "$NNMESH" run "$lenet" -i "$work/short.npy"
expect_error "missing input" "missing input 'input'" "$NNMESH" run "$lenet"
expect_error "unknown input name" "no input named 'bogus'" "$NNMESH" run "$lenet" -i "bogus=$sample"
expect_error "missing .npy file" "nosuch.npy" "$NNMESH" run "$lenet" -i "$work/nosuch.npy"
expect_error "bad option" "unknown option" "$NNMESH" run "$lenet" --frobnicate
expect_error "bad thread count" "threads" "$NNMESH" run "$lenet" -i "$sample" --threads 0
