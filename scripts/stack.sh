#!/usr/bin/env bash
# npm run stack:up | stack:down | stack:status | stack:reset — a local stack for manual work and the demo.
#
# The stack: a Postgres 15 cluster on 127.0.0.1:54322 (bootstrap, migrations, seed applied), the
# pg_net look-alike worker (only when the real pg_net is not installed), the tick driver, the KIE
# emulator on 127.0.0.1:54329, and the gateway on 127.0.0.1:54321 (Storage stand-in and Edge
# Functions, the local SUPABASE_URL). The pipeline is pointed at the emulator and the gateway
# (sql/local_stack_pipeline.sql), so a started job runs end to end.
# State lives in $KILN_STACK_DIR (default /tmp/kiln-stack): data, logs, pid files and the local
# finalize credential. KILN_STACK_DB_PORT, KILN_STACK_GATEWAY_PORT and KILN_STACK_KIE_PORT move
# the ports (for a second stack beside the usual one).

usage() {
  cat <<'EOF'
usage: bash scripts/stack.sh up|down|status|reset

  up      start what is not running (idempotent); apply pending migrations and the seed
  down    stop everything the stack started
  status  say what runs where
  reset   down, wipe the database, up
EOF
}

# shellcheck source=lib/local-stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/local-stack.sh"

STACK_DIR=${KILN_STACK_DIR:-/tmp/kiln-stack}
KILN_STACK_LOGS=$STACK_DIR
PORT=${KILN_STACK_DB_PORT:-54322}
DB_URL=$(db_url "$PORT")
ADMIN_DB_URL=$(db_url "$PORT" "$ADMIN_ROLE")
GATEWAY_PORT=${KILN_STACK_GATEWAY_PORT:-54321}
KIE_PORT=${KILN_STACK_KIE_PORT:-54329}
# The emulator's only key: a local value, never valid at KIE.
LOCAL_KIE_KEY=kiln-local-kie-key
TSX="$KILN_ROOT/node_modules/.bin/tsx"

# A worker runs in its own session (setsid), so its pid is also its process group: stopping
# the group stops tsx and the node process under it together. A pid file only counts while
# that pid still runs our script, so a stale file never leads to signalling a stranger.
pid_alive() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -r "/proc/$pid/cmdline" ] && grep -qa "scripts/dev-stack/" "/proc/$pid/cmdline"
}

cluster_running() {
  [ -f "$STACK_DIR/data/postmaster.pid" ] && as_pg_owner "$PG_BINDIR/pg_ctl" -D "$STACK_DIR/data" status >/dev/null 2>&1
}

# start_worker NAME SCRIPT URL [ARGS...]: a background Node process with its pid and log in the stack dir.
start_worker() {
  local name=$1 script=$2 url=$3
  if pid_alive "$STACK_DIR/$name.pid"; then return 0; fi
  DATABASE_URL=$url setsid "$TSX" "$KILN_ROOT/$script" "${@:4}" >>"$STACK_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$STACK_DIR/$name.pid"
}

