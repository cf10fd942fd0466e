# shellcheck shell=bash
# The operator's own start and probe scripts (src/build/scripts), as its pods
# run them: a primary on 5432 and a streaming replica on 5433.
operator_config postgresql
cp "$OPERATOR_SCRIPTS/postgresql.conf" "$OPERATOR_SCRIPTS/pg_hba.conf" "$ROOT/webcluster/"
mkdir -p "$ROOT/run/webcluster-db" "$ROOT/run/webcluster-db-1" "$ROOT/var/lib/postgresql/replica"
chown "$IMAGE_UID:$IMAGE_GID" "$ROOT/run/webcluster-db" "$ROOT/run/webcluster-db-1" "$ROOT/var/lib/postgresql/replica"
common=(DB_PRIMARY_POD=db-0 DB_PRIMARY_HOST=127.0.0.1 DB_PRIMARY_PORT=5432 DB_CONFIG_DIR=/webcluster
  DB_NAME=app DB_USER=app DB_PASSWORD=app-pw DB_SUPERUSER_PASSWORD=su-pw DB_REPLICATION_USER=replicator
  DB_REPLICATION_PASSWORD=repl-pw DB_MAX_LAG_SECONDS=30)
primary=("${common[@]}" DB_POD_NAME=db-0 DB_PORT=5432 DB_DATA_DIR=/var/lib/postgresql/data DB_SOCKET_DIR=/run/webcluster-db)
replica=("${common[@]}" DB_POD_NAME=db-1 DB_PORT=5433 DB_DATA_DIR=/var/lib/postgresql/replica DB_SOCKET_DIR=/run/webcluster-db-1)
in_image_bg "${primary[@]}" /bin/sh /webcluster/start.sh
primary_pid=$BG_PID
wait_until "the primary's readiness probe" in_image "${primary[@]}" /bin/sh /webcluster/probe.sh
in_image PGPASSWORD=app-pw psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U app -d app \
  -c 'CREATE TABLE t (x text)' -c "INSERT INTO t VALUES ('from-primary')" >/dev/null
in_image_bg "${replica[@]}" /bin/sh /webcluster/start.sh
replica_pid=$BG_PID
wait_until "the replica's readiness probe" in_image "${replica[@]}" /bin/sh /webcluster/probe.sh
[ "$(in_image PGPASSWORD=app-pw psql -X -tA -h 127.0.0.1 -p 5433 -U app -d app -c 'SELECT x FROM t')" = from-primary ] ||
  fail "the replica did not stream the row"
stop "$replica_pid" || fail "replica exited $? on SIGTERM"
stop "$primary_pid" || fail "primary exited $? on SIGTERM"
# The image's own entrypoint, as `docker run -e POSTGRES_PASSWORD=... postgres:17` uses it.
in_image_bg PGDATA=/tmp/pgdata POSTGRES_PASSWORD=pw POSTGRES_DB=shop docker-entrypoint.sh postgres -p 5434
entry_pid=$BG_PID
wait_until "the entrypoint's server" in_image PGPASSWORD=pw psql -X -h 127.0.0.1 -p 5434 -U postgres -d shop -c 'SELECT 1'
stop "$entry_pid" INT || fail "entrypoint server exited $? on SIGINT"
