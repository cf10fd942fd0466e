#!/bin/sh
# The part of the official postgres image's entrypoint that a plain
# `docker run postgres` relies on: on an empty PGDATA, initdb with
# POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust), create POSTGRES_USER
# and POSTGRES_DB, then run the command. Other commands run as they are.
set -eu
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "docker-entrypoint.sh: set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
    exit 1
  fi
  mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  # shellcheck disable=SC2086 # extra initdb options, as words
  initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" ${POSTGRES_INITDB_ARGS:-} >&2
  rm -f "$pwfile"
  echo "host all all all $auth" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.auto.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /tmp" -w start >&2
    echo 'CREATE DATABASE :"db";' |
      psql -X -v ON_ERROR_STOP=1 -h /tmp -U "$POSTGRES_USER" -d postgres -v db="$POSTGRES_DB" >&2
    pg_ctl -D "$PGDATA" -m fast -w stop >&2
  fi
fi
exec "$@"
