#!/bin/sh
# tests/fault/bridge_cut.sh — a cut between two brokers: a bridged 3-node example mesh
# (mesh-up.sh --bridged: n1 and n3 on broker a, n2 on broker b; LeNet-5, policy `equal`,
# [limits] task_timeout 3 s) whose bridge (broker b's connection to a, from the generated
# broker-b.conf) goes through tests/tools/impair. The proxy cuts it for NNM_BRIDGE_CUT_S
# seconds (default 15; longer when the halves take longer to drop each other), then heals
# it. Checks: shell requests in flight at the cut complete or end in a clear error, none
# lost or duplicated; each half drops the other from its view
# (advert expiry); during the cut requests on each side (`nnmesh infer` and shell requests,
# through that side's broker) complete with the single-node output using only that side's
# nodes; mosquitto's bridge retries during the cut stay within its restart_timeout (1 s
# at least between attempts); after the heal the bridge reconnects, both halves see each other
# again and n2 runs parts for n1 again. Prints the times and counts.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../dist_lib.sh"
. "$(dirname "$0")/net_lib.sh"
cut_s=${NNM_BRIDGE_CUT_S:-15}
t0=$(now)
mesh_up bridge --bridged --nodes 3 --keepalive 5 --interval 1 --task-timeout 3
. "$dir/mesh.env"
[ "$(grep ' b$' "$dir/nodes" | cut -d' ' -f1)" = n2 ] || fail "mesh-up.sh put other nodes than n2 on broker b: $(cat "$dir/nodes")"

# Broker b (and n2 with it, so that it does not fall back to a) restarted with its bridge
# through the proxy.
for f in n2 broker-b; do
  p=$(cat "$dir/$f.pid")
  kill -TERM "$p"
  wait_until 15 eval "! kill -0 $p 2>/dev/null" || fail "$f (pid $p) did not stop"
done
# broker-b.conf ends with the bridge section (examples/bridge.conf.in): its one address line.
to=$(sed -n 's|^address 127\.0\.0\.1:\([0-9]*\)$|\1|p' "$dir/broker-b.conf")
[ "$(echo $to | wc -w)" = 1 ] || fail "not one bridge address in broker-b.conf: '$to'"
proxy_start bridge "$to"
sed -i "s|^address 127.0.0.1:$to\$|address 127.0.0.1:$proxy_port|" "$dir/broker-b.conf"
"$MOSQUITTO" -c "$dir/broker-b.conf" >>"$dir/broker-b.log" 2>&1 &
echo $! >"$dir/broker-b.pid"
wait_until 10 pstat_ge bridge accepted 1 || fail "broker b did not connect its bridge to the proxy: $(tail -5 "$dir/broker-b.log")"
"$NNMESHD" --config "$dir/n2.conf" 2>>"$dir/n2.log" &
echo $! >"$dir/n2.pid"
wait_until 40 mesh_complete || { dump_logs; fail "the nodes did not all see each other within 40 s (bridge through the proxy)"; }

# Side b: its own result subscriber (in $dir/b/results) and an operator config on broker b.
mkdir -p "$dir/b"
mosquitto_sub -h 127.0.0.1 -p "$BROKER_B_PORT" -u shell -P "$pw" -q 1 \
  -t "nnmesh/$MESH/res/+/+" -t "nnmesh/$MESH/req/ready/+" -F '%t %x' >>"$dir/b/results" 2>>"$dir/b/sub.err" &
bg_pids="$bg_pids $!"
(BROKER_A_PORT=$BROKER_B_PORT dir=$dir/b; sub_ready)
sed "s|^uris = .*|uris = tcp://127.0.0.1:$BROKER_B_PORT|" "$dir/shell.conf" >"$dir/shell-b.conf"
on_b() { (BROKER_A_PORT=$BROKER_B_PORT dir=$dir/b; "$@"); }   # CMD...: against broker b

"$NNMESH" run "$LENET" -i "$X" -o "$dir/ref" >/dev/null
ref=$dir/ref/output.npy
set_policy equal
infer n1 before
[ "$verdict" = ok ] || fail "the request before the cut failed: $verdict"
case " $used" in *" n2 "*) ;; *) fail "n2 ran no part for n1 before the cut: $(cat "$dir/before.out")" ;; esac
echo "== mesh up in $(since "$t0") s, bridge through the proxy; before the cut: nnmesh infer ok in $lat s, parts on: $used"

