#!/usr/bin/env bash
# kubectl from the pinned toolchain, pointed at the local cluster (.cluster/kubeconfig).
#   hack/kubectl.sh get nodes
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN_DIR="$(bash "$HACK_DIR/toolchain.sh" 2>/dev/null | tail -n1)"
exec "$BIN_DIR/kubectl" --kubeconfig "$(dirname "$HACK_DIR")/.cluster/kubeconfig" "$@"
