#!/usr/bin/env bash
# Prints the path of a CPython VERSION interpreter (3.14, 3.15, ...) that
# has venv, pip, its headers and its own test suite (test.test_asyncio),
# installing one first when none is found: pythonVERSION on PATH, else a
# copy under $PREFIX (/opt/pythonVERSION; /opt/pythonVERSION-arm64 for
# ARCH arm64).
#
# The copy is Debian's own build, from Debian's unstable suite (bookworm
# for 3.11, which unstable no longer ships), unpacked beside the system (no
# package database is touched): its newer libc comes with it, and the
# interpreter is pointed at that libc and its libraries with patchelf.
# Debian 12 (x86_64) is what this is for; any version that the suite ships
# works the same way. ARCH arm64 fetches the aarch64 build, which runs
# here under qemu-user-static (installed, and registered with binfmt_misc
# so that the programs it starts run too); tools/build_wheels.sh tests the
# aarch64 wheels with it.
#
#   py=$(bash tools/debian_python.sh 3.15) && "$py" -m venv /tmp/venv-3.15
#   py=$(bash tools/debian_python.sh 3.15 arm64)
set -euo pipefail
V=${1:?usage: debian_python.sh VERSION [amd64|arm64]   (e.g. 3.15)}
ARCH=${2:-amd64}
case $ARCH in
    amd64) TRIPLET=x86_64-linux-gnu LOADER=ld-linux-x86-64.so.2 SUFFIX= ;;
    arm64) TRIPLET=aarch64-linux-gnu LOADER=ld-linux-aarch64.so.1
           SUFFIX=-arm64 ;;
    *) echo "debian_python.sh: no architecture $ARCH" >&2; exit 2 ;;
esac
SUITE=sid
[ "$V" = 3.11 ] && SUITE=bookworm
PREFIX=${CASYNCIO_DEBIAN_PYTHON_PREFIX:-/opt/python$V$SUFFIX}
PY=$PREFIX/usr/bin/python$V
CHECK='import ssl, venv, ensurepip, sysconfig, test.test_asyncio
import os; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")'

if [ "$ARCH" = arm64 ]; then
    # The emulator, and binfmt_misc entries for it (no systemd here).
    [ -x /usr/bin/qemu-aarch64-static ] ||
        { apt-get update -qq >&2 &&
          apt-get install -y -qq qemu-user-static >&2; }
    binfmt=/proc/sys/fs/binfmt_misc
    [ -e $binfmt/register ] || mount -t binfmt_misc binfmt_misc $binfmt
    [ -e $binfmt/qemu-aarch64 ] ||
        cat /usr/lib/binfmt.d/qemu-aarch64.conf > $binfmt/register
fi

candidates=("$PY")
[ "$ARCH" = amd64 ] && candidates+=("$(command -v "python$V" || true)")
for candidate in "${candidates[@]}"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] &&
        "$candidate" -c "$CHECK" 2>/dev/null; then
        echo "$candidate"
        exit 0
    fi
done

log() { echo "debian_python.sh: $*" >&2; }
command -v patchelf >/dev/null ||
    { apt-get update -qq >&2 && apt-get install -y -qq patchelf >&2; }

log "fetching Debian's python$V ($ARCH, $SUITE)"
rm -rf "$PREFIX"
bash "$(dirname "$0")/debian_unpack.sh" "$SUITE" "$ARCH" "$PREFIX" \
    --with-deps "python$V" "python$V-venv" "libpython$V-dev" \
    "libpython$V-testsuite"
# Bookworm's packages put libc under /lib, later ones under /usr/lib.
lib=$PREFIX/usr/lib/$TRIPLET:$PREFIX/lib/$TRIPLET
loader=$(ls "$PREFIX"/{usr/,}lib/$TRIPLET/$LOADER 2>/dev/null | head -n 1 || true)
# DT_RPATH rather than RUNPATH: it also applies to the libraries that
# extension modules load (libssl for _ssl, libffi for _ctypes).
patchelf --set-interpreter "$loader" --force-rpath --set-rpath "$lib" "$PY"
# Debian splits pyconfig.h per architecture and includes it by a path
# relative to /usr/include; extensions built against this copy need it
# beside Python.h.
cp "$PREFIX/usr/include/$TRIPLET/python$V/pyconfig.h" \
    "$PREFIX/usr/include/python$V/pyconfig.h"
# ensurepip (so venv) looks for pip's wheel where Debian installs it.
sed -i "s|/usr/share/python-wheels/|$PREFIX/usr/share/python-wheels/|g" \
    "$PREFIX"/usr/lib/python$V/_sysconfigdata_*.py
"$PY" -c "$CHECK"
log "installed $("$PY" --version) at $PY"
echo "$PY"
