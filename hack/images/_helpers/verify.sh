# shellcheck shell=bash disable=SC2034 # BG_PID, HELPERS, COMMAND are for test.sh
# Sourced by hack/images.sh: the `verify` command and the helpers test.sh files use.
# Checks DIR/NAME.tar's manifest and config; extracts its layer to ROOT; writes
# the config's user and environment for the sandbox.
check_archive() {
  local tar=$1 out=$2
  rm -rf "$out" && mkdir -p "$out/archive" "$out/root"
  tar -C "$out/archive" -xf "$tar"
  TAGS="$R_TAGS" python3 - "$out" <<'PY' || die "archive check failed: $tar"
import hashlib, json, os, sys
out = sys.argv[1]
arch = os.path.join(out, "archive")
def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
manifest = json.load(open(os.path.join(arch, "manifest.json")))
assert len(manifest) == 1, "one image per archive"
m = manifest[0]
assert m["RepoTags"] == os.environ["TAGS"].split(), f"RepoTags {m['RepoTags']}"
assert m["Config"] == sha(os.path.join(arch, m["Config"])) + ".json", "config digest"
config = json.load(open(os.path.join(arch, m["Config"])))
diff_ids = ["sha256:" + sha(os.path.join(arch, layer)) for layer in m["Layers"]]
assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}, "diff_ids"
assert config["os"] == "linux" and config["architecture"] == "amd64"
user = config["config"]["User"]
uid, _, gid = user.partition(":")
assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit()), f"User {user!r} is not numeric non-root"
with open(os.path.join(out, "user"), "w") as f:
    f.write(f"{uid} {gid or uid}\n")
with open(os.path.join(out, "layer"), "w") as f:
    f.write(m["Layers"][0] + "\n")
with open(os.path.join(out, "env"), "w") as f:
    f.write("\n".join(config["config"]["Env"]) + "\n")
print(f"  manifest ok: {m['RepoTags']} user {user}, layer {diff_ids[0][:19]}, "
      f"entrypoint {config['config'].get('Entrypoint')} cmd {config['config'].get('Cmd')}", file=sys.stderr)
PY
  tar -C "$out/root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$out/archive/$(cat "$out/layer")"
}

# Inside the sandbox: helpers for hack/images/NAME/test.sh.
fail() { die "verify $R_NAME: $*"; }
wait_until() {
  local what=$1 tries=0
  shift
  until "$@" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || fail "timed out: $what"
    sleep 0.2
  done
}
# stop PID [SIGNAL]: signals PID and returns its exit status; a process that
# has not exited 30 s later is killed (status 137), so a test never hangs.
stop() {
  local pid=$1 watchdog status=0
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  (sleep 30 && kill -KILL "$pid" 2>/dev/null) &
  watchdog=$!
  wait "$pid" || status=$?
  kill "$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
  return "$status"
}
# in_image [KEY=VALUE...] COMMAND...: runs COMMAND in the image as its user with its env.
in_image() {
  image_command "$@"
  "${COMMAND[@]}"
}
# in_image_bg [KEY=VALUE...] COMMAND...: the same in the background; its pid in BG_PID.
in_image_bg() {
  image_command "$@"
  "${COMMAND[@]}" &
  BG_PID=$!
}
image_command() {
  local extra=()
  while [[ "${1:-}" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do
    extra+=("$1")
    shift
  done
  COMMAND=(env -i "${IMAGE_ENV[@]}" "${extra[@]}" chroot --userspec="$IMAGE_UID:$IMAGE_GID" --groups="$IMAGE_GID" "$ROOT" "$@")
}
# Copies the operator's database scripts as its ConfigMap would mount them.
operator_config() {
  local engine=$1 dest="$ROOT/webcluster"
  mkdir -p "$dest"
  cp "$OPERATOR_SCRIPTS/common.sh" "$dest/"
  cp "$OPERATOR_SCRIPTS/$engine-start.sh" "$dest/start.sh"
  cp "$OPERATOR_SCRIPTS/$engine-probe.sh" "$dest/probe.sh"
}

# Runs in `unshare --net --mount --pid --fork`: its own loopback, /proc and /dev.
sandbox() {
  local name=$1 out=$2
  load_recipe "$name"
  ROOT="$out/root"
  HELPERS="$IMAGES_DIR/_helpers"
  # The operator's pod scripts (src/*/scripts), which the database and cache tests run.
  OPERATOR_SCRIPTS=$(dirname "$(find "$REPO/src" -name postgresql-start.sh -print -quit)")
  read -r IMAGE_UID IMAGE_GID < "$out/user"
  mapfile -t IMAGE_ENV < "$out/env"
  ip link set lo up
  mkdir -p "$ROOT/proc" "$ROOT/dev"
  # As the kubelet mounts it into every pod.
  mkdir -p "$ROOT/etc"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n' "$(hostname)" > "$ROOT/etc/hosts"
  mount -t proc proc "$ROOT/proc"
  mount --rbind /dev "$ROOT/dev"
  # shellcheck source=/dev/null
  . "$IMAGES_DIR/$name/test.sh"
}

cmd_verify() {
  local names dir n i=0 start out
  if [ $# -eq 0 ]; then mapfile -t names < <(all_names); else names=("$@"); fi
  dir=$(cmd_build "${names[@]}" | tail -n 1)
  for n in "${names[@]}"; do
    i=$((i + 1))
    start=$SECONDS
    load_recipe "$n"
    [ -f "$IMAGES_DIR/$n/test.sh" ] || { log "verify $i/${#names[@]} $n: no test.sh"; continue; }
    log "verify $i/${#names[@]} $n"
    out="$WORK/verify-$n"
    check_archive "$dir/$n.tar" "$out"
    unshare --net --mount --pid --fork --kill-child bash "$SCRIPT" _sandbox "$n" "$out" ||
      die "verify $n failed (rootfs kept in $out/root)"
    rm -rf "$out"
    log "verify $i/${#names[@]} $n: ok in $((SECONDS - start)) s, $(du -m "$dir/$n.tar" | cut -f1) MiB"
  done
}

