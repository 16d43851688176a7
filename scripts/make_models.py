#!/usr/bin/python3
"""make_models.py - export the benchmark and test models as ONNX, with inputs.

    /usr/bin/python3 scripts/make_models.py OUTDIR [--only NAME[,NAME...]] [--force] [--list]

For every model NAME writes
    OUTDIR/NAME.onnx          opset 13, batch 1, input "input", output "output"
    OUTDIR/NAME.input.npy     float32, a seeded standard-normal input
    OUTDIR/NAME.torch.npy     float32, what PyTorch computes for that input
                              (a second oracle beside scripts/ort_run.js)
and prints one line per model: name, .onnx size, export time (or "cached").

Models (random weights, torch.manual_seed(0) before each is built; pretrained
weights cannot be downloaded here):
    mobilenet_v2, resnet18, squeezenet1_1   torchvision 0.14, [1,3,224,224]
    tiny_cnn    conv-bn-relu x3 with a residual add, maxpool, global avg pool,
                fc; [1,3,32,32]; BatchNormalization nodes kept in the graph
                (random running stats) so the importer's BN folding is exercised
    tiny_dw     MobileNetV2-style inverted residual blocks (1x1 expand, 3x3
                depthwise, ReLU6 as Clip, stride 2, residual add), [1,3,32,32]
    tiny_fire   SqueezeNet-style fire modules (Concat of 1x1 and 3x3 branches),
                maxpool with ceil_mode, avgpool; [1,3,32,32]
    tiny_mlp    Flatten + Gemm/Relu chain; [1,4,8,8]
The torchvision models get their BatchNorm running stats calibrated on seeded
random inputs (see calibrate_bn) so activations stay near unit scale, then
torch folds BatchNormalization into Conv (its default in eval mode), which is
what exported models usually look like.

Caching: a model is skipped when NAME.onnx and NAME.input.npy exist and the
.onnx is newer than this script; --force re-exports. Everything is
deterministic, so a re-export gives the same weights on the same torch build.
"""
import argparse
import os
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OPSET = 13


# ---------------------------------------------------------------- tiny models

class ConvBnRelu(nn.Sequential):
    def __init__(self, cin, cout, k=3, stride=1):
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=False))


class TinyCnn(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.c1 = ConvBnRelu(3, 16)
        self.c2 = ConvBnRelu(16, 16)
        self.c3 = ConvBnRelu(16, 32, stride=2)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        a = self.c1(x)
        x = a + self.c2(a)                   # residual add
        x = F.max_pool2d(x, 2)               # 32 -> 16
        x = self.c3(x)                       # 16 -> 8
        x = F.adaptive_avg_pool2d(x, 1)      # GlobalAveragePool
        return self.fc(torch.flatten(x, 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.body(x)
        return x + y if self.use_res else y


class TinyDw(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(8), nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(8, 8, 1, 4),
                                    InvertedResidual(8, 16, 2, 4),
                                    InvertedResidual(16, 16, 1, 4))
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.s = nn.Conv2d(cin, squeeze, 1)
        self.e1 = nn.Conv2d(squeeze, expand, 1)
        self.e3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.s(x))
        return torch.cat([F.relu(self.e1(x)), F.relu(self.e3(x))], 1)


class TinyFire(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2)                 # 32 -> 15
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)      # 15 -> 7
        self.f1 = Fire(16, 4, 8)
        self.f2 = Fire(16, 8, 16)
        self.head = nn.Conv2d(32, classes, 1)

    def forward(self, x):
        x = self.pool(F.relu(self.stem(x)))
        x = self.f2(self.f1(x))
        x = F.relu(self.head(x))
        x = F.avg_pool2d(x, 7)                              # AveragePool, not global
        return torch.flatten(x, 1)


class TinyMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(256, 64)
        self.l2 = nn.Linear(64, 32)
        self.l3 = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))


def randomize_bn(model):
    """Give every BatchNorm non-trivial running stats and affine parameters so
    that folding it is actually tested (defaults are mean 0, var 1, identity)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def calibrate_bn(model, shape, batches=4, batch=4):
    """Set every BatchNorm's running stats to the statistics it sees on seeded
    random inputs (what a trained network's BN roughly does: keep activations
    near unit scale). Without this, torchvision's random init shrinks
    MobileNetV2's activations ~10x per depthwise stage (its output is ~1e-9),
    which makes a useless test and drifts towards denormals in a benchmark."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return model
    for m in bns:
        m.reset_running_stats()
        m.momentum = None            # cumulative average over the batches
    gen = torch.Generator().manual_seed(1)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn((batch,) + tuple(shape[1:]), generator=gen))
    return model.eval()


