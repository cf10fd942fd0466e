#!/usr/bin/env bash
# Local Kubernetes control plane for tests, demos and benchmarks.
#
#   hack/cluster.sh up      start the cluster (a no-op when it already runs and is healthy)
#   hack/cluster.sh down    stop it and remove its state
#   hack/cluster.sh status  exit 0 when it runs and is healthy
#   hack/cluster.sh restart COMPONENT [TERM|KILL]
#                           stop one component (etcd, kube-apiserver, ...) with the
#                           signal (default TERM), start it again with its own flags
#                           (`kwokctl start cluster` starts what is not running) and
#                           wait for /readyz: fault-injection tests, on a cluster of
#                           their own (WEBCLUSTER_CLUSTER_DIR)
#
# Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built by
# hack/toolchain.sh) started by `kwokctl --runtime binary`, plus kwok faking 3
# nodes in 3 zones: pods become Running/Ready, pods owned by Jobs complete.
# Beside them one real node (hack/node.sh: kubelet, containerd, runc, kube-proxy,
# CoreDNS), labelled webcluster.io/node=real and tainted
# webcluster.io/real-node=true:NoSchedule, so only pods that ask run for real.
# State lives under .cluster/ (ignored by git); the kubeconfig is always
# .cluster/kubeconfig. Environment:
#   CLUSTER_PVS_RWO  number of 100Gi ReadWriteOnce PersistentVolumes (default 60)
#   CLUSTER_PVS_RWX  number of 100Gi ReadWriteMany PersistentVolumes (default 20)
#   CLUSTER_NODE_PODS  pod capacity of each fake node (default 1000; applies when
#                    the nodes are created, not to a cluster that already runs);
#                    above 1000 the nodes' CPU and memory (64 cores, 256Gi) grow
#                    with it, so that many pods' requests fit too
#   WEBCLUSTER_CLUSTER_DIR  state folder instead of .cluster/ (a second, independent
#                    cluster, e.g. to time start-ups without disturbing running tests)
#   CLUSTER_REAL_NODE  1: start the real node, 0: kwok nodes only (default: 1 for
#                    .cluster/, 0 for another WEBCLUSTER_CLUSTER_DIR: the node's
#                    bridge, addresses and API server port exist once per machine)
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(dirname "$HACK_DIR")"
CLUSTER_NAME=webcluster
CLUSTER_DIR="${WEBCLUSTER_CLUSTER_DIR:-$ROOT_DIR/.cluster}"
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig"
READY_MARKER="$CLUSTER_DIR/ready"
export KWOK_WORKDIR="$CLUSTER_DIR/kwok"
export KWOK_CLUSTER_DIR="$KWOK_WORKDIR/clusters/$CLUSTER_NAME"
if [[ "$(realpath -m "$CLUSTER_DIR")" == "$(realpath -m "$ROOT_DIR/.cluster")" ]]; then
  REAL_NODE="${CLUSTER_REAL_NODE:-1}"
else
  REAL_NODE="${CLUSTER_REAL_NODE:-0}"
fi
[[ "$REAL_NODE" == 0 || "$REAL_NODE" == 1 ]] || { echo "CLUSTER_REAL_NODE must be 0 or 1, got '$REAL_NODE'" >&2; exit 2; }
PVS_RWO="${CLUSTER_PVS_RWO:-60}"
PVS_RWX="${CLUSTER_PVS_RWX:-20}"
NODE_PODS="${CLUSTER_NODE_PODS:-1000}"
[[ "$NODE_PODS" =~ ^[1-9][0-9]*$ ]] || { echo "CLUSTER_NODE_PODS must be a positive integer, got '$NODE_PODS'" >&2; exit 2; }
# At N=1000 the bench's 5,000 pods request more than 3 x 64 cores.
NODE_SCALE=$((NODE_PODS > 1000 ? NODE_PODS : 1000))
NODE_CPU=$((64 * NODE_SCALE / 1000))
NODE_MEMORY="$((256 * NODE_SCALE / 1000))Gi"
ZONES=(a b c)
START=$SECONDS
STEPS=8

