#!/usr/bin/python3
"""train_lenet.py - train the LeNet-5 demo model on Fashion-MNIST and export it.

    /usr/bin/python3 scripts/train_lenet.py [--out examples/models] [--budget 180]

Trains on CPU with one thread (the team shares two cores), stopping after the
epoch that crosses --budget seconds of training time or after --epochs, and
writes into --out:
    lenet5-fmnist.onnx        opset 13, input "input" float32 [1,1,28,28],
                              output "output" float32 [1,10] (logits)
    lenet5-fmnist-b100.onnx   the same weights with batch 100 (for scoring)
    sample-<i>-<class>.npy    test images i (float32 [1,1,28,28], preprocessed)
Preprocessing is fmnist.preprocess: pixel/255, then (x-0.2860)/0.3530.
Prints the test accuracy of the trained model (the one exported).

Architecture (classic LeNet-5 with ReLU and max pooling):
    conv5x5(6, pad 2)-relu-maxpool2 - conv5x5(16)-relu-maxpool2 - flatten(400)
    - fc120-relu - fc84-relu - fc10
Everything is seeded (torch.manual_seed(0), numpy seed 0), so a re-run gives
the same training trajectory on the same torch build.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402

SAMPLES = [0, 1, 2]   # test-set indices written as sample-*.npy


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def export(model, path, batch):
    dummy = torch.zeros(batch, 1, 28, 28)
    torch.onnx.export(model, dummy, path, opset_version=13,
                      input_names=["input"], output_names=["output"],
                      do_constant_folding=True)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="train and export LeNet-5 on Fashion-MNIST")
    ap.add_argument("--out", default=os.path.join(here, "..", "examples", "models"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--budget", type=float, default=180.0,
                    help="seconds of training after which no new epoch starts")
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    xtr, ytr = fmnist.load("train")
    xte, yte = fmnist.load("t10k")
    xtr_t = torch.from_numpy(fmnist.preprocess(xtr))
    ytr_t = torch.from_numpy(ytr.astype(np.int64))
    xte_t = torch.from_numpy(fmnist.preprocess(xte))
    yte_t = torch.from_numpy(yte.astype(np.int64))

    model = LeNet5()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs)
    t0 = time.monotonic()
    for epoch in range(a.epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(xtr_t)))
        total = 0.0
        for i in range(0, len(perm), a.batch):
            idx = perm[i:i + a.batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr_t[idx]), ytr_t[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        elapsed = time.monotonic() - t0
        acc = accuracy(model, xte_t, yte_t)
        print(f"epoch {epoch + 1}: loss {total / len(perm):.4f} test acc {acc:.4f} "
              f"({elapsed:.0f} s)", flush=True)
        if elapsed >= a.budget:
            break

    model.eval()
    acc = accuracy(model, xte_t, yte_t)
    os.makedirs(a.out, exist_ok=True)
    export(model, os.path.join(a.out, "lenet5-fmnist.onnx"), 1)
    export(model, os.path.join(a.out, "lenet5-fmnist-b100.onnx"), 100)
    with torch.no_grad():
        for i in SAMPLES:
            x = xte_t[i:i + 1].numpy()
            pred = model(xte_t[i:i + 1]).argmax(1).item()
            name = f"sample-{i}-{fmnist.CLASSES[int(yte[i])]}.npy"
            np.save(os.path.join(a.out, name), np.ascontiguousarray(x, dtype=np.float32))
            print(f"{name}: label {int(yte[i])} predicted {pred} ({fmnist.CLASSES[pred]})")
    for f in ("lenet5-fmnist.onnx", "lenet5-fmnist-b100.onnx"):
        print(f"{f}: {os.path.getsize(os.path.join(a.out, f))} bytes")
    print(f"final test accuracy: {acc:.4f} ({int(round(acc * len(xte_t)))}/{len(xte_t)}) "
          f"after {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
