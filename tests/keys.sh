#!/bin/sh
# tests/keys.sh — `nnmesh keygen` and `nnmesh trust add|list|revoke`, then a node started
# with them: `nnmeshd --check-config` refuses a key file chmod 644, `nnmeshd --config`
# starts, logs, re-reads the trust file on SIGHUP and exits 0 on SIGTERM.
. "$(dirname "$0")/lib.sh"
NNMESHD="$top_builddir/apps/nnmeshd"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"

# keygen: mode 0600, public key and fingerprint printed, never overwrites.
"$NNMESH" keygen --id n1 -o n1.key >k1.out || fail "keygen n1"
[ "$(stat -c %a n1.key)" = 600 ] || fail "key file mode is $(stat -c %a n1.key), not 600"
pub1=$(awk '/^public key:/ {print $3}' k1.out)
fp1=$(awk '/^fingerprint:/ {print $2}' k1.out)
[ ${#pub1} -eq 43 ] || fail "public key '$pub1' is not 43 base64url characters"
echo "$fp1" | grep -Eq '^[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}$' || fail "fingerprint '$fp1'"
grep -q "^trust line:  node n1 $pub1$" k1.out || fail "no trust line: $(cat k1.out)"
cp n1.key n1.before
if "$NNMESH" keygen -o n1.key >/dev/null 2>err; then fail "keygen overwrote a key file"; fi
grep -q "refusing to overwrite" err || fail "overwrite message: $(cat err)"
cmp -s n1.key n1.before || fail "the key file changed"
if "$NNMESH" keygen --id 'Bad/Id' >/dev/null 2>err; then fail "keygen took a bad id"; fi
grep -q "not a valid node id" err || fail "bad id message: $(cat err)"
"$NNMESH" keygen -o n2.key >k2.out || fail "keygen n2"
pub2=$(awk '/^public key:/ {print $3}' k2.out)
echo "PASS keygen: $pub1 ($fp1)"

# trust add: creates the file, by public key or from a key file; refuses duplicates.
"$NNMESH" trust add mesh.trust --node n1 "$pub1" >/dev/null || fail "trust add n1"
[ "$(stat -c %a mesh.trust)" = 644 ] || fail "trust file mode $(stat -c %a mesh.trust)"
"$NNMESH" trust add mesh.trust --node n2 --key n2.key >/dev/null || fail "trust add --key"
grep -q "^node n1 $pub1$" mesh.trust || fail "no node line for n1: $(cat mesh.trust)"
grep -q "^node n2 $pub2$" mesh.trust || fail "no node line for n2: $(cat mesh.trust)"
if "$NNMESH" trust add mesh.trust --node n1 "$pub2" 2>err; then fail "added n1 twice"; fi
grep -q "mesh.trust:[0-9]*: node 'n1' is already listed" err || fail "duplicate id message: $(cat err)"
if "$NNMESH" trust add mesh.trust --node n3 "$pub1" 2>err; then fail "added a key twice"; fi
grep -q "is already listed" err || fail "duplicate key message: $(cat err)"
if "$NNMESH" trust add mesh.trust --node n3 AAAA 2>err; then fail "took a bad key"; fi
grep -q "43 base64url" err || fail "bad key message: $(cat err)"
echo "PASS trust add"

# trust list, revoke.
"$NNMESH" trust list mesh.trust >list.out || fail "trust list"
grep -q "^node  *n1  *$fp1 *$pub1$" list.out || fail "list lacks n1: $(cat list.out)"
"$NNMESH" trust revoke mesh.trust "$pub2" >/dev/null || fail "trust revoke"
grep -q "^revoke $pub2$" mesh.trust || fail "no revoke line: $(cat mesh.trust)"
"$NNMESH" trust list mesh.trust >list.out || fail "trust list after revoke"
grep -q "^node  *n2 .*$pub2  (revoked)$" list.out || fail "n2 not shown revoked: $(cat list.out)"
if "$NNMESH" trust revoke mesh.trust "$pub2" 2>err; then fail "revoked twice"; fi
grep -q "already revoked" err || fail "revoke twice message: $(cat err)"
if "$NNMESH" trust add mesh.trust --node n9 "$pub2" 2>err; then fail "re-added a revoked key"; fi
grep -q "is revoked" err || fail "revoked add message: $(cat err)"
echo "PASS trust list / revoke"

# A node with them.
cat >node.conf <<CONF
[node]
id = n1
key_file = n1.key
threads = 1
[mesh]
name = lab
trust_file = mesh.trust
[models]
lenet = $top_srcdir/examples/models/lenet5-fmnist.onnx
CONF
"$NNMESHD" --check-config node.conf >/dev/null || fail "check-config refused a good config"
chmod 644 n1.key
if "$NNMESHD" --check-config node.conf >/dev/null 2>err; then fail "accepted a key file chmod 644"; fi
grep -q "node.conf:3: \[node\] key_file: .*n1.key: key file is readable by others (mode 0644); run chmod 600" err ||
  fail "mode message: $(cat err)"
chmod 600 n1.key
echo "PASS check-config refuses a key file chmod 644: $(cat err)"

"$NNMESHD" --config node.conf 2>node.log &
pid=$!
i=0
until grep -q "waiting for SIGTERM" node.log; do
  i=$((i + 1)); [ $i -lt 100 ] || fail "node did not start: $(cat node.log)"
  kill -0 $pid 2>/dev/null || fail "node exited: $(cat node.log)"
  sleep 0.1
done
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z info node n1: ' node.log ||
  fail "log format: $(cat node.log)"
grep -q "identity $pub1 (fingerprint $fp1)" node.log || fail "identity not logged"
grep -q "model lenet: .*blake2b-256 [0-9a-f]\{64\}" node.log || fail "model hash not logged"
grep -q "capacity (1 thread, [0-9]* ms): conv3x3 [0-9.]*, .*GFLOP/s" node.log || fail "capacity not logged"
kill -HUP $pid
i=0
until grep -q "SIGHUP: trust file .* reloaded" node.log; do
  i=$((i + 1)); [ $i -lt 50 ] || fail "no reload on SIGHUP: $(cat node.log)"
  sleep 0.1
done
echo "not a trust file" >mesh.trust.new && mv mesh.trust.new mesh.trust
kill -HUP $pid
i=0
until grep -q "SIGHUP: .*keeping the trust file loaded before" node.log; do
  i=$((i + 1)); [ $i -lt 50 ] || fail "bad trust file on SIGHUP not reported: $(cat node.log)"
  sleep 0.1
done
kill -TERM $pid
set +e
wait $pid
rc=$?
set -e
pid=
[ $rc -eq 0 ] || fail "nnmeshd exited $rc after SIGTERM: $(cat node.log)"
grep -q "stopping (SIGTERM)" node.log || fail "no stop line: $(cat node.log)"
echo "PASS nnmeshd: start, SIGHUP reload, SIGTERM exit 0"
sed 's/^/  /' node.log
