#!/usr/bin/env bash
# The operator's image, built without a Docker engine (`make image`): the
# release binary (stripped), the few glibc libraries it links, copied from this Debian
# bookworm host (the glibc of the Dockerfile's distroless cc-debian12 base),
# /etc/passwd and /etc/group with the nonroot user 65532, and nothing else
# (no shell). hack/images.sh packs it: a docker-archive tar that
# `ctr -n k8s.io images import` loads and `skopeo copy docker-archive:...`
# pushes to a registry as it is.
#
#   bash hack/image.sh build    cargo build --release, then pack; the last stdout
#                               line is the tar's path
#   bash hack/image.sh import   build, then import into the real node's containerd
#                               (hack/node.sh must have started it)
#   bash hack/image.sh config   the image config as JSON, without building
#                               (tests/image.rs compares it with the Dockerfile)
#
# Output: $CARGO_TARGET_DIR (default target/)/image/webcluster-operator.tar,
# tagged ghcr.io/webcluster/webcluster-operator:<Cargo version> (the chart's
# default image).
set -euo pipefail

IMAGE_HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE_REPO="$(dirname "$IMAGE_HACK")"
# hack/images.sh has no library mode: sourced with `list`, it defines its
# functions (pack, write_config, log, die) and only lists its recipes (discarded).
# shellcheck source=hack/images.sh
. "$IMAGE_HACK/images.sh" list >/dev/null

VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$IMAGE_REPO/Cargo.toml" | head -n 1)"
TARGET_DIR="${CARGO_TARGET_DIR:-$IMAGE_REPO/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$IMAGE_REPO/$TARGET_DIR" ;; esac
BINARY="$TARGET_DIR/release/webcluster-operator"
OUT="$TARGET_DIR/image/webcluster-operator.tar"

# The image config; the Dockerfile's final stage says the same (tests/image.rs).
R_NAME=webcluster-operator
R_TAGS="ghcr.io/webcluster/webcluster-operator:$VERSION"
R_USER="65532:65532"
R_ENTRYPOINT='["/webcluster-operator","run"]'
R_PORTS="8080/tcp"
R_ROOTFS=scratch
R_ENV="" R_CMD="" R_WORKDIR="" R_STOPSIGNAL=""

# images.sh's write_config, with the labels and history naming this script.
eval "images_write_config() $(declare -f write_config | tail -n +2)"
write_config() {
  images_write_config "$@"
  VERSION=$VERSION python3 - "$3" <<'PY'
import json, os, sys
with open(sys.argv[1]) as f:
    doc = json.load(f)
labels = doc["config"]["Labels"]
labels["org.opencontainers.image.source"] = "https://github.com/webcluster/webcluster-operator"
labels["org.opencontainers.image.title"] = "webcluster-operator"
labels["org.opencontainers.image.version"] = os.environ["VERSION"]
labels["org.opencontainers.image.description"] = "webcluster-operator, built by hack/image.sh"
for entry in doc["history"]:
    entry["created_by"] = "hack/image.sh build"
with open(sys.argv[1], "w") as f:
    json.dump(doc, f, sort_keys=True, separators=(",", ":"))
PY
}

# The binary's shared libraries (ldd), each at the path ldd names, and their
# Debian packages' copyright files; echoes package=version words.
copy_libraries() {
  local root=$1 lib real package packages=""
  for lib in $(ldd "$BINARY" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    real=$(readlink -f "$lib")
    install -D -m 0755 "$real" "$root$lib"
    # dpkg's database names the path before /usr was merged (/lib/...).
    package=$({ dpkg -S "$lib" 2>/dev/null || dpkg -S "$real"; } | head -n 1 | cut -d: -f1) || die "no Debian package owns $lib"
    [[ " $packages " == *" $package "* ]] || packages="$packages $package"
  done
  for package in $packages; do
    install -D -m 0644 "/usr/share/doc/$package/copyright" "$root/usr/share/doc/$package/copyright"
    dpkg-query -W -f '${Package}=${Version}\n' "$package"
  done
}

rootfs() {
  local root=$1
  # Without its symbol table (29 -> 22 MiB); panics still print their messages.
  install -D -s -m 0755 "$BINARY" "$root/webcluster-operator"
  mkdir -p "$root/etc" "$root/tmp"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
}

cmd_build() {
  local root="$WORK/$R_NAME/root" versions
  log "step 1/3: cargo build --release (webcluster-operator)"
  (cd "$IMAGE_REPO" && cargo build --release --locked -q -j"${JOBS:-2}" --bin webcluster-operator) || die "cargo build failed"
  log "step 2/3: root filesystem (binary $(du -m "$BINARY" | cut -f1) MiB and its libraries)"
  rm -rf "$WORK/$R_NAME" && mkdir -p "$root" "$(dirname "$OUT")"
  rootfs "$root"
  versions=$(copy_libraries "$root")
  # The loader finds every library and the image user may run it.
  chroot --userspec=65532:65532 "$root" /webcluster-operator --version >/dev/null ||
    die "the binary does not start inside its root filesystem"
  log "step 3/3: packing $(du -sm "$root" | cut -f1) MiB ($(wc -w <<< "$versions") Debian packages: $(tr '\n' ' ' <<< "$versions"))"
  pack "$root" "$OUT" "$versions"
  rm -rf "$WORK/$R_NAME"
  log "image $R_TAGS: $OUT, $(du -m "$OUT" | cut -f1) MiB, built in $SECONDS s"
  echo "$OUT"
}

cmd_import() {
  local bin
  cmd_build >/dev/null
  bin="$(bash "$IMAGE_HACK/node.sh" build | tail -n 1)" || die "hack/node.sh build failed"
  [ -S "$IMAGE_REPO/.cluster/node/run/containerd.sock" ] || die "the real node is not running (make cluster)"
  "$bin/ctr" --address "$IMAGE_REPO/.cluster/node/run/containerd.sock" -n k8s.io images import "$OUT" >&2 ||
    die "ctr import of $OUT failed"
  log "imported $R_TAGS into the real node"
}

cmd_config() {
  local out
  out=$(mktemp)
  write_config 0000000000000000000000000000000000000000000000000000000000000000 "" "$out"
  python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["config"], indent=2, sort_keys=True))' "$out"
  rm -f "$out"
}

case "${1:-}" in
  build) cmd_build ;;
  import) cmd_import ;;
  config) cmd_config ;;
  *) die "usage: image.sh build | import | config" ;;
esac
