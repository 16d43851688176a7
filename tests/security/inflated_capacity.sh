#!/bin/sh
# tests/security/inflated_capacity.sh — attack: a node claims far more capacity than it has.
# nnmeshd has no setting to override its measured capacity, so the lie is told the way a
# malicious node's owner could: adverts for n3 signed with n3's own key (it is enrolled),
# claiming 100x the conv/fc rates n3 measured, with a sequence number far ahead of n3's own
# (tests/security/forge_advert; republished every second, as the node would), while n3 is
# really slow: a cgroup v1 CPU quota of 10% of one core (/sys/fs/cgroup/cpu, needs root).
# 3-node example mesh (examples/mesh-up.sh), MobileNetV2 (scripts/make_models.py), requests by
# `nnmesh infer` coordinated by n1, each output equal to nnmesh run's.
#   - policy capacity (advertised figures, never refined): n3 gets the work (its share of the
#     model's nodes in the trace: >= 90%);
#   - policy adaptive (the scheduler refines each node's rate from the observed slice times,
#     scheduler/mesh.c): over the last 8 of 12 requests n3's mean share of the compute time is
#     at most 3/4 of what it was under capacity. It does not fall to zero: the refinement
#     moves at most log 64 per observation and the adaptive bandit keeps re-trying n3; and a
#     claim more than ~64x off (NNM_SEC_SCALE=100) is never undone (the factor caps at 64).
# Prints each request's latency and n3's share (of the graph nodes it ran, of compute time).
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/dist_lib.sh"
. "$top_srcdir/tests/security/sec_lib.sh"
CG=/sys/fs/cgroup/cpu
[ "$(id -u)" = 0 ] && [ -w "$CG/cgroup.procs" ] || { echo "SKIP: needs root and a cgroup v1 cpu controller at $CG"; exit 77; }
need_models mobilenet_v2
model=$MODELS/mobilenet_v2.onnx
x=$MODELS/mobilenet_v2.input.npy
SCALE=${NNM_SEC_SCALE:-5}   # the claim; the cut-off of the refinement (log 64 per observation) caps what it can undo: see below
cg=$CG/nnm-sec-inflated-$$
cg_cleanup() {
  [ -d "$cg" ] || return 0
  for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do echo "$p" >"$CG/cgroup.procs" 2>/dev/null; done
  rmdir "$cg" 2>/dev/null || true
}
trap '_rc=$?; cg_cleanup; (exit $_rc); dist_cleanup' EXIT
t_all=$(now)
sec_start inflated --nodes 3 --keepalive 5 --interval 2 --model "mnv2=$model"
: "${MEMBER_A_PORT:=$BROKER_A_PORT}"

# n3 becomes really slow: 10% of a core in 1 ms slices of 10 ms (with the default 100 ms
# period a lone MobileNetV2 request, ~10 ms of CPU, fits in the quota and runs at full speed).
mkdir "$cg" && echo 10000 >"$cg/cpu.cfs_period_us" && echo 1000 >"$cg/cpu.cfs_quota_us" &&
  echo "$(cat "$dir/n3.pid")" >"$cg/cgroup.procs" || fail "cannot put n3 in $cg"
# ... and brags: 100x its measured rates, signed by its own key, every second.
mosquitto_sub -h 127.0.0.1 -p "$BROKER_A_PORT" -t "nnmesh/$MESH/advert/n3" -C 1 -N -W 5 >"$dir/real3.bin" 2>/dev/null
"$FORGE" "$dir/mesh.trust" "$dir/real3.bin" "$dir/n3.key" "$dir/brag.bin" --scale $SCALE --seq 1000000000 --expiry-s 6 \
  >"$dir/forge.out" || fail "forge_advert failed"
