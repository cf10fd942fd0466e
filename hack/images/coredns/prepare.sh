# shellcheck shell=bash
# Unlike the official image, /coredns carries no cap_net_bind_service file
# capability: with one, a pod that drops ALL capabilities cannot even exec it
# (EPERM). Listen on a port above 1023 (hack/node.sh uses 1053).
bin="${WEBCLUSTER_NODE_BIN:-}/coredns"
if [ -z "${WEBCLUSTER_NODE_BIN:-}" ] || [ ! -x "$bin" ]; then
  die "coredns: set WEBCLUSTER_NODE_BIN to the folder with the coredns binary (hack/node.sh builds it); '$bin' is missing"
fi
install -m 0755 "$bin" "$ROOT/coredns"
mkdir -p "$ROOT/etc" "$ROOT/tmp"
chmod 1777 "$ROOT/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$ROOT/etc/group"
