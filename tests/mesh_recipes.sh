#!/bin/sh
# tests/mesh_recipes.sh — runs every recipe of examples/README.md (the ```sh blocks after a
# `<!-- recipe: NAME -->` line), in order, and checks what each one did. A recipe without a
# check here fails the test, so a new recipe cannot go untested.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"
PATH="$top_builddir/apps:$PATH"
export PATH
DIR=$work/one DIR2=$work/two
mkdir -p "$DIR" "$DIR2"
export DIR DIR2
trap 'bash "$top_srcdir/examples/mesh-down.sh" "$DIR"; bash "$top_srcdir/examples/mesh-down.sh" "$DIR2"; rm -rf "$work"' EXIT
mkdir -p "$work/recipes"
awk -v dir="$work/recipes" '
  /^<!-- recipe: [a-z0-9-]+ -->$/ { name = $3; n++; next }
  name != "" && /^```sh$/ { file = sprintf("%s/%02d-%s.sh", dir, n, name); inblock = 1; next }
  inblock && /^```$/ { inblock = 0; name = ""; next }
  inblock { print > file }
' "$top_srcdir/examples/README.md"
count=$(ls "$work/recipes" | wc -l)
[ "$count" -ge 10 ] || fail "only $count recipes found in examples/README.md"

# Runs the recipes cumulatively (later ones use what earlier ones sourced).
prelude="$work/prelude.sh"
: >"$prelude"
run() { (cd "$top_srcdir" && bash -c ". '$prelude'; set -e; . '$1'") >"$work/out" 2>"$work/err"; }
stats() { mosquitto_sub -h 127.0.0.1 -p "$BROKER_A_PORT" -t "nnmesh/$MESH/stats/$1" -C 1 -W 3 2>/dev/null; }
stats_has() { stats "$1" | grep -q "$2"; }
for r in "$work"/recipes/*.sh; do
  name=$(basename "$r" .sh | cut -d- -f2-)
  case $name in
    start)
      run "$r" || fail "recipe start: $(cat "$work/err")"
      echo ". '$DIR/mesh.env'" >>"$prelude"
      . "$DIR/mesh.env" ;;
    peers)
      wait_until 30 sh -c "cd '$top_srcdir' && bash -c \". '$prelude'; . '$r'\" >'$work/out' 2>&1 && grep -q '^mesh lab: 3 nodes' '$work/out'" ||
        fail "recipe peers: $(cat "$work/out")" ;;
    watch-adverts)
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      [ "$(grep -Ec "^nnmesh/lab/advert/n[1-3] [0-9]+ bytes$" "$work/out")" = 3 ] || fail "recipe $name: $(cat "$work/out")" ;;
    read-stats)
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      grep -q '"node":"n1".*"adverts":{.*"ignored":{' "$work/out" || fail "recipe $name: $(cat "$work/out")" ;;
    stats-summary)
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      [ "$(grep -Ec '^n[1-3] peers [0-9]+ draining False ignored' "$work/out")" = 3 ] || fail "recipe $name: $(cat "$work/out")" ;;
    drain)
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      wait_until 30 stats_has n1 '"draining":true' || fail "recipe drain: n1 not draining: $(stats n1)"
      wait_until 30 sh -c "'$NNMESH' peers --config '$DIR/shell.conf' --wait 0.5 | grep -q '^n1 .* draining '" ||
        fail "recipe drain: the advert does not say draining" ;;
    policy)
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      wait_until 30 stats_has n1 '"policy":"capacity"' || fail "recipe policy: $(stats n1)" ;;
    resume)
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      wait_until 30 stats_has n1 '"draining":false' || fail "recipe resume: $(stats n1)" ;;
    drain-anonymous)
      before=$(grep -c "draining (control" "$DIR/n1.log")
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      sleep 1
      stats_has n1 '"draining":false' || fail "recipe drain-anonymous: n1 drained"
      [ "$(grep -c "draining (control" "$DIR/n1.log")" = "$before" ] || fail "recipe drain-anonymous: n1 saw it" ;;
    takeover-refused)
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      grep -q '^refused$' "$work/out" && grep -q "not authorised" "$work/err" ||
        fail "recipe $name: $(cat "$work/out" "$work/err")"
      ! grep -q "Client n1 already connected" "$DIR/broker-a.log" || fail "recipe $name: n1 was displaced" ;;
    ctl-signed)
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      grep -q '^n2: drain: ok$' "$work/out" && grep -q '^n2: resume: ok$' "$work/out" || fail "recipe $name: $(cat "$work/out")"
      grep -q "draining (control from shell (signed))" "$DIR/n2.log" || fail "recipe $name: n2 did not log it" ;;
    stop)
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      ! ls "$DIR"/*.pid >/dev/null 2>&1 || fail "recipe stop: pid files left"
      grep -q "left the mesh" "$DIR/n1.log" || fail "recipe stop: n1 did not leave cleanly" ;;
    bridged)
      run "$r" || fail "recipe $name: $(cat "$work/err") $(cat "$work/out")"
      grep -q '^mesh lab: 4 nodes' "$work/out" || fail "recipe bridged: $(cat "$work/out")"
      grep -q '"node":"n1".*"peers":3,' "$work/out" || fail "recipe bridged: n1 stats via broker b: $(cat "$work/out")" ;;
    infer)
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      grep -q 'argmax \[9\]' "$work/out" || fail "recipe infer: $(cat "$work/out")"
      grep -q '^trace (coordinator n1' "$work/out" || fail "recipe infer: no trace: $(cat "$work/out")"
      [ -s "$DIR/out/output.npy" ] || fail "recipe infer: no output.npy" ;;
    request-shell)
      run "$r" || fail "recipe $name: $(cat "$work/err")"
      "${SYS_PYTHON:-/usr/bin/python3}" -c "import numpy as np, sys; y = np.load(sys.argv[1]); sys.exit(0 if y.shape == (1, 10) and int(y.argmax()) == 2 else 1)" "$DIR/y.npy" ||
        fail "recipe request-shell: result is not the pullover's scores" ;;
    *) fail "recipe '$name' in examples/README.md has no check in tests/mesh_recipes.sh" ;;
  esac
  echo "PASS recipe $name"
done
