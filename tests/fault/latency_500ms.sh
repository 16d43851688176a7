#!/bin/sh
# tests/fault/latency_500ms.sh — a slow link: on a 3-node example mesh (LeNet-5, policy
# `equal` so every node gets parts) n3's broker connection goes through tests/tools/impair
# with 500 ms one-way delay + 0..50 ms jitter (NNM_DELAY_MS sets the delay). Requests
# coordinated by n1 (n3 runs a part across the slow link) and by n3 itself (the request and
# its answer cross it), as `nnmesh infer` and as shell requests: every one completes with the
# single-node output (`nnmesh run`, within 1e-5 of scale), none lost or duplicated; n3 is
# used; a request to n3 takes at least the round trip of its link (2 x delay); and n3
# keeps its one broker connection (the proxy accepted exactly one: no reconnects).
# Prints the latencies, the nodes used and the bytes carried.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../dist_lib.sh"
. "$(dirname "$0")/net_lib.sh"
delay=${NNM_DELAY_MS:-500}
t0=$(now)
mesh_up lat --nodes 3 --keepalive 10 --interval 1
"$NNMESH" run "$LENET" -i "$X" -o "$dir/ref" >/dev/null
ref=$dir/ref/output.npy
node_via n3 n3 --delay "$delay" --jitter 50
set_policy equal
echo "== n3's broker link through the proxy: $delay ms one-way delay + 0..50 ms jitter (mesh up in $(since "$t0") s)"

n3_parts=0
for i in 1 2; do
  infer n1 via-n1-$i
  echo "nnmesh infer coordinated by n1 #$i: $verdict in $lat s; parts on: $used"
  [ "$verdict" = ok ] || { dump_logs; fail "a request coordinated by n1 failed over the slow link: $verdict"; }
  case " $used" in *" n3 "*) n3_parts=$((n3_parts + 1)) ;; esac
done
[ $n3_parts -gt 0 ] || fail "n3 ran no part in 2 requests: the slow link was not exercised"
min_rt=$(awk -v d="$delay" 'BEGIN { printf "%.2f", 2 * d / 1000 }')
for i in 1; do
  infer n3 via-n3-$i
  echo "nnmesh infer coordinated by n3 #$i: $verdict in $lat s (>= $min_rt s: request and answer cross the link); parts on: $used"
  [ "$verdict" = ok ] || { dump_logs; fail "a request coordinated by n3 failed: $verdict"; }
  le "$min_rt" "$lat" || fail "a request to n3 took $lat s, less than its link's round trip ($min_rt s)"
done
shell_batch n1 to-n1 4
echo "4 shell requests to n1 at once: $batch; last answer after $batch_s s"
shell_batch n3 to-n3 2
echo "2 shell requests to n3 at once: $batch; last answer after $batch_s s"
le "$min_rt" "$batch_s" || fail "shell requests to n3 answered in $batch_s s, under the link's round trip"
acc=$(pstat n3 accepted)
echo "proxy: $(pctl n3 stats)"
[ "$acc" = 1 ] || { grep 'connection' "$dir/n3-impair.log" | tail -5; fail "n3 connected $acc times through the proxy (reconnects under delay)"; }
echo "PASS latency_500ms: every request correct over a $delay ms link; n3 kept its one connection ($(since "$t0") s)"
