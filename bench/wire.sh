#!/bin/sh
# bench/wire.sh — the wire benchmark (issue 3): sealing and codec MB/s, and tensor transfer
# through mosquitto against a raw TCP baseline measured in the same run. Builds nothing: run
# it from a build directory after `make` (bench/wire_bench is a noinst program, never run by
# `make check`), on a machine as idle as you can get:
#
#   sh ../bench/wire.sh [OUT]          # OUT defaults to $top_srcdir/docs/BENCH_WIRE.md
#
# ROUNDS (default 5) rounds per transfer figure; MB (default 16) MB per throughput stream.
# The seal part is run twice: with glibc's default malloc, then with GLIBC_TUNABLES keeping
# large buffers on the heap (no mmap/munmap per message), to show what allocation costs.
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
tuned='glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$bench" seal >"$tmp/seal" 2>"$tmp/log"
GLIBC_TUNABLES=$tuned "$bench" seal >"$tmp/seal_tuned" 2>>"$tmp/log"
load_mid=$(cut -d' ' -f1-3 /proc/loadavg)
"$bench" transfer --rounds "$rounds" --mb "$mb" >"$tmp/transfer" 2>>"$tmp/log"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

{
echo "# Wire benchmark: sealing, codecs, and transfer through mosquitto vs raw TCP"
echo
echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores ($(sed -n 's/^model name\t: //p' /proc/cpuinfo | head -1)),"
echo "$(mosquitto -h 2>/dev/null | head -1 | sed 's/ is an MQTT.*//' || echo mosquitto), Paho MQTTAsync, libsodium $(pkg-config --modversion libsodium 2>/dev/null || echo '?')."
echo "Command: \`sh bench/wire.sh\` from the build directory (ROUNDS=$rounds MB=$mb), i.e."
echo "\`bench/wire_bench seal\`, the same under \`GLIBC_TUNABLES=$tuned\`, and"
echo "\`bench/wire_bench transfer --rounds $rounds --mb $mb\`."
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
echo "Same, with large buffers kept on the heap (GLIBC_TUNABLES above):"
echo
sed -n '/^### Sealing/,/^Target/p' "$tmp/seal_tuned" | sed 1,2d
echo
echo "## 2. Transfer"
echo
cat "$tmp/transfer"
cat <<'EOF'
## What limits it

- **Sealing (target 1 GB/s).** XChaCha20-Poly1305 alone runs at about 1.3-1.4 GB/s here
  ("seal alone", "open alone"), and msgpack framing copies at 15-25 GB/s, so the crypto sets
  the ceiling. With glibc's defaults a 1 MiB frame still lands near half of it: every buffer
  of 128 KiB or more is a fresh mmap whose pages are faulted in and zeroed (about 1 ms per
  MiB), then unmapped on free. Keeping big buffers on the heap (the GLIBC_TUNABLES run, which
  a node could do with mallopt, or the link could do by reusing its seal/open buffers) brings
  1 MiB to the crypto ceiling and meets the target. At 4 KiB the per-frame costs (header
  encode, nonce, allocation) keep it below 1 GB/s whatever the allocator.
- **Broker path (target 50% of TCP at 1 MiB): not met.** The link reaches about 10-17% of
  raw TCP with NONE (INT8_AFFINE ~30%). Each tensor is copied about a dozen times (body encode, inner frame, CHUNK bodies,
  seal, Paho's publish copy, kernel in/out of mosquitto twice, Paho's receive buffer, open,
  reassembly, frame and tensor decode) against the kernel's two copies for TCP, and two
  crypto passes; a 1 MiB tensor is two sealed CHUNKs, since frames are capped at 1 MiB
  (DESIGN.md: Paho stalls on larger messages). On 2 cores the sending thread, Paho's send and
  receive threads of both clients, the single-threaded mosquitto and the receiving thread
  all compete, while raw TCP needs two threads.
- **Paho and mosquitto alone** ("bare MQTT" rows: the same bytes, no framing, sealing or
  flow control) already cost most of the gap: at 1 KiB they are no faster than the link.
  Unpaced QoS 0 bursts of larger messages collapse (64 KiB-16 MiB rows: ~10 MB/s, and
  seconds of latency for 16 x 1 MiB pieces; 64 KiB collapses in some runs, not all), the
  Paho stall of DESIGN.md once the socket backs up; in a side run with bursts of only 4-7 x 1 MiB the bare path reached 270-350 MB/s
  (25-35% of TCP). The link's credit window (16 MiB) keeps it out of the stall. So even a
  free link would not reach 50% through this client and broker on this machine; that needs
  a cheaper broker path (fewer copies in the client, or a direct peer socket for bulk
  tensors with MQTT kept for discovery and control).
- **QoS.** Tensors go at QoS 0 with the link's own acknowledgements and window (QoS 1
  pipelining through Paho is pathological, DESIGN.md); nothing was lost in these runs.
- **Codecs.** INT8_AFFINE (4x fewer bytes, ~1 GB/s encode) is the one codec that pays on
  this link: it roughly doubles 1 MiB-16 MiB throughput and halves latency. F16 halves the
  bytes but its encoder (a scalar loop, 0.4-1.3 GB/s) eats the gain; LZ4 finds only ~1.5x on
  ReLU data with scattered zeros and its encoder (0.3-0.8 GB/s) is slower than the link.
EOF
} >"$out"
echo "wire.sh: wrote $out" >&2
