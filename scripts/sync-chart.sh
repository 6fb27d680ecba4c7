#!/usr/bin/env bash
# Copies the one source of the CRDs (deploy/crds/*.yaml) and of the agent's RBAC
# (deploy/rbac.yaml) into the Helm chart (deploy/chart/kovs/crds/ and files/rbac.yaml). Run it
# after editing either; tests/tests/kube_deploy.rs fails while the copies differ.
#   scripts/sync-chart.sh           copy
#   scripts/sync-chart.sh --check   exit 1, naming the files, when a copy differs
set -euo pipefail
deploy="$(cd "$(dirname "$0")/../deploy" && pwd)"
chart="$deploy/chart/kovs"

pairs=("$deploy/rbac.yaml:$chart/files/rbac.yaml")
for crd in "$deploy"/crds/*.yaml; do pairs+=("$crd:$chart/crds/$(basename "$crd")"); done

case "${1:-}" in
  --check)
    bad=0
    for p in "${pairs[@]}"; do
      cmp -s "${p%%:*}" "${p#*:}" || { echo "sync-chart.sh: ${p#*:} differs from ${p%%:*}" >&2; bad=1; }
    done
    # A CRD removed from deploy/crds must go from the chart too.
    for copy in "$chart"/crds/*.yaml; do
      [ -e "$deploy/crds/$(basename "$copy")" ] || { echo "sync-chart.sh: $copy has no source in $deploy/crds" >&2; bad=1; }
    done
    exit $bad
    ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

mkdir -p "$chart/crds" "$chart/files"
rm -f "$chart"/crds/*.yaml
for p in "${pairs[@]}"; do cp "${p%%:*}" "${p#*:}"; done
