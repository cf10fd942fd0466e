#!/usr/bin/env bash
# kubectl from the pinned toolchain, pointed at the local cluster (.cluster/kubeconfig).
#   hack/kubectl.sh get nodes
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN_DIR="$(bash "$HACK_DIR/toolchain.sh" 2>/dev/null | tail -n1)"
CLUSTER_DIR="${WEBCLUSTER_CLUSTER_DIR:-$(dirname "$HACK_DIR")/.cluster}"
exec "$BIN_DIR/kubectl" --kubeconfig "$CLUSTER_DIR/kubeconfig" "$@"
