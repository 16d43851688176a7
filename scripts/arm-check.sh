#!/bin/sh
# scripts/arm-check.sh — builds nnmesh for ARM boards with Debian's cross compiler and runs
# the tests under qemu-user, on a Debian 12 amd64 machine, as root. Not part of `make
# check`: an emulated run takes ~10-20 min on 2 cores.
#
#   scripts/arm-check.sh [--arch arm64|armhf] [BUILD_DIR] [TEST ...]
#
# arm64 (the default): 64-bit boards (Raspberry Pi 3/4/5 with a 64-bit OS, Jetson, RK3588).
# armhf: 32-bit ARMv7 with VFPv3/NEON (Raspberry Pi OS 32-bit and older boards), where
# size_t and pointers are 32 bits wide. BUILD_DIR defaults to build-ARCH beside the
# source; TESTs default to the unit tests (the wire decoders' bad-input cases among them)
# and the model, slicing and mesh tests (every model against ONNX Runtime, 4 nodes splitting
# MobileNetV2, ResNet-18 and LeNet). The ARM binaries run under qemu through binfmt_misc;
# mosquitto, Python (model export) and ONNX Runtime (the oracle) run natively.
#
# The ARM libraries are not installed: their packages are downloaded and unpacked into a
# sysroot (ARM_SYSROOT, default /opt/nnmesh-ARCH). Installed as multiarch packages they would
# fight the host's: Debian's XNNPACK and pthreadpool cannot be installed for two
# architectures at once (the arm64 ones remove the amd64 ones, and python3-torch with them),
# and every multiarch library must match the host's version exactly, which fails whenever a
# mirror's index for the foreign architecture lags. Only the cross compiler (an amd64
# package) and qemu are installed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
arch=arm64
if [ "${1:-}" = "--arch" ]; then arch=${2:?--arch needs arm64 or armhf}; shift 2; fi
case $arch in
  arm64) triplet=aarch64-linux-gnu; qemu="qemu-aarch64" ;;
  armhf) triplet=arm-linux-gnueabihf; qemu="qemu-arm" ;;
  *) echo "arm-check.sh: unknown architecture '$arch' (arm64 or armhf)" >&2; exit 2 ;;
esac
build=${1:-$top/build-$arch}
[ $# -gt 0 ] && shift
sysroot=${ARM_SYSROOT:-/opt/nnmesh-$arch}
export DEBIAN_FRONTEND=noninteractive

"$here/install-deps.sh" --test   # the host side: mosquitto, torch, onnxruntime-node

dpkg --print-foreign-architectures | grep -qx "$arch" || dpkg --add-architecture "$arch"
# An index that fails to download (a mirror mid-sync) leaves apt with the ones it has.
apt-get update -q || echo "arm-check.sh: apt-get update reported errors; going on" >&2
apt-get install -y -q --no-install-recommends crossbuild-essential-"$arch" qemu-user-static

libs="libsodium23 libsodium-dev libmsgpackc2 libmsgpack-dev libpaho-mqtt1.3 libpaho-mqtt-dev
  libcmocka0 libcmocka-dev libprotobuf-c1 libprotobuf-c-dev libinih1 libinireader0 libinih-dev
  liblz4-1 liblz4-dev libcpuinfo0 libxnnpack0 libxnnpack-dev libpthreadpool0 libpthreadpool-dev"
libdir=$sysroot/usr/lib/$triplet
if [ ! -f "$sysroot/.complete" ]; then
  dl=$(mktemp -d)
  chmod 755 "$dl"   # apt's download user writes here
  # shellcheck disable=SC2046
  (cd "$dl" && apt-get download $(for p in $libs; do printf '%s:%s ' "$p" "$arch"; done))
  rm -rf "$sysroot"
  mkdir -p "$sysroot"
  for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
  rm -rf "$dl"
  touch "$sysroot/.complete"
fi

# qemu-user-static registers itself with binfmt_misc on a normal host; in a container the
# file system may need mounting and the entry registering by hand.
if [ ! -e /proc/sys/fs/binfmt_misc/$qemu ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  tr -d '\n' < /usr/lib/binfmt.d/$qemu.conf > /proc/sys/fs/binfmt_misc/register
fi

[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi)
mkdir -p "$build"
cd "$build"
if [ ! -f Makefile ]; then
  PKG_CONFIG_SYSROOT_DIR=$sysroot \
    PKG_CONFIG_LIBDIR=$libdir/pkgconfig:$sysroot/usr/share/pkgconfig \
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
# qemu finds the ARM loader through a prefix that holds nothing else, the libc of the cross
# toolchain and the libraries of the sysroot through LD_LIBRARY_PATH (which native programs,
# such as mosquitto, skip as the wrong architecture). With the cross toolchain's directory
# itself as QEMU_LD_PREFIX, aarch64 test programs could not start mosquitto: the forked
# child died before its exec.
mkdir -p "$sysroot/qemu/lib"
for ld in /usr/"$triplet"/lib/ld-linux-*; do ln -sf "$ld" "$sysroot/qemu/lib/"; done
QEMU_LD_PREFIX=$sysroot/qemu LD_LIBRARY_PATH=/usr/$triplet/lib:$libdir make -j2 check TESTS="$*" VERBOSE=1
