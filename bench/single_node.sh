#!/bin/sh
# bench/single_node.sh — single-node latency of `nnmesh run` against ONNX Runtime, side by
# side in one run, and peak RSS of `nnmesh run`. Not a test: run it by hand on an idle
# machine from a build directory:
#
#   sh ../bench/single_node.sh [REPEAT] [ROUNDS] > ../docs/BENCH_SINGLE.md
#
# For each model and thread count it alternates ROUNDS times between nnmesh and ORT, each
# round a `--repeat REPEAT` run reporting its median, and reports the median of the round
# medians and their ratio (and the ratio of the best round of each, which shows the
# kernels with less of the load of a shared machine). Peak RSS comes from GNU time's
# maxresident (KiB). BENCH_MODELS and BENCH_THREADS narrow the run for a quick check:
#
#   BENCH_MODELS=mobilenet_v2 BENCH_THREADS=1 sh ../bench/single_node.sh 20 5
set -eu
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
top_builddir=$(pwd)
repeat=${1:-30}
rounds=${2:-5}
models=${BENCH_MODELS:-mobilenet_v2 resnet18 squeezenet1_1}
threads=${BENCH_THREADS:-1 2}
SYS_PYTHON=${SYS_PYTHON:-/usr/bin/python3}
NNMESH="$top_builddir/apps/nnmesh"
MODELS="$top_builddir/tests/model-cache"
mkdir -p "$MODELS"
"$SYS_PYTHON" "$top_srcdir/scripts/make_models.py" "$MODELS" --only mobilenet_v2,resnet18,squeezenet1_1 >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "# Single-node latency: nnmesh vs ONNX Runtime"
echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(sed -n 's/^model name\t: //p' /proc/cpuinfo | head -1)),"
echo "batch 1, float32, $rounds alternating rounds of $repeat runs each; medians of round medians."
echo "Command: \`sh bench/single_node.sh $repeat $rounds\` from the build directory."
echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| model | threads | nnmesh ms | ORT ms | nnmesh/ORT | best round nnmesh / ORT ms | best ratio |"
echo "|---|---|---|---|---|---|---|"
for m in $models; do
  for t in $threads; do
    : >"$tmp/n"; : >"$tmp/o"
    for r in $(seq "$rounds"); do
      "$NNMESH" run "$MODELS/$m.onnx" -i "input=$MODELS/$m.input.npy" --threads $t --repeat "$repeat" |
        sed -n 's/^latency: median \([0-9.]*\) ms.*/\1/p' >>"$tmp/n"
      node "$top_srcdir/scripts/ort_run.js" "$MODELS/$m.onnx" "$tmp/ort" --threads $t --repeat "$repeat" \
        -i "input=$MODELS/$m.input.npy" | sed -n 's/.*"median_ms":\([0-9.]*\).*/\1/p' >>"$tmp/o"
    done
    n=$(median <"$tmp/n"); o=$(median <"$tmp/o")
    nb=$(sort -g "$tmp/n" | head -1); ob=$(sort -g "$tmp/o" | head -1)
    echo "| $m | $t | $n | $o | $(echo "$n $o" | awk '{printf "%.2f", $1/$2}') | $nb / $ob | $(echo "$nb $ob" | awk '{printf "%.2f", $1/$2}') |"
  done
done
echo
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
[ -n "${BENCH_MODELS:-}${BENCH_THREADS:-}" ] && exit 0
echo
echo "## Peak memory of nnmesh run"
echo
echo "| model | peak RSS MiB | weights MiB | two largest activations MiB | budget (2x weights + acts) MiB | within |"
echo "|---|---|---|---|---|---|"
for m in mobilenet_v2 resnet18; do
  rss=$(/usr/bin/time -f %M "$NNMESH" run "$MODELS/$m.onnx" -i "input=$MODELS/$m.input.npy" 2>&1 >/dev/null | tail -1)
  "$NNMESH" inspect "$MODELS/$m.onnx" >"$tmp/insp"
  # parameter bytes: sum over nodes; largest activations: the two biggest per-node outputs
  "$SYS_PYTHON" - "$tmp/insp" "$rss" "$m" <<'PY'
import re, sys
rows = open(sys.argv[1]).read().splitlines()
unit = {"B": 1, "KiB": 1024, "MiB": 1024 * 1024}
params, acts = 0.0, []
for r in rows:
    # node rows: index, name, op, [shape], FLOPs, then parameter and activation sizes
    m = re.match(r"\s*\d+\s+\S+\s+\S+\s+\[.*?\](.*)$", r)
    if not m:
        continue
    sizes = re.findall(r"([\d.]+) (B|KiB|MiB)\b", m.group(1))
    if len(sizes) >= 2:
        params += float(sizes[-2][0]) * unit[sizes[-2][1]]
        acts.append(float(sizes[-1][0]) * unit[sizes[-1][1]])
acts.sort(reverse=True)
two = sum(acts[:2])
rss = int(sys.argv[2]) * 1024
budget = 2 * params + two
mb = 1024 * 1024
print("| %s | %.1f | %.1f | %.1f | %.1f | %s |" % (sys.argv[3], rss / mb, params / mb, two / mb, budget / mb, "yes" if rss <= budget else "no"))
PY
done
