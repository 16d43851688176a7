#!/bin/sh
# tests/fault/impair_selftest.sh — the link impairment proxy (tests/tools/impair) against a
# local echo server: bytes pass intact through delay + jitter and through a rate limit (one
# connection, 2 MB each way, compared byte for byte); the measured round trip is at least
# twice the one-way delay and a rate-limited transfer takes at least its size / rate (lower
# bounds only); stall holds data and resume delivers it; cut resets the open connection and
# resets new ones (counted as refused) until heal, after which connections work again; a
# silent partition (cut hold) loses nothing; bad commands get an error and the proxy keeps
# running; the counters are printed on SIGUSR1 and at exit.
. "$(dirname "$0")/../lib.sh"
IMPAIR="$top_builddir/tests/tools/impair"
[ -x "$IMPAIR" ] || fail "$IMPAIR is not built"
work=$(mktemp -d /tmp/nnm-impair.XXXXXX)
pids=
cleanup() {
  _st=$?
  set +e
  for p in $pids; do kill "$p" 2>/dev/null; done
  for p in $pids; do wait "$p" 2>/dev/null; done
  [ $_st = 0 ] || { echo "---- proxy log"; cat "$work/impair.log"; } >&2
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
  exit $_st
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$IMPAIR" --help | grep -q '^ *cut hold ' || fail "impair --help does not describe 'cut hold'"
st=0; "$IMPAIR" --listen 127.0.0.1:0 --to 127.0.0.1:1 --delay x 2>"$work/err" || st=$?
[ $st = 2 ] && grep -q "delay needs milliseconds" "$work/err" || fail "a bad --delay: status $st, $(cat "$work/err")"

# The echo server: one thread per connection; prints its port.
cat >"$work/echo.py" <<'EOF'
import socket, threading
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
def serve(c):
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
"$SYS_PYTHON" "$work/echo.py" >"$work/echo.port" &
pids="$pids $!"
for _ in $(seq 100); do [ -s "$work/echo.port" ] && break; sleep 0.1; done
[ -s "$work/echo.port" ] || fail "the echo server did not start"

ctl="$work/ctl"
"$IMPAIR" --listen 127.0.0.1:0 --to "127.0.0.1:$(cat "$work/echo.port")" --delay 200 --jitter 50 \
  --control "$ctl" --log "$work/impair.log" --buffer 262144 >"$work/impair.out" &
ipid=$!
pids="$pids $ipid"
for _ in $(seq 100); do [ -s "$work/impair.out" ] && break; sleep 0.1; done
port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/impair.out")
[ -n "$port" ] || fail "impair did not say where it listens: $(cat "$work/impair.out")"

"$SYS_PYTHON" - "$IMPAIR" "$ctl" "$port" <<'EOF'
import os, socket, subprocess, sys, threading, time
impair, ctl, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)

def cmd(c, ok=True):
    r = subprocess.run([impair, "--control", ctl, "--send", c], capture_output=True, text=True)
    if (r.returncode == 0) != ok:
        fail(f"'{c}': status {r.returncode}, {r.stdout.strip()} {r.stderr.strip()}")
    return r.stdout.strip()

def conn():
    c = socket.create_connection(("127.0.0.1", port), 10)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c

def echo(c, data):
    """Sends data and reads it back (concurrently); returns (bytes back, seconds)."""
    got = bytearray()
    def rd():
        while len(got) < len(data):
            d = c.recv(65536)
            if not d: break
            got.extend(d)
    t = time.monotonic()
    th = threading.Thread(target=rd)
    th.start()
    c.sendall(data)
    th.join(120)
    return bytes(got), time.monotonic() - t

def rtt(c):
    return echo(c, b"p")[1]

def reset_seen(c, wait=10):
    """True if the connection ends (RST or EOF) within wait seconds."""
    c.settimeout(wait)
    try:
        return c.recv(1) == b""
    except (ConnectionResetError, ConnectionAbortedError):
        return True
    except socket.timeout:
        return False

def stat(name):
    f = cmd("stats").split()
    return int(f[f.index(name) + 1]) if name != "state" else f[f.index(name) + 1]

