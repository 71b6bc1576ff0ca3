#!/usr/bin/env bash
# Prints the path of a CPython 3.14 interpreter that has venv, pip, its
# headers and its own test suite (test.test_asyncio), installing one first
# when none is found: python3.14 on PATH, else a copy under $PREFIX.
#
# The copy is Debian's own build, from Debian's unstable suite, unpacked
# beside the system (no package database is touched): its newer libc
# comes with it, and the interpreter is pointed at that libc and its
# libraries with patchelf. Debian 12 (x86_64) is what this is for.
#
#   py=$(bash tools/python314.sh) && "$py" -m venv /tmp/venv-3.14
set -euo pipefail
PREFIX=${CASYNCIO_PY314_PREFIX:-/opt/python3.14}
PY=$PREFIX/usr/bin/python3.14
CHECK='import ssl, venv, ensurepip, sysconfig, test.test_asyncio
import os; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")'

for candidate in "$(command -v python3.14 || true)" "$PY"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] &&
        "$candidate" -c "$CHECK" 2>/dev/null; then
        echo "$candidate"
        exit 0
    fi
done

log() { echo "python314.sh: $*" >&2; }
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
log "fetching Debian's python3.14 from $mirror (sid)"
apt-get "${apt_opts[@]}" update -qq >&2
apt-get "${apt_opts[@]}" install --download-only -y -qq python3.14 \
    python3.14-venv libpython3.14-dev libpython3.14-testsuite >&2

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
cp "$PREFIX/usr/include/x86_64-linux-gnu/python3.14/pyconfig.h" \
    "$PREFIX/usr/include/python3.14/pyconfig.h"
# ensurepip (so venv) looks for pip's wheel where Debian installs it.
sed -i "s|/usr/share/python-wheels/|$PREFIX/usr/share/python-wheels/|g" \
    "$PREFIX"/usr/lib/python3.14/_sysconfigdata_*.py
"$PY" -c "$CHECK"
log "installed $("$PY" --version) at $PY"
echo "$PY"
