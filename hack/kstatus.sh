#!/usr/bin/env bash
# Builds hack/kstatus (kstatus from sigs.k8s.io/cli-utils, through the Go
# module proxy) into a cache folder keyed by its module files and the Go
# version, so a second run builds nothing. Prints the binary on its last line.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$HACK_DIR/kstatus"
VERSION="$(awk '$1 == "sigs.k8s.io/cli-utils" { print $2 }' "$SRC/go.mod")"
KEY="$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" <(go env GOVERSION) | sha256sum | cut -c1-12)"
CACHE_ROOT="${WEBCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/webcluster-operator}"
BIN_DIR="$CACHE_ROOT/kstatus-${VERSION}-${KEY}/bin"
mkdir -p "$BIN_DIR"
# Parallel test binaries: one builds, the others wait and find it cached.
exec 8>"$BIN_DIR/.build.lock"
flock 8
if [[ ! -x "$BIN_DIR/kstatus" ]]; then
  echo "building kstatus $VERSION (about 40 s cold on 2 cores)" >&2
  (cd "$SRC" && CGO_ENABLED=0 go build -mod=mod -trimpath -p "${GO_BUILD_JOBS:-2}" -o "$BIN_DIR/kstatus.tmp" .)
  mv "$BIN_DIR/kstatus.tmp" "$BIN_DIR/kstatus"
fi
echo "$BIN_DIR/kstatus"
