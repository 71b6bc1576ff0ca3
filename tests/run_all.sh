#!/usr/bin/env bash
# Builds casyncio's wheels (tools/build_wheels.sh: x86_64 and aarch64,
# each smoke-tested), installs each x86_64 one into a fresh venv per
# supported Python and runs every test: the C core tests, the
# parity/leak/CLI/fuzz suite (pytest), CPython's own test_asyncio through
# the conformance runner, the parity suite inside a subinterpreter
# (3.14+), the fault tests (failed allocations and syscalls) on the newest
# Python, part of the parity suite on the newest Python's aarch64 wheel
# under emulation, the parity suite and CPython's suite on
# the newest Python built as if it were untested (the fallback to stdlib's
# code), the same on the portable build (kqueue, on libkqueue), the
# documentation build, the peers' own suites on one Python,
# the casyncio side of the parity suite again on an ASan+UBSan build, and
# the three-interpreter test on a ThreadSanitizer build. Ends with one
# "total: N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHONS=${CASYNCIO_PYTHONS:-"3.11 3.12 3.13 3.14 3.15"}
WORK=${CASYNCIO_WORK:-/tmp/casyncio-tests}
mkdir -p "$WORK"
passed=0
failed=0
status=0

find_python() {
    bash "$ROOT/tools/find_python.sh" "$1"
}

# Adds the counts of a closing "N passed, N failed" (pytest's or ours).
tally() {
    local line=$1 p f
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || true)
    f=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$line" |
        awk '{s += $1} END {print s + 0}')
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
}

step() {  # step NAME CMD...: run, show output, tally its last summary line
    local name=$1 log="$WORK/$1.log" rc started=$SECONDS
    shift
    echo "=== $name"
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    echo "=== $name took $((SECONDS - started)) s"
    tally "$(grep -E '[0-9]+ (passed|failed)' "$log" | tail -n 1)"
    if [ "$rc" -ne 0 ]; then
        echo "=== $name FAILED (exit $rc)"
        status=1
    fi
}

step core-c make -s -C tests/core clean check

