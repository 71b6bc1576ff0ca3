#!/usr/bin/env bash
# Prints the path of a CPython VERSION interpreter (3.14, 3.15, ...) that
# has venv, pip, its headers and its own test suite (test.test_asyncio),
# installing one first when none is found: pythonVERSION on PATH, else a
# copy under $PREFIX (/opt/pythonVERSION).
#
# The copy is Debian's own build, from Debian's unstable suite, unpacked
# beside the system (no package database is touched): its newer libc
# comes with it, and the interpreter is pointed at that libc and its
# libraries with patchelf. Debian 12 (x86_64) is what this is for; any
# version that the unstable suite ships works the same way.
#
#   py=$(bash tools/debian_python.sh 3.15) && "$py" -m venv /tmp/venv-3.15
set -euo pipefail
V=${1:?usage: debian_python.sh VERSION   (e.g. 3.15)}
PREFIX=${CASYNCIO_DEBIAN_PYTHON_PREFIX:-/opt/python$V}
PY=$PREFIX/usr/bin/python$V
CHECK='import ssl, venv, ensurepip, sysconfig, test.test_asyncio
import os; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")'

for candidate in "$(command -v "python$V" || true)" "$PY"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] &&
        "$candidate" -c "$CHECK" 2>/dev/null; then
        echo "$candidate"
        exit 0
    fi
done

log() { echo "debian_python.sh: $*" >&2; }
command -v patchelf >/dev/null ||
    { apt-get update -qq >&2 && apt-get install -y -qq patchelf >&2; }

# The mirror this machine's apt already uses, with the suite set to sid.
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources \
         2>/dev/null || true)
[ -n "$mirror" ] ||
    mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
echo "deb $mirror sid main" > "$tmp/sources.list"
: > "$tmp/status"  # an empty package database: every dependency is fetched
apt_opts=(-o Dir::Etc::sourcelist="$tmp/sources.list"
          -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$tmp/lists"
          -o Dir::Cache="$tmp" -o Dir::Cache::archives="$tmp/archives"
          -o Dir::State::status="$tmp/status"
          -o APT::Install-Recommends=false -o APT::Sandbox::User=root)
log "fetching Debian's python$V from $mirror (sid)"
apt-get "${apt_opts[@]}" update -qq >&2
apt-get "${apt_opts[@]}" install --download-only -y -qq "python$V" \
    "python$V-venv" "libpython$V-dev" "libpython$V-testsuite" >&2

rm -rf "$PREFIX"
mkdir -p "$PREFIX"
for deb in "$tmp"/archives/*.deb; do
    dpkg -x "$deb" "$PREFIX"
done
lib=$PREFIX/usr/lib/x86_64-linux-gnu
# DT_RPATH rather than RUNPATH: it also applies to the libraries that
# extension modules load (libssl for _ssl, libffi for _ctypes).
patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --force-rpath \
    --set-rpath "$lib" "$PY"
# Debian splits pyconfig.h per architecture and includes it by a path
# relative to /usr/include; extensions built against this copy need it
# beside Python.h.
cp "$PREFIX/usr/include/x86_64-linux-gnu/python$V/pyconfig.h" \
    "$PREFIX/usr/include/python$V/pyconfig.h"
# ensurepip (so venv) looks for pip's wheel where Debian installs it.
sed -i "s|/usr/share/python-wheels/|$PREFIX/usr/share/python-wheels/|g" \
    "$PREFIX"/usr/lib/python$V/_sysconfigdata_*.py
"$PY" -c "$CHECK"
log "installed $("$PY" --version) at $PY"
echo "$PY"