cat "$dir/forge.out"
genuine=$(sed -n 's/.*(genuine \([0-9]*\)).*/\1/p' "$dir/forge.out" | head -1)
[ -n "$genuine" ] || fail "forge_advert did not print n3's genuine conv3x3 rate: $(cat "$dir/forge.out")"
(
  set +e   # one failed publication must not end the bragging
  k=0
  while :; do
    k=$((k + 1))
    "$FORGE" "$dir/mesh.trust" "$dir/real3.bin" "$dir/n3.key" "$dir/brag.bin" --scale $SCALE \
      --seq $((1000000000 + k)) --expiry-s 6 >/dev/null &&
      mosquitto_pub -h 127.0.0.1 -p "$MEMBER_A_PORT" -u bridge -P "$(cat "$dir/bridge.password")" \
        -q 1 -r -t "nnmesh/$MESH/advert/n3" -f "$dir/brag.bin"
    sleep 1
  done
) >/dev/null 2>&1 &
bg_pids="$bg_pids $!"
bragging() {
  "$NNMESH" peers --config "$dir/shell.conf" --wait 1 2>/dev/null >"$dir/peers"
  # n3's advertised conv3x3 GFLOP/s is the inflated claim, not its own measurement.
  awk -v s=$SCALE -v g="$genuine" '$1 == "n3" { b = $5 } END { exit !(b > s / 2 * g / 1000) }' "$dir/peers"
}
wait_until 30 bragging || fail "n3's inflated adverts are not taken: $(cat "$dir/peers")"
echo "attempt: n3 throttled to 10% of a core ($cg) advertises: $(awk '$1 == "n3" { print $5 " GFLOP/s conv3x3 against n1'"'"'s " }' "$dir/peers")$(awk '$1 == "n1" { print $5 }' "$dir/peers")"

# share FILE: n3's share of the graph nodes (union of its trace ranges over the model's) and
# of the compute time of one nnmesh infer trace.
share() {
  awk '/^trace/ { t = 1; next } t && $2 == "nodes" {
         a = $3; gsub(/[\[,]/, "", a); b = $4; gsub(/\)/, "", b); a += 0; b += 0; c = $6
         if (b > top) top = b
         all += c
         if ($1 == "n3") { n3c += c; for (i = a; i < b; i++) cov[i] = 1 }
       }
       END { n = 0; for (i in cov) n++; printf "%.2f %.2f\n", top ? n / top : 0, all ? n3c / all : 0 }' "$1"
}
latency() { awk '/^trace/ { gsub(/,/, ""); print $4 }' "$1"; }
run() {  # LABEL: one request; prints its line
  infer_ok "$1" >/dev/null
  set -- "$1" $(share "$dir/$1.out") "$(latency "$dir/$1.out")"
  echo "  $1: n3 share of graph nodes $2, of compute $3; $4 ms end to end"
  echo "$1 $2 $3 $4" >>"$dir/shares"
  last_share=$2
}

set_policy capacity
echo "policy capacity (advertised figures):"
: >"$dir/shares"
run cap-1
run cap-2
before=$last_share
before_c=$(tail -1 "$dir/shares" | cut -d' ' -f3)
awk -v s="$before" 'BEGIN { exit !(s >= 0.9) }' || fail "the bragging n3 got only $before of the model under policy capacity"

# Adaptive: 12 requests; the last 8 (after the first observations) are compared with capacity.
set_policy adaptive
echo "policy adaptive (refined from observed slice times):"
for k in $(seq 12); do run adaptive-$k; done
after=$(grep '^adaptive-' "$dir/shares" | tail -8 | awk '{ g += $2; c += $3 } END { printf "%.2f %.2f", g / NR, c / NR }')
echo "n3's share, capacity (cap-2) -> adaptive (mean of the last 8): graph nodes $before -> ${after% *}, compute $before_c -> ${after#* }"
awk -v b="$before_c" -v a="${after#* }" 'BEGIN { exit !(a <= 0.75 * b) }' ||
  fail "the bragging n3 was not down-weighted: its compute share $before_c -> ${after#* }"
echo "PASS the bragging n3 was down-weighted once observed: compute share $before_c -> ${after#* }," \
     "graph nodes $before -> ${after% *}; every output = nnmesh run"
echo "  n1.log: $(grep -m1 "advert of 'n3' ignored (replay)" "$dir/n1.log" | cut -d' ' -f2-) (n3's own genuine adverts, behind the forged sequence)"
for n in $NODES; do kill -0 "$(cat "$dir/$n.pid")" || fail "$n is gone"; done
still_serving
echo "inflated_capacity.sh done in $(since "$t_all") s"
