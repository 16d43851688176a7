# tests/fault/net_lib.sh — shared by the network fault scenarios of tests/fault/ (sourced
# after lib.sh and dist_lib.sh): link impairment proxies (tests/tools/impair) put on a node's
# broker link or on the bridge between two brokers of an examples/mesh-up.sh mesh, requests
# with their checks, and the reconnect bound implied by the node's backoff. Proxies are
# stopped by pid on exit with everything else dist_lib.sh started (SIGTERM: each logs its
# final counters).
IMPAIR="$top_builddir/tests/tools/impair"
[ -x "$IMPAIR" ] || fail "$IMPAIR is not built"
X="$SAMPLES/sample-2-trouser.npy"

# proxy_start NAME TARGET-PORT [IMPAIR-OPTIONS...]: a proxy in front of 127.0.0.1:TARGET-PORT;
# control socket $dir/NAME.ctl, events in $dir/NAME-impair.log; sets proxy_port.
proxy_start() {
  _n=$1 _to=$2
  shift 2
  rm -f "$dir/$_n.out"
  "$IMPAIR" --listen 127.0.0.1:0 --to "127.0.0.1:$_to" --control "$dir/$_n.ctl" \
    --log "$dir/$_n-impair.log" "$@" >"$dir/$_n.out" 2>>"$dir/$_n-impair.log" &
  bg_pids="$bg_pids $!"
  wait_until 30 test -s "$dir/$_n.out" || fail "proxy $_n did not start: $(cat "$dir/$_n-impair.log")"
  proxy_port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/$_n.out")
  [ -n "$proxy_port" ] || fail "proxy $_n: $(cat "$dir/$_n.out")"
}
pctl() {  # NAME COMMAND: the reply line; fails on an error reply
  "$IMPAIR" --control "$dir/$1.ctl" --send "$2" || fail "proxy $1: '$2' refused"
}
pstat() {  # NAME FIELD: one counter of the proxy
  "$IMPAIR" --control "$dir/$1.ctl" --send stats | awk -v f="$2" '{ for (i = 2; i < NF; i++) if ($i == f) print $(i + 1) }'
}

# mesh_up NAME MESH-UP-ARGS...: like dist_lib.sh's mesh_start but without waiting for the
# nodes to meet (one of them is restarted through a proxy first).
mesh_up() {
  dir=$base/$1
  shift
  bash "$top_srcdir/examples/mesh-up.sh" "$@" "$dir" </dev/null >/dev/null || fail "mesh-up.sh $* failed"
  . "$dir/mesh.env"
  pw=$(cat "$dir/shell.password")
  start_results
  n_nodes=$(echo $NODES | wc -w)
}
pstat_ge() { _v=$(pstat "$1" "$2"); [ -n "$_v" ] && [ "$_v" -ge "$3" ]; }  # NAME FIELD N

# node_via NODE NAME [IMPAIR-OPTIONS...]: stops NODE (as mesh-up.sh started it), starts a
# proxy NAME in front of the first broker of NODE's generated config and NODE again with its
# broker list rewritten to the proxy alone; waits until NODE connected through it and every
# node sees all.
node_via() {
  _nd=$1 _pn=$2
  shift 2
  _p=$(cat "$dir/$_nd.pid")
  kill -TERM "$_p"
  wait_until 15 eval "! kill -0 $_p 2>/dev/null" || fail "$_nd (pid $_p) did not stop"
  _bp=$(sed -n 's|^uris = tcp://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$dir/$_nd.conf")
  [ -n "$_bp" ] || fail "no tcp://127.0.0.1 broker uri in $dir/$_nd.conf"
  proxy_start "$_pn" "$_bp" "$@"
  sed -i "s|^uris = .*|uris = tcp://127.0.0.1:$proxy_port|" "$dir/$_nd.conf"
  "$NNMESHD" --config "$dir/$_nd.conf" 2>>"$dir/$_nd.log" &
  echo $! >"$dir/$_nd.pid"
  wait_until 30 pstat_ge "$_pn" accepted 1 || fail "$_nd did not connect to the proxy"
  wait_until 40 mesh_complete || { dump_logs; fail "the nodes did not all see each other within 40 s ($_nd through the proxy)"; }
}

# infer NODE NAME [CONFIG]: one `nnmesh infer` coordinated by NODE (timeout 60 s). Sets
# verdict ("ok" or "error: <message>"), lat (seconds) and used (the nodes that ran parts).
# Fails on a wrong output or a failure without a message.
infer() {
  _it=$(now)
  _rc=0
  "$NNMESH" infer --config "${3:-$dir/shell.conf}" --model "$LENET" --node "$1" -i "$X" \
    -o "$dir/$2" --timeout 60 >"$dir/$2.out" 2>"$dir/$2.err" || _rc=$?
  lat=$(since "$_it")
  used=$(awk '/^trace/ { t = 1; next } t && $2 == "nodes" { print $1 }' "$dir/$2.out" | sort -u | tr '\n' ' ')
  if [ $_rc = 0 ]; then
    "$SYS_PYTHON" "$top_srcdir/scripts/npy_compare.py" "$dir/$2/output.npy" "$ref" --rtol 1e-5 --quiet ||
      fail "nnmesh infer $2 gave a wrong output"
    verdict=ok
  else
    _m=$(grep "nnmesh infer:" "$dir/$2.err" | head -1)
    [ -n "$_m" ] || fail "nnmesh infer $2 failed (status $_rc) without a message: $(cat "$dir/$2.err")"
    verdict="error: $_m"
  fi
}

# shell_batch NODE PREFIX N: N shell requests to NODE at once; waits (70 s each at most) for
# every answer and checks them (none lost, duplicated or wrong; errors need a message).
# Sets batch (the summary line) and batch_s (seconds until the last answer).
shell_batch() {
  _bt=$(now)
  _tags=
  for _k in $(seq "$3"); do shell_req "$1" "$2-$_k" "$X"; _tags="$_tags $2-$_k"; done
  for _g in $_tags; do
    wait_until 70 has_answer "$_g" || { dump_logs; fail "shell request $_g unanswered in 70 s"; }
  done
  batch_s=$(since "$_bt")
  sleep 1   # a late duplicate would show now
  _res=$(check_results "$ref" $_tags) || { echo "$_res"; dump_logs; fail "shell requests $2-*: lost, duplicated or wrong"; }
  batch=$(echo "$_res" | tail -1 | cut -d' ' -f2-)
  echo "$_res" | grep ': error' || true
}

# backoff_bound SECONDS: the most connection attempts a node can make in that time after
# losing its broker (transport/mqtt.c: the wait before attempt k is at least half of
# min(200 ms x 2^(k-1), 10 s)), plus the one at the start.
backoff_bound() {
  awk -v T="$1" 'BEGIN { t = 0; n = 0; d = 200
    for (;;) { t += d / 2000; if (t > T) break; n++; d = d * 2 > 10000 ? 10000 : d * 2 }
    print n + 1 }'
}
