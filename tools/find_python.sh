#!/usr/bin/env bash
# Prints the path of a CPython VERSION interpreter (3.11, 3.12, ...): the
# newest pyenv build of it, else pythonVERSION on PATH (with its headers
# and test suite), else Debian's build, which tools/debian_python.sh
# installs (3.14 and 3.15 here). Prints nothing and fails when there is
# none.
#
#   py=$(bash tools/find_python.sh 3.13)
set -euo pipefail
version=$1
dir=$(ls -d /root/.pyenv/versions/"$version".* 2>/dev/null | sort -V |
      tail -n 1 || true)
if [ -n "$dir" ]; then
    echo "$dir/bin/python$version"
else
    bash "$(dirname "$0")/debian_python.sh" "$version"
fi
