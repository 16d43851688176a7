#!/bin/sh
# tests/fault/bandwidth_1mbit.sh — a thin link: on a 3-node example mesh (LeNet-5, policy
# `equal`) the model-less n3 (mesh-up.sh --no-model n3) sits behind tests/tools/impair limited
# to 1 Mbit/s each way (NNM_RATE sets it), so the slice weights it needs reach it over that
# link. Requests coordinated by n1, as `nnmesh infer` and as shell requests: every one
# completes with the single-node output, none lost or duplicated; n3 runs parts (with
# weights shipped over the thin link); the first request, which ships them, takes at least
# the time the bytes it moved to n3 need at that rate; and n3 keeps its one broker connection
# (no reconnects while its link is saturated). Prints latencies and bytes.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../dist_lib.sh"
. "$(dirname "$0")/net_lib.sh"
rate=${NNM_RATE:-1M}
t0=$(now)
mesh_up bw --nodes 3 --keepalive 10 --interval 1 --no-model n3
"$NNMESH" run "$LENET" -i "$X" -o "$dir/ref" >/dev/null
ref=$dir/ref/output.npy
node_via n3 n3 --rate "$rate"
set_policy equal
bps=$(pctl n3 show | awk '{ for (i = 1; i < NF; i++) if ($i == "rate") print $(i + 1) }')
echo "== n3 (no model) behind a $bps bit/s link (mesh up in $(since "$t0") s)"

down0=$(pstat n3 down)
infer n1 first
down1=$(pstat n3 down)
moved=$((down1 - down0))
need=$(awk -v b="$moved" -v r="$bps" 'BEGIN { printf "%.2f", b * 8 / r }')
echo "first nnmesh infer (ships n3 its weights): $verdict in $lat s; parts on: $used;" \
     "$moved bytes to n3 meanwhile ($need s at $bps bit/s)"
[ "$verdict" = ok ] || { dump_logs; fail "the first request failed over the thin link: $verdict"; }
case " $used" in *" n3 "*) ;; *) fail "the model-less n3 ran no part: $(cat "$dir/first.out")" ;; esac
[ "$moved" -gt 100000 ] || fail "only $moved bytes reached n3: its weights did not cross the link"
# A lower bound only: the bucket's 20 ms burst aside, those bytes cannot cross faster.
le "$(awk -v n="$need" 'BEGIN { printf "%.2f", n - 0.05 }')" "$lat" ||
  fail "the first request took $lat s, less than the $need s its $moved bytes need at $bps bit/s"
for i in 2 3; do
  d0=$(pstat n3 down)
  infer n1 next-$i
  echo "nnmesh infer #$i (weights held now): $verdict in $lat s; parts on: $used; $(( $(pstat n3 down) - d0 )) bytes to n3"
  [ "$verdict" = ok ] || { dump_logs; fail "request $i failed over the thin link: $verdict"; }
done
shell_batch n1 bw 6
echo "6 shell requests to n1 at once: $batch; last answer after $batch_s s"
echo "proxy: $(pctl n3 stats)"
acc=$(pstat n3 accepted)
[ "$acc" = 1 ] || { grep 'connection' "$dir/n3-impair.log" | tail -5; fail "n3 connected $acc times through the proxy (reconnects on a thin link)"; }
echo "PASS bandwidth_1mbit: every request correct; n3 got its weights over $bps bit/s and kept its one connection ($(since "$t0") s)"
