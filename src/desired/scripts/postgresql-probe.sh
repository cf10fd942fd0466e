#!/bin/sh
# Readiness of a PostgreSQL pod, in the role it has now (common.sh,
# current_role). The primary is ready when it accepts writes (configured by
# start.sh, not in recovery, not read-only) and reaches the network (common.sh,
# reaches_network); a fenced pod never is. A replica is
# ready while the data it has replayed is at most DB_MAX_LAG_SECONDS older
# than the primary's: each probe reads the primary's current WAL position
# while the replica streams, and the lag is the age of the newest position
# read that the replica has replayed (common.sh, lag_seconds). So a replica
# is ready only once it has caught up since it started, an idle primary is
# no lag, a stalled stream is, and while the primary restarts the replicas
# keep serving reads for up to DB_MAX_LAG_SECONDS after they last caught up.
set -eu
# Bounded by itself: a stopped or hung server must fail the probe, not hang it
# (a runtime may not end an exec probe whose children hold its output open).
export PGCONNECT_TIMEOUT=3 PGOPTIONS="-c statement_timeout=3000"
# shellcheck source=common.sh
. "${DB_CONFIG_DIR:?}/common.sh"
query() {
  psql -X -tA -h "${DB_SOCKET_DIR:?}" -p "${DB_PORT:?}" -U postgres -d postgres -c "$1"
}
case "$(current_role)" in
  primary)
    # start.sh marks the primary once its roles and database are applied.
    [ -e "$DB_SOCKET_DIR/primary-configured" ] || { echo "primary is not configured yet" >&2; exit 1; }
    [ "$(query "SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'")" = "t" ] \
      || { echo "primary does not accept writes" >&2; exit 1; }
    reaches_network || { echo "primary is cut off from the network (its DNS server does not answer)" >&2; exit 1; }
    exit 0
    ;;
  replica) load_primary ;;
  *) echo "this pod is $(current_role), neither primary nor replica" >&2; exit 1 ;;
esac
now=$(date +%s)
positions="$DB_SOCKET_DIR/primary-positions"
replayed=$(query "SELECT COALESCE(pg_last_wal_replay_lsn() - '0/0', -1)")
streaming=$(query "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")
if [ "$streaming" = "1" ] && current=$(PGPASSFILE="$DB_SOCKET_DIR/.pgpass" psql -X -tA -w \
  "host=$PRIMARY_HOST port=$PRIMARY_PORT user=${DB_REPLICATION_USER:?} dbname=postgres" \
  -c "SELECT pg_current_wal_lsn() - '0/0'" 2>/dev/null); then
  echo "$now $current" >>"$positions"
fi
lag=$(lag_seconds "$positions" "$now" "$replayed" "${DB_MAX_LAG_SECONDS:?}")
[ -n "$lag" ] || { echo "replica has not caught up with the primary within ${DB_MAX_LAG_SECONDS}s (streaming: $streaming)" >&2; exit 1; }
