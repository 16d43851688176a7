#!/bin/sh
# tests/security/forged_advert.sh — attack: forged retained adverts for an existing node (n2)
# of a 3-node example mesh (examples/mesh-up.sh, LeNet-5), each claiming 100x n2's capacity,
# published with mosquitto_pub -r on n2's advert topic:
#   1. signed by a fresh key that no trust file lists (tests/security/forge_advert),
#   2. signed by n3's key: trusted, but for another node,
#   3. carrying n2's key with a corrupted signature (a tampered advert).
# An anonymous client may not publish adverts at all (the example ACL; shown first: the broker
# drops it), so the forgeries go in with the broker's "bridge" account, which may write
# anywhere: the strongest broker-level attacker. Every forgery is carried (a witness
# subscriber receives exactly its bytes), every node ignores it with a log line and a counter
# (adverts.ignored id-conflict / bad-signature), n2 stays in every peer list with its own key
# and its measured capacity (`nnmesh peers`), and requests still give the nnmesh run output.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/dist_lib.sh"
. "$top_srcdir/tests/security/sec_lib.sh"
model=$LENET
x=$SAMPLES/sample-1-pullover.npy
t_all=$(now)
sec_start forged --nodes 3 --keepalive 5 --interval 2
: "${MEMBER_A_PORT:=$BROKER_A_PORT}"   # the nodes' broker (mesh-up.sh without front brokers: the only one)
topic=nnmesh/$MESH/advert/n2
witness "$dir/adverts" "$topic"

# n2's entry as the operator sees it, and its genuine retained advert (the template).
"$NNMESH" peers --config "$dir/shell.conf" --wait 1 >"$dir/peers-before" 2>&1
n2_before=$(awk '$1 == "n2" { print $2, $5 }' "$dir/peers-before")   # fingerprint, conv3x3
[ -n "$n2_before" ] || fail "nnmesh peers does not list n2: $(cat "$dir/peers-before")"
mosquitto_sub -h 127.0.0.1 -p "$BROKER_A_PORT" -t "$topic" -C 1 -N -W 5 >"$dir/real.bin" 2>/dev/null
[ -s "$dir/real.bin" ] || fail "no retained advert of n2"
evil_fp=$("$NNMESH" keygen --id n2 -o "$dir/evil.key" | awk '/^fingerprint:/ { print $2 }')
n3_fp=$(awk '$1 == "n3" { print $2 }' "$dir/peers-before")
"$FORGE" "$dir/mesh.trust" "$dir/real.bin" "$dir/evil.key" "$dir/f1.bin" --scale 100 --expiry-s 6
"$FORGE" "$dir/mesh.trust" "$dir/real.bin" "$dir/n3.key" "$dir/f2.bin" --scale 100 --expiry-s 6
"$FORGE" "$dir/mesh.trust" "$dir/real.bin" "$dir/n2.key" "$dir/f3.bin" --scale 100 --expiry-s 6 --corrupt-signature
ic0=$(stat_sum adverts.ignored.id-conflict)
bs0=$(stat_sum adverts.ignored.bad-signature)
acc0=$(stat n1 adverts.accepted)

# 0. Anonymously: the broker's ACL refuses it (mosquitto drops it silently); not carried.
mosquitto_pub -h 127.0.0.1 -p "$BROKER_A_PORT" -q 1 -r -t "$topic" -f "$dir/f1.bin" 2>/dev/null || true
sleep 1.5
! seen_in "$dir/adverts" "$topic" "$dir/f1.bin" || fail "the broker carried an anonymous client's advert for n2"
echo "PASS anonymous mosquitto_pub -r on $topic: dropped by the broker's ACL (not carried)"

# 1-3. With the bridge account; 1.2 s apart at the nodes, so that each gets its log line
# (refusals are logged once a second per kind and sender id, counted always): each is
# waited for until every node counted it (f1 and f2: an id-conflict at each of the 3 nodes;
# f3: a bad signature at n1 and n3), and only then is the next one 1.2 s away. Measured
# from the broker's delivery instead, a node slow to take f1 could see f2 within the second.
want_ic=$ic0
for f in f1 f2 f3; do
  mosquitto_pub -h 127.0.0.1 -p "$MEMBER_A_PORT" -u bridge -P "$(cat "$dir/bridge.password")" \
    -q 1 -r -t "$topic" -f "$dir/$f.bin" || fail "mosquitto_pub $f.bin failed"
  wait_until 30 seen_in "$dir/adverts" "$topic" "$dir/$f.bin" || fail "the broker did not carry $f.bin"
  if [ $f = f3 ]; then
    wait_until 30 stat_sum_ge adverts.ignored.bad-signature $((bs0 + 2)) || break
  else
    want_ic=$((want_ic + 3))
    wait_until 30 stat_sum_ge adverts.ignored.id-conflict $want_ic || break
  fi
  sleep 1.2
done
echo "attempt: 3 forged retained adverts for n2 published and carried by the broker (the witness received each byte for byte)"
# n1 and n3 count 2 id-conflicts and 1 bad signature; n2 itself sees its id claimed by other
# keys (2 id-conflicts, "this node") and drops the advert with its own key silently.
wait_until 30 stat_sum_ge adverts.ignored.id-conflict $((ic0 + 6)) ||
  { dump_logs; fail "id-conflicts counted: $(stat_sum adverts.ignored.id-conflict), not $((ic0 + 6))"; }
wait_until 30 stat_sum_ge adverts.ignored.bad-signature $((bs0 + 2)) ||
  { dump_logs; fail "bad signatures counted: $(stat_sum adverts.ignored.bad-signature), not $((bs0 + 2))"; }
logged n1 "advert of 'n2' ignored (id-conflict): .*refused the advert signed by key $evil_fp"
logged n3 "advert of 'n2' ignored (id-conflict): .*refused the advert signed by key $n3_fp"
logged n1 "advert of 'n2' ignored (bad-signature)"
logged n2 "advert of 'n2' ignored (id-conflict): .*(this node)"
echo "PASS forgeries ignored: adverts.ignored.id-conflict $ic0 -> $(stat_sum adverts.ignored.id-conflict)," \
     "bad-signature $bs0 -> $(stat_sum adverts.ignored.bad-signature) (sums over $NODES)"

# n2's entry is unchanged: same key, its own measured capacity, never left.
"$NNMESH" peers --config "$dir/shell.conf" --wait 1 >"$dir/peers-after" 2>"$dir/peers-after.err"
n2_after=$(awk '$1 == "n2" { print $2, $5 }' "$dir/peers-after")
[ "${n2_after% *}" = "${n2_before% *}" ] || fail "n2's key changed: '$n2_before' -> '$n2_after'"
awk -v a="${n2_before#* }" -v b="${n2_after#* }" 'BEGIN { exit !(b < 10 * a) }' ||
  fail "n2's conv3x3 capacity jumped from ${n2_before#* } to ${n2_after#* } GFLOP/s"
[ "$(stat n1 membership.leaves)" = 0 ] && [ "$(stat n3 membership.leaves)" = 0 ] ||
  fail "n2 left a peer list meanwhile (membership.leaves of n1 $(stat n1 membership.leaves), n3 $(stat n3 membership.leaves))"
echo "PASS n2 unchanged: key ${n2_after% *}, conv3x3 ${n2_before#* } -> ${n2_after#* } GFLOP/s" \
     "(nnmesh peers), never left; n1 accepted $(( $(stat n1 adverts.accepted) - acc0 )) genuine adverts meanwhile"
still_serving
infer_ok after
shell_ok honest-1 honest-2
echo "forged_advert.sh done in $(since "$t_all") s"
