#!/usr/bin/env bash
# Unpacks Debian packages under PREFIX, beside the system (apt-get into a
# temporary directory, then dpkg -x; no package database is touched), from
# the mirror this machine's apt already uses with the suite and
# architecture given. With --with-deps every dependency comes too (against
# an empty package database: all of them), else only the packages named.
# tools/debian_python.sh and tools/libkqueue.sh use it.
#
#   bash tools/debian_unpack.sh experimental amd64 /opt/libkqueue \
#       libkqueue-dev libkqueue0t64
set -euo pipefail
SUITE=$1 ARCH=$2 PREFIX=$3
shift 3
with_deps=
if [ "${1:-}" = --with-deps ]; then
    with_deps=1
    shift
fi
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources \
         2>/dev/null || true)
[ -n "$mirror" ] ||
    mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
echo "deb [arch=$ARCH] $mirror $SUITE main" > "$tmp/sources.list"
: > "$tmp/status"
apt_opts=(-o Dir::Etc::sourcelist="$tmp/sources.list"
          -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$tmp/lists"
          -o Dir::Cache="$tmp" -o Dir::Cache::archives="$tmp/archives"
          -o Dir::State::status="$tmp/status"
          -o APT::Install-Recommends=false -o APT::Sandbox::User=root
          -o APT::Architecture="$ARCH" -o APT::Architectures="$ARCH")
echo "debian_unpack.sh: fetching $* ($ARCH) from $mirror ($SUITE)" >&2
apt-get "${apt_opts[@]}" update -qq >&2
if [ -n "$with_deps" ]; then
    apt-get "${apt_opts[@]}" install --download-only -y -qq "$@" >&2
else
    (cd "$tmp/archives" && apt-get "${apt_opts[@]}" download -qq "$@" >&2)
fi
mkdir -p "$PREFIX"
for deb in "$tmp"/archives/*.deb; do
    dpkg -x "$deb" "$PREFIX"
done