peers_is() { [ "$(node_stat "$1" peers)" = "$2" ]; }
pctl bridge cut >/dev/null
t_cut=$(now)
# Requests in flight at the cut: n1 may still plan with n2 and re-run its parts.
shell_batch n1 at-cut 3
echo "at the cut, 3 shell requests to n1: $batch; last answer after $batch_s s"
wait_until 30 peers_is n1 1 || { dump_logs; fail "n1 still lists n2 30 s into the cut"; }
wait_until 30 on_b peers_is n2 0 || { dump_logs; fail "n2 still lists n1, n3 30 s into the cut"; }
echo "cut: the halves dropped each other from their views after $(since "$t_cut") s"
infer n1 during-a
echo "during the cut, side a: nnmesh infer coordinated by n1: $verdict in $lat s; parts on: $used"
[ "$verdict" = ok ] || { dump_logs; fail "side a, during the cut: $verdict"; }
case " $used" in *" n2 "*) fail "side a's trace credits n2 during the cut" ;; esac
infer n2 during-b "$dir/shell-b.conf"
echo "during the cut, side b: nnmesh infer coordinated by n2 (through broker b): $verdict in $lat s; parts on: $used"
[ "$verdict" = ok ] || { dump_logs; fail "side b, during the cut: $verdict"; }
[ "$used" = "n2 " ] || fail "side b's trace names other nodes than n2 during the cut: $used"
shell_batch n1 during-a 3
echo "during the cut, side a: 3 shell requests to n1: $batch"
out=$(on_b shell_batch n2 during-b 3; echo "batch $batch") || fail "side b: shell requests during the cut"
echo "during the cut, side b: 3 shell requests to n2 on broker b: ${out##*batch }"
left=$(awk -v c="$cut_s" -v e="$(since "$t_cut")" 'BEGIN { r = c - e; printf "%.2f", (r > 0 ? r : 0) }')
sleep "$left"
refused=$(pstat bridge refused)
pctl bridge heal >/dev/null
t_heal=$(now)
cut_len=$(awk -v a="$t_cut" -v b="$t_heal" 'BEGIN { printf "%.1f", b - a }')
bound=$(awk -v t="$cut_len" 'BEGIN { printf "%d", t / 1 + 2 }')
echo "heal after $cut_len s: the bridge tried to reconnect $refused time(s) during the cut (restart_timeout 1 2 allows at most $bound)"
[ "$refused" -ge 1 ] || fail "the bridge made no reconnection attempt in a $cut_len s cut"
[ "$refused" -le "$bound" ] || fail "bridge reconnect storm: $refused attempts in $cut_len s"

wait_until 20 pstat_ge bridge accepted 2 || { dump_logs; fail "the bridge did not reconnect within 20 s of the heal"; }
t_rec=$(since "$t_heal")
wait_until 30 mesh_complete || { dump_logs; fail "the halves did not see each other again within 30 s of the heal"; }
wait_until 10 on_b peers_is n2 2 || fail "n2's stats on broker b do not list both other nodes after the heal"
t_join=$(since "$t_heal")
echo "after the heal: bridge reconnected in $t_rec s; every node sees all again after $t_join s"
n2_used=0
for i in 1 2 3; do
  infer n1 after-$i
  echo "after the heal, nnmesh infer #$i coordinated by n1: $verdict in $lat s; parts on: $used"
  [ "$verdict" = ok ] || { dump_logs; fail "a request after the heal failed: $verdict"; }
  case " $used" in *" n2 "*) n2_used=$((n2_used + 1)) ;; esac
done
[ $n2_used -gt 0 ] || fail "n2 ran no part for n1 in 3 requests after the heal"
infer n2 after-b "$dir/shell-b.conf"
echo "after the heal, nnmesh infer coordinated by n2: $verdict in $lat s; parts on: $used"
[ "$verdict" = ok ] || fail "a request to n2 after the heal failed: $verdict"
shell_batch n1 after 3
echo "after the heal, 3 shell requests to n1: $batch"
tags_a="$(seq -f 'at-cut-%g' 3 | tr '\n' ' ') $(seq -f 'during-a-%g' 3 | tr '\n' ' ') $(seq -f 'after-%g' 3 | tr '\n' ' ')"
res=$(check_results "$ref" $tags_a) || { echo "$res"; fail "side a over the whole run: lost, duplicated or wrong answers"; }
res=$(on_b check_results "$ref" during-b-1 during-b-2 during-b-3) || { echo "$res"; fail "side b over the whole run"; }
acc=$(pstat bridge accepted)
echo "proxy: $(pctl bridge stats)"
[ "$acc" = 2 ] || fail "the bridge connected $acc times through the proxy (2 expected: before the cut and after the heal)"
echo "PASS bridge_cut: $cut_len s bridge cut; both sides served meanwhile; $refused bridge retries (<= $bound);" \
     "halves rejoined $t_join s after the heal ($(since "$t0") s)"
