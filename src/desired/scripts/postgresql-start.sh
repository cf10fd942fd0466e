#!/bin/sh
# The database agent of one PostgreSQL pod of a WebCluster.
#
# `start.sh` (the container's command) starts the pod in the role the operator
# gave it (common.sh, start_role): the primary (initialised on first start,
# roles and database re-applied on every start) or a hot standby (copied from
# the primary with pg_basebackup when its data is empty; a former primary's
# data is first rewound with pg_rewind, so it rejoins without a full copy).
#
# The operator runs the other commands in the pod (kubectl exec):
#   start.sh position          this server's role, WAL position and timeline
#   start.sh promote           ends recovery: this replica becomes the primary
#   start.sh detach            nothing (MariaDB's replicas stop receiving)
#   start.sh follow HOST PORT  this replica streams from the primary at HOST:PORT
#   start.sh fence [planned]   a primary that lost its role stops (planned: once
#                              the replicas have all its WAL); it restarts as a
#                              replica (DB_ROLE) and rejoins
#
# Needs: DB_POD_NAME DB_PRIMARY_POD DB_PRIMARY_HOST DB_PORT DB_DATA_DIR
#        DB_CONFIG_DIR DB_SOCKET_DIR DB_NAME DB_USER DB_PASSWORD
#        DB_SUPERUSER_PASSWORD DB_REPLICATION_USER DB_REPLICATION_PASSWORD
# Optional: DB_ROLE, DB_PRIMARY_PORT (default DB_PORT), DB_WAIT_SECONDS
#           (default 300), DB_HEAL_AFTER_SECONDS (default 60),
#           DB_SYNCHRONOUS_REPLICAS (default 0), DB_EXTRA_DATABASES with
#           DB_EXTRA_PASSWORD_<name> for each.
# Passwords never appear in arguments or logs: they go through a passfile or
# psql's stdin (printf is a shell builtin).
set -eu
: "${DB_POD_NAME:?}" "${DB_PRIMARY_POD:?}" "${DB_PRIMARY_HOST:?}" "${DB_PORT:?}" "${DB_DATA_DIR:?}"
: "${DB_CONFIG_DIR:?}" "${DB_SOCKET_DIR:?}" "${DB_NAME:?}" "${DB_USER:?}" "${DB_PASSWORD:?}"
: "${DB_SUPERUSER_PASSWORD:?}" "${DB_REPLICATION_USER:?}" "${DB_REPLICATION_PASSWORD:?}"
PGDATA="$DB_DATA_DIR/pgdata"
export PGDATA
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
    pause_or_stop 1
  done
}

# Runs the server in the background; SIGTERM (how Kubernetes stops a pod)
# becomes a fast shutdown, which does not wait for clients to disconnect.
start_server() {
  # Stopped (fenced) before the server started: it must not start.
  [ -z "$stopping" ] || exit 0
  postgres -D "$PGDATA" -c config_file="$DB_CONFIG_DIR/postgresql.conf" \
    -c hba_file="$DB_CONFIG_DIR/pg_hba.conf" -c port="$DB_PORT" \
    -c unix_socket_directories="$DB_SOCKET_DIR" "$@" &
  pid=$!
  trap 'stopping=1; kill -INT "$pid" 2>/dev/null || true' TERM INT
}

local_value() {
  psql -X -tA -h "$DB_SOCKET_DIR" -p "$DB_PORT" -U postgres -d postgres -c "$1"
}

# The replication and superuser passwords (pg_rewind connects as the
# superuser), kept in a passfile so they show in no process list.
write_passfile() {
  (umask 077 && printf '*:*:*:%s:%s\n*:*:*:postgres:%s\n' "$DB_REPLICATION_USER" "$DB_REPLICATION_PASSWORD" \
    "$DB_SUPERUSER_PASSWORD" >"$PASSFILE")
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
  echo "$(lsn_number "$lsn") system identifier ${out%%|*}, WAL position $lsn"
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
    pause_or_stop 1
  done
  serve_primary
  wait_server
}

# Roles and database applied, the probe told, the data's identity logged
# (the operator reads it from the log of the primary's first start).
serve_primary() {
  # Takes writes again after a switchover's quiesce that did not go on.
  PGOPTIONS='-c default_transaction_read_only=off' local_value 'ALTER SYSTEM RESET default_transaction_read_only' >/dev/null
  synchronous_replicas 0
  configure_primary
  synchronous_replicas "${DB_SYNCHRONOUS_REPLICAS:-0}"
  rm -f "$DB_DATA_DIR/webcluster-initialise"
  : >"$CONFIGURED"
  log "primary ready on port $DB_PORT (system identifier $(local_value 'SELECT system_identifier FROM pg_control_system()'))"
}

