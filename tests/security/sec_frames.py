#!/usr/bin/env python3
"""tests/security/sec_frames.py — reads the link frames a mosquitto_sub witness captured
("TOPIC HEX" lines, mosquitto_sub -F '%t %x'), for the security tests of tests/security/.

  sec_frames.py list FILE             one line per frame: index, topic, type, sender,
                                      receiver, counter, request, bytes, header bytes
  sec_frames.py pick FILE OUT [--to NODE] [--types T,T] [--largest] [--index I]
                                      writes the raw bytes of one frame to OUT and prints its
                                      line (the first match, or with --largest the longest)
  sec_frames.py flip IN OUT OFFSET    copies IN with one bit of byte OFFSET flipped (a
                                      negative OFFSET counts from the end)
  sec_frames.py count FILE TOPIC TYPE prints how many frames of TYPE were sent to TOPIC per
                                      request id ("REQUEST COUNT" lines)

Only the header is decoded (an array of 8: version, type, sender, receiver, session, counter,
request, topic; docs/PROTOCOL.md section 2.1); the rest of a sealed frame is nonce,
ciphertext and tag. Lines that are not frames (probes of the witness) are skipped."""
import sys

TYPES = {1: "HELLO", 2: "ADVERT", 3: "TASK", 4: "TENSOR", 5: "RESULT", 6: "ERROR", 7: "CTL",
         8: "PROBE", 9: "ACK", 10: "BYE", 11: "CHUNK"}


def _uint(b, i):
    t = b[i]
    if t < 0x80:
        return t, i + 1
    n = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}[t]
    return int.from_bytes(b[i + 1:i + 1 + n], "big"), i + 1 + n


def _str(b, i):
    t = b[i]
    if 0xa0 <= t <= 0xbf:
        n, i = t & 0x1f, i + 1
    elif t == 0xd9:
        n, i = b[i + 1], i + 2
    elif t == 0xda:
        n, i = int.from_bytes(b[i + 1:i + 3], "big"), i + 3
    else:
        raise ValueError("not a string")
    return b[i:i + n].decode(), i + n


def header(b):
    """(fields dict, header length) of frame bytes b; raises ValueError if it is no frame."""
    if len(b) < 10 or b[0] != 0x98:
        raise ValueError("not a frame")
    i = 1
    version, i = _uint(b, i)
    ftype, i = _uint(b, i)
    sender, i = _str(b, i)
    receiver, i = _str(b, i)
    session, i = _uint(b, i)
    counter, i = _uint(b, i)
    request, i = _uint(b, i)
    topic, i = _str(b, i)
    return dict(version=version, type=TYPES.get(ftype, str(ftype)), sender=sender,
                receiver=receiver, session=session, counter=counter, request=request,
                topic=topic), i


def frames(path):
    out = []
    for line in open(path):
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            b = bytes.fromhex(parts[1])
            h, hl = header(b)
        except (ValueError, KeyError, IndexError, UnicodeDecodeError):
            continue
        out.append((len(out), parts[0], h, hl, b))
    return out


def fmt(f):
    i, topic, h, hl, b = f
    return (f"{i} {topic} {h['type']} {h['sender']} {h['receiver']} {h['counter']} "
            f"{h['request']:x} {len(b)} {hl}")


def main(argv):
    if len(argv) >= 2 and argv[0] == "list":
        for f in frames(argv[1]):
            print(fmt(f))
    elif len(argv) >= 3 and argv[0] == "pick":
        fs = frames(argv[1])
        opts = argv[3:]
        to = opts[opts.index("--to") + 1] if "--to" in opts else None
        types = opts[opts.index("--types") + 1].split(",") if "--types" in opts else None
        idx = int(opts[opts.index("--index") + 1]) if "--index" in opts else None
        fs = [f for f in fs if (to is None or f[2]["receiver"] == to)
              and (types is None or f[2]["type"] in types) and (idx is None or f[0] == idx)]
        if not fs:
            print("sec_frames.py: no frame matches", file=sys.stderr)
            return 1
        f = max(fs, key=lambda f: len(f[4])) if "--largest" in opts else fs[0]
        open(argv[2], "wb").write(f[4])
        print(fmt(f))
    elif len(argv) == 4 and argv[0] == "flip":
        b = bytearray(open(argv[1], "rb").read())
        off = int(argv[3])
        b[off] ^= 0x01
        open(argv[2], "wb").write(bytes(b))
    elif len(argv) == 4 and argv[0] == "count":
        n = {}
        for _, topic, h, _, _ in frames(argv[1]):
            if topic == argv[2] and h["type"] == argv[3]:
                n[h["request"]] = n.get(h["request"], 0) + 1
        for r, c in sorted(n.items()):
            print(f"{r:x} {c}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
