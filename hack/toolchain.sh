#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy into a
# cache folder keyed by the pinned versions, so a second run builds nothing.
# Prints the bin folder on its last line.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HACK_DIR/versions.env"

cache_key() {
  cat "$HACK_DIR/versions.env" "$HACK_DIR"/toolchain/*/go.mod "$HACK_DIR"/toolchain/*/go.sum
  go env GOVERSION
}
KEY="$(cache_key | sha256sum | cut -c1-12)"
CACHE_ROOT="${WEBCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/webcluster-operator}"
BIN_DIR="$CACHE_ROOT/toolchain-${KUBERNETES_VERSION}-${KEY}/bin"
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

# name|module dir|package|extra ldflags
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

mkdir -p "$BIN_DIR"
total=${#TARGETS[@]}
index=0
for target in "${TARGETS[@]}"; do
  IFS='|' read -r name dir package ldflags <<<"$target"
  index=$((index + 1))
  if [[ -x "$BIN_DIR/$name" ]]; then
    progress "step $index/$total: $name cached"
    continue
  fi
  progress "step $index/$total: building $name (cold builds take minutes on 2 cores)"
  (
    cd "$HACK_DIR/toolchain/$dir"
    CGO_ENABLED=0 go build -mod=mod -trimpath -p "${GO_BUILD_JOBS:-2}" \
      -ldflags "$ldflags" -o "$BIN_DIR/$name.tmp" "$package"
  )
  mv "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
  progress "step $index/$total: $name built"
done
progress "all $total binaries ready in $BIN_DIR"
echo "$BIN_DIR"
