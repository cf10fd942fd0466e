# shellcheck shell=bash
# The operator's redis start script and config: a primary on 6379, a replica on 6380.
mkdir -p "$ROOT/webcluster" "$ROOT/data-1"
chown "$IMAGE_UID:$IMAGE_GID" "$ROOT/data-1"
cp "$OPERATOR_SCRIPTS/redis-start.sh" "$ROOT/webcluster/start.sh"
printf 'bind * -::*\nprotected-mode no\nmaxmemory 64mb\nmaxmemory-policy volatile-lru\nappendonly yes\nreplica-read-only yes\n' \
  > "$ROOT/webcluster/redis.conf"
common=(REDIS_PRIMARY_POD=cache-0 REDIS_PRIMARY_HOST=127.0.0.1 REDIS_CONFIG_DIR=/webcluster)
in_image_bg "${common[@]}" REDIS_POD_NAME=cache-0 REDIS_PORT=6379 REDIS_DATA_DIR=/data /bin/sh /webcluster/start.sh
primary_pid=$BG_PID
in_image_bg "${common[@]}" REDIS_POD_NAME=cache-1 REDIS_PORT=6380 REDIS_DATA_DIR=/data-1 REDIS_PRIMARY_PORT=6379 \
  /bin/sh /webcluster/start.sh
replica_pid=$BG_PID
wait_until "the primary answers" in_image redis-cli -p 6379 ping
in_image redis-cli -p 6379 set probe from-primary >/dev/null
replica_has() { [ "$(in_image redis-cli -p 6380 get probe)" = from-primary ]; }
wait_until "the replica has the primary's key" replica_has
# A replica refuses SIGTERM while it writes its first append-only file.
aof_done() { in_image redis-cli -p 6380 info persistence | grep -q '^aof_rewrite_in_progress:0'; }
wait_until "the replica's first append-only file" aof_done
[ -d "$ROOT/data/appendonlydir" ] || fail "no append-only file in /data"
stop "$replica_pid" || fail "replica exited $? on SIGTERM"
stop "$primary_pid" || fail "primary exited $? on SIGTERM"
