#!/bin/sh
# tests/fault/clock_skew.sh — process fault: one node's clock 300 s ahead, then 300 s behind,
# on a 3-node example mesh (examples/mesh-up.sh: real mosquitto on loopback, adverts every
# 1 s) running the bundled LeNet-5 with policy `equal` (a coordinator gives parts to every
# peer it accepts). n3 is stopped and started again from its generated config under
# libfaketime (FAKETIME=+300s, then -300s). Asserted in each phase:
#  - n1 and n2 reject n3's adverts with a message naming the 5 s clock tolerance (ahead:
#    "ignored (future): ... sent 300 s after this node's clock ..."; behind: "ignored
#    (expired): ... expired ... s before this node's clock ...") and count them in their
#    stats JSON (adverts.ignored.future / .expired);
#  - n3 likewise rejects n1's and n2's adverts with such a message and counts them
#    (the other direction: expired when ahead, future when behind), and lists no peer;
#  - n3 is not used as a peer: n1 and n2 list each other only, and a request coordinated by
#    n1 runs on n1 and n2 with the single-node output (within 1e-5), as do 4 shell
#    requests to n2 (none lost, duplicated, wrong or failed);
#  - n3 keeps running and serves requests sent to it alone: 2 shell requests and one
#    `nnmesh infer --node n3` each give the right output or a clear error.
# Then n3 runs with the right clock again and the mesh is complete (3 nodes) once more.
#   make check TESTS=tests/fault/clock_skew.sh
#
# How the clock is skewed: LD_PRELOAD of libfaketime with FAKETIME="+300s" shifts
# CLOCK_REALTIME (time(), clock_gettime, gettimeofday) of nnmeshd only. With
# FAKETIME_DONT_FAKE_MONOTONIC=1 CLOCK_MONOTONIC is left alone, as on a real machine whose
# wall clock is wrong (NTP corrects CLOCK_REALTIME; monotonic time is local and never
# compared between machines): the node's timers, Paho's keepalive and the link's deadlines
# run on monotonic time and stay right, and a -300 s shift cannot take the monotonic clock
# below zero on a machine booted less than 5 minutes ago.
# Under --enable-sanitizers, nnmeshd links libasan, which refuses to start when another
# preloaded library comes first ("ASan runtime does not come first in initial library
# list"). Preloading the ASan runtime itself first (found with ldd) and libfaketime second
# satisfies it; ASan's clock_gettime interceptor calls the next definition, libfaketime's, so
# the shift still applies (checked below against the time_ms of n3's stats). Without
# sanitizers ldd finds no libasan and only libfaketime is preloaded.
# (ASAN_OPTIONS=verify_asan_link_order=0 with libfaketime alone works too, but only silences
# the check.)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../dist_lib.sh"
FAKETIME_LIB=${FAKETIME_LIB:-/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1}
[ -f "$FAKETIME_LIB" ] || { echo "SKIP: libfaketime not found (Debian package faketime)"; exit 77; }
asan_rt=$(ldd "$NNMESHD" 2>/dev/null | awk '$1 ~ /^libasan\.so/ { print $3 }')
skew=300
x="$SAMPLES/sample-2-trouser.npy"

