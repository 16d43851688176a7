#!/bin/sh
# bench/wire.sh — the wire benchmark (issue 3): sealing and codec MB/s, and tensor transfer
# through mosquitto against a raw TCP baseline measured in the same run. Builds nothing: run
# it from a build directory after `make` (bench/wire_bench is a noinst program, never run by
# `make check`), on a machine as idle as you can get:
#
#   sh ../bench/wire.sh [OUT]          # OUT defaults to $top_srcdir/docs/BENCH_WIRE.md
#
# ROUNDS (default 5) rounds per transfer figure; MB (default 16) MB per throughput stream.
# The seal part is run twice: with glibc's default malloc, then as a node runs it (--malloc
# node: nnm_node_tune_malloc, which nnmeshd calls at start, keeps large buffers on the heap,
# no mmap/munmap per message), to show what allocation costs.
# A last short run (--cpu 1) records the CPU time per MiB of each thread and of the broker
# while 1 MiB tensors stream (section 3 of the output).
set -eu
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top_srcdir/docs/BENCH_WIRE.md}
rounds=${ROUNDS:-5}
mb=${MB:-16}
bench=./bench/wire_bench
if [ ! -x "$bench" ]; then
  echo "wire.sh: $bench not found: run from a build directory after make" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$bench" seal >"$tmp/seal" 2>"$tmp/log"
"$bench" seal --malloc node >"$tmp/seal_tuned" 2>>"$tmp/log"
load_mid=$(cut -d' ' -f1-3 /proc/loadavg)
"$bench" transfer --rounds "$rounds" --mb "$mb" >"$tmp/transfer" 2>>"$tmp/log"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
prof="transfer --rounds 3 --mb 64 --sizes 1m --codecs none,int8 --cpu 1"
broker_tuned='GLIBC_TUNABLES=glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=268435456'
# shellcheck disable=SC2086
"$bench" $prof --paths link >"$tmp/cpu_table" 2>"$tmp/cpu_log"
# shellcheck disable=SC2086
"$bench" $prof --paths bare,link --broker-env "$broker_tuned" >"$tmp/cpu_table2" 2>"$tmp/cpu_log2"
grep '^cpu: ' "$tmp/cpu_log" >"$tmp/cpu" || true
grep '^cpu: ' "$tmp/cpu_log2" >"$tmp/cpu2" || true

