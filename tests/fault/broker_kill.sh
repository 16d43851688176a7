#!/bin/sh
# tests/fault/broker_kill.sh — process fault: the nodes' broker is killed with SIGKILL
# mid-stream and restarted on the same port, on a 4-node example mesh (examples/mesh-up.sh:
# mosquitto on loopback, persistence false, keepalive 10 s, adverts every 2 s; the shell's
# clients on the front broker bridged to it when mesh-up.sh starts one) running the bundled
# LeNet-5 split with policy `equal`, coordinated by n1. While 8 shell requests are being
# published to n1 (one every 50 ms), the nodes' mosquitto gets SIGKILL (no clean close, no
# wills, nothing kept), stays down NNM_BROKER_DOWN seconds (default 2: the nodes' reconnect
# backoff runs a few attempts) and is started again with the same config file and port.
# Asserted:
#  - the stream recovers: every node reconnects, every node's advert is retained on the new
#    broker again and each node's stats there list all the others; afterwards 5 shell
#    requests and one `nnmesh infer` all succeed with the single-node output (within 1e-5);
#  - each request of the stream has exactly one terminal state: at most one done/failed line
#    in n1's log and at most one answer, and any answer is right (or a clear error); n1 answers
#    every request it took (an answer due while the broker is away waits for the
#    reconnection). Requests published while the nodes' broker was being killed or down never
#    reach n1 (the killed broker keeps nothing, persistence false; a front broker does not
#    queue them for its broken bridge, cleansession true), and answers published before the
#    observer's path (the front's bridge, or mosquitto_sub) was back reach no one: both are
#    counted and printed, not failures;
#  - no reconnect storm: each node opens one session on the restarted broker (its log at
#    log_type notice: "New client connected ... as <node>"; at most 2 allowed), so does the
#    front's bridge (at most 2), no node's session is taken over, and each node's connection
#    attempts (stats: broker.connects + errors.connect_failures) stay within what its backoff
#    allows from the kill to the end of the test (transport/mqtt.c: the wait before retry k
#    is at least half of min(200 ms x 2^(k-1), 10 s)).
#   make check TESTS=tests/fault/broker_kill.sh
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../dist_lib.sh"
x="$SAMPLES/sample-2-trouser.npy"
down=${NNM_BROKER_DOWN:-2}

# backoff_max SECONDS: the most connection attempts the backoff allows in that time after a
# loss (the first retry waits at least 100 ms, each next one at least twice that, up to 5 s).
backoff_max() {
  awk -v T="$1" 'BEGIN { w = 0.1; t = w; n = 0
    while (t <= T) { n++; w = w * 2 > 5 ? 5 : w * 2; t += w }
    print n }'
}
# sessions NODE: sessions NODE opened on the restarted broker.
sessions() { grep -c "New client connected from .* as $1 " "$dir/broker-a-restarted.log" || true; }
port_open() {
  "$SYS_PYTHON" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" 2>/dev/null
}
# The nodes' broker: MEMBER_A_PORT when mesh-up.sh puts a front broker before it, else the
# one broker.
mstat() { node_stat_at "$member" "$@"; }
# member_complete: every node has published stats since it reconnected (broker.connects went
# up: a front's bridge may bring the old retained stats back) listing all the others.
member_complete() {
  for _n in $NODES; do
    _j=$(mosquitto_sub -h 127.0.0.1 -p "$member" -u shell -P "$pw" -t "nnmesh/$MESH/stats/$_n" -C 1 -W 3 2>/dev/null)
    echo "$_j" | "$SYS_PYTHON" -c 'import json, sys
v = json.load(sys.stdin)
sys.exit(0 if v["broker"]["connects"] > int(sys.argv[1]) and v["peers"] == int(sys.argv[2]) else 1)' \
      "$(eval echo \$c0_$_n)" $((n_nodes - 1)) 2>/dev/null || return 1
  done
}

t0=$(now)
mesh_start bkill --nodes 4 --keepalive 10 --interval 2 --task-timeout 2
"$NNMESH" run "$LENET" -i "$x" -o "$dir/ref" >/dev/null
ref=$dir/ref/output.npy
set_policy equal
member=${MEMBER_A_PORT:-$BROKER_A_PORT}
for n in $NODES; do
  eval "c0_$n=$(mstat $n broker.connects) f0_$n=$(mstat $n errors.connect_failures)"
done

echo "== the nodes' broker killed (SIGKILL) mid-stream, down ${down} s, restarted on port $member"
n_before=8
: >"$dir/c.sent"
( for k in $(seq $n_before); do shell_req n1 "c-$k" "$x" 2>/dev/null && echo "c-$k" >>"$dir/c.sent"; sleep 0.05; done ) &
spid=$!
# While requests are queued at n1 or coordinated (each takes ~0.1 s here).
sleep "$(awk -v r="$(rnd 1000)" 'BEGIN { printf "%.3f", 0.1 + 0.3 * r / 1000 }')"
bpid=$(cat "$dir/broker-a.pid")
t_kill=$(now)
kill -KILL "$bpid"
wait_until 10 eval "! kill -0 $bpid 2>/dev/null" || fail "mosquitto (pid $bpid) still there after SIGKILL"
sleep "$down"
# The same config and port; the restarted broker logs into its own file.
started=0
for _ in 1 2 3 4 5; do
  "$MOSQUITTO" -c "$dir/broker-a.conf" >>"$dir/broker-a-restarted.log" 2>&1 &
  echo $! >"$dir/broker-a.pid"
  if wait_until 5 port_open "$member"; then started=1; break; fi
  kill "$(cat "$dir/broker-a.pid")" 2>/dev/null || true
  sleep 0.5
