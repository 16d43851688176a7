#!/bin/sh
# tests/shell_burst.sh — a burst of shell requests larger than a node's shell queue: every
# request still gets exactly one answer, the output .npy or, past the queue, a JSON error
# saying the node is busy (nothing is dropped silently), and the node keeps serving.
# One node (examples/mesh-up.sh --nodes 1) running the batch-100 LeNet, 70 requests published
# back to back by one mosquitto_pub --repeat on one tag; then one more request that must
# succeed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dist_lib.sh"
b100="$top_srcdir/examples/models/lenet5-fmnist-b100.onnx"
mesh_start burst --nodes 1 --model "lenet-b100=$b100"
x=$dir/x100.npy
"$SYS_PYTHON" -c 'import numpy as np, sys
np.save(sys.argv[1], np.random.default_rng(7).random((100, 1, 28, 28), dtype=np.float32))' "$x"
"$NNMESH" run "$b100" -i "$x" -o "$dir/ref" >/dev/null || fail "nnmesh run failed"

n=70
mosquitto_pub -h 127.0.0.1 -p "$BROKER_A_PORT" -u shell -P "$pw" -q 1 \
  -t "nnmesh/$MESH/req/n1/burst" -f "$x" --repeat $n || fail "mosquitto_pub --repeat failed"
wait_until 120 sh -c "[ \$(grep -c '/res/n1/burst ' '$dir/results') -ge $n ]" ||
  { dump_logs; fail "only $(answers burst) of $n answers within 120 s"; }
sleep 1   # an extra answer would show up now
ok=$(grep '/res/n1/burst ' "$dir/results" | awk '$2 ~ /^934e554d5059/' | wc -l)
busy=$(grep '/res/n1/burst ' "$dir/results" | awk '{print $2}' | "$SYS_PYTHON" -c '
import sys
print(sum(1 for l in sys.stdin if b"is busy" in bytes.fromhex(l.strip())))')
total=$(answers burst)
echo "burst of $n: $total answers: $ok outputs, $busy 'busy' errors"
[ "$total" -eq $n ] || fail "$total answers for $n requests"
[ $((ok + busy)) -eq $n ] || fail "answers that are neither an output nor a busy error"
[ "$busy" -ge 1 ] || fail "the burst never filled the queue (test too weak on this machine)"
[ "$ok" -ge 16 ] || fail "only $ok outputs: the queue should have held 16"
grep -q "shell request 'burst' refused: the shell queue is full" "$dir/n1.log" ||
  fail "n1 did not log the refusal"
# The node still serves, and the outputs it gave are right.
shell_req n1 after "$x"
wait_until 30 has_answer after || fail "no answer after the burst"
check_results "$dir/ref/output.npy" after || fail "the request after the burst failed"
grep '/res/n1/burst ' "$dir/results" | awk '$2 ~ /^934e554d5059/ {print "nnmesh/'"$MESH"'/res/n1/one" NR " " $2}' \
  >"$dir/results.ok"
mv "$dir/results.ok" "$dir/results"
tags=$(awk '{split($1, a, "/"); print a[5]}' "$dir/results" | tr '\n' ' ')
check_results "$dir/ref/output.npy" $tags >/dev/null || fail "a burst output differs from nnmesh run"
echo "PASS: every one of $n burst requests answered once ($ok outputs equal to nnmesh run, $busy busy errors)"
