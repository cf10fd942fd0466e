#!/bin/sh
# Starts one PostgreSQL pod of a WebCluster: the primary (initialised on first
# start, roles and database re-applied on every start) or a hot standby
# (bootstrapped from the primary with pg_basebackup when its data is empty).
# Needs: DB_POD_NAME DB_PRIMARY_POD DB_PRIMARY_HOST DB_PORT DB_DATA_DIR
#        DB_CONFIG_DIR DB_SOCKET_DIR DB_NAME DB_USER DB_PASSWORD
#        DB_SUPERUSER_PASSWORD DB_REPLICATION_USER DB_REPLICATION_PASSWORD
set -eu
: "${DB_POD_NAME:?}" "${DB_PRIMARY_POD:?}" "${DB_PRIMARY_HOST:?}" "${DB_PORT:?}" "${DB_DATA_DIR:?}"
: "${DB_CONFIG_DIR:?}" "${DB_SOCKET_DIR:?}" "${DB_NAME:?}" "${DB_USER:?}" "${DB_PASSWORD:?}"
: "${DB_SUPERUSER_PASSWORD:?}" "${DB_REPLICATION_USER:?}" "${DB_REPLICATION_PASSWORD:?}"
PGDATA="$DB_DATA_DIR/pgdata"
export PGDATA

log() { echo "webcluster-db: $*" >&2; }

wait_for() {
  tries=0
  until pg_isready -q -h "$1" -p "$2"; do
    tries=$((tries + 1))
    [ "$tries" -lt "${DB_WAIT_SECONDS:-300}" ] || { log "gave up waiting for $1:$2"; exit 1; }
    sleep 1
  done
}

start_server() {
  postgres -D "$PGDATA" -c config_file="$DB_CONFIG_DIR/postgresql.conf" \
    -c hba_file="$DB_CONFIG_DIR/pg_hba.conf" -c port="$DB_PORT" \
    -c unix_socket_directories="$DB_SOCKET_DIR" "$@"
}

init_primary() {
  log "initialising a new primary in $PGDATA"
  pwfile="$DB_SOCKET_DIR/.pw.$$"
  printf '%s\n' "$DB_SUPERUSER_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" --username=postgres --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 >&2
  rm -f "$pwfile"
}

# Idempotent: runs on every primary start so password or role changes take effect.
configure_primary() {
  psql -v ON_ERROR_STOP=1 -q -h "$DB_SOCKET_DIR" -p "$DB_PORT" -U postgres -d postgres \
    -v su_pw="$DB_SUPERUSER_PASSWORD" -v app_user="$DB_USER" -v app_pw="$DB_PASSWORD" \
    -v repl_user="$DB_REPLICATION_USER" -v repl_pw="$DB_REPLICATION_PASSWORD" -v db="$DB_NAME" <<'SQL'
ALTER ROLE postgres PASSWORD :'su_pw';
SELECT format('CREATE ROLE %I LOGIN', :'app_user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
ALTER ROLE :"app_user" LOGIN PASSWORD :'app_pw';
SELECT format('CREATE ROLE %I LOGIN REPLICATION', :'repl_user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'repl_user') \gexec
ALTER ROLE :"repl_user" LOGIN REPLICATION PASSWORD :'repl_pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'app_user') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"app_user";
SQL
}

run_primary() {
  [ -s "$PGDATA/PG_VERSION" ] || init_primary
  rm -f "$PGDATA/standby.signal"
  start_server &
  pid=$!
  trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
  wait_for "$DB_SOCKET_DIR" "$DB_PORT"
  configure_primary
  log "primary ready on port $DB_PORT"
  # The first wait returns when a trapped signal arrives; the second waits for the shutdown.
  wait "$pid" || true
  wait "$pid" 2>/dev/null || true
}

run_replica() {
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    log "bootstrapping a replica from $DB_PRIMARY_HOST"
    wait_for "$DB_PRIMARY_HOST" "${DB_PRIMARY_PORT:-$DB_PORT}"
    rm -rf "$PGDATA"
    PGPASSWORD="$DB_REPLICATION_PASSWORD" pg_basebackup -h "$DB_PRIMARY_HOST" \
      -p "${DB_PRIMARY_PORT:-$DB_PORT}" -U "$DB_REPLICATION_USER" -D "$PGDATA" -X stream -R >&2
    chmod 700 "$PGDATA"
  fi
  # The standby follows the primary with the current replication password,
  # kept in a passfile so it shows in no process list.
  passfile="$DB_SOCKET_DIR/.pgpass"
  (umask 077 && printf '*:*:*:%s:%s\n' "$DB_REPLICATION_USER" "$DB_REPLICATION_PASSWORD" > "$passfile")
  conninfo="host=$DB_PRIMARY_HOST port=${DB_PRIMARY_PORT:-$DB_PORT} user=$DB_REPLICATION_USER passfile=$passfile application_name=$DB_POD_NAME"
  touch "$PGDATA/standby.signal"
  exec postgres -D "$PGDATA" -c config_file="$DB_CONFIG_DIR/postgresql.conf" \
    -c hba_file="$DB_CONFIG_DIR/pg_hba.conf" -c port="$DB_PORT" \
    -c unix_socket_directories="$DB_SOCKET_DIR" -c primary_conninfo="$conninfo"
}

mkdir -p "$DB_DATA_DIR" "$DB_SOCKET_DIR"
if [ "$DB_POD_NAME" = "$DB_PRIMARY_POD" ]; then run_primary; else run_replica; fi
