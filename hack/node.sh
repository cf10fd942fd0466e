#!/usr/bin/env bash
# The local cluster's real node: a kubelet that runs real pods beside the 3 kwok
# nodes of hack/cluster.sh, on this machine.
#
#   hack/node.sh build          build the node's binaries (cached; prints the bin folder)
#   hack/node.sh up             start the node; the control plane must run (hack/cluster.sh
#                               up calls this). A running node is kept (a no-op when it is
#                               Ready; CoreDNS is put back if gone); a crashed one is cleaned
#                               up and started again
#   hack/node.sh down           stop it and remove every trace it left on the host
#   hack/node.sh status         exit 0 when it runs and is healthy
#   hack/node.sh import NAME... build (cached) and import more images from hack/images.sh
#                               (e.g. postgres mariadb redis): `up` imports pause, coredns
#                               and client only
#   hack/node.sh kwokctl-config the control-plane settings the node needs (hack/cluster.sh
#                               puts them into its kwokctl configuration)
#   hack/node.sh netpol up|down|status
#                               NetworkPolicy enforcement (kube-router, firewall only) on the
#                               running node; `up` starts it too, `down` removes it
#
# What is real: kubelet and kube-proxy (iptables mode) of the pinned Kubernetes
# module, containerd 2.x with its runc shim, runc (cgo, libseccomp), all built by
# `hack/toolchain.sh node` into ~/.cache/webcluster-operator/node-*; Debian's CNI
# plugins (bridge, host-local, loopback, portmap); CoreDNS as the cluster DNS in a
# Deployment on this node. Stand-ins: the images come from hack/images.sh (Debian
# packages, not the upstream images), nothing is pulled (imagePullPolicy must not
# be Always); NetworkPolicy is enforced by kube-router in firewall-only mode
# (hack/node/netpol.sh; the bridge plugin has no enforcer of its own).
#
# How it reaches the API server, which stays on 127.0.0.1: the node owns
# NODE_IP/32 on a bridge of its own (HOST_BRIDGE, no ports); socat forwards
# NODE_IP:APISERVER_PORT to the loopback listener; kube-apiserver advertises
# NODE_IP (so the `kubernetes` Service leads there), its certificate names
# NODE_IP and the Service IP, and it reaches the kubelet on NODE_IP
# (kubelet-preferred-address-types=InternalIP,Hostname) with a client
# certificate; the kubelet API authenticates (x509 + webhook) and authorizes
# (webhook), no anonymous access.
#
# Placement: the node is labelled NODE_LABEL and tainted NODE_TAINT, so only pods
# that select and tolerate it land there.
#
# Host-wide state and its cleanup: cgroup v1 directories nested under the cgroup
# this script runs in (CGROUP_ROOT, recorded at `up`); the two bridges; the
# iptables chains of kube-proxy and the kubelet (KUBE-*), of the portmap plugin
# (CNI-*) and our guard (WCNODE-GUARD: in the mangle table, drops anything
# forwarded to or from the external interface) and the iptables-nft tables
# they brought into existence; net.ipv4.ip_forward and the
# sysctls the kubelet sets; pod network namespaces (/var/run/netns); mounts
# under NODE_DIR; /run/containerd/s (the shims' sockets), /var/lib/kubelet
# (the device-plugin socket), /var/lib/cni and /var/log/containers when they did
# not exist before. `down` (and `up`, before it starts) removes all of it; the
# values to restore are recorded in NODE_DIR/host.env. Processes are stopped by
# PID: pid files, the containers' processes from the node's cgroups, the shims
# by their -address under NODE_DIR.
#
# Measured here (2 cores): cold build of the binaries ~10 min (Go caches of the
# control plane warm); up 12-17 s with binaries and images cached; down 13 s
# with 6 pods; kubelet 90 MiB, kube-proxy 66 MiB, containerd 52 MiB, CoreDNS
# 59 MiB, ~17 MiB per pod shim.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(dirname "$HACK_DIR")"
# shellcheck source=versions.env
source "$HACK_DIR/versions.env"
CLUSTER_DIR="${WEBCLUSTER_CLUSTER_DIR:-$ROOT_DIR/.cluster}"
KWOK_CLUSTER_DIR="${KWOK_CLUSTER_DIR:-$CLUSTER_DIR/kwok/clusters/webcluster}"
PKI_DIR="$KWOK_CLUSTER_DIR/pki"
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig"
NODE_DIR="$CLUSTER_DIR/node"
HOST_ENV="$NODE_DIR/host.env"
READY_MARKER="$NODE_DIR/ready"
CONTAINERD_SOCK="$NODE_DIR/run/containerd.sock"

