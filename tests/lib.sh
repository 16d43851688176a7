# tests/lib.sh — shared helpers for the shell tests (sourced).
# Environment from make check: top_srcdir, top_builddir, SYS_PYTHON, NODE.
set -eu
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$(pwd)}"
: "${SYS_PYTHON:=/usr/bin/python3}"
: "${NODE:=node}"
export top_srcdir top_builddir SYS_PYTHON NODE
NNMESH="$top_builddir/apps/nnmesh"
MODELS="$top_builddir/tests/model-cache"   # generated models are cached here, never committed

fail() { echo "FAIL: $*" >&2; exit 1; }

# Exports the test models (cached by make_models.py itself).
need_models() {
  mkdir -p "$MODELS"
  # Tests run in parallel (make -j): one exporter at a time fills the shared cache.
  flock "$MODELS/.lock" "$SYS_PYTHON" "$top_srcdir/scripts/make_models.py" "$MODELS" ${1:+--only "$1"} >/dev/null ||
    fail "model export failed (needs Debian's python3-torch and python3-onnx: scripts/install-deps.sh --test)"
}

need_ort() {
  : "${ORT_MODULES:=$top_srcdir/scripts/node_modules}"
  export ORT_MODULES
  [ -d "$ORT_MODULES/onnxruntime-node" ] ||
    fail "onnxruntime-node is not installed: run scripts/install-deps.sh --test"
}

# ort MODEL OUTDIR THREADS NAME=FILE...
ort() {
  _ort_m=$1; _ort_o=$2; _ort_t=$3; shift 3
  set -- "$_ort_m" "$_ort_o" --threads "$_ort_t" $(for _a in "$@"; do printf -- '-i %s ' "$_a"; done)
  "$NODE" "$top_srcdir/scripts/ort_run.js" "$@" >/dev/null
}

compare() {
  "$SYS_PYTHON" "$top_srcdir/scripts/npy_compare.py" "$1" "$2" --rtol "${3:-1e-4}"
}
