#!/bin/sh
# tests/security/byzantine.sh — a byzantine peer: valid, sealed, signed answers with wrong
# numbers, caught by spot-check re-execution. A 3-node example mesh (examples/mesh-up.sh, real
# mosquitto and nnmeshd on loopback) running the bundled LeNet-5 with policy `equal`, so every
# node gets parts. n3 runs with NNMESH_FAILPOINTS=corrupt-results (every output it serves is
# perturbed). The generated configs get a [scheduler] section: n1 spot_check = 0 (never
# checks), n2 spot_check = 0.5. Asserted:
#  - [scheduler] spot_check is checked like every key: 1.5 and "often" are refused with the
#    file, line and key;
#  - n3 logs the failpoint loudly at start, and keeps running throughout;
#  - the attack is real: requests coordinated by n1 (no checks) run parts on n3 and their
#    output is wrong (beyond 1e-5 of the output's scale);
#  - requests coordinated by n2 (shell requests, one at a time): n2 catches n3 within 20
#    requests (the request number is printed), logs it at error level with the request and
#    the measured difference, and the request that caught it already gets the right output;
#  - n2's stats JSON reports spot_checks.mismatch 1 and excluded ["n3"]; the 8 requests after
#    the catch are all right, n3 serves none of their parts and n2 checks nothing more from it.
#   make check TESTS=tests/security/byzantine.sh
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../dist_lib.sh"
x="$SAMPLES/sample-1-pullover.npy"
t0=$(now)

# The key is checked like every other.
cat >"$base/bad.conf" <<EOF
[node]
id = n9
key_file = none.key
[mesh]
trust_file = none.trust
[scheduler]
spot_check = 1.5
EOF
out=$("$NNMESHD" --check-config "$base/bad.conf" 2>&1) && fail "spot_check = 1.5 was accepted"
echo "$out" | grep -q "bad.conf:7: \[scheduler\] spot_check: 1.5 is out of range (0 to 1)" ||
  fail "unexpected message for spot_check = 1.5: $out"
sed -i 's/^spot_check = .*/spot_check = often/' "$base/bad.conf"
out=$("$NNMESHD" --check-config "$base/bad.conf" 2>&1) && fail "spot_check = often was accepted"
echo "$out" | grep -q "bad.conf:7: \[scheduler\] spot_check: 'often' is not a decimal number" ||
  fail "unexpected message for spot_check = often: $out"
echo "PASS [scheduler] spot_check: bad values refused ($out)"

# mesh-up.sh starts every node through $NNMESHD: this wrapper sets each node's spot_check in
# its generated config and arms the failpoint on n3 only, then becomes the real nnmeshd
# (exec: the pid mesh-up.sh records is the node's).
REAL_NNMESHD=$NNMESHD
NNMESHD=$base/nnmeshd-byzantine
cat >"$NNMESHD" <<'EOF'
#!/bin/sh
conf=$2
case $(basename "$conf" .conf) in
  n2) rate=0.5 ;;
  *) rate=0 ;;
esac
if grep -q '^spot_check' "$conf"; then
  sed -i "s/^spot_check *=.*/spot_check = $rate/" "$conf"
else
  printf '\n[scheduler]\nspot_check = %s\n' "$rate" >>"$conf"
fi
[ "$(basename "$conf")" != n3.conf ] || { NNMESH_FAILPOINTS=corrupt-results; export NNMESH_FAILPOINTS; }
exec "$REAL_NNMESHD" "$@"
EOF
chmod +x "$NNMESHD"
export NNMESHD REAL_NNMESHD

mesh_start byz --nodes 3 --interval 2
NNMESHD=$REAL_NNMESHD
"$NNMESH" run "$LENET" -i "$x" -o "$dir/ref" >/dev/null || fail "nnmesh run failed"
ref=$dir/ref/output.npy
set_policy equal
grep -q "failpoint corrupt-results active: this node returns wrong outputs; for tests only" "$dir/n3.log" ||
  fail "n3 does not log its failpoint: $(tail -5 "$dir/n3.log")"
! grep -q "failpoint" "$dir/n1.log" "$dir/n2.log" || fail "a failpoint is active on an honest node"
echo "== mesh up, n3 byzantine, policy equal ($(since "$t0") s)"

# The attack is real: n1 does not check, n3's numbers reach the answer.
for i in 1 2; do
  "$NNMESH" infer --config "$dir/shell.conf" --model "$LENET" --node n1 -i "$x" -o "$dir/a$i" \
    --timeout 60 >"$dir/a$i.out" 2>"$dir/a$i.err" || fail "request $i to n1 failed: $(cat "$dir/a$i.err")"
  grep -q '^  n3 ' "$dir/a$i.out" || fail "n3 ran no part of request $i: $(cat "$dir/a$i.out")"
  "$SYS_PYTHON" "$top_srcdir/scripts/npy_compare.py" "$dir/a$i/output.npy" "$ref" --rtol 1e-5 --quiet >/dev/null &&
    fail "request $i through n1 (spot_check 0) gave the right output: the failpoint did nothing"
