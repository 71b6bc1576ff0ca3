#!/usr/bin/env bash
# Makes DIR a venv of Debian's aarch64 CPython VERSION (run under
# qemu-user-static: tools/debian_python.sh VERSION arm64) holding WHEEL and
# PACKAGES, and prints its python. The venv has no pip: pip run under the
# emulator takes minutes per venv, so this machine's pip installs into the
# venv's site-packages for the aarch64 platform and that Python version,
# choosing wheels by their tags as pip on an aarch64 machine would
# (--only-binary: nothing is compiled).
#
#   py=$(bash tools/arm64_venv.sh /tmp/a64 3.15 dist/casyncio-...aarch64.whl pytest)
set -euo pipefail
DIR=${1:?usage: arm64_venv.sh DIR VERSION WHEEL [PACKAGES...]}
V=${2:?}
WHEEL=${3:?}
shift 3
py=$(bash "$(dirname "$0")/debian_python.sh" "$V" arm64)
rm -rf "$DIR"
"$py" -m venv --without-pip "$DIR"
python3 -m pip install -q --target "$DIR/lib/python$V/site-packages" \
    --platform manylinux_2_17_aarch64 --python-version "$V" \
    --implementation cp --only-binary :all: "$WHEEL" "$@" 2>&1 |
    { grep -v "^WARNING: Location" || true; } >&2  # stdout: the path only
echo "$DIR/bin/python"
