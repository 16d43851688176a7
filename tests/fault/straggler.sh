#!/bin/sh
# tests/fault/straggler.sh — process fault: a SIGSTOPped straggler, on a 4-node example mesh
# (examples/mesh-up.sh, real mosquitto on loopback) running the bundled LeNet-5 split with
# policy `equal`, coordinated by n1. [limits] task_timeout = 2 s (mesh-up.sh --task-timeout),
# while the keepalive (10 s) and the advert expiry (3 x 2 s + 5 s) are longer, so the task
# deadline, not the peer's departure, is what re-runs the stopped node's parts. Asserted:
#  - before the stop n3 runs parts; with n3 stopped the request completes with the
#    single-node output (within 1e-5), after at least the 2 s task deadline, without n3 in
#    its trace, and n1 counts re-run parts (coordinator.tasks_retried); n1 does not see n3
#    leave (the deadline re-ran the parts);
#  - while n1 waits for the stopped n3, its advert says it holds a request (queue 1 in
#    `nnmesh peers`, published as it started coordinating, not at the 2 s advert interval),
#    and says 0 again within the interval once the request is done;
#  - after SIGCONT, n3's stale answers are discarded (results_late) and n3 serves again.
#   make check TESTS=tests/fault/straggler.sh
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../dist_lib.sh"
x="$SAMPLES/sample-2-trouser.npy"

t0=$(now)
mesh_start slow --nodes 4 --keepalive 10 --interval 2 --task-timeout 2
"$NNMESH" run "$LENET" -i "$x" -o "$dir/ref" >/dev/null
ref=$dir/ref/output.npy
set_policy equal

echo "== a SIGSTOPped straggler"
infer_bg b0; wait $infer_pid || true
[ "$(infer_verdict "$dir/b0" "$dir/b0")" = ok ] || fail "the request before the stop failed"
grep -q '^  n3 ' "$dir/b0.out" || fail "n3 ran no part before it was stopped: $(cat "$dir/b0.out")"
retried0=$(node_stat n1 coordinator.tasks_retried)
kill -STOP "$(cat "$dir/n3.pid")"
queue_of() { "$NNMESH" peers --config "$dir/shell.conf" --wait 0.3 2>/dev/null | awk -v id="$1" '$1 == id { print $11 }'; }
n1_queue_is() { [ "$(queue_of n1)" = "$1" ]; }
# b0 just ended: n1 says it is idle again ~250 ms after its last request
wait_until 2 n1_queue_is 0 || fail "idle n1 advertises queue '$(queue_of n1)'"
t=$(now)
infer_bg b1
wait_until 1.5 n1_queue_is 1 || fail "n1 coordinating (n3 stopped) advertises queue '$(queue_of n1)', not 1, after $(since "$t") s"
qt=$(since "$t")
wait $infer_pid || true
el=$(since "$t")
t=$(now)
wait_until 1.2 n1_queue_is 0 || fail "n1 still advertises queue '$(queue_of n1)' $(since "$t") s after the request ended"
echo "PASS n1's advert showed queue 1 ${qt} s into the request, 0 again $(since "$t") s after it (advert interval 2 s)"
[ "$(infer_verdict "$dir/b1" "$dir/b1")" = ok ] || fail "the request with n3 stopped failed: $(cat "$dir/b1.err")"
! grep -q '^  n3 ' "$dir/b1.out" || fail "the trace still credits the stopped n3: $(cat "$dir/b1.out")"
# n1 publishes its stats as the request ends, possibly after the client got the answer:
# polled, not read once.
retried_more() {
  retried=$(node_stat n1 coordinator.tasks_retried)
  [ "${retried:-0}" -gt "$retried0" ]
}
wait_until 30 retried_more || fail "n1 re-ran no task (tasks_retried $retried0 -> $retried)"
le 2 "$el" || fail "the request finished in $el s, before the 2 s task deadline"
grep -q "peer n3 \(left\|expired\)" "$dir/n1.log" && fail "n1 saw n3 leave: the deadline was not what re-ran its part"
echo "PASS n3 stopped: the request completed correctly in $el s (task deadline 2 s);" \
     "n1 re-ran $((retried - retried0)) part(s); trace: $(awk '/^  n[0-9]/ { print $1 }' "$dir/b1.out" | sort | uniq -c | tr -s ' \n' ' ')"
late0=$(node_stat n1 coordinator.results_late)
kill -CONT "$(cat "$dir/n3.pid")"
sleep 1
infer_bg b2; wait $infer_pid || true
[ "$(infer_verdict "$dir/b2" "$dir/b2")" = ok ] || fail "the request after SIGCONT failed"
grep -q '^  n3 ' "$dir/b2.out" || fail "n3 takes no part after SIGCONT: $(cat "$dir/b2.out")"
echo "PASS after SIGCONT n3 serves again; its stale answers discarded" \
     "(n1 results_late $late0 -> $(node_stat n1 coordinator.results_late), ignored frames $(node_stat n1 errors.frames_unsupported))" \
     "($(since "$t0") s)"
