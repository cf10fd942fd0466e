#!/usr/bin/env bash
# make demo: builds what it needs, starts the local control plane with its real
# node, installs the CRD, runs the operator, applies the Roundcube example
# placed on the real node (hack/demo/kustomization.yaml) and waits until every
# pod is Ready for real. Ends by fetching a page from the app Service from a
# client pod and by showing the replicas streaming from the primary.
#
# The app image is Roundcube from Debian's packages (hack/images/roundcube, a
# stand-in for the official image) tagged as the example's
# roundcube/roundcubemail:1.6.11-apache-nonroot, so the example's migration
# (bin/updatedb.sh) and cron commands run as written. The database and files claims bind to local volumes
# on the real node (folders under DEMO_PV_DIR), made here and bound to exactly
# these claims.
set -euo pipefail
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT_DIR"
START=$SECONDS
STEPS=9
step() { printf '[demo %3ds] step %s/%s: %s\n' "$((SECONDS - START))" "$1" "$STEPS" "$2"; }
say() { printf '[demo %3ds]   %s\n' "$((SECONDS - START))" "$*"; }
kubectl() { bash hack/kubectl.sh "$@"; }
NAMESPACE=demo
LOG=.cluster/operator.log
REAL_NODE=webcluster-real
APP_IMAGE=localhost/webcluster/roundcube:2
EXAMPLE_IMAGE=docker.io/roundcube/roundcubemail:1.6.11-apache-nonroot
DEMO_PV_DIR=/tmp/webcluster-demo-pv
# The example's claims: database pods 0-2 (20Gi each) and the shared files (10Gi).
CLAIMS="data-roundcube-db-0:20Gi:ReadWriteOnce data-roundcube-db-1:20Gi:ReadWriteOnce data-roundcube-db-2:20Gi:ReadWriteOnce roundcube-files:10Gi:ReadWriteMany"
TIMEOUT=600

# Local PersistentVolumes on the real node, each bound to one claim of the example.
volumes_yaml() {
  local entry claim size mode
  for entry in $CLAIMS; do
    IFS=: read -r claim size mode <<<"$entry"
    cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: demo-$claim
  labels: {webcluster.test/pv: demo}
spec:
  storageClassName: standard
  capacity: {storage: $size}
  accessModes: [$mode]
  persistentVolumeReclaimPolicy: Retain
  claimRef: {namespace: $NAMESPACE, name: $claim}
  local: {path: $DEMO_PV_DIR/$claim}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$REAL_NODE]}
EOF
  done
}

# Pods that should run (not finished Job pods, which a retried migration leaves as Failed): "name ready node" lines.
pod_readiness() {
  kubectl -n "$NAMESPACE" get pods --field-selector=status.phase!=Succeeded,status.phase!=Failed \
    -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.spec.nodeName}{"\n"}{end}'
}

# Memory of the namespace's pods on the real node, from their cgroups (kubectl
# top needs a metrics server the local cluster does not run): RSS and usage
# (RSS plus page cache) per pod and in all.
pod_memory() {
  local root base uid name dir rss usage total_rss=0 total_usage=0
  root="$(sed -n "s/^CGROUP_ROOT='\(.*\)'$/\1/p" .cluster/node/host.env)"
  base="/sys/fs/cgroup/memory$root/kubepods"
  while read -r uid name; do
    dir="$(find "$base" -maxdepth 2 -type d -name "pod$uid" | head -n1)"
    [[ -n "$dir" ]] || continue
    rss="$(awk '$1 == "total_rss" {print int($2 / 1048576)}' "$dir/memory.stat")"
    usage="$(($(cat "$dir/memory.usage_in_bytes") / 1048576))"
    total_rss=$((total_rss + rss)) total_usage=$((total_usage + usage))
    printf '  %-40s rss %4d MiB   usage %4d MiB\n' "$name" "$rss" "$usage"
  done < <(kubectl -n "$NAMESPACE" get pods --field-selector=status.phase=Running \
    -o jsonpath='{range .items[*]}{.metadata.uid} {.metadata.name}{"\n"}{end}')
  printf '  %-40s rss %4d MiB   usage %4d MiB\n' "all" "$total_rss" "$total_usage"
}

step 1 "building the control plane and the real node (cached after the first run)"
bash hack/toolchain.sh >/dev/null
step 2 "starting the local cluster with its real node"
bash hack/cluster.sh up >/dev/null
step 3 "images on the real node: postgres, redis, roundcube (as $EXAMPLE_IMAGE), client"
bash hack/node.sh import postgres redis roundcube client >.cluster/demo-images.log 2>&1 ||
  { tail -20 .cluster/demo-images.log >&2; echo "importing the images failed (log: .cluster/demo-images.log)" >&2; exit 1; }
NODE_BIN="$(bash hack/node.sh build 2>/dev/null | tail -n1)"
"$NODE_BIN/ctr" --address "$ROOT_DIR/.cluster/node/run/containerd.sock" -n k8s.io images tag --force \
  "$APP_IMAGE" "$EXAMPLE_IMAGE" >/dev/null
