# shellcheck shell=bash
# NetworkPolicy on the real node: kube-router v2.1.0 in firewall-only mode
# (--run-firewall, no router, no service proxy), sourced by hack/node.sh, whose
# variables and helpers it uses (NODE_DIR, progress, start_process, pid_of, ...).
#
#   hack/node.sh netpol build   build it (cached); prints the binary's path
#   hack/node.sh netpol up      start it on the running node (a no-op when it runs)
#   hack/node.sh netpol down    stop it and remove its chains and ipsets
#   hack/node.sh netpol status  exit 0 when it runs and its chains are in place
#
# `up` starts it with the node and `down` removes it with the node. Built from
# the Go module proxy (hack/node/netpol/kube-router: the only version the proxy
# serves here; advisories exist against it, fine for a local test cluster) into
# the node cache. It talks to the API server with a client certificate of its
# own (user system:kube-router, read-only ClusterRole below) and serves no port
# (--health-port=0, metrics off).
#
# Host state it creates and `netpol down` / `clean` remove: the filter chains
# KUBE-ROUTER-{INPUT,FORWARD,OUTPUT} (jumped to from INPUT, FORWARD, OUTPUT),
# KUBE-POD-FW-*, KUBE-NWPLCY-*, and the ipsets KUBE-SRC-*, KUBE-DST-*
# (inet6:-prefixed for IPv6) of the policies.

NETPOL_MODULE="$HACK_DIR/node/netpol/kube-router"
NETPOL_PACKAGE=github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
NETPOL_CHAINS='KUBE-ROUTER-(INPUT|FORWARD|OUTPUT)|KUBE-POD-FW-[A-Z0-9]+|KUBE-NWPLCY-[A-Z0-9]+'
NETPOL_IPSETS='^(inet6:)?KUBE-(SRC|DST)-[A-Z0-9]+$'
NETPOL_USER=system:kube-router
NETPOL_ROLE=webcluster-node:kube-router

# The binary, cached by the module's go.mod/go.sum and the Go version.
netpol_build() {
  local version key cache
  version="$(awk '{ for (i = 1; i < NF; i++) if ($i == "github.com/cloudnativelabs/kube-router/v2") print $(i + 1) }' "$NETPOL_MODULE/go.mod")"
  [[ -n "$version" ]] || die "no kube-router version in $NETPOL_MODULE/go.mod"
  key="$( (cat "$NETPOL_MODULE/go.mod" "$NETPOL_MODULE/go.sum"; go env GOVERSION) | sha256sum | cut -c1-12)"
  cache="${WEBCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/webcluster-operator}/netpol-kube-router-$version-$key"
  NETPOL_BIN="$cache/kube-router"
  [[ -x "$NETPOL_BIN" ]] && return 0
  mkdir -p "$cache"
  exec 7>"$cache/.build.lock"
  flock 7
  if [[ ! -x "$NETPOL_BIN" ]]; then
    progress "building kube-router $version from the Go module proxy (cold: minutes on 2 cores)"
    (cd "$NETPOL_MODULE" && CGO_ENABLED=0 go build -mod=mod -trimpath -p "${GO_BUILD_JOBS:-2}" \
      -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$version" \
      -o "$NETPOL_BIN.tmp" "$NETPOL_PACKAGE") || die "building kube-router failed"
    mv "$NETPOL_BIN.tmp" "$NETPOL_BIN"
  fi
  exec 7>&-
}

netpol_rbac() {
  kubectl apply --server-side --force-conflicts --field-manager=webcluster-node -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: $NETPOL_ROLE}
rules:
- apiGroups: [""]
  resources: [namespaces, pods, services, nodes, endpoints]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $NETPOL_ROLE}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $NETPOL_ROLE}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: $NETPOL_USER}
EOF
}

# Its chains are hooked into the filter table's base chains.
netpol_chains() { iptables -S FORWARD 2>/dev/null | grep -q -- '-j KUBE-ROUTER-FORWARD'; }

netpol_running() { pid_of kube-router >/dev/null && netpol_chains; }

netpol_up() {
  local tool
  for tool in ipset iptables-save iptables-restore; do
    command -v "$tool" >/dev/null || die "$tool is missing (Debian packages: hack/apt-packages.txt)"
  done
  [[ -f "$READY_MARKER" ]] && pid_of kubelet >/dev/null || die "the node does not run (hack/node.sh up)"
  if netpol_running; then
    progress "kube-router already enforces NetworkPolicy on '$NODE_NAME'"
    return 0
  fi
  netpol_build
  pid_of kube-router >/dev/null || netpol_clean
  progress "NetworkPolicy: kube-router (firewall only) on '$NODE_NAME'"
  [[ -f "$NODE_DIR/kube-router.kubeconfig" ]] || {
    issue_cert kube-router "$NETPOL_USER" "" ""
    write_kubeconfig kube-router
  }
  netpol_rbac
  start_process kube-router "$NETPOL_BIN" --kubeconfig "$NODE_DIR/kube-router.kubeconfig" \
    --hostname-override "$NODE_NAME" --run-firewall=true --run-router=false --run-service-proxy=false \
    --health-port=0 --metrics-port=0 --v=1
  wait_until "kube-router's chains (log: $NODE_DIR/logs/kube-router.log)" 60 netpol_chains
}

# The process, its chains and its ipsets (the sets once no rule refers to them).
netpol_clean() {
  local pid set
  pid="$(pid_of kube-router)" && stop_pids TERM 10 "$pid"
  rm -f "$NODE_DIR/pids/kube-router.pid"
  remove_chains iptables "$NETPOL_CHAINS"
  remove_chains ip6tables "$NETPOL_CHAINS"
  command -v ipset >/dev/null || return 0
  for set in $(ipset list -n 2>/dev/null | grep -E -- "$NETPOL_IPSETS" || true); do
    ipset destroy "$set" 2>/dev/null || progress "warning: could not destroy ipset $set"
  done
}

netpol_down() {
  netpol_clean
  kubectl delete clusterrolebinding,clusterrole "$NETPOL_ROLE" --ignore-not-found >/dev/null 2>&1 || true
  progress "NetworkPolicy enforcement stopped on '$NODE_NAME'"
}

netpol_command() {
  case "${1:-}" in
    build) netpol_build && echo "$NETPOL_BIN" ;;
    up) lock && find_kubectl && netpol_up ;;
    down) lock && find_kubectl && netpol_down ;;
    status)
      if netpol_running; then progress "kube-router runs and enforces NetworkPolicy"; else
        progress "kube-router does not run"
        return 1
      fi
      ;;
    *) die "usage: hack/node.sh netpol build|up|down|status" ;;
  esac
}
