#!/usr/bin/env bash
# make demo: builds what it needs, starts the local control plane, installs the
# CRD, runs the operator, applies the Roundcube example and shows it Ready.
set -euo pipefail
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT_DIR"
START=$SECONDS
STEPS=6
step() { printf '[demo %3ds] step %s/%s: %s\n' "$((SECONDS - START))" "$1" "$STEPS" "$2"; }
kubectl() { bash hack/kubectl.sh "$@"; }
NAMESPACE=demo
LOG=.cluster/operator.log

step 1 "building the control plane (cached after the first run)"
bash hack/toolchain.sh >/dev/null
step 2 "starting the local cluster"
bash hack/cluster.sh up
step 3 "building the operator"
cargo build -q -j"${JOBS:-2}"
step 4 "installing the CRD"
kubectl apply --server-side --force-conflicts -f crds/webcluster.yaml >/dev/null
kubectl wait --for condition=Established crd/webclusters.webcluster.io --timeout=60s >/dev/null
step 5 "starting the operator, watching namespace $NAMESPACE only (log: $LOG)"
if [[ -f .cluster/operator.pid ]] && kill -0 "$(cat .cluster/operator.pid)" 2>/dev/null; then
  old="$(cat .cluster/operator.pid)"
  kill "$old"
  for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
fi
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
# Scoped to its namespace: the tests' operators and namespaces stay its own business.
KUBECONFIG=.cluster/kubeconfig nohup target/debug/webcluster-operator run --namespace "$NAMESPACE" \
  --metrics-address 127.0.0.1:9464 --log-level info,kube=warn >"$LOG" 2>&1 &
echo $! >.cluster/operator.pid
step 6 "applying examples/roundcube.yaml in namespace $NAMESPACE and waiting for Ready"
kubectl apply --server-side -n "$NAMESPACE" -f examples/roundcube.yaml
until kubectl -n "$NAMESPACE" wait --for condition=Ready wc/roundcube --timeout=10s >/dev/null 2>&1; do
  printf '[demo %3ds]   waiting: %s\n' "$((SECONDS - START))" \
    "$(kubectl -n "$NAMESPACE" get wc roundcube -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}' 2>/dev/null)"
  ((SECONDS - START < 600)) || { echo "the WebCluster did not become Ready; see $LOG" >&2; exit 1; }
done
kubectl -n "$NAMESPACE" get wc
kubectl -n "$NAMESPACE" get deployments,statefulsets,services,cronjobs,jobs,pvc
printf '\n[demo %3ds] Ready. The operator keeps running (pid %s, metrics on http://127.0.0.1:9464/metrics).\n' \
  "$((SECONDS - START))" "$(cat .cluster/operator.pid)"
echo "Try: bash hack/kubectl.sh -n $NAMESPACE get wc -w   |   make demo-down to stop the operator and the cluster"
