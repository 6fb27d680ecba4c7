#!/usr/bin/env bash
# Builds the kovs-agent OCI image from scratch with buildah: no base image, no registry, no
# daemon. The image holds
#   /usr/local/bin/kovs-agent  (dynamically linked; its shared libraries, as ldd lists them, are
#                               copied in: glibc, libm, libgcc_s and the loader)
#   /usr/local/bin/kovs-cni    (statically linked: `kovs-agent install-cni` copies it to the
#                               host's /opt/cni/bin, where the runtime runs it with the host's
#                               libraries, whatever their version)
# and nothing else: the agent runs no other program (no ovs-vsctl, no ip; it speaks OVSDB,
# OpenFlow and netlink itself).
#
#   scripts/image.sh [--profile release|dev] [--agent PATH] [--out FILE] [--tag TAG]
#     --profile  cargo profile of the binaries (default release; dev builds faster, for tests)
#     --agent    take this kovs-agent binary instead of building one (the tests pass cargo's)
#     --out      the OCI archive to write (default target/image/kovs-agent-TAG.oci.tar)
#     --tag      image tag (default: the version kovs-agent --version prints)
# Relative paths are the repository root's. Prints the archive's path. Load it with
# `podman load -i FILE`, or into a node's containerd with `ctr -n k8s.io images import FILE`;
# its name is localhost/kovs-agent:TAG. Measured on 2 shared cores: a cold release build takes
# 9 min wall (fat LTO; the image is 12 MB), buildah itself about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release agent="" out="" tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --agent) agent="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    *) echo "usage: $0 [--profile release|dev] [--agent PATH] [--out FILE] [--tag TAG]" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release | dev) ;;
  *) echo "image.sh: --profile $profile: expected release or dev" >&2; exit 2 ;;
esac
for tool in buildah cargo strip readelf; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool not found; run scripts/setup.sh" >&2; exit 1; }
done

dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
target=$(rustc -vV | sed -n 's/^host: //p')
if [ -z "$agent" ]; then
  echo "image.sh: building kovs-agent ($profile)" >&2
  cargo build -q --profile "$profile" -p kovs-agent --bin kovs-agent >&2
  agent="target/$dir/kovs-agent"
fi
[ -x "$agent" ] || { echo "image.sh: --agent $agent: not an executable" >&2; exit 1; }
echo "image.sh: building kovs-cni, statically linked ($profile)" >&2
# The plugin static: with an explicit --target the flag reaches only the target's artifacts
# (not build scripts or proc macros), and the build lands in target/$target/.
env "CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUSTFLAGS=-C target-feature=+crt-static" \
  cargo build -q --profile "$profile" --target "$target" -p kovs-cni --bin kovs-cni >&2
cni="target/$target/$dir/kovs-cni"
if readelf -d "$cni" | grep -q NEEDED; then
  echo "image.sh: $cni is not statically linked:" >&2
  readelf -d "$cni" | grep NEEDED >&2
  exit 1
fi
[ -n "$tag" ] || tag=$("$agent" --version | awk '{print $2}')
[ -n "$out" ] || out="target/image/kovs-agent-$tag.oci.tar"
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"

work=$(mktemp -d "${TMPDIR:-/tmp}/kovs-image.XXXXXX")
cleanup() {
  # buildah's vfs layers hold read-only directories.
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The root filesystem.
root="$work/rootfs"
mkdir -p "$root/usr/local/bin" "$root/run" "$root/tmp" "$root/var"
chmod 1777 "$root/tmp"
# As on Debian: paths under /var/run (e.g. a CNI_NETNS of /var/run/netns/...) resolve to /run.
ln -s ../run "$root/var/run"
# Without debug info (symbols stay, for backtraces): the dev profile's would weigh ~130 MB.
strip --strip-debug -o "$root/usr/local/bin/kovs-agent" "$agent"
strip --strip-debug -o "$root/usr/local/bin/kovs-cni" "$cni"
# The agent's shared libraries, at the paths its loader and ELF interpreter name.
for lib in $(ldd "$agent" | awk '/=> \//{print $3} /^\t\//{print $1}'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
echo "image.sh: root filesystem: $(du -sh "$root" | cut -f1)" >&2
(cd "$root" && find . -type f -o -type l | sort | sed 's/^\./  /') >&2

# The image: one layer from the root filesystem, in a private buildah store.
buildah=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
ctr=$("${buildah[@]}" from --quiet scratch)
"${buildah[@]}" copy --quiet "$ctr" "$root/" / >/dev/null
version=$("$agent" --version | awk '{print $2}')
"${buildah[@]}" config \
  --entrypoint '["/usr/local/bin/kovs-agent"]' --cmd '' \
  --workingdir / \
  --env PATH=/usr/local/bin \
  --port 10665/tcp \
  --label org.opencontainers.image.title=kovs-agent \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.description=kovs node agent and kovs-cni plugin" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  "$ctr"
"${buildah[@]}" commit --quiet --format oci --rm "$ctr" "oci-archive:$out:localhost/kovs-agent:$tag" >/dev/null
echo "image.sh: localhost/kovs-agent:$tag ($(du -h "$out" | cut -f1))" >&2
echo "$out"
