#!/bin/sh
# Starts redis from the generated redis.conf: the primary pod as it is, every
# other pod as a replica of the primary.
set -eu
set -- redis-server "${REDIS_CONFIG_DIR:?}/redis.conf" --port "${REDIS_PORT:?}" --dir "${REDIS_DATA_DIR:?}"
if [ "${REDIS_POD_NAME:?}" != "${REDIS_PRIMARY_POD:?}" ]; then
  set -- "$@" --replicaof "${REDIS_PRIMARY_HOST:?}" "${REDIS_PRIMARY_PORT:-$REDIS_PORT}"
fi
exec "$@"
