# Shared by the database start and probe scripts (sourced, not run).

log() { echo "webcluster-db: $*" >&2; }

# The role this pod starts in: the operator's (DB_ROLE, the pod's role label
# when the container started); for a pod not labelled yet, the primary the
# operator elected last ($DB_CONFIG_DIR/primary) or, before any election, the
# first rollout's: DB_PRIMARY_POD is the primary, every other pod a replica.
# A pod fenced before its label said so (a pod created anew while the
# operator failed over) starts as a replica.
start_role() {
  case "${DB_ROLE:-}" in
    primary | replica) echo "$DB_ROLE" ;;
    *)
      elected=$(cat "$DB_CONFIG_DIR/primary" 2>/dev/null || echo "$DB_PRIMARY_POD")
      if [ "$DB_POD_NAME" = "$elected" ] && [ ! -e "$DB_SOCKET_DIR/fenced" ]; then echo primary; else echo replica; fi
      ;;
  esac
}

# Runs the agent command $1 of the engine's start.sh (start when none) with
# its arguments.
run_command() {
  command=${1:-start}
  [ $# -eq 0 ] || shift
  case "$command" in
    start | position | promote | quiesce | detach) "$command" ;;
    fence) fence "${1:-}" ;;
    follow) follow "${1:?follow HOST PORT}" "${2:?follow HOST PORT}" ;;
    *)
      log "unknown command $command (start, position, quiesce, promote, detach, follow HOST PORT, fence [planned])"
      exit 2
      ;;
  esac
}

# The role the server has now (primary, replica, or fenced), which the probe
# and the start script's watch read: promote and fence change it while the
# server runs.
set_role() {
  replace_file "$DB_SOCKET_DIR/role" "$1"
  case "$1" in
    fenced) : >"$DB_SOCKET_DIR/fenced" ;;
    primary) rm -f "$DB_SOCKET_DIR/fenced" ;;
  esac
}
current_role() { cat "$DB_SOCKET_DIR/role" 2>/dev/null || echo starting; }

# The primary a replica follows ($PRIMARY_HOST and $PRIMARY_PORT): the
# read-write Service at start, the one `follow` names after a failover.
record_primary() { replace_file "$DB_SOCKET_DIR/primary-address" "$1 $2"; }
load_primary() { read -r PRIMARY_HOST PRIMARY_PORT <"$DB_SOCKET_DIR/primary-address"; }

# Whether this pod reaches the network beyond itself: a TCP connection to
# its DNS server (the first nameserver of /etc/resolv.conf), accepted or
# refused, within 2 s. Cut off (a network partition), nothing answers; a DNS
# server that is down is refused, which is an answer. A primary cut off is
# not ready: the operator fails it over and fences it through the kubelet,
# which needs no network. Outside Kubernetes (loopback tests) it holds.
reaches_network() {
  [ -n "${KUBERNETES_SERVICE_HOST:-}" ] || return 0
  server=$(sed -n 's/^nameserver[[:space:]]*//p' /etc/resolv.conf 2>/dev/null | head -n 1)
  [ -n "$server" ] || return 0
  answered=0
  timeout 2 bash -c "exec 3<>/dev/tcp/$server/53" 2>/dev/null || answered=$?
  [ "$answered" -ne 124 ]
}

# Writes $2 as the whole of file $1 at once: a reader sees the old or the new.
replace_file() {
  printf '%s\n' "$2" >"$1.new"
  mv -f "$1.new" "$1"
}

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

# Whether process $1 runs: a killed server the agent has not reaped yet (a
# zombie, while the agent is busy elsewhere) does not.
running() {
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ]
}

# Sleeps $1 seconds, cut short by a trapped signal (sets $stopping).
pause() {
  sleep "$1" &
  wait $! || true
}

# Like pause; the agent ends (exit 0) once it is stopped: its container ends.
pause_or_stop() {
  pause "$1"
  [ -z "$stopping" ] || exit 0
}

# The agent's own process, which `fence` stops (end_agent_soon) wherever
# the start is: the pod's container ends and starts again in the role of its
# label.
agent_started() {
  echo $$ >"$DB_SOCKET_DIR/agent.pid"
  trap 'stopping=1' TERM INT
  trap linger_if_fenced EXIT
}
# A fence stopped the server, wherever the start was: the agent ends once
# the fence has answered (end_agent_soon, at most 10 s), so the operator's
# exec sees it succeed rather than its container end under it.
linger_if_fenced() {
  waited=0
  while [ "$(current_role)" = fenced ] && [ -z "$stopping" ] && [ "$waited" -lt 10 ]; do
    pause 1
    waited=$((waited + 1))
  done
}
# In a second, once the command that fenced has answered.
end_agent_soon() {
  (
    sleep 1
    kill -TERM "$(cat "$DB_SOCKET_DIR/agent.pid" 2>/dev/null)" 2>/dev/null || true
  ) >/dev/null 2>&1 &
}

