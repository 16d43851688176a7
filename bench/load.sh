#!/usr/bin/env bash
# bench/load.sh — the highest request rate a 4-node mesh sustains under a p99 target (issue 6).
# Not a test: run it by hand from a build directory (after `make`), as root or not:
#
#   bash ../main/bench/load.sh [--out DIR] [--models "lenet mobilenet_v2"] [--step SECONDS]
#                              [--policies "adaptive local"] [--nodes n1,n2,n3,n4 | --nodes n1]
#
# For each model and each scheduling policy (default: adaptive, the node's default, and local,
# every coordinator runs its requests whole), a fresh examples/mesh-up.sh --nodes 4 (loopback,
# no CPU or network limits; every node holds the model, threads = 1; the policy set on every
# node with `nnmesh ctl NODE policy P`), then bench/load at increasing rates, STEP seconds each
# (default 30), Poisson arrivals, round robin over --nodes (default all four; --nodes n1 sends
# everything to one coordinator). A step passes a p99 target T when p99 <= T, no request
# failed, was refused busy, timed out or was lost, and the answers kept up with the sends
# (answer rate >= 90% of the send rate; a backlog stretches the last answers past the window).
# Each model has a list of targets (the first is the stated one; looser ones say where the
# mesh lands when the stated one is out of reach, e.g. on a busy machine): for each target the
# result is the highest rate of the steps that passed it before the first one that missed it,
# and the search stops at the first step that misses every target. Targets (ms) and rate
# ladders (req/s) can be overridden: LOAD_TARGETS_<model>, LOAD_RATES_<model>. Defaults:
#   lenet         p99 <= 50 ms, 150 ms   rates 5 10 25 50 100 150 200 300 400 600 800 1000
#                                        1500 2000 3000
#   mobilenet_v2  p99 <= 500 ms, 150 ms  rates 1 2 4 6 8 10 12 15 20 25 30 40 60 80 100 130
# Prints one line per step (with the CPU each process used during it, in % of one core: the
# client, the brokers, the nodes) and a result line per model and target (stdout); raw bench/load outputs (one
# line per request) go to DIR (default /tmp/nnm-load-results), never into the source tree.
# MobileNetV2 comes from scripts/make_models.py (Debian's python3-torch and python3-onnx),
# cached in tests/model-cache of the build directory like the tests do.
set -eu
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
top_builddir=$(pwd)
NNMESH=$top_builddir/apps/nnmesh
NNMESHD=$top_builddir/apps/nnmeshd
LOAD=$top_builddir/bench/load
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
SYS_PYTHON=${SYS_PYTHON:-/usr/bin/python3}
out=/tmp/nnm-load-results models="lenet mobilenet_v2" step=30 nodes=n1,n2,n3,n4
policies="adaptive local"
usage() { sed -n '2,6p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --out) out=$2 ;; --models) models=$2 ;; --step) step=$2 ;; --nodes) nodes=$2 ;;
    --policies) policies=$2 ;; *) usage ;;
  esac
  shift 2
done
: "${LOAD_TARGETS_lenet:=50 150}" "${LOAD_TARGETS_mobilenet_v2:=500 150}"
: "${LOAD_RATES_lenet:=5 10 25 50 100 150 200 300 400 600 800 1000 1500 2000 3000}"
: "${LOAD_RATES_mobilenet_v2:=1 2 4 6 8 10 12 15 20 25 30 40 60 80 100 130}"
for p in "$NNMESH" "$NNMESHD" "$LOAD"; do [ -x "$p" ] || { echo "load.sh: $p missing: run make in the build directory first" >&2; exit 2; }; done
mkdir -p "$out"
out=$(cd "$out" && pwd)
W=$(mktemp -d /tmp/nnm-load.XXXXXX)
log() { echo "load.sh: $(date +%T) $*" >&2; }
cleanup() {
  [ ! -f "$W/mesh.env" ] || bash "$top_srcdir/examples/mesh-down.sh" "$W" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
cache=$top_builddir/tests/model-cache
case " $models " in
  *" mobilenet_v2 "*) mkdir -p "$cache"
    flock "$cache/.lock" "$SYS_PYTHON" "$top_srcdir/scripts/make_models.py" "$cache" --only mobilenet_v2 >/dev/null ;;
esac
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# bash's `times`, children line (NmS.SSSs NmS.SSSs) -> user + sys seconds
times_s() { echo "$1" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }'; }
field() { echo "$2" | awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }'; }

