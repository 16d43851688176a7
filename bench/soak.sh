#!/usr/bin/env bash
# bench/soak.sh — soaks (issue 6). Not a test: run it by hand from a build directory (after
# `make`), as root or not, and read the figures it prints (docs/BENCH_LOAD.md reports them):
#
#   bash ../main/bench/soak.sh [--out DIR] members [--nodes N] [--minutes M]
#   bash ../main/bench/soak.sh [--out DIR] drift [--minutes M] [--rate R] [--model lenet|mobilenet_v2]
#                                              [--sample S]
#
# members: N nnmeshd (default 50, threads = 1, LeNet-5) on one mosquitto for M minutes
#   (default 10), doing nothing but membership: signed adverts every 5 s, keepalives, stats.
#   Reports per node RSS (VmRSS at the end, and its growth since the first minute) and CPU
#   (utime + stime over the soak, as a % of one core): min / median / max over the nodes;
#   the broker's RSS and CPU; the broker's messages/s received and sent (from
#   $SYS/broker/messages/{received,sent} read at both ends of the window, and the range of
#   $SYS/broker/load/messages/*/1min, moving averages in messages per minute, sampled every
#   30 s) and, counted by a mosquitto_sub on nnmesh/# over
#   the window, the messages/s published per topic kind; and that every node sees the N-1
#   others (`nnmesh peers`, and "peers" in each node's stats). The first minute (start-up,
#   capacity measurement) is left out of the window. Raw samples: DIR/members-rss.tsv.
# drift: examples/mesh-up.sh --nodes 4 on loopback, unconstrained, and bench/load sending a
#   steady open-loop load (default LeNet-5 at 20 requests/s, Poisson arrivals, round robin over
#   the 4 nodes) for M minutes (default 30); every S seconds (default 30) each node's VmRSS
#   (and the brokers' and the client's) goes to DIR/drift-rss.tsv with the 1-minute load
#   average. Reports per node RSS start / end / max and the least-squares slope (KiB/min) over
#   the whole soak (the first sample is taken before the first request), after its first 5
#   minutes, and over its second half, and the load's latency figures (bench/load ticks
#   every S seconds in DIR/drift-load.txt).
#
# Raw outputs go to DIR (default /tmp/nnm-soak-results), never into the source tree.
# Everything started here is stopped by pid on exit. Needs the programs of
# scripts/install-deps.sh (mosquitto, mosquitto-clients, python3) and, for --model
# mobilenet_v2, Debian's python3-torch and python3-onnx (scripts/make_models.py).
set -eu
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
top_builddir=$(pwd)
NNMESH=$top_builddir/apps/nnmesh
NNMESHD=$top_builddir/apps/nnmeshd
LOAD=$top_builddir/bench/load
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
SYS_PYTHON=${SYS_PYTHON:-/usr/bin/python3}
LENET=$top_srcdir/examples/models/lenet5-fmnist.onnx
LENET_X=$top_srcdir/examples/models/sample-1-pullover.npy
out=/tmp/nnm-soak-results
usage() { sed -n '2,8p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
if [ "$1" = --out ]; then [ $# -ge 3 ] || usage; out=$2; shift 2; fi
mode=$1; shift
nodes=50 minutes= rate=20 model=lenet sample=30
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --nodes) nodes=$2 ;; --minutes) minutes=$2 ;; --rate) rate=$2 ;;
    --model) model=$2 ;; --sample) sample=$2 ;; *) usage ;;
  esac
  shift 2
done
case $mode in members) : "${minutes:=10}" ;; drift) : "${minutes:=30}" ;; *) usage ;; esac
for p in "$NNMESH" "$NNMESHD" "$LOAD"; do [ -x "$p" ] || { echo "soak.sh: $p missing: run make in the build directory first" >&2; exit 2; }; done
mkdir -p "$out"
out=$(cd "$out" && pwd)
W=$(mktemp -d /tmp/nnm-soak.XXXXXX)
log() { echo "soak.sh: $(date +%T) $*" >&2; }
CLK=$(getconf CLK_TCK)

