#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Tests start private ovs-vswitchd instances and network namespaces: they need root.
cargo test --workspace
