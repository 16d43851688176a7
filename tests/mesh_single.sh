#!/bin/sh
# tests/mesh_single.sh — the 5-node single-broker example mesh (examples/mesh-up.sh, ACLs and
# passwords included), keepalive 2 s: all 5 nodes appear in `nnmesh peers` with measured
# capacities within 5 s; kill -9 of one: gone within 1.5 x keepalive; SIGTERM of another:
# gone at once (its advert cleared, not expired); restarted, it is back with a higher epoch.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"
ka=2
bash "$top_srcdir/examples/mesh-up.sh" --nodes 5 --keepalive $ka --interval 1 "$work" ||
  fail "mesh-up.sh failed"
t=$(now)
wait_until 5 all_present n1 n2 n3 n4 n5 || { dump_logs; fail "not all 5 nodes in nnmesh peers within 5 s: $(peers)"; }
echo "PASS 5 nodes with capacities in nnmesh peers after $(since "$t") s"
peers | sed 's/^/  /'

pid3=$(cat "$work/n3.pid")
t=$(now)
kill -9 "$pid3"
wait_until 10 absent n3 || fail "n3 still listed 10 s after kill -9"
el=$(since "$t")
le "$el" "$(awk -v k=$ka 'BEGIN { print 1.5 * k }')" || fail "n3 gone only after $el s (keepalive $ka s)"
echo "PASS kill -9 n3: gone after $el s (1.5 x keepalive = $(awk -v k=$ka 'BEGIN { print 1.5 * k }') s)"

line=$(peer_line n4)
epoch=$(echo "$line" | awk '{ print $3 }')
[ -n "$epoch" ] || fail "n4 not listed"
t=$(now)
kill -TERM "$(cat "$work/n4.pid")"
wait_until 10 absent n4 || fail "n4 still listed 10 s after SIGTERM"
el=$(since "$t")
# "At once": within one poll of the table (each `nnmesh peers` connects and listens 0.5 s).
le "$el" 2 || fail "n4 gone only after $el s after SIGTERM"
wait_until 30 grep -q "peer n4 left (advert cleared" "$work/n1.log" || fail "n1 did not log n4 leaving: $(tail "$work/n1.log")"
grep -q "left the mesh (advert cleared)" "$work/n4.log" || fail "n4 did not log its leave"
echo "PASS SIGTERM n4: gone after $el s; n1 logged: $(grep 'peer n4 left' "$work/n1.log" | head -1 | cut -d' ' -f5-)"

"$NNMESHD" --config "$work/n4.conf" 2>>"$work/n4.log" &
echo $! >"$work/n4.pid"
wait_until 30 all_present n4 || fail "n4 did not come back"
epoch2=$(peer_line n4 | awk '{ print $3 }')
[ "$epoch2" -gt "$epoch" ] || fail "restarted n4 has epoch $epoch2, not above $epoch"
wait_until 30 grep -q "peer n4 rejoined" "$work/n1.log" || fail "n1 did not log n4 rejoining"
echo "PASS restarted n4: epoch $epoch -> $epoch2"
# The peers kept running: no advert was refused on the way.
for n in n1 n2 n5; do
  ! grep -q "ignored (" "$work/$n.log" || fail "$n refused adverts: $(grep 'ignored (' "$work/$n.log")"
done
echo "PASS no advert refused by the surviving nodes"
