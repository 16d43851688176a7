#!/bin/sh
# tests/security/revoke.sh — issue 6, revocation: a key revoked in the shared trust file is
# refused by every node within 10 s, through the peer table AND the secure link, on a 3-node
# example mesh (examples/mesh-up.sh: real mosquitto, real nnmeshd) with policy `equal`, so
# that n3 really runs parts of n1's requests before it is revoked.
#  (a) `nnmesh trust revoke` of n3's key, no signal: the nodes notice the changed file by
#      themselves; within 10 s n3 is gone from n1's and n2's peers (stats peer_ids, logged
#      "revoked"); tasks n3 then sends (a shell request coordinated by n3) are dropped by n1
#      and n2 and counted (stats drops.untrusted); requests to n1 still give the single-node
#      output without n3. Prints the time from the revoke to the rejection.
#  (b) a broken trust file: logged by the watcher and by SIGHUP, the old store kept, the
#      nodes keep serving.
#  (c) n3 admitted again (revoke line removed, SIGHUP): it rejoins and runs parts again
#      (a new handshake); then revoked again with SIGHUP right after the edit: gone within
#      10 s, time printed.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../dist_lib.sh"
x="$SAMPLES/sample-2-trouser.npy"

pid_of() { cat "$dir/$1.pid"; }
alive() { kill -0 "$(pid_of "$1")" 2>/dev/null; }
# peer_ids NODE: the live peers in NODE's retained stats, space-separated.
peer_ids() { node_stat "$1" peer_ids | tr -d "[]',"; }
has_peer() { case " $(peer_ids "$1") " in *" $2 "*) return 0 ;; esac; return 1; }
lacks_peer() { _p=$(peer_ids "$1"); [ -n "$_p" ] || [ "$(node_stat "$1" peers)" = 0 ] || return 1
               case " $_p " in *" $2 "*) return 1 ;; esac; return 0; }
n3_gone() { lacks_peer n1 n3 && lacks_peer n2 n3; }
n3_back() { has_peer n1 n3 && has_peer n2 n3; }
# replace_trust SED-SCRIPT: edits the trust file atomically (new inode), as `nnmesh trust` does.
replace_trust() {
  sed -e "$1" "$dir/mesh.trust" >"$dir/mesh.trust.new" && chmod 644 "$dir/mesh.trust.new" &&
    mv "$dir/mesh.trust.new" "$dir/mesh.trust"
}
# infer_run NAME: nnmesh infer coordinated by n1, waited for; checks the output.
infer_run() {
  infer_bg "$1" n1
  wait "$infer_pid" || true
  [ "$(infer_verdict "$dir/$1" "$dir/$1")" = ok ] || fail "nnmesh infer $1: $(cat "$dir/$1.err")"
}
# shell_round TAG N: N shell requests to n1, all answered with the single-node output.
shell_round() {
  _tags=
  for _k in $(seq "$2"); do shell_req n1 "$1-$_k" "$x"; _tags="$_tags $1-$_k"; done
  for _t in $_tags; do wait_until 60 has_answer "$_t" || { dump_logs; fail "request $_t not answered"; }; done
  ALLOW_ERRORS=0 check_results "$ref" $_tags | tail -1
}

t_all=$(now)
mesh_start revoke --nodes 3 --interval 1 --task-timeout 3
"$NNMESH" run "$LENET" -i "$x" -o "$dir/ref" >/dev/null
ref=$dir/ref/output.npy
set_policy equal
key3=$(awk '$1 == "node" && $2 == "n3" { print $3 }' "$dir/mesh.trust")
[ -n "$key3" ] || fail "n3 is not in $dir/mesh.trust"

echo "== before: n3 takes part"
infer_run before
case " $(trace_nodes before) " in *" n3 "*) ;; *) fail "n3 ran no part before the revoke: $(trace_nodes before)" ;; esac
echo "  nnmesh infer via n1: ok, parts on: $(trace_nodes before)"
shell_round pre 2

