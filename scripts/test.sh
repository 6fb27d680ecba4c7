#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The flow compiler stays pure: no socket runtime in its dependency tree.
if cargo tree -p pipelines -e normal --prefix none | grep -q '^tokio '; then
  echo "pipelines depends on tokio (flowlib's conn feature must stay off there)" >&2
  exit 1
fi
# Tests start private ovs-vswitchd instances and network namespaces: they need root.
cargo test --workspace
# Every decoder of outside input fuzzed for a bounded time (30 s a target): a crash fails CI.
scripts/fuzz.sh