NODE_NAME=webcluster-real
NODE_LABEL_KEY=webcluster.io/node
NODE_LABEL_VALUE=real
NODE_TAINT_KEY=webcluster.io/real-node
HOST_BRIDGE=wcnode0
NODE_IP=10.250.0.1
POD_BRIDGE=wcpods0
POD_CIDR=10.244.0.0/24
# kube-apiserver's default --service-cluster-ip-range (kwokctl sets none).
SERVICE_CIDR=10.0.0.0/24
KUBERNETES_SERVICE_IP=10.0.0.1
DNS_SERVICE_IP=10.0.0.10
APISERVER_PORT=36443
GUARD_CHAIN=WCNODE-GUARD
# Sysctls the kubelet sets (setupKernelTunables) plus ip_forward: restored at down.
SYSCTLS="net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
# Host folders the node's components create outside NODE_DIR (fixed paths).
HOST_PATHS="/run/containerd /var/lib/kubelet /var/lib/cni /var/log/containers /var/run/netns"
# Processes started by up (pid files under NODE_DIR/pids).
PROCESSES="socat containerd kubelet kube-proxy"
# Images up imports; others: hack/node.sh import NAME...
BASE_IMAGES="pause coredns client"
START=$SECONDS
# shellcheck source=hack/node/netpol.sh
source "$HACK_DIR/node/netpol.sh"

progress() { printf '[node %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() {
  progress "ERROR: $*"
  exit 1
}

poll_until() { # <timeout seconds> <command...>: 1 when the time ran out first
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

wait_until() { # <what> <timeout seconds> <command...>
  local what="$1" timeout="$2"
  shift 2
  poll_until "$timeout" "$@" || die "timed out after ${timeout}s waiting for $what"
}

build() {
  local out
  out="$(bash "$HACK_DIR/toolchain.sh" node)" || die "hack/toolchain.sh node failed"
  BIN_DIR="$(tail -n1 <<<"$out")"
  [[ -x "$BIN_DIR/kubelet" ]] || die "no kubelet in '$BIN_DIR'"
}

# kubectl of the control plane's toolchain (built with it).
find_kubectl() {
  local out
  out="$(bash "$HACK_DIR/toolchain.sh" 2>/dev/null)" || die "hack/toolchain.sh failed"
  KUBECTL="$(tail -n1 <<<"$out")/kubectl"
}

kubectl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=10s "$@"; }
ctr() { "$BIN_DIR/ctr" --address "$CONTAINERD_SOCK" "$@"; }

# --- processes -------------------------------------------------------------

# True when pid runs one of our binaries with a NODE_DIR path in its arguments
# (pid files may be stale after a crash, and the pid reused).
is_node_process() {
  [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$NODE_DIR/"
}

pid_of() { # <name>: the recorded pid, when it still runs ours
  local f="$NODE_DIR/pids/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  is_node_process "$pid" && echo "$pid"
}

start_process() { # <name> <command...>
  local name="$1"
  shift
  # setsid: not in the caller's process group (Ctrl-C of a make does not kill
  # the node); 9>&-: do not hold hack/cluster.sh's lock.
  setsid "$@" </dev/null >"$NODE_DIR/logs/$name.log" 2>&1 9>&- &
  echo "$!" >"$NODE_DIR/pids/$name.pid"
}

# The node's programs running with a NODE_DIR path in their arguments: the
# shims (started by containerd, their -address is under NODE_DIR), and daemons
# whose pid files went missing (a state folder removed by hand).
node_program_pids() {
  local p
  for p in /proc/[0-9]*; do
    case "$(readlink "$p/exe" 2>/dev/null)" in
      */containerd-shim-runc-v2 | */containerd | */kubelet | */kube-proxy | */kube-router | */socat) ;;
      *) continue ;;
    esac
    is_node_process "${p#/proc/}" && echo "${p#/proc/}"
  done
  return 0
}

