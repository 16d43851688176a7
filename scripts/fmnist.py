#!/usr/bin/python3
"""fmnist.py - read Debian's Fashion-MNIST (IDX format) and export it as .npy.

Library use (from train_lenet.py):
    images, labels = fmnist.load("t10k")     # uint8 [N,28,28], uint8 [N]
    x = fmnist.preprocess(images)            # float32 [N,1,28,28], the model's input

Commands:
    fmnist.py export-set OUTDIR [--split t10k|train] [--limit N]
        writes OUTDIR/fmnist-<split>-images.npy  float32 [N,1,28,28] (preprocessed)
               OUTDIR/fmnist-<split>-labels.npy  int64   [N]
    fmnist.py split-images OUTDIR [--split t10k] [--limit N]
        writes one file per image, OUTDIR/<index>-<label>.npy, float32 [1,1,28,28],
        plus OUTDIR/labels.txt ("<file> <label>" per line), for tools that take
        one image per invocation.

Preprocessing (must match what lenet5-fmnist.onnx was trained on): pixel / 255,
then (x - MEAN) / STD with MEAN = 0.2860, STD = 0.3530 (the training set's
statistics). No resizing; layout NCHW with one channel.

Needs only gzip + numpy; the dataset comes from Debian's dataset-fashion-mnist
package (/usr/share/datasets/fashion-mnist). Set FMNIST_DIR to read another copy.
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np

DATA_DIR = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
MEAN = 0.2860
STD = 0.3530
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle-boot"]

# IDX type codes we accept (Fashion-MNIST only uses 0x08, unsigned byte).
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4",
              0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Return the array stored in an IDX file (optionally gzip-compressed).

    Raises ValueError naming the file if the header is malformed or the payload
    is shorter/longer than the header declares.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (magic {data[:4].hex()})")
    hdr = 4 + 4 * ndim
    if len(data) < hdr:
        raise ValueError(f"{path}: truncated IDX dimension list")
    dims = struct.unpack(">" + "I" * ndim, data[4:hdr])
    dtype = np.dtype(_IDX_TYPES[dtype_code])
    count = int(np.prod(dims)) if dims else 1
    if len(data) - hdr != count * dtype.itemsize:
        raise ValueError(f"{path}: header says {dims} of {dtype} but payload has "
                         f"{len(data) - hdr} bytes")
    return np.frombuffer(data, dtype=dtype, offset=hdr).reshape(dims)


def load(split="t10k", data_dir=DATA_DIR):
    """Return (images uint8 [N,28,28], labels uint8 [N]) for split 'train' or 't10k'."""
    if split not in ("train", "t10k"):
        raise ValueError(f"unknown split {split!r} (want train or t10k)")
    images = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def preprocess(images):
    """uint8 [N,28,28] -> float32 [N,1,28,28], scaled to [0,1] then normalized."""
    x = images.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(MEAN)) / np.float32(STD)
    return np.ascontiguousarray(x[:, None, :, :], dtype=np.float32)


def export_set(outdir, split="t10k", limit=None):
    images, labels = load(split)
    if limit:
        images, labels = images[:limit], labels[:limit]
    os.makedirs(outdir, exist_ok=True)
    xi = os.path.join(outdir, f"fmnist-{split}-images.npy")
    yi = os.path.join(outdir, f"fmnist-{split}-labels.npy")
    np.save(xi, preprocess(images))
    np.save(yi, labels.astype(np.int64))
    print(f"wrote {xi} {list(images.shape[:1]) + [1, 28, 28]} and {yi}")


def split_images(outdir, split="t10k", limit=None):
    images, labels = load(split)
    if limit:
        images, labels = images[:limit], labels[:limit]
    os.makedirs(outdir, exist_ok=True)
    x = preprocess(images)
    width = len(str(len(x) - 1))
    lines = []
    for i in range(len(x)):
        name = f"{i:0{width}d}-{int(labels[i])}.npy"
        np.save(os.path.join(outdir, name), x[i:i + 1])
        lines.append(f"{name} {int(labels[i])}\n")
    with open(os.path.join(outdir, "labels.txt"), "w") as f:
        f.writelines(lines)
    print(f"wrote {len(x)} images of [1,1,28,28] and labels.txt into {outdir}")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("export-set", "split-images"):
        p = sub.add_parser(name)
        p.add_argument("outdir")
        p.add_argument("--split", default="t10k", choices=["t10k", "train"])
        p.add_argument("--limit", type=int, default=None,
                       help="only the first N images")
    a = ap.parse_args(argv)
    if a.cmd == "export-set":
        export_set(a.outdir, a.split, a.limit)
    else:
        split_images(a.outdir, a.split, a.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
