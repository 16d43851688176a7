# tests/dist_lib.sh — shared by the dist_*.sh tests (sourced after lib.sh): example meshes from
# examples/mesh-up.sh under one temporary directory, a result subscriber per mesh, shell
# requests and their checks. Everything started here is stopped by pid on exit.
NNMESHD="$top_builddir/apps/nnmeshd"
export NNMESH NNMESHD
: "${MOSQUITTO:=/usr/sbin/mosquitto}"
[ "$MOSQUITTO" != no ] && [ -x "$MOSQUITTO" ] || { echo "SKIP: mosquitto not found"; exit 77; }
command -v mosquitto_sub >/dev/null || { echo "SKIP: mosquitto_sub not found"; exit 77; }
export MOSQUITTO
LENET="$top_srcdir/examples/models/lenet5-fmnist.onnx"
SAMPLES="$top_srcdir/examples/models"
base=$(mktemp -d /tmp/nnm-dist.XXXXXX)
bg_pids=
dist_cleanup() {
  _st=$?
  set +e   # a process already gone must not turn the test's status into a failure
  for p in $bg_pids; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
  for d in "$base"/*/; do
    [ -f "$d/mesh.env" ] || continue
    # Nodes stopped with SIGSTOP cannot act on SIGTERM.
    for f in "$d"/n*.pid; do [ -f "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null; done
    bash "$top_srcdir/examples/mesh-down.sh" "$d" >/dev/null 2>&1
  done
  if [ -n "${KEEP:-}" ]; then echo "kept $base"; else rm -rf "$base"; fi
  exit $_st
}
trap dist_cleanup EXIT
trap 'exit 1' INT TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
wait_until() {  # SECONDS CMD...
  _lim=$1; shift
  _t=$(now)
  until "$@"; do
    le "$(since "$_t")" "$_lim" || return 1
    sleep 0.1
  done
}
dump_logs() {
  for f in "$dir"/*.log; do echo "---- $f"; tail -${1:-15} "$f"; done >&2
}

# mesh_start NAME MESH-UP-ARGS...: a mesh in $base/NAME; sets dir, MESH, BROKER_A_PORT, pw,
# NODES; starts a subscriber of every result (res/+/+ as "topic hexpayload" lines in
# $dir/results) and waits until every node sees all the others.
mesh_start() {
  dir=$base/$1
  shift
  bash "$top_srcdir/examples/mesh-up.sh" "$@" "$dir" </dev/null >/dev/null || fail "mesh-up.sh $* failed"
  . "$dir/mesh.env"
  pw=$(cat "$dir/shell.password")
  start_results
  n_nodes=$(echo $NODES | wc -w)
  wait_until 20 mesh_complete || { dump_logs; fail "the nodes did not all see each other within 20 s"; }
}

# The subscriber; ready once it has received a probe on req/ready (no node listens there).
start_results() {
  : >"$dir/results"
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_A_PORT" -u shell -P "$pw" -q 1 \
    -t "nnmesh/$MESH/res/+/+" -t "nnmesh/$MESH/req/ready/+" -F '%t %x' >>"$dir/results" 2>>"$dir/sub.err" &
  sub_pid=$!
  bg_pids="$bg_pids $sub_pid"
  sub_ready
}
# sub_ready: waits until the subscriber receives a fresh probe (also after it reconnected to
# a restarted broker: mosquitto_sub reconnects and subscribes again by itself).
sub_ready() {
  _i=0
  _p=p$(date +%s%N)
  until grep -q "/req/ready/$_p" "$dir/results"; do
    _i=$((_i + 1))
    [ $_i -le 200 ] || fail "the result subscriber is not receiving: $(cat "$dir/sub.err")"
    mosquitto_pub -h 127.0.0.1 -p "$BROKER_A_PORT" -u shell -P "$pw" -t "nnmesh/$MESH/req/ready/$_p" -m x 2>/dev/null
    sleep 0.1
  done
}

# Every node lists n_nodes-1 live peers in its stats.
mesh_complete() {
  for _n in $NODES; do
    [ "$(node_stat "$_n" peers)" = $((n_nodes - 1)) ] || return 1
  done
}

# node_stat NODE KEY[.KEY...]: one value of the node's retained stats JSON.
node_stat() { node_stat_at "$BROKER_A_PORT" "$@"; }
# node_stat_at PORT NODE KEY[.KEY...]: the same, read from the broker on PORT.
node_stat_at() {
  _port=$1; shift
  mosquitto_sub -h 127.0.0.1 -p "$_port" -u shell -P "$pw" -t "nnmesh/$MESH/stats/$1" \
    -C 1 -W 3 2>/dev/null |
    "$SYS_PYTHON" -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."): v = v[k]
print(v)' "$2" 2>/dev/null
}

# stats_since MS NODE...: each NODE's retained stats were published at or after wall-clock MS
# (their time_ms), so they count everything the node did before MS. A node publishes its
# stats every advert interval and when a request ends, but a reader may still get the copy
# from before: a baseline or a check read after a fixed sleep can be stale on a slow machine.
# (Own variable names: it runs inside wait_until, whose _t it must not overwrite.)
stats_since() {
  _ss_ms=$1; shift
  for _ss_n in "$@"; do
    _ss_t=$(node_stat "$_ss_n" time_ms)
    [ -n "$_ss_t" ] && [ "$_ss_t" -ge "$_ss_ms" ] || return 1
  done
}
now_ms() { date +%s%3N; }
# fresh_stats NODE...: waits (<= 30 s) until the nodes' stats were published after now.
fresh_stats() {
  _fs_since=$(now_ms)
  wait_until 30 stats_since "$_fs_since" "$@" ||
    { dump_logs; fail "no stats of $* published within 30 s"; }
}

ctl() {  # NODE VERB ARG
  mosquitto_pub -h 127.0.0.1 -p "$BROKER_A_PORT" -u shell -P "$pw" -t "nnmesh/$MESH/ctl/$1/$2" -m "$3"
}
# set_policy POLICY: on every node; returns once every node's stats report it.
set_policy() {
  for _n in $NODES; do ctl "$_n" policy "$1"; done
  for _n in $NODES; do
    wait_until 30 policy_is "$_n" "$1" || fail "$_n did not take policy $1"
  done
}
policy_is() { [ "$(node_stat "$1" policy)" = "$2" ]; }

# shell_req NODE|any TAG FILE: publishes the .npy as a shell request.
shell_req() {
  mosquitto_pub -h 127.0.0.1 -p "$BROKER_A_PORT" -u shell -P "$pw" -q 1 \
    -t "nnmesh/$MESH/req/$1/$2" -f "$3"
}
answers() { grep -c "^nnmesh/$MESH/res/[a-z0-9-]*/$1 " "$dir/results" || true; }
has_answer() { [ "$(answers "$1")" -ge 1 ]; }

# check_results REF TAG...: every tag has exactly one answer in $dir/results: the output .npy
# (within 1e-5 of REF's scale) or a JSON error with a message. Prints one line per tag
# (coordinator, verdict) and a summary "ok N error N lost N duplicated N wrong N"; exit
# status 0 when nothing is lost, duplicated or wrong. With ALLOW_ERRORS=0 an error fails too.
check_results() {
  _ref=$1; shift
  "$SYS_PYTHON" - "$dir/results" "$MESH" "$_ref" "${ALLOW_ERRORS:-1}" "$@" <<'EOF'
import io, json, sys
import numpy as np
path, mesh, ref, allow_err, tags = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5:]
b = np.load(ref).astype(np.float64)
seen = {}
for line in open(path):
    parts = line.split()
    if not parts: continue
    lv = parts[0].split("/")
    if len(lv) != 5 or lv[2] != "res": continue
    seen.setdefault(lv[4], []).append((lv[3], bytes.fromhex(parts[1]) if len(parts) > 1 else b""))
count = dict(ok=0, error=0, lost=0, duplicated=0, wrong=0)
bad = False
for t in tags:
    got = seen.get(t, [])
    if not got:
        count["lost"] += 1; bad = True
        print(f"  {t}: LOST (no answer)")
        continue
    if len(got) > 1:
        count["duplicated"] += 1; bad = True
        print(f"  {t}: DUPLICATED ({len(got)} answers, from {', '.join(g[0] for g in got)})")
    node, payload = got[0]
    if payload.startswith(b"\x93NUMPY"):
        a = np.load(io.BytesIO(payload)).astype(np.float64)
        if a.size != b.size:
            count["wrong"] += 1; bad = True
            print(f"  {t}: WRONG shape {list(a.shape)} from {node}")
            continue
        rel = float(np.abs(a.reshape(-1) - b.reshape(-1)).max() / np.abs(b).max())
        if rel <= 1e-5:
            count["ok"] += 1
            print(f"  {t}: ok from {node} (rel {rel:.1e})")
        else:
            count["wrong"] += 1; bad = True
            print(f"  {t}: WRONG output from {node}: rel {rel:.3e}")
    else:
        try:
            msg = json.loads(payload)["error"]
        except Exception:
            msg = ""
        if msg:
            count["error"] += 1
            if not allow_err: bad = True
            print(f"  {t}: error from {node}: {msg}")
        else:
            count["wrong"] += 1; bad = True
            print(f"  {t}: WRONG answer from {node}: {payload[:80]!r}")
print("summary " + " ".join(f"{k} {v}" for k, v in count.items()))
sys.exit(1 if bad else 0)
EOF
}

