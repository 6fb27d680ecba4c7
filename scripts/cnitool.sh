#!/usr/bin/env bash
# Prints the path of cnitool (libcni's command-line driver), building it first from the Go
# module proxy at a pinned version when it is not in the cache yet. Used by
# agent/tests/cni_libcni.rs (and scripts/setup.sh, so CI builds it once per machine).
#   KOVS_TOOLS_DIR  cache directory (default ~/.cache/kovs/bin)
set -euo pipefail

version=v1.3.1
dir="${KOVS_TOOLS_DIR:-${HOME:-/root}/.cache/kovs/bin}/cnitool-$version"
bin="$dir/cnitool"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

go=$(command -v go || true)
[ -n "$go" ] || [ ! -x /usr/local/go/bin/go ] || go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  # Debian 12's golang-go (1.19) is too old for libcni 1.3 (go 1.21).
  echo "cnitool.sh: go (1.21 or later) not found; install the Go toolchain first" >&2
  exit 1
fi

echo "cnitool.sh: building cnitool $version into $dir" >&2
mkdir -p "$dir"
tmp=$(mktemp -d "$dir.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# A build into a temporary directory, then a rename: a killed build leaves no half binary.
GOBIN="$tmp" GOFLAGS=-buildvcs=false GOTOOLCHAIN=local \
  "$go" install "github.com/containernetworking/cni/cnitool@$version" >&2
mv -f "$tmp/cnitool" "$bin"
echo "$bin"