# From $1 replicas on (0: asynchronous), a commit waits until that many have
# it. Off while the primary applies its roles, which must not wait: no
# replica follows a primary before it is ready, and a copied or promoted
# server brings the setting along in postgresql.auto.conf.
synchronous_replicas() {
  if [ "$1" -gt 0 ]; then
    local_value "ALTER SYSTEM SET synchronous_standby_names = 'ANY $1 (*)'" >/dev/null
  else
    local_value "ALTER SYSTEM RESET synchronous_standby_names" >/dev/null
  fi
  local_value "SELECT pg_reload_conf()" >/dev/null
}

primary() { remote "$PRIMARY_HOST" "$PRIMARY_PORT" "dbname=postgres" "$1"; }

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
  wait_for "$PRIMARY_HOST" "$PRIMARY_PORT" "$DB_REPLICATION_USER"
  tries=0
  until rm -rf "$PGDATA.new" \
    && primary "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND NOT active" >/dev/null \
    && PGPASSFILE="$PASSFILE" pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$DB_REPLICATION_USER" \
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
  theirs=$(system_identifier "$PRIMARY_HOST" "$PRIMARY_PORT") || return 0
  [ "$mine" != "$theirs" ] || return 0
  log "REFUSING to follow the primary: its data (system identifier $theirs) is not this replica's ($mine); this replica keeps its data and stays not ready. See docs/database.md (Recovering an empty primary)"
  return 1
}

# A former primary's data (no standby.signal) may hold WAL that the primary
# now elected never received: pg_rewind takes it back to where their
# histories parted (nothing to do when they did not part), so it can follow.
# When rewinding cannot work (the WAL it needs is gone), the primary is copied
# afresh. Either way the elected primary's data wins.
rejoin() {
  follows_primary || return 0
  wait_for "$PRIMARY_HOST" "$PRIMARY_PORT" postgres
  log "rejoining as a replica of $PRIMARY_HOST: rewinding the data of this former primary"
  if PGPASSFILE="$PASSFILE" pg_rewind --target-pgdata="$PGDATA" --config-file="$DB_CONFIG_DIR/postgresql.conf" \
    --source-server="host=$PRIMARY_HOST port=$PRIMARY_PORT user=postgres dbname=postgres" >&2; then
    log "rewound: following $PRIMARY_HOST from where the histories parted"
  else
    log "pg_rewind could not rewind this former primary's data; copying the primary afresh"
    clone_primary
  fi
  # Its slot, so the primary keeps the WAL it replays from (made later when
  # the primary does not answer now).
  slot_state >/dev/null 2>&1 || true
}

# Watches the stream while the server runs; returns 0 when the replica must
# be copied again: its slot is lost, or it has not streamed for HEAL_AFTER
# seconds from a primary that answers with the same data. Returns 1 once the
# server stops or this replica is promoted (it then serves as the primary).
needs_clone() {
  stalled=0
  while [ -z "$stopping" ] && kill -0 "$pid" 2>/dev/null; do
    pause 5
    [ -z "$stopping" ] && [ "$(current_role)" = replica ] || return 1
    load_primary
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

conninfo() {
  echo "host=$PRIMARY_HOST port=$PRIMARY_PORT user=$DB_REPLICATION_USER passfile=$PASSFILE application_name=$DB_POD_NAME"
}

# The primary and the slot are set in postgresql.auto.conf, not on the
# command line, so `follow` can change them with ALTER SYSTEM and a reload
# (and the real-node tests can stop a stream that way).
use_primary() {
  conf="$PGDATA/postgresql.auto.conf"
  {
    grep -v -e '^primary_slot_name' -e '^primary_conninfo' "$conf" 2>/dev/null || true
    echo "primary_slot_name = '$SLOT'"
    echo "primary_conninfo = '$(conninfo)'"
  } >"$conf.new"
  mv "$conf.new" "$conf"
}

run_replica() {
  write_passfile
  record_primary "$DB_PRIMARY_HOST" "${DB_PRIMARY_PORT:-$DB_PORT}"
  load_primary
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    log "bootstrapping a replica from $PRIMARY_HOST"
    clone_primary
  elif [ ! -e "$PGDATA/standby.signal" ]; then
    rejoin
  elif [ "$(slot_state 2>/dev/null || true)" = lost ] && follows_primary; then
    log "re-cloning from the primary: it removed WAL this replica still needed (replication slot $SLOT lost)"
    clone_primary
  fi
  touch "$PGDATA/standby.signal"
  while :; do
    if ! follows_primary; then
      start_server
      wait_server
    fi
    use_primary
    start_server
    log "replica following $PRIMARY_HOST"
    needs_clone || wait_server
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true
    clone_primary
    touch "$PGDATA/standby.signal"
  done
}

# ---------------------------------------------------------------- commands

# "role=… position=… lsn=… timeline=…": the position is the WAL received (a
# replica) or written (the primary), as a number the operator compares.
position() {
  if [ "$(local_value 'SELECT pg_is_in_recovery()')" = t ]; then
    lsn=$(local_value "SELECT COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())")
    timeline=$(local_value "SELECT COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))")
  else
    lsn=$(local_value "SELECT pg_current_wal_lsn()")
    timeline=$((0x$(local_value "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")))
  fi
  echo "role=$(current_role) position=$(lsn_number "$lsn") lsn=$lsn timeline=$timeline"
}

lsn_number() { echo "$(((0x${1%/*} << 32) + 0x${1#*/}))"; }

# Ends recovery once everything received is replayed; the roles and database
# are applied as at a primary's start. A promotion cut short can be run again.
promote() {
  case "$(current_role)" in
    replica | primary) ;;
    *) log "promote: this pod is $(current_role), not a replica"; exit 1 ;;
  esac
  set_role primary
  if [ "$(local_value 'SELECT pg_is_in_recovery()')" = t ]; then
    [ "$(local_value 'SELECT pg_promote(true, 60)')" = t ] || { log "promote: recovery did not end within 60 s"; exit 1; }
  fi
  serve_primary
}

