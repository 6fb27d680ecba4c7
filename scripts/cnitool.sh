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
  echo "cnitool.sh: go not found; installing golang-go" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends golang-go >/dev/null
  go=$(command -v go)
fi

echo "cnitool.sh: building cnitool $version into $dir" >&2
mkdir -p "$dir"
tmp=$(mktemp -d "$dir.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# A build into a temporary directory, then a rename: a killed build leaves no half binary.
GOBIN="$tmp" GOFLAGS=-buildvcs=false GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" \
  "$go" install "github.com/containernetworking/cni/cnitool@$version" >&2
mv -f "$tmp/cnitool" "$bin"
echo "$bin"
