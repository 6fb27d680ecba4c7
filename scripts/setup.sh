#!/usr/bin/env bash
# Installs everything kovs needs to build, run and test on a fresh Debian machine.
# Idempotent: does nothing when all tools are already there.
set -euo pipefail

need=()
command -v ovs-vswitchd >/dev/null 2>&1 || need+=(openvswitch-switch)
command -v ovs-ofctl >/dev/null 2>&1    || need+=(openvswitch-common)
command -v ip >/dev/null 2>&1           || need+=(iproute2)
command -v ethtool >/dev/null 2>&1      || need+=(ethtool)
command -v ping >/dev/null 2>&1         || need+=(iputils-ping)
command -v tcpdump >/dev/null 2>&1      || need+=(tcpdump)
command -v pgrep >/dev/null 2>&1        || need+=(procps)
# The CNI client tests (agent/tests/cni_podman.rs): podman with its CNI backend, runc (crun
# rejects this VM's hybrid cgroups), the reference plugins, and a static busybox for a rootfs
# without an image.
command -v podman >/dev/null 2>&1       || need+=(podman)
command -v runc >/dev/null 2>&1         || need+=(runc)
[ -x /usr/lib/cni/loopback ]            || need+=(containernetworking-plugins)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
installed busybox-static                || need+=(busybox-static)
# The private control plane's certificates and service-account key (tests/src/kube.rs).
command -v openssl >/dev/null 2>&1      || need+=(openssl)
# scripts/image.sh: an OCI image from scratch without a daemon or registry (podman runs it).
command -v buildah >/dev/null 2>&1      || need+=(buildah)
command -v readelf >/dev/null 2>&1      || need+=(binutils)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # policy-rc.d keeps the packaging from starting a system-wide OVS: kovs runs private ones.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi

# cnitool (libcni's driver) for agent/tests/cni_libcni.rs: built once per machine, cached.
"$(dirname "$0")/cnitool.sh" >/dev/null

# kube-apiserver, kubectl and etcd for the tests' private control plane (tests/src/kube.rs):
# built once per machine from the Go module proxy (the slow step of a cold setup), cached.
"$(dirname "$0")/k8s-tools.sh" >/dev/null

# cargo-fuzz for scripts/fuzz.sh: built once per machine, cached.
"$(dirname "$0")/cargo-fuzz.sh" >/dev/null

# helm for the chart's tests (tests/tests/kube_deploy.rs): built once per machine, cached.
"$(dirname "$0")/helm.sh" >/dev/null
