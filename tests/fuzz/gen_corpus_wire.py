#!/usr/bin/env python3
"""tests/fuzz/gen_corpus_wire.py — writes the seed corpora of the frame and topic fuzz targets.

Frame seeds are the golden frames of tests/vectors/frames (one valid frame of every type, the
routed TASK and the piece TENSOR, and the TASK of an older sender, task-spec8) plus near misses
made from them, and the TASK of the previous build (task-spec8 with the result codec AUTO
written as a 9th field, the one non-canonical form the decoder accepts); topic seeds are valid
topics of every kind and near misses.
Run from anywhere: python3 tests/fuzz/gen_corpus_wire.py"""
import os

here = os.path.dirname(os.path.abspath(__file__))
vec = os.path.join(here, '..', 'vectors', 'frames')
out = os.path.join(here, 'corpus', 'frame')
os.makedirs(out, exist_ok=True)
for name in sorted(os.listdir(vec)):
    data = open(os.path.join(vec, name), 'rb').read()
    base = name[:-4]
    open(os.path.join(out, 'ok_' + base), 'wb').write(data)
    open(os.path.join(out, 'cut_' + base), 'wb').write(data[:len(data) * 2 // 3])
    open(os.path.join(out, 'trail_' + base), 'wb').write(data + b'\x00')
# task-spec8 with its spec (fixarray 0x98 after the body's 0x92) given a 9th field, 0xcc 0xff.
data = open(os.path.join(vec, 'task-spec8.bin'), 'rb').read()
at = data.index(b'\x92\x98\xc4\x20') + 1
p = at + 1 + 34
for _ in range(7):                    # node_begin .. deadline_ms: canonical uints
    p += {0xcc: 2, 0xcd: 3, 0xce: 5, 0xcf: 9}.get(data[p], 1)
spec9 = data[:at] + b'\x99' + data[at + 1:p] + b'\xcc\xff' + data[p:]
open(os.path.join(out, 'ok_task-spec9-auto'), 'wb').write(spec9)
open(os.path.join(out, 'bad_array32'), 'wb').write(b'\xdd\xff\xff\xff\xff' + b'\x00' * 10)
open(os.path.join(out, 'bad_nest'), 'wb').write(b'\x91' * 64 + b'\x00')
open(os.path.join(out, 'bad_bin32'), 'wb').write(b'\xc6\xff\xff\xff\xff' + b'0123456789')

out = os.path.join(here, 'corpus', 'topic')
os.makedirs(out, exist_ok=True)
topics = {
    'advert': b'nnmesh/lab/advert/node-a', 'inbox': b'nnmesh/lab/inbox/node-b',
    'req': b'nnmesh/lab/req/node-a/job-1', 'res': b'nnmesh/lab/res/node-a/job-1',
    'stats': b'nnmesh/lab/stats/node-a', 'ctl': b'nnmesh/lab/ctl/node-a/drain',
    'bad_wild': b'nnmesh/lab/inbox/+', 'bad_hash': b'nnmesh/lab/#',
    'bad_empty': b'nnmesh//inbox/a', 'bad_sys': b'$SYS/broker/uptime',
    'bad_nul': b'nnmesh/lab/inbox/a\x00b', 'bad_utf8': b'nnmesh/lab/inbox/n\xc3\xa9',
    'bad_long': b'nnmesh/lab/inbox/' + b'a' * 33,
}
for name, data in topics.items():
    open(os.path.join(out, name), 'wb').write(data)
