#!/usr/bin/env bash
# Builds the peer operator of the convergence bench (benches/convergence):
# bitpoke/wordpress-operator (Go, controller-runtime) at a pinned commit, into
# ~/.cache/webcluster/peer/wordpress-operator-<short commit>. Skips when it exists.
#
#   hack/peer/build-wordpress-operator.sh SRC_DIR
#
# The Go module proxy refuses github.com/bitpoke/wordpress-operator as a module
# (403 "not available"), so `go install ...@commit` cannot fetch it: its source
# comes from a repository snapshot, exported outside this repository, e.g.
#   git -C <clone or snapshot git dir> archive COMMIT | tar -x -C SRC_DIR
# Its dependencies come from the Go proxy as usual. Never copy it into this repo.
set -euo pipefail

COMMIT=9b763fd90a3995cfcbc9d1df83c9f964a1e3c703 # master, 2023-09-28
OUT_DIR="$HOME/.cache/webcluster/peer"
BIN="$OUT_DIR/wordpress-operator-${COMMIT:0:7}"
START=$SECONDS
progress() { printf '[peer %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { progress "ERROR: $*"; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 SRC_DIR (the tree of commit $COMMIT)"
if [[ -x "$BIN" ]]; then progress "up to date: $BIN"; echo "$BIN"; exit 0; fi
SRC="$(cd "$1" && pwd)" || die "no such folder: $1"

progress "step 1/3: check $SRC"
grep -qx 'module github.com/bitpoke/wordpress-operator' "$SRC/go.mod" 2>/dev/null \
  || die "$SRC/go.mod is not github.com/bitpoke/wordpress-operator's"
[[ -f "$SRC/cmd/wordpress-operator/main.go" ]] || die "$SRC has no cmd/wordpress-operator"

export GOFLAGS="-p=2 -mod=mod -buildvcs=false" CGO_ENABLED=0
progress "step 2/3: go mod download (Go proxy)"
(cd "$SRC" && go mod download) || die "go mod download failed"

progress "step 3/3: go build -> $BIN"
mkdir -p "$OUT_DIR"
(cd "$SRC" && go build -trimpath \
  -ldflags "-X github.com/bitpoke/wordpress-operator/pkg/version.gitCommit=$COMMIT" \
  -o "$BIN.tmp" ./cmd/wordpress-operator) || die "go build failed"
mv "$BIN.tmp" "$BIN"
progress "done: $BIN ($(du -h "$BIN" | cut -f1))"
echo "$BIN"