# Nothing to do: the walreceiver lets go of a failed primary as soon as
# `follow` restarts it (MariaDB's replicas wait for theirs, so they detach
# while another is promoted). The operator runs the same commands on both.
detach() {
  [ "$(current_role)" = replica ] || { log "detach: this pod is $(current_role), not a replica"; exit 1; }
}

# Streams from the primary at $1:$2 from now on: its slot there is made first
# (so the primary keeps the WAL this replica needs), then the walreceiver
# restarts with the new primary, following its timeline.
follow() {
  [ "$(current_role)" = replica ] || { log "follow: this pod is $(current_role), not a replica"; exit 1; }
  record_primary "$1" "$2"
  load_primary
  slot_state >/dev/null
  local_value "ALTER SYSTEM SET primary_slot_name = '$SLOT'" >/dev/null
  local_value "ALTER SYSTEM SET primary_conninfo = '$(conninfo)'" >/dev/null
  local_value "SELECT pg_reload_conf()" >/dev/null
  log "replica following $PRIMARY_HOST"
}

# A planned switchover's first step: the primary stops taking writes while
# it runs (new transactions are read-only, open sessions are ended), so the
# target can receive everything it wrote. `promote` takes writes again.
quiesce() {
  [ "$(current_role)" = primary ] || { log "quiesce: this pod is $(current_role), not the primary"; exit 1; }
  local_value 'ALTER SYSTEM SET default_transaction_read_only = on' >/dev/null
  local_value 'SELECT pg_reload_conf()' >/dev/null
  local_value "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" >/dev/null
  log "quiesced: read-only, client sessions ended"
}

# The server stops: at once for a failover (an immediate shutdown; the
# rejoin rewinds what the others never received), with a fast shutdown for a
# planned switchover, which cuts clients off and then waits until the
# replicas have every WAL record written, so it loses nothing.
fence() {
  set_role fenced
  fencing=$(date +%s)
  [ -e "$PGDATA/postmaster.pid" ] || { end_agent_soon; return 0; }
  if [ "${1:-}" = planned ]; then
    # Bounded: a replica that does not read must not hold it.
    pg_ctl stop -D "$PGDATA" -m fast -w -t 20 >&2 || pg_ctl stop -D "$PGDATA" -m immediate -w -t 60 >&2
  else
    pg_ctl stop -D "$PGDATA" -m immediate -w -t 60 >&2
  fi
  end_agent_soon
  log "fenced in $(($(date +%s) - fencing)) s: the server is stopped; it restarts in the role the operator gives it"
}

start() {
  mkdir -p "$DB_DATA_DIR" "$DB_SOCKET_DIR"
  # The kubelet gives the volume the pod's fsGroup at every mount (group rwx,
  # recursively); PostgreSQL refuses a data folder open to its group for writing.
  [ ! -d "$PGDATA" ] || chmod 0700 "$PGDATA"
  # The probe's record of the primary's positions: a replica is ready only once
  # it has caught up since this start.
  rm -f "$CONFIGURED" "$DB_SOCKET_DIR/primary-positions"
  agent_started
  role=$(start_role)
  set_role "$role"
  if [ "$role" = primary ]; then run_primary; else run_replica; fi
}

run_command "$@"
