#!/bin/sh
# Starts one PostgreSQL pod of a WebCluster: the primary (initialised on first
# start, roles and database re-applied on every start) or a hot standby
# (bootstrapped from the primary with pg_basebackup when its data is empty).
# Needs: DB_POD_NAME DB_PRIMARY_POD DB_PRIMARY_HOST DB_PORT DB_DATA_DIR
#        DB_CONFIG_DIR DB_SOCKET_DIR DB_NAME DB_USER DB_PASSWORD
#        DB_SUPERUSER_PASSWORD DB_REPLICATION_USER DB_REPLICATION_PASSWORD
# Optional: DB_PRIMARY_PORT (default DB_PORT), DB_WAIT_SECONDS (default 300),
#           DB_HEAL_AFTER_SECONDS (default 60), DB_EXTRA_DATABASES with
#           DB_EXTRA_PASSWORD_<name> for each.
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
# How long a replica may fail to stream from a primary that answers before it
# copies the primary again.
HEAL_AFTER="${DB_HEAL_AFTER_SECONDS:-60}"
# Written once the primary's roles and database are applied; the probe needs it.
CONFIGURED="$DB_SOCKET_DIR/primary-configured"
PASSFILE="$DB_SOCKET_DIR/.pgpass"
# The replica's slot on the primary: it keeps the WAL the replica still needs
# (up to max_slot_wal_keep_size).
SLOT=$(printf '%s' "$DB_POD_NAME" | tr -c 'a-z0-9' '_')
stopping=

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
  trap 'stopping=1; kill -INT "$pid" 2>/dev/null || true' TERM INT
}

local_value() {
  psql -X -tA -h "$DB_SOCKET_DIR" -p "$DB_PORT" -U postgres -d postgres -c "$1"
}

# The replication password, kept in a passfile so it shows in no process list.
write_passfile() {
  (umask 077 && printf '*:*:*:%s:%s\n' "$DB_REPLICATION_USER" "$DB_REPLICATION_PASSWORD" >"$PASSFILE")
}

# A query on another server as the replication user (bounded: 3 s to connect).
# $1 host, $2 port, $3 database ("replication=true" for a replication command).
remote() {
  PGPASSFILE="$PASSFILE" PGCONNECT_TIMEOUT=3 psql -X -tA -w -v ON_ERROR_STOP=1 \
    "host=$1 port=$2 user=$DB_REPLICATION_USER $3" -c "$4"
}

# The system identifier of a server's data, through a replication connection
# (a standby answers too); fails when the server does not answer.
system_identifier() {
  out=$(remote "$1" "$2" "dbname=replication replication=true" IDENTIFY_SYSTEM 2>/dev/null) || return 1
  printf '%s\n' "${out%%|*}"
}

# Used by guard_empty_primary: the WAL position a replica has received, as a
# number, and its system identifier. A replica with empty data does not listen yet.
peer_identity() {
  out=$(remote "$1" "$2" "dbname=replication replication=true" IDENTIFY_SYSTEM 2>/dev/null) || return 1
  lsn=$(printf '%s\n' "$out" | cut -d '|' -f 3)
  echo "$(((0x${lsn%/*} << 32) + 0x${lsn#*/})) system identifier ${out%%|*}, WAL position $lsn"
}

# Used by guard_empty_primary: a copy of a replica becomes the primary's data.
restore_from() {
  rm -rf "$PGDATA.new"
  PGPASSFILE="$PASSFILE" pg_basebackup -h "$1" -p "$2" -U "$DB_REPLICATION_USER" -D "$PGDATA.new" -X stream -w >&2
  chmod 700 "$PGDATA.new"
  rm -rf "$PGDATA.new/standby.signal" "$PGDATA"
  mv "$PGDATA.new" "$PGDATA"
  rm -f "$DB_DATA_DIR/webcluster-restore"
}

init_primary() {
  guard_empty_primary
  [ ! -s "$PGDATA/PG_VERSION" ] || return 0
  log "initialising a new primary in $PGDATA"
  pwfile="$DB_SOCKET_DIR/.pw.$$"
  (umask 077 && printf '%s\n' "$DB_SUPERUSER_PASSWORD" >"$pwfile")
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
  configure_extra_databases
}

# The extra databases (DB_EXTRA_DATABASES: "name:user" words), each owned by
# its own user; only that user (and the superuser) may connect to it.
configure_extra_databases() {
  for pair in ${DB_EXTRA_DATABASES:-}; do
    # Names are identifiers (the CRD checks them): safe in a variable's name.
    eval "password=\${DB_EXTRA_PASSWORD_${pair%%:*}:?}"
    {
      printf '\\set pw %s\n\\set u %s\n\\set db %s\n' "$password" "${pair#*:}" "${pair%%:*}"
      cat <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'u') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'u') \gexec
ALTER ROLE :"u" LOGIN NOREPLICATION PASSWORD :'pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'u') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"u";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
    } | psql -X -v ON_ERROR_STOP=1 -q -h "$DB_SOCKET_DIR" -p "$DB_PORT" -U postgres -d postgres >&2
  done
}

run_primary() {
  write_passfile
  [ -s "$PGDATA/PG_VERSION" ] || init_primary
  # A former replica (or a restored copy) starts as the primary.
  rm -f "$PGDATA/standby.signal" "$PGDATA/recovery.signal"
  start_server
  wait_for "$DB_SOCKET_DIR" "$DB_PORT" postgres
  # Wait until promotion ends if the data was a standby's.
  tries=0
  until [ "$(local_value 'SELECT pg_is_in_recovery()')" = "f" ]; do
    tries=$((tries + 1))
    [ "$tries" -lt "$WAIT_SECONDS" ] || { log "the server stays in recovery"; exit 1; }
    sleep 1
  done
  configure_primary
  rm -f "$DB_DATA_DIR/webcluster-initialise"
  : >"$CONFIGURED"
  log "primary ready on port $DB_PORT (system identifier $(local_value 'SELECT system_identifier FROM pg_control_system()'))"
  wait_server
}

