#!/usr/bin/env bash
# The main job on the embedded default: a private two-node userspace-OVS sandbox (each node its
# own ovs-vswitchd in its own network namespace, joined by a veth wire, plus a second wire for the
# provider network), the example pods of examples/cluster.yaml as namespaces bound by iface-id,
# one `kovs-agent run` per node, and pings between every pair of pods. Needs root (network namespaces); everything is removed on exit.
# Options: --tunnel-type geneve|vxlan, --hold (keep it running until Ctrl-C), STATE=path.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q -p kovs-agent
cargo build --release -q -p kovs-tests --bin kovs-sandbox
exec ./target/release/kovs-sandbox --state "${STATE:-examples/cluster.yaml}" "$@"
