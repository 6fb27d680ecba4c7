#!/usr/bin/env bash
# Fuzzes flowlib's decoders with cargo-fuzz (libFuzzer). Installs cargo-fuzz when missing.
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
RUSTC_BOOTSTRAP=1 cargo fuzz run decode -- -max_total_time="${1:-60}"