step 4 "building the operator"
cargo build -q -j"${JOBS:-2}"
step 5 "installing the CRD"
kubectl apply --server-side --force-conflicts -f crds/webcluster.yaml >/dev/null
# Polled, not `kubectl wait`: a CRD that has no conditions yet makes it fail at once.
established() {
  [[ "$(kubectl get crd webclusters.webcluster.io -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" == True ]]
}
deadline=$((SECONDS + 60))
until established; do
  ((SECONDS < deadline)) || { echo "the WebCluster CRD was not Established within 60 s" >&2; exit 1; }
  sleep 0.2
done
step 6 "a fresh namespace $NAMESPACE and local volumes on the real node for its claims"
if kubectl get namespace "$NAMESPACE" >/dev/null 2>&1; then
  say "deleting the previous demo (namespace $NAMESPACE and its volumes)"
  kubectl delete namespace "$NAMESPACE" --timeout=180s >/dev/null
fi
kubectl delete pv -l webcluster.test/pv=demo --ignore-not-found --timeout=60s >/dev/null
rm -rf "$DEMO_PV_DIR"
for entry in $CLAIMS; do mkdir -p "$DEMO_PV_DIR/${entry%%:*}"; done
volumes_yaml | kubectl apply --server-side -f - >/dev/null
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
step 7 "starting the operator, watching namespace $NAMESPACE only (log: $LOG)"
if [[ -f .cluster/operator.pid ]] && kill -0 "$(cat .cluster/operator.pid)" 2>/dev/null; then
  old="$(cat .cluster/operator.pid)"
  kill "$old"
  for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
fi
# Scoped to its namespace: the tests' operators and namespaces stay its own business.
KUBECONFIG=.cluster/kubeconfig nohup target/debug/webcluster-operator run --namespace "$NAMESPACE" \
  --metrics-address 127.0.0.1:9464 --log-level info,kube=warn >"$LOG" 2>&1 &
echo $! >.cluster/operator.pid
step 8 "applying examples/roundcube.yaml (placed on the real node) and waiting until every pod is Ready"
applied=$SECONDS
kubectl kustomize --load-restrictor LoadRestrictionsNone hack/demo | kubectl apply --server-side -n "$NAMESPACE" -f -
until kubectl -n "$NAMESPACE" wait --for condition=Ready wc/roundcube --timeout=10s >/dev/null 2>&1; do
  say "waiting: $(kubectl -n "$NAMESPACE" get wc roundcube -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}' 2>/dev/null)"
  ((SECONDS - applied < TIMEOUT)) || { echo "the WebCluster did not become Ready; see $LOG" >&2; exit 1; }
done
while :; do
  pods="$(pod_readiness)"
  total="$(grep -c . <<<"$pods" || true)"
  ready="$(grep -c " True $REAL_NODE\$" <<<"$pods" || true)"
  ((total > 0 && ready == total)) && break
  say "$ready/$total pods Ready on $REAL_NODE"
  ((SECONDS - applied < TIMEOUT)) || { echo "not every pod became Ready; see $LOG" >&2; exit 1; }
  sleep 2
done
ready_after=$((SECONDS - applied))
say "every pod ($total) Ready for real on $REAL_NODE ${ready_after}s after kubectl apply"
kubectl -n "$NAMESPACE" get wc
kubectl -n "$NAMESPACE" get pods -o wide
step 9 "a page from the app Service, and the replicas streaming from the primary"
kubectl -n "$NAMESPACE" run demo-client --image=localhost/webcluster/client:1 --image-pull-policy=Never \
  --restart=Never --overrides='{"apiVersion":"v1","spec":{"nodeSelector":{"webcluster.io/node":"real"},
  "tolerations":[{"key":"webcluster.io/real-node","operator":"Exists","effect":"NoSchedule"}],
  "securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
  "containers":[{"name":"demo-client","image":"localhost/webcluster/client:1","imagePullPolicy":"Never",
  "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}' >/dev/null
kubectl -n "$NAMESPACE" wait --for condition=Ready pod/demo-client --timeout=120s >/dev/null
say "GET http://roundcube-app.$NAMESPACE.svc/ from pod demo-client (headers and the page's title):"
kubectl -n "$NAMESPACE" exec demo-client -- curl -sS -D - "http://roundcube-app.$NAMESPACE.svc/" | grep -E '^(HTTP|X-Served-By)|<title>'
say "pg_stat_replication on the primary roundcube-db-0:"
kubectl -n "$NAMESPACE" exec roundcube-db-0 -c database -- psql -X -h /run/webcluster-db -U postgres -d postgres \
  -c 'SELECT application_name, client_addr, state, sync_state, sent_lsn, replay_lsn FROM pg_stat_replication ORDER BY 1'
kubectl -n "$NAMESPACE" delete pod demo-client --wait=false >/dev/null
say "memory of the pods on $REAL_NODE (cgroups):"
pod_memory
printf '\n[demo %3ds] Ready: every pod Ready for real %ss after kubectl apply. The operator keeps running (pid %s, metrics on http://127.0.0.1:9464/metrics).\n' \
  "$((SECONDS - START))" "$ready_after" "$(cat .cluster/operator.pid)"
echo "Try: bash hack/kubectl.sh -n $NAMESPACE get wc,pods -o wide   |   make demo-down to stop the operator and the cluster"
