#!/bin/sh
# tests/lenet.sh — the bundled LeNet-5 scores >= 85% on Fashion-MNIST's 10k test images
# when run through `nnmesh run` (batch-100 export, 100 runs).
. "$(dirname "$0")/lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$SYS_PYTHON" - "$work" <<'PY'
import sys, os
sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "scripts"))
import numpy as np
import fmnist
x, y = fmnist.load("t10k")
x = fmnist.preprocess(x)
for i in range(100):
    np.save(os.path.join(sys.argv[1], "x%03d.npy" % i), x[i*100:(i+1)*100].reshape(100, 1, 28, 28).astype(np.float32))
np.save(os.path.join(sys.argv[1], "labels.npy"), y.astype(np.int64))
PY
model="$top_srcdir/examples/models/lenet5-fmnist-b100.onnx"
for i in $(seq 0 99 | awk "{printf \"%03d\\n\", \$1}"); do
  "$NNMESH" run "$model" -i "$work/x$i.npy" -o "$work/out$i" >/dev/null || fail "nnmesh run on batch $i"
done
"$SYS_PYTHON" - "$work" <<'PY'
import sys, os
import numpy as np
w = sys.argv[1]
y = np.load(os.path.join(w, "labels.npy"))
pred = np.concatenate([np.load(os.path.join(w, "out%03d" % i, "output.npy")).argmax(1) for i in range(100)])
acc = (pred == y).mean()
print("LeNet-5 Fashion-MNIST accuracy through nnmesh run: %.4f (%d/10000)" % (acc, (pred == y).sum()))
sys.exit(0 if acc >= 0.85 else 1)
PY
