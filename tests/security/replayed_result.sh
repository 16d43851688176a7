#!/bin/sh
# tests/security/replayed_result.sh — attack: every sealed frame sent to the nodes' inboxes
# while requests run is recorded (an anonymous mosquitto_sub on nnmesh/<mesh>/inbox/+: the
# client's TASK to its coordinator, the coordinator's TASKs to the other nodes, their RESULTs
# back, link ACKs and probes) and published again, unchanged, to the same inboxes afterwards.
# 3-node example mesh (examples/mesh-up.sh, LeNet-5), policy equal (every node gets parts).
# Frames between nodes are dropped as replays (stats drops.replay: the counter was already
# received in that session); the client's frames find its session closed (it said BYE on
# exit: drops.no_session). Nothing runs again (slices_run, requests unchanged), no late or
# duplicate RESULT appears (coordinator.results_late; RESULT frames per request id to the
# client's inbox; answers per tag of the shell requests), every node keeps serving, and
# requests after the replay give the nnmesh run output.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/dist_lib.sh"
. "$top_srcdir/tests/security/sec_lib.sh"
model=$LENET
x=$SAMPLES/sample-1-pullover.npy
t_all=$(now)
sec_start replayed --nodes 3 --keepalive 5 --interval 2
set_policy equal

witness "$dir/captured" "nnmesh/$MESH/inbox/+"
infer_ok req-1
infer_ok req-2
shell_ok rec-1 rec-2
witness_sync "$dir/captured"   # every frame of those requests is in the capture
# What to replay: sealed frames (not HELLO) to the nodes, each once.
$FRAMES list "$dir/captured" >"$dir/frames"
awk '$3 != "HELLO" && $5 ~ /^n[0-9]+$/ { print $1 }' "$dir/frames" >"$dir/replay.idx"
n_all=$(wc -l <"$dir/replay.idx")
n_nodes_fr=$(awk '$3 != "HELLO" && $5 ~ /^n[0-9]+$/ && $4 ~ /^n[0-9]+$/' "$dir/frames" | wc -l)
[ "$n_nodes_fr" -ge 4 ] || { cat "$dir/frames"; fail "only $n_nodes_fr sealed frames between nodes were recorded"; }
echo "recorded: $(wc -l <"$dir/frames") frames to the inboxes; replaying $n_all sealed ones:" \
     "$(awk '$3 != "HELLO" && $5 ~ /^n[0-9]+$/ { print $3 }' "$dir/frames" | sort | uniq -c | awk '{ printf "%s%s %s", s, $1, $2; s = ", " }')" \
     "($n_nodes_fr between nodes)"
results0=$($FRAMES count "$dir/captured" "nnmesh/$MESH/inbox/shell" RESULT)
# The baselines: stats published after the requests ended (a fixed wait could read copies
# from before their last slices, and those slices would then look like work of the replay).
fresh_stats $NODES
rp0=$(stat_sum drops.replay)
ns0=$(stat_sum drops.no_session)
sr0=$(stat_sum slices_run)
rq0=$(stat_sum requests)
late0=$(stat_sum coordinator.results_late)

while read -r i; do
  set -- $($FRAMES pick "$dir/captured" "$dir/r.bin" --index "$i")
  mosquitto_pub -h 127.0.0.1 -p "$BROKER_A_PORT" -q 1 -t "$2" -f "$dir/r.bin" || fail "mosquitto_pub of frame $i failed"
done <"$dir/replay.idx"
# The broker carried them: each replayed frame is now in the capture twice.
wait_until 20 eval '[ "$($FRAMES list "$dir/captured" | awk '"'"'$3 != "HELLO" && $5 ~ /^n[0-9]+$/'"'"' | wc -l)" -ge $((2 * n_all)) ]' ||
  fail "the broker did not carry the $n_all replayed frames"
echo "attempt: $n_all recorded frames published again to their inboxes, carried by the broker"

wait_until 30 stat_sum_ge drops.replay $((rp0 + n_nodes_fr)) ||
  { dump_logs; fail "replays counted: $(( $(stat_sum drops.replay) - rp0 )), not $n_nodes_fr"; }
wait_until 10 eval '[ $(( $(stat_sum drops.replay) + $(stat_sum drops.no_session) )) -ge $((rp0 + ns0 + n_all)) ]' ||
  fail "replayed frames not all dropped: replay +$(( $(stat_sum drops.replay) - rp0 )), no_session +$(( $(stat_sum drops.no_session) - ns0 )) of $n_all"
sleep 2.5   # room for anything the frames could have started to run
fresh_stats $NODES   # and stats published after it, so that it would show
sr1=$(stat_sum slices_run) rq1=$(stat_sum requests) late1=$(stat_sum coordinator.results_late)
[ "$sr1" = "$sr0" ] && [ "$rq1" = "$rq0" ] && [ "$late1" = "$late0" ] ||
  fail "replayed frames did work: slices_run $sr0 -> $sr1, requests $rq0 -> $rq1, results_late $late0 -> $late1"
results1=$($FRAMES count "$dir/captured" "nnmesh/$MESH/inbox/shell" RESULT)
[ "$results1" = "$results0" ] || fail "RESULT frames to the client per request changed: '$results0' -> '$results1'"
echo "$results1" | awk '$2 != 1 { exit 1 }' || fail "a request got more than one RESULT: $results1"
echo "PASS all dropped: drops.replay +$(( $(stat_sum drops.replay) - rp0 )), drops.no_session" \
     "+$(( $(stat_sum drops.no_session) - ns0 )) (sums over $NODES); slices_run $sr0 -> $sr1, requests" \
     "$rq0 -> $rq1, results_late $late0 -> $late1; RESULTs per sealed request: $(echo "$results1" | awk '{ printf "%s%s", s, $2; s = "," }')"
res=$(ALLOW_ERRORS=0 check_results "$ref" rec-1 rec-2) || { echo "$res"; fail "shell answers after the replay"; }
echo "PASS shell requests answered once each after the replay: $(echo "$res" | tail -1)"

still_serving
infer_ok after
shell_ok honest-1 honest-2
echo "replayed_result.sh done in $(since "$t_all") s"
