#!/usr/bin/python3
"""tests/fuzz/gen_corpus_npy.py — regenerates the seed corpus tests/fuzz/corpus/npy/.

Run once by hand with Debian's python (it needs numpy): /usr/bin/python3 gen_corpus_npy.py
Valid files come from numpy itself (np.save, or format.write_array for versions 2.0 and
3.0); the near misses are valid images edited in one place, so the fuzzer starts next to
each error path of the decoder."""
import io
import os

import numpy as np
from numpy.lib import format as npformat

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "npy")


def image(arr, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, arr)
    else:
        npformat.write_array(b, arr, version=version)
    return b.getvalue()


def header(text, data=b"", major=1):
    body = text.encode("latin1") + b"\n"
    if major == 1:
        pre = b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little")
    else:
        pre = b"\x93NUMPY" + bytes([major, 0]) + len(body).to_bytes(4, "little")
    return pre + body + data


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "ok_f32_2x3.npy": image(np.arange(6, dtype="<f4").reshape(2, 3)),
        "ok_f16_4d.npy": image(np.ones((1, 2, 1, 2), dtype="<f2")),
        "ok_i64_1d.npy": image(np.array([-1, 0, 2**40], dtype="<i8")),
        "ok_i32_8d.npy": image(np.zeros((1, 1, 1, 1, 1, 1, 1, 2), dtype="<i4")),
        "ok_bool_0d.npy": image(np.array(True)),
        "ok_f64_0d.npy": image(np.array(3.25)),
        "ok_u8_v2.npy": image(np.array([[0, 255], [7, 128]], dtype="|u1"), (2, 0)),
        "ok_i8_v3.npy": image(np.array([-128, 127, 0], dtype="|i1"), (3, 0)),
        "ok_f32_empty.npy": image(np.zeros((0, 3), dtype="<f4")),
        "ok_reordered.npy": header("{'shape': (2,), 'descr': '<u1', 'fortran_order': False}",
                                   b"\x01\x02"),
        "bad_big_endian.npy": image(np.arange(3, dtype=">f4")),
        "bad_fortran.npy": image(np.asfortranarray(np.ones((2, 3), dtype="<f4"))),
        "bad_9_dims.npy": header("{'descr': '|u1', 'fortran_order': False, "
                                 "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", b"\x00"),
        "bad_overflow.npy": header("{'descr': '<f4', 'fortran_order': False, "
                                   "'shape': (1099511627776, 1099511627776), }"),
        "bad_truncated.npy": image(np.arange(6, dtype="<f4"))[:-3],
        "bad_trailing.npy": image(np.arange(2, dtype="<i4")) + b"\x00",
        "bad_extra_key.npy": header("{'descr': '<f4', 'fortran_order': False, "
                                    "'shape': (1,), 'x': 0, }", b"\0\0\0\0"),
        "bad_complex.npy": image(np.zeros(2, dtype="<c8")),
    }
    for name, data in sorted(seeds.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