# A primary whose data directory is empty initialises a new one only when
# no replica holds data: it asks every peer of $DB_CONFIG_DIR/peers (the
# pods' stable names, host:port a line) with peer_identity (of the
# engine's script: prints "<position> <identity>" of a peer with data, nothing
# for a peer without, fails when it does not answer). A name that does not
# resolve is a pod that does not exist; one that resolves but does not answer
# may hold data, so the primary waits for it. Returns once initialising is
# safe, or once the primary copied the most advanced replica (restore_from of
# the engine's script, which removes the request once the copy is whole)
# because the user asked for it with the file $DB_DATA_DIR/webcluster-restore
# (docs/database.md). With no replica holding data, the identity the operator
# recorded once the primary served ($DB_CONFIG_DIR/identity) still refuses:
# the data is somewhere, unless the user asks for a new empty database with
# the file $DB_DATA_DIR/webcluster-initialise (removed once the primary serves).
guard_empty_primary() {
  # No list, no replicas (a pod run outside a WebCluster's StatefulSet).
  [ -e "$DB_CONFIG_DIR/peers" ] || return 0
  while :; do
    holders=0 silent=0 best= best_position=-1
    while IFS= read -r peer || [ -n "$peer" ]; do
      case "$peer" in '' | '#'*) continue ;; esac
      host=${peer%:*} port=${peer##*:}
      # The list names every pod: this one does not ask itself.
      case "$host" in "$DB_POD_NAME".*) continue ;; esac
      getent hosts "$host" >/dev/null 2>&1 || continue
      if ! identity=$(peer_identity "$host" "$port"); then
        log "waiting for replica $host to answer before initialising an empty primary (it may hold data)"
        silent=$((silent + 1))
        continue
      fi
      [ -n "$identity" ] || continue
      holders=$((holders + 1))
      position=${identity%% *}
      case "$position" in '' | *[!0-9]*) position=0 ;; esac
      log "REFUSING to initialise an empty primary: replica $host holds data (${identity#* }). The data directory of $DB_POD_NAME is empty (its volume claim was lost or replaced); see docs/database.md (Recovering an empty primary)"
      if [ "$position" -gt "$best_position" ]; then
        best="$host $port" best_position=$position
      fi
    done <"$DB_CONFIG_DIR/peers"
    if [ "$holders" -eq 0 ] && [ "$silent" -eq 0 ]; then
      recorded=$(cat "$DB_CONFIG_DIR/identity" 2>/dev/null || true)
      [ -n "$recorded" ] || return 0
      if [ -e "$DB_DATA_DIR/webcluster-initialise" ]; then
        log "initialising a new empty database in place of $recorded, as $DB_DATA_DIR/webcluster-initialise asks"
        return 0
      fi
      log "REFUSING to initialise an empty primary: this WebCluster's data ($recorded, status.database.identity) is on no replica that answers. The data directory of $DB_POD_NAME is empty (its volume claim was lost or replaced); see docs/database.md (Recovering an empty primary)"
      pause_or_stop 15
      continue
    fi
    if [ "$holders" -gt 0 ] && [ "$silent" -eq 0 ] && [ -e "$DB_DATA_DIR/webcluster-restore" ]; then
      log "restoring the primary from the most advanced replica ${best% *} (position $best_position), as $DB_DATA_DIR/webcluster-restore asks"
      # shellcheck disable=SC2086 # host and port
      restore_from $best
      return 0
    fi
    pause_or_stop 15
  done
}

# Replica lag from positions: a number the primary's position and a
# replica's only grow by. The probe records the primary's position as
# "<epoch> <position>" while the replica follows it; the replica's lag is how
# long ago the newest recorded position it has replayed was read (so an idle
# primary means no lag, a stalled stream a growing one). Prints the lag in
# seconds, or nothing when it has replayed no position of the last max
# seconds. Usage: lag_seconds FILE NOW REPLAYED MAX
lag_seconds() {
  [ -e "$1" ] || return 0
  awk -v now="$2" -v replayed="$3" -v max="$4" -v keep="$1.new" '
    now - $1 <= max { print > keep; if ($2 + 0 <= replayed + 0 && $1 > best) best = $1 }
    END { close(keep); if (best != "") print now - best }
  ' "$1"
  mv -f "$1.new" "$1" 2>/dev/null || rm -f "$1"
}

# The highest sequence number of GTID domain $1 in the GTID list $2 (0 when absent).
sequence() {
  printf '%s\n' "$2" | tr ',' '\n' | sed -n "s/^ *$1-[0-9]*-\([0-9]*\) *$/\1/p" | sort -n | tail -n 1 | grep . || echo 0
}
