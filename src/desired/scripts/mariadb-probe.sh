#!/bin/sh
# Readiness of a MariaDB pod. The primary is ready when it accepts writes
# (read_only off); a replica while its IO and SQL threads run and it is at
# most DB_MAX_LAG_SECONDS behind the primary.
set -eu
# Bounded by itself: a stopped or hung server must fail the probe, not hang it
# (a runtime may not end an exec probe whose children hold its output open).
client() {
  MYSQL_PWD="${DB_SUPERUSER_PASSWORD:?}" mariadb --protocol=socket -S "${DB_SOCKET_DIR:?}/mariadb.sock" -uroot \
    --connect-timeout=3 "$@"
}
sql() { client -N -B -e "$1"; }
if [ "${DB_POD_NAME:?}" = "${DB_PRIMARY_POD:?}" ]; then
  # start.sh marks the primary once its users and database are applied.
  [ -e "$DB_SOCKET_DIR/primary-configured" ] || { echo "primary is not configured yet" >&2; exit 1; }
  [ "$(sql 'SELECT @@read_only')" = "0" ] || { echo "primary is read-only" >&2; exit 1; }
  exit 0
fi
status=$(client -e 'SHOW SLAVE STATUS\G')
field() { printf '%s\n' "$status" | sed -n "s/^ *$1: //p"; }
[ "$(field Slave_IO_Running)" = "Yes" ] || { echo "replication IO thread is not running" >&2; exit 1; }
[ "$(field Slave_SQL_Running)" = "Yes" ] || { echo "replication SQL thread is not running" >&2; exit 1; }
behind=$(field Seconds_Behind_Master)
case "$behind" in ''|NULL) echo "replication lag unknown" >&2; exit 1 ;; esac
[ "$behind" -le "${DB_MAX_LAG_SECONDS:?}" ] || { echo "replica is ${behind}s behind the primary" >&2; exit 1; }
