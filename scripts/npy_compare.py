#!/usr/bin/python3
"""npy_compare.py - compare two .npy tensors within a scale-relative tolerance.

    /usr/bin/python3 scripts/npy_compare.py A.npy B.npy [--rtol 1e-4] [--quiet]

B is the reference. Prints the shapes, the max absolute difference and
max|a-b| / max|b| (the difference relative to the reference's scale, which
stays meaningful when single elements are near zero). Exit status: 0 if the
relative difference is <= rtol, 1 if above it (or if either holds NaN/Inf
where the other does not), 2 if the files cannot be compared (missing,
unreadable, different shape or element count).
"""
import argparse
import sys

import numpy as np


def main(argv):
    ap = argparse.ArgumentParser(description="compare two .npy files")
    ap.add_argument("a")
    ap.add_argument("b", help="reference")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--quiet", action="store_true", help="print only on failure")
    o = ap.parse_args(argv)
    try:
        a = np.load(o.a, allow_pickle=False)
        b = np.load(o.b, allow_pickle=False)
    except (OSError, ValueError) as e:
        print(f"npy_compare.py: {e}", file=sys.stderr)
        return 2
    if a.shape != b.shape:
        # A squeezed/reshaped output with the same elements is still comparable.
        if a.size != b.size:
            print(f"npy_compare.py: shape {list(a.shape)} vs {list(b.shape)}", file=sys.stderr)
            return 2
        print(f"note: shapes differ {list(a.shape)} vs {list(b.shape)}, comparing flat")
        a, b = a.reshape(-1), b.reshape(-1)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    fin_a, fin_b = np.isfinite(a64), np.isfinite(b64)
    if not np.array_equal(fin_a, fin_b) or not np.array_equal(a64[~fin_a], b64[~fin_b]):
        print(f"FAIL: non-finite values differ ({(~fin_a).sum()} vs {(~fin_b).sum()})")
        return 1
    d = np.abs(a64[fin_a] - b64[fin_b])
    maxabs = float(d.max()) if d.size else 0.0
    scale = float(np.abs(b64[fin_b]).max()) if d.size else 0.0
    rel = maxabs / scale if scale > 0 else (0.0 if maxabs == 0 else float("inf"))
    ok = rel <= o.rtol
    if not ok or not o.quiet:
        print(f"{'ok' if ok else 'FAIL'}: shape {list(b.shape)} max_abs {maxabs:.3e} "
              f"max|b| {scale:.3e} rel {rel:.3e} (rtol {o.rtol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
