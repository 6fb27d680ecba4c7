#!/usr/bin/env bash
# Prints where kube-apiserver, kubectl and etcd are (one `name=path` line each), building them
# first from the Go module proxy at pinned versions when they are not in the cache yet. The
# tests' private control plane (tests/src/kube.rs) runs them; scripts/setup.sh calls this so a
# fresh machine builds them once.
#   scripts/k8s-tools.sh           build if missing, then print the paths
#   scripts/k8s-tools.sh --paths   print the paths without building; exit 1 if one is missing
#   KOVS_TOOLS_DIR  cache directory (default ~/.cache/kovs/bin)
# The versions live in scripts/k8s-build/go.mod (the build module); they key the cache dir.
set -euo pipefail

kube_version=v1.36.3
etcd_version=v3.6.8
build_module="$(cd "$(dirname "$0")" && pwd)/k8s-build"
dir="${KOVS_TOOLS_DIR:-${HOME:-/root}/.cache/kovs/bin}/kubernetes-$kube_version-etcd-$etcd_version"
tools=(kube-apiserver kubectl etcd)

print_paths() {
  for t in "${tools[@]}"; do echo "$t=$dir/$t"; done
}
all_present() {
  for t in "${tools[@]}"; do [ -x "$dir/$t" ] || return 1; done
}

case "${1:-}" in
  --paths)
    print_paths
    all_present || { echo "k8s-tools.sh: not built yet in $dir; run scripts/setup.sh" >&2; exit 1; }
    exit 0
    ;;
  "") ;;
  *) echo "usage: $0 [--paths]" >&2; exit 2 ;;
esac

if all_present; then
  print_paths
  exit 0
fi

# The versions above key the cache; the build module must pin the same ones.
grep -q "k8s.io/kubernetes $kube_version" "$build_module/go.mod" &&
  grep -q "go.etcd.io/etcd/server/v3 $etcd_version" "$build_module/go.mod" || {
  echo "k8s-tools.sh: $build_module/go.mod does not pin kubernetes $kube_version and etcd $etcd_version" >&2
  exit 1
}

go=$(command -v go || true)
[ -n "$go" ] || [ ! -x /usr/local/go/bin/go ] || go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "k8s-tools.sh: go (1.26 or later) not found; install the Go toolchain first" >&2
  exit 1
fi

# Measured cold (empty module and build caches) on 2 shared cores: 9 min of CPU, 14 min wall.
echo "k8s-tools.sh: building kube-apiserver and kubectl $kube_version and etcd $etcd_version" \
  "into $dir (once per machine; several minutes)" >&2
mkdir -p "$dir"
tmp=$(mktemp -d "$dir.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The version stamps kubernetes' own build (hack/lib/version.sh) sets: without them the
# apiserver reports v0.0.0-master and kubectl warns about version skew.
major=${kube_version#v} minor=${kube_version#v*.}
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=${major%%.*} -X $pkg.gitMinor=${minor%%.*}"
  ldflags+=" -X $pkg.gitTreeState=clean"
done
# One `go build` for all three, so the packages they share compile once; static like
# kubernetes' release binaries. The binaries go to a temporary directory, then are renamed:
# a killed build leaves no half binary in the cache.
(
  cd "$build_module"
  CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
    "$go" build -trimpath -ldflags "$ldflags" -o "$tmp/" \
    go.etcd.io/etcd/server/v3 k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl >&2
)
# `go build -o DIR/` names etcd's main package after its module path's last element before /v3.
mv -f "$tmp/server" "$tmp/etcd"
for t in "${tools[@]}"; do mv -f "$tmp/$t" "$dir/$t"; done
print_paths
