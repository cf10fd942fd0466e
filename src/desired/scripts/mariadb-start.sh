#!/bin/sh
# The database agent of one MariaDB pod of a WebCluster.
#
# `start.sh` (the container's command) starts the pod in the role the operator
# gave it (common.sh, start_role): the primary (binary log with GTID; users
# and database re-applied on every start) or a read-only replica that follows
# it with MASTER_USE_GTID (seeded from a dump of the primary when its data is
# empty, so a replica added later catches up; seeded again when the primary
# no longer has the binary log it needs). A former primary rejoins from its
# own GTID position when that is in the primary's history, and is seeded
# again when it is not (it wrote what the primary never received).
#
# The operator runs the other commands in the pod (kubectl exec):
#   start.sh position          this server's role and GTID position
#   start.sh promote           applies what it received, then becomes the primary
#   start.sh detach            this replica stops receiving (beside a promotion)
#   start.sh follow HOST PORT  this replica replicates from the primary at HOST:PORT
#   start.sh fence [planned]   a primary that lost its role turns read-only and
#                              stops (planned: once every replica has its binary
#                              log); it restarts as a replica (DB_ROLE) and rejoins
#
# Needs: DB_POD_NAME DB_PRIMARY_POD DB_PRIMARY_HOST DB_PORT DB_DATA_DIR
#        DB_CONFIG_DIR DB_SOCKET_DIR DB_NAME DB_USER DB_PASSWORD
#        DB_SUPERUSER_PASSWORD DB_REPLICATION_USER DB_REPLICATION_PASSWORD
# Optional: DB_ROLE, DB_PRIMARY_PORT (default DB_PORT), DB_WAIT_SECONDS
#           (default 300), DB_SYNCHRONOUS_REPLICAS (default 0: 1 turns on
#           semi-synchronous replication), DB_EXTRA_DATABASES with
#           DB_EXTRA_PASSWORD_<name> for each.
set -eu
: "${DB_POD_NAME:?}" "${DB_PRIMARY_POD:?}" "${DB_PRIMARY_HOST:?}" "${DB_PORT:?}" "${DB_DATA_DIR:?}"
: "${DB_CONFIG_DIR:?}" "${DB_SOCKET_DIR:?}" "${DB_NAME:?}" "${DB_USER:?}" "${DB_PASSWORD:?}"
: "${DB_SUPERUSER_PASSWORD:?}" "${DB_REPLICATION_USER:?}" "${DB_REPLICATION_PASSWORD:?}"
DATADIR="$DB_DATA_DIR/mysql"
SOCKET="$DB_SOCKET_DIR/mariadb.sock"
# server_id must differ per pod: 1 + the StatefulSet ordinal.
ORDINAL="${DB_POD_NAME##*-}"
SERVER_ID=$((ORDINAL + 1))
# The cluster's GTID domain, drawn at random when a primary is initialised:
# the transactions of another initialisation never carry the same GTIDs, so a
# replica cannot take them for the next ones of its own history.
DOMAIN_FILE="$DATADIR/webcluster-gtid-domain"
# Present while the data is whole: seeded from the primary, or a primary's own.
WHOLE="$DATADIR/webcluster-seeded"
# Present once this data served as the primary: it rejoins from its own position.
FORMER_PRIMARY="$DATADIR/webcluster-primary"
# Present from initialising until the data is whole (a primary configured or
# restored, a replica's root secured): a start that finds it begins again, so
# an interrupted initialisation or restore is never served as data.
INITIALISING="$DB_DATA_DIR/webcluster-initialising"

WAIT_SECONDS="${DB_WAIT_SECONDS:-300}"
# Written once the primary's users and database are applied; the probe needs it.
CONFIGURED="$DB_SOCKET_DIR/primary-configured"
stopping=
restore_peer=

restore_domain=
# shellcheck source=common.sh
. "$DB_CONFIG_DIR/common.sh"

# Passwords go through MYSQL_PWD or stdin, never through arguments.
local_sql() { MYSQL_PWD="$DB_SUPERUSER_PASSWORD" mariadb --protocol=socket -S "$SOCKET" -uroot "$@"; }
fresh_sql() { MYSQL_PWD='' mariadb --protocol=socket -S "$SOCKET" -uroot "$@"; }
# $1 host, $2 port, then the client's arguments; 3 s to connect.
remote_sql() {
  host=$1 port=$2
  shift 2
  MYSQL_PWD="$DB_REPLICATION_PASSWORD" mariadb -h "$host" -P "$port" -u"$DB_REPLICATION_USER" --connect-timeout=3 "$@"
}
primary_value() { remote_sql "$PRIMARY_HOST" "$PRIMARY_PORT" -N -B -e "$1"; }

