#!/usr/bin/env bash
# The main job: installs casyncio and uvloop into a fresh venv and prints
# the side-by-side benchmark tables (casyncio vs asyncio vs uvloop): loop
# micro-benchmarks, the parent's CPU time per subprocess, the sender's CPU
# time per loop.sendfile(), then the echo server's CPU time and user-space
# instructions per request, plain and (CPU time) over TLS, and HTTP
# servers (uvicorn with httptools, aiohttp) under wrk, and servers run by
# N subinterpreters of one process vs N processes. Every row is
# also written to bench/results/PYTHON.jsonl and drawn in
# bench/results/PYTHON.png (bench/chart.py), the chart the README shows.
#
#   bash bench/run.sh                  # on CPython 3.15
#   CASYNCIO_PYTHON=3.14 bash bench/run.sh   # 3.11 to 3.14 likewise
#   PYTHON=/path/to/python bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
version=${CASYNCIO_PYTHON:-3.15}
PY=${PYTHON:-$(bash tools/find_python.sh "$version")}
VENV=${CASYNCIO_BENCH_VENV:-/tmp/casyncio-bench}
"$PY" -m venv --clear "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q ".[bench]"
# The TLS load generator links OpenSSL and the certificate comes from its CLI.
if ! [ -e /usr/include/openssl/ssl.h ] || ! command -v openssl >/dev/null; then
    apt-get update -qq && apt-get install -y -qq libssl-dev openssl
fi
RESULTS=$PWD/bench/results/$("$VENV/bin/python" -c \
    'import sys; print("%d.%d" % sys.version_info[:2])')
mkdir -p bench/results
rm -f "$RESULTS.jsonl"
export CASYNCIO_BENCH_RESULTS=$RESULTS.jsonl
cd /tmp  # import the installed package, not the checkout
# Pin to one core so the machine's other core does not blur the ratios.
taskset -c 0 "$VENV/bin/python" "$OLDPWD/bench/loop_bench.py" "$@"
# Not pinned: the children need the other core.
"$VENV/bin/python" "$OLDPWD/bench/process_bench.py"
# The sender pins itself and its sink to cores of their own.
"$VENV/bin/python" "$OLDPWD/bench/sendfile_bench.py"
# The echo bench pins server and load generator to cores of their own.
"$VENV/bin/python" "$OLDPWD/bench/echo_bench.py"
# The same servers' user-space instructions per request, which machine
# noise does not move (valgrind: Debian's package).
command -v valgrind >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq valgrind; }
"$VENV/bin/python" "$OLDPWD/bench/echo_instructions.py"
"$VENV/bin/python" "$OLDPWD/bench/tls_bench.py"
# HTTP servers under wrk (Debian's package), then under callgrind.
command -v wrk >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq wrk; }
"$VENV/bin/python" "$OLDPWD/bench/http_bench.py"
# The same process on more cores: servers in N subinterpreters vs N
# processes (3.14+; casyncio and asyncio, uvloop does not load there).
"$VENV/bin/python" "$OLDPWD/bench/interpreters_bench.py"
"$VENV/bin/python" "$OLDPWD/bench/chart.py" "$RESULTS.jsonl" "$RESULTS.png" \
    --title "$("$VENV/bin/python" -c 'import platform; print(
        "Python", platform.python_version(), "on", platform.machine())'), \
$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), \
$(nproc) cores, $(date +%F)"
echo "chart: $RESULTS.png"