progress() { printf '[cluster %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { progress "ERROR: $*"; exit 1; }

toolchain() {
  local out
  out="$(bash "$HACK_DIR/toolchain.sh")" || die "hack/toolchain.sh failed"
  BIN_DIR="$(tail -n1 <<<"$out")"
  [[ -x "$BIN_DIR/kwokctl" ]] || die "no kwokctl in '$BIN_DIR'"
  mkdir -p "$CLUSTER_DIR"
  write_kwokctl_config
  export KWOK_KUBECTL_BINARY="$BIN_DIR/kubectl"
}

KWOKCTL_CONFIG="$CLUSTER_DIR/kwokctl.yaml"
# 9>&-: the components kwokctl starts must not inherit the lock (fd 9).
kwokctl() { "$BIN_DIR/kwokctl" --name "$CLUSTER_NAME" --config "$KWOKCTL_CONFIG" "$@" 9>&-; }

# kwokctl binds every component to 0.0.0.0 by default (etcd without TLS or
# auth); keep them on loopback. Also replaces ~/.kwok/kwok.yaml, so a user's
# personal kwokctl defaults do not leak in. With the real node: the API server
# settings it needs and kwok limited to its own nodes (hack/node.sh kwokctl-config).
write_kwokctl_config() {
  {
    cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
EOF
    if [[ "$REAL_NODE" == 1 ]]; then bash "$HACK_DIR/node.sh" kwokctl-config; fi
    append_stages
  } >"$KWOKCTL_CONFIG.$$"
  # Renamed into place: a concurrent run (waiting for the lock) never reads half a file.
  mv -f "$KWOKCTL_CONFIG.$$" "$KWOKCTL_CONFIG"
}

# The ready marker holds the digest of the configuration the cluster was created
# with: a cluster from another configuration is recreated.
config_digest() { sha256sum <"$KWOKCTL_CONFIG" | cut -c1-16; }

# kwok's own default stages (any stage in the config replaces them), read from
# the pinned kwok module, plus the test stages in hack/kwok/.
append_stages() {
  local kwok_dir stage
  kwok_dir="$(cd "$HACK_DIR/toolchain/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)" ||
    die "cannot locate the kwok module (go list -m sigs.k8s.io/kwok)"
  for stage in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ -f "$kwok_dir/kustomize/stage/$stage" ]] || die "kwok stage $stage missing in $kwok_dir"
    printf -- '---\n'
    cat "$kwok_dir/kustomize/stage/$stage"
  done
  for stage in "$HACK_DIR"/kwok/*.yaml; do
    printf -- '---\n'
    cat "$stage"
  done
}

kubectl() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# All processes kwokctl started (pid files under the cluster folder).
cluster_pids() {
  local f pid
  for f in "$KWOK_CLUSTER_DIR"/pids/*.pid; do
    [[ -f "$f" ]] || continue
    pid="$(<"$f")"
    [[ -n "$pid" ]] && echo "$pid"
  done
}

processes_alive() {
  local pid n=0
  for pid in $(cluster_pids); do
    is_cluster_process "$pid" || return 1
    n=$((n + 1))
  done
  ((n >= 5))
}

ready_nodes() {
  kubectl get nodes --request-timeout=5s -l type=kwok \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null |
    grep -c '^True$' || true
}

all_nodes_ready() { (($(ready_nodes) >= ${#ZONES[@]})); }

healthy() { # [seconds to keep retrying the API checks]
  [[ -f "$READY_MARKER" && -f "$KUBECONFIG_PATH" ]] || return 1
  [[ "$(<"$READY_MARKER")" == "$(config_digest)" ]] || return 1
  processes_alive || return 1
  # The processes run: give a busy API server (say, a benchmark's) time to
  # answer before `up` declares the cluster broken and recreates it.
  local deadline=$((SECONDS + ${1:-0}))
  until kubectl get --raw /readyz --request-timeout=5s >/dev/null 2>&1 && all_nodes_ready; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

wait_until() { # <what> <timeout seconds> <command...>
  local what="$1" timeout="$2" deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.2
  done
}

cluster_exists() { kwokctl get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; }

# True when pid is alive and is one of this cluster's processes (pid files may
# be stale after a reboot, and the pid reused by something unrelated).
is_cluster_process() {
  local pid="$1"
  [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$KWOK_CLUSTER_DIR/"
}

delete_cluster() {
  local pids=() pid
  for pid in $(cluster_pids); do
    is_cluster_process "$pid" && pids+=("$pid")
  done
  if cluster_exists; then
    # --kubeconfig: kwokctl would otherwise edit ~/.kube/config; it never added
    # a context anywhere (created with --kubeconfig ""), so point it at a file
    # that does not exist.
    kwokctl delete cluster --kubeconfig "$CLUSTER_DIR/no-such-kubeconfig" >>"$CLUSTER_DIR/kwokctl-delete.log" 2>&1 ||
      progress "kwokctl delete cluster failed (log: $CLUSTER_DIR/kwokctl-delete.log); killing the processes"
  fi
  # kwokctl SIGKILLs the components; make sure none is left (e.g. after a
  # crashed run or a failed delete) before removing the state.
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  local deadline=$((SECONDS + 10))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && is_cluster_process "$pid"; do
      ((SECONDS < deadline)) || die "process $pid did not exit"
      sleep 0.1
    done
  done
  rm -rf "$KWOK_CLUSTER_DIR" "$KUBECONFIG_PATH" "$READY_MARKER"
}

nodes_yaml() {
  local z name
  for z in "${ZONES[@]}"; do
    name="kwok-node-$z"
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: $name
    node-role.kubernetes.io/agent: ""
    topology.kubernetes.io/region: local
    topology.kubernetes.io/zone: zone-$z
status:
  allocatable: {cpu: "$NODE_CPU", memory: $NODE_MEMORY, pods: "$NODE_PODS", ephemeral-storage: 1Ti}
  capacity: {cpu: "$NODE_CPU", memory: $NODE_MEMORY, pods: "$NODE_PODS", ephemeral-storage: 1Ti}
EOF
  done
}

# The StorageClass and PVs that do not exist yet; $1: names of existing PVs
# and StorageClasses, one a line (so raising CLUSTER_PVS_* tops up a running
# cluster).
storage_yaml() {
  local -A have=()
  local name
  while read -r name; do [[ -n "$name" ]] && have[$name]=1; done <<<"$1"
  [[ -n "${have[storageclass.storage.k8s.io/standard]:-}" ]] || cat <<EOF
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
allowVolumeExpansion: true
reclaimPolicy: Retain
EOF
  local i mode kind count
  for kind in rwo rwx; do
    if [[ $kind == rwo ]]; then mode=ReadWriteOnce count=$PVS_RWO; else mode=ReadWriteMany count=$PVS_RWX; fi
    for ((i = 1; i <= count; i++)); do
      name="pv-$kind-$(printf '%04d' "$i")"
      [[ -z "${have[persistentvolume/$name]:-}" ]] || continue
      cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $name
  labels: {webcluster.test/pv: $kind}
spec:
  storageClassName: standard
  capacity: {storage: 100Gi}
  accessModes: [$mode]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: /tmp/webcluster-pv/$kind-$i, type: DirectoryOrCreate}
EOF
    done
  done
}

ensure_storage() {
  local existing yaml
  existing="$(kubectl get storageclass,persistentvolume -o name --request-timeout=10s)" || die "listing PVs failed"
  yaml="$(storage_yaml "$existing")"
  [[ -n "$yaml" ]] || return 0
  progress "creating $(grep -c '^kind: PersistentVolume$' <<<"$yaml" || true) PVs (wanted: $PVS_RWO RWO, $PVS_RWX RWX)"
  kubectl create -f - >/dev/null <<<"$yaml"
}

# One `up`/`down` at a time per checkout (parallel test binaries, make -j).
lock() {
  mkdir -p "$CLUSTER_DIR"
  # hack/node.sh takes the same lock unless it runs under this one.
  export WEBCLUSTER_CLUSTER_LOCKED=1
  exec 9>"$CLUSTER_DIR/cluster.lock"
  if ! flock -n 9; then
    progress "waiting for another hack/cluster.sh in this checkout"
    flock 9
  fi
}

# recycle_released_pvs: Released PVs made Available again (one copy, in hack/pvs.sh).
# shellcheck source=pvs.sh
source "$HACK_DIR/pvs.sh"

default_service_account() { kubectl get serviceaccount default -n default; }

# Starts the real node (a no-op when it runs and is healthy).
real_node_up() {
  [[ "$REAL_NODE" == 1 ]] || return 0
  progress "step 8/$STEPS: the real node (hack/node.sh up)"
  bash "$HACK_DIR/node.sh" up 9>&- || die "hack/node.sh up failed (logs: $CLUSTER_DIR/node/logs/)"
}

# Stops it and removes its host state (also what a crashed run left). Only for
# the cluster that owns the node: its bridge and chains exist once per machine.
real_node_down() {
  [[ "$REAL_NODE" == 1 ]] || return 0
  bash "$HACK_DIR/node.sh" down 9>&- || die "hack/node.sh down failed"
}

up() {
  progress "step 1/$STEPS: toolchain"
  toolchain
  lock
  progress "step 2/$STEPS: checking for a running cluster"
  if healthy 30; then
    recycle_released_pvs
    ensure_storage
    real_node_up
    progress "cluster '$CLUSTER_NAME' already running and healthy; nothing to do"
    echo "$KUBECONFIG_PATH"
    return 0
  fi
  # What a crashed run of the real node left on the host goes first.
  real_node_down
  if cluster_exists || [[ -d "$KWOK_CLUSTER_DIR" ]]; then
    progress "step 2/$STEPS: removing a stale or unhealthy cluster"
    delete_cluster
  fi

  progress "step 3/$STEPS: starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok-controller"
  local log="$CLUSTER_DIR/kwokctl-create.log"
  if ! kwokctl create cluster \
    --runtime binary \
    --kubeconfig "" \
    --etcd-binary "$BIN_DIR/etcd" \
    --kube-apiserver-binary "$BIN_DIR/kube-apiserver" \
    --kube-controller-manager-binary "$BIN_DIR/kube-controller-manager" \
    --kube-scheduler-binary "$BIN_DIR/kube-scheduler" \
    --kwok-controller-binary "$BIN_DIR/kwok" \
    --kube-authorization=true \
    --kube-admission=true \
    --disable-qps-limits \
    --quiet-pull \
    --timeout 120s >"$log" 2>&1; then
    cat "$log" >&2
    die "kwokctl create cluster failed (log: $log)"
  fi

  progress "step 4/$STEPS: writing $KUBECONFIG_PATH and waiting for the API server"
  kwokctl get kubeconfig >"$KUBECONFIG_PATH.tmp" 2>>"$log" || die "kwokctl get kubeconfig failed (log: $log)"
  chmod 600 "$KUBECONFIG_PATH.tmp"
  mv "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"
  wait_until "kube-apiserver /readyz" 60 kubectl get --raw /readyz --request-timeout=2s

  progress "step 5/$STEPS: creating ${#ZONES[@]} fake nodes in zones ${ZONES[*]}"
  nodes_yaml | kubectl create -f - >/dev/null

  progress "step 6/$STEPS: default StorageClass 'standard' and PVs ($PVS_RWO RWO, $PVS_RWX RWX, 100Gi each)"
  ensure_storage

  progress "step 7/$STEPS: waiting for nodes to be Ready"
  wait_until "${#ZONES[@]} Ready nodes" 60 all_nodes_ready
  wait_until "the default ServiceAccount" 60 default_service_account
  config_digest >"$READY_MARKER"
  real_node_up
  progress "cluster '$CLUSTER_NAME' ready; kubeconfig:"
  echo "$KUBECONFIG_PATH"
}

down() {
  toolchain
  lock
  progress "stopping cluster '$CLUSTER_NAME'"
  real_node_down
  delete_cluster
  progress "cluster '$CLUSTER_NAME' stopped"
}

status() {
  toolchain
  if healthy && { [[ "$REAL_NODE" == 0 ]] || bash "$HACK_DIR/node.sh" status; }; then
    progress "cluster '$CLUSTER_NAME' running and healthy ($(ready_nodes) Ready kwok nodes); kubeconfig: $KUBECONFIG_PATH"
  else
    progress "cluster '$CLUSTER_NAME' not running or not healthy"
    return 1
  fi
}

# Starts every component whose process is gone. A dead component's pid file goes
# first: kwokctl skips a pid that answers kill -0, and an unreaped zombie does.
revive() {
  local f dead=0
  for f in "$KWOK_CLUSTER_DIR"/pids/*.pid; do
    [[ -f "$f" ]] || continue
    is_cluster_process "$(<"$f")" || { rm -f "$f"; dead=1; }
  done
  ((dead)) || return 0
  kwokctl start cluster >>"$CLUSTER_DIR/kwokctl-start.log" 2>&1 ||
    die "kwokctl start cluster failed (log: $CLUSTER_DIR/kwokctl-start.log)"
}

# Whether a process still has a thread that is neither a zombie nor gone.
has_live_thread() {
  local stat state
  for stat in /proc/"$1"/task/*/stat; do
    state="$(sed 's/.*) //; s/ .*//' "$stat" 2>/dev/null)" || continue
    [[ -n "$state" && "$state" != Z && "$state" != X ]] && return 0
  done
  return 1
}