# Used by guard_empty_primary: a replica answers the replication user once it
# holds the primary's users (seeded), and prints the sequence number it has
# reached and its GTID position. Before, it refuses the user (error 1045): it
# answered and holds no data, so this prints nothing. Any other failure
# (refused, timed out: kube-router admits a new pod's address about a second
# after it starts) is a replica that did not answer, which may hold data.
peer_identity() {
  # The client's warnings (newer clients warn about TLS) stay out of the answer.
  if out=$(remote_sql "$1" "$2" -N -B -e 'SELECT @@gtid_slave_pos' 2>"$DB_SOCKET_DIR/peer.err"); then
    echo "$(printf '%s\n' "${out:-0-0-0}" | sed 's/,.*//; s/.*-//') GTID position ${out:-empty}"
    return 0
  fi
  grep -q "ERROR 1045" "$DB_SOCKET_DIR/peer.err"
}

# Used by guard_empty_primary: the primary is loaded with a copy of a replica
# once its server runs (restore_primary) and continues its GTID history. The
# copy's domain is the server's from its start: a replica reaching the
# restored primary before the copy ends must not see another domain.
restore_from() {
  restore_peer="$1 $2"
  restore_domain=$(remote_sql "$1" "$2" -N -B -e 'SELECT @@gtid_slave_pos' | sed 's/-.*//')
  [ -n "$restore_domain" ] || { log "replica $1 did not tell its GTID domain; trying again"; exit 1; }
}
restore_primary() {
  # shellcheck disable=SC2086 # host and port
  set -- $restore_peer
  position=$(remote_sql "$1" "$2" -N -B -e 'SELECT @@gtid_slave_pos')
  copy_databases "$1" "$2"
  local_sql -e "RESET MASTER; SET GLOBAL gtid_binlog_state = '$position';"
  rm -f "$DB_DATA_DIR/webcluster-restore"
}

# Waits until the server answers; on fresh data root has no password yet.
wait_local() {
  tries=0
  until { [ "$fresh" = true ] && fresh_sql -e 'SELECT 1' >/dev/null 2>&1; } || local_sql -e 'SELECT 1' >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { log "the server exited"; exit 1; }
    tries=$((tries + 1))
    [ "$tries" -lt "$WAIT_SECONDS" ] || { log "server did not start"; exit 1; }
    pause_or_stop 1
  done
}

# The primary named last (`follow` may name another meanwhile).
wait_primary() {
  tries=0
  until load_primary && primary_value 'SELECT 1' >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt "$WAIT_SECONDS" ] || { log "gave up waiting for the primary $PRIMARY_HOST"; exit 1; }
    pause_or_stop 1
  done
}

# Runs the server in the background; SIGTERM (how Kubernetes stops a pod)
# shuts it down cleanly.
start_server() {
  # Stopped (fenced) before the server started: it must not start.
  [ -z "$stopping" ] || exit 0
  mariadbd --defaults-file="$DB_CONFIG_DIR/my.cnf" --datadir="$DATADIR" --socket="$SOCKET" \
    --port="$DB_PORT" --server-id="$SERVER_ID" --pid-file="$DB_SOCKET_DIR/mariadb.pid" \
    --tmpdir="$DB_SOCKET_DIR" --gtid-domain-id="$(cat "$DOMAIN_FILE" 2>/dev/null || echo 0)" "$@" &
  pid=$!
  trap 'stopping=1; kill -TERM "$pid" 2>/dev/null || true' TERM INT
  wait_local
}

# Sets the root password on a fresh data directory (root starts without one)
# and drops the password-less root accounts for the host name.
# Not binary-logged: every pod sets its own.
secure_root() {
  fresh_sql <<SQL
SET sql_log_bin = 0;
DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost';
DELETE FROM mysql.proxies_priv WHERE User = 'root' AND Host <> 'localhost';
FLUSH LOCAL PRIVILEGES;
ALTER USER root@localhost IDENTIFIED BY '$DB_SUPERUSER_PASSWORD';
SQL
}

