#!/usr/bin/env python3
"""tests/security/broker_tool.py — a minimal MQTT 3.1.1 client over a plain socket for the
broker attack tests of tests/security/ (flood.sh), so that timing is not blurred by starting
a mosquitto_pub per message:

  broker_tool.py requests PORT TOPIC_PREFIX RESULT_PREFIX FILE N [--user U --password-file F]
      N requests, one at a time: FILE published (QoS 1) on TOPIC_PREFIX/<tag>, the answer
      awaited on RESULT_PREFIX/<tag>; prints one latency in ms per line, or
      "error <tag> <reason>" for an answer that is not a .npy or none within 30 s.
      With --toggle PID,PID... --block K: the requests run in blocks of K, alternately with
      those processes stopped (SIGSTOP: baseline, "b") and running (SIGCONT: flood, "f") in
      the order b f f b b f f b ..., each block after --settle seconds (default 0.2); every
      line is then "b MS" or "f MS", and with --progress FILE,FILE... (the flooders'
      progress files) one "block KIND ATTEMPTS" line per block gives the flood attempts made
      during it. The processes are left running at the end. Interleaving short blocks puts
      the machine's own noise (other jobs on shared cores) on both kinds alike.
  broker_tool.py flood PORT TOPIC BYTES SECONDS [--user U --password-file F] [--id ID]
                 [--rate R] [--stop-file F] [--progress F] [--link-bps BPS]
      For SECONDS (or until F exists), at most R times a second (default: no limit): connects, sends one PUBLISH of BYTES payload to TOPIC, and counts what the
      broker did; repeats at once. Prints "attempts N cut N delivered N refused N" where cut =
      the broker closed the connection before the whole packet was written or right after it,
      delivered = the packet was written and the connection stayed up 1 s, refused = CONNACK
      with an error code. --progress F: the attempt count so far is rewritten to F after
      every attempt. --link-bps BPS: the payload leaves in 64 KiB pieces no faster than a
      link of BPS bits/s (the attacker's own link; default: as fast as loopback takes it)."""
import argparse
import os
import signal
import socket
import sys
import time


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s16(b):
    return len(b).to_bytes(2, "big") + b


def connect(port, user, password, cid):
    s = socket.create_connection(("127.0.0.1", port), 5)
    flags = 0x02
    payload = s16(cid.encode())
    if user is not None:
        flags |= 0x80
        payload += s16(user.encode())
        if password is not None:
            flags |= 0x40
            payload += s16(password.encode())
    var = s16(b"MQTT") + bytes([4, flags]) + (60).to_bytes(2, "big")
    body = var + payload
    s.sendall(bytes([0x10]) + varint(len(body)) + body)
    t, b = read_packet(s)
    if t >> 4 != 2 or len(b) < 2:
        raise ConnectionError("no CONNACK")
    return s, b[1]


def read_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            raise ConnectionError("closed")
        buf += c
    return bytes(buf)


def read_packet(s):
    t = read_exact(s, 1)[0]
    n, mul = 0, 1
    while True:
        b = read_exact(s, 1)[0]
        n += (b & 0x7F) * mul
        mul *= 128
        if not b & 0x80:
            break
    return t, read_exact(s, n)


def publish_packet(topic, payload, qos, pid):
    var = s16(topic.encode()) + (pid.to_bytes(2, "big") if qos else b"")
    return bytes([0x30 | (qos << 1)]) + varint(len(var) + len(payload)) + var, payload