{
echo "# Wire benchmark: sealing, codecs, and transfer through mosquitto vs raw TCP"
echo
echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores ($(sed -n 's/^model name\t: //p' /proc/cpuinfo | head -1)),"
echo "$(mosquitto -h 2>/dev/null | head -1 | sed 's/ is an MQTT.*//' || echo mosquitto), Paho MQTTAsync, libsodium $(pkg-config --modversion libsodium 2>/dev/null || echo '?')."
echo "Command: \`sh bench/wire.sh\` from the build directory (ROUNDS=$rounds MB=$mb), i.e."
echo "\`bench/wire_bench seal\`, \`bench/wire_bench seal --malloc node\`, and"
echo "\`bench/wire_bench transfer --rounds $rounds --mb $mb\`, then the two profiled runs of section 3."
echo "Load average (1/5/15 min) before: $load_before; after the seal part: $load_mid; after: $load_after."
echo "The machine is 2 cores shared with the rest of the team's builds and tests: absolute"
echo "figures move by 2x between runs; the ratios (measured side by side, round by round) less so."
echo "MB = 10^6 bytes; tensor sizes are powers of two (1 MiB = 1,048,576 bytes)."
echo
echo "## 1. Framing and sealing (no network)"
echo
echo "glibc malloc defaults:"
echo
cat "$tmp/seal"
echo "As a node runs it: large buffers kept on the heap (\`--malloc node\`: nnm_node_tune_malloc,"
echo "which nnmeshd calls at start; mmap threshold 64 MiB, trim threshold 128 MiB):"
echo
sed -n '/^### Sealing/,/^Target/p' "$tmp/seal_tuned" | sed 1,2d
echo
echo "## 2. Transfer"
echo
cat "$tmp/transfer"
echo "## 3. Where the CPU goes (1 MiB tensors, 64 MB streams, 3 rounds)"
echo
echo "\`bench/wire_bench $prof\`, first \`--paths link\` against a fresh default broker, then"
echo "\`--paths bare,link --broker-env $broker_tuned\` (that broker's malloc keeps big"
echo "buffers instead of mapping, faulting in and trimming them per message). Per stream, CPU"
echo "milliseconds per MiB of tensor bytes of each thread of the bench process, by name"
echo "(wb-sender encodes, chunks, seals and publishes; MQTTAsync_send is Paho's writer;"
echo "MQTTAsync_rcv is Paho's reader, which runs the receiving link's open and reassembly;"
echo "wire_bench is the receiving application thread: tensor decode), and of the broker, from"
echo "/proc/.../schedstat. Both links and both bare clients live in one process here, so one"
echo "Paho reader serves both sides."
echo
echo "Default broker:"
echo
echo '```'
cat "$tmp/cpu"
echo '```'
echo
sed -n '/^| 1 MiB/p' "$tmp/cpu_table" | sed 's/^/    /'
echo
echo "Broker with big buffers kept on its heap:"
echo
echo '```'
cat "$tmp/cpu2"
echo '```'
echo
sed -n '/^| 1 MiB/p' "$tmp/cpu_table2" | sed 's/^/    /'
echo
cat <<'EOF'
## What limits it

- **Bare MQTT stall (fixed).** The morning's "bare MQTT" rows (8-15 MB/s for 64 KiB-16 MiB,
  2 s latency at 16 MiB) were Paho, not the broker or the socket buffers: when a publish does
  not fit the socket's send buffer, Paho MQTTAsync (1.3.11/1.3.12) parks the rest as a
  "pending write" and holds every later command of that client; only its receive thread
  finishes the write, at the top of its poll loop, and finishing it does not wake the send
  thread, which looks at its queue again only after a 1 s timed wait. A burst queued in Paho
  behind one partial write therefore waited ~1 s (seen in Paho's trace: one 1 s gap per
  "Partial write"). nnm_mqtt (transport/mqtt.c) now paces QoS 0 publishes from application
  threads: a publish waits until Paho has written the earlier ones (Paho calls onSuccess for
  QoS 0 once the bytes are in the socket; up to 256 KiB of small messages may queue), so
  nothing waits behind a partial write and every publish wakes Paho's send thread itself;
  and the send buffer of Paho's sockets is raised to 4 MiB (8 MiB after the kernel's
  doubling) so partial writes become rare. Publishes from Paho's own threads (a link
  answering inside on_message) never wait. The wire_bench broker already ran with
  `set_tcp_nodelay true` (tests/support/broker.c) and nnm_mqtt sets TCP_NODELAY on Paho's
  sockets; neither was the cause. Bare MQTT at 1 MiB went from ~8 to ~550-1000 MB/s, the
  link (NONE) from ~190-280 to ~350-500 MB/s, and 16 MiB latency through the bare path from
  2 s to ~25 ms.