restart() { # <component> [TERM|KILL]
  local component="$1" signal="${2:-TERM}" pid_file pid
  [[ "$signal" == TERM || "$signal" == KILL ]] || die "restart: signal must be TERM or KILL, got '$signal'"
  toolchain
  lock
  pid_file="$KWOK_CLUSTER_DIR/pids/$component.pid"
  [[ -f "$pid_file" ]] || die "restart: no component '$component' (no $pid_file)"
  pid="$(<"$pid_file")"
  if is_cluster_process "$pid"; then
    kill "-$signal" "$pid"
    local deadline=$((SECONDS + 60))
    # Until every thread is a zombie or gone: an exiting process loses its
    # cmdline before it closes its sockets, its threads share them (the leader
    # may be a zombie while others still exit), and the new one must bind the
    # same port.
    while has_live_thread "$pid"; do
      ((SECONDS < deadline)) || kill -KILL "$pid" 2>/dev/null || true
      sleep 0.1
    done
  fi
  progress "$component (pid $pid) stopped with SIG$signal; starting it again"
  revive
  wait_until "kube-apiserver /readyz" 120 kubectl get --raw /readyz --request-timeout=2s
  # The controller manager and the scheduler exit when they lose their lease
  # during a long outage: start them again too.
  revive
  progress "$component running again (pid $(<"$pid_file"))"
}

case "${1:-}" in
  up) up ;;
  restart)
    [[ -n "${2:-}" ]] || { echo "usage: $0 restart COMPONENT [TERM|KILL]" >&2; exit 2; }
    restart "$2" "${3:-}"
    ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|status|restart COMPONENT [TERM|KILL]" >&2
    exit 2
    ;;
esac
