#!/bin/sh
# tests/security/tampered_tensor.sh — attack: a sealed frame carrying a request's tensor is
# captured on its way to n2's inbox (an anonymous mosquitto_sub: the example ACL lets anyone
# read nnmesh/#), one bit is flipped, and it is published again to the same inbox (anyone may
# write to inboxes): once with the bit in the ciphertext, once in the authentication tag.
# 3-node example mesh (examples/mesh-up.sh, LeNet-5), policy equal so that n1, coordinating,
# sends every node a part. n2 drops both (stats drops.bad_tag +2: the XChaCha20-Poly1305 tag
# does not verify), runs nothing for them (slices_run unchanged), keeps serving, and requests
# before and after give the nnmesh run output.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/dist_lib.sh"
. "$top_srcdir/tests/security/sec_lib.sh"
model=$LENET
x=$SAMPLES/sample-1-pullover.npy
t_all=$(now)
sec_start tampered --nodes 3 --keepalive 5 --interval 2
set_policy equal
inbox=nnmesh/$MESH/inbox/n2

# Capture: the frames to n2 during an honest request.
witness "$dir/captured" "$inbox"
infer_ok before
trace_nodes "$dir/before.out" | grep -qx n2 || fail "n2 ran no part of the request: $(cat "$dir/before.out")"
wait_until 30 $FRAMES pick "$dir/captured" "$dir/frame.bin" --to n2 --types TASK,TENSOR,CHUNK --largest >/dev/null ||
  { $FRAMES list "$dir/captured"; fail "no sealed TASK/TENSOR/CHUNK frame to n2 was captured"; }
line=$($FRAMES pick "$dir/captured" "$dir/frame.bin" --to n2 --types TASK,TENSOR,CHUNK --largest)
set -- $line
len=$8 hl=$9
echo "captured on $inbox: $3 frame from $4, counter $6, $len bytes (header $hl, then nonce 24, ciphertext, tag 16)"
$FRAMES flip "$dir/frame.bin" "$dir/bad-ct.bin" $(( hl + 24 + (len - hl - 40) / 2 ))
$FRAMES flip "$dir/frame.bin" "$dir/bad-tag.bin" -1

# The baselines: n2's stats published after the request ended (after a fixed wait they
# could be the copy from before its slices, which would then look like work of the attack).
fresh_stats n2
bt0=$(stat n2 drops.bad_tag)
sr0=$(stat n2 slices_run)
for f in bad-ct bad-tag; do
  mosquitto_pub -h 127.0.0.1 -p "$BROKER_A_PORT" -q 1 -t "$inbox" -f "$dir/$f.bin" ||
    fail "mosquitto_pub of $f.bin to $inbox failed"
  wait_until 30 seen_in "$dir/captured" "$inbox" "$dir/$f.bin" || fail "the broker did not carry $f.bin"
done
echo "attempt: 2 altered copies (bit flipped at ciphertext byte $(( 24 + (len - hl - 40) / 2 )) and in the tag)" \
     "published anonymously to $inbox and carried by the broker"
wait_until 20 stat_ge n2 drops.bad_tag $((bt0 + 2)) ||
  { dump_logs; fail "n2 counted $(stat n2 drops.bad_tag) bad tags, not $((bt0 + 2))"; }
sleep 2.5   # room for anything the frames could have started to run
fresh_stats n2   # and stats published after it, so that it would show
# The operator sees it in the log too (the node reports link drops at most every 10 s).
wait_until 15 grep -q "link dropped frames: .*altered or forged (bad tag)" "$dir/n2.log" ||
  fail "n2 did not log the altered frames"
grep "link dropped frames" "$dir/n2.log" | tail -1
[ "$(stat n2 slices_run)" = "$sr0" ] || fail "n2 ran slices for altered frames: slices_run $sr0 -> $(stat n2 slices_run)"
echo "PASS n2 dropped both: drops.bad_tag $bt0 -> $(stat n2 drops.bad_tag), slices_run $sr0 -> $(stat n2 slices_run)," \
     "drops.malformed $(stat n2 drops.malformed), drops.replay $(stat n2 drops.replay)"

still_serving
infer_ok after
trace_nodes "$dir/after.out" | grep -qx n2 || fail "n2 ran no part after the attack: $(cat "$dir/after.out")"
shell_ok honest-1 honest-2
echo "tampered_tensor.sh done in $(since "$t_all") s"
