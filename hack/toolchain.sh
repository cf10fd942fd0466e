#!/usr/bin/env bash
# Builds pinned binaries from the Go module proxy into a cache folder keyed by
# the pinned versions, so a second run builds nothing. Prints the bin folder on
# its last line.
#
#   hack/toolchain.sh         the local control plane (modules in hack/toolchain/)
#   hack/toolchain.sh node    the real node (modules in hack/node/; hack/node.sh)
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HACK_DIR/versions.env"
SET="${1:-control-plane}"

case "$SET" in
  control-plane)
    MODULES_DIR="$HACK_DIR/toolchain"
    FOLDER=toolchain
    # Only the control plane's part of versions.env: the real node's pins below
    # the "# real node:" line key the node's folder, not this one.
    pins() { sed '/^# real node:/,$d' "$HACK_DIR/versions.env"; }
    ;;
  node)
    MODULES_DIR="$HACK_DIR/node"
    FOLDER=node
    # runc links libseccomp.
    pins() {
      cat "$HACK_DIR/versions.env"
      dpkg-query -W -f '${Version}\n' libseccomp-dev
    }
    ;;
  *)
    echo "usage: $0 [control-plane|node]" >&2
    exit 2
    ;;
esac

cache_key() {
  pins
  cat "$MODULES_DIR"/*/go.mod "$MODULES_DIR"/*/go.sum
  go env GOVERSION
}
KEY="$(cache_key | sha256sum | cut -c1-12)"
CACHE_ROOT="${WEBCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/webcluster-operator}"
BIN_DIR="$CACHE_ROOT/${FOLDER}-${KUBERNETES_VERSION}-${KEY}/bin"
START=$SECONDS

progress() { printf '[toolchain %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }

k8s_ldflags() {
  local minor="${KUBERNETES_VERSION#v1.}"
  minor="${minor%%.*}"
  echo "-s -w -X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION}" \
    "-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}" \
    "-X k8s.io/component-base/version.gitTreeState=clean" \
    "-X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z" \
    "-X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_VERSION}"
}

# name|module dir|package|extra ldflags[|cgo build tags: built with cgo when set]
if [[ "$SET" == control-plane ]]; then
  TARGETS=(
    "etcd|etcd|./cmd/etcd|-s -w"
    "kwok|kwok|sigs.k8s.io/kwok/cmd/kwok|-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}"
    "kwokctl|kwok|sigs.k8s.io/kwok/cmd/kwokctl|-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}"
    "helm|helm|helm.sh/helm/v3/cmd/helm|-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
    "kube-apiserver|kubernetes|k8s.io/kubernetes/cmd/kube-apiserver|$(k8s_ldflags)"
    "kube-controller-manager|kubernetes|k8s.io/kubernetes/cmd/kube-controller-manager|$(k8s_ldflags)"
    "kube-scheduler|kubernetes|k8s.io/kubernetes/cmd/kube-scheduler|$(k8s_ldflags)"
    "kubectl|kubernetes|k8s.io/kubernetes/cmd/kubectl|$(k8s_ldflags)"
  )
else
  containerd_ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}"
  TARGETS=(
    "kubelet|kubernetes|k8s.io/kubernetes/cmd/kubelet|$(k8s_ldflags)"
    "kube-proxy|kubernetes|k8s.io/kubernetes/cmd/kube-proxy|$(k8s_ldflags)"
    "containerd|containerd|github.com/containerd/containerd/v2/cmd/containerd|$containerd_ldflags"
    "containerd-shim-runc-v2|containerd|github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2|$containerd_ldflags"
    "ctr|containerd|github.com/containerd/containerd/v2/cmd/ctr|$containerd_ldflags"
    "runc|runc|github.com/opencontainers/runc|-s -w -X main.version=${RUNC_VERSION#v}|seccomp"
    "coredns|coredns|github.com/coredns/coredns|-s -w -X github.com/coredns/coredns/coremain.GitCommit=${COREDNS_VERSION}"
  )
fi

mkdir -p "$BIN_DIR"
# One build at a time per folder (parallel test binaries, make -j, a background
# run): a second run waits, then finds the binaries cached.
exec 8>"$BIN_DIR/.build.lock"
if ! flock -n 8; then
  progress "waiting for another hack/toolchain.sh $SET build"
  flock 8
fi
total=${#TARGETS[@]}
index=0
for target in "${TARGETS[@]}"; do
  IFS='|' read -r name dir package ldflags cgo_tags <<<"$target"
  index=$((index + 1))
  if [[ -x "$BIN_DIR/$name" ]]; then
    progress "step $index/$total: $name cached"
    continue
  fi
  progress "step $index/$total: building $name (cold builds take minutes on 2 cores)"
  (
    cd "$MODULES_DIR/$dir"
    if [[ -n "$cgo_tags" ]]; then cgo=(CGO_ENABLED=1 -tags "$cgo_tags"); else cgo=(CGO_ENABLED=0); fi
    env "${cgo[0]}" go build -mod=mod -trimpath -p "${GO_BUILD_JOBS:-2}" "${cgo[@]:1}" \
      -ldflags "$ldflags" -o "$BIN_DIR/$name.tmp" "$package"
  )
  mv "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
  progress "step $index/$total: $name built"
done
progress "all $total binaries ready in $BIN_DIR"
echo "$BIN_DIR"
