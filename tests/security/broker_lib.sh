# tests/security/broker_lib.sh — shared by the broker attack tests (topic_spoof.sh,
# clientid_takeover.sh, flood.sh; sourced after lib.sh and dist_lib.sh): an example mesh with
# its brokers (examples/mesh-up.sh: nodes' broker on MEMBER_A_PORT, where only accounts of the
# password file connect and the user name is the client id; front broker on BROKER_A_PORT,
# anonymous clients allowed), a witness subscriber on the whole nnmesh/ tree, and helpers.
# Everything is stopped by pid on exit (dist_lib.sh).
X="$SAMPLES/sample-2-trouser.npy"
TOOL="$top_srcdir/tests/security/broker_tool.py"

# brk_mesh NAME [MESH-UP-ARGS...]: a 3-node mesh; sets dir, MESH, ports, pw (shell), the
# reference output ref (nnmesh run of LeNet on X), and starts the witness.
brk_mesh() {
  _name=$1; shift
  mesh_start "$_name" --nodes 3 --keepalive 5 --interval 2 "$@"
  [ -n "${MEMBER_A_PORT:-}" ] || fail "mesh.env has no MEMBER_A_PORT (examples/mesh-up.sh too old?)"
  "$NNMESH" run "$LENET" -i "$X" -o "$dir/ref" >/dev/null || fail "nnmesh run failed"
  ref=$dir/ref/output.npy
  witness_start
}

# The witness: an anonymous subscriber on the front broker to nnmesh/<mesh>/#, which sees
# everything either broker accepted (the front's bridge carries the whole tree both ways).
# Lines "topic hexpayload" in $dir/witness. Ready once a probe published on the nodes'
# broker arrived (that also proves the bridge works).
witness_start() {
  : >"$dir/witness"
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_A_PORT" -t "nnmesh/$MESH/#" -F '%t %x' \
    >>"$dir/witness" 2>>"$dir/witness.err" &
  bg_pids="$bg_pids $!"
  witness_probe || fail "the witness receives nothing: $(cat "$dir/witness.err")"
}
# witness_probe: a fresh probe from the nodes' broker (user shell, on req/ready/) has reached
# the witness; everything published before it on either broker has been delivered by then.
witness_probe() {
  _p=w$(date +%s%N)
  for _ in $(seq 100); do
    mosquitto_pub -h 127.0.0.1 -p "$MEMBER_A_PORT" -u shell -P "$pw" -q 1 \
      -t "nnmesh/$MESH/req/ready/$_p" -m x 2>/dev/null || true
    for _ in 1 2 3 4 5; do
      grep -q "/req/ready/$_p " "$dir/witness" && return 0
      sleep 0.1
    done
  done
  return 1
}
hex() { printf %s "$1" | od -An -v -tx1 | tr -d ' \n'; }
witness_has() { grep -qi "$(hex "$1")" "$dir/witness"; }   # MARKER: a payload containing it arrived

# apub PORT [MOSQUITTO_PUB-ARGS...]: mosquitto_pub in MQTT 5 with QoS 1, so that a publish the
# ACL denies is reported ("Publish 1 failed: Not authorized"); its stderr in $dir/apub.err.
apub() {
  _port=$1; shift
  mosquitto_pub -h 127.0.0.1 -p "$_port" -V 5 -q 1 "$@" 2>"$dir/apub.err"
}
# denied WHO PORT TOPIC MARKER [AUTH-ARGS...]: publishing MARKER on TOPIC is refused by the
# ACL (the client says so) and never reaches a subscriber.
denied() {
  _who=$1 _port=$2 _topic=$3 _m=$4; shift 4
  apub "$_port" "$@" -t "$_topic" -m "$_m" || true
  grep -q "Not authorized" "$dir/apub.err" ||
    fail "$_who publishing on $_topic: not refused by the broker: $(cat "$dir/apub.err")"
  echo "  $_who -> $_topic: $(tr '\n' ' ' <"$dir/apub.err")"
}

alive() { for _n in "$@"; do kill -0 "$(cat "$dir/$_n.pid")" 2>/dev/null || fail "$_n is not running"; done; }
drops() {  # NODE: the sum of the link's drop counters in its stats
  node_stat "$1" drops | "$SYS_PYTHON" -c 'import ast, sys
d = ast.literal_eval(sys.stdin.read())
print(sum(v for k, v in d.items() if k not in ("queue_full", "mqtt_queue_full")))'
}

# infer_ok NODE NAME: one `nnmesh infer` coordinated by NODE through the front broker gives the
# single-node output.
infer_ok() {
  "$NNMESH" infer --config "$dir/shell.conf" --model "$LENET" --node "$1" -i "$X" -o "$dir/$2" \
    --timeout 60 >"$dir/$2.out" 2>"$dir/$2.err" || { dump_logs; fail "nnmesh infer $2 failed: $(cat "$dir/$2.err")"; }
  "$SYS_PYTHON" "$top_srcdir/scripts/npy_compare.py" "$dir/$2/output.npy" "$ref" --rtol 1e-5 --quiet ||
    fail "nnmesh infer $2: wrong output"
}
