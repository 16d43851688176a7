#!/bin/sh
# scripts/install-deps.sh — installs what nnmesh needs from Debian 12 packages (as root).
#   scripts/install-deps.sh          build and run: compiler, autotools, libraries, mosquitto
#   scripts/install-deps.sh --test   also the test oracles: clang/libFuzzer, Debian's python3
#                                    torch/onnx (model export), Fashion-MNIST, ONNX's
#                                    conformance data, onnxruntime-node from npm, and the
#                                    stress suites' tools: faketime (clock skew), tcpdump
#                                    (eavesdropping capture), iproute2 (rate limits)
# Nothing is downloaded at run time; this is the only step that uses the network.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive

base="build-essential autoconf automake libtool pkg-config
  libpaho-mqtt-dev mosquitto mosquitto-clients libsodium-dev libmsgpack-dev libcmocka-dev
  libonnx-dev protobuf-c-compiler libprotobuf-c-dev libxnnpack-dev libpthreadpool-dev
  libinih-dev liblz4-dev python3 python3-numpy"
test="clang libclang-rt-14-dev python3-onnx python3-torch python3-torchvision
  dataset-fashion-mnist libonnx-testdata iproute2 procps time
  faketime tcpdump"

pkgs=$base
want_test=0
[ "${1:-}" = "--test" ] && want_test=1
[ $want_test = 1 ] && pkgs="$pkgs $test"
command -v node >/dev/null 2>&1 || { [ $want_test = 1 ] && pkgs="$pkgs nodejs"; }
command -v npm >/dev/null 2>&1 || { [ $want_test = 1 ] && pkgs="$pkgs npm"; }

missing=
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
fi

if [ $want_test = 1 ] && [ ! -d "$here/node_modules/onnxruntime-node" ]; then
  # ONNX Runtime for Node is the reference oracle for tests and benchmarks only; its npm
  # tarball carries the native library, so its download script is skipped.
  (cd "$here" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund)
fi
