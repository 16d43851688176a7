# tests/mesh_lib.sh — shared by the mesh_*.sh tests (sourced after lib.sh): starts an example
# mesh from examples/mesh-up.sh into $work and stops it by pid on exit.
NNMESHD="$top_builddir/apps/nnmeshd"
export NNMESH NNMESHD
: "${MOSQUITTO:=/usr/sbin/mosquitto}"
[ "$MOSQUITTO" != no ] && [ -x "$MOSQUITTO" ] || { echo "SKIP: mosquitto not found"; exit 77; }
export MOSQUITTO
work=$(mktemp -d)
trap 'bash "$top_srcdir/examples/mesh-down.sh" "$work"; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# peers: the table as the operator sees it (ids only with --ids).
peers() { "$NNMESH" peers --config "$work/shell.conf" --wait "${1:-0.5}" 2>>"$work/peers.err"; }
peer_line() { peers | awk -v id="$1" '$1 == id'; }

# wait_until SECONDS CMD...: runs CMD until it succeeds; fails after SECONDS.
wait_until() {
  _lim=$1; shift
  _t=$(now)
  until "$@"; do
    le "$(since "$_t")" "$_lim" || return 1
    sleep 0.1
  done
}

# all_present IDS...: every id is in the table with a measured conv3x3 rate.
all_present() {
  _tab=$(peers)
  for _id in "$@"; do
    echo "$_tab" | awk -v id="$_id" '$1 == id && $5 > 0 { f = 1 } END { exit !f }' || return 1
  done
}
absent() { ! peers | awk -v id="$1" '$1 == id { f = 1 } END { exit !f }'; }
dump_logs() { for f in "$work"/*.log; do echo "---- $f"; tail -20 "$f"; done; }
