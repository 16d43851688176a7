#!/usr/bin/env bash
# bench/dist.sh — distributed inference on emulated boards (issue 5). Not a test: run it by hand,
# as root (cgroups, network namespaces), from a build directory, on a machine as idle as it gets:
#
#   bash ../main/bench/dist.sh [COUNT] [ROUNDS] > ../main/docs/BENCH_DIST.md
#
# Emulated board: one nnmeshd (threads = 1) in its own cgroup v1 cpu cgroup
# /sys/fs/cgroup/cpu/nnm-bench-<node>, quota = share x period. The period is the shortest that
# keeps the quota at the kernel's 1 ms minimum, at least 4 ms (25% and 50%: 4000 us, 12.5%:
# 8000, 6.25%: 16000), or DIST_PERIOD_US if set. Measured here: 9 ms of CPU work after an idle
# gap takes 32 ms of wall time at 1000/4000 us (nearly a 4x slower board) but 20 ms at
# 5000/20000, and a whole MobileNetV2 ran in ~9 ms at 25000/100000: with long periods a lone
# request runs at full speed in the quota left idle, and batch-1 latency never sees a slow
# board. Each node is in its own network namespace nnmb-<node>, joined to the broker's
# (root) namespace by a veth pair rate-limited with htb at DIST_RATE (default 100mbit) on both
# ends. The node measures its capacity at start inside its cgroup, so its advert reflects the
# quota. Broker (mosquitto) and client (bench/dist_client) run unconstrained in the root
# namespace; the client talks to the broker on loopback. DIST_NET=none: every node on
# loopback, no rate limit.
#
# Experiments (each mesh started fresh, so adaptive state never carries over):
#  1. scaling: 1, 2, 4 boards at 25%: batch-1 latency (COUNT sequential requests to n1) and a
#     stream (every node coordinating one request at a time: COUNT requests round robin, one in
#     flight per node), default policy (adaptive) and, for the stream, also `local`
#     (each coordinator runs its requests whole: replication) and objective throughput.
#  2. policies: 4 boards at 50/25/25/12.5%, each policy, batch-1 latency to n1 (the 50% board).
#  3. slowdown: same mesh, each policy, COUNT requests, then one board's quota drops to 6.25%,
#     COUNT more: p50 before and after. DIST_SLOW (default "n2 n1") names the boards slowed, one
#     run each: n2 is a worker, n1 the coordinator itself.
# ROUNDS repeats 1-3 and reports medians of the round p50s. Raw client output (one line per
# request with its trace sums) goes to DIST_OUT (default ./dist-results). Progress on stderr.
#  4. forward (not in the default set): 4 boards (DIST_FWD_SHARES, default "12.5 25 25 25":
#     a slow coordinator n1, which the pipeline leaves out or puts first), capacity policy,
#     objective throughput (a pipeline over the boards), batch-1 latency to n1 with
#     stage-to-stage forwarding on, then off, on the same mesh.
# DIST_MODELS (default "mobilenet_v2 resnet18"), DIST_EXPERIMENTS (default "scaling policies
# slowdown") narrow the run. DIST_DEPTH (default 2): the stream's requests in flight per node;
# with 2 a node receives its next input while it computes (the node queues it), as a camera
# stream would; 1 measures each node's request round trips back to back. DIST_LOG_LEVEL
# (default info; debug logs each adaptive choice with every arm's prediction and measured
# mean): the nodes' log level; their logs are copied to DIST_OUT as n1.log ... at the end.
set -eu
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
top_builddir=$(pwd)
count=${1:-20}
rounds=${2:-3}
models=${DIST_MODELS:-mobilenet_v2 resnet18}
experiments=${DIST_EXPERIMENTS:-scaling policies slowdown}
period=${DIST_PERIOD_US:-auto}
rate=${DIST_RATE:-100mbit}
net=${DIST_NET:-htb}
out=${DIST_OUT:-$top_builddir/dist-results}
depth=${DIST_DEPTH:-2}
log_level=${DIST_LOG_LEVEL:-info}
slow_nodes=${DIST_SLOW:-n2 n1}
SYS_PYTHON=${SYS_PYTHON:-/usr/bin/python3}
NNMESH=$top_builddir/apps/nnmesh
NNMESHD=$top_builddir/apps/nnmeshd
CLIENT=$top_builddir/bench/dist_client
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
MODELS=$top_builddir/tests/model-cache
CG=/sys/fs/cgroup/cpu
MESH=bench
[ "$(id -u)" = 0 ] || { echo "dist.sh: needs root (cgroups, network namespaces)" >&2; exit 2; }
for p in "$NNMESH" "$NNMESHD" "$CLIENT"; do [ -x "$p" ] || { echo "dist.sh: $p missing: make first" >&2; exit 2; }; done
[ -d $CG ] || { echo "dist.sh: no cgroup v1 cpu controller at $CG" >&2; exit 2; }
mkdir -p "$MODELS" "$out"
"$SYS_PYTHON" "$top_srcdir/scripts/make_models.py" "$MODELS" --only "$(echo $models | tr ' ' ,)" >/dev/null
W=$(mktemp -d /tmp/nnm-dbench.XXXXXX)
log() { echo "dist.sh: $*" >&2; }

