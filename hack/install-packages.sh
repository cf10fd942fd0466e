#!/usr/bin/env bash
# Installs the Debian packages the tests need (hack/apt-packages.txt: the
# PostgreSQL, MariaDB, memcached and Redis servers the data-service tests run)
# when one is missing: `apt-get update`, then `apt-get install` of the missing
# ones, then stops the services their installation started (the tests run
# their own servers on free ports). Nothing to do when all are installed.
# Not root (or INSTALL_PACKAGES=0): stops at once and prints the one command
# to run. Used by `make test` and `.ci/run`.
#   APT_PACKAGES_FILE  the list to check (default hack/apt-packages.txt)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIST="${APT_PACKAGES_FILE:-$ROOT/hack/apt-packages.txt}"
START=$SECONDS
progress() { printf '[packages %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }

mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$LIST" | grep -v '^$')
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]} == 0)); then
  progress "all ${#packages[@]} Debian packages of ${LIST#"$ROOT"/} are installed"
  exit 0
fi

command="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [[ "$(id -u)" != 0 || "${INSTALL_PACKAGES:-1}" == 0 ]]; then
  progress "ERROR: missing Debian packages: ${missing[*]}. Install them with:"
  printf "  sudo sh -c '%s'\n" "$command" >&2
  exit 1
fi
progress "step 1/3: apt-get update (missing: ${missing[*]})"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
progress "step 2/3: apt-get install ${missing[*]}"
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  progress "ERROR: apt-get install failed; run it yourself to see why: $command"
  exit 1
fi
progress "step 3/3: stopping the services the packages started"
for service in postgresql mariadb memcached redis-server; do
  service "$service" stop >/dev/null 2>&1 || true
done
progress "installed ${missing[*]}"