echo "# bench/load.sh $(date -u +%FT%TZ) on $(nproc) cores, $(uname -r); step ${step}s; nodes $nodes"
for m in $models; do
for pol in $policies; do
  case $m in
    lenet) mpath=$top_srcdir/examples/models/lenet5-fmnist.onnx x=$top_srcdir/examples/models/sample-1-pullover.npy ;;
    mobilenet_v2) mpath=$cache/mobilenet_v2.onnx x=$cache/mobilenet_v2.input.npy ;;
    *) echo "load.sh: unknown model $m (lenet, mobilenet_v2)" >&2; exit 2 ;;
  esac
  eval "targets=\$LOAD_TARGETS_$m rates=\$LOAD_RATES_$m"
  sid=$(echo "$m" | tr _ -)
  rm -rf "$W"/*
  NNMESH=$NNMESH NNMESHD=$NNMESHD MOSQUITTO=$MOSQUITTO \
    bash "$top_srcdir/examples/mesh-up.sh" --nodes 4 --model "$sid=$mpath" "$W" >&2
  sleep 5
  for n in $(echo "$nodes,n1,n2,n3,n4" | tr , '\n' | sort -u); do
    "$NNMESH" ctl --config "$W/shell.conf" "$n" policy "$pol" >&2 ||
      { echo "load.sh: $n refused policy $pol" >&2; exit 1; }
  done
  echo "## $m, policy $pol: targets p99 <= $targets ms"
  alive=$targets
  for t in $targets; do eval "best_$t=0 bestp_$t="; done
  for r in $rates; do
    la0=$(cut -d' ' -f1 /proc/loadavg)
    f=$out/$m-$pol-$r
    procs=$(cd "$W" && ls *.pid | sed 's/\.pid$//' | sort -V)
    c0=; for p in $procs; do c0="$c0 $(ticks "$(cat "$W/$p.pid")")"; done
    t0=$(date +%s.%N)
    res=$("$LOAD" --config "$W/shell.conf" --model "$mpath" -i "$x" --nodes "$nodes" --rate "$r" \
          --duration "$step" --timeout 30 --drain 30 --raw "$f.raw" 2>"$f.err"; times) || true
    dt=$(echo "$(date +%s.%N) - $t0" | bc -l)
    # CPU of each process over the step, % of one core: what limits the rate.
    cpu="client $(echo "100 * $(times_s "$(echo "$res" | tail -1)") / $dt" | bc -l | xargs printf %.0f)"
    set -- $c0
    for p in $procs; do
      cpu="$cpu $p $(echo "100 * ($(ticks "$(cat "$W/$p.pid")") - $1) / $(getconf CLK_TCK) / $dt" | bc -l | xargs printf %.0f)"
      shift
    done
    res=$(echo "$res" | head -n -2)
    echo "$res" >"$f.txt"
    line=$(echo "$res" | grep '^load ' || true)
    la1=$(cut -d' ' -f1 /proc/loadavg)
    [ -n "$line" ] || { echo "step $m $pol rate $r: bench/load failed: $(tail -3 "$f.err")"; break; }
    p99=$(field p99 "$line") okr=$(field ok_rate "$line") sr=$(field send_rate "$line")
    bad=$(( $(field errors "$line") + $(field busy "$line") + $(field timeouts "$line") + $(field lost "$line") ))
    base=ok why=
    [ "$bad" = 0 ] || { base=fail why="$why failed=$bad"; }
    awk -v a="$okr" -v b="$sr" 'BEGIN { exit !(a < 0.9 * b) }' && { base=fail why="$why ok_rate<0.9*send_rate"; }
    still= passed=
    for t in $alive; do
      if [ $base = ok ] && awk -v a="$p99" -v b="$t" 'BEGIN { exit !(a <= b) }'; then
        still="$still $t" passed="$passed $t"
        eval "best_$t=$r bestp_$t=\"p50 $(field p50 "$line") p99 $p99\""
      fi
    done
    alive=$still
    printf 'step %s %s rate %s sent %s send_rate %s ok %s ok_rate %s p50 %s p90 %s p99 %s max %s errors %s busy %s timeouts %s lost %s split %s lag_max %s load1 %s..%s passes:%s%s\n' \
      "$m" "$pol" "$r" "$(field sent "$line")" "$sr" "$(field ok "$line")" "$okr" "$(field p50 "$line")" \
      "$(field p90 "$line")" "$p99" "$(field max "$line")" "$(field errors "$line")" "$(field busy "$line")" \
      "$(field timeouts "$line")" "$(field lost "$line")" "$(field split "$line")" "$(field lag_max "$line")" \
      "$la0" "$la1" "${passed:- none}" "${why:+ ($why )}"
    echo "  cpu% $cpu"
    echo "$res" | grep '^error ' | sed 's/^/  /' || true
    [ -n "$alive" ] || break
  done
  for t in $targets; do
    eval "b=\$best_$t bp=\$bestp_$t"
    echo "result $m policy $pol target_p99_ms $t highest_sustained_rate $b${bp:+ ($bp ms)}"
  done
  bash "$top_srcdir/examples/mesh-down.sh" "$W" >/dev/null 2>&1 || true
done
done
