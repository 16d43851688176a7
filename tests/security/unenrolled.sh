#!/bin/sh
# tests/security/unenrolled.sh — attack: a node and a client whose keys are not in the mesh
# trust file try to join and to use a 3-node example mesh (examples/mesh-up.sh, LeNet-5).
#   - "intruder": a real nnmeshd with a fresh key (nnmesh keygen), a config like the
#     generated ones, a trust file of its own that lists the mesh's nodes and itself, and a
#     broker account of its own (so the broker is no obstacle). The broker carries its signed
#     adverts (a witness subscriber sees them); every node refuses
#     them (log "advert of 'intruder' ignored (untrusted)", stats adverts.ignored.untrusted)
#     and never lists it as a peer; its link hellos are refused (stats drops.untrusted).
#   - "mallory": a sealed `nnmesh infer` from an unenrolled client identity fails with a clear
#     error naming the likely cause (the node's trust file does not list it).
#   - the mesh keeps serving: every node alive with its 2 peers, sealed and shell requests
#     give the nnmesh run output.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/dist_lib.sh"
. "$top_srcdir/tests/security/sec_lib.sh"
model=$LENET
x=$SAMPLES/sample-1-pullover.npy
t_all=$(now)
sec_start unenrolled --nodes 3 --keepalive 5 --interval 2
infer_ok before

# The intruder: a fresh key, a config made like the generated ones, a trust file of its own,
# and (the strongest case) a broker account of its own: user "intruder" added to the nodes'
# broker (mosquitto re-reads its password file on SIGHUP), so that the broker carries its
# adverts and only the trust file stands in its way.
fp=$("$NNMESH" keygen --id intruder -o "$dir/intruder.key" | awk '/^fingerprint:/ { print $2 }')
cp "$dir/mesh.trust" "$dir/intruder.trust"
"$NNMESH" trust add "$dir/intruder.trust" --node intruder --key "$dir/intruder.key" >/dev/null
(umask 077; "$SYS_PYTHON" -c 'import secrets; print(secrets.token_urlsafe(18))' >"$dir/intruder.password")
mosquitto_passwd -b "$dir/passwd" intruder "$(cat "$dir/intruder.password")"
kill -HUP "$(cat "$dir/broker-a.pid")"
sed -e 's/^id = n1$/id = intruder/' -e 's/^key_file = n1.key$/key_file = intruder.key/' \
    -e 's/^trust_file = mesh.trust$/trust_file = intruder.trust/' \
    -e 's/^username = n1$/username = intruder/' -e 's/^password_file = n1.password$/password_file = intruder.password/' \
    "$dir/n1.conf" >"$dir/intruder.conf"
! grep -v '^#' "$dir/intruder.conf" | grep -q 'n1' || fail "intruder.conf still names n1: $(cat "$dir/intruder.conf")"
grep -q '^id = intruder$' "$dir/intruder.conf" && grep -q '^trust_file = intruder.trust$' "$dir/intruder.conf" ||
  fail "n1.conf does not look as expected: $(cat "$dir/n1.conf")"
witness "$dir/adverts" "nnmesh/$MESH/advert/intruder"
u0=$(stat_sum adverts.ignored.untrusted)
h0=$(stat_sum drops.untrusted)
"$NNMESHD" --config "$dir/intruder.conf" 2>>"$dir/intruder.log" &
intruder=$!
bg_pids="$bg_pids $intruder"
# It runs, trusts the mesh's nodes and sees them: its side of the join is real.
wait_until 30 grep -q "peer n1 joined" "$dir/intruder.log" ||
  { dump_logs; fail "the intruder did not even see n1: $(tail "$dir/intruder.log")"; }
wait_until 30 grep -q "^nnmesh/$MESH/advert/intruder " "$dir/adverts" || fail "the broker did not carry the intruder's advert"
echo "attempt: intruder (key $fp, not in mesh.trust) runs, sees $(grep -c 'joined' "$dir/intruder.log") peers;" \
     "the broker carried $(grep -c "^nnmesh/$MESH/advert/intruder " "$dir/adverts") advert(s) of it"

# Every node refuses its adverts and its hellos, and never lists it.
for n in $NODES; do
  wait_until 30 grep -q "advert of 'intruder' ignored (untrusted)" "$dir/$n.log" || { dump_logs; fail "$n did not refuse the intruder's advert"; }
done
logged n1 "advert of 'intruder' ignored (untrusted)"
wait_until 30 stat_sum_ge drops.untrusted $((h0 + 1)) || { dump_logs; fail "no node counted a refused hello (drops.untrusted)"; }
wait_until 30 stat_sum_ge adverts.ignored.untrusted $((u0 + 3)) || fail "the refused adverts are not counted"
for n in $NODES; do
  ids=$(node_stat "$n" peer_ids)
  case $ids in *intruder*) fail "$n lists the intruder as a peer: $ids" ;; esac
done
echo "PASS intruder refused: adverts.ignored.untrusted $u0 -> $(stat_sum adverts.ignored.untrusted)," \
     "drops.untrusted (refused hellos) $h0 -> $(stat_sum drops.untrusted) (sums over $NODES);" \
     "peer lists: $(for n in $NODES; do printf '%s=%s ' "$n" "$(node_stat "$n" peer_ids | tr -d "[]' ")"; done)"
kill -0 $intruder || fail "the intruder process died (its own problem, but unexpected)"

# Mallory: a sealed request from an identity the mesh does not know.
"$NNMESH" keygen --id mallory -o "$dir/mallory.key" >/dev/null
sed -e 's/^id = shell$/id = mallory/' -e 's/^key_file = shell.key$/key_file = mallory.key/' \
    "$dir/shell.conf" >"$dir/mallory.conf"
h1=$(stat n1 drops.untrusted)
t=$(now)
if "$NNMESH" infer --config "$dir/mallory.conf" --model "$model" --node n1 -i "$x" --timeout 5 \
     >"$dir/mallory.out" 2>"$dir/mallory.err"; then
  fail "nnmesh infer from the unenrolled mallory succeeded: $(cat "$dir/mallory.out")"
fi
grep -q "does its trust file list this node 'mallory'" "$dir/mallory.err" ||
  fail "mallory's error does not say why: $(cat "$dir/mallory.err")"
wait_until 10 stat_ge n1 drops.untrusted $((h1 + 1)) || fail "n1 did not count mallory's refused hello"
echo "PASS mallory refused after $(since "$t") s: $(cat "$dir/mallory.err");" \
     "n1 drops.untrusted $h1 -> $(stat n1 drops.untrusted)"
[ ! -d "$dir/mallory" ] || fail "mallory got outputs"

# The mesh keeps serving, the intruder still knocking.
still_serving
infer_ok after
shell_ok honest-1 honest-2
kill $intruder
echo "unenrolled.sh done in $(since "$t_all") s"
