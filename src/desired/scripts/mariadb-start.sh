#!/bin/sh
# Starts one MariaDB pod of a WebCluster: the primary (binary log with GTID;
# users and database re-applied on every start) or a read-only replica that
# follows it with MASTER_USE_GTID (seeded from a dump of the primary when its
# data is empty, so a replica added later catches up).
# Needs: DB_POD_NAME DB_PRIMARY_POD DB_PRIMARY_HOST DB_PORT DB_DATA_DIR
#        DB_CONFIG_DIR DB_SOCKET_DIR DB_NAME DB_USER DB_PASSWORD
#        DB_SUPERUSER_PASSWORD DB_REPLICATION_USER DB_REPLICATION_PASSWORD
# Optional: DB_PRIMARY_PORT (default DB_PORT), DB_WAIT_SECONDS (default 300).
set -eu
: "${DB_POD_NAME:?}" "${DB_PRIMARY_POD:?}" "${DB_PRIMARY_HOST:?}" "${DB_PORT:?}" "${DB_DATA_DIR:?}"
: "${DB_CONFIG_DIR:?}" "${DB_SOCKET_DIR:?}" "${DB_NAME:?}" "${DB_USER:?}" "${DB_PASSWORD:?}"
: "${DB_SUPERUSER_PASSWORD:?}" "${DB_REPLICATION_USER:?}" "${DB_REPLICATION_PASSWORD:?}"
DATADIR="$DB_DATA_DIR/mysql"
SOCKET="$DB_SOCKET_DIR/mariadb.sock"
PRIMARY_PORT="${DB_PRIMARY_PORT:-$DB_PORT}"
# server_id must differ per pod: 1 + the StatefulSet ordinal.
ORDINAL="${DB_POD_NAME##*-}"
SERVER_ID=$((ORDINAL + 1))

WAIT_SECONDS="${DB_WAIT_SECONDS:-300}"
# Written once the primary's users and database are applied; the probe needs it.
CONFIGURED="$DB_SOCKET_DIR/primary-configured"

# shellcheck source=common.sh
. "$DB_CONFIG_DIR/common.sh"

# Passwords go through MYSQL_PWD or stdin, never through arguments.
local_sql() { MYSQL_PWD="$DB_SUPERUSER_PASSWORD" mariadb --protocol=socket -S "$SOCKET" -uroot "$@"; }
fresh_sql() { MYSQL_PWD='' mariadb --protocol=socket -S "$SOCKET" -uroot "$@"; }

# Waits until the server answers; on fresh data root has no password yet.
wait_local() {
  tries=0
  until { [ "$fresh" = true ] && fresh_sql -e 'SELECT 1' >/dev/null 2>&1; } || local_sql -e 'SELECT 1' >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { log "the server exited"; exit 1; }
    tries=$((tries + 1))
    [ "$tries" -lt "$WAIT_SECONDS" ] || { log "server did not start"; exit 1; }
    sleep 1
  done
}

wait_primary() {
  tries=0
  until MYSQL_PWD="$DB_REPLICATION_PASSWORD" mariadb -h "$DB_PRIMARY_HOST" -P "$PRIMARY_PORT" -u"$DB_REPLICATION_USER" -e 'SELECT 1' >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt "$WAIT_SECONDS" ] || { log "gave up waiting for the primary $DB_PRIMARY_HOST"; exit 1; }
    sleep 1
  done
}

# Runs the server in the background; SIGTERM (how Kubernetes stops a pod)
# shuts it down cleanly.
start_server() {
  mariadbd --defaults-file="$DB_CONFIG_DIR/my.cnf" --datadir="$DATADIR" --socket="$SOCKET" \
    --port="$DB_PORT" --server-id="$SERVER_ID" --pid-file="$DB_SOCKET_DIR/mariadb.pid" \
    --tmpdir="$DB_SOCKET_DIR" "$@" &
  pid=$!
  trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT
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

# Idempotent: runs on every primary start so password or user changes take effect.
configure_primary() {
  local_sql <<SQL
SET sql_log_bin = 0;
ALTER USER root@localhost IDENTIFIED BY '$DB_SUPERUSER_PASSWORD';
SET sql_log_bin = 1;
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
CREATE USER IF NOT EXISTS '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'%';
CREATE USER IF NOT EXISTS '$DB_REPLICATION_USER'@'%' IDENTIFIED BY '$DB_REPLICATION_PASSWORD';
ALTER USER '$DB_REPLICATION_USER'@'%' IDENTIFIED BY '$DB_REPLICATION_PASSWORD';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SLAVE MONITOR, BINLOG MONITOR, SELECT, RELOAD, SHOW VIEW, EVENT, TRIGGER, LOCK TABLES ON *.* TO '$DB_REPLICATION_USER'@'%';
SQL
}

# A new replica copies the primary's data with its GTID position, then follows
# it. The copy is not binary-logged here, so this replica's binary log holds
# only the primary's transactions (gtid_strict_mode) and the dump's
# gtid_slave_pos does not conflict with it.
seed_replica() {
  log "seeding from a dump of the primary $DB_PRIMARY_HOST"
  seed="$DB_SOCKET_DIR/seed.sql"
  MYSQL_PWD="$DB_REPLICATION_PASSWORD" mariadb-dump -h "$DB_PRIMARY_HOST" -P "$PRIMARY_PORT" \
    -u"$DB_REPLICATION_USER" --all-databases --single-transaction --gtid --master-data=1 \
    --routines --events --triggers > "$seed.part"
  mv "$seed.part" "$seed"
  local_sql -e 'STOP SLAVE' 2>/dev/null || true
  local_sql -e 'RESET SLAVE ALL; RESET MASTER;'
  { echo 'SET sql_log_bin = 0;'; cat "$seed"; } | local_sql
  rm -f "$seed"
  # The dump replaced the users with the primary's, whose root password is the same.
  local_sql -e 'FLUSH LOCAL PRIVILEGES'
}

follow_primary() {
  local_sql -e 'STOP SLAVE' 2>/dev/null || true
  local_sql <<SQL
CHANGE MASTER TO MASTER_HOST='$DB_PRIMARY_HOST', MASTER_PORT=$PRIMARY_PORT,
  MASTER_USER='$DB_REPLICATION_USER', MASTER_PASSWORD='$DB_REPLICATION_PASSWORD',
  MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=5;
START SLAVE;
SQL
}

mkdir -p "$DB_DATA_DIR" "$DB_SOCKET_DIR"
rm -f "$CONFIGURED"
fresh=false
if [ ! -d "$DATADIR/mysql" ]; then
  log "initialising $DATADIR"
  rm -rf "$DATADIR"
  # Its own tmpdir: servers sharing /tmp (tests on one host) clash on temporary table names.
  mariadb-install-db --no-defaults --datadir="$DATADIR" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve --skip-log-bin --tmpdir="$DB_SOCKET_DIR" >/dev/null
  fresh=true
fi
if [ "$DB_POD_NAME" = "$DB_PRIMARY_POD" ]; then
  start_server --read-only=OFF
  [ "$fresh" = false ] || secure_root
  configure_primary
  : > "$CONFIGURED"
  log "primary ready on port $DB_PORT"
else
  start_server --read-only=ON
  [ "$fresh" = false ] || secure_root
  wait_primary
  # A replica whose seeding was interrupted has no seed marker yet: seed again.
  [ -e "$DATADIR/webcluster-seeded" ] || { seed_replica; : > "$DATADIR/webcluster-seeded"; }
  follow_primary
  log "replica following $DB_PRIMARY_HOST"
fi
wait_server
