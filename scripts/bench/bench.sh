#!/usr/bin/env bash
# npm run bench: a throwaway cluster prepared like the test cluster (bootstrap, migrations, seed),
# with per-function and per-statement statistics on, then the benchmark parts (scripts/bench/run.ts)
# against it. The cluster is stopped on every exit path.

# shellcheck source=../lib/local-stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/local-stack.sh"
cd "$KILN_ROOT" || exit 1
export PATH="$KILN_ROOT/node_modules/.bin:$PATH"

for arg in "$@"; do
  case "$arg" in
    -h | --help) exec tsx scripts/bench/run.ts --help ;;
  esac
done
# Bad arguments fail before a cluster is made.
tsx scripts/bench/run.ts --check-args "$@" || exit $?

# The stated duration includes making the cluster.
export KILN_BENCH_STARTED_MS=$(($(date +%s%N) / 1000000))
PORT=${KILN_BENCH_PORT:-54351}
port_in_use "$PORT" && die "port $PORT is in use: set KILN_BENCH_PORT to a free port"
command -v pgbench >/dev/null || PATH="$PG_BINDIR:$PATH"
command -v pgbench >/dev/null || die "pgbench not found (Debian: postgresql-client-$PG_MAJOR)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench.XXXXXX")
KILN_STACK_LOGS=$WORK
cleanup() {
  cluster_stop "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_dependencies
log "bench cluster on 127.0.0.1:$PORT"
cluster_init "$WORK" "$PORT"
# Profiling, for this cluster only: later settings override cluster_init's.
preload=pg_cron
has_real_pg_net && preload="pg_cron,pg_net"
# Durable commits, as on a hosted project: the test cluster turns them off for speed, but then a
# commit writes nothing to disk and every baseline here measures a commit that costs nothing.
cat >>"$WORK/data/postgresql.conf" <<CONF
fsync = on
synchronous_commit = on
full_page_writes = on
shared_preload_libraries = '$preload,pg_stat_statements'
track_functions = all
pg_stat_statements.track = all
max_connections = 100
CONF
cluster_start "$WORK"
log "bootstrap, migrations, seed"
db_prepare "$PORT"
ADMIN_URL=$(db_url "$PORT" "$ADMIN_ROLE")
psql_url "$ADMIN_URL" -c 'create extension if not exists pg_stat_statements with schema extensions' \
  -c 'create extension if not exists pg_walinspect with schema extensions' >/dev/null

export DATABASE_URL ADMIN_DATABASE_URL=$ADMIN_URL
DATABASE_URL=$(db_url "$PORT")
export PGOPTIONS='-c client_min_messages=warning'
export KILN_PG_NET=look-alike
has_real_pg_net && KILN_PG_NET=real
tsx scripts/bench/run.ts "$@"
