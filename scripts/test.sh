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
# kube-rs and k8s-openapi are linked by kovs-kube alone, and only the agent depends on kovs-kube.
direct_users() {
  cargo tree --workspace -e normal -i "$1" --depth 1 --prefix none | sed 's/ .*//' | sort -u |
    grep -vx -e "$1" -e 'kube' -e 'kube-client' -e 'kube-core' -e 'kube-runtime' | tr '\n' ' '
}
for c in kube k8s-openapi; do
  [ "$(direct_users "$c")" = "kovs-kube " ] || { echo "$c is used by: $(direct_users "$c")(only kovs-kube may)" >&2; exit 1; }
done
[ "$(direct_users kovs-kube)" = "kovs-agent " ] || { echo "kovs-kube is used by: $(direct_users kovs-kube)(only kovs-agent may)" >&2; exit 1; }
# Tests start private ovs-vswitchd instances and network namespaces: they need root.
cargo test --workspace
# Every decoder of outside input fuzzed for a bounded time (30 s a target): a crash fails CI.
scripts/fuzz.sh
