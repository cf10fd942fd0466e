#!/bin/sh
# Readiness of a MariaDB pod (`probe.sh live`: liveness, the server process
# runs; a TCP check would leave an "Aborted connection" warning every time).
# In the role the pod has now (common.sh, current_role): the primary is ready
# when it accepts writes (read_only off) and reaches the network (common.sh,
# reaches_network); a fenced pod never is. A replica is
# ready while the data it has applied is at most DB_MAX_LAG_SECONDS older than
# the primary's: each probe
# reads the primary's GTID position while both replication threads run, and
# the lag is the age of the newest position read that the replica has applied
# (common.sh, lag_seconds). So a replica is ready only once it has caught up
# since it started, and while the primary restarts the replicas keep serving
# reads for up to DB_MAX_LAG_SECONDS after they last caught up.
set -eu
# Bounded by itself: a stopped or hung server must fail the probe, not hang it
# (a runtime may not end an exec probe whose children hold its output open).
if [ "${1:-}" = live ]; then
  # The server process lives (as a TCP check says, without a connection for
  # the server to log): a stopped or busy server is for readiness to judge.
  kill -0 "$(cat "${DB_SOCKET_DIR:?}/mariadb.pid")"
  exit 0
fi
# shellcheck source=common.sh
. "${DB_CONFIG_DIR:?}/common.sh"
client() {
  MYSQL_PWD="${DB_SUPERUSER_PASSWORD:?}" mariadb --protocol=socket -S "${DB_SOCKET_DIR:?}/mariadb.sock" -uroot \
    --connect-timeout=3 "$@"
}
sql() { client -N -B -e "$1"; }
case "$(current_role)" in
  primary)
    # start.sh marks the primary once its users and database are applied.
    [ -e "$DB_SOCKET_DIR/primary-configured" ] || { echo "primary is not configured yet" >&2; exit 1; }
    [ "$(sql 'SELECT @@read_only')" = "0" ] || { echo "primary is read-only" >&2; exit 1; }
    reaches_network || { echo "primary is cut off from the network (its DNS server does not answer)" >&2; exit 1; }
    exit 0
    ;;
  replica) load_primary ;;
  *) echo "this pod is $(current_role), neither primary nor replica" >&2; exit 1 ;;
esac
now=$(date +%s)
positions="$DB_SOCKET_DIR/primary-positions"
status=$(client -e 'SHOW SLAVE STATUS\G')
field() { printf '%s\n' "$status" | sed -n "s/^ *$1: //p"; }
running="IO $(field Slave_IO_Running), SQL $(field Slave_SQL_Running)"
if [ "$running" = "IO Yes, SQL Yes" ] && primary=$(MYSQL_PWD="${DB_REPLICATION_PASSWORD:?}" mariadb \
  -h "$PRIMARY_HOST" -P "$PRIMARY_PORT" -u"${DB_REPLICATION_USER:?}" --connect-timeout=3 \
  -N -B -e 'SELECT @@gtid_domain_id, @@gtid_binlog_pos' 2>/dev/null); then
  # shellcheck disable=SC2086 # the domain and the position, split at the tab
  set -- $primary
  echo "$now $(sequence "$1" "${2:-}")" >>"$positions"
  printf '%s\n' "$1" >"$DB_SOCKET_DIR/primary-domain"
fi
domain=$(cat "$DB_SOCKET_DIR/primary-domain" 2>/dev/null || echo 0)
applied=$(sequence "$domain" "$(sql 'SELECT @@gtid_slave_pos')")
lag=$(lag_seconds "$positions" "$now" "$applied" "${DB_MAX_LAG_SECONDS:?}")
[ -n "$lag" ] || { echo "replica has not caught up with the primary within ${DB_MAX_LAG_SECONDS}s (replication threads: $running)" >&2; exit 1; }