# Running (a zombie waiting for PID 1 to reap it does not count).
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

stop_pids() { # <signal> <seconds to wait> <pid...>
  local sig="$1" timeout="$2" pid
  shift 2
  [[ $# -gt 0 ]] || return 0
  kill "-$sig" "$@" 2>/dev/null || true
  local deadline=$((SECONDS + timeout))
  for pid in "$@"; do
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
  done
  for pid in "$@"; do
    alive "$pid" && { kill -KILL "$pid" 2>/dev/null || true; }
  done
  return 0
}

# --- cgroups -----------------------------------------------------------------

# Every hierarchy: the cgroup v1 ones and the hybrid's cgroup2 "unified" one
# (runc creates the containers' cgroups there too).
cgroup_hierarchies() {
  local h
  for h in /sys/fs/cgroup/*/; do
    h="${h%/}"
    [[ -f "$h/cgroup.procs" ]] && echo "$h"
  done
  return 0
}

# Every pid in the node's cgroups (the containers' processes).
cgroup_pids() {
  [[ -n "${CGROUP_ROOT:-}" ]] || return 0
  local h
  for h in $(cgroup_hierarchies); do
    [[ -d "$h$CGROUP_ROOT" ]] || continue
    find "$h$CGROUP_ROOT" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}

# Creates CGROUP_ROOT in every hierarchy; records the folders it made.
create_cgroups() {
  local h path dir part
  for h in $(cgroup_hierarchies); do
    path=""
    for part in ${CGROUP_ROOT//\// }; do
      path="$path/$part"
      dir="$h$path"
      [[ -d "$dir" ]] && continue
      mkdir "$dir"
      echo "$dir" >>"$NODE_DIR/cgroups.created"
      if [[ "$h" == */cpuset ]]; then # a new cpuset is empty until told its cpus and mems
        cat "$(dirname "$dir")/cpuset.cpus" >"$dir/cpuset.cpus"
        cat "$(dirname "$dir")/cpuset.mems" >"$dir/cpuset.mems"
      fi
    done
  done
}

remove_cgroups() {
  local h dir
  if [[ -n "${CGROUP_ROOT:-}" ]]; then
    for h in $(cgroup_hierarchies); do
      [[ -d "$h$CGROUP_ROOT" ]] || continue
      find "$h$CGROUP_ROOT" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [[ ! -d "$h$CGROUP_ROOT" ]] || progress "warning: could not remove $h$CGROUP_ROOT"
    done
  fi
  # The parents this node created (deepest first).
  if [[ -f "$NODE_DIR/cgroups.created" ]]; then
    sort -r "$NODE_DIR/cgroups.created" | while read -r dir; do
      # A folder already gone must not end the loop (and the script) with status 1.
      [[ ! -d "$dir" ]] || rmdir "$dir" 2>/dev/null || progress "warning: could not remove $dir"
    done
    rm -f "$NODE_DIR/cgroups.created"
  fi
  return 0
}

# --- host state --------------------------------------------------------------

external_interface() { ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit }}'; }

# Records what down restores, once per node life (a crashed run keeps the first record).
record_host_state() {
  [[ -f "$HOST_ENV" ]] && return 0
  local s base p
  base="$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)"
  [[ -n "$base" ]] || die "no memory cgroup in /proc/self/cgroup (cgroup v1 expected)"
  {
    echo "CGROUP_ROOT='${base%/}/webcluster-node'"
    echo "EXTERNAL_IF=$(external_interface)"
    for s in $SYSCTLS; do echo "SYSCTL_${s//./_}=$(sysctl -n "$s")"; done
    for p in $HOST_PATHS; do [[ -e "$p" ]] || echo "CREATED_PATHS+=\" $p\""; done
    ! command -v nft >/dev/null || echo "NFT_TABLES=';$(nft list tables | tr '\n' ';')'" # never empty once recorded
  } >"$HOST_ENV.tmp"
  mv "$HOST_ENV.tmp" "$HOST_ENV"
}

load_host_state() {
  CGROUP_ROOT="" EXTERNAL_IF="" CREATED_PATHS="" NFT_TABLES=""
  if [[ -f "$HOST_ENV" ]]; then
    # shellcheck disable=SC1090
    source "$HOST_ENV"
  else # no record (NODE_DIR removed by hand): at least the cgroups of this session
    CGROUP_ROOT="$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)"
    CGROUP_ROOT="${CGROUP_ROOT%/}/webcluster-node"
  fi
}

