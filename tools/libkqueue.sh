#!/usr/bin/env bash
# Puts libkqueue (kqueue's API over epoll) under $PREFIX (/opt/libkqueue)
# and prints the prefix, for the portable build (CASYNCIO_PORTABLE=1,
# setup.py) and the core tests (make -C tests/core PORTABLE=1). Debian's
# libkqueue-dev 2.3.1, from its experimental suite, needs only glibc 2.34:
# it is unpacked beside the system (tools/debian_unpack.sh), as
# tools/debian_python.sh does for CPython.
#
#   prefix=$(bash tools/libkqueue.sh) &&
#   CASYNCIO_PORTABLE=1 CASYNCIO_KQUEUE_PREFIX=$prefix pip install .
set -euo pipefail
PREFIX=${CASYNCIO_KQUEUE_PREFIX:-/opt/libkqueue}
if [ -e "$PREFIX/usr/include/kqueue/sys/event.h" ] &&
    ls "$PREFIX"/usr/lib/*/libkqueue.so >/dev/null 2>&1; then
    echo "$PREFIX"
    exit 0
fi
bash "$(dirname "$0")/debian_unpack.sh" experimental \
    "$(dpkg --print-architecture)" "$PREFIX" \
    libkqueue-dev libkqueue0t64
echo "$PREFIX"
