#!/usr/bin/env bash
# Builds the local cluster's container images from Debian packages, without a
# Docker engine or a registry: a root filesystem from mmdebstrap (or a few
# static files), packed as a docker-archive tar (manifest.json, config, one
# layer) that `ctr images import` loads and `skopeo copy docker-archive:...`
# accepts. Recipes live in hack/images/NAME/ (see hack/images/README.md).
#
#   bash hack/images.sh build [NAME...]       build into the cache (no names: all);
#                                            the last stdout line is the cache folder
#   bash hack/images.sh import CTR ADDRESS [NAME...]
#                                            build if missing, then CTR --address ADDRESS
#                                            -n k8s.io images import NAME.tar
#   bash hack/images.sh list                 NAME TAG lines
#   bash hack/images.sh verify [NAME...]      check each archive's manifest and config, then
#                                            run its server as the image user in a throwaway
#                                            network namespace (no cluster)
#
# Cache: ~/.cache/webcluster-operator/images-KEY/NAME.tar, KEY = hash of this
# script, the suite and every recipe file. An image whose own inputs did not
# change is linked from an earlier folder instead of rebuilt.
# Environment: WEBCLUSTER_NODE_BIN (folder with the coredns binary),
# WEBCLUSTER_IMAGE_SUITE (default trixie), WEBCLUSTER_DEBIAN_MIRROR,
# SOURCE_DATE_EPOCH (timestamps; default 2025-01-01).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT="$HERE/images.sh"
REPO="$(cd "$HERE/.." && pwd)"
IMAGES_DIR="$HERE/images"
SUITE="${WEBCLUSTER_IMAGE_SUITE:-trixie}"
MIRROR="${WEBCLUSTER_DEBIAN_MIRROR:-http://deb.debian.org}"
EPOCH="${SOURCE_DATE_EPOCH:-1735689600}"
CACHE_BASE="$HOME/.cache/webcluster-operator"
DEBS="$CACHE_BASE/apt-archives-$SUITE"
WORK="$CACHE_BASE/images-work"
# Build order when no names are given: what the real node needs first.
ORDER="pause coredns client postgres mariadb redis memcached varnish php-apache"

log() { printf '[images %4ds] %s\n' "$SECONDS" "$*" >&2; }
die() {
  printf 'images.sh: %s\n' "$*" >&2
  exit 1
}

# Every recipe: ORDER first, then the others by name.
all_names() {
  local name
  for name in $ORDER; do [ -f "$IMAGES_DIR/$name/image.conf" ] && echo "$name"; done
  for name in $(cd "$IMAGES_DIR" && ls); do
    [ -f "$IMAGES_DIR/$name/image.conf" ] || continue
    [[ " $ORDER " == *" $name "* ]] || echo "$name"
  done
}