# The hash of a password (the statement is not binary-logged).
password_hash() { printf "SELECT PASSWORD('%s');\n" "$1" | local_sql -N -B; }

# Idempotent: runs on every primary start so password or user changes take
# effect. The users replicate with their password hashes: no clear password
# reaches the binary log, so none reaches a replica's relay or binary log.
configure_primary() {
  app_hash=$(password_hash "$DB_PASSWORD")
  repl_hash=$(password_hash "$DB_REPLICATION_PASSWORD")
  local_sql <<SQL
SET sql_log_bin = 0;
ALTER USER root@localhost IDENTIFIED BY '$DB_SUPERUSER_PASSWORD';
SET sql_log_bin = 1;
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
CREATE USER IF NOT EXISTS '$DB_USER'@'%' IDENTIFIED BY PASSWORD '$app_hash';
ALTER USER '$DB_USER'@'%' IDENTIFIED BY PASSWORD '$app_hash';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'%';
CREATE USER IF NOT EXISTS '$DB_REPLICATION_USER'@'%' IDENTIFIED BY PASSWORD '$repl_hash';
ALTER USER '$DB_REPLICATION_USER'@'%' IDENTIFIED BY PASSWORD '$repl_hash';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SLAVE MONITOR, BINLOG MONITOR, SELECT, RELOAD, SHOW VIEW, EVENT, TRIGGER, LOCK TABLES ON *.* TO '$DB_REPLICATION_USER'@'%';
SQL
  configure_extra_databases
}

