#!/bin/sh
# Starts one PostgreSQL pod of a WebCluster: the primary (initialised on first
# start, roles and database re-applied on every start) or a hot standby
# (bootstrapped from the primary with pg_basebackup when its data is empty).
# Needs: DB_POD_NAME DB_PRIMARY_POD DB_PRIMARY_HOST DB_PORT DB_DATA_DIR
#        DB_CONFIG_DIR DB_SOCKET_DIR DB_NAME DB_USER DB_PASSWORD
#        DB_SUPERUSER_PASSWORD DB_REPLICATION_USER DB_REPLICATION_PASSWORD
# Optional: DB_PRIMARY_PORT (default DB_PORT), DB_WAIT_SECONDS (default 300).
# Passwords never appear in arguments or logs: they go through a passfile or
# psql's stdin (printf is a shell builtin).
set -eu
: "${DB_POD_NAME:?}" "${DB_PRIMARY_POD:?}" "${DB_PRIMARY_HOST:?}" "${DB_PORT:?}" "${DB_DATA_DIR:?}"
: "${DB_CONFIG_DIR:?}" "${DB_SOCKET_DIR:?}" "${DB_NAME:?}" "${DB_USER:?}" "${DB_PASSWORD:?}"
: "${DB_SUPERUSER_PASSWORD:?}" "${DB_REPLICATION_USER:?}" "${DB_REPLICATION_PASSWORD:?}"
PGDATA="$DB_DATA_DIR/pgdata"
export PGDATA
PRIMARY_PORT="${DB_PRIMARY_PORT:-$DB_PORT}"
WAIT_SECONDS="${DB_WAIT_SECONDS:-300}"
# Written once the primary's roles and database are applied; the probe needs it.
CONFIGURED="$DB_SOCKET_DIR/primary-configured"
PASSFILE="$DB_SOCKET_DIR/.pgpass"

# shellcheck source=common.sh
. "$DB_CONFIG_DIR/common.sh"

wait_for() {
  tries=0
  until pg_isready -q -h "$1" -p "$2" -U "$3" -d postgres; do
    tries=$((tries + 1))
    [ "$tries" -lt "$WAIT_SECONDS" ] || { log "gave up waiting for $1:$2"; exit 1; }
    sleep 1
  done
}

# Runs the server in the background; SIGTERM (how Kubernetes stops a pod)
# becomes a fast shutdown, which does not wait for clients to disconnect.
start_server() {
  postgres -D "$PGDATA" -c config_file="$DB_CONFIG_DIR/postgresql.conf" \
    -c hba_file="$DB_CONFIG_DIR/pg_hba.conf" -c port="$DB_PORT" \
    -c unix_socket_directories="$DB_SOCKET_DIR" "$@" &
  pid=$!
  trap 'kill -INT "$pid" 2>/dev/null || true' TERM INT
}

init_primary() {
  log "initialising a new primary in $PGDATA"
  pwfile="$DB_SOCKET_DIR/.pw.$$"
  (umask 077 && printf '%s\n' "$DB_SUPERUSER_PASSWORD" > "$pwfile")
  initdb -D "$PGDATA" --username=postgres --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 >&2
  rm -f "$pwfile"
}

# Idempotent: runs on every primary start so password or role changes take effect.
configure_primary() {
  {
    printf '\\set su_pw %s\n\\set app_pw %s\n\\set repl_pw %s\n' \
      "$DB_SUPERUSER_PASSWORD" "$DB_PASSWORD" "$DB_REPLICATION_PASSWORD"
    printf '\\set app_user %s\n\\set repl_user %s\n\\set db %s\n' "$DB_USER" "$DB_REPLICATION_USER" "$DB_NAME"
    cat <<'SQL'
ALTER ROLE postgres PASSWORD :'su_pw';
SELECT format('CREATE ROLE %I LOGIN', :'app_user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
ALTER ROLE :"app_user" LOGIN NOREPLICATION PASSWORD :'app_pw';
SELECT format('CREATE ROLE %I LOGIN REPLICATION', :'repl_user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'repl_user') \gexec
ALTER ROLE :"repl_user" LOGIN REPLICATION PASSWORD :'repl_pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'app_user') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"app_user";
SQL
  } | psql -X -v ON_ERROR_STOP=1 -q -h "$DB_SOCKET_DIR" -p "$DB_PORT" -U postgres -d postgres >&2
}

run_primary() {
  [ -s "$PGDATA/PG_VERSION" ] || init_primary
  # A former replica (or a restored copy) starts as the primary.
  rm -f "$PGDATA/standby.signal" "$PGDATA/recovery.signal"
  start_server
  wait_for "$DB_SOCKET_DIR" "$DB_PORT" postgres
  # Wait until promotion ends if the data was a standby's.
  tries=0
  until [ "$(psql -X -tA -h "$DB_SOCKET_DIR" -p "$DB_PORT" -U postgres -d postgres -c 'SELECT pg_is_in_recovery()')" = "f" ]; do
    tries=$((tries + 1))
    [ "$tries" -lt "$WAIT_SECONDS" ] || { log "the server stays in recovery"; exit 1; }
    sleep 1
  done
  configure_primary
  : > "$CONFIGURED"
  log "primary ready on port $DB_PORT"
  wait_server
}

# The replication password, kept in a passfile so it shows in no process list.
write_passfile() {
  (umask 077 && printf '*:*:*:%s:%s\n' "$DB_REPLICATION_USER" "$DB_REPLICATION_PASSWORD" > "$PASSFILE")
}

bootstrap_replica() {
  log "bootstrapping a replica from $DB_PRIMARY_HOST"
  wait_for "$DB_PRIMARY_HOST" "$PRIMARY_PORT" "$DB_REPLICATION_USER"
  # Copy into a new folder first: an interrupted copy is never taken for data.
  tries=0
  until rm -rf "$PGDATA.new" && PGPASSFILE="$PASSFILE" pg_basebackup -h "$DB_PRIMARY_HOST" -p "$PRIMARY_PORT" \
    -U "$DB_REPLICATION_USER" -D "$PGDATA.new" -X stream --checkpoint=fast -w >&2; do
    # The primary may not have applied the replication role yet.
    tries=$((tries + 1))
    [ "$tries" -lt "$WAIT_SECONDS" ] || { log "gave up copying from the primary"; exit 1; }
    sleep 1
  done
  chmod 700 "$PGDATA.new"
  rm -rf "$PGDATA"
  mv "$PGDATA.new" "$PGDATA"
}

run_replica() {
  write_passfile
  [ -s "$PGDATA/PG_VERSION" ] || bootstrap_replica
  conninfo="host=$DB_PRIMARY_HOST port=$PRIMARY_PORT user=$DB_REPLICATION_USER passfile=$PASSFILE application_name=$DB_POD_NAME"
  touch "$PGDATA/standby.signal"
  start_server -c primary_conninfo="$conninfo"
  log "replica following $DB_PRIMARY_HOST"
  wait_server
}

mkdir -p "$DB_DATA_DIR" "$DB_SOCKET_DIR"
# The kubelet gives the volume the pod's fsGroup at every mount (group rwx,
# recursively); PostgreSQL refuses a data folder open to its group for writing.
[ ! -d "$PGDATA" ] || chmod 0700 "$PGDATA"
rm -f "$CONFIGURED"
if [ "$DB_POD_NAME" = "$DB_PRIMARY_POD" ]; then run_primary; else run_replica; fi