primary() { remote "$DB_PRIMARY_HOST" "$PRIMARY_PORT" "dbname=postgres" "$1"; }

# The state of this replica's slot on the primary: "lost" once the primary
# removed WAL the slot still needed; created (reserving WAL from now) when missing.
slot_state() {
  primary "SELECT CASE WHEN EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '$SLOT')
    THEN (SELECT wal_status FROM pg_replication_slots WHERE slot_name = '$SLOT')
    ELSE (SELECT 'created' FROM pg_create_physical_replication_slot('$SLOT', true)) END"
}

# Copies the primary into a new folder, then replaces the data with it: an
# interrupted copy is never taken for data, and the old data stays until the
# copy is whole. The slot is made anew by the copy, so it keeps WAL from its start.
clone_primary() {
  wait_for "$DB_PRIMARY_HOST" "$PRIMARY_PORT" "$DB_REPLICATION_USER"
  tries=0
  until rm -rf "$PGDATA.new" \
    && primary "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND NOT active" >/dev/null \
    && PGPASSFILE="$PASSFILE" pg_basebackup -h "$DB_PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$DB_REPLICATION_USER" \
      -D "$PGDATA.new" -X stream -C -S "$SLOT" --checkpoint=fast -w >&2; do
    # The primary may not have applied the replication role yet.
    tries=$((tries + 1))
    [ "$tries" -lt "$WAIT_SECONDS" ] || { log "gave up copying from the primary"; exit 1; }
    pause 1
    [ -z "$stopping" ] || exit 0
  done
  chmod 700 "$PGDATA.new"
  rm -rf "$PGDATA"
  mv "$PGDATA.new" "$PGDATA"
}

# A replica whose data is not the primary's (another system identifier) never
# follows it: it starts without a primary, so it serves no reads (the probe
# fails) and its data stays for recovery.
follows_primary() {
  mine=$(pg_controldata "$PGDATA" | sed -n 's/^Database system identifier: *//p')
  theirs=$(system_identifier "$DB_PRIMARY_HOST" "$PRIMARY_PORT") || return 0
  [ "$mine" != "$theirs" ] || return 0
  log "REFUSING to follow the primary: its data (system identifier $theirs) is not this replica's ($mine); this replica keeps its data and stays not ready. See docs/database.md (Recovering an empty primary)"
  return 1
}

# Watches the stream while the server runs; returns 0 when the replica must
# be copied again: its slot is lost, or it has not streamed for HEAL_AFTER
# seconds from a primary that answers with the same data.
needs_clone() {
  stalled=0
  while [ -z "$stopping" ] && kill -0 "$pid" 2>/dev/null; do
    pause 5
    [ -z "$stopping" ] || return 1
    streaming=$(local_value "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'" 2>/dev/null) || continue
    if [ "$streaming" = 1 ] || ! follows_primary 2>/dev/null || ! state=$(slot_state 2>/dev/null); then
      stalled=0
      continue
    fi
    if [ "$state" = lost ]; then
      log "re-cloning from the primary: it removed WAL this replica still needed (replication slot $SLOT lost)"
      return 0
    fi
    stalled=$((stalled + 5))
    if [ "$stalled" -ge "$HEAL_AFTER" ]; then
      log "re-cloning from the primary: not streaming for ${stalled}s although the primary answers (the WAL this replica needs is gone)"
      return 0
    fi
  done
  return 1
}

# The slot is named in postgresql.auto.conf, not on the command line, so
# ALTER SYSTEM can still change it (the real-node tests stop a stream that way).
use_slot() {
  conf="$PGDATA/postgresql.auto.conf"
  { grep -v '^primary_slot_name' "$conf" 2>/dev/null || true; echo "primary_slot_name = '$SLOT'"; } >"$conf.new"
  mv "$conf.new" "$conf"
}

run_replica() {
  write_passfile
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    log "bootstrapping a replica from $DB_PRIMARY_HOST"
    clone_primary
  elif [ "$(slot_state 2>/dev/null || true)" = lost ] && follows_primary; then
    log "re-cloning from the primary: it removed WAL this replica still needed (replication slot $SLOT lost)"
    clone_primary
  fi
  conninfo="host=$DB_PRIMARY_HOST port=$PRIMARY_PORT user=$DB_REPLICATION_USER passfile=$PASSFILE application_name=$DB_POD_NAME"
  touch "$PGDATA/standby.signal"
  while :; do
    if ! follows_primary; then
      start_server
      wait_server
    fi
    use_slot
    start_server -c primary_conninfo="$conninfo"
    log "replica following $DB_PRIMARY_HOST"
    needs_clone || wait_server
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true
    clone_primary
    touch "$PGDATA/standby.signal"
  done
}

mkdir -p "$DB_DATA_DIR" "$DB_SOCKET_DIR"
# The kubelet gives the volume the pod's fsGroup at every mount (group rwx,
# recursively); PostgreSQL refuses a data folder open to its group for writing.
[ ! -d "$PGDATA" ] || chmod 0700 "$PGDATA"
# The probe's record of the primary's positions: a replica is ready only once
# it has caught up since this start.
rm -f "$CONFIGURED" "$DB_SOCKET_DIR/primary-positions"
if [ "$DB_POD_NAME" = "$DB_PRIMARY_POD" ]; then run_primary; else run_replica; fi
