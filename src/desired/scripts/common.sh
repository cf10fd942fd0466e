# Shared by the database start scripts (sourced, not run).

log() { echo "webcluster-db: $*" >&2; }

# Waits for the server started as $pid; exits with its status.
wait_server() {
  status=0
  wait "$pid" || status=$?
  if kill -0 "$pid" 2>/dev/null; then
    # A trapped signal interrupted the wait: wait for the shutdown itself.
    status=0
    wait "$pid" || status=$?
  fi
  exit "$status"
}