done
rel=$("$SYS_PYTHON" -c 'import numpy as np, sys
a, b = np.load(sys.argv[1]).astype(float), np.load(sys.argv[2]).astype(float)
print("%.3g" % (abs(a - b).max() / abs(b).max()))' "$dir/a2/output.npy" "$ref")
[ "$(node_stat n1 spot_checks.run)" = 0 ] || fail "n1 ran spot checks with spot_check = 0"
echo "PASS spot_check 0 (n1): n3 ran parts and the output is wrong by $rel of its scale"

# n2 checks half the parts: shell requests one at a time until it catches n3.
req() {  # TAG: one shell request to n2, waits for its answer
  shell_req n2 "$1" "$x"
  wait_until 60 has_answer "$1" || { dump_logs; fail "request $1 got no answer within 60 s"; }
}
caught=0 tags=
for i in $(seq 20); do
  req "b$i"
  tags="$tags b$i"
  if grep -q "spot check: peer n3 returned wrong outputs" "$dir/n2.log"; then caught=$i; break; fi
done
[ $caught -gt 0 ] || { dump_logs; fail "n2 did not catch n3 in 20 requests at spot_check 0.5"; }
line=$(grep "spot check: peer n3" "$dir/n2.log" | head -1)
echo "$line" | grep -q "shell request 'b$caught'" || fail "the log line does not name the request: $line"
echo "$line" | grep -q "differs by [0-9.e+-]* ([0-9.e+-]* of its scale" || fail "the log line has no difference: $line"
echo "$line" | grep -q " error node n2: spot check" || fail "not logged at error level: $line"
echo "caught at request $caught of n2; n2 logged: $line"
ALLOW_ERRORS=0 check_results "$ref" "b$caught" >"$dir/caught.txt" ||
  fail "the request that caught n3 got a wrong answer: $(cat "$dir/caught.txt")"
ALLOW_ERRORS=1 check_results "$ref" $tags >"$dir/before.txt" || true
echo "requests to n2 up to the catch: $(tail -1 "$dir/before.txt")"

# Excluded: every later answer is right, n3 serves none of it.
wait_until 10 eval '[ "$(node_stat n2 excluded)" = "['"'"'n3'"'"']" ]' ||
  fail "n2's stats do not list n3 as excluded: $(node_stat n2 excluded)"
# Later requests: shell ones, and `nnmesh infer` ones whose trace says who ran what.
after=
for i in 1 2 3 4; do req "c$i"; after="$after c$i"; done
ALLOW_ERRORS=0 check_results "$ref" $after >"$dir/after.txt" ||
  fail "a request after the exclusion was not right: $(cat "$dir/after.txt")"
for i in 1 2 3 4; do
  "$NNMESH" infer --config "$dir/shell.conf" --model "$LENET" --node n2 -i "$x" -o "$dir/d$i" \
    --timeout 60 >"$dir/d$i.out" 2>"$dir/d$i.err" || fail "infer $i to n2 failed: $(cat "$dir/d$i.err")"
  "$SYS_PYTHON" "$top_srcdir/scripts/npy_compare.py" "$dir/d$i/output.npy" "$ref" --rtol 1e-5 --quiet >/dev/null ||
    fail "infer $i through n2 after the exclusion gave a wrong output"
  ! grep -q '^  n3 ' "$dir/d$i.out" || fail "n3 still runs parts of n2's requests: $(cat "$dir/d$i.out")"
done
wait_until 10 eval '[ "$(node_stat n2 requests)" -ge $((caught + 8)) ]' || fail "n2's stats lag"
[ "$(node_stat n2 spot_checks.mismatch)" = 1 ] || fail "n2 counts $(node_stat n2 spot_checks.mismatch) mismatches, expected 1"
for n in n1 n2 n3; do kill -0 "$(cat "$dir/$n.pid")" 2>/dev/null || fail "$n is not running"; done
echo "PASS spot_check 0.5 (n2): n3 caught at request $caught and excluded (n2 stats: spot_checks" \
     "{run $(node_stat n2 spot_checks.run), mismatch 1, reruns $(node_stat n2 spot_checks.reruns)}," \
     "excluded $(node_stat n2 excluded)); 8 later requests all right (shell: $(tail -1 "$dir/after.txt");" \
     "4 infer traces: $(trace_nodes d4)without n3); all nodes running ($(since "$t0") s)"