# ---- shared by the process fault scenarios (tests/fault/peer_kill.sh, straggler.sh,
# broker_kill.sh, clock_skew.sh); they set x (the input .npy) and ref (its single-node output).

rnd() { echo $(( $(od -An -N2 -tu2 /dev/urandom) % $1 )); }   # 0 .. $1-1

# infer_verdict LOG OUTDIR: a finished `nnmesh infer` (exit status in LOG.rc) either gave the
# right output or failed with a message; prints "ok" or "error: <message>", fails otherwise.
infer_verdict() {
  _rc=$(cat "$1.rc")
  if [ "$_rc" = 0 ]; then
    "$SYS_PYTHON" "$top_srcdir/scripts/npy_compare.py" "$2/output.npy" "$ref" --rtol 1e-5 --quiet ||
      fail "nnmesh infer gave a wrong output ($1)"
    echo ok
  else
    _m=$(grep "nnmesh infer:" "$1.err" | head -1)
    [ -n "$_m" ] || fail "nnmesh infer failed (status $_rc) without a message: $(cat "$1.err")"
    echo "error: $_m"
  fi
}
# infer_bg NAME [NODE]: starts `nnmesh infer` coordinated by NODE (default n1) in the
# background (pid in infer_pid; trace in $dir/NAME.out, status in $dir/NAME.rc).
infer_bg() {
  ( "$NNMESH" infer --config "$dir/shell.conf" --model "$LENET" --node "${2:-n1}" -i "$x" -o "$dir/$1" \
      --timeout 90 >"$dir/$1.out" 2>"$dir/$1.err"; echo $? >"$dir/$1.rc" ) &
  infer_pid=$!
  bg_pids="$bg_pids $infer_pid"
}
# trace_nodes NAME: the nodes that ran parts in the trace of `nnmesh infer` NAME.
trace_nodes() {
  awk '/^trace/ { t = 1; next } t && $2 == "nodes" { print $1 }' "$dir/$1.out" | sort -u | tr '\n' ' '
}
# restart_node NODE: starts NODE again from the config mesh-up.sh generated (same key, same
# epoch file: its epoch goes up by one); from a subshell, so that a later kill -9 draws no
# "Killed" job notice.
restart_node() {
  ( "$NNMESHD" --config "$dir/$1.conf" 2>>"$dir/$1.log" &
    echo $! >"$dir/$1.pid" )
}
# stop_node NODE: SIGTERM (the node clears its advert and leaves) and waits until it is gone.
stop_node() {
  _p=$(cat "$dir/$1.pid")
  kill -TERM "$_p" 2>/dev/null || true
  wait_until 15 eval "! kill -0 $_p 2>/dev/null" || fail "$1 (pid $_p) did not stop within 15 s of SIGTERM"
}
epoch_changed() { _e=$(node_stat "$1" epoch); [ -n "$_e" ] && [ "$_e" != "$2" ]; }

# all_taken_answered TAG...: every tag that n1 logged as finished has an answer.
all_taken_answered() {
  for _t in "$@"; do
    grep -q "shell request '$_t' \(done\|failed\)" "$dir/n1.log" || continue
    has_answer "$_t" || return 1
  done
}