# stop_worker NAME: SIGTERM to the worker's process group (it finishes requests in flight),
# SIGKILL to whatever is left after 15 seconds.
stop_worker() {
  local pidfile="$STACK_DIR/$1.pid" pid
  if pid_alive "$pidfile"; then
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# The cluster's preloads were chosen when it was made: a stack made with the look-alike has no
# pg_net worker under the real extension (and no look-alike worker is started then), so every job
# would wait forever; one made with the real extension cannot start without it. Prints why the
# stack in STACK_DIR does not fit the pg_net installed here, or nothing.
pg_net_mismatch() {
  [ -f "$STACK_DIR/data/postgresql.conf" ] || return 0
  local preloads
  preloads=$(grep -E '^shared_preload_libraries' "$STACK_DIR/data/postgresql.conf" | tail -1)
  if has_real_pg_net && [[ $preloads != *pg_net* ]]; then
    echo "the stack in $STACK_DIR was made with the pg_net look-alike, but the real pg_net is installed"
  elif ! has_real_pg_net && [[ $preloads == *pg_net* ]]; then
    echo "the stack in $STACK_DIR was made with the real pg_net, which is not installed here"
  fi
}

up() {
  ensure_dependencies
  mkdir -p "$STACK_DIR"
  local stale
  stale=$(pg_net_mismatch)
  if [ -n "$stale" ]; then
    # The demo's own throwaway stack is made again; anyone else's data is left to its owner.
    if [ "${KILN_STACK_REBUILD_STALE:-}" != 1 ] || cluster_running; then
      die "$stale: KILN_STACK_DIR=$STACK_DIR npm run stack:reset"
    fi
    log "$stale: making it again"
    rm -rf "$STACK_DIR/data"
  fi
  if [ ! -d "$STACK_DIR/data" ]; then
    port_in_use $PORT && die "port $PORT is taken by something else"
    log "initialising a cluster in $STACK_DIR"
    cluster_init "$STACK_DIR" $PORT
  fi
  if ! cluster_running; then
    log "starting postgres on 127.0.0.1:$PORT"
    cluster_start "$STACK_DIR"
  fi
  cluster_restart_if_stale "$STACK_DIR"
  local unknown
  unknown=$(migrations_not_here "$DB_URL")
  if [ -n "$unknown" ]; then
    # Applied by another checkout (a branch, a rewritten history): the CLI refuses to go on.
    [ "${KILN_STACK_REBUILD_STALE:-}" = 1 ] ||
      die "the stack in $STACK_DIR has migrations this checkout does not ($unknown): KILN_STACK_DIR=$STACK_DIR npm run stack:reset"
    log "the stack in $STACK_DIR has migrations this checkout does not ($unknown): making it again"
    cluster_stop "$STACK_DIR"
    rm -rf "$STACK_DIR/data"
    cluster_init "$STACK_DIR" $PORT
    cluster_start "$STACK_DIR"
  fi
  log "applying bootstrap, pending migrations and seed"
  PGOPTIONS='-c client_min_messages=warning' db_prepare "$PORT"
  # One random finalize credential per stack: Vault's finalize_credential and the function's
  # KILN_FINALIZE_CREDENTIAL (the gateway passes its environment on to the functions).
  [ -s "$STACK_DIR/finalize_credential" ] ||
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$STACK_DIR/finalize_credential")
  local finalize_credential
  finalize_credential=$(cat "$STACK_DIR/finalize_credential")
  log "pointing the pipeline at the KIE emulator and the gateway"
  PGOPTIONS='-c client_min_messages=warning' psql_url "$DB_URL" -f "$KILN_ROOT/sql/local_stack_pipeline.sql" \
    -v kie_url="http://127.0.0.1:$KIE_PORT" -v kie_key="$LOCAL_KIE_KEY" \
    -v gateway_origin="http://127.0.0.1:$GATEWAY_PORT" -v functions_url="http://127.0.0.1:$GATEWAY_PORT/functions/v1" \
    -v finalize_credential="$finalize_credential" \
    >/dev/null || die "the local pipeline settings failed"
  # pg_net and pg_cron work from background workers inside the server, beyond any grant: their
  # stand-ins connect as the superuser (the tick driver then runs each job as its cron user).
  has_real_pg_net || start_worker pg-net-worker scripts/dev-stack/pg-net-worker.ts "$ADMIN_DB_URL"
  start_worker tick-driver scripts/dev-stack/tick-driver.ts "$ADMIN_DB_URL"
  start_worker kie-emulator scripts/dev-stack/kie-emulator/cli.ts "$DB_URL" --port "$KIE_PORT" --api-key "$LOCAL_KIE_KEY" --db-url "$DB_URL"
  # The callback function connects as its own login role, which may run only its four SQL
  # functions (loopback is trusted locally: no password), as a hosted project should configure it.
  KILN_FINALIZE_CREDENTIAL=$finalize_credential KILN_CALLBACK_DB_URL=$(db_url "$PORT" kiln_callback) \
    start_worker gateway scripts/dev-stack/gateway/main.ts "$DB_URL" --port "$GATEWAY_PORT" --storage-dir "$STACK_DIR/storage" --set-vault-secrets
  status
}

down() {
  # Together: each takes a second or two to finish what it has in flight.
  local name
  for name in gateway kie-emulator tick-driver pg-net-worker; do stop_worker "$name" & done
  wait
  if cluster_running; then
    log "stopping postgres"
    cluster_stop "$STACK_DIR"
  fi
  log "stack is down"
}

status() {
  local state
  if cluster_running; then state="running"; else state="stopped"; fi
  printf 'postgres       %-8s %s (data: %s)\n' "$state" "$DB_URL" "$STACK_DIR/data"
  if has_real_pg_net; then
    printf 'pg_net         %-8s the real extension (background worker inside postgres)\n' "$state"
  else
    if pid_alive "$STACK_DIR/pg-net-worker.pid"; then state="running"; else state="stopped"; fi
    printf 'pg-net-worker  %-8s look-alike worker (log: %s)\n' "$state" "$STACK_DIR/pg-net-worker.log"
  fi
  if pid_alive "$STACK_DIR/tick-driver.pid"; then state="running"; else state="stopped"; fi
  printf 'tick-driver    %-8s sub-minute ticks from private.ticks (log: %s)\n' "$state" "$STACK_DIR/tick-driver.log"
  if pid_alive "$STACK_DIR/kie-emulator.pid"; then state="running"; else state="stopped"; fi
  printf 'kie-emulator   %-8s http://127.0.0.1:%s (key: %s, log: %s)\n' "$state" "$KIE_PORT" "$LOCAL_KIE_KEY" "$STACK_DIR/kie-emulator.log"
  if pid_alive "$STACK_DIR/gateway.pid"; then state="running"; else state="stopped"; fi
  printf 'gateway        %-8s http://127.0.0.1:%s (storage: %s, log: %s)\n' "$state" "$GATEWAY_PORT" "$STACK_DIR/storage" "$STACK_DIR/gateway.log"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  reset) down; rm -rf "$STACK_DIR"; up ;;
  -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
