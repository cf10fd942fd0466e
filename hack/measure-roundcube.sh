#!/usr/bin/env bash
# Measures, 5 times, the time from `kubectl apply` of examples/roundcube.yaml to
# every child existing and to Ready=True, and the API requests the operator sent.
# Uses the local cluster (make cluster) and a release build of the operator.
set -euo pipefail
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT_DIR"
kubectl() { bash hack/kubectl.sh "$@"; }
PORT=9477
RUNS="${RUNS:-5}"
now() { date +%s.%N; }
metric() { curl -s "127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 ~ m {s += $2} END {print s + 0}'; }

bash hack/cluster.sh up
cargo build -q --release -j"${JOBS:-2}"
kubectl apply --server-side --force-conflicts -f crds/webcluster.yaml >/dev/null
children="$(target/release/webcluster-operator render -f examples/roundcube.yaml | awk '/^kind:/ {k=$2} /^  name:/ && k {print k"/"$2; k=""}')"
expected=$(wc -l <<<"$children")
for run in $(seq 1 "$RUNS"); do
  ns="measure-$run-$RANDOM"
  kubectl create namespace "$ns" >/dev/null
  KUBECONFIG=.cluster/kubeconfig target/release/webcluster-operator run --namespace "$ns" \
    --metrics-address "127.0.0.1:$PORT" --log-level warn >/dev/null 2>&1 &
  operator=$!
  # Ready once its caches synced.
  until curl -sf "127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.1; done
  start=$(now)
  kubectl apply --server-side -n "$ns" -f examples/roundcube.yaml >/dev/null
  children_at=""
  while :; do
    if [[ -z "$children_at" ]]; then
      present=$(kubectl get -n "$ns" secret,configmap,pvc,service,statefulset,deployment,job,cronjob,ingress,pdb,networkpolicy \
        -o name 2>/dev/null | wc -l)
      # +1: the example's own ConfigMap; +1: kube-root-ca.crt
      ((present >= expected + 2)) && children_at=$(now)
    fi
    status=$(kubectl get wc -n "$ns" roundcube -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
    [[ "$status" == True && -n "$children_at" ]] && break
    sleep 0.1
  done
  ready_at=$(now)
  reads=$(metric 'api_requests_total[{]verb="read"')
  writes=$(metric 'api_requests_total[{]verb="write"')
  printf 'run %d: children %.2f s, Ready %.2f s, operator requests: %d reads (incl. watches), %d writes\n' \
    "$run" "$(echo "$children_at - $start" | bc)" "$(echo "$ready_at - $start" | bc)" "$reads" "$writes"
  kill "$operator"; wait "$operator" 2>/dev/null || true
  kubectl delete namespace "$ns" --wait=false >/dev/null
done
