#!/bin/sh
# tests/security/eavesdrop.sh — attack: a passive eavesdropper records all the brokers'
# traffic (tcpdump on the loopback interface, the brokers' ports) while sealed requests run on
# a 3-node example mesh (examples/mesh-up.sh, LeNet-5) where n3 holds no model
# (--no-model n3), policy equal: n3 gets parts, so their weights cross the wire.
# The input is distinctive (seeded random floats, no zero runs). The capture is real (it holds
# the MQTT topic strings nnmesh/<mesh>/inbox/...; the coordinator counted the model slices it
# sent), yet no 32-byte window of the input tensor's bytes, of the output tensor's bytes or
# of the model's weights (every ONNX initializer) occurs in it (python3 over the raw pcap).
# Control: a second capture with one plaintext shell request of the same input (mosquitto_pub
# -f, by design unsealed) does contain the input's and output's windows: the search finds what
# is there.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/dist_lib.sh"
. "$top_srcdir/tests/security/sec_lib.sh"
TCPDUMP=$(command -v tcpdump || echo /usr/bin/tcpdump)
[ -x "$TCPDUMP" ] || { echo "SKIP: tcpdump not found"; exit 77; }
model=$LENET
x=$base/distinctive.npy
"$SYS_PYTHON" -c 'import numpy as np, sys
np.save(sys.argv[1], np.random.default_rng(20261124).uniform(0.05, 1.0, (1, 1, 28, 28)).astype(np.float32))' "$x"
t_all=$(now)
sec_start eavesdrop --nodes 3 --keepalive 5 --interval 2 --no-model n3
set_policy equal
ports="port $BROKER_A_PORT"
[ -z "${MEMBER_A_PORT:-}" ] || ports="$ports or port $MEMBER_A_PORT"

# capture_start FILE / capture_stop: tcpdump by pid, packets written as they come (-U).
capture_start() {
  "$TCPDUMP" -i lo -U -s 0 -w "$1" $ports 2>"$1.err" &
  tcpdump_pid=$!
  bg_pids="$bg_pids $tcpdump_pid"
  wait_until 10 grep -q "listening on" "$1.err" || { cat "$1.err"; echo "SKIP: tcpdump cannot capture on lo"; exit 77; }
}
capture_stop() {
  sleep 0.5
  kill -INT "$tcpdump_pid"
  wait "$tcpdump_pid" 2>/dev/null || true
}
# search PCAP: for each secret, how many of its 32-byte windows occur in the capture.
search() {
  "$SYS_PYTHON" - "$1" "$x" "$ref" "$model" "$MESH" <<'EOF'
import sys
import numpy as np
import onnx
from onnx import numpy_helper
pcap, xin, out, model, mesh = sys.argv[1:6]
raw = open(pcap, "rb").read()
W = 32
def windows(b):
    # Low-entropy windows (runs of one value) could occur anywhere by chance: left out.
    return {b[i:i + W] for i in range(len(b) - W + 1) if len(set(b[i:i + W])) >= 8}
secrets = {
    "input": windows(np.load(xin).tobytes()),
    "output": windows(np.load(out).tobytes()),
    "weights": set().union(*[windows(numpy_helper.to_array(t).tobytes())
                             for t in onnx.load(model).graph.initializer]),
}
hits = {k: 0 for k in secrets}
for i in range(len(raw) - W + 1):
    w = raw[i:i + W]
    for k, s in secrets.items():
        if w in s:
            hits[k] += 1
topics = raw.count(f"nnmesh/{mesh}/inbox/".encode())
print(f"bytes {len(raw)} inbox_topics {topics} " +
      " ".join(f"{k} {hits[k]}/{len(s)}" for k, s in secrets.items()))
EOF
}

capture_start "$dir/sealed.pcap"
infer_ok sealed-1
infer_ok sealed-2
capture_stop
{ trace_nodes "$dir/sealed-1.out"; trace_nodes "$dir/sealed-2.out"; } | grep -qx n3 || fail "n3 ran no part"
# polled: the coordinator's stats may be published after the client got the answer
wait_until 30 stat_sum_ge coordinator.models_sent 1 ||
  fail "no model slice was sent to n3 (coordinator.models_sent 0)"
sent=$(stat_sum coordinator.models_sent)
r=$(search "$dir/sealed.pcap")
echo "sealed capture: $r (hits/windows); model slices sent to n3: $sent"
set -- $r
[ "$2" -gt 100000 ] && [ "$4" -gt 10 ] || fail "the capture is not real: $r"
[ "${6%/*}" = 0 ] && [ "${8%/*}" = 0 ] && [ "${10%/*}" = 0 ] || fail "secret bytes in the sealed capture: $r"
echo "PASS eavesdropper saw $2 bytes, $4 inbox topic strings, and no 32-byte window of the input," \
     "output or weights"

# Control: a plaintext shell request of the same input is visible to the same search.
capture_start "$dir/plain.pcap"
shell_ok plain-1
capture_stop
r=$(search "$dir/plain.pcap")
echo "plaintext control capture: $r"
set -- $r
[ "${6%/*}" -gt 0 ] && [ "${8%/*}" -gt 0 ] || fail "the search missed the plaintext shell request's input/output: $r"
echo "PASS control: the search finds the input and output of a plaintext shell request (${6%/*} and ${8%/*} windows)"
still_serving
echo "eavesdrop.sh done in $(since "$t_all") s"