restore_sysctls() {
  local s var
  for s in $SYSCTLS; do
    var="SYSCTL_${s//./_}"
    [[ -n "${!var:-}" ]] || continue
    [[ "$(sysctl -n "$s")" == "${!var}" ]] || sysctl -qw "$s=${!var}" || progress "warning: could not restore $s"
  done
}

guard_forwarding() {
  [[ -n "$EXTERNAL_IF" ]] || die "no default route: cannot tell the external interface"
  iptables -t mangle -N "$GUARD_CHAIN"
  iptables -t mangle -A "$GUARD_CHAIN" -i "$EXTERNAL_IF" -j DROP
  iptables -t mangle -A "$GUARD_CHAIN" -o "$EXTERNAL_IF" -j DROP
  iptables -t mangle -I FORWARD 1 -j "$GUARD_CHAIN"
}

# Deletes the rules of other chains that jump to a chain matching the pattern,
# then flushes and deletes the matching chains: one iptables-restore per table
# (kube-proxy keeps a few chains per Service, hundreds with the tests' Services).
remove_chains() { # <iptables command> <chain name regex>
  local cmd="$1" pattern="$2" table rules chains script
  for table in filter nat mangle raw; do
    rules="$("$cmd" -t "$table" -S 2>/dev/null)" || continue
    chains="$(awk '$1 == "-N" { print $2 }' <<<"$rules" | grep -E -- "^($pattern)$" || true)"
    [[ -n "$chains" ]] || continue
    script="*$table"$'\n'
    # With --noflush, declaring a chain flushes it.
    script+="$(sed 's/^/:/; s/$/ - [0:0]/' <<<"$chains")"$'\n'
    script+="$(grep -E -- "^-A " <<<"$rules" | grep -vE -- "^-A ($pattern) " | grep -E -- "-j ($pattern)( |$)" |
      sed 's/^-A /-D /' || true)"$'\n'
    script+="$(sed 's/^/-X /' <<<"$chains")"$'\nCOMMIT\n'
    "$cmd-restore" --noflush <<<"$script" || progress "warning: could not remove the $cmd $table chains ($pattern)"
  done
}

# The iptables-nft tables (filter, nat, mangle, raw) that the node's chains
# brought into existence, once nothing is left in them.
remove_new_tables() {
  [[ -n "$NFT_TABLES" ]] && command -v nft >/dev/null || return 0
  local family name
  nft list tables | while read -r _ family name; do
    [[ "$NFT_TABLES" == *";table $family $name;"* ]] && continue
    [[ "$family" == ip || "$family" == ip6 ]] && [[ "$name" =~ ^(filter|nat|mangle|raw)$ ]] || continue
    # Base chains with their policies only: no rule left.
    nft list table "$family" "$name" | grep -qvE '^[[:space:]]*(table .*|chain .*|type .*|\}|)$' && continue
    nft delete table "$family" "$name" || progress "warning: could not delete nft table $family $name"
  done
}

node_mounts() { # deepest first
  awk -v dir="$NODE_DIR/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r
}

# The network namespaces of this node's pods (from containerd's sandbox specs).
pod_netns() {
  ctr -n k8s.io containers ls -q 2>/dev/null | while read -r id; do
    ctr -n k8s.io containers info "$id" 2>/dev/null | grep -o '"/var/run/netns/cni-[0-9a-f-]*"' | tr -d '"'
  done | sort -u
}