# Loads NAME's recipe (its FROM chain first) into the R_* variables.
load_recipe() {
  local name=$1 depth=${2:-0}
  local conf="$IMAGES_DIR/$name/image.conf"
  [ -f "$conf" ] || die "no recipe '$name' (expected $conf)"
  [ "$depth" -lt 8 ] || die "recipe '$name': FROM chain too deep (a loop?)"
  local TAGS="" FROM="" ROOTFS="" PACKAGES="" USERS="" DIRS="" INPUTS="" USER="" WORKDIR="" STOPSIGNAL=""
  local ENTRYPOINT="" CMD="" ENV="" PORTS=""
  # shellcheck source=/dev/null
  . "$conf"
  if [ -n "$FROM" ]; then
    load_recipe "$FROM" $((depth + 1))
  else
    R_CHAIN="" R_ROOTFS=debian R_PACKAGES="" R_USERS="" R_DIRS="" R_INPUTS="" R_ENV="" R_PORTS=""
    R_USER="" R_WORKDIR="" R_STOPSIGNAL="" R_ENTRYPOINT="" R_CMD=""
  fi
  R_NAME=$name
  R_TAGS=$TAGS
  [ -n "$R_TAGS" ] || die "recipe '$name': TAGS is empty"
  R_CHAIN="$R_CHAIN $name"
  [ -z "$ROOTFS" ] || R_ROOTFS=$ROOTFS
  R_PACKAGES="$R_PACKAGES $PACKAGES"
  R_USERS="$R_USERS $USERS"
  R_DIRS="$R_DIRS $DIRS"
  R_INPUTS="$R_INPUTS $INPUTS"
  R_ENV="$R_ENV $ENV"
  R_PORTS="$R_PORTS $PORTS"
  [ -z "$USER" ] || R_USER=$USER
  [ -z "$WORKDIR" ] || R_WORKDIR=$WORKDIR
  [ -z "$STOPSIGNAL" ] || R_STOPSIGNAL=$STOPSIGNAL
  [ -z "$ENTRYPOINT" ] || R_ENTRYPOINT=$ENTRYPOINT
  [ -z "$CMD" ] || R_CMD=$CMD
  [[ "$R_USER" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || [ "$depth" -gt 0 ] ||
    die "recipe '$name': USER must be a numeric non-root uid[:gid], not '$R_USER'"
}

# Content hash of files, each prefixed with its name.
hash_files() {
  local f
  for f in "$@"; do
    printf '== %s\n' "${f#"$REPO"/}"
    cat "$f"
  done | sha256sum | cut -c1-16
}

folder_key() {
  local files
  mapfile -t files < <(find "$IMAGES_DIR" -type f | LC_ALL=C sort)
  { echo "$SUITE"; hash_files "$SCRIPT" "${files[@]}"; } | sha256sum | cut -c1-12
}

# NAME's own inputs (after load_recipe): this script, the suite, its chain's
# recipe files (not test.sh) and its INPUTS.
image_key() {
  local files=() dir input
  for dir in $R_CHAIN; do
    mapfile -t -O "${#files[@]}" files < <(find "$IMAGES_DIR/$dir" -type f ! -name test.sh | LC_ALL=C sort)
  done
  for input in $R_INPUTS; do
    input=$(eval "printf '%s' $input")
    [ -f "$input" ] && files+=("$input")
  done
  { echo "$SUITE"; hash_files "$SCRIPT" "${files[@]}"; } | sha256sum | cut -c1-16
}

# Renumbers (or creates) account NAME with UID/GID in ROOT, re-owning its files.
set_account() {
  local root=$1 name=$2 uid=$3 gid=$4 home=${5:-/nonexistent}
  local passwd="$root/etc/passwd" group="$root/etc/group" old
  local other
  other=$(awk -F: -v n="$name" -v id="$uid" '$1 != n && $3 == id { print $1 }' "$passwd")
  [ -z "$other" ] || die "uid $uid for '$name' is taken by '$other' in the rootfs"
  other=$(awk -F: -v n="$name" -v id="$gid" '$1 != n && $3 == id { print $1 }' "$group")
  [ -z "$other" ] || die "gid $gid for '$name' is taken by group '$other' in the rootfs"
  old=$(awk -F: -v n="$name" '$1 == n { print $3 }' "$group")
  if [ -z "$old" ]; then
    echo "$name:x:$gid:" >> "$group"
    [ ! -f "$root/etc/gshadow" ] || echo "$name:!::" >> "$root/etc/gshadow"
  elif [ "$old" != "$gid" ]; then
    awk -F: -v OFS=: -v n="$name" -v id="$gid" '$1 == n { $3 = id } { print }' "$group" > "$group.new"
    cat "$group.new" > "$group" && rm "$group.new"
    awk -F: -v OFS=: -v o="$old" -v id="$gid" '$4 == o { $4 = id } { print }' "$passwd" > "$passwd.new"
    cat "$passwd.new" > "$passwd" && rm "$passwd.new"
    find "$root" -xdev -gid "$old" -exec chgrp -h "$gid" {} +
  fi
  old=$(awk -F: -v n="$name" '$1 == n { print $3 }' "$passwd")
  if [ -z "$old" ]; then
    echo "$name:x:$uid:$gid:$name:$home:/usr/sbin/nologin" >> "$passwd"
    [ ! -f "$root/etc/shadow" ] || echo "$name:*:20000:0:99999:7:::" >> "$root/etc/shadow"
  elif [ "$old" != "$uid" ]; then
    awk -F: -v OFS=: -v n="$name" -v id="$uid" -v g="$gid" '$1 == n { $3 = id; $4 = g } { print }' "$passwd" > "$passwd.new"
    cat "$passwd.new" > "$passwd" && rm "$passwd.new"
    find "$root" -xdev -uid "$old" -exec chown -h "$uid" {} +
  fi
}

# The Debian root filesystem: minbase + PACKAGES, debs shared across images.
debian_rootfs() {
  local root=$1 logfile=$2
  local packages
  # shellcheck disable=SC2086 # a word list
  packages=$(printf '%s\n' $R_PACKAGES | paste -sd,)
  mkdir -p "$DEBS"
  # shellcheck disable=SC2016 # $1 is mmdebstrap's, expanded in its hooks
  SOURCE_DATE_EPOCH=$EPOCH mmdebstrap --variant=minbase --mode=root --format=directory \
    ${packages:+--include="$packages"} \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt=force-unsafe-io \
    --skip=download/empty --skip=essential/unlink \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
    --setup-hook="find '$DEBS' -maxdepth 1 -name '*.deb' -exec cp -l -t \"\$1/var/cache/apt/archives/\" {} +" \
    --customize-hook="find \"\$1/var/cache/apt/archives\" -maxdepth 1 -name '*.deb' -exec cp -n -l -t '$DEBS/' {} +" \
    "$SUITE" "$root" \
    "deb $MIRROR/debian $SUITE main" "deb $MIRROR/debian $SUITE-updates main" \
    "deb $MIRROR/debian-security $SUITE-security main" > "$logfile" 2>&1 ||
    { tail -n 30 "$logfile" >&2; die "mmdebstrap failed for $R_NAME (log: $logfile)"; }
}

strip_rootfs() {
  local root=$1
  rm -rf "${root:?}"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/var/cache/apt/archives/partial \
    "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/lintian "$root"/usr/share/locale/* \
    "${root:?}"/dev/* "$root"/tmp/* "$root"/var/tmp/* "$root"/etc/hostname "$root"/etc/resolv.conf
  [ ! -d "$root/usr/share/doc" ] || find "$root/usr/share/doc" -xdev ! -type d ! -name copyright -delete
  find "$root" -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
}

# The image config as JSON (python reads the R_* variables from its environment).
write_config() {
  local layer_digest=$1 versions=$2 out=$3
  R_NAME=$R_NAME R_USER=$R_USER R_ENV="$R_ENV" R_PORTS="$R_PORTS" R_ENTRYPOINT=$R_ENTRYPOINT R_CMD=$R_CMD \
    R_WORKDIR=$R_WORKDIR R_STOPSIGNAL=$R_STOPSIGNAL R_VERSIONS="$versions" R_SUITE=$SUITE R_ROOTFS=$R_ROOTFS \
    EPOCH=$EPOCH DIGEST=$layer_digest python3 - "$out" <<'PY'
import datetime, json, os, sys
e = os.environ
env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
for word in e["R_ENV"].split():
    key, _, value = word.partition("=")
    env.pop(key, None)
    env[key] = value
config = {"User": e["R_USER"], "Env": [f"{k}={v}" for k, v in env.items()]}
for key, var in (("Entrypoint", "R_ENTRYPOINT"), ("Cmd", "R_CMD")):
    if e[var]:
        value = json.loads(e[var])
        if not isinstance(value, list):
            sys.exit(f"{var} must be a JSON array")
        if value:
            config[key] = value
ports = e["R_PORTS"].split()
if ports:
    config["ExposedPorts"] = {p: {} for p in ports}
if e["R_WORKDIR"]:
    config["WorkingDir"] = e["R_WORKDIR"]
if e["R_STOPSIGNAL"]:
    config["StopSignal"] = e["R_STOPSIGNAL"]
labels = {"org.opencontainers.image.source": "hack/images/" + e["R_NAME"]}
if e["R_ROOTFS"] == "debian":
    labels["org.opencontainers.image.description"] = f"Debian {e['R_SUITE']} stand-in built by hack/images.sh"
    labels["org.opencontainers.image.base.name"] = f"debian:{e['R_SUITE']}"
if e["R_VERSIONS"].strip():
    labels["io.webcluster.debian-packages"] = " ".join(e["R_VERSIONS"].split())
config["Labels"] = labels
created = datetime.datetime.fromtimestamp(int(e["EPOCH"]), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
doc = {
    "architecture": "amd64",
    "os": "linux",
    "created": created,
    "config": config,
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + e["DIGEST"]]},
    "history": [{"created": created, "created_by": "hack/images.sh build " + e["R_NAME"]}],
}
with open(sys.argv[1], "w") as f:
    json.dump(doc, f, sort_keys=True, separators=(",", ":"))
PY
}

# ROOT -> OUT (docker-archive: manifest.json, repositories, <config>.json, <diff id>/layer.tar).
pack() {
  local root=$1 out=$2 versions=$3
  local stage="$WORK/$R_NAME/stage" digest config_digest entries tag
  rm -rf "$stage" && mkdir -p "$stage"
  mapfile -t entries < <(cd "$root" && ls -A)
  tar -C "$root" --sort=name --numeric-owner --xattrs --xattrs-include='security.capability' \
    --format=posix --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
    --mtime="@$EPOCH" --clamp-mtime -cf "$stage/layer.tar" -- "${entries[@]}"
  digest=$(sha256sum "$stage/layer.tar" | cut -d' ' -f1)
  mkdir "$stage/$digest"
  mv "$stage/layer.tar" "$stage/$digest/layer.tar"
  write_config "$digest" "$versions" "$stage/config.json"
  config_digest=$(sha256sum "$stage/config.json" | cut -d' ' -f1)
  mv "$stage/config.json" "$stage/$config_digest.json"
  TAGS="$R_TAGS" CONFIG="$config_digest.json" LAYER="$digest/layer.tar" python3 - "$stage" <<'PY'
import json, os, sys
tags = os.environ["TAGS"].split()
manifest = [{"Config": os.environ["CONFIG"], "RepoTags": tags, "Layers": [os.environ["LAYER"]]}]
repositories = {}
for tag in tags:
    repo, _, name = tag.rpartition(":")
    repositories.setdefault(repo, {})[name] = os.environ["LAYER"].split("/")[0]
with open(os.path.join(sys.argv[1], "manifest.json"), "w") as f:
    json.dump(manifest, f, separators=(",", ":"))
with open(os.path.join(sys.argv[1], "repositories"), "w") as f:
    json.dump(repositories, f, sort_keys=True, separators=(",", ":"))
PY
  tar -C "$stage" --sort=name --numeric-owner --owner=0 --group=0 --mode='u+rw,go+r' --mtime="@$EPOCH" \
    --format=posix --pax-option='delete=atime,delete=ctime' \
    -cf "$out.part" manifest.json repositories "$config_digest.json" "$digest"
  mv "$out.part" "$out"
  rm -rf "$stage"
}

# Builds NAME into DIR (after load_recipe NAME); KEY is its image key.
build_image() {
  local dir=$1 key=$2 step=$3
  local work="$WORK/$R_NAME" root="$WORK/$R_NAME/root" part entry recipe versions=""
  local start=$SECONDS
  rm -rf "$work" && mkdir -p "$work"
  if [ "$R_ROOTFS" = debian ]; then
    log "$step $R_NAME: mmdebstrap $SUITE minbase +$(wc -w <<< "$R_PACKAGES") packages"
    debian_rootfs "$root" "$work/mmdebstrap.log"
    log "$step $R_NAME: rootfs $(du -sm "$root" | cut -f1) MiB after $((SECONDS - start)) s"
    for entry in $R_USERS; do
      IFS=: read -r -a part <<< "$entry"
      set_account "$root" "${part[@]}"
    done
  else
    [ -z "${R_USERS// /}" ] || die "recipe '$R_NAME': USERS needs a debian rootfs"
    mkdir -p "$root"
  fi
  for recipe in $R_CHAIN; do
    if [ -f "$IMAGES_DIR/$recipe/prepare.sh" ]; then
      # shellcheck disable=SC2034 # read by prepare.sh
      ROOT=$root RECIPE="$IMAGES_DIR/$recipe"
      # shellcheck source=/dev/null
      . "$IMAGES_DIR/$recipe/prepare.sh"
    fi
    if [ -d "$IMAGES_DIR/$recipe/files" ]; then
      # Extracted inside the chroot where there is one: the rootfs's absolute
      # symlinks (/var/run -> /run) must not lead to the host's folders.
      if [ "$R_ROOTFS" = debian ]; then
        tar -C "$IMAGES_DIR/$recipe/files" --owner=0 --group=0 -cf - . |
          chroot "$root" tar -C / --keep-directory-symlink --no-overwrite-dir -xf -
      else
        tar -C "$IMAGES_DIR/$recipe/files" --owner=0 --group=0 -cf - . | tar -C "$root" -xf -
      fi
    fi
    if [ -f "$IMAGES_DIR/$recipe/setup.sh" ]; then
      [ "$R_ROOTFS" = debian ] || die "recipe '$recipe': setup.sh needs a debian rootfs"
      log "$step $R_NAME: setup.sh of $recipe"
      chroot "$root" /bin/sh -eu < "$IMAGES_DIR/$recipe/setup.sh" >> "$work/setup.log" 2>&1 ||
        { tail -n 20 "$work/setup.log" >&2; die "setup.sh of $recipe failed for $R_NAME"; }
    fi
  done
  for entry in $R_DIRS; do
    IFS=: read -r -a part <<< "$entry"
    case "$(readlink -m "$root${part[0]}")" in
      "$root"/*) ;;
      *) die "recipe '$R_NAME': DIRS path ${part[0]} leads out of the rootfs through a symlink; name the real path" ;;
    esac
    mkdir -p "$root${part[0]}"
    chown "${part[1]}:${part[2]}" "$root${part[0]}"
    chmod "${part[3]}" "$root${part[0]}"
  done
  if [ "$R_ROOTFS" = debian ]; then
    # shellcheck disable=SC2086,SC2016
    versions=$(chroot "$root" dpkg-query -W -f '${Package}=${Version}\n' $R_PACKAGES 2>/dev/null | sort -u || true)
    strip_rootfs "$root"
  fi
  log "$step $R_NAME: packing $(du -sm "$root" | cut -f1) MiB"
  pack "$root" "$dir/$R_NAME.tar" "$versions"
  echo "$key" > "$dir/$R_NAME.key"
  rm -rf "$work"
  log "$step $R_NAME: done in $((SECONDS - start)) s, $(du -m "$dir/$R_NAME.tar" | cut -f1) MiB ($R_TAGS)"
}

# Fails early when a requested image cannot be built here.
preflight() {
  local name need=""
  for name in "$@"; do
    load_recipe "$name"
    if [[ " $R_CHAIN " == *" coredns "* ]] && [ ! -x "${WEBCLUSTER_NODE_BIN:-}/coredns" ]; then
      die "coredns: set WEBCLUSTER_NODE_BIN to the folder that holds the coredns binary (hack/node.sh builds it); '${WEBCLUSTER_NODE_BIN:-<unset>}/coredns' is missing. Or name the images to build."
    fi
    [ "$R_ROOTFS" != debian ] || need="$need mmdebstrap:mmdebstrap"
    [[ " $R_CHAIN " != *" pause "* ]] || need="$need gcc:gcc"
  done
  local tool package
  for tool in $need; do
    command -v "${tool%%:*}" >/dev/null && continue
    package=${tool#*:}
    log "installing $package"
    apt-get install -y -qq "$package" >&2 || die "${tool%%:*} is missing and apt-get install $package failed"
  done
  [ "$(id -u)" = 0 ] || die "run as root (mmdebstrap --mode=root, chroot)"
}

# Builds the named images (default: all) into the cache; echoes the folder.
cmd_build() {
  local names dir n i=0 todo=()
  if [ $# -eq 0 ]; then mapfile -t names < <(all_names); else names=("$@"); fi
  dir="$CACHE_BASE/images-$(folder_key)"
  mkdir -p "$dir" "$WORK"
  plan_builds "$dir" "${names[@]}"
  if [ ${#todo[@]} -gt 0 ]; then
    # One builder at a time; plan again once it is our turn.
    exec 9> "$CACHE_BASE/images.lock"
    flock 9
    plan_builds "$dir" "${names[@]}"
  fi
  if [ ${#todo[@]} -gt 0 ]; then
    preflight "${todo[@]}"
    for n in "${todo[@]}"; do
      i=$((i + 1))
      load_recipe "$n"
      build_image "$dir" "$(image_key)" "step $i/${#todo[@]}"
    done
  fi
  log "${#names[@]} image(s) ready, ${#todo[@]} built"
  prune "$dir"
  echo "$dir"
}

# Sets todo to the names that DIR lacks, linking those an earlier folder has.
plan_builds() {
  local dir=$1 n key old
  shift
  todo=()
  for n in "$@"; do
    load_recipe "$n"
    key=$(image_key)
    [ -f "$dir/$n.tar" ] && [ "$(cat "$dir/$n.key" 2>/dev/null)" = "$key" ] && continue
    # The same inputs built into an earlier folder: link it.
    old=$(grep -lx -- "$key" "$CACHE_BASE"/images-*/"$n.key" 2>/dev/null | head -n 1 || true)
    if [ -n "$old" ] && [ -f "${old%.key}.tar" ]; then
      ln -f "${old%.key}.tar" "$dir/$n.tar.part" && mv "$dir/$n.tar.part" "$dir/$n.tar"
      echo "$key" > "$dir/$n.key"
      log "$n: unchanged, linked from $(dirname "$old")"
      continue
    fi
    todo+=("$n")
  done
}

