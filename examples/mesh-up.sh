#!/usr/bin/env bash
# examples/mesh-up.sh — starts an example nnmesh mesh on loopback ports, everything in DIR:
#   mesh-up.sh [--nodes N] [--bridged] [--mesh NAME] [--keepalive S] [--interval S]
#              [--model ID=PATH]... [--no-model NODE]... [--task-timeout S] DIR
# One mosquitto broker (or, with --bridged, two brokers bridged on nnmesh/#, the nodes split
# between them) with the ACL of mosquitto.acl and a password file, N nodes (default 3) named
# n1..nN, and an operator identity "shell". It generates the node keys (nnmesh keygen), the
# trust file (nnmesh trust add), the broker password file, the configs, picks free ports,
# starts everything and writes a pid file per process into DIR. DIR/mesh.env says what runs
# where (source it). Stop it all with mesh-down.sh DIR.
# Every node holds the models given with --model (default: lenet = models/lenet5-fmnist.onnx;
# the first one is what shell requests run), except the nodes named with --no-model, which
# hold none and receive slice weights over the wire (cached in DIR/<node>.key.cache).
# --task-timeout sets [limits] task_timeout (seconds; default the node's 10 s).
#
# Programs: $NNMESH, $NNMESHD, $MOSQUITTO (default: nnmesh, nnmeshd from PATH, and
# /usr/sbin/mosquitto); mosquitto_passwd, mosquitto_pub, mosquitto_sub, python3.
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

# Broker users: "shell" (plaintext control and requests) and "bridge".
umask 077
[ -f "$dir/shell.password" ] || secret >"$dir/shell.password"
[ -f "$dir/bridge.password" ] || secret >"$dir/bridge.password"
rm -f "$dir/passwd"
mosquitto_passwd -c -b "$dir/passwd" shell "$(cat "$dir/shell.password")"
mosquitto_passwd -b "$dir/passwd" bridge "$(cat "$dir/bridge.password")"
umask 022
cp "$here/mosquitto.acl" "$dir/mosquitto.acl"

# Brokers.
brokers=a; [ $bridged = 0 ] || brokers="a b"
for b in $brokers; do
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" "$here/broker.conf.in" >"$dir/broker-$b.conf"
    [ "$(id -u)" != 0 ] || echo "user root" >>"$dir/broker-$b.conf"
    if [ $b = b ]; then
      sed -e "s|@NAME@|bridge-b-to-a|g" -e "s|@PORT@|$port_a|g" \
          -e "s|@PASSWORD@|$(cat "$dir/bridge.password")|g" "$here/bridge.conf.in" >>"$dir/broker-$b.conf"
    fi
    "$MOSQUITTO" -c "$dir/broker-$b.conf" >>"$dir/broker-$b.log" 2>&1 &
    echo $! >"$dir/broker-$b.pid"
    if wait_port "$port"; then break; fi
    kill "$(cat "$dir/broker-$b.pid")" 2>/dev/null || true
    rm -f "$dir/broker-$b.pid"
  done
  [ -f "$dir/broker-$b.pid" ] || { echo "$0: broker $b did not start: $(tail -5 "$dir/broker-$b.log")" >&2; exit 1; }
  eval "port_$b=$port"
done
if [ $bridged = 1 ]; then   # wait until the bridge carries messages both ways
  ok=0
  for _ in $(seq 30); do
    mosquitto_sub -h 127.0.0.1 -p "$port_a" -t nnmesh/bridge-check -C 1 -W 2 >/dev/null 2>&1 &
    spid=$!
    sleep 0.3
    mosquitto_pub -h 127.0.0.1 -p "$port_b" -u bridge -P "$(cat "$dir/bridge.password")" \
      -t nnmesh/bridge-check -m x || true
    if wait $spid; then ok=1; break; fi
  done
  [ $ok = 1 ] || { echo "$0: the bridge does not carry messages: $(tail -5 "$dir/broker-b.log")" >&2; exit 1; }
fi

# Configs and nodes: with two brokers, odd nodes on a, even ones on b.
uri_a=tcp://127.0.0.1:$port_a
uris_a=$uri_a uris_b=
if [ $bridged = 1 ]; then
  uri_b=tcp://127.0.0.1:$port_b
  uris_a="$uri_a, $uri_b" uris_b="$uri_b, $uri_a"
fi
sub() { sed -e "s|@ID@|$1|g" -e "s|@MESH@|$mesh|g" -e "s|@URIS@|$2|g" -e "s|@KEEPALIVE@|${keepalive}s|g" \
            -e "s|@INTERVAL@|${interval}s|g" -e "s|@MODELS@|$here/models|g"; }
sub shell "$uris_a" <"$here/shell.conf.in" >"$dir/shell.conf"
[ -n "$models" ] || models="lenet = $here/models/lenet5-fmnist.onnx
"
# node_conf ID: the [models] section of the template replaced by this node's models.
node_conf() {
  case $nomodel in *" $1 "*) m= ;; *) m=$models ;; esac
  M=$m awk '/^\[/ { inm = ($0 == "[models]") } inm && /^[a-z0-9]/ { next }
            { print } $0 == "[models]" { printf "%s", ENVIRON["M"] }'
  [ -z "$task_timeout" ] || printf '\n[limits]\ntask_timeout = %ss\n' "$task_timeout"
}
: >"$dir/nodes"
for i in $(seq "$nodes"); do
  uris=$uris_a broker=a
  if [ $bridged = 1 ] && [ $((i % 2)) = 0 ]; then uris=$uris_b broker=b; fi
  sub "n$i" "$uris" <"$here/node.conf.in" | node_conf "n$i" >"$dir/n$i.conf"
  "$NNMESHD" --config "$dir/n$i.conf" 2>>"$dir/n$i.log" &
  echo $! >"$dir/n$i.pid"
  echo "n$i $broker" >>"$dir/nodes"
done

{
  echo "MESH=$mesh"
  echo "BROKER_A_PORT=$port_a"
  [ $bridged = 0 ] || echo "BROKER_B_PORT=$port_b"
  echo "NODES=\"$(cut -d' ' -f1 "$dir/nodes" | tr '\n' ' ' | sed 's/ $//')\""
  echo "SHELL_CONFIG=$dir/shell.conf"
} >"$dir/mesh.env"
echo "mesh $mesh: $nodes node(s) on ${brokers// /+} (broker a on port $port_a${port_b:+, b on $port_b}); logs and pids in $dir"
