#!/usr/bin/env bash
# Fetches the Gateway API CRDs (standard channel) of sigs.k8s.io/gateway-api
# through the Go module proxy into a cache folder keyed by the version, so a
# second run downloads nothing. Prints the folder of the CRD files on its last line.
#
# The module's go.mod asks for a newer Go than the toolchain's, so `go mod
# download` fetches and verifies the module zip (its .ziphash is written after
# the checksum check) but does not extract it: the CRDs are read from the zip.
set -euo pipefail

VERSION="${GATEWAY_API_VERSION:-v1.7.0}"
MODULE=sigs.k8s.io/gateway-api
CACHE_ROOT="${WEBCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/webcluster-operator}"
DIR="$CACHE_ROOT/gateway-api-$VERSION/standard"
mkdir -p "$DIR"
# Parallel test binaries: one downloads, the others wait and find it cached.
exec 8>"$DIR/.lock"
flock 8
if ! compgen -G "$DIR/*.yaml" >/dev/null; then
  ZIP="$(cd "$(mktemp -d)" && { GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION" || true; } | sed -n 's/^[[:space:]]*"Zip": "\(.*\)",$/\1/p')"
  [[ -f "$ZIP" && -f "${ZIP%.zip}.ziphash" ]] || { echo "error: $MODULE@$VERSION was not downloaded and verified" >&2; exit 1; }
  STAGE="$(mktemp -d)"
  trap 'rm -rf "$STAGE"' EXIT
  unzip -q "$ZIP" "$MODULE@$VERSION/config/crd/standard/*.yaml" -d "$STAGE"
  cp "$STAGE/$MODULE@$VERSION"/config/crd/standard/*.yaml "$DIR/"
fi
echo "$DIR"
