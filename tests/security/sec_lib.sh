# tests/security/sec_lib.sh — shared by the attack tests of tests/security/ (sourced after
# tests/lib.sh and tests/dist_lib.sh, which start the example meshes and stop them by pid).
# Each attack test: an example mesh (examples/mesh-up.sh), the attack done with the tools an
# outsider has (mosquitto_pub/sub on the example broker, a key of its own), then the proof:
# the broker carried the attack (a witness subscriber saw it), the nodes logged and counted it
# (their retained stats JSON), they keep serving, and honest requests give the single-node
# output (nnmesh run).
FORGE="$top_builddir/tests/security/forge_advert"
FRAMES="$SYS_PYTHON $top_srcdir/tests/security/sec_frames.py"
[ -x "$FORGE" ] || fail "$FORGE is not built (make check builds it)"

# sec_start NAME MESH-UP-ARGS...: mesh_start (dist_lib.sh), then the reference output of the
# first model for $x (set model and x before) in $ref.
sec_start() {
  _t=$(now)
  mesh_start "$@"
  "$NNMESH" run "$model" -i "$x" -o "$dir/ref" >/dev/null || fail "nnmesh run failed"
  ref=$dir/ref/output.npy
  echo "== mesh $MESH: nodes $NODES up in $(since "$_t") s (logs in $dir)"
}

# stat NODE KEY.PATH: a value of NODE's retained stats (node_stat of dist_lib.sh), 0 when the
# stats could not be read (so that arithmetic on it never breaks).
stat() { _v=$(node_stat "$1" "$2"); echo "${_v:-0}"; }
# stat_sum KEY.PATH: the sum over every node.
stat_sum() {
  _s=0
  for _n in $NODES; do _s=$((_s + $(stat "$_n" "$1"))); done
  echo $_s
}
stat_ge() { [ "$(stat "$1" "$2")" -ge "$3" ]; }
stat_sum_ge() { [ "$(stat_sum "$1")" -ge "$2" ]; }

# witness FILE TOPIC...: a mosquitto_sub of the attacker's kind (anonymous: the example ACL
# lets anyone read nnmesh/#) writing "topic hexpayload" lines to FILE; returns once it has
# received a probe it published itself on an inbox no node has.
witness() {
  _wf=$1
  shift
  : >"$_wf"
  _args=
  for _tp in "$@"; do _args="$_args -t $_tp"; done
  _probe=nnmesh/$MESH/inbox/witness-$(date +%s%N)
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_A_PORT" -q 1 $_args -t "$_probe" -F '%t %x' \
    >>"$_wf" 2>>"$dir/witness.err" &
  bg_pids="$bg_pids $!"
  _i=0
  until grep -q "^$_probe " "$_wf"; do
    _i=$((_i + 1))
    [ $_i -le 100 ] || fail "the witness subscriber receives nothing: $(cat "$dir/witness.err")"
    mosquitto_pub -h 127.0.0.1 -p "$BROKER_A_PORT" -t "$_probe" -m x 2>/dev/null || true
    sleep 0.1
  done
}
# witness_sync FILE: waits until the witness writing FILE received a probe published now on
# an inbox no node has: the broker queues it behind everything published before, so the
# witness has then written all of that (a fixed sleep may stop short on a slow machine).
witness_sync() {
  _sp=nnmesh/$MESH/inbox/witness-sync-$(date +%s%N)
  _i=0
  until grep -q "^$_sp " "$1"; do
    _i=$((_i + 1))
    [ $_i -le 300 ] || fail "the witness subscriber did not receive a probe within 30 s"
    [ $((_i % 10)) -ne 1 ] ||
      mosquitto_pub -h 127.0.0.1 -p "$BROKER_A_PORT" -q 1 -t "$_sp" -m x 2>/dev/null || true
    sleep 0.1
  done
}
# seen_in FILE TOPIC BINFILE: the witness FILE received exactly these bytes on TOPIC.
seen_in() {
  grep -q "^$2 $(od -An -v -tx1 "$3" | tr -d ' \n')\$" "$1"
}

# infer_ok LABEL [NODE]: a sealed request (nnmesh infer, the operator's enrolled identity)
# coordinated by NODE (n1); its output must equal nnmesh run's within 1e-5. The trace is left
# in $dir/LABEL.out; prints a PASS line with the nodes that ran parts.
infer_ok() {
  _o=$("$NNMESH" infer --config "$dir/shell.conf" --model "$model" --node "${2:-n1}" -i "$x" \
       -o "$dir/$1" --timeout 120 2>"$dir/$1.err") ||
    { dump_logs; fail "$1: nnmesh infer failed: $(cat "$dir/$1.err")"; }
  echo "$_o" >"$dir/$1.out"
  _c=$("$SYS_PYTHON" "$top_srcdir/scripts/npy_compare.py" "$dir/$1/output.npy" "$ref" --rtol 1e-5) ||
    fail "$1: nnmesh infer output differs from nnmesh run: $_c"
  echo "PASS $1: nnmesh infer via ${2:-n1} = nnmesh run ($_c); parts on:" \
       "$(trace_nodes "$dir/$1.out" | sort | uniq -c | awk '{ printf "%s%s x%s", s, $2, $1; s = ", " }')"
}
# trace_nodes FILE: the node of every trace line of an nnmesh infer output.
trace_nodes() { awk '/^trace/ { t = 1; next } t && $2 == "nodes" { print $1 }' "$1"; }

# shell_ok TAG...: shell requests (req/any) each answered exactly once with the right output.
shell_ok() {
  for _tag in "$@"; do
    shell_req any "$_tag" "$x"
    wait_until 120 has_answer "$_tag" || { dump_logs; fail "no answer to shell request $_tag"; }
  done
  sleep 0.5   # room for a duplicate to show
  _r=$(ALLOW_ERRORS=0 check_results "$ref" "$@") || { echo "$_r"; dump_logs; fail "shell requests $*"; }
  echo "PASS shell requests $*: $(echo "$_r" | tail -1)"
}

# still_serving: every node's process is alive, says "serving", lists all the others as
# peers, and no sanitizer report is in any log.
still_serving() {
  for _n in $NODES; do
    kill -0 "$(cat "$dir/$_n.pid")" 2>/dev/null || { dump_logs; fail "$_n is gone"; }
    wait_until 20 peers_are "$_n" $((n_nodes - 1)) ||
      { dump_logs; fail "$_n lists $(stat "$_n" peers) peers, not $((n_nodes - 1))"; }
  done
  if grep -l "ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer" "$dir"/*.log; then
    dump_logs 60
    fail "a sanitizer report is in the logs above"
  fi
  echo "PASS every node ($NODES) still serving with $((n_nodes - 1)) peers; no sanitizer report"
}
peers_are() { [ "$(node_stat "$1" state)" = serving ] && [ "$(node_stat "$1" peers)" = "$2" ]; }

# logged NODE REGEX: NODE's log has a line matching REGEX; prints it.
logged() {
  _l=$(grep -m1 -e "$2" "$dir/$1.log") || { dump_logs; fail "$1 did not log /$2/"; }
  echo "  $1.log: ${_l#* }"
}