done
[ $started = 1 ] || fail "mosquitto did not restart on port $member: $(tail -5 "$dir/broker-a-restarted.log")"
t_up=$(now)
wait $spid || true
# The nodes reconnect and republish adverts and stats; the front's bridge (or mosquitto_sub)
# reconnects too.
wait_until 30 member_complete || { dump_logs; fail "the mesh did not come back after the broker restart"; }
t_back=$(since "$t_kill")
echo "  broker down $(awk -v a="$t_kill" -v b="$t_up" 'BEGIN { printf "%.2f", b - a }') s; mesh complete again $t_back s after the kill"
# Every node's advert is retained on the new broker.
advs=$(mosquitto_sub -h 127.0.0.1 -p "$member" -u shell -P "$pw" -t "nnmesh/$MESH/advert/+" \
         -C "$n_nodes" -W 5 -F '%t %l' 2>/dev/null | awk '$2 > 0 { sub(".*/", "", $1); print $1 }' | sort | tr '\n' ' ')
[ "$advs" = "$(echo $NODES | tr ' ' '\n' | sort | tr '\n' ' ')" ] ||
  fail "the restarted broker holds the adverts of '$advs' only"
sent=$(cat "$dir/c.sent" | tr '\n' ' ')
# Requests in flight across the kill: any answer right and single; n1 answers every request it
# took (one due while the broker is away waits for the reconnection).
wait_until 40 all_taken_answered $sent || true
miss_node= miss_sub= miss_broker=
for tag in $sent; do
  term=$(grep -c "shell request '$tag' \(done\|failed\)" "$dir/n1.log" || true)
  [ "$term" -le 1 ] || fail "request $tag has $term terminal states in n1's log: $(grep "shell request '$tag'" "$dir/n1.log")"
  has_answer "$tag" && continue
  if [ "$term" = 1 ]; then miss_sub="$miss_sub $tag"
  elif grep -q "shell request '$tag'" "$dir/n1.log"; then miss_node="$miss_node $tag"
  else miss_broker="$miss_broker $tag"; fi
done
[ -z "$miss_node" ] || fail "n1 did not deliver its answer to:$miss_node: $(grep "shell request" "$dir/n1.log" | tail -5)"
res=$(check_results "$ref" $sent) || true
if echo "$res" | grep -q 'DUPLICATED\|WRONG'; then echo "$res"; fail "a duplicated or wrong answer"; fi
waited=$(grep -c "waits for the reconnection" "$dir/n1.log" || true)
echo "  stream: $n_before published, $(echo $sent | wc -w) accepted by the shell's broker" \
     "(mosquitto_pub failed with an error for the others); of those: $(echo "$res" | tail -1 | cut -d' ' -f2-);" \
     "$waited answer(s) waited for n1's reconnection; unanswered:" \
     "${miss_sub:- none} (answered before the observer's path was back),${miss_broker:- none}" \
     "(never reached n1: published while its broker was being killed or down)"

# After the restart: every request succeeds.
sub_ready
tags=
for k in 1 2 3 4 5; do shell_req n1 "c-after-$k" "$x"; tags="$tags c-after-$k"; sleep 0.2; done
for tag in $tags; do wait_until 70 has_answer "$tag" || { dump_logs; fail "$tag unanswered after the restart"; }; done
sleep 0.5
res=$(ALLOW_ERRORS=0 check_results "$ref" $tags) || { echo "$res"; fail "requests after the restart"; }
infer_bg c-infer; wait $infer_pid || true
iv=$(infer_verdict "$dir/c-infer" "$dir/c-infer")
[ "$iv" = ok ] || fail "nnmesh infer after the restart: $iv"
echo "PASS the stream recovered: 5 shell requests $(echo "$res" | tail -1 | cut -d' ' -f2-); nnmesh infer ok;" \
     "parts on: $(trace_nodes c-infer)"

# No reconnect storm, judged once everything has settled.
span=$(since "$t_kill")
limit=$(( $(backoff_max "$span") + 1 ))
figs=
for n in $NODES; do
  s=$(sessions $n)
  c=$(( $(mstat $n broker.connects) - $(eval echo \$c0_$n) ))
  f=$(( $(mstat $n errors.connect_failures) - $(eval echo \$f0_$n) ))
  figs="$figs $n: $s session(s), $c connect(s) + $f refused attempt(s);"
  [ "$s" -ge 1 ] && [ "$s" -le 2 ] || { dump_logs; fail "$n opened $s sessions on the restarted broker (expected 1, at most 2)"; }
  [ "$c" -ge 1 ] && [ "$c" -le 2 ] || fail "$n connected $c times since the kill (expected 1, at most 2)"
  [ $((c + f)) -le "$limit" ] || fail "$n made $((c + f)) connection attempts in $span s (backoff allows $limit): a reconnect storm"
done
takeovers=$(grep -c "Client n[0-9]* already connected, closing old connection" "$dir/broker-a-restarted.log" || true)
[ "$takeovers" = 0 ] || fail "$takeovers node session takeover(s) on the restarted broker: $(grep "closing old" "$dir/broker-a-restarted.log")"
bridges=$(grep -c "New bridge connected from .* as front" "$dir/broker-a-restarted.log" || true)
if [ -n "${MEMBER_A_PORT:-}" ]; then
  [ "$bridges" -ge 1 ] && [ "$bridges" -le 2 ] ||
    fail "the front's bridge opened $bridges sessions on the restarted broker (expected 1, at most 2)"
fi
echo "PASS no reconnect storm over $span s:$figs front bridge: $bridges session(s); no node session taken over" \
     "(backoff allows $limit attempts per node)" \
     "($(since "$t0") s)"
