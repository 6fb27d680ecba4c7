#!/usr/bin/env bash
# Prints the path of cargo-fuzz, building it first from crates.io at a pinned version when it
# is not in the cache yet (~3 min on 2 cores). Used by scripts/fuzz.sh (and scripts/setup.sh,
# so CI builds it once per machine).
#   KOVS_TOOLS_DIR  cache directory (default ~/.cache/kovs/bin)
set -euo pipefail

version=0.13.2
dir="${KOVS_TOOLS_DIR:-${HOME:-/root}/.cache/kovs/bin}/cargo-fuzz-$version"
bin="$dir/bin/cargo-fuzz"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

echo "cargo-fuzz.sh: building cargo-fuzz $version into $dir" >&2
mkdir -p "$(dirname "$dir")"
tmp=$(mktemp -d "$dir.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Into a temporary root, then a rename: a killed build leaves no half install.
cargo install cargo-fuzz --version "$version" --locked --root "$tmp" >&2
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$bin"