# 1. delay 200 ms + jitter 0..50 ms each way: bytes intact and in order, RTT >= 400 ms.
c = conn()
data = os.urandom(2_000_000)
back, el = echo(c, data)
if back != data: fail(f"2 MB through delay+jitter came back altered ({len(back)} bytes)")
rt = min(rtt(c) for _ in range(3))
if rt < 0.4: fail(f"round trip {rt:.3f} s under 2 x 200 ms of one-way delay")
print(f"delay 200 ms, jitter 50 ms: 2 MB echoed intact in {el:.2f} s; round trip {rt*1000:.0f} ms (>= 400)")

# 2. rate 8 Mbit/s (1 MB/s) each way: 1 MB echoed takes at least ~1 s.
cmd("delay 0")
cmd("rate 8M")
data = os.urandom(1_000_000)
back, el = echo(c, data)
if back != data: fail("1 MB through the rate limit came back altered")
if el < 0.9: fail(f"1 MB at 8 Mbit/s took {el:.2f} s (< 0.9 s)")
print(f"rate 8 Mbit/s: 1 MB echoed intact in {el:.2f} s (>= 1 s minus a 20 ms burst)")
cmd("rate off")

# 3. stall holds data (connections stay open), resume delivers it.
cmd("stall")
c.sendall(b"held")
c.settimeout(1.5)
try:
    d = c.recv(16)
    fail(f"data passed a stalled link: {d!r}")
except socket.timeout:
    pass
cmd("resume")
c.settimeout(10)
if c.recv(16) != b"held": fail("held data not delivered after resume")
print("stall: nothing passed for 1.5 s; resume delivered the held bytes")

# 4. cut: the open connection is reset, new ones are refused (reset) and counted; heal.
acc0, ref0, rst0 = stat("accepted"), stat("refused"), stat("resets")
cmd("cut")
if not reset_seen(c): fail("the open connection was not reset by cut")
n_try = 5
for _ in range(n_try):
    try:
        k = conn()
        if not reset_seen(k): fail("a connection made during the cut was not reset")
        k.close()
    except OSError:
        pass
if stat("refused") - ref0 != n_try: fail(f"refused count {stat('refused')} - {ref0} != {n_try}")
if stat("accepted") != acc0: fail("connections during the cut were counted as accepted")
if stat("state") != "cut": fail("state is not 'cut'")
if stat("active") != 0: fail("connections still active after cut")
cmd("heal")
c = conn()
back, _ = echo(c, b"after heal")
if back != b"after heal": fail("no echo after heal")
print(f"cut: open connection reset ({stat('resets') - rst0} reset), {n_try} new ones refused and counted; heal: echo works")

# 5. cut hold: a silent partition; nothing lost after heal, held connections go on.
cmd("cut hold")
c.sendall(b"partitioned")
k = conn()                       # accepted, not connected onwards until heal
k.sendall(b"new during partition")
c.settimeout(1.5)
try:
    fail(f"data passed a partition: {c.recv(32)!r}")
except socket.timeout:
    pass
cmd("heal")
c.settimeout(10); k.settimeout(10)
a = c.recv(32)
b = b""
while len(b) < 20: b += k.recv(32)
if a != b"partitioned" or b != b"new during partition": fail(f"after the partition: {a!r} {b!r}")
print("cut hold: nothing passed for 1.5 s, no reset; after heal both connections delivered everything")
c.close(); k.close()

# 6. bad commands: an error, and the proxy keeps running.
for bad in ("fly", "delay -5", "rate 3", "delay 1 2 3"):
    out = cmd(bad, ok=False)
    if not out.startswith("error:"): fail(f"'{bad}' answered {out!r}")
print("bad commands answered with an error: " + cmd("fly", ok=False))
print("stats: " + cmd("stats"))
EOF

kill -USR1 $ipid
for _ in $(seq 50); do grep -q "stats: accepted" "$work/impair.log" && break; sleep 0.1; done
grep -q "stats: accepted" "$work/impair.log" || fail "no counters in the log after SIGUSR1"
kill $ipid
wait $ipid || fail "impair exited with status $? on SIGTERM"
pids=${pids% $ipid}
grep "exit: accepted" "$work/impair.log" || fail "no counters in the log at exit"
[ ! -e "$ctl" ] || fail "the control socket was not removed at exit"
echo "PASS impair self-test"