# ---- cleanup: everything started here, by pid; cgroups and namespaces by name ----
stop_nodes() {
  local f pid
  for f in "$W"/n*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f"); rm -f "$f"
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Whatever is still in our cgroups is ours (a node whose pid file was lost).
  for i in 1 2 3 4; do
    [ -d $CG/nnm-bench-n$i ] || continue
    for pid in $(cat $CG/nnm-bench-n$i/cgroup.procs); do kill -KILL "$pid" 2>/dev/null || true; done
    for _ in $(seq 20); do rmdir $CG/nnm-bench-n$i 2>/dev/null && break; sleep 0.1; done
  done
  return 0
}
cleanup() {
  stop_nodes
  cp "$W"/n*.log "$out"/ 2>/dev/null || true
  if [ -f "$W/broker.pid" ]; then kill -TERM "$(cat "$W/broker.pid")" 2>/dev/null || true; fi
  for i in 1 2 3 4; do
    ip netns del nnmb-n$i 2>/dev/null || true
    ip link del nnmb$i 2>/dev/null || true
  done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- identities, trust, broker ----
for id in n1 n2 n3 n4 shell; do
  "$NNMESH" keygen --id $id -o "$W/$id.key" >/dev/null
  "$NNMESH" trust add "$W/mesh.trust" --node $id --key "$W/$id.key" >/dev/null
done
port=$("$SYS_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
  echo "listener $port 0.0.0.0"
  echo "allow_anonymous true"
  echo "set_tcp_nodelay true"   # no ~40 ms Nagle/delayed-ACK stalls on small messages
  echo "persistence false"
  echo "log_dest stderr"
  echo "log_type error"
  echo "user root"
} >"$W/broker.conf"
"$MOSQUITTO" -c "$W/broker.conf" 2>"$W/broker.log" &
echo $! >"$W/broker.pid"
for _ in $(seq 50); do
  "$SYS_PYTHON" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' $port 2>/dev/null && break
  sleep 0.1
done

# ---- network: one namespace per node, veth to the root namespace, htb both ways ----
if [ "$net" != none ]; then
  for i in 1 2 3 4; do
    ip netns add nnmb-n$i
    ip link add nnmb$i type veth peer name eth0 netns nnmb-n$i
    ip addr add 10.199.$i.1/24 dev nnmb$i
    ip link set nnmb$i up
    ip netns exec nnmb-n$i ip addr add 10.199.$i.2/24 dev eth0
    ip netns exec nnmb-n$i ip link set eth0 up
    ip netns exec nnmb-n$i ip link set lo up
    for side in "" "ip netns exec nnmb-n$i"; do
      dev=nnmb$i; [ -z "$side" ] || dev=eth0
      $side tc qdisc add dev $dev root handle 1: htb default 10 r2q 100 2>/dev/null ||
        $side tc qdisc add dev $dev root handle 1: htb default 10
      $side tc class add dev $dev parent 1: classid 1:10 htb rate $rate ceil $rate
    done
  done
fi

shell_conf=$W/shell.conf
printf '[node]\nid = shell\nkey_file = %s/shell.key\n[mesh]\nname = %s\ntrust_file = %s/mesh.trust\n[broker]\nuris = tcp://127.0.0.1:%s\nkeepalive = 10s\n' \
  "$W" $MESH "$W" $port >"$shell_conf"
for i in 1 2 3 4; do
  host=127.0.0.1; [ "$net" = none ] || host=10.199.$i.1
  cat >"$W/n$i.conf" <<EOF
[node]
id = n$i
key_file = $W/n$i.key
threads = 1
[mesh]
name = $MESH
trust_file = $W/mesh.trust
advert_interval = 2s
[broker]
uris = tcp://$host:$port
keepalive = 10s
[models]
$(for m in $models; do echo "$(echo "$m" | tr _ -) = $MODELS/$m.onnx"; done)
[control]
allow_plaintext_control = true
EOF
done

ctl() {  # node verb arg
  mosquitto_pub -h 127.0.0.1 -p $port -t "nnmesh/$MESH/ctl/$1/$2" -m "$3"
}
set_quota() {  # node share(%): period first, then quota
  per=$period
  [ "$per" != auto ] || per=$(echo "$2" | awk '{p = 100000 / $1; if (p < 4000) p = 4000; printf "%d", p + 0.5}')
  echo -1 >$CG/nnm-bench-$1/cpu.cfs_quota_us
  echo "$per" >$CG/nnm-bench-$1/cpu.cfs_period_us
  echo "$2 $per" | awk '{printf "%d\n", $1 * $2 / 100}' >$CG/nnm-bench-$1/cpu.cfs_quota_us
}
# start_mesh SHARE... : node i gets SHARE_i % of one CPU; waits until every node is
# advertised and every node has seen every other one.
start_mesh() {
  stop_nodes
  i=0
  for share in "$@"; do
    i=$((i + 1))
    mkdir -p $CG/nnm-bench-n$i
    set_quota n$i "$share"
    ns=""; [ "$net" = none ] || ns="ip netns exec nnmb-n$i"
    sh -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' sh $CG/nnm-bench-n$i \
      $ns "$NNMESHD" --config "$W/n$i.conf" --log-level "$log_level" 2>>"$W/n$i.log" &
    echo $! >"$W/n$i.pid"
  done
  n=$#
  for _ in $(seq 150); do
    ok=1
    for j in $(seq $n); do
      got=$(mosquitto_sub -h 127.0.0.1 -p $port -t "nnmesh/$MESH/stats/n$j" -C 1 -W 2 2>/dev/null |
            "$SYS_PYTHON" -c 'import json,sys; print(json.load(sys.stdin).get("peers", -1))' 2>/dev/null || echo -1)
      [ "$got" = $((n - 1)) ] || { ok=0; break; }
    done
    [ $ok = 0 ] || break
    sleep 0.5
  done
  [ $ok = 1 ] || { log "mesh of $n did not form: $(tail -3 "$W"/n*.log)"; exit 1; }
  "$NNMESH" peers --config "$shell_conf" --wait 1 >>"$W/peers.txt" 2>&1 || true
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/^summary.* $1 \([0-9.]*\).*/\1/p"; }
# client TAG MODEL NODES INFLIGHT [COUNT [PER_NODE]]: raw lines to $out/TAG.txt, the summary on
# stdout.
client() {
  local w=$((3 * $4))   # 3 warm-up requests per coordinator: sessions, slice executors, bandit
  "$CLIENT" --config "$shell_conf" --model "$MODELS/$2.onnx" -i "$MODELS/$2.input.npy" \
    --check "$MODELS/$2.torch.npy" --nodes "$3" --inflight "$4" --count "${5:-$count}" --warmup $w \
    --per-node "${6:-1}" \
    --timeout 120 >"$out/$1.txt" 2>&1 || log "$1: client failed: $(tail -2 "$out/$1.txt")"
  grep '^summary' "$out/$1.txt" || echo "summary n 0 errors 1 p50 nan p90 nan mean nan wall nan throughput nan"
}
# trace_means FILE: mean compute, transfer, wait sums and distinct nodes of its measured lines
trace_means() {
  grep '^req' "$1" | grep -v warmup | grep ' ms ' |
    awk '{c+=$8; t+=$10; w+=$12; nd+=$16; md = $18 > md ? $18 : md; n++}
         END {if (n) printf "%.1f | %.1f | %.1f | %.1f | %.1g", c/n, t/n, w/n, nd/n, md}'
}

nodes_list() { seq -s, -f 'n%g' 1 "$1"; }

echo "# Distributed inference on emulated boards"
echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(sed -n 's/^model name\t: //p' /proc/cpuinfo | head -1)), shared with other jobs."
echo "Command (root, from the build directory): \`bash ../main/bench/dist.sh $count $rounds\`"
echo "(DIST_NET=$net, DIST_RATE=$rate, DIST_PERIOD_US=$period). Board = one nnmeshd, 1 thread, in a"
echo "cgroup v1 CPU quota (share x period; period $period: auto = 4 ms, or longer to keep the quota at 1 ms) and its own network namespace"
echo "(veth to the broker's namespace, htb $rate each way; DIST_NET=none: loopback). Broker and client unconstrained."
echo "$count measured requests (+3 warm-up per coordinator) per run, $rounds rounds; tables give medians over rounds."
echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
echo

if echo "$experiments" | grep -q scaling; then
  echo "## 1. Scaling: 1, 2, 4 boards at 25% CPU, policy adaptive"
  echo
  echo "Latency: one request at a time to n1 (coordinator, itself a board). Stream: $count x $depth requests"
  echo "per node, round robin, $depth in flight per node (a node coordinates one request at a time"
  echo "and queues the next, whose input arrives meanwhile); \`local\` = each coordinator runs its"
  echo "requests whole (replication); \`tput\` = adaptive with objective throughput. Stream speedups"
  echo "are against the best of one board's three stream runs (on one board all three run locally)."
  echo
  echo "| model | boards | latency p50 ms | latency speedup | stream req/s adaptive | speedup | stream req/s local | speedup | stream req/s tput | speedup |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for m in $models; do
    for n in 1 2 4; do
      shares=$(for _ in $(seq $n); do printf '25 '; done)
      : >"$W/lat"; : >"$W/sa"; : >"$W/sl"; : >"$W/st"
      for r in $(seq $rounds); do
        log "scaling $m $n boards round $r"
        start_mesh $shares
        client "scale-$m-$n-lat-r$r" $m n1 1 | field p50 >>"$W/lat"
        sc=$((count * depth * n)); si=$((n * depth))   # every node coordinates COUNT x DEPTH
        client "scale-$m-$n-stream-r$r" $m "$(nodes_list $n)" $si $sc $depth | field throughput >>"$W/sa"
        for j in $(seq $n); do ctl n$j policy local; done; sleep 0.5
        client "scale-$m-$n-local-r$r" $m "$(nodes_list $n)" $si $sc $depth | field throughput >>"$W/sl"
        for j in $(seq $n); do ctl n$j policy adaptive; ctl n$j objective throughput; done; sleep 0.5
        client "scale-$m-$n-tput-r$r" $m "$(nodes_list $n)" $si $sc $depth | field throughput >>"$W/st"
      done
      lat=$(median <"$W/lat"); sa=$(median <"$W/sa"); sl=$(median <"$W/sl"); st=$(median <"$W/st")
      # one board's stream: the best of its three runs (they do the same thing, local only)
      if [ $n = 1 ]; then lat1=$lat; s1=$(printf '%s\n' $sa $sl $st | grep -v nan | sort -g | tail -1); fi
      sp() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.2fx", $1 / $2; else print "-" }'; }
      echo "| $m | $n | $lat | $(sp $lat1 $lat) | $sa | $(sp $sa $s1) | $sl | $(sp $sl $s1) | $st | $(sp $st $s1) |"
    done
  done
  echo
  echo "Where the time goes (last round; per request, means: compute and transfer summed over the"
  echo "trace's parts, wait = when the last part was sent after the request started; nodes = distinct"
  echo "nodes that ran a part; maxdiff = largest |output - torch| seen):"
  echo
  echo "| run | compute ms | transfer ms | wait ms | nodes | maxdiff |"
  echo "|---|---|---|---|---|---|"
  for m in $models; do for n in 1 2 4; do for k in lat stream local tput; do
    f="$out/scale-$m-$n-$k-r$rounds.txt"
    [ -f "$f" ] && echo "| $m $n boards $k | $(trace_means "$f") |"
  done; done; done
  echo
fi

policies=${DIST_POLICIES:-local equal memory capacity adaptive}
if echo "$experiments" | grep -q policies; then
  echo "## 2. Policies on a heterogeneous mesh: n1 50%, n2 25%, n3 25%, n4 12.5% CPU"
  echo
  echo "Batch-1 latency, one request at a time to n1. p50 ms, median over rounds."
  echo
  echo "| model | $(echo $policies | sed 's/ / | /g') |"
  echo "|---|---|---|---|---|---|"
  for m in $models; do
    row="| $m |"
    for p in $policies; do
      : >"$W/p"
      for r in $(seq $rounds); do
        log "policies $m $p round $r"
        start_mesh 50 25 25 12.5
        ctl n1 policy $p; sleep 0.5
        client "pol-$m-$p-r$r" $m n1 1 | field p50 >>"$W/p"
      done
      row="$row $(median <"$W/p") |"
    done
    echo "$row"
  done
  echo
  echo "| run (last round) | compute ms | transfer ms | wait ms | nodes | maxdiff |"
  echo "|---|---|---|---|---|---|"
  for m in $models; do for p in $policies; do
    echo "| $m $p | $(trace_means "$out/pol-$m-$p-r$rounds.txt") |"
  done; done
  echo
fi

if echo "$experiments" | grep -q forward; then
  fwd_shares=${DIST_FWD_SHARES:-12.5 25 25 25}
  echo "## 4b. Forwarding: a pipeline over boards at $(echo $fwd_shares | sed 's/ /, /g')% CPU (n1 first), stage outputs peer to peer or through n1"
  echo
  echo "Policy capacity, objective throughput (the planner's pipeline over the boards), batch-1"
  echo "latency to n1, $count requests with \`forward on\` then $count with \`forward off\` on the"
  echo "same mesh (the same plan, from the cache). p50 ms, median over rounds; transfer = summed"
  echo "transfer times of the trace's parts."
  echo
  echo "| model | p50 forward on | p50 forward off | off / on | transfer ms on | transfer ms off |"
  echo "|---|---|---|---|---|---|"
  for m in $models; do
    : >"$W/fon"; : >"$W/foff"
    for r in $(seq $rounds); do
      log "forward $m round $r"
      start_mesh $fwd_shares
      for j in 1 2 3 4; do ctl n$j policy capacity; ctl n$j objective throughput; done
      ctl n1 forward on; sleep 0.5
      client "fwd-$m-on-r$r" $m n1 1 | field p50 >>"$W/fon"
      ctl n1 forward off; sleep 0.5
      client "fwd-$m-off-r$r" $m n1 1 | field p50 >>"$W/foff"
    done
    on=$(median <"$W/fon"); off=$(median <"$W/foff")
    ratio=$(echo "$off $on" | awk '{ if ($2 > 0) printf "%.2fx", $1 / $2; else print "-" }')
    ton=$(trace_means "$out/fwd-$m-on-r$rounds.txt" | cut -d'|' -f2)
    toff=$(trace_means "$out/fwd-$m-off-r$rounds.txt" | cut -d'|' -f2)
    echo "| $m | $on | $off | $ratio | $ton | $toff |"
  done
  echo
fi

if echo "$experiments" | grep -q slowdown; then
  echo "## 3. One board slowed mid-run: heterogeneous mesh, a board's quota cut to 6.25% after $count requests"
  echo
  echo "Batch-1 latency to n1: $count requests, then the board's quota is cut, then $count more on the"
  echo "same mesh (the adaptive state carries over; the node's advert still shows the old capacity"
  echo "until it re-measures). Slowed: $slow_nodes (n2: a 25% worker; n1: the 50% coordinator"
  echo "itself, which still takes every request). p50 ms before / after, median over rounds."
  echo
  echo "| model | slowed | $(echo $policies | sed 's/ / before | /g') before | $(echo $policies | sed 's/ / after | /g') after | adaptive vs best static after |"
  echo "|$(for _ in $(seq 13); do printf -- '---|'; done)"
  for sn in $slow_nodes; do
    for m in $models; do
      before="" after="" best= bestp=- ad=
      for p in $policies; do
        : >"$W/b"; : >"$W/a"
        for r in $(seq $rounds); do
          log "slowdown $sn $m $p round $r"
          start_mesh 50 25 25 12.5
          ctl n1 policy $p; sleep 0.5
          client "slow-$sn-$m-$p-before-r$r" $m n1 1 | field p50 >>"$W/b"
          set_quota $sn 6.25
          client "slow-$sn-$m-$p-after-r$r" $m n1 1 | field p50 >>"$W/a"
        done
        b=$(median <"$W/b"); a=$(median <"$W/a")
        before="$before $b |"; after="$after $a |"
        if [ $p = adaptive ]; then ad=$a
        elif [ -z "$best" ] || awk "BEGIN{exit !($a < $best)}"; then best=$a; bestp=$p; fi
      done
      echo "| $m | $sn |$before$after $(echo "$best $ad" | awk '{if (NF == 2 && $2 > 0) printf "%.2fx", $1/$2; else printf "-"}') (best static: '$bestp') |"
    done
  done
  echo
  echo "| run (last round, after) | compute ms | transfer ms | wait ms | nodes | maxdiff |"
  echo "|---|---|---|---|---|---|"
  for sn in $slow_nodes; do for m in $models; do for p in $policies; do
    echo "| $sn slowed: $m $p | $(trace_means "$out/slow-$sn-$m-$p-after-r$rounds.txt") |"
  done; done; done
  echo
fi
stop_nodes
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "Adverts seen (nnmesh peers, first mesh of each kind) are in the raw output directory."
cp "$W/peers.txt" "$out/peers.txt" 2>/dev/null || true