# Keeps the three most recent cache folders (unchanged images are hard links, so
# an old folder holds only what was rebuilt since).
prune() {
  local keep=$1 old
  touch "$keep"
  find "$CACHE_BASE" -maxdepth 1 -type d -name 'images-*' ! -name images-work -printf '%T@ %p\n' |
    sort -rn | tail -n +4 | while read -r _ old; do
      [ "$old" = "$keep" ] || rm -rf "$old"
    done
}

cmd_import() {
  [ $# -ge 2 ] || die "usage: images.sh import CTR_BINARY CONTAINERD_ADDRESS [NAME...]"
  local ctr=$1 address=$2 dir n names i=0
  shift 2
  if [ $# -eq 0 ]; then mapfile -t names < <(all_names); else names=("$@"); fi
  dir=$(cmd_build "${names[@]}" | tail -n 1)
  for n in "${names[@]}"; do
    i=$((i + 1))
    log "import $i/${#names[@]} $n"
    "$ctr" --address "$address" -n k8s.io images import "$dir/$n.tar" >&2 || die "ctr import of $n failed"
  done
  log "imported ${#names[@]} image(s)"
}

cmd_list() {
  local n tag
  while read -r n; do
    load_recipe "$n"
    for tag in $R_TAGS; do echo "$n $tag"; done
  done < <(all_names)
}

# verify, in its own file so that changing a check rebuilds no image.
# shellcheck source=hack/images/_helpers/verify.sh
. "$IMAGES_DIR/_helpers/verify.sh"

case "${1:-}" in
  build) shift && cmd_build "$@" ;;
  import) shift && cmd_import "$@" ;;
  list) cmd_list ;;
  verify) shift && cmd_verify "$@" ;;
  _sandbox) shift && sandbox "$@" ;;
  *) die "usage: images.sh build [NAME...] | import CTR ADDRESS [NAME...] | list | verify [NAME...]" ;;
esac