# The extra databases (DB_EXTRA_DATABASES: "name:user" words), each granted to
# its own user only; users replicate with their hashes, as above.
configure_extra_databases() {
  for pair in ${DB_EXTRA_DATABASES:-}; do
    name=${pair%%:*} user=${pair#*:}
    # Names are identifiers (the CRD checks them): safe in a variable's name.
    eval "password=\${DB_EXTRA_PASSWORD_$name:?}"
    hash=$(password_hash "$password")
    # In a GRANT, _ matches any character: escaped, it names this database only.
    grant=$(printf '%s' "$name" | sed 's/_/\\_/g')
    local_sql <<SQL
CREATE DATABASE IF NOT EXISTS \`$name\`;
CREATE USER IF NOT EXISTS '$user'@'%' IDENTIFIED BY PASSWORD '$hash';
ALTER USER '$user'@'%' IDENTIFIED BY PASSWORD '$hash';
GRANT ALL PRIVILEGES ON \`$grant\`.* TO '$user'@'%';
SQL
  done
}

# A replica copies the primary's data with its GTID position, then follows
# it. The copy is not binary-logged here, so this replica's binary log holds
# only the primary's transactions (gtid_strict_mode) and the dump's
# gtid_slave_pos does not conflict with it. Seeding again first drops the
# databases of the previous copy.
seed_replica() {
  log "seeding from a dump of the primary $PRIMARY_HOST"
  rm -f "$WHOLE" "$FORMER_PRIMARY"
  local_sql -e 'STOP SLAVE' 2>/dev/null || true
  local_sql -e 'RESET SLAVE ALL; RESET MASTER;'
  copy_databases "$PRIMARY_HOST" "$PRIMARY_PORT" --gtid --master-data=1
  : >"$WHOLE"
}

# Replaces this server's databases with a dump of server $1:$2 (further
# arguments: for the dump), not binary-logged.
copy_databases() {
  host=$1 port=$2
  shift 2
  seed="$DB_SOCKET_DIR/seed.sql"
  MYSQL_PWD="$DB_REPLICATION_PASSWORD" mariadb-dump -h "$host" -P "$port" -u"$DB_REPLICATION_USER" \
    --all-databases --single-transaction --routines --events --triggers "$@" >"$seed.part"
  mv "$seed.part" "$seed"
  local_sql -N -B -e "SELECT schema_name FROM information_schema.schemata
    WHERE schema_name NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')" |
    while IFS= read -r db; do local_sql -e "SET sql_log_bin = 0; DROP DATABASE \`$db\`"; done
  { echo 'SET sql_log_bin = 0;'; cat "$seed"; } | local_sql
  rm -f "$seed"
  # The dump replaced the users with the primary's, whose root password is the same.
  local_sql -e 'FLUSH LOCAL PRIVILEGES'
}

# Why this replica's GTID position is not in the primary's history (nothing
# when it is): each of its domains must be one the primary has written, up to
# at least the same sequence number. Fails when the primary does not answer.
foreign_position() {
  theirs=$(primary_value 'SELECT @@gtid_binlog_state') || return 1
  mine=$(local_sql -N -B -e 'SELECT @@gtid_slave_pos')
  printf '%s\n%s\n' "$mine" "$theirs" | awk -F, '
    { gsub(/ /, "") }
    NR == 1 { for (i = 1; i <= NF; i++) if ($i != "") own[++n] = $i; next }
    { for (i = 1; i <= NF; i++) if (split($i, g, "-") == 3 && (!(g[1] in top) || g[3] + 0 > top[g[1]])) top[g[1]] = g[3] + 0 }
    END {
      for (i = 1; i <= n; i++) {
        split(own[i], g, "-")
        if (!(g[1] in top)) { print "the primary never wrote GTID domain " g[1] " (this replica is at " own[i] ")"; exit }
        if (top[g[1]] < g[3] + 0) { print "this replica is at " own[i] ", ahead of the primary"; exit }
      }
    }'
}

refuse_primary() {
  log "REFUSING to follow the primary: $1; its data is another history than this replica's, which keeps its data and stays not ready. See docs/database.md (Recovering an empty primary)"
}

# Only the primary's domain is applied: a primary initialised anew while this
# replica runs (another domain) sends nothing it would apply.
follow_primary() {
  domain=$(primary_value 'SELECT @@gtid_domain_id')
  printf '%s\n' "$domain" >"$DOMAIN_FILE"
  local_sql -e 'STOP SLAVE' 2>/dev/null || true
  semi_sync=OFF
  [ "${DB_SYNCHRONOUS_REPLICAS:-0}" -eq 0 ] || semi_sync=ON
  # A failover's promotion and repoints stop replication, and STOP SLAVE
  # waits for a primary that is gone: a replica reading from (or connecting
  # to) a pod that vanished or is cut off notices after slave_net_timeout
  # (60 s by default; 3 s here, the primary sending a heartbeat every 1 s
  # when idle; 6 s made each of the two STOP SLAVEs of a failover take 4-7 s),
  # one reconnecting ends its wait between tries first (MASTER_CONNECT_RETRY,
  # 1 s), and a semi-synchronous one then connects to it to end its dump
  # thread (5 s by default; 1 s here).
  local_sql <<SQL
SET GLOBAL gtid_domain_id = $domain;
SET GLOBAL rpl_semi_sync_slave_enabled = $semi_sync;
SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = 1;
SET GLOBAL slave_net_timeout = 3;
CHANGE MASTER TO MASTER_HOST='$PRIMARY_HOST', MASTER_PORT=$PRIMARY_PORT,
  MASTER_USER='$DB_REPLICATION_USER', MASTER_PASSWORD='$DB_REPLICATION_PASSWORD',
  MASTER_USE_GTID=slave_pos, DO_DOMAIN_IDS=($domain), MASTER_CONNECT_RETRY=1,
  MASTER_HEARTBEAT_PERIOD=1;
START SLAVE;
SQL
  log "replica following $PRIMARY_HOST"
}

# While the server runs: a replica the primary refuses because it no longer
# has the binary log of the replica's position (error 1236) is seeded again
# when that position is in the primary's history, and held otherwise.
# Ends once the server stops or this replica is promoted (it then serves as
# the primary).
watch_replica() {
  while [ -z "$stopping" ] && kill -0 "$pid" 2>/dev/null; do
    pause 5
    [ -z "$stopping" ] && [ "$(current_role)" = replica ] || break
    load_primary
    status=$(local_sql -e 'SHOW SLAVE STATUS\G' 2>/dev/null) || continue
    theirs=$(primary_value 'SELECT @@gtid_domain_id' 2>/dev/null) || continue
    if [ "$theirs" != "$domain" ]; then
      why="the primary writes GTID domain $theirs, not $domain"
    elif [ "$(printf '%s\n' "$status" | sed -n 's/^ *Last_IO_Errno: //p')" = 1236 ]; then
      why=$(foreign_position) || continue
      if [ -z "$why" ]; then
        log "re-seeding: the primary no longer has what this replica needs ($(printf '%s\n' "$status" | sed -n 's/^ *Last_IO_Error: //p'))"
        seed_replica
        follow_primary
        continue
      fi
    else
      continue
    fi
    refuse_primary "$why"
    # Held until the pod restarts, which checks again.
    local_sql -e 'STOP SLAVE' || true
    break
  done
  wait_server
}

# Users and database applied, the probe told, the GTID domain logged (the
# operator reads it from the log of the primary's first start).
serve_primary() {
  # Takes writes again after a switchover's quiesce that did not go on.
  local_sql -e 'SET GLOBAL read_only = OFF'
  configure_primary
  # Semi-synchronous once the users are applied (a SET GLOBAL, gone at the
  # next start): no replica follows a primary before it is ready. AFTER_SYNC:
  # no client sees a commit before a replica has it. The timeout is 49 days:
  # with no replica, writes wait rather than turn asynchronous.
  if [ "${DB_SYNCHRONOUS_REPLICAS:-0}" -gt 0 ]; then
    local_sql -e "SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC;
      SET GLOBAL rpl_semi_sync_master_timeout = 4294967295; SET GLOBAL rpl_semi_sync_master_enabled = ON;"
  fi
  : >"$WHOLE"
  : >"$FORMER_PRIMARY"
  rm -f "$INITIALISING" "$DB_DATA_DIR/webcluster-initialise"
  : >"$CONFIGURED"
  log "primary ready on port $DB_PORT (GTID domain $(local_sql -N -B -e 'SELECT @@gtid_domain_id'))"
}

# A former primary's position is its binary log's: a replica of the primary
# now elected from there when that is in the primary's history. When it is
# ahead (it wrote what the primary never received), it is seeded again: the
# elected primary's data wins.
rejoin() {
  local_sql -e 'SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos'
  rm -f "$FORMER_PRIMARY"
  why=$(foreign_position) || return 0
  case "$why" in
    *"ahead of the primary"*)
      log "rejoining: this former primary wrote what the primary $PRIMARY_HOST never received ($why); those transactions are dropped"
      seed_replica
      ;;
    '') log "rejoining as a replica of $PRIMARY_HOST from GTID position $(local_sql -N -B -e 'SELECT @@gtid_slave_pos')" ;;
  esac
}

run_primary() {
  start_server --read-only=OFF
  [ "$fresh" = false ] || secure_root
  [ -z "$restore_peer" ] || restore_primary
  serve_primary
}

run_replica() {
  start_server --read-only=ON
  [ "$fresh" = false ] || secure_root
  rm -f "$INITIALISING"
  wait_primary
  [ ! -e "$FORMER_PRIMARY" ] || rejoin
  # A replica whose seeding was interrupted has no seed marker yet: seed again.
  if [ ! -e "$WHOLE" ]; then
    seed_replica
    follow_primary
  elif why=$(foreign_position) && [ -n "$why" ]; then
    refuse_primary "$why"
    wait_server
  else
    follow_primary
  fi
  watch_replica
}

start() {
  mkdir -p "$DB_DATA_DIR" "$DB_SOCKET_DIR"
  # The probe's record of the primary's positions: a replica is ready only once
  # it has caught up since this start.
  rm -f "$CONFIGURED" "$DB_SOCKET_DIR/primary-positions"
  agent_started
  role=$(start_role)
  set_role "$role"
  record_primary "$DB_PRIMARY_HOST" "${DB_PRIMARY_PORT:-$DB_PORT}"
  load_primary
  fresh=false
  if [ ! -d "$DATADIR/mysql" ] || [ -e "$INITIALISING" ]; then
    [ "$role" != primary ] || guard_empty_primary
    log "initialising $DATADIR"
    : >"$INITIALISING"
    rm -rf "$DATADIR"
    # Its own tmpdir: servers sharing /tmp (tests on one host) clash on temporary table names.
    mariadb-install-db --no-defaults --datadir="$DATADIR" --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve --skip-log-bin --tmpdir="$DB_SOCKET_DIR" >/dev/null
    fresh=true
    if [ -n "$restore_peer" ]; then
      printf '%s\n' "$restore_domain" >"$DOMAIN_FILE"
    elif [ "$role" = primary ]; then
      # 1 to 2^31: domain 0 is the one data from before this script keeps.
      echo $(($(od -An -N4 -tu4 /dev/urandom) % 2147483647 + 1)) >"$DOMAIN_FILE"
    fi
  fi
  if [ "$role" = primary ]; then run_primary; else run_replica; fi
  wait_server
}

# ---------------------------------------------------------------- commands

# "role=… position=… received=… written=… domain=…": the position is the
# highest sequence number in the cluster's domain that this server received
# (its IO thread) or wrote to its binary log, a number the operator compares.
position() {
  domain=$(local_sql -N -B -e 'SELECT @@gtid_domain_id')
  received=$(local_sql -e 'SHOW SLAVE STATUS\G' | sed -n 's/^ *Gtid_IO_Pos: //p')
  written=$(local_sql -N -B -e 'SELECT @@gtid_binlog_pos')
  echo "role=$(current_role) position=$(sequence "$domain" "$received,$written") received=${received:-none} written=${written:-none} domain=$domain"
}

# Applies every transaction received, then stops replicating and takes
# writes. A promotion cut short can be run again.
promote() {
  case "$(current_role)" in
    replica | primary) ;;
    *) log "promote: this pod is $(current_role), not a replica"; exit 1 ;;
  esac
  set_role primary
  promoting=$(date +%s)
  local_sql -e 'STOP SLAVE IO_THREAD' 2>/dev/null || true
  stopped=$(date +%s)
  received=$(local_sql -e 'SHOW SLAVE STATUS\G' | sed -n 's/^ *Gtid_IO_Pos: //p')
  [ "$(local_sql -N -B -e "SELECT MASTER_GTID_WAIT('$received', 60)")" = 0 ] ||
    { log "promote: the transactions received ($received) were not applied within 60 s"; exit 1; }
  applied=$(date +%s)
  local_sql -e 'STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF;'
  serve_primary
  log "promoted: receiving stopped in $((stopped - promoting)) s, $received applied in $((applied - stopped)) s, serving $(($(date +%s) - applied)) s later"
}

# Stops receiving from a primary that failed. The operator runs it on the
# other replicas while it promotes one, so their wait for the primary that is
# gone (follow_primary) passes during the promotion rather than after it.
detach() {
  [ "$(current_role)" = replica ] || { log "detach: this pod is $(current_role), not a replica"; exit 1; }
  local_sql -e 'STOP SLAVE IO_THREAD' 2>/dev/null || true
  log "detached: receiving stopped"
}

# Replicates from the primary at $1:$2 from now on, from this replica's GTID position.
follow() {
  [ "$(current_role)" = replica ] || { log "follow: this pod is $(current_role), not a replica"; exit 1; }
  record_primary "$1" "$2"
  load_primary
  follow_primary
}

# A planned switchover's first step: the primary stops taking writes while
# it runs (read_only waits for the commits under way), so the target can
# receive everything it wrote. `promote` takes writes again.
quiesce() {
  [ "$(current_role)" = primary ] || { log "quiesce: this pod is $(current_role), not the primary"; exit 1; }
  local_sql -e 'SET GLOBAL read_only = ON'
  log "quiesced: read-only"
}

# Read-only at once, so no client writes here any more; then the server
# stops: killed for a failover (InnoDB recovers; the rejoin drops what the
# others never received), once every replica has the whole binary log for a
# planned switchover, whose target the operator saw catch up already
# (bounded: a replica that does not answer, or a shutdown that hangs, must
# not hold it; semi-synchronous waits are off by then).
fence() {
  set_role fenced
  fencing=$(date +%s)
  server=$(cat "$DB_SOCKET_DIR/mariadb.pid" 2>/dev/null) && running "$server" ||
    { end_agent_soon; return 0; }
  local_sql --connect-timeout=1 -e 'SET GLOBAL read_only = ON' 2>/dev/null || true
  if [ "${1:-}" = planned ]; then
    MYSQL_PWD="$DB_SUPERUSER_PASSWORD" timeout 10 mariadb --protocol=socket -S "$SOCKET" -uroot \
      -e 'SET GLOBAL rpl_semi_sync_master_enabled = OFF; SHUTDOWN WAIT FOR ALL SLAVES' 2>/dev/null || true
    kill -TERM "$server" 2>/dev/null || true
  else
    kill -KILL "$server" 2>/dev/null || true
  fi
  tries=0
  while running "$server"; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || kill -KILL "$server" 2>/dev/null || true
    sleep 0.2
  done
  end_agent_soon
  log "fenced in $(($(date +%s) - fencing)) s: the server is stopped; it restarts in the role the operator gives it"
}

run_command "$@"
