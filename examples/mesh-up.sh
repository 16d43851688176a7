#!/usr/bin/env bash
# examples/mesh-up.sh — starts an example nnmesh mesh on loopback ports, everything in DIR:
#   mesh-up.sh [--nodes N] [--bridged] [--mesh NAME] [--keepalive S] [--interval S]
#              [--model ID=PATH]... [--no-model NODE]... [--task-timeout S] DIR
# One nodes' broker "a" (or, with --bridged, two, a and b, bridged on nnmesh/#, the nodes split
# between them), each with a front broker bridged to it where clients connect; N nodes
# (default 3) named n1..nN, and an operator identity "shell". It generates the node keys
# (nnmesh keygen), the trust file (nnmesh trust add), the broker accounts (one per node, user =
# node id, plus "shell", "bridge" and "front", random passwords in DIR/<user>.password, the
# password file DIR/passwd), the configs, picks free ports, starts everything and writes a
# pid file per process into DIR. DIR/mesh.env says what runs where (source it): BROKER_A_PORT
# (BROKER_B_PORT) is the front broker's port, for clients; MEMBER_A_PORT (MEMBER_B_PORT) the
# nodes' broker's, where only accounts of the password file connect. Stop it all with
# mesh-down.sh DIR. Files: broker-<a|b>.{conf,pid,log} (the nodes' brokers),
# front-<a|b>.{conf,pid,log}, <node>.{conf,key,password,pid,log}.
# Every node holds the models given with --model (default: lenet = models/lenet5-fmnist.onnx;
# the first one is what shell requests run), except the nodes named with --no-model, which
# hold none and receive slice weights over the wire (cached in DIR/<node>.key.cache).
# --task-timeout sets [limits] task_timeout (seconds; default the node's 10 s).
#
# Programs: $NNMESH, $NNMESHD, $MOSQUITTO (default: nnmesh, nnmeshd from PATH, and
# /usr/sbin/mosquitto); mosquitto_passwd, mosquitto_pub, mosquitto_sub, python3. The
# brokers keep big message buffers on their heap (GLIBC_TUNABLES, unless
# NNMESH_BROKER_MALLOC=default): see start_broker.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
nodes=3 bridged=0 mesh=lab keepalive=10 interval=5 dir= models= nomodel= task_timeout=
usage() {
  echo "usage: $0 [--nodes N] [--bridged] [--mesh NAME] [--keepalive S] [--interval S]" \
       "[--model ID=PATH]... [--no-model NODE]... [--task-timeout S] DIR" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) [ $# -ge 2 ] || usage; nodes=$2; shift 2 ;;
    --bridged) bridged=1; shift ;;
    --mesh) [ $# -ge 2 ] || usage; mesh=$2; shift 2 ;;
    --keepalive) [ $# -ge 2 ] || usage; keepalive=$2; shift 2 ;;
    --interval) [ $# -ge 2 ] || usage; interval=$2; shift 2 ;;
    --model) [ $# -ge 2 ] || usage
      case $2 in [a-z0-9]*=?*) ;; *) echo "$0: --model needs ID=PATH" >&2; exit 2 ;; esac
      mp=${2#*=}; [ -f "$mp" ] || { echo "$0: --model $2: no such file" >&2; exit 2; }
      mp=$(cd "$(dirname "$mp")" && pwd)/$(basename "$mp")
      models="$models${2%%=*} = $mp
"; shift 2 ;;
    --no-model) [ $# -ge 2 ] || usage; nomodel="$nomodel $2 "; shift 2 ;;
    --task-timeout) [ $# -ge 2 ] || usage; task_timeout=$2; shift 2 ;;
    -*) usage ;;
    *) [ -z "$dir" ] || usage; dir=$1; shift ;;
  esac