# start_skewed NODE OFFSET: NODE from its generated config with its wall clock shifted.
start_skewed() {
  ( LD_PRELOAD="${asan_rt:+$asan_rt }$FAKETIME_LIB" FAKETIME="$2" FAKETIME_DONT_FAKE_MONOTONIC=1 \
      "$NNMESHD" --config "$dir/$1.conf" 2>>"$dir/$1.log" &
    echo $! >"$dir/$1.pid" )
}
# ignored NODE VERDICT: the node's count of adverts ignored with that verdict.
ignored() { node_stat "$1" "adverts.ignored.$2"; }
# clock_of NODE: how far (s) the node's clock is from ours, from the time_ms of its stats.
clock_of() {
  node_stat "$1" time_ms | awk -v t="$(date +%s%3N)" '{ printf "%.0f", ($1 - t) / 1000 }'
}
# rejects NODE WHO VERDICT: NODE logged, since mark_logs, a rejection of WHO's advert with
# VERDICT naming the clock tolerance.
rejects() {
  eval "_from=\$((l0_$1 + 1))"
  tail -n +"$_from" "$dir/$1.log" | grep -q "advert of '$2' ignored ($3): .*beyond the 5 s clock tolerance"
}
mark_logs() { for _n in n1 n2 n3; do eval "l0_$_n=$(wc -l <"$dir/$_n.log")"; done; }
peers_are() { [ "$(node_stat "$1" peer_ids | tr -d "[]',")" = "$2" ]; }
# alive NODE: still running, and no sanitizer report in its log (UBSan reports and goes on).
alive() {
  kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null && ! grep -q "runtime error:\|AddressSanitizer" "$dir/$1.log"
}
now_epoch() { _e=$(node_stat "$1" epoch); [ -n "$_e" ] && [ "$_e" -gt "$2" ]; }

t0=$(now)
mesh_start skew --nodes 3 --keepalive 5 --interval 1
"$NNMESH" run "$LENET" -i "$x" -o "$dir/ref" >/dev/null
ref=$dir/ref/output.npy
set_policy equal
infer_bg base; wait $infer_pid || true
[ "$(infer_verdict "$dir/base" "$dir/base")" = ok ] || fail "the request before the skew failed: $(cat "$dir/base.err")"
[ "$(trace_nodes base)" = "n1 n2 n3 " ] || fail "before the skew the request ran on $(trace_nodes base), not n1 n2 n3"
echo "before the skew: a request coordinated by n1 ran on $(trace_nodes base)"

for phase in ahead behind; do
  if [ $phase = ahead ]; then off=+${skew}s them=future own=expired; else off=-${skew}s them=expired own=future; fi
  echo "== n3's clock ${off}"
  e0=$(node_stat n3 epoch)
  for n in n1 n2; do eval "i0_$n=$(ignored $n $them)"; done
  o0=$(ignored n3 $own)
  stop_node n3
  mark_logs
  start_skewed n3 "$off"
  wait_until 30 now_epoch n3 "$e0" || { dump_logs; fail "n3 did not start under faketime $off"; }
  c=$(clock_of n3)
  [ "${c#-}" -ge $((skew - 30)) ] && [ "${c#-}" -le $((skew + 30)) ] || fail "n3's clock is $c s from ours, not $off"
  # Rejections both ways, logged and counted.
  for n in n1 n2; do
    wait_until 20 rejects $n n3 $them || { dump_logs; fail "$n logged no rejection of n3's adverts ($them) naming the clock tolerance"; }
    wait_until 30 eval "[ \"\$(ignored $n $them)\" -gt \"\$i0_$n\" ]" || fail "$n does not count n3's adverts as ignored '$them'"
  done
  # Refusals are logged at most once a second per verdict, whoever sent them (runtime/node.c),
  # so n3's log may name only one of n1 and n2; its counter counts both.
  wait_until 30 rejects n3 'n[12]' $own || { dump_logs; fail "n3 logged no rejection of the others' adverts ($own) naming the clock tolerance"; }
  wait_until 30 eval "[ \"\$(ignored n3 $own)\" -ge \$((o0 + 2)) ]" || fail "n3 does not count the others' adverts as ignored '$own'"
  wait_until 30 peers_are n1 n2 && wait_until 30 peers_are n2 n1 && peers_are n3 "" ||
    fail "peer lists: n1 [$(node_stat n1 peer_ids)], n2 [$(node_stat n2 peer_ids)], n3 [$(node_stat n3 peer_ids)]"
  set_policy equal   # n3 started again with its configured policy
  echo "  n3's clock $c s from ours; n1 logged: $(grep "advert of 'n3' ignored ($them)" "$dir/n1.log" | tail -1 | sed 's/.*ignored/ignored/')"
  echo "  n3 logged: $(grep "advert of 'n[12]' ignored ($own)" "$dir/n3.log" | tail -1 | sed 's/.*ignored/ignored/')"
  echo "  ignored '$them' at n1 $(eval echo \$i0_n1) -> $(ignored n1 $them), n2 $(eval echo \$i0_n2) -> $(ignored n2 $them);" \
       "ignored '$own' at n3 $o0 -> $(ignored n3 $own); peers: n1 [$(node_stat n1 peer_ids | tr -d "[]'")], n3 [$(node_stat n3 peer_ids | tr -d "[]'")]"

  # The healthy nodes work without n3.
  infer_bg $phase-n1; wait $infer_pid || true
  iv=$(infer_verdict "$dir/$phase-n1" "$dir/$phase-n1")
  [ "$iv" = ok ] || fail "a request coordinated by n1 failed with n3 skewed: $iv"
  [ "$(trace_nodes $phase-n1)" = "n1 n2 " ] || fail "the request coordinated by n1 ran on $(trace_nodes $phase-n1), expected n1 n2"
  tags=
  for k in 1 2 3 4; do shell_req n2 "$phase-h$k" "$x"; tags="$tags $phase-h$k"; done
  # The skewed node runs what is sent to it alone.
  for k in 1 2; do shell_req n3 "$phase-s$k" "$x"; tags="$tags $phase-s$k"; done
  infer_bg $phase-n3 n3; wait $infer_pid || true
  for tag in $tags; do wait_until 70 has_answer "$tag" || { dump_logs; fail "$tag has no answer within 70 s"; }; done
  sleep 0.5
  res=$(ALLOW_ERRORS=0 check_results "$ref" $phase-h1 $phase-h2 $phase-h3 $phase-h4) ||
    { echo "$res"; fail "shell requests to n2 with n3 skewed"; }
  res3=$(check_results "$ref" $phase-s1 $phase-s2) || { echo "$res3"; fail "shell requests to the skewed n3"; }
  iv3=$(infer_verdict "$dir/$phase-n3" "$dir/$phase-n3")
  [ "$iv3" != ok ] || [ "$(trace_nodes $phase-n3)" = "n3 " ] || fail "the request to n3 ran on $(trace_nodes $phase-n3)"
  alive n3 || fail "n3 crashed or has a sanitizer report: $(tail -20 "$dir/n3.log")"
  echo "PASS clock $off: n3's adverts rejected by n1 and n2 (ignored '$them'), n3 rejects theirs (ignored '$own')" \
       "and is no one's peer; n1's request ran on $(trace_nodes $phase-n1)ok; shell to n2: $(echo "$res" | tail -1 | cut -d' ' -f2-);" \
       "to n3: shell $(echo "$res3" | tail -1 | cut -d' ' -f2-3), nnmesh infer $iv3 (on $(trace_nodes $phase-n3| sed 's/ $//')); n3 still running"
done

echo "== n3's clock right again"
e0=$(node_stat n3 epoch)
stop_node n3
restart_node n3
wait_until 30 now_epoch n3 "$e0" || { dump_logs; fail "n3 did not restart"; }
wait_until 30 mesh_complete || { dump_logs; fail "the mesh is not complete again with n3's clock right"; }
echo "PASS with its clock right n3 is everyone's peer again ($(since "$t0") s)"
