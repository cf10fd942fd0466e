#!/bin/sh
# The part of the official roundcube/roundcubemail image's entrypoint that
# examples/roundcube.yaml relies on, for any command (apache2-foreground,
# bin/updatedb.sh, bin/cleandb.sh, ...). The settings themselves are read
# from the environment by /etc/roundcube/config.inc.php on every request, so
# nothing is written here and the root filesystem may be read-only.
set -eu
# Apache's config reads it for the X-Served-By header.
HOSTNAME=${HOSTNAME:-$(hostname)}
export HOSTNAME
if [ -z "${ROUNDCUBEMAIL_DES_KEY:-}" ]; then
  # As the official image: a random key of this pod's own, which other
  # replicas cannot decrypt (hence the example's sharedSecrets).
  echo "docker-entrypoint.sh: ROUNDCUBEMAIL_DES_KEY is unset; using a random key of this pod" >&2
  ROUNDCUBEMAIL_DES_KEY=$(head -c 18 /dev/urandom | base64)
  export ROUNDCUBEMAIL_DES_KEY
fi
mkdir -p "${ROUNDCUBEMAIL_TEMP_DIR:-/tmp/roundcube-temp}"
# As the official image, for Apache and bin/ commands: an empty database
# gets the schema first, waiting up to 30 s for the database to answer (the
# official image's wait-for-it; a new Service's endpoints take seconds to reach
# every node). Apache starts anyway; a bin/ command (the migration) does not
# run against a database whose schema could not be checked: bin/updatedb.sh
# on an empty one would apply every upgrade since 2013 to no tables, and every
# retry would then fail.
check_schema() {
  deadline=$(($(date +%s) + 30))
  until roundcube-initdb; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "docker-entrypoint.sh: could not check or create the database schema within 30 s" >&2
      return 1
    fi
    sleep 2
  done
}
case "${1:-}" in
  apache2*) [ -z "${ROUNDCUBEMAIL_DSNW:-}" ] || check_schema || true ;;
  bin/*) [ -z "${ROUNDCUBEMAIL_DSNW:-}" ] || check_schema || exit 1 ;;
esac
exec "$@"