echo "== (a) nnmesh trust revoke of n3's key, no signal (the nodes watch the file)"
u1=$(node_stat n1 drops.untrusted) u2=$(node_stat n2 drops.untrusted)
t0=$(now)
"$NNMESH" trust revoke "$dir/mesh.trust" "$key3" >/dev/null
wait_until 10 n3_gone || { dump_logs; fail "n3 still in n1's or n2's peers 10 s after the revoke"; }
t_gone=$(since "$t0")
echo "  n3 gone from n1's and n2's peers $t_gone s after the revoke (limit 10 s)"
for n in n1 n2; do
  grep -q "file changed: trust file .* reloaded: 1 key revoked (n3 key" "$dir/$n.log" ||
    fail "$n did not log the reload: $(grep -i trust "$dir/$n.log" | tail -3)"
  grep -q "peer n3 revoked (key" "$dir/$n.log" || fail "$n did not log n3's eviction"
  [ "$(node_stat $n membership.revoked)" = 1 ] || fail "$n: membership.revoked is not 1"
done
grep -q "does not admit this node itself" "$dir/n3.log" || fail "n3 did not warn that it is revoked"
echo "  logged: $(grep -h "peer n3 revoked" "$dir/n1.log" | head -1 | cut -c1-150)..."
# n3 still trusts n1 and n2 and believes in its sessions: a request it coordinates sends
# tasks to them, which they must drop and count.
shell_req n3 from-n3 "$x"
wait_until 20 eval '[ "$(node_stat n1 drops.untrusted)" -gt "$u1" ] && [ "$(node_stat n2 drops.untrusted)" -gt "$u2" ]' ||
  { dump_logs; fail "frames from n3 were not counted as untrusted by n1 and n2"; }
echo "  frames from n3 dropped: n1 drops.untrusted $u1 -> $(node_stat n1 drops.untrusted)," \
     "n2 $u2 -> $(node_stat n2 drops.untrusted)"
n3_gone || fail "n3 came back into a peer table"
infer_run after
case " $(trace_nodes after) " in *" n3 "*) fail "n3 ran a part after its revoke" ;; esac
echo "  nnmesh infer via n1: ok, parts on: $(trace_nodes after)"
shell_round post 4

echo "== (b) a broken trust file: logged, the old store kept"
cp "$dir/mesh.trust" "$dir/mesh.trust.good"
replace_trust '$a node broken-line'
wait_until 30 grep -q "file changed: .*keeping the trust file loaded before" "$dir/n1.log" ||
  fail "n1 did not log the broken trust file"
kill -HUP "$(pid_of n1)"
wait_until 30 grep -q "SIGHUP: .*keeping the trust file loaded before" "$dir/n1.log" ||
  fail "n1 did not log the broken trust file on SIGHUP"
echo "  $(grep -h "SIGHUP: .*keeping" "$dir/n1.log" | tail -1 | cut -c1-170)"
for n in n1 n2 n3; do alive $n || fail "$n died on a broken trust file"; done
n3_gone || fail "n3 came back with the broken trust file"
shell_round broken 2

echo "== (c) n3 admitted again (SIGHUP), then revoked again with SIGHUP"
sess=$(node_stat n1 link.sessions)
replace_trust '/^revoke /d; /^node broken-line/d'
t0=$(now)
for n in n1 n2 n3; do kill -HUP "$(pid_of $n)"; done
wait_until 15 n3_back || { dump_logs; fail "n3 did not rejoin within 15 s of being admitted again"; }
echo "  n3 back in n1's and n2's peers after $(since "$t0") s"
infer_run again
case " $(trace_nodes again) " in *" n3 "*) ;; *) fail "n3 ran no part after it was admitted again" ;; esac
# polled: n1's stats may be published after the client got the answer
more_sessions() { sess2=$(node_stat n1 link.sessions); [ "${sess2:-0}" -gt "$sess" ]; }
wait_until 30 more_sessions || fail "n1 made no new session after n3 was admitted again"
echo "  nnmesh infer via n1: ok, parts on: $(trace_nodes again) (n1 link sessions $sess -> $sess2)"
t0=$(now)
"$NNMESH" trust revoke "$dir/mesh.trust" "$key3" >/dev/null
for n in n1 n2 n3; do kill -HUP "$(pid_of $n)"; done
wait_until 10 n3_gone || { dump_logs; fail "n3 still in a peer table 10 s after revoke + SIGHUP"; }
echo "  n3 gone again $(since "$t0") s after revoke + SIGHUP (reloaded by:" \
     "$(grep -h "reloaded: 1 key revoked" "$dir/n1.log" | tail -1 | sed 's/.* n1: \([^:]*\): trust file.*/\1/'))"
shell_round last 2
for n in n1 n2 n3; do alive $n || fail "$n is not running"; done
echo "revoke.sh: rejected in $t_gone s (watch) ; total $(since "$t_all") s"
