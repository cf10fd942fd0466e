#!/usr/bin/env bash
# PersistentVolume upkeep of the local cluster (hack/cluster.sh). Its PVs use
# reclaim policy Retain (no-provisioner has no deleter), so a deleted claim
# leaves its PV Released; this makes such PVs Available again, so repeated test
# runs and benchmarks on a long-lived cluster do not run out.
#
#   hack/pvs.sh recycle        make every Released PV Available again
#   hack/pvs.sh available N    recycle until N ReadWriteOnce PVs are Available
#                              (fails at once when the cluster has fewer; 180 s at most)
#
# The cluster: $KUBECONFIG, else $WEBCLUSTER_CLUSTER_DIR/kubeconfig, else
# .cluster/kubeconfig. hack/cluster.sh can source this file for
# recycle_released_pvs; it then uses the caller's kubectl and progress functions.
set -euo pipefail

# Makes every Released PV Available again (removes its claimRef). One kubectl
# patches its PVs one after another under its client-side rate limit (2,000
# PVs took over 6 minutes), so batches of 250 are patched side by side.
recycle_released_pvs() {
  local pvs names=() pids=() pid failed=0 i
  pvs="$(kubectl get pv --request-timeout=10s \
    -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{"\n"}{end}')" || return 0
  [[ -n "$pvs" ]] || return 0
  mapfile -t names <<<"$pvs"
  progress "making ${#names[@]} Released PVs Available again"
  for ((i = 0; i < ${#names[@]}; i += 250)); do
    kubectl patch pv "${names[@]:i:250}" --type=json -p '[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || progress "warning: could not recycle every Released PV (recycled concurrently?)"
}

# Recycles until $1 ReadWriteOnce PVs are Available.
wait_available_rwo() {
  local needed="$1" deadline=$((SECONDS + 180)) rows total available
  while :; do
    recycle_released_pvs
    rows="$(kubectl get pv --request-timeout=10s \
      -o jsonpath='{range .items[*]}{.spec.accessModes} {.status.phase}{"\n"}{end}' | grep ReadWriteOnce || true)"
    total="$(grep -c . <<<"$rows" || true)"
    available="$(grep -c ' Available$' <<<"$rows" || true)"
    ((available >= needed)) && return 0
    if ((total < needed)); then
      progress "ERROR: needs $needed ReadWriteOnce PVs, the cluster has $total (start it with CLUSTER_PVS_RWO>=$needed)"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      progress "ERROR: only $available of the $needed PVs needed became Available"
      return 1
    fi
    progress "$available/$needed ReadWriteOnce PVs Available; waiting"
    sleep 1
  done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  BIN_DIR="$(bash "$HACK_DIR/toolchain.sh" 2>/dev/null | tail -n1)"
  KUBECONFIG_PATH="${KUBECONFIG:-${WEBCLUSTER_CLUSTER_DIR:-$(dirname "$HACK_DIR")/.cluster}/kubeconfig}"
  START=$SECONDS
  kubectl() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }
  progress() { printf '[pvs %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
  case "${1:-}" in
    recycle) recycle_released_pvs ;;
    available)
      [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "usage: $0 available N" >&2; exit 2; }
      wait_available_rwo "$2"
      ;;
    *)
      echo "usage: $0 recycle|available N" >&2
      exit 2
      ;;
  esac
fi