pids=
cleanup() {
  local p
  [ -z "${load_pid:-}" ] || kill -TERM "$load_pid" 2>/dev/null || true
  [ -z "${sub_pid:-}" ] || kill -TERM "$sub_pid" 2>/dev/null || true
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  [ ! -f "$W/mesh.env" ] || bash "$top_srcdir/examples/mesh-down.sh" "$W" >/dev/null 2>&1 || true
  sleep 1
  for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
load1() { cut -d' ' -f1 /proc/loadavg; }
free_port() {
  "$SYS_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# stats LIST: "min median max" of numbers.
stats() { echo "$@" | tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
  printf "%s %s %s", v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[NR] }'; }
sys_value() {  # $SYS topic -> its (retained) value
  mosquitto_sub -h 127.0.0.1 -p "$port" -t "$1" -C 1 -W 20 2>/dev/null || echo 0
}

# ------------------------------------------------------------------------------- members
members() {
  log "members: $nodes nodes, $minutes min, results in $out"
  port=$(free_port)
  cat >"$W/broker.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
sys_interval 10
max_connections -1
log_dest stderr
log_type error
log_type warning
EOF
  [ "$(id -u)" != 0 ] || echo "user root" >>"$W/broker.conf"
  "$MOSQUITTO" -c "$W/broker.conf" >"$W/broker.log" 2>&1 &
  broker=$!
  pids="$pids $broker"
  for _ in $(seq 50); do sys_value '$SYS/broker/version' >/dev/null && [ "$(sys_value '$SYS/broker/version')" != 0 ] && break; sleep 0.2; done
  ids=
  for i in $(seq "$nodes") shell; do
    id=$i; [ "$i" = shell ] || id=m$i
    "$NNMESH" keygen --id "$id" -o "$W/$id.key" >/dev/null
    "$NNMESH" trust add "$W/mesh.trust" --node "$id" --key "$W/$id.key" >/dev/null
    [ "$id" = shell ] || ids="$ids $id"
  done
  cat >"$W/shell.conf" <<EOF
[node]
id = shell
key_file = shell.key
[mesh]
name = soak
trust_file = mesh.trust
[broker]
uris = tcp://127.0.0.1:$port
EOF
  npids=
  for id in $ids; do
    cat >"$W/$id.conf" <<EOF
[node]
id = $id
key_file = $id.key
threads = 1
[mesh]
name = soak
trust_file = mesh.trust
advert_interval = 5s
[broker]
uris = tcp://127.0.0.1:$port
keepalive = 10s
[models]
lenet = $LENET
EOF
    "$NNMESHD" --config "$W/$id.conf" 2>>"$W/$id.log" &
    npids="$npids $!"
    pids="$pids $!"
  done
  log "started $nodes nodes; settling 60 s"
  sleep 60
  for p in $npids; do kill -0 "$p" 2>/dev/null || { echo "soak.sh: a node died: $(tail -3 "$W"/m*.log | tail -5)" >&2; exit 1; }; done
  # The window: CPU ticks and RSS at both ends, broker counters at both ends.
  t0=$(date +%s.%N)
  c0=; for p in $npids; do c0="$c0 $(cpu_ticks "$p")"; done
  r0=; for p in $npids; do r0="$r0 $(rss_kb "$p")"; done
  bc0=$(cpu_ticks "$broker")
  rx0=$(sys_value '$SYS/broker/messages/received'); tx0=$(sys_value '$SYS/broker/messages/sent')
  la=$(load1)
  left=$((minutes * 60 - 60)); [ $left -gt 60 ] || left=60
  mosquitto_sub -h 127.0.0.1 -p "$port" -t 'nnmesh/#' -F %t -W "$left" >"$W/sub.txt" 2>/dev/null &
  sub_pid=$!
  pids="$pids $sub_pid"
  echo "t_s load1 rss_min_kb rss_median_kb rss_max_kb broker_rss_kb broker_rx_per_min broker_tx_per_min" >"$out/members-rss.tsv"
  el=0
  while [ $el -lt $left ]; do
    r=; for p in $npids; do r="$r $(rss_kb "$p")"; done
    echo "$el $(load1) $(stats $r) $(rss_kb "$broker") $(sys_value '$SYS/broker/load/messages/received/1min')" \
      "$(sys_value '$SYS/broker/load/messages/sent/1min')" >>"$out/members-rss.tsv"
    la="$la $(load1)"
    sleep 30; el=$((el + 30))
  done
  t1=$(date +%s.%N)
  rx1=$(sys_value '$SYS/broker/messages/received'); tx1=$(sys_value '$SYS/broker/messages/sent')
  c1=; for p in $npids; do c1="$c1 $(cpu_ticks "$p")"; done
  r1=; for p in $npids; do r1="$r1 $(rss_kb "$p")"; done
  bc1=$(cpu_ticks "$broker")
  wait "$sub_pid" 2>/dev/null || true
  sub_pid=
  dt=$(echo "$t1 - $t0" | bc -l)
  cpu=$(paste -d' ' <(echo $c0 | tr ' ' '\n') <(echo $c1 | tr ' ' '\n') |
        awk -v clk="$CLK" -v dt="$dt" '{ printf "%.3f ", 100 * ($2 - $1) / clk / dt }')
  grow=$(paste -d' ' <(echo $r0 | tr ' ' '\n') <(echo $r1 | tr ' ' '\n') | awk '{ printf "%d ", $2 - $1 }')
  seen=$("$NNMESH" peers --config "$W/shell.conf" 2>/dev/null | grep -c '^m[0-9]' || true)
  # Each node's own view: "peers" of its stats (published with every advert).
  mosquitto_sub -h 127.0.0.1 -p "$port" -t 'nnmesh/soak/stats/+' -F '%t %p' -W 12 >"$W/stats.txt" 2>/dev/null || true
  npeers=$(awk '{ p = $0; sub(/.*"peers":/, "", p); sub(/[^0-9].*/, "", p); v[$1] = p }
               END { for (t in v) printf "%s ", v[t] }' "$W/stats.txt")
  {
    echo "members nodes $nodes minutes $minutes window_s $(printf %.0f "$dt") load1 min/median/max $(stats $la)"
    echo "node_rss_kb_end min/median/max $(stats $r1)"
    echo "node_rss_growth_kb min/median/max $(stats $grow)  (window start to end)"
    echo "node_cpu_pct_of_one_core min/median/max $(stats $cpu)"
    echo "nodes_total_cpu_pct $(echo $cpu | tr ' ' '\n' | awk '{ s += $1 } END { printf "%.1f", s }')"
    echo "broker rss_kb $(rss_kb "$broker") cpu_pct $(echo "100 * ($bc1 - $bc0) / $CLK / $dt" | bc -l | xargs printf %.2f)"
    echo "broker msgs_per_s received $(echo "($rx1 - $rx0) / $dt" | bc -l | xargs printf %.1f) sent $(echo "($tx1 - $tx0) / $dt" | bc -l | xargs printf %.1f)  (\$SYS counters)"
    echo "published_msgs_per_s_by_kind (mosquitto_sub on nnmesh/# over the window):" \
      "$(awk -v w="$left" '{ split($1, t, "/"); k[t[3]]++ } END { for (x in k) printf "%s %.2f ", x, k[x] / w }' "$W/sub.txt")"
    echo "broker msgs_per_min received/sent, \$SYS 1-minute moving averages sampled every 30 s, min/median/max:" \
      "$(stats "$(awk 'NR > 1 { print $7 }' "$out/members-rss.tsv")") / $(stats "$(awk 'NR > 1 { print $8 }' "$out/members-rss.tsv")")"
    echo "peers_seen_by_shell $seen (of $nodes)"
    echo "peers_seen_by_each_node min/median/max $(stats $npeers) (of $((nodes - 1)) others; $(echo $npeers | wc -w) nodes reported)"
    echo "node_logs_warnings $(cat "$W"/m*.log | grep -ci 'warn\|error' || true)"
  } | tee "$out/members-summary.txt"
}

# --------------------------------------------------------------------------------- drift
drift() {
  case $model in
    lenet) mpath=$LENET x=$LENET_X ;;
    mobilenet_v2)
      cache=$top_builddir/tests/model-cache
      mkdir -p "$cache"
      "$SYS_PYTHON" "$top_srcdir/scripts/make_models.py" "$cache" --only mobilenet_v2 >/dev/null
      mpath=$cache/mobilenet_v2.onnx x=$cache/mobilenet_v2.input.npy ;;
    *) usage ;;
  esac
  log "drift: 4 nodes, $model at $rate req/s for $minutes min, RSS every $sample s, results in $out"
  NNMESH=$NNMESH NNMESHD=$NNMESHD MOSQUITTO=$MOSQUITTO \
    bash "$top_srcdir/examples/mesh-up.sh" --nodes 4 --model "$model=$mpath" "$W" >&2
  . "$W/mesh.env"
  sleep 5
  dur=$((minutes * 60))
  "$LOAD" --config "$W/shell.conf" --model "$mpath" -i "$x" --nodes n1,n2,n3,n4 --rate "$rate" \
    --duration "$dur" --interval "$sample" --timeout 30 >"$out/drift-load.txt" 2>"$out/drift-load.err" &
  load_pid=$!
  np=; for i in 1 2 3 4; do np="$np $(cat "$W/n$i.pid")"; done
  bp= hdr=   # the nodes' broker, and the front broker clients use (if mesh-up.sh starts one)
  for f in broker-a front-a; do
    [ -f "$W/$f.pid" ] || continue
    bp="$bp $(cat "$W/$f.pid")" hdr="$hdr ${f}_kb"
  done
  c0=; for p in $np; do c0="$c0 $(cpu_ticks "$p")"; done
  echo "t_s load1 n1_kb n2_kb n3_kb n4_kb$hdr client_kb" >"$out/drift-rss.tsv"
  t0=$(date +%s)
  while kill -0 "$load_pid" 2>/dev/null; do
    el=$(($(date +%s) - t0))
    line="$el $(load1)"
    for p in $np $bp $load_pid; do line="$line $(rss_kb "$p")"; done
    echo "$line" >>"$out/drift-rss.tsv"
    [ $el -lt $dur ] || break
    sleep "$sample"
  done
  c1=; for p in $np; do c1="$c1 $(cpu_ticks "$p")"; done
  rc=0; wait "$load_pid" || rc=$?
  load_pid=
  el=$(($(date +%s) - t0))
  for p in $np; do kill -0 "$p" 2>/dev/null || { echo "soak.sh: a node died during the soak" >&2; tail -5 "$W"/n*.log >&2; exit 1; }; done
  {
    echo "drift nodes 4 model $model rate $rate minutes $minutes sample_s $sample elapsed_s $el load_exit $rc"
    echo "load1 min/median/max $(stats "$(awk 'NR > 1 { print $2 }' "$out/drift-rss.tsv")")"
    awk 'NR == 1 { for (i = 3; i <= NF; i++) name[i] = $i; next }
         { t[NR] = $1 / 60; for (i = 3; i <= NF; i++) v[NR, i] = $i; n = NR; nf = NF }
         function slope(c, from,   k, sx, sy, sxx, sxy, m) {
           sx = sy = sxx = sxy = m = 0
           for (k = from; k <= n; k++) { sx += t[k]; sy += v[k, c]; sxx += t[k] * t[k]; sxy += t[k] * v[k, c]; m++ }
           return m > 1 && m * sxx - sx * sx > 0 ? (m * sxy - sx * sy) / (m * sxx - sx * sx) : 0 }
         END { half = int((n + 2) / 2); f5 = n; for (k = n; k >= 2; k--) if (t[k] >= 5) f5 = k
           for (i = 3; i <= nf; i++) { mx = 0; for (k = 2; k <= n; k++) if (v[k, i] > mx) mx = v[k, i]
             printf "rss %-12s start_kb %d end_kb %d max_kb %d slope_kib_per_min %.1f after_5_min %.1f second_half %.1f\n",
               name[i], v[2, i], v[n, i], mx, slope(i, 2), slope(i, f5), slope(i, half) } }' "$out/drift-rss.tsv"
    paste -d' ' <(echo $c0 | tr ' ' '\n') <(echo $c1 | tr ' ' '\n') |
      awk -v clk="$CLK" -v dt="$el" '{ printf "cpu n%d pct_of_one_core %.1f\n", NR, 100 * ($2 - $1) / clk / dt }'
    grep -E '^(load|node|error|link) ' "$out/drift-load.txt" || true
    echo "load ticks (every $sample s: p50/p99 ms): $(awk '/^tick/ { printf "%s/%s ", $12, $14 }' "$out/drift-load.txt")"
  } | tee "$out/drift-summary.txt"
}

$mode
