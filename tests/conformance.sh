#!/bin/sh
# tests/conformance.sh — ONNX operator conformance: runs libonnx-testdata's node cases for
# every operator nnmesh supports through tests/tools/onnx_conformance (load, run with the
# reference and the automatic backend, compare with the expected outputs).
#
# Prints PASS/FAIL/SKIP per case and the list of skipped cases with the loader's reason;
# fails if any case fails. Skips the whole test (exit 77) when the data is not installed
# (Debian package libonnx-testdata). NNM_ONNX_TESTDATA overrides the data directory.
set -u
: "${top_builddir:=.}"
data="${NNM_ONNX_TESTDATA:-/usr/share/libonnx-testdata/data/node}"
tool="$top_builddir/tests/tools/onnx_conformance"
if [ ! -d "$data" ]; then
    echo "SKIP: $data not found (apt-get install libonnx-testdata)"
    exit 77
fi
if [ ! -x "$tool" ]; then
    echo "FAIL: $tool not built"
    exit 1
fi
exec "$tool" "$data"
