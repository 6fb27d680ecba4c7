#!/usr/bin/env bash
# The main job on the embedded default: a private userspace OVS sandbox, the example state in
# examples/ compiled for a node, installed by flowlib in one bundle, dumped back and checked,
# and a packet traced through it. Needs root (network namespaces); cleans up on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q -p kovs-tests --bin kovs-sandbox -p kovs-agent
exec ./target/release/kovs-sandbox --state "${STATE:-examples/cluster.yaml}" --node "${NODE:-node1}" "$@"
