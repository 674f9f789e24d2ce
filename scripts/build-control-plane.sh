#!/usr/bin/env bash
# Builds the real Kubernetes control plane used by fleetlet's tests (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kwok), kubectl, the
# kubelet and a pause binary for one real node, and the Toxiproxy
# fault-injecting proxy, from Go modules, with the machine's Go.
#
# Binaries are cached outside the repository, keyed by version, so a machine
# builds them once: $FLEETLET_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/fleetlet).
# A cold build takes many minutes on 2 cores; a warm run returns at once.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.5.0}"
# The CloudNativePG operator's Cluster CRD (only the CRD: its operator needs
# images no registry here serves), so the hub's PostgreSQL example is
# validated by a real API server against the operator's own schema.
CNPG_VERSION="${CNPG_VERSION:-v1.27.1}"
# The pause binary is fleetlet's own (no image can be pulled); bump when it changes.
PAUSE_VERSION="fleetlet-1"

CACHE="${FLEETLET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetlet}"
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:-} -trimpath"

log() { printf '[control-plane] %s\n' "$*" >&2; }
# Cold builds say how long they took (set-up time is budgeted).
timed() { local t=$SECONDS; "$@"; local rc=$?; ((SECONDS - t < 2)) || log "  took $((SECONDS - t)) s: ${*: -1}"; return $rc; }

# A build lands in a temporary directory and is renamed into place only when
# complete, so an interrupted build never leaves a half-written cached binary.
install_into() { # <dir> <fn building into $tmp>
  local dir="$1"; shift
  if [[ -d "$dir" ]]; then return 0; fi
  local tmp; tmp="$(mktemp -d "$CACHE/.tmp.XXXXXX")"
  if "$@" "$tmp"; then chmod 755 "$tmp"; mv "$tmp" "$dir"; else rm -rf "$tmp"; return 1; fi
}

# k8s.io/kubernetes replaces its staging modules with local paths, so it
# cannot be `go install`ed: a wrapper module pins each staging module to the
# matching published v0.Y.Z instead. Every Kubernetes binary (control plane,
# kubectl, kubelet) comes from this one module version, so they never skew.
build_kube_cmds() { # <out> <cmd>...
  local out="$1"; shift
  local work; work="$(mktemp -d)"
  local staging_version="v0.${KUBE_VERSION#v1.}"
  local gomod; gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  (
    cd "$work"
    go mod init fleetlet.local/kube-wrapper >/dev/null 2>&1
    go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
      go mod edit -replace="$m=$m@$staging_version"
    done
    { printf '//go:build tools\npackage tools\n\nimport (\n'
      for cmd in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
      printf ')\n'; } > tools.go
    go mod tidy >/dev/null 2>&1 || go get "k8s.io/kubernetes@$KUBE_VERSION"
    local pkg=k8s.io/component-base/version
    local ld="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
    for cmd in "$@"; do
      log "  go build $cmd"
      go build -ldflags "$ld" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd" || exit 1
    done
  )
  local rc=$?
  rm -rf "$work"
  return $rc
}

build_kube() {
  log "building kubernetes $KUBE_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler)"
  build_kube_cmds "$1" kube-apiserver kube-controller-manager kube-scheduler
}

# kubectl (with its built-in kustomize) for tests and the demo that apply
# manifests/ as users do; the machine's own kubectl may be of another minor.
build_kubectl() {
  log "building kubectl $KUBE_VERSION"
  build_kube_cmds "$1" kubectl
}

# kubelet, to join one real node to the test control plane.
build_kubelet() {
  log "building kubelet $KUBE_VERSION"
  build_kube_cmds "$1" kubelet
}

# The real node's pod sandbox process (its image is built by the test harness,
# test/support/real-node.ts): holds the pod's namespaces, reaps zombies, exits
# on SIGTERM or SIGINT. A static binary, so the image needs nothing else.
build_pause() {
  local out="$1" work; work="$(mktemp -d)"
  log "building pause ($PAUSE_VERSION)"
  (
    cd "$work"
    printf 'module fleetlet.local/pause\n\ngo 1.22\n' > go.mod
    cat > main.go <<'GO'
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
    CGO_ENABLED=0 go build -ldflags "-s -w" -o "$out/pause" .
  )
  local rc=$?
  rm -rf "$work"
  return $rc
}

build_etcd() {
  local out="$1" work; work="$(mktemp -d)"
  log "building etcd $ETCD_VERSION"
  (
    cd "$work"
    go mod init fleetlet.local/etcd-wrapper >/dev/null 2>&1
    cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
    go mod tidy >/dev/null 2>&1
    go build -ldflags "-s -w" -o "$out/etcd" .
  )
  rm -rf "$work"
}

build_go_install() { # <module/cmd@version> <binary name> <out>
  local out="$3"
  log "go install $1"
  GOBIN="$out" go install -ldflags "-s -w" "$1"
  if [[ "$2" != "$(basename "${1%@*}")" ]]; then mv "$out/$(basename "${1%@*}")" "$out/$2"; fi
}

fetch_cnpg_crd() { # <out>
  local dir
  dir="$(go mod download -json "github.com/cloudnative-pg/cloudnative-pg@$CNPG_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  cp "$dir/config/crd/bases/postgresql.cnpg.io_clusters.yaml" "$1/"
}

mkdir -p "$CACHE"
install_into "$CACHE/etcd-$ETCD_VERSION" build_etcd
install_into "$CACHE/kwok-$KWOK_VERSION" build_go_install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" kwok
install_into "$CACHE/toxiproxy-$TOXIPROXY_VERSION" build_go_install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" toxiproxy-server
timed install_into "$CACHE/kubernetes-$KUBE_VERSION" build_kube
timed install_into "$CACHE/kubectl-$KUBE_VERSION" build_kubectl
timed install_into "$CACHE/kubelet-$KUBE_VERSION" build_kubelet
install_into "$CACHE/pause-$PAUSE_VERSION" build_pause
install_into "$CACHE/cloudnative-pg-crd-$CNPG_VERSION" fetch_cnpg_crd

# The manifest tells the test harness where each binary is, so versions live
# in one place (this script).
cat > "$CACHE/control-plane.json" <<JSON
{
  "kubeVersion": "$KUBE_VERSION",
  "etcdVersion": "$ETCD_VERSION",
  "kwokVersion": "$KWOK_VERSION",
  "toxiproxyVersion": "$TOXIPROXY_VERSION",
  "etcd": "$CACHE/etcd-$ETCD_VERSION/etcd",
  "kubeApiserver": "$CACHE/kubernetes-$KUBE_VERSION/kube-apiserver",
  "kubeControllerManager": "$CACHE/kubernetes-$KUBE_VERSION/kube-controller-manager",
  "kubeScheduler": "$CACHE/kubernetes-$KUBE_VERSION/kube-scheduler",
  "kwok": "$CACHE/kwok-$KWOK_VERSION/kwok",
  "toxiproxy": "$CACHE/toxiproxy-$TOXIPROXY_VERSION/toxiproxy-server",
  "kubectl": "$CACHE/kubectl-$KUBE_VERSION/kubectl",
  "kubelet": "$CACHE/kubelet-$KUBE_VERSION/kubelet",
  "pause": "$CACHE/pause-$PAUSE_VERSION/pause",
  "cnpgClusterCrd": "$CACHE/cloudnative-pg-crd-$CNPG_VERSION/postgresql.cnpg.io_clusters.yaml"
}
JSON
log "ready: $CACHE/control-plane.json"
