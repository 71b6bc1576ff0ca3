#!/usr/bin/env bash
# Prints the path of a CPython VERSION interpreter (3.11, 3.12, ...): the
# newest pyenv build of it, else pythonVERSION on PATH; for 3.14, where
# neither is found, tools/python314.sh installs Debian's. Prints nothing
# and fails when there is none.
#
#   py=$(bash tools/find_python.sh 3.13)
set -euo pipefail
version=$1
dir=$(ls -d /root/.pyenv/versions/"$version".* 2>/dev/null | sort -V |
      tail -n 1 || true)
if [ -n "$dir" ]; then
    echo "$dir/bin/python$version"
elif [ "$version" = 3.14 ]; then
    bash "$(dirname "$0")/python314.sh"
else
    command -v "python$version"
fi
