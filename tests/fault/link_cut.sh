#!/bin/sh
# tests/fault/link_cut.sh — a cut link: on a 3-node example mesh (LeNet-5, policy `equal`,
# [limits] task_timeout 3 s) n3's broker connection goes through tests/tools/impair, which
# cuts it (resets the connection and every new one) for NNM_CUT_S seconds (default 30), then
# heals it. Checks: n1 and n2 drop n3 from their view; requests coordinated by n1 during the
# cut (`nnmesh infer` and shell requests) complete with the single-node output without n3,
# and one addressed to n3 ends in a clear error within its deadline; n3's reconnection
# attempts during the cut (refused by the proxy) are at least 2 and at most what its jittered
# backoff allows (transport/mqtt.c: 200 ms doubling to 10 s, never under half the step);
# after the heal n3 reconnects once, rejoins every view and runs parts again; over the whole
# run no shell request is lost or answered twice. Prints the times and counts.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../dist_lib.sh"
. "$(dirname "$0")/net_lib.sh"
cut_s=${NNM_CUT_S:-30}
t0=$(now)
mesh_up cut --nodes 3 --keepalive 5 --interval 1 --task-timeout 3
"$NNMESH" run "$LENET" -i "$X" -o "$dir/ref" >/dev/null
ref=$dir/ref/output.npy
node_via n3 n3
set_policy equal
infer n1 before
[ "$verdict" = ok ] || fail "the request before the cut failed: $verdict"
case " $used" in *" n3 "*) ;; *) fail "n3 ran no part before the cut: $(cat "$dir/before.out")" ;; esac
echo "== mesh up in $(since "$t0") s; before the cut: nnmesh infer ok in $lat s, parts on: $used"
all_tags=

peers_is() { [ "$(node_stat "$1" peers)" = "$2" ]; }
pctl n3 cut >/dev/null
t_cut=$(now)
# A sealed request to n3 itself, which cannot reach it now: it must end with a clear error.
( t=$(now) rc=0
  "$NNMESH" infer --config "$dir/shell.conf" --model "$LENET" --node n3 -i "$X" -o "$dir/to-n3" \
    --timeout 10 >"$dir/to-n3.out" 2>"$dir/to-n3.err" || rc=$?
  echo "$rc $(since "$t")" >"$dir/to-n3.rc" ) &
to_n3=$!
bg_pids="$bg_pids $to_n3"
wait_until 20 peers_is n1 1 || { dump_logs; fail "n1 still lists n3 20 s into the cut"; }
wait_until 20 peers_is n2 1 || { dump_logs; fail "n2 still lists n3 20 s into the cut"; }
echo "cut: n3 gone from n1's and n2's views after $(since "$t_cut") s"
for i in 1 2; do
  infer n1 during-$i
  echo "during the cut, nnmesh infer #$i coordinated by n1: $verdict in $lat s; parts on: $used"
  [ "$verdict" = ok ] || { dump_logs; fail "a request during the cut failed: $verdict"; }
  case " $used" in *" n3 "*) fail "the trace credits the cut-off n3" ;; esac
done
shell_batch n1 during 4
all_tags="$all_tags $(seq -f 'during-%g' 4 | tr '\n' ' ')"
echo "during the cut, 4 shell requests to n1: $batch; last answer after $batch_s s"
wait_until 30 test -s "$dir/to-n3.rc" || fail "nnmesh infer --node n3 --timeout 10 still runs"
read -r rc el <"$dir/to-n3.rc"
msg=$(grep "nnmesh infer:" "$dir/to-n3.err" | head -1)
[ "$rc" != 0 ] && [ -n "$msg" ] || fail "nnmesh infer --node n3 during the cut: status $rc, $(cat "$dir/to-n3.err")"
echo "during the cut, nnmesh infer --node n3 (deadline 10 s): status $rc after $el s, '$msg'"
left=$(awk -v c="$cut_s" -v e="$(since "$t_cut")" 'BEGIN { r = c - e; printf "%.2f", (r > 0 ? r : 0) }')
sleep "$left"
refused=$(pstat n3 refused)
pctl n3 heal >/dev/null
t_heal=$(now)
cut_len=$(awk -v a="$t_cut" -v b="$t_heal" 'BEGIN { printf "%.1f", b - a }')
bound=$(backoff_bound "$cut_len")
echo "heal after $cut_len s: n3 tried to reconnect $refused time(s) during the cut (its backoff allows at most $bound)"
[ "$refused" -ge 2 ] || fail "n3 made $refused reconnection attempt(s) in a $cut_len s cut"
[ "$refused" -le "$bound" ] || { grep refused "$dir/n3-impair.log" | tail; fail "reconnect storm: $refused attempts in $cut_len s (backoff allows $bound)"; }

wait_until 20 pstat_ge n3 accepted 2 || { dump_logs; fail "n3 did not reconnect within 20 s of the heal"; }
t_rec=$(since "$t_heal")
wait_until 30 mesh_complete || { dump_logs; fail "n3 did not rejoin every view within 30 s of its reconnection"; }
t_join=$(since "$t_heal")
echo "after the heal: n3 reconnected in $t_rec s, every node sees all again after $t_join s"
n3_used=0
for i in 1 2 3; do
  infer n1 after-$i
  echo "after the heal, nnmesh infer #$i: $verdict in $lat s; parts on: $used"
  [ "$verdict" = ok ] || { dump_logs; fail "a request after the heal failed: $verdict"; }
  case " $used" in *" n3 "*) n3_used=$((n3_used + 1)) ;; esac
done
[ $n3_used -gt 0 ] || fail "n3 ran no part in 3 requests after the heal"
shell_batch n1 after 4
all_tags="$all_tags $(seq -f 'after-%g' 4 | tr '\n' ' ')"
echo "after the heal, 4 shell requests to n1: $batch"
res=$(check_results "$ref" $all_tags) || { echo "$res"; fail "over the whole run: lost, duplicated or wrong answers"; }
acc=$(pstat n3 accepted)
echo "proxy: $(pctl n3 stats)"
[ "$acc" = 2 ] || fail "n3 connected $acc times through the proxy (1 before the cut, 1 after the heal expected)"
echo "PASS link_cut: $cut_len s cut; requests meanwhile correct without n3; $refused reconnect attempts (<= $bound);" \
     "n3 back in $t_rec s and used again ($(since "$t0") s)"