# Removes everything the node put on the host. Safe to run at any time (also
# when nothing runs); `up` runs it first to clean what a crashed run left.
clean() {
  load_host_state
  local name pid pids=() netns=() ns
  # The pods' network namespaces, while containerd still knows them.
  if pid="$(pid_of containerd)"; then
    # ctr beside the running containerd (down does not build anything).
    BIN_DIR="$(dirname "$(readlink "/proc/$pid/exe")")"
    while read -r ns; do [[ -n "$ns" ]] && netns+=("$ns"); done < <(pod_netns)
  fi
  # A folder of network namespaces that only this node used: all of them.
  if [[ " $CREATED_PATHS " == *" /var/run/netns "* ]]; then
    for ns in /var/run/netns/cni-*; do [[ -e "$ns" ]] && netns+=("$ns"); done
  fi
  # kube-router first (it would put its chains back), with its chains and ipsets.
  netpol_clean
  # The kubelet first, so it does not restart what we stop. Nothing of theirs
  # outlives them (the state folder goes), so no graceful stop: SIGKILL.
  for name in kube-proxy kubelet; do
    pid="$(pid_of "$name")" && stop_pids KILL 10 "$pid"
  done
  # Containers: every process in the node's cgroups, then the shims and
  # containerd, then the sandboxes' network namespaces.
  pids=()
  while read -r pid; do [[ -n "$pid" ]] && pids+=("$pid"); done < <(cgroup_pids)
  [[ ${#pids[@]} -eq 0 ]] || progress "killing ${#pids[@]} container processes"
  stop_pids KILL 10 "${pids[@]}"
  pid="$(pid_of containerd)" && stop_pids KILL 10 "$pid"
  pids=()
  while read -r pid; do [[ -n "$pid" ]] && pids+=("$pid"); done < <(node_program_pids)
  [[ ${#pids[@]} -eq 0 ]] || progress "stopping ${#pids[@]} containerd shims (and daemons without a pid file)"
  stop_pids KILL 5 "${pids[@]}"
  pid="$(pid_of socat)" && stop_pids TERM 5 "$pid"
  for ns in "${netns[@]}"; do
    [[ -e "$ns" ]] || continue
    umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
    rm -f "$ns"
  done
  progress "removing ${#netns[@]} pod network namespaces, mounts, cgroups, bridges, iptables chains"
  # Mounts under NODE_DIR (kubelet volumes, sandbox /dev/shm, container rootfs).
  local m
  for m in $(node_mounts); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || progress "warning: could not unmount $m"
  done
  remove_cgroups
  # Network: bridges (deleting the pod bridge detaches what is left of the veths).
  local link
  for link in "$POD_BRIDGE" "$HOST_BRIDGE"; do
    ip link show "$link" >/dev/null 2>&1 && ip link delete "$link"
  done
  remove_chains iptables "KUBE-[A-Z0-9-]*|CNI-[A-Za-z0-9_-]*|$GUARD_CHAIN"
  remove_chains ip6tables "KUBE-[A-Z0-9-]*|CNI-[A-Za-z0-9_-]*"
  remove_new_tables
  conntrack -D -s "$POD_CIDR" >/dev/null 2>&1 || true
  conntrack -D -d "$POD_CIDR" >/dev/null 2>&1 || true
  conntrack -D -d "$SERVICE_CIDR" >/dev/null 2>&1 || true
  restore_sysctls
  # Host folders the components created; only files that are ours inside
  # (a folder someone else started using meanwhile is kept).
  local p
  for p in $CREATED_PATHS; do
    [[ -e "$p" ]] || continue
    case "$p" in
      /var/log/containers) find "$p" -maxdepth 1 -type l -lname "$NODE_DIR/*" -delete ;;
      /var/run/netns) ;;
      *) rm -rf "$p" ;;
    esac
    rmdir "$p" 2>/dev/null || [[ "$p" != /var/run/netns ]] || progress "warning: $p is not empty; kept"
  done
  [[ -z "$(node_mounts)" ]] || die "still mounted under $NODE_DIR (not removing it): $(node_mounts | tr '\n' ' ')"
  rm -rf "$NODE_DIR"
}

# --- configuration -----------------------------------------------------------

# Options for hack/cluster.sh's KwokctlConfiguration (indented for `options:`,
# then top-level componentsPatches).
kwokctl_config() {
  cat <<EOF
  kubeApiserverPort: $APISERVER_PORT
  kubeApiserverCertSANs: ["$NODE_IP", "$KUBERNETES_SERVICE_IP"]
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - {key: advertise-address, value: "$NODE_IP"}
  - {key: kubelet-preferred-address-types, value: "InternalIP,Hostname"}
  - {key: kubelet-client-certificate, value: "$PKI_DIR/admin.crt"}
  - {key: kubelet-client-key, value: "$PKI_DIR/admin.key"}
  - {key: kubelet-certificate-authority, value: "$PKI_DIR/ca.crt"}
- name: kwok-controller
  extraArgs:
  - {key: manage-all-nodes, value: "false", override: true}
  - {key: manage-nodes-with-annotation-selector, value: "kwok.x-k8s.io/node=fake"}
EOF
}

# A key and a certificate signed by the cluster's CA.
issue_cert() { # <name> <CN> <O or ""> <subjectAltName or "">
  local name="$1" cn="$2" org="$3" san="$4" subj ext
  subj="/CN=$cn"
  [[ -z "$org" ]] || subj="/O=$org$subj"
  ext="keyUsage=critical,digitalSignature,keyEncipherment"$'\n'"extendedKeyUsage=clientAuth,serverAuth"
  [[ -z "$san" ]] || ext+=$'\n'"subjectAltName=$san"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subj" \
    -keyout "$NODE_DIR/pki/$name.key" -out "$NODE_DIR/pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$NODE_DIR/pki/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
    -CAcreateserial -days 365 -extfile <(echo "$ext") -out "$NODE_DIR/pki/$name.crt" 2>/dev/null
  rm -f "$NODE_DIR/pki/$name.csr"
}

write_kubeconfig() { # <name>: client certificate pki/NAME.{crt,key}
  cat >"$NODE_DIR/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:$APISERVER_PORT", certificate-authority: "$PKI_DIR/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$NODE_DIR/pki/$1.crt", client-key: "$NODE_DIR/pki/$1.key"}
contexts:
- name: $1
  context: {cluster: local, user: $1}
current-context: $1
EOF
}

write_configs() {
  mkdir -p "$NODE_DIR"/{pki,pids,logs,run,cni/net.d,cni/ipam,pod-logs,containerd,kubelet}
  issue_cert kubelet "system:node:$NODE_NAME" system:nodes "IP:$NODE_IP,DNS:$NODE_NAME"
  issue_cert kube-proxy system:kube-proxy "" ""
  write_kubeconfig kubelet
  write_kubeconfig kube-proxy

  cat >"$NODE_DIR/containerd.toml" <<EOF
version = 3
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = "$NODE_DIR/containerd/opt"
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "$PAUSE_IMAGE"
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    # This VM lacks CAP_SYS_RESOURCE: runc must not lower oom_score_adj.
    restrict_oom_score_adj = true
    enable_cdi = false
    cdi_spec_dirs = ["$NODE_DIR/cdi"]
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "$BIN_DIR/runc"
          Root = "$NODE_DIR/runc"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["/usr/lib/cni"]
      conf_dir = "$NODE_DIR/cni/net.d"
      max_conf_num = 1
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
EOF

  cat >"$NODE_DIR/cni/net.d/10-webcluster.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "webcluster",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$POD_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$NODE_DIR/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 (hybrid) here; PID 1 owns the hierarchies: cgroupfs, nested under our cgroup.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: "$CGROUP_ROOT"
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
address: "$NODE_IP"
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: "$NODE_DIR/pki/kubelet.crt"
tlsPrivateKeyFile: "$NODE_DIR/pki/kubelet.key"
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI_DIR/ca.crt"}
authorization:
  mode: Webhook
clusterDNS: ["$DNS_SERVICE_IP"]
clusterDomain: cluster.local
# No host resolver for pods: cluster names only, nothing leaves the machine.
resolvConf: ""
podLogsDir: "$NODE_DIR/pod-logs"
failSwapOn: false
oomScoreAdj: 0
serializeImagePulls: false
registerWithTaints:
- {key: "$NODE_TAINT_KEY", value: "true", effect: NoSchedule}
evictionHard: {memory.available: 200Mi, nodefs.available: 5%, imagefs.available: 5%, nodefs.inodesFree: 5%}
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
EOF

  cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: $NODE_NAME
bindAddress: "$NODE_IP"
clientConnection: {kubeconfig: "$NODE_DIR/kube-proxy.kubeconfig"}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: "$POD_CIDR"
nodePortAddresses: ["$NODE_IP/32"]
oomScoreAdj: 0
iptables: {localhostNodePorts: false, masqueradeAll: false, syncPeriod: 30s, minSyncPeriod: 1s}
# No host-wide conntrack tuning.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

coredns_yaml() {
  cat <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # Cluster names only: no forward plugin, nothing leaves the machine; any
  # other name does not exist.
  Corefile: |
    cluster.local:1053 in-addr.arpa:1053 ip6.arpa:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            ttl 30
        }
        cache 30
        reload
        loadbalance
    }
    .:1053 {
        template ANY ANY {
            rcode NXDOMAIN
        }
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      nodeSelector: {$NODE_LABEL_KEY: $NODE_LABEL_VALUE}
      tolerations:
      - {key: $NODE_TAINT_KEY, operator: Exists, effect: NoSchedule}
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        resources:
          requests: {cpu: 50m, memory: 32Mi}
          limits: {memory: 128Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          periodSeconds: 10
          failureThreshold: 5
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: $DNS_SERVICE_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
}

# --- health ------------------------------------------------------------------

processes_alive() {
  local name
  for name in $PROCESSES; do pid_of "$name" >/dev/null || return 1; done
}

node_ready() {
  [[ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

coredns_available() {
  [[ "$(kubectl -n kube-system get deployment coredns -o jsonpath='{.status.availableReplicas}' 2>/dev/null)" -ge 1 ]]
}

service_rules() { iptables -t nat -S KUBE-SERVICES 2>/dev/null | grep -q 'default/kubernetes:https'; }

apply_coredns() {
  coredns_yaml | kubectl apply --server-side --force-conflicts --field-manager=webcluster-node -f - >/dev/null
  wait_until "CoreDNS available (kubectl -n kube-system describe pod -l k8s-app=kube-dns)" 120 coredns_available
}

healthy() {
  [[ -f "$READY_MARKER" ]] && processes_alive && node_ready && coredns_available
}

# --- commands ----------------------------------------------------------------

import_images() { # <name...>
  local out
  out="$(WEBCLUSTER_NODE_BIN="$BIN_DIR" bash "$HACK_DIR/images.sh" build "$@")" || die "hack/images.sh build $* failed"
  WEBCLUSTER_NODE_BIN="$BIN_DIR" bash "$HACK_DIR/images.sh" import "$BIN_DIR/ctr" "$CONTAINERD_SOCK" "$@" >/dev/null ||
    die "hack/images.sh import $* failed"
}

up() {
  local steps=10 tool
  for tool in socat iptables ip6tables nft ip conntrack openssl setsid flock /usr/lib/cni/bridge; do
    command -v "$tool" >/dev/null || die "$tool is missing (Debian packages: hack/apt-packages.txt)"
  done
  progress "step 1/$steps: binaries (hack/toolchain.sh node)"
  build
  find_kubectl
  [[ -f "$KUBECONFIG_PATH" && -f "$PKI_DIR/ca.key" ]] || die "the control plane does not run (hack/cluster.sh up starts it and then this node)"
  load_host_state
  # A running node is kept (the pods of running tests live there): only CoreDNS
  # is put back when it is gone, and a node that stays NotReady is restarted.
  if [[ -f "$READY_MARKER" ]] && processes_alive; then
    if poll_until 30 node_ready; then
      if ! coredns_available; then
        progress "node '$NODE_NAME' runs but CoreDNS is not available: applying it again"
        apply_coredns
      fi
      netpol_up
      progress "node '$NODE_NAME' already running and Ready; nothing to do"
      return 0
    fi
    progress "node '$NODE_NAME' runs but stayed NotReady for 30 s: restarting it"
  fi
  if [[ -d "$NODE_DIR" ]] || ip link show "$HOST_BRIDGE" >/dev/null 2>&1; then
    progress "step 2/$steps: removing what an earlier run left"
    clean
  fi
  mkdir -p "$NODE_DIR"
  record_host_state
  load_host_state
  progress "step 3/$steps: images $BASE_IMAGES (hack/images.sh build; cached after the first run)"
  WEBCLUSTER_NODE_BIN="$BIN_DIR" bash "$HACK_DIR/images.sh" build $BASE_IMAGES >/dev/null || die "hack/images.sh build failed"

  progress "step 4/$steps: certificates, configuration, cgroups under $CGROUP_ROOT"
  write_configs
  create_cgroups

  progress "step 5/$steps: network: $HOST_BRIDGE ($NODE_IP/32), forwarding guard on $EXTERNAL_IF, API forward $NODE_IP:$APISERVER_PORT"
  ip link add "$HOST_BRIDGE" type bridge
  ip addr add "$NODE_IP/32" dev "$HOST_BRIDGE"
  ip link set "$HOST_BRIDGE" up
  guard_forwarding
  # Pods reach Services on other pods through the host: forwarding on (guarded above).
  sysctl -qw net.ipv4.ip_forward=1
  start_process socat socat -lf "$NODE_DIR/logs/socat.log" \
    "TCP-LISTEN:$APISERVER_PORT,bind=$NODE_IP,reuseaddr,fork" "TCP:127.0.0.1:$APISERVER_PORT"

  progress "step 6/$steps: containerd"
  start_process containerd "$BIN_DIR/containerd" --config "$NODE_DIR/containerd.toml" --log-level warn
  wait_until "containerd" 30 ctr version
  progress "step 6/$steps: importing images $BASE_IMAGES"
  import_images $BASE_IMAGES

  progress "step 7/$steps: kubelet"
  start_process kubelet "$BIN_DIR/kubelet" --config "$NODE_DIR/kubelet.yaml" \
    --kubeconfig "$NODE_DIR/kubelet.kubeconfig" --root-dir "$NODE_DIR/kubelet" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --node-labels "$NODE_LABEL_KEY=$NODE_LABEL_VALUE" --v 1
  wait_until "node $NODE_NAME Ready (log: $NODE_DIR/logs/kubelet.log)" 90 node_ready

  progress "step 8/$steps: kube-proxy"
  start_process kube-proxy "$BIN_DIR/kube-proxy" --config "$NODE_DIR/kube-proxy.yaml" --v 1
  wait_until "kube-proxy's Service rules (log: $NODE_DIR/logs/kube-proxy.log)" 60 service_rules

  progress "step 9/$steps: CoreDNS at $DNS_SERVICE_IP"
  apply_coredns
  touch "$READY_MARKER"
  progress "step 10/$steps: NetworkPolicy (kube-router, firewall only)"
  netpol_up
  progress "node '$NODE_NAME' Ready ($NODE_LABEL_KEY=$NODE_LABEL_VALUE, taint $NODE_TAINT_KEY=true:NoSchedule)"
}

down() {
  if [[ ! -d "$NODE_DIR" ]] && ! ip link show "$HOST_BRIDGE" >/dev/null 2>&1; then
    progress "node '$NODE_NAME' not running; nothing to remove"
    return 0
  fi
  progress "stopping node '$NODE_NAME' and removing its host state"
  clean
  # The Node object, when the control plane still runs (hack/cluster.sh down
  # deletes the whole control plane next anyway).
  if [[ -f "$KUBECONFIG_PATH" ]]; then
    find_kubectl
    kubectl delete node "$NODE_NAME" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  progress "node '$NODE_NAME' stopped"
}

# One up/down at a time per checkout: hack/cluster.sh's lock (it holds it
# already when it runs this script).
lock() {
  [[ -z "${WEBCLUSTER_CLUSTER_LOCKED:-}" ]] || return 0
  mkdir -p "$CLUSTER_DIR"
  exec 9>"$CLUSTER_DIR/cluster.lock"
  if ! flock -n 9; then
    progress "waiting for another hack/cluster.sh or hack/node.sh in this checkout"
    flock 9
  fi
}

case "${1:-}" in
  build)
    build
    echo "$BIN_DIR"
    ;;
  up)
    lock
    up
    ;;
  down)
    lock
    down
    ;;
  status)
    find_kubectl
    load_host_state
    if healthy; then progress "node '$NODE_NAME' running and Ready"; else
      progress "node '$NODE_NAME' not running or not healthy"
      exit 1
    fi
    ;;
  import)
    shift
    [[ $# -gt 0 ]] || die "usage: $0 import NAME..."
    build
    pid_of containerd >/dev/null || die "the node's containerd does not run (make cluster)"
    import_images "$@"
    progress "imported $*"
    ;;
  kwokctl-config) kwokctl_config ;;
  netpol)
    shift
    netpol_command "$@"
    ;;
  *)
    echo "usage: $0 build|up|down|status|import NAME...|kwokctl-config|netpol up|down|status" >&2
    exit 2
    ;;
esac
