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
# gets the schema first; a failure is reported, not fatal.
case "${1:-}" in
  apache2* | bin/*)
    if [ -n "${ROUNDCUBEMAIL_DSNW:-}" ]; then
      roundcube-initdb || echo "docker-entrypoint.sh: could not check or create the database schema" >&2
    fi
    ;;
esac
exec "$@"
