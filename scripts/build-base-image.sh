#!/usr/bin/env bash
# Builds a local stand-in for the Dockerfile's base image (node:<version>-
# bookworm-slim) where no container registry can be reached: a minimal
# Debian bookworm root filesystem from debootstrap, plus Node.js and npm from
# their npm packages, laid out as the official image lays them out
# (/usr/local/bin/node, /usr/local/include/node, /usr/local/lib/node_modules/npm).
#
# Output: $CACHE/base-image-<tag>/rootfs.tar (cached; built once) and
# image.json (the tag and the image config `docker import` needs). The test
# harness imports the tarball under the Dockerfile's own tag, so the
# Dockerfile stays the one a user builds anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${FLEETLET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetlet}"
log() { printf '[base-image] %s\n' "$*" >&2; }

# The tag comes from the Dockerfile's first FROM, so the two never drift.
tag="$(sed -n 's/^FROM \([^ ]*\).*/\1/p' Dockerfile | head -n1)"
[[ "$tag" =~ ^node:([0-9]+\.[0-9]+\.[0-9]+)-bookworm-slim$ ]] \
  || { log "the Dockerfile's base image '$tag' is not node:<x.y.z>-bookworm-slim; this script builds only that"; exit 1; }
node_version="${BASH_REMATCH[1]}"
# The npm release bundled with that Node (the official image ships it).
case "$node_version" in
  24.9.*) npm_version=11.6.0 ;;
  *) log "no npm version known for Node $node_version: add it here"; exit 1 ;;
esac

out="$CACHE/base-image-${tag//[:\/]/_}"
if [[ -f "$out/rootfs.tar" && -f "$out/image.json" ]]; then exit 0; fi
command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
[[ "$(id -u)" == 0 ]] || { log "debootstrap needs root"; exit 1; }

mkdir -p "$CACHE"
work="$(mktemp -d "$CACHE/.tmp.base.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

log "debootstrap --variant=minbase bookworm (for $tag)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
debootstrap --variant=minbase bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
  || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
# What the slim images drop: package lists and caches, docs.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*

log "Node $node_version and npm $npm_version from the npm registry"
pkgs="$work/pkgs"
case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) log "unsupported machine $(uname -m)"; exit 1 ;; esac
mkdir -p "$pkgs"
(cd "$pkgs" && npm pack --silent "node-linux-$arch@$node_version" "npm@$npm_version" >/dev/null)
tar -xzf "$pkgs/node-linux-$arch-$node_version.tgz" -C "$work"
install -D -m 0755 "$work/package/bin/node" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/include"
cp -a "$work/package/include/node" "$root/usr/local/include/node"
rm -rf "$work/package"
mkdir -p "$root/usr/local/lib/node_modules/npm"
tar -xzf "$pkgs/npm-$npm_version.tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
chroot "$root" /usr/local/bin/node --version >/dev/null
chroot "$root" /usr/local/bin/npm --version >/dev/null

tar --numeric-owner -C "$root" -cf "$work/rootfs.tar" .
cat > "$work/image.json" <<JSON
{
  "tag": "$tag",
  "changes": [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV NODE_VERSION=$node_version",
    "CMD [\"node\"]"
  ]
}
JSON
mkdir -p "$out"
mv "$work/rootfs.tar" "$work/image.json" "$out/"
log "ready: $out/rootfs.tar ($(du -m "$out/rootfs.tar" | cut -f1) MiB)"