def _tv(name, shape):
    def build():
        import torchvision.models as tvm
        return calibrate_bn(getattr(tvm, name)(weights=None), shape)
    return build


# name -> (builder, input shape, keep BatchNormalization nodes in the graph)
MODELS = {
    "mobilenet_v2": (_tv("mobilenet_v2", (1, 3, 224, 224)), (1, 3, 224, 224), False),
    "resnet18": (_tv("resnet18", (1, 3, 224, 224)), (1, 3, 224, 224), False),
    "squeezenet1_1": (_tv("squeezenet1_1", (1, 3, 224, 224)), (1, 3, 224, 224), False),
    "tiny_cnn": (lambda: randomize_bn(TinyCnn()), (1, 3, 32, 32), True),
    "tiny_dw": (lambda: randomize_bn(TinyDw()), (1, 3, 32, 32), True),
    "tiny_fire": (TinyFire, (1, 3, 32, 32), False),
    "tiny_mlp": (TinyMlp, (1, 4, 8, 8), False),
}


def make_input(name, shape):
    """Seeded standard-normal float32 input; the seed depends only on the name."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return rng.standard_normal(shape, dtype=np.float32)


def export_one(name, outdir):
    build, shape, keep_bn = MODELS[name]
    torch.manual_seed(0)
    model = build().eval()
    x = make_input(name, shape)
    onnx_path = os.path.join(outdir, name + ".onnx")
    tmp = onnx_path + ".tmp"
    # PRESERVE keeps the (eval-mode) model as is: BatchNormalization stays a
    # node instead of being folded into the Conv by the exporter.
    mode = torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL
    with torch.no_grad():
        torch.onnx.export(model, torch.from_numpy(x), tmp, opset_version=OPSET,
                          input_names=["input"], output_names=["output"],
                          do_constant_folding=True, training=mode)
        y = model(torch.from_numpy(x)).numpy().astype(np.float32)
    import onnx
    onnx.checker.check_model(onnx.load(tmp))
    np.save(os.path.join(outdir, name + ".input.npy"), x)
    np.save(os.path.join(outdir, name + ".torch.npy"), y)
    os.replace(tmp, onnx_path)   # the .onnx lands last: its presence means done


def is_cached(name, outdir):
    onnx_path = os.path.join(outdir, name + ".onnx")
    if not (os.path.exists(onnx_path)
            and os.path.exists(os.path.join(outdir, name + ".input.npy"))
            and os.path.exists(os.path.join(outdir, name + ".torch.npy"))):
        return False
    return os.path.getmtime(onnx_path) > os.path.getmtime(os.path.abspath(__file__))


def main(argv):
    ap = argparse.ArgumentParser(description="export nnmesh test/benchmark models")
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--only", help="comma-separated model names")
    ap.add_argument("--force", action="store_true", help="ignore the cache")
    ap.add_argument("--list", action="store_true", help="print model names and exit")
    a = ap.parse_args(argv)
    if a.list:
        for n, (_, shape, _) in MODELS.items():
            print(n, "x".join(map(str, shape)))
        return 0
    if not a.outdir:
        ap.error("OUTDIR is required")
    names = list(MODELS)
    if a.only:
        names = [n.strip() for n in a.only.split(",") if n.strip()]
        bad = [n for n in names if n not in MODELS]
        if bad:
            print(f"make_models.py: unknown model {', '.join(bad)} "
                  f"(known: {', '.join(MODELS)})", file=sys.stderr)
            return 2
    torch.set_num_threads(1)
    os.makedirs(a.outdir, exist_ok=True)
    for n in names:
        path = os.path.join(a.outdir, n + ".onnx")
        if not a.force and is_cached(n, a.outdir):
            print(f"{n}: {os.path.getsize(path)} bytes (cached)", flush=True)
            continue
        t0 = time.monotonic()
        export_one(n, a.outdir)
        print(f"{n}: {os.path.getsize(path)} bytes, exported in "
              f"{time.monotonic() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
