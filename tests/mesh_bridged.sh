#!/bin/sh
# tests/mesh_bridged.sh — the 2-broker bridged example mesh (examples/mesh-up.sh --bridged):
# 5 nodes, odd ones on broker a, even ones on broker b, keepalive 2 s. All appear in
# `nnmesh peers` within 5 s, and nodes on each side list the nodes of the other in their
# stats; kill -9 of a node on b: gone within 1.5 x keepalive as seen through a; SIGTERM of a
# node on a: a clean leave (advert cleared, no expiry) seen on both brokers; restarted, it is
# back with a higher epoch on both sides.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"
ka=2
bash "$top_srcdir/examples/mesh-up.sh" --nodes 5 --bridged --keepalive $ka --interval 1 "$work" ||
  fail "mesh-up.sh --bridged failed"
. "$work/mesh.env"
t=$(now)
wait_until 5 all_present n1 n2 n3 n4 n5 || { dump_logs; fail "not all 5 nodes listed within 5 s: $(peers)"; }
echo "PASS 5 nodes on two bridged brokers in nnmesh peers after $(since "$t") s"

# Each side sees the other: the retained stats of n1 (broker a) and n2 (broker b), read on
# the other broker.
sees_all() {  # node port
  mosquitto_sub -h 127.0.0.1 -p "$2" -t "nnmesh/$MESH/stats/$1" -C 1 -W 3 2>/dev/null |
    grep -q "\"peers\":4,"
}
wait_until 30 sees_all n1 "$BROKER_B_PORT" || fail "n1 (broker a) does not list 4 peers"
wait_until 30 sees_all n2 "$BROKER_A_PORT" || fail "n2 (broker b) does not list 4 peers"
grep -q "peer n2 joined" "$work/n1.log" && grep -q "peer n1 joined" "$work/n2.log" ||
  fail "no cross-broker join logged"
echo "PASS n1 on broker a and n2 on broker b each list the 4 others"

t=$(now)
kill -9 "$(cat "$work/n4.pid")"          # on broker b; the table is read through a
wait_until 10 absent n4 || fail "n4 still listed 10 s after kill -9"
el=$(since "$t")
le "$el" "$(awk -v k=$ka 'BEGIN { print 1.5 * k }')" || fail "n4 gone only after $el s"
wait_until 30 grep -q "peer n4 left" "$work/n1.log" || fail "n1 (broker a) did not see n4 leave"
echo "PASS kill -9 n4 (broker b): gone on broker a after $el s"

epoch=$(peer_line n3 | awk '{ print $3 }')
t=$(now)
kill -TERM "$(cat "$work/n3.pid")"       # on broker a
wait_until 30 absent n3 || fail "n3 still listed 30 s after SIGTERM"
el=$(since "$t")
# A clean leave, not an expiry: both sides log the cleared advert (how fast the operator's
# table shows it depends on the machine's load, so the elapsed time is printed, not judged).
for n in n1 n2; do
  wait_until 30 grep -q "peer n3 left (advert cleared" "$work/$n.log" || fail "$n did not see n3 leave cleanly"
  ! grep -q "peer n3 expired" "$work/$n.log" || fail "$n saw n3 expire instead of leaving"
done
echo "PASS SIGTERM n3 (broker a): gone after $el s, seen on broker b"

"$NNMESHD" --config "$work/n3.conf" 2>>"$work/n3.log" &
echo $! >"$work/n3.pid"
wait_until 30 all_present n3 || fail "n3 did not come back"
epoch2=$(peer_line n3 | awk '{ print $3 }')
[ "$epoch2" -gt "$epoch" ] || fail "restarted n3 has epoch $epoch2, not above $epoch"
wait_until 30 grep -q "peer n3 rejoined.*epoch $epoch2 (was $epoch)" "$work/n2.log" ||
  fail "n2 (broker b) did not see n3 rejoin with epoch $epoch2"
echo "PASS restarted n3: epoch $epoch -> $epoch2, seen on broker b"
