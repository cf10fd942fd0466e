#!/bin/sh
# Readiness of a PostgreSQL pod. The primary is ready when it accepts writes
# (configured by start.sh, not in recovery, not read-only);
# a replica while it streams from the primary and its replay lag is within
# DB_MAX_LAG_SECONDS (no lag counts while it has replayed all it received).
set -eu
# Bounded by itself: a stopped or hung server must fail the probe, not hang it
# (a runtime may not end an exec probe whose children hold its output open).
export PGCONNECT_TIMEOUT=3 PGOPTIONS="-c statement_timeout=3000"
query() {
  psql -X -tA -h "${DB_SOCKET_DIR:?}" -p "${DB_PORT:?}" -U postgres -d postgres -c "$1"
}
if [ "${DB_POD_NAME:?}" = "${DB_PRIMARY_POD:?}" ]; then
  # start.sh marks the primary once its roles and database are applied.
  [ -e "$DB_SOCKET_DIR/primary-configured" ] || { echo "primary is not configured yet" >&2; exit 1; }
  [ "$(query "SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'")" = "t" ] \
    || { echo "primary does not accept writes" >&2; exit 1; }
  exit 0
fi
streaming=$(query "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")
[ "$streaming" = "1" ] || { echo "replica is not streaming from the primary" >&2; exit 1; }
lag=$(query "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
  ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::int, 0) END")
[ "$lag" -le "${DB_MAX_LAG_SECONDS:?}" ] || { echo "replica lags ${lag}s behind the primary" >&2; exit 1; }