def cmd_requests(a, password):
    s, rc = connect(a.port, a.user, password, "brk-req-%d" % time.time_ns())
    if rc != 0:
        sys.exit("requests: CONNACK refused (%d)" % rc)
    data = open(a.file, "rb").read()
    filt = a.result_prefix + "/+"
    body = (1).to_bytes(2, "big") + s16(filt.encode()) + b"\x00"
    s.sendall(bytes([0x82]) + varint(len(body)) + body)
    while read_packet(s)[0] >> 4 != 9:   # SUBACK
        pass
    s.settimeout(1.0)
    run = "%x" % (time.time_ns() & 0xFFFFFFFF)
    pids = [int(x) for x in a.toggle.split(",")] if a.toggle else []
    progress = a.progress.split(",") if a.progress else []

    def attempts():
        n = 0
        for f in progress:
            try:
                n += int(open(f).read().strip() or 0)
            except (OSError, ValueError):
                pass
        return n

    kind, at0 = "", 0
    for k in range(a.n):
        if pids and k % a.block == 0:
            if kind and progress:
                print("block %s %d" % (kind, attempts() - at0), flush=True)
            kind = "bffb"[(k // a.block) % 4]
            for pid in pids:
                os.kill(pid, signal.SIGCONT if kind == "f" else signal.SIGSTOP)
            time.sleep(a.settle)
            at0 = attempts()
        tag = "%s-%s-%d" % (a.tag, run, k)
        h, p = publish_packet(a.topic_prefix + "/" + tag, data, 1, (k % 60000) + 2)
        t0 = time.monotonic()
        s.sendall(h + p)
        want = a.result_prefix + "/" + tag
        got = None
        while time.monotonic() - t0 < 30 and got is None:
            try:
                t, b = read_packet(s)
            except socket.timeout:
                continue
            if t >> 4 != 3:
                continue
            tl = int.from_bytes(b[:2], "big")
            topic = b[2:2 + tl].decode()
            off = 2 + tl + (2 if (t >> 1) & 3 else 0)
            if topic == want:
                got = b[off:]
        if got is None:
            print("error %s no answer in 30 s" % tag, flush=True)
        elif not got.startswith(b"\x93NUMPY"):
            print("error %s %s" % (tag, got[:200].decode(errors="replace")), flush=True)
        else:
            ms = "%.3f" % ((time.monotonic() - t0) * 1000)
            print(kind + " " + ms if pids else ms, flush=True)
    if kind and progress:
        print("block %s %d" % (kind, attempts() - at0), flush=True)
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    s.close()


def cmd_flood(a, password):
    end = time.monotonic() + a.seconds
    att = cut = delivered = refused = 0
    payload = b"\xA5" * a.bytes
    gap = 1.0 / a.rate if a.rate else 0.0
    link_t = time.monotonic()
    nxt = time.monotonic()
    while time.monotonic() < end and not (a.stop_file and os.path.exists(a.stop_file)):
        if gap:
            nxt += gap
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
        att += 1
        if a.progress:
            with open(a.progress + ".tmp", "w") as pf:
                pf.write("%d\n" % att)
            os.replace(a.progress + ".tmp", a.progress)
        try:
            s, rc = connect(a.port, a.user, password, a.id or "flood-%d" % time.time_ns())
        except OSError:
            cut += 1
            continue
        if rc != 0:
            refused += 1
            s.close()
            continue
        h, p = publish_packet(a.topic, payload, 0, 0)
        try:
            s.sendall(h)
            if not a.link_bps:
                s.sendall(p)
            for off in range(0, len(p) if a.link_bps else 0, 65536):
                # the attacker's own link: a token bucket of link_bps bits/s over all
                # its connections, so bytes leave no faster than such a link carries them
                chunk = memoryview(p)[off:off + 65536]
                link_t = max(link_t, time.monotonic()) + len(chunk) * 8 / a.link_bps
                d = link_t - time.monotonic()
                if d > 0:
                    time.sleep(d)
                s.sendall(chunk)
            s.settimeout(1.0)
            if s.recv(1) == b"":
                cut += 1
            else:
                delivered += 1
        except socket.timeout:
            delivered += 1
        except OSError:
            cut += 1
        finally:
            s.close()
    print("attempts %d cut %d delivered %d refused %d" % (att, cut, delivered, refused), flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("requests")
    r.add_argument("port", type=int)
    r.add_argument("topic_prefix")
    r.add_argument("result_prefix")
    r.add_argument("file")
    r.add_argument("n", type=int)
    r.add_argument("--tag", default="q")
    r.add_argument("--toggle")
    r.add_argument("--block", type=int, default=25)
    r.add_argument("--settle", type=float, default=0.2)
    r.add_argument("--progress")
    f = sub.add_parser("flood")
    f.add_argument("port", type=int)
    f.add_argument("topic")
    f.add_argument("bytes", type=int)
    f.add_argument("seconds", type=float)
    f.add_argument("--id")
    f.add_argument("--rate", type=float, default=0)
    f.add_argument("--stop-file")
    f.add_argument("--progress")
    f.add_argument("--link-bps", type=float, default=0)
    for p in (r, f):
        p.add_argument("--user")
        p.add_argument("--password-file")
    a = ap.parse_args()
    password = None
    if a.password_file:
        password = open(a.password_file).readline().strip()
    {"requests": cmd_requests, "flood": cmd_flood}[a.cmd](a, password)


if __name__ == "__main__":
    main()