done
[ -n "$dir" ] || usage
case $nodes in ''|*[!0-9]*) usage ;; esac
[ "$nodes" -ge 1 ] && [ "$nodes" -le 32 ] || { echo "$0: --nodes must be 1..32" >&2; exit 2; }
NNMESH=${NNMESH:-nnmesh} NNMESHD=${NNMESHD:-nnmeshd}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
[ "$MOSQUITTO" != no ] || MOSQUITTO=/usr/sbin/mosquitto

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if ls "$dir"/*.pid >/dev/null 2>&1; then
  echo "$0: $dir has pid files: a mesh may be running there (mesh-down.sh $dir)" >&2; exit 1
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {  # port: until it accepts connections (10 s)
  for _ in $(seq 100); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" \
      2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(18))'; }

# Identities and the trust file.
for i in $(seq "$nodes") shell; do
  id=$i; [ "$i" = shell ] || id=n$i
  [ -f "$dir/$id.key" ] || "$NNMESH" keygen --id "$id" -o "$dir/$id.key" >/dev/null
  grep -q "^node $id " "$dir/mesh.trust" 2>/dev/null ||
    "$NNMESH" trust add "$dir/mesh.trust" --node "$id" --key "$dir/$id.key" >/dev/null
done

# Broker accounts: one per node (user = node id), "shell" (plaintext control and requests),
# "bridge" (between the nodes' brokers) and "front" (a front broker's bridge). The password
# file holds only salted hashes; each password is in DIR/<user>.password (mode 0600), a
# node's named by its config (password_file).
umask 077
rm -f "$dir/passwd"
: >"$dir/passwd"
for u in $(seq "$nodes") shell bridge front; do
  case $u in [0-9]*) u=n$u ;; esac
  [ -f "$dir/$u.password" ] || secret >"$dir/$u.password"
  mosquitto_passwd -b "$dir/passwd" "$u" "$(cat "$dir/$u.password")"
done
umask 022
cp "$here/mosquitto.acl" "$dir/mosquitto.acl"

# start_broker NAME TEMPLATE [SED-ARGS...]: a mosquitto from TEMPLATE on a free port (tried
# up to 5 times); sets port.
start_broker() {
  _n=$1 _t=$2
  shift 2
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" "$@" "$here/$_t" >"$dir/$_n.conf"
    [ "$(id -u)" != 0 ] || echo "user root" >>"$dir/$_n.conf"
    if [ "$_n" = broker-b ]; then   # broker b is bridged to broker a
      sed -e "s|@NAME@|bridge-b-to-a|g" -e "s|@PORT@|$member_a|g" \
          -e "s|@PASSWORD@|$(cat "$dir/bridge.password")|g" "$here/bridge.conf.in" >>"$dir/$_n.conf"
    fi
    # Tensors cross the broker as messages of up to 1 MiB: with glibc's defaults mosquitto
    # maps, faults in and unmaps a fresh buffer for each one (a third of the link's CPU
    # per MiB, docs/BENCH_WIRE.md "The broker's malloc"). Big buffers stay on its heap
    # instead; up to 256 MiB of freed heap may be kept. NNMESH_BROKER_MALLOC=default
    # leaves glibc's defaults.
    if [ "${NNMESH_BROKER_MALLOC:-}" = default ]; then
      "$MOSQUITTO" -c "$dir/$_n.conf" >>"$dir/$_n.log" 2>&1 &
    else
      GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=268435456} \
        "$MOSQUITTO" -c "$dir/$_n.conf" >>"$dir/$_n.log" 2>&1 &
    fi
    echo $! >"$dir/$_n.pid"
    if wait_port "$port"; then return 0; fi
    kill "$(cat "$dir/$_n.pid")" 2>/dev/null || true
    rm -f "$dir/$_n.pid"
  done
  echo "$0: $_n did not start: $(tail -5 "$dir/$_n.log")" >&2
  exit 1
}
# bridged FROM-PORT TO-PORT: a message published on FROM reaches a subscriber on TO (15 s).
bridged() {
  for _ in $(seq 30); do
    mosquitto_sub -h 127.0.0.1 -p "$2" -u shell -P "$(cat "$dir/shell.password")" \
      -t "nnmesh/$mesh/req/bridge-check/+" -C 1 -W 2 >/dev/null 2>&1 &
    _s=$!
    sleep 0.3
    mosquitto_pub -h 127.0.0.1 -p "$1" -u shell -P "$(cat "$dir/shell.password")" \
      -t "nnmesh/$mesh/req/bridge-check/x" -m x 2>/dev/null || true
    if wait $_s; then return 0; fi
  done
  return 1
}

# Brokers: the nodes' ones first, then the fronts bridged to them.
sides=a; [ $bridged = 0 ] || sides="a b"
for b in $sides; do
  start_broker "broker-$b" broker.conf.in
  eval "member_$b=$port"
done
for b in $sides; do
  eval "mp=\$member_$b"
  start_broker "front-$b" front.conf.in -e "s|@SIDE@|$b|g" -e "s|@MEMBER_PORT@|$mp|g" \
    -e "s|@PASSWORD@|$(cat "$dir/front.password")|g"
  eval "port_$b=$port"
done
# Wait until the bridges carry messages: front a to the nodes' broker a (single), or front b
# to front a and back through both nodes' brokers (bridged).
if [ $bridged = 1 ]; then
  bridged "$port_b" "$port_a" && bridged "$port_a" "$port_b" ||
    { echo "$0: the bridges do not carry messages: $(tail -3 "$dir"/broker-b.log "$dir"/front-*.log)" >&2; exit 1; }
else
  bridged "$member_a" "$port_a" && bridged "$port_a" "$member_a" ||
    { echo "$0: front a's bridge does not carry messages: $(tail -5 "$dir/front-a.log")" >&2; exit 1; }
fi

# Configs and nodes: with two brokers, odd nodes on a, even ones on b; the nodes on the nodes'
# brokers, the operator's identity (shell.conf) on the fronts.
uris_a=tcp://127.0.0.1:$member_a uris_b= front_uris=tcp://127.0.0.1:$port_a
if [ $bridged = 1 ]; then
  uris_a="tcp://127.0.0.1:$member_a, tcp://127.0.0.1:$member_b"
  uris_b="tcp://127.0.0.1:$member_b, tcp://127.0.0.1:$member_a"
  front_uris="tcp://127.0.0.1:$port_a, tcp://127.0.0.1:$port_b"
fi
sub() { sed -e "s|@ID@|$1|g" -e "s|@MESH@|$mesh|g" -e "s|@URIS@|$2|g" -e "s|@KEEPALIVE@|${keepalive}s|g" \
            -e "s|@INTERVAL@|${interval}s|g" -e "s|@MODELS@|$here/models|g"; }
sub shell "$front_uris" <"$here/shell.conf.in" >"$dir/shell.conf"
[ -n "$models" ] || models="lenet = $here/models/lenet5-fmnist.onnx
"
# node_conf ID: the [models] section of the template replaced by this node's models.
node_conf() {
  case $nomodel in *" $1 "*) m= ;; *) m=$models ;; esac
  M=$m awk '/^\[/ { inm = ($0 == "[models]") } inm && /^[a-z0-9]/ { next }
            { print } $0 == "[models]" { printf "%s", ENVIRON["M"] }'
}
limits() {  # task_timeout into the template's [limits] section
  if [ -n "$task_timeout" ]; then
    sed -e "s|^\\[limits\\]\$|[limits]\\ntask_timeout = ${task_timeout}s|"
  else cat; fi
}
: >"$dir/nodes"
for i in $(seq "$nodes"); do
  uris=$uris_a broker=a
  if [ $bridged = 1 ] && [ $((i % 2)) = 0 ]; then uris=$uris_b broker=b; fi
  sub "n$i" "$uris" <"$here/node.conf.in" | node_conf "n$i" | limits >"$dir/n$i.conf"
  "$NNMESHD" --config "$dir/n$i.conf" 2>>"$dir/n$i.log" &
  echo $! >"$dir/n$i.pid"
  echo "n$i $broker" >>"$dir/nodes"
done

{
  echo "MESH=$mesh"
  echo "BROKER_A_PORT=$port_a"
  [ $bridged = 0 ] || echo "BROKER_B_PORT=$port_b"
  echo "MEMBER_A_PORT=$member_a"
  [ $bridged = 0 ] || echo "MEMBER_B_PORT=$member_b"
  echo "NODES=\"$(cut -d' ' -f1 "$dir/nodes" | tr '\n' ' ' | sed 's/ $//')\""
  echo "SHELL_CONFIG=$dir/shell.conf"
} >"$dir/mesh.env"
echo "mesh $mesh: $nodes node(s) on ${sides// /+} (front a on port $port_a${port_b:+, b on $port_b};" \
     "nodes' broker a on $member_a${member_b:+, b on $member_b}); logs and pids in $dir"
