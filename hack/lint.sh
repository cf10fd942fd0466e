#!/usr/bin/env bash
# kube-score and kubeconform over every rendered example and the Helm chart,
# against the accepted findings in hack/lint-allowlist.txt. tests/lint.rs runs
# it in `make test`.
#
#   hack/lint.sh tools                 build the pinned linters (cached); the
#                                      last stdout line is their bin folder
#   hack/lint.sh check OPERATOR [FILE...]
#                                      render examples/*.yaml with the OPERATOR
#                                      binary, template the chart, make JSON
#                                      schemas from the local API server's
#                                      OpenAPI (install the WebCluster CRD first,
#                                      as tests/lint.rs does),
#                                      lint it all (and each extra FILE, a
#                                      manifest) and compare with the allowlist:
#                                      exit 1 on a new or a stale finding
#
# Environment: LINT_OUT (folder kept for inspection; default a temporary one),
# LINT_ALLOWLIST (default hack/lint-allowlist.txt),
# WEBCLUSTER_CLUSTER_DIR (as hack/kubectl.sh), GO_BUILD_JOBS (default 2).
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HACK_DIR")"
# shellcheck source=lint/versions.env
source "$HACK_DIR/lint/versions.env"

log() { printf '[lint %3ds] %s\n' "$SECONDS" "$*" >&2; }

tools() {
  local key root bin
  key=$({ cat "$HACK_DIR/lint/versions.env"; go env GOVERSION; } | sha256sum | cut -c1-12)
  root="${WEBCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/webcluster-operator}"
  bin="$root/lint-kube-score-${KUBE_SCORE_VERSION}-kubeconform-${KUBECONFORM_VERSION}-$key/bin"
  mkdir -p "$bin"
  # One build at a time (parallel tests); a second caller finds them cached.
  exec 8>"$bin/.build.lock"
  flock 8
  build "$bin" kube-score "$KUBE_SCORE_MODULE/cmd/kube-score" "$KUBE_SCORE_VERSION" \
    "-X main.version=${KUBE_SCORE_VERSION#v}"
  build "$bin" kubeconform "$KUBECONFORM_MODULE/cmd/kubeconform" "$KUBECONFORM_VERSION" \
    "-X main.version=$KUBECONFORM_VERSION"
  exec 8>&-
  echo "$bin"
}

# build BIN NAME PACKAGE VERSION LDFLAGS: `go install PACKAGE@VERSION` into BIN
# (the module's own go.mod and go.sum, checked against the checksum database).
build() {
  local bin=$1 name=$2 package=$3 version=$4 ldflags=$5 tmp
  [ ! -x "$bin/$name" ] || return 0
  log "building $name $version from the Go module proxy"
  tmp=$(mktemp -d "$bin/.build.XXXXXX")
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -p "${GO_BUILD_JOBS:-2}" -ldflags "-s -w $ldflags" \
    "$package@$version"
  mv "$tmp/$name" "$bin/$name"
  rmdir "$tmp"
}

check() {
  local operator=$1 bin example name sources=()
  shift
  [ -x "$operator" ] || { echo "lint.sh: no operator binary at $operator" >&2; exit 2; }
  bin=$(tools | tail -n 1)
  if [ -n "${LINT_OUT:-}" ]; then
    out=$LINT_OUT
    rm -rf "$out" && mkdir -p "$out"
  else
    # Global: the EXIT trap runs after this function returned.
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
  fi
  mkdir -p "$out/rendered" "$out/sources"
  for example in "$REPO"/examples/*.yaml; do
    name=$(basename "$example" .yaml)
    "$operator" render -f "$example" > "$out/rendered/$name.yaml"
    # The WebCluster itself, checked against the CRD's schema as the API server publishes it.
    cp "$example" "$out/sources/webcluster-$name.yaml"
  done
  "$(bash "$HACK_DIR/toolchain.sh" 2>/dev/null | tail -n 1)/helm" template webcluster-operator \
    "$REPO/charts/webcluster-operator" --namespace webcluster-system > "$out/rendered/chart.yaml"
  for example in "$@"; do cp "$example" "$out/rendered/extra-$(basename "$example")"; done
  # Gateway API objects validate against its CRDs (standard channel), installed when missing.
  if grep -qh '^apiVersion: gateway.networking.k8s.io/' "$out"/rendered/*.yaml; then
    log "installing the Gateway API CRDs"
    bash "$HACK_DIR/kubectl.sh" apply --server-side -f "$(bash "$HACK_DIR/gateway-api-crds.sh" | tail -n 1)" >/dev/null
  fi
  schemas "$out" "$out"/rendered/*.yaml "$out"/sources/*.yaml
  log "kube-score and kubeconform"
  for example in "$out"/sources/*.yaml; do sources+=(--source "$example"); done
  python3 "$HACK_DIR/lint/check.py" --bin "$bin" --schemas "$out/schemas" \
    --allowlist "${LINT_ALLOWLIST:-$HACK_DIR/lint-allowlist.txt}" --kubernetes-version "$(kubernetes_minor)" \
    "${sources[@]}" "$out"/rendered/*.yaml
}

# schemas OUT MANIFEST...: OUT/schemas from the local API server's /openapi/v2. A CRD
# established a moment ago may not be published yet: fetch again (60 s at most) until
# every kind of the manifests has a schema; kubeconform reports any still missing.
schemas() {
  local out=$1 deadline=$((SECONDS + 60)) status
  shift
  log "schemas from the local API server's /openapi/v2"
  while :; do
    bash "$HACK_DIR/kubectl.sh" get --raw /openapi/v2 > "$out/openapi-v2.json"
    rm -rf "$out/schemas"
    status=0
    python3 "$HACK_DIR/lint/schemas.py" "$out/openapi-v2.json" "$out/schemas" "$@" 2>"$out/schemas.log" || status=$?
    [ "$status" -eq 3 ] && [ "$SECONDS" -lt "$deadline" ] || break
    sleep 1
  done
  cat "$out/schemas.log" >&2
  [ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"
}

# v1.NN of the pinned Kubernetes version, as kube-score takes it.
kubernetes_minor() {
  local version
  version=$(sed -n 's/^KUBERNETES_VERSION=//p' "$HACK_DIR/versions.env")
  echo "${version%.*}"
}

case "${1:-}" in
  tools) tools ;;
  check)
    shift
    [ $# -ge 1 ] || { echo "usage: $0 check OPERATOR [FILE...]" >&2; exit 2; }
    check "$@"
    ;;
  *)
    echo "usage: $0 tools | check OPERATOR [FILE...]" >&2
    exit 2
    ;;
esac
