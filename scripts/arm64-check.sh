#!/bin/sh
# scripts/arm64-check.sh — builds nnmesh for 64-bit ARM boards (aarch64: Raspberry Pi 4/5,
# Jetson, RK3588 ...) with Debian's cross compiler and runs the tests under qemu-user, on a
# Debian 12 amd64 machine, as root. Not part of `make check`: an emulated run takes ~10 min.
#
#   scripts/arm64-check.sh [BUILD_DIR] [TEST ...]
#
# BUILD_DIR defaults to build-arm64 (beside the source); TESTs default to the unit tests and
# the model, slicing and mesh tests (every model against ONNX Runtime, 4 nodes splitting
# MobileNetV2, ResNet-18 and LeNet). The arm64 binaries run under qemu-aarch64 through
# binfmt_misc; mosquitto, Python (model export) and ONNX Runtime (the oracle) run natively.
#
# Debian's XNNPACK and pthreadpool packages cannot be installed for two architectures at
# once (installing the arm64 ones removes the amd64 ones and python3-torch with them), so
# those two are unpacked into a sysroot of their own (ARM64_SYSROOT, default
# /opt/nnmesh-arm64) instead; every other library is installed as a multiarch package.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=${1:-$top/build-arm64}
[ $# -gt 0 ] && shift
sysroot=${ARM64_SYSROOT:-/opt/nnmesh-arm64}
triplet=aarch64-linux-gnu
export DEBIAN_FRONTEND=noninteractive

"$here/install-deps.sh" --test   # the host side: mosquitto, torch, onnxruntime-node

dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
multi="libpaho-mqtt-dev libsodium-dev libmsgpack-dev libcmocka-dev libprotobuf-c-dev
  libinih-dev liblz4-dev libcpuinfo0"
apt-get update -q
# shellcheck disable=SC2046
apt-get install -y -q --no-install-recommends crossbuild-essential-arm64 qemu-user-static \
  $(for p in $multi; do printf '%s:arm64 ' "$p"; done)

libdir=$sysroot/usr/lib/$triplet
if [ ! -e "$libdir/libXNNPACK.so" ] || [ ! -e "$libdir/libpthreadpool.so" ]; then
  dl=$(mktemp -d)
  (cd "$dl" && apt-get download libxnnpack0:arm64 libxnnpack-dev:arm64 \
    libpthreadpool0:arm64 libpthreadpool-dev:arm64)
  mkdir -p "$sysroot"
  for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
  rm -rf "$dl"
fi

# qemu-user-static registers itself with binfmt_misc on a normal host; in a container the
# file system may need mounting and the entry registering by hand.
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  tr -d '\n' < /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
fi

[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi)
mkdir -p "$build"
cd "$build"
if [ ! -f Makefile ]; then
  PKG_CONFIG_LIBDIR=/usr/lib/$triplet/pkgconfig:/usr/share/pkgconfig \
    "$top/configure" --host=$triplet CPPFLAGS="-I$sysroot/usr/include" \
    LDFLAGS="-L$libdir -Wl,-rpath-link,$libdir"
fi
make -j2
if [ $# -eq 0 ]; then
  # shellcheck disable=SC2046,SC2012   # test names: no spaces
  set -- $(cd "$top" && ls tests/unit/test_*.c | sed 's/\.c$//') tests/models.sh \
    tests/slicing.sh tests/lenet.sh tests/cli_errors.sh tests/mesh_single.sh tests/dist_models.sh
fi
file apps/nnmeshd
LD_LIBRARY_PATH=$libdir make -j2 check TESTS="$*" VERBOSE=1
