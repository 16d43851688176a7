#!/bin/sh
# tests/config_errors.sh — `nnmeshd --check-config FILE`: every bad config gets one clear
# line naming the file, the line and the key, and a non-zero exit; a good one prints the
# effective configuration. Also checks that docs/CONFIG.md and --help come from the key
# table (docs/CONFIG.md must equal `nnmeshd --print-config-doc`).
. "$(dirname "$0")/lib.sh"
NNMESHD="$top_builddir/apps/nnmeshd"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

"$NNMESH" keygen --id n1 -o n1.key >keygen.out || fail "keygen failed"
pub=$(awk '/^public key:/ {print $3}' keygen.out)
"$NNMESH" trust add trust --node n1 "$pub" >/dev/null || fail "trust add failed"
cp "$top_srcdir/examples/models/lenet5-fmnist.onnx" lenet.onnx
good='[node]
id = n1
key_file = n1.key
[mesh]
trust_file = trust
[models]
lenet = lenet.onnx'

# expect_error NAME PATTERN CONFIG-TEXT: --check-config exits 1 (not a crash) and its one
# stderr line matches PATTERN.
expect_error() {
  name=$1; pat=$2
  printf '%s\n' "$3" >node.conf
  set +e
  "$NNMESHD" --check-config node.conf >out 2>err
  rc=$?
  set -e
  [ $rc -eq 1 ] || fail "$name: exit status $rc, wanted 1: $(cat err)"
  [ "$(wc -l <err)" -eq 1 ] || fail "$name: wanted one line on stderr: $(cat err)"
  grep -q "Sanitizer\|runtime error" err && fail "$name: sanitizer report: $(cat err)"
  grep -q -- "$pat" err || fail "$name: stderr does not match '$pat': $(cat err)"
  echo "PASS $name: $(cat err)"
}

expect_error "unknown key" "node.conf:5: \[mesh\] trust_fil: unknown key; did you mean 'trust_file'" \
  "$(printf '%s\n' "$good" | sed 's/^trust_file/trust_fil/')"
expect_error "key in the wrong section" "node.conf:9: \[limits\] threads: unknown key; did you mean 'threads' in \[node\]" \
  "$good
[limits]
threads = 2"
expect_error "bad number" "node.conf:9: \[limits\] max_inflight: '1O' is not a whole number" \
  "$good
[limits]
max_inflight = 1O"
expect_error "bad size" "node.conf:9: \[limits\] max_tensor_bytes: '12MB3' is not a size" \
  "$good
[limits]
max_tensor_bytes = 12MB3"
expect_error "out of range" "node.conf:9: \[limits\] chunk_size: 8M is out of range (16K to 1M)" \
  "$good
[limits]
chunk_size = 8M"
expect_error "duration without unit" "node.conf:9: \[broker\] keepalive: '30' is not a duration" \
  "$good
[broker]
keepalive = 30"
expect_error "invalid node id" "node.conf:2: \[node\] id: 'Node_1' is not a valid id" \
  "$(printf '%s\n' "$good" | sed 's/^id = n1/id = Node_1/')"
expect_error "duplicate model ids" "node.conf:8: \[models\] lenet: model id listed twice (first on line 7)" \
  "$good
lenet = lenet.onnx"
expect_error "missing model file" "node.conf:8: \[models\] other: .*/nope.onnx: No such file" \
  "$good
other = nope.onnx"
expect_error "missing key file" "node.conf:3: \[node\] key_file: .*/gone.key: cannot open key file" \
  "$(printf '%s\n' "$good" | sed 's/n1.key/gone.key/')"
cp -p n1.key open.key
chmod 644 open.key
expect_error "key file readable by others" "node.conf:3: \[node\] key_file: .*open.key: key file is readable by others (mode 0644); run chmod 600" \
  "$(printf '%s\n' "$good" | sed 's/n1.key/open.key/')"
: >empty.trust
expect_error "empty trust file" "node.conf:5: \[mesh\] trust_file: .*empty.trust" \
  "$(printf '%s\n' "$good" | sed 's/= trust/= empty.trust/')"
expect_error "missing trust file" "node.conf:5: \[mesh\] trust_file: .*nosuch.trust: cannot open trust file" \
  "$(printf '%s\n' "$good" | sed 's/= trust/= nosuch.trust/')"
cp trust unreadable.trust
chmod 000 unreadable.trust
if [ "$(id -u)" -ne 0 ]; then
  expect_error "unreadable trust file" "node.conf:5: \[mesh\] trust_file: .*Permission denied" \
    "$(printf '%s\n' "$good" | sed 's/= trust/= unreadable.trust/')"
fi
mkdir adir.trust
expect_error "trust file not a regular file" "node.conf:5: \[mesh\] trust_file: .*adir.trust: trust file is not a regular file" \
  "$(printf '%s\n' "$good" | sed 's/= trust/= adir.trust/')"
expect_error "missing required key" "node.conf: \[mesh\] trust_file is required" \
  "$(printf '%s\n' "$good" | grep -v trust_file)"
echo "this is not a model" >junk.onnx
expect_error "not ONNX" "node.conf:8: \[models\] junk: .*junk.onnx" \
  "$good
junk = junk.onnx"
expect_error "bad boolean" "node.conf:9: \[scheduler\] allow_lossy: 'sometimes' is not a boolean (true or false)" \
  "$good
[scheduler]
allow_lossy = sometimes"
expect_error "bad broker URI" "node.conf:9: \[broker\] uris: 'http://b:80' is not a broker URI" \
  "$good
[broker]
uris = tcp://a:1883, http://b:80"

# A good config: exit 0 and the effective configuration, defaults marked.
printf '%s\n[broker]\nuris = tcp://127.0.0.1:1883,\n  tcp://127.0.0.2:1883\n' "$good" >node.conf
"$NNMESHD" --check-config node.conf >out 2>err || fail "good config refused: $(cat err)"
grep -q '^node.conf: OK' out || fail "no OK line: $(cat out)"
grep -q '^id = n1$' out || fail "summary lacks the node id: $(cat out)"
grep -q '^uris = tcp://127.0.0.1:1883, tcp://127.0.0.2:1883$' out || fail "summary lacks the URIs: $(cat out)"
grep -q '^chunk_size = 1M ; default$' out || fail "summary lacks defaults: $(cat out)"
grep -q "^lenet = $work/lenet.onnx$" out || fail "summary lacks the model: $(cat out)"
grep -q 'model lenet: .* nodes, .*blake2b-256' out || fail "model not loaded: $(cat out)"
echo "PASS good config: $(wc -l <out) lines of summary"

# One table for --help and docs/CONFIG.md.
"$NNMESHD" --print-config-doc >config.md
cmp -s config.md "$top_srcdir/docs/CONFIG.md" ||
  fail "docs/CONFIG.md is out of date: run 'apps/nnmeshd --print-config-doc > docs/CONFIG.md'"
"$NNMESHD" --help >help.txt
for key in id key_file threads memory_limit trust_file advert_interval uris keepalive \
           tls_ca_file password_file max_frame_bytes chunk_size max_inflight max_tensor_bytes \
           allow_lossy allow_shell_ingress allow_plaintext_control; do
  grep -q "^      $key (" help.txt || fail "--help lacks key $key"
  grep -q "^| \`$key\` |" config.md || fail "CONFIG.md lacks key $key"
done
grep -q "NOT WIRED YET\|not wired yet\|Requests are" help.txt || fail "--help does not say what is not wired yet"
echo "PASS docs/CONFIG.md and --help match the key table"