- **Broker path, codec NONE (target 50% of TCP at 1 MiB): not met, and not reachable on
  this machine.** Section 3 is the budget per MiB: the sender ~1.0 ms (sealing ~0.73 ms of
  it: XChaCha20-Poly1305 at ~1.37 GB/s; the rest framing, chunking, copies and Paho's copy
  of the publish), Paho's writer ~0.3 ms, the broker ~0.45 ms, Paho's reader with the
  receiving link ~1.1-1.4 ms (opening ~0.73 ms; the rest the socket read, Paho's copy and
  reassembly), the receiving application ~0.15 ms (tensor decode): ~3-3.7 ms of CPU per MiB
  in all (4.4-5.3 ms with a fresh default broker, next point), on 2 cores shared by all of
  them, so >= ~1.5-1.9 ms per MiB at perfect overlap, i.e. <= ~550-700 MB/s, while raw TCP
  moves a MiB in 0.3-0.6 ms (1.8-3.2 GB/s, mostly the kernel's two copies). The best
  possible here is ~20-35% of raw TCP; the link lands at ~10-21% (the rest is overlap lost
  on 2 busy cores, one Paho reader doing every open in this one-process bench, and the rest
  of the team's load). Crypto alone (~1.5 ms CPU per MiB) would cap even a free broker
  path at ~1.3 GB/s on two cores. Reaching 50% with NONE needs
  a cheaper path, not a tuned one: a direct peer socket for bulk tensors (MQTT kept for
  discovery and control), a cheaper cipher (a wire change), or more cores.
- **The broker's malloc.** A fresh mosquitto spends ~1.1-1.8 ms per MiB instead of ~0.4-0.6
  on half-MiB messages: glibc maps, faults in and trims its big packet buffers per message
  until its dynamic thresholds have grown (a broker that has first carried whole-MiB
  messages, or runs with the GLIBC_TUNABLES of section 3, stays at ~0.4-0.6). That is a
  third of the link's CPU per MiB (section 3 and earlier runs: ~0.10 of TCP against a fresh
  default broker, 0.16-0.19 against a tuned one); brokers started for meshes
  (examples/mesh-up.sh) could set those tunables.
- **INT8_AFFINE is now the fast path.** Its encoder called nearbyintf per element (the
  library call saves and restores the floating-point environment) and ran at ~1 GB/s; it
  now rounds with the 1.5 * 2^23 addition and quantises four lanes at a time with SSE2
  (scalar fallback elsewhere), byte for byte the same output (golden vectors and a
  3,000-tensor comparison against the old loop), at ~4 GB/s (4 KiB) to ~7 GB/s (1 MiB).
  With 4x fewer bytes on the wire the link then moves 1-16 MiB tensors at ~0.9-1.6 GB/s,
  about 40-75% of raw TCP here (section 2: 71-74%), where 8-bit activations are acceptable. F16 (a scalar converter at ~0.5 GB/s) and LZ4 (~0.4
  GB/s encode, ~1.5x on ReLU data) cost more than they save on this link; so does
  NNM_CODEC_AUTO, which LZ4-compresses every tensor and keeps the result when it saves 10%.
- **Copies removed.** The chunked path encodes the inner frame (header and body) in one pass
  instead of encoding the body and copying it behind the header (a 1 MiB buffer and copy
  fewer per tensor; the same bytes on the wire). The copies left are ones an API forces:
  the CHUNK body (libsodium seals one contiguous plaintext), Paho's copy of every publish
  and its receive buffer, and the decoded tensor the application owns. Keeping the link's
  own big buffers on the heap (GLIBC_TUNABLES for the bench process) changed nothing
  measurable in the stream.
- **Sealing (target 1 GB/s).** XChaCha20-Poly1305 alone runs at ~1.37 GB/s, msgpack framing
  at 15-25 GB/s. The section 1 loop allocates and frees every buffer per call, so with
  glibc's defaults each 1 MiB call maps and faults in fresh pages and lands near 570 MB/s;
  with big buffers kept on the heap, as every nnmeshd keeps them (nnm_node_tune_malloc at
  start), it reaches ~1.25-1.3 GB/s and meets the target. A program of your own that links
  libnnmesh gets glibc's defaults unless it calls nnm_node_tune_malloc too. In the
  stream (section 3) the sending thread spends ~1.0 ms per MiB on encode, chunking, sealing
  and Paho's copy together, i.e. the link seals at >= 1 GB/s in practice.
- **QoS.** Tensors go at QoS 0 with the link's own acknowledgements and window (QoS 1
  pipelining through Paho is pathological, DESIGN.md); nothing was lost in these runs.
EOF
} >"$out"
echo "wire.sh: wrote $out" >&2
