#!/usr/bin/env bash
# examples/mesh-down.sh DIR — stops what mesh-up.sh DIR started, by the pids in DIR/*.pid:
# the nodes first (SIGTERM: each clears its advert and leaves), then the front brokers, then
# the nodes' brokers. A process still there after 5 s gets SIGKILL. Never kills by name.
set -u
[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
stop() {  # pidfile...
  pids=
  for f in "$@"; do
    [ -f "$f" ] || continue
    p=$(cat "$f")
    case $p in ''|*[!0-9]*) rm -f "$f"; continue ;; esac
    kill -TERM "$p" 2>/dev/null && pids="$pids $p"
    rm -f "$f"
  done
  for _ in $(seq 50); do
    alive=
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -n "$alive" ] || return 0
    sleep 0.1
  done
  for p in $alive; do kill -KILL "$p" 2>/dev/null; done
}
stop "$dir"/n*.pid
stop "$dir"/front-*.pid
stop "$dir"/broker-*.pid
exit 0
