#!/usr/bin/env bash
# Prints the path of helm, building it first from the Go module proxy at a pinned version when
# it is not in the cache yet. The deploy tests (tests/tests/kube_deploy.rs) run the real
# `helm lint` and `helm template` on deploy/chart/kovs; scripts/setup.sh calls this so a fresh
# machine builds it once.
#   scripts/helm.sh          build if missing, then print the path
#   scripts/helm.sh --path   print the path without building; exit 1 if it is missing
#   KOVS_TOOLS_DIR  cache directory (default ~/.cache/kovs/bin), shared with k8s-tools.sh
set -euo pipefail

version=v4.3.2
dir="${KOVS_TOOLS_DIR:-${HOME:-/root}/.cache/kovs/bin}/helm-$version"
bin="$dir/helm"

case "${1:-}" in
  --path)
    echo "$bin"
    [ -x "$bin" ] || { echo "helm.sh: helm $version not built yet in $dir; run scripts/setup.sh" >&2; exit 1; }
    exit 0
    ;;
  "") ;;
  *) echo "usage: $0 [--path]" >&2; exit 2 ;;
esac

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

go=$(command -v go || true)
[ -n "$go" ] || [ ! -x /usr/local/go/bin/go ] || go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "helm.sh: go (1.26 or later; helm $version's go.mod says go 1.26.0) not found; install the Go toolchain first" >&2
  exit 1
fi

# Measured cold (empty Go module and build caches) on 2 shared cores: 8 min wall, 4 min CPU.
echo "helm.sh: building helm $version into $dir (once per machine; a few minutes)" >&2
mkdir -p "$dir"
tmp=$(mktemp -d "$dir.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The version stamp helm's Makefile sets: without it `helm version` says v4.3 and the chart
# API's helm-version checks see no patch level. Static, as helm's release binaries are. A build
# into a temporary directory, then a rename: a killed build leaves no half binary.
CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-buildvcs=false GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
  "$go" install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
  "helm.sh/helm/v4/cmd/helm@$version" >&2
mv -f "$tmp/helm" "$bin"
echo "$bin"
