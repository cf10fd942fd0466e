# shellcheck shell=bash
# The operator's own start and probe scripts (src/build/scripts), as its pods
# run them: a primary on 3306 and a GTID replica on 3307.
operator_config mariadb
cp "$OPERATOR_SCRIPTS/my.cnf" "$ROOT/webcluster/"
mkdir -p "$ROOT/run/webcluster-db" "$ROOT/run/webcluster-db-1" "$ROOT/var/lib/mysql-replica"
chown "$IMAGE_UID:$IMAGE_GID" "$ROOT/run/webcluster-db" "$ROOT/run/webcluster-db-1" "$ROOT/var/lib/mysql-replica"
common=(DB_PRIMARY_POD=db-0 DB_PRIMARY_HOST=127.0.0.1 DB_PRIMARY_PORT=3306 DB_CONFIG_DIR=/webcluster
  DB_NAME=app DB_USER=app DB_PASSWORD=app-pw DB_SUPERUSER_PASSWORD=su-pw DB_REPLICATION_USER=replicator
  DB_REPLICATION_PASSWORD=repl-pw DB_MAX_LAG_SECONDS=30)
primary=("${common[@]}" DB_POD_NAME=db-0 DB_PORT=3306 DB_DATA_DIR=/var/lib/mysql DB_SOCKET_DIR=/run/webcluster-db)
replica=("${common[@]}" DB_POD_NAME=db-1 DB_PORT=3307 DB_DATA_DIR=/var/lib/mysql-replica DB_SOCKET_DIR=/run/webcluster-db-1)
in_image_bg "${primary[@]}" /bin/sh /webcluster/start.sh
primary_pid=$BG_PID
wait_until "the primary's readiness probe" in_image "${primary[@]}" /bin/sh /webcluster/probe.sh
in_image MYSQL_PWD=app-pw mariadb -h 127.0.0.1 -P 3306 -uapp app \
  -e "CREATE TABLE t (x varchar(20) PRIMARY KEY); INSERT INTO t VALUES ('from-primary')"
in_image_bg "${replica[@]}" /bin/sh /webcluster/start.sh
replica_pid=$BG_PID
wait_until "the replica's readiness probe" in_image "${replica[@]}" /bin/sh /webcluster/probe.sh
in_image MYSQL_PWD=app-pw mariadb -h 127.0.0.1 -P 3306 -uapp app -e "INSERT INTO t VALUES ('after-seed')"
replica_has() {
  [ "$(in_image MYSQL_PWD=app-pw mariadb -h 127.0.0.1 -P 3307 -uapp app -N -B -e "SELECT x FROM t WHERE x = '$1'")" = "$1" ]
}
replica_has from-primary || fail "the replica was not seeded with the primary's row"
wait_until "the replica applies a later row" replica_has after-seed
stop "$replica_pid" || fail "replica exited $? on SIGTERM"
stop "$primary_pid" || fail "primary exited $? on SIGTERM"
