#!/bin/sh
# tests/apps_login.sh — the client commands log in to a broker that refuses anonymous
# clients, with the config's [broker] username and password_file, as nnmeshd does: on the
# example mesh's nodes' broker (allow_anonymous false, an account per user), `nnmesh peers`
# and `nnmesh infer` as user "shell" work; with a wrong password each fails with a clear
# message naming the refusal instead of hanging. Eight infers of one identity started at once
# take turns and all answer right.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dist_lib.sh"
mesh_start login --nodes 2
[ -n "${MEMBER_A_PORT:-}" ] || fail "mesh.env has no MEMBER_A_PORT (nodes' broker)"
x="$SAMPLES/sample-2-trouser.npy"
member_conf() {  # FILE PASSWORD-FILE
  sed -e "s|^uris = .*|uris = tcp://127.0.0.1:$MEMBER_A_PORT|" "$dir/shell.conf" >"$1"
  printf 'username = shell\npassword_file = %s\n' "$2" >>"$1"
}
member_conf "$dir/login.conf" "$dir/shell.password"
out=$("$NNMESH" peers --config "$dir/login.conf" --wait 1 2>&1) || fail "nnmesh peers as shell: $out"
echo "$out" | grep -q "^n1 " && echo "$out" | grep -q "^n2 " || fail "peers did not list n1 and n2: $out"
echo "PASS nnmesh peers logged in as shell on the nodes' broker and listed n1, n2"
"$NNMESH" run "$LENET" -i "$x" -o "$dir/ref" >/dev/null || fail "nnmesh run failed"
"$NNMESH" infer --config "$dir/login.conf" --model "$LENET" --node n1 -i "$x" -o "$dir/out" \
  >"$dir/infer.out" 2>&1 || fail "nnmesh infer as shell: $(cat "$dir/infer.out")"
"$SYS_PYTHON" "$top_srcdir/scripts/npy_compare.py" --rtol 1e-5 "$dir/out/output.npy" "$dir/ref/output.npy" \
  >/dev/null || fail "nnmesh infer output differs from nnmesh run"
echo "PASS nnmesh infer logged in as shell: output equal to nnmesh run"

# Eight `nnmesh infer` of one config at once, to one node: a node keeps one session per peer
# id, so they take turns on the key file's lock; each answer must be right. (Before the lock,
# each new client's handshake replaced the node's session with the others, and one of eight
# failed with "no answer from 'n1' ... is it running?".)
t=$(now)
pids=
for k in 1 2 3 4 5 6 7 8; do
  ( nd=n1
    "$NNMESH" infer --config "$dir/login.conf" --model "$LENET" --node "$nd" -i "$x" \
      -o "$dir/par$k" --timeout 60 >"$dir/par$k.out" 2>&1; echo $? >"$dir/par$k.rc" ) &
  pids="$pids $!"
done
for p in $pids; do wait "$p" || true; done   # not a bare wait: the mesh runs in the background too
waited=0
for k in 1 2 3 4 5 6 7 8; do
  [ "$(cat "$dir/par$k.rc")" = 0 ] || fail "concurrent nnmesh infer $k: $(cat "$dir/par$k.out")"
  "$SYS_PYTHON" "$top_srcdir/scripts/npy_compare.py" --rtol 1e-5 "$dir/par$k/output.npy" \
    "$dir/ref/output.npy" >/dev/null || fail "concurrent nnmesh infer $k: output differs from nnmesh run"
  if grep -q "waiting for another nnmesh infer" "$dir/par$k.out"; then waited=$((waited + 1)); fi
done
echo "PASS 8 nnmesh infer of one identity at once: 8 right answers in $(since "$t") s ($waited waited for the identity's lock)"

printf 'not-the-password\n' >"$dir/wrong.password"
chmod 600 "$dir/wrong.password"
member_conf "$dir/wrong.conf" "$dir/wrong.password"
t=$(now)
if "$NNMESH" infer --config "$dir/wrong.conf" --model "$LENET" --node n1 -i "$x" --timeout 5 \
     >"$dir/wrong.out" 2>&1; then
  fail "nnmesh infer with a wrong password succeeded"
fi
cat "$dir/wrong.out"
grep -q "reason 135: Not authorized" "$dir/wrong.out" ||
  fail "the wrong-password failure does not say the broker refused: $(cat "$dir/wrong.out")"
echo "PASS a wrong password fails clearly after $(since "$t") s"