# The sdist and a manylinux wheel per Python, each smoke-tested in a venv
# without a compiler; the suites below then run on those wheels. Of the
# aarch64 wheels, the newest Python's only (the four that Debian lets us
# test under emulation take 8 minutes more: bash tools/build_wheels.sh
# builds them all before a release).
newest=${PYTHONS##* }
step wheels env CASYNCIO_PYTHONS="$PYTHONS" CASYNCIO_ARCHS=x86_64 \
    bash "$ROOT/tools/build_wheels.sh" "$WORK/dist"
step "wheels-aarch64-$newest" env CASYNCIO_PYTHONS="$newest" \
    CASYNCIO_ARCHS=aarch64 bash "$ROOT/tools/build_wheels.sh" \
    "$WORK/dist-aarch64"

for v in $PYTHONS; do
    py=$(find_python "$v")
    wheel=$(ls "$WORK"/dist/casyncio-*-cp${v/./}-*.whl 2>/dev/null)
    if [ -z "$py" ] || [ -z "$wheel" ]; then
        echo "=== Python $v or its wheel not found"; status=1; continue
    fi
    venv="$WORK/venv-$v"
    rm -rf "$venv"
    "$py" -m venv "$venv" && "$venv/bin/pip" install -q --upgrade pip &&
        "$venv/bin/pip" install -q "$wheel[test]" || {
        echo "=== install on $v FAILED"; status=1; continue; }
    # From outside the checkout, so the installed package is what runs.
    # --durations: the slowest tests, to watch the run's time budget; -n 2:
    # both cores (pytest-xdist), most tests wait on the network or a child.
    step "pytest-$v" bash -c "cd '$WORK' && '$venv/bin/python' -m pytest \
        -q -n 2 -p no:cacheprovider --durations=10 --rootdir '$ROOT/tests' \
        '$ROOT/tests'"
    step "cpython-suite-$v" bash -c "cd '$WORK' && '$venv/bin/python' \
        '$ROOT/tests/conformance/run_cpython_suite.py'"
    # 3.14+: the parity suite again inside a subinterpreter with a GIL of
    # its own (test_libraries' servers bring extension modules of their
    # own, which need not load there, and test_fuzz's hypothesis has a
    # native module that does not): both loops on the newest Python,
    # the casyncio side (still compared with stdlib's loop where a test
    # does) on the others, for the run's time.
    if "$venv/bin/python" -c 'import concurrent.interpreters' 2>/dev/null
    then
        sides=$([ "$v" = "${PYTHONS##* }" ] || echo --casyncio-only)
        step "subinterpreter-$v" bash -c "cd '$WORK' && '$venv/bin/python' \
            '$ROOT/tests/run_in_subinterpreter.py' -q -p no:cacheprovider \
            --rootdir '$ROOT/tests' '$ROOT/tests' $sides \
            --ignore '$ROOT/tests/test_libraries.py' \
            --ignore '$ROOT/tests/test_typing.py' \
            --ignore '$ROOT/tests/test_fuzz.py'"
    fi
done

# A CPython newer than the newest casyncio was checked against: the newest
# Python, with the extension built as if the one before were the newest
# (setup.py's CASYNCIO_NEWEST_TESTED), so stdlib's own streams, SSLProtocol
# and socket constructors run where casyncio has C copies of them. The
# casyncio side of the parity suite and the conformance gate must pass so.

# Faults on purpose (tests/test_faults.py): failed allocations (its
# _testcapi has set_nomemory) and failed syscalls, on the newest Python;
# -s shows the sweep's table, stdlib's figures beside casyncio's.
step "faults-$newest" bash -c "cd '$WORK' && CASYNCIO_FAULTS=1 \
    '$WORK/venv-$newest/bin/python' -m pytest -q -s -p no:cacheprovider \
    --rootdir '$ROOT/tests' '$ROOT/tests/test_faults.py'"

# aarch64: the newest Python's aarch64 wheel (built and smoke-tested by the
# wheels step) runs the casyncio side of the parity suite's timers and
# handles, TCP, streams, TLS and subprocess modules, debug mode off (the
# emulator runs them ten times slower), on Debian's aarch64 CPython under
# qemu-user-static (tools/arm64_venv.sh). Left out: an exec() that fails
# in the child, which qemu-user reports as a child exiting with 127, on
# stdlib's loop as on casyncio's; the thousand-TLS-connections stress
# test, whose time limit emulation exceeds; and, for the run's time, the
# volume tests that emulation makes the slowest (64 MiB over TLS, the
# concurrent TLS connections, a spawned process pool, Ctrl-C in a child
# Python), which test no more of the architecture than the rest.
aarch64_select="not debug and not exec_failure and not thousand_tls"
aarch64_select+=" and not 64_mib and not concurrent_connections_each"
aarch64_select+=" and not process_pool and not ctrl_c"
wheel=$(ls "$WORK"/dist-aarch64/casyncio-*-cp${newest/./}-*_aarch64.whl \
        2>/dev/null || true)
if [ -n "$wheel" ] && py=$(bash "$ROOT/tools/arm64_venv.sh" \
        "$WORK/venv-aarch64" "$newest" "$wheel" "pytest>=7" pytest-xdist \
        hypothesis); then
    step "aarch64-parity-$newest" bash -c "cd '$WORK' && '$py' -m pytest \
        -q -n 2 -p no:cacheprovider --rootdir '$ROOT/tests' --casyncio-only \
        -k '$aarch64_select' \
        '$ROOT/tests/test_loop.py' '$ROOT/tests/test_net.py' \
        '$ROOT/tests/test_streams.py' '$ROOT/tests/test_tls.py' \
        '$ROOT/tests/test_process.py'"
else
    echo "=== aarch64 wheel or venv FAILED"; status=1
fi

# The documentation (docs/, Sphinx with MyST): built with warnings as
# errors in the newest Python's venv, whose casyncio (from its wheel) the
# API reference's autodoc imports (from outside the checkout, whose
# casyncio/ has no extension built). tests/test_docs.py, in the pytest steps,
# checks the pages against the code.
wheel=$(ls "$WORK"/dist/casyncio-*-cp${newest/./}-*.whl 2>/dev/null)
step docs bash -c "cd '$WORK' &&
    '$WORK/venv-$newest/bin/pip' install -q '$wheel[docs]' &&
    '$WORK/venv-$newest/bin/python' -m sphinx -W --keep-going -q -b html \
    '$ROOT/docs' '$WORK/docs-html' && echo 'docs: built, no warnings'"

py=$(find_python "$newest")
venv="$WORK/venv-untested"
rm -rf "$venv"
if [ -n "$py" ] && "$py" -m venv "$venv" &&
    "$venv/bin/pip" install -q --upgrade pip &&
    "$venv/bin/pip" install -q "pytest>=7" pytest-xdist &&
    CASYNCIO_NEWEST_TESTED="${newest%.*}.$((${newest#*.} - 1))" \
        "$venv/bin/pip" install -q --no-cache-dir "$ROOT"; then
    step "untested-python-$newest" bash -c "cd '$WORK' && \
        '$venv/bin/python' -c 'import casyncio; \
print(\"built as if the newest tested were\", casyncio.NEWEST_TESTED_PYTHON)' &&
        '$venv/bin/python' -m pytest -q -n 2 -p no:cacheprovider \
        --rootdir '$ROOT/tests' '$ROOT/tests' --casyncio-only \
        --ignore '$ROOT/tests/test_libraries.py' \
        --ignore '$ROOT/tests/test_typing.py'"
    step "untested-python-$newest-cpython-suite" bash -c "cd '$WORK' && \
        '$venv/bin/python' '$ROOT/tests/conformance/run_cpython_suite.py'"
else
    echo "=== untested-Python build FAILED"; status=1
fi

# The portable build (CASYNCIO_PORTABLE=1): the kqueue poller and the POSIX
# counterpart of every Linux-only call, what macOS and the BSDs would
# build, here on libkqueue (tools/libkqueue.sh). Its core tests; then, on
# the newest Python, a check that the extension calls none of Linux's own
# functions, the casyncio side of the parity suite (tests/conftest.py
# skips the few tests that see where libkqueue differs from a real kqueue)
# and CPython's suite.
kqueue=$(bash "$ROOT/tools/libkqueue.sh") || kqueue=/nonexistent
step core-c-portable make -s -C tests/core clean check PORTABLE=1 \
    KQUEUE="$kqueue"
make -s -C tests/core clean
py=$(find_python "$newest")
venv="$WORK/venv-portable"
rm -rf "$venv"
if [ -n "$py" ] && "$py" -m venv "$venv" &&
    "$venv/bin/pip" install -q --upgrade pip &&
    "$venv/bin/pip" install -q "pytest>=7" pytest-xdist hypothesis &&
    CASYNCIO_PORTABLE=1 CASYNCIO_KQUEUE_PREFIX="$kqueue" \
        "$venv/bin/pip" install -q --no-cache-dir "$ROOT"; then
    step "portable-$newest" bash -c "cd '$WORK' && \
        '$venv/bin/python' -c 'import casyncio; print(\"poller:\", casyncio.POLLER)' &&
        so=\$('$venv/bin/python' -c 'import casyncio._casyncio as m; print(m.__file__)') &&
        if nm -D --undefined-only \"\$so\" |
            grep -E ' (epoll_|eventfd|accept4|pipe2|dup3|syscall|pidfd)'; then
            echo 'the portable build calls Linux-only functions'; exit 1
        fi &&
        CASYNCIO_PORTABLE=1 '$venv/bin/python' -m pytest -q -n 2 \
        -p no:cacheprovider --rootdir '$ROOT/tests' '$ROOT/tests' \
        --casyncio-only --ignore '$ROOT/tests/test_libraries.py' \
        --ignore '$ROOT/tests/test_typing.py'"
    step "portable-$newest-cpython-suite" bash -c "cd '$WORK' && \
        '$venv/bin/python' '$ROOT/tests/conformance/run_cpython_suite.py'"
else
    echo "=== portable build FAILED"; status=1
fi

# The peers' own suites (uvloop's, anyio's, uvicorn's, aiohttp's) on stdlib
# and on casyncio, on one Python: tests/peers/run_peers.py.
v=${CASYNCIO_PEERS_PYTHON:-3.13}
py=$(find_python "$v")
wheel=$(ls "$WORK"/dist/casyncio-*-cp${v/./}-*.whl 2>/dev/null || echo "$ROOT")
venv="$WORK/venv-peers"
rm -rf "$venv"
if [ -n "$py" ] && "$py" -m venv "$venv" &&
    "$venv/bin/pip" install -q --upgrade pip &&
    "$venv/bin/pip" install -q -r "$ROOT/tests/peers/requirements.txt" \
        "$wheel"; then
    step peers bash -c "cd '$WORK' && '$venv/bin/python' \
        '$ROOT/tests/peers/run_peers.py' '$WORK/peers'"
else
    echo "=== peers install FAILED"; status=1
fi

# Sanitizers: the extension built with ASan+UBSan runs the casyncio side
# of the parity suite, and on the newest Python the tests of what only
# the newest Pythons have: loops in three interpreters at once (3.14+),
# the transports' contexts (3.15), and the fault tests (a coarser
# allocation sweep). A ThreadSanitizer build runs the
# three-interpreter test: its interpreters have GILs of their own, so
# casyncio's C runs in several threads at once there, and state they
# shared would be a race TSan reports.
# CPython itself is not instrumented, so the sanitizer's runtime is
# preloaded, and ASan's leak detection (which would report the
# interpreter's own) is off. pytest captures sys.stdout/err only, so a
# report the runtime writes to fd 2 before it stops the process shows.
sanitized() {  # sanitized address|thread VERSION STEP PYTEST-ARGS [ENV]
    local py venv="$WORK/venv-$1-$2" runtime=libasan.so
    [ "$1" = thread ] && runtime=libtsan.so
    py=$(find_python "$2")
    rm -rf "$venv"
    if [ -n "$py" ] && "$py" -m venv "$venv" &&
        "$venv/bin/pip" install -q "pytest>=7" hypothesis &&
        CASYNCIO_SANITIZE=$1 "$venv/bin/pip" install -q --no-cache-dir \
            "$ROOT"; then
        # Preloaded into Python only: bash itself crashes under TSan.
        step "$3" bash -c "cd '$WORK' && \
            env LD_PRELOAD='$(gcc -print-file-name=$runtime)' \
            ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1 \
            TSAN_OPTIONS='halt_on_error=1 exitcode=66' \
            ${5:-} '$venv/bin/python' -m pytest -q \
            -p no:cacheprovider --capture=sys --rootdir '$ROOT/tests' $4 \
            --casyncio-only"
    else
        echo "=== $3: sanitizer build FAILED"; status=1
    fi
}
sanitized address 3.11 sanitizers \
    "'$ROOT/tests' --ignore '$ROOT/tests/test_leaks.py'"
sanitized address "$newest" "sanitizers-$newest" \
    "'$ROOT/tests/test_subinterpreters.py' '$ROOT/tests/test_context.py' \
    '$ROOT/tests/test_py315.py' '$ROOT/tests/test_faults.py'" \
    "CASYNCIO_FAULTS=1 CASYNCIO_ALLOC_STRIDE=128"
sanitized thread "$newest" "thread-sanitizer-$newest" \
    "'$ROOT/tests/test_subinterpreters.py'"

echo "total: $passed passed, $failed failed"
exit $status
