#!/usr/bin/env bash
# npm run soak: a throwaway cluster prepared like the test cluster (bootstrap, migrations, seed),
# then scripts/soak.ts against it (which starts the rest of the pipeline in-process). The cluster
# is stopped on every exit path. Not part of npm test.

# shellcheck source=lib/local-stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/local-stack.sh"
cd "$KILN_ROOT" || exit 1
export PATH="$KILN_ROOT/node_modules/.bin:$PATH"
export PGOPTIONS='-c client_min_messages=warning'

for arg in "$@"; do
  case "$arg" in
    -h | --help) exec tsx scripts/soak.ts --help ;;
  esac
done
# Bad arguments fail before a cluster is made.
tsx scripts/soak.ts --check-args "$@" || exit $?

PORT=${KILN_SOAK_PORT:-}
if [ -z "$PORT" ]; then
  for candidate in $(seq 18850 18899); do
    port_in_use "$candidate" || { PORT=$candidate; break; }
  done
fi
[ -n "$PORT" ] || die "no free port in 18850-18899: set KILN_SOAK_PORT"
port_in_use "$PORT" && die "port $PORT is in use: set KILN_SOAK_PORT to a free port"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-soak.XXXXXX")
KILN_STACK_LOGS=$WORK
cleanup() {
  cluster_stop "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_dependencies
log "soak cluster on 127.0.0.1:$PORT"
cluster_init "$WORK" "$PORT"
cluster_start "$WORK"
log "bootstrap, migrations, seed"
db_prepare "$PORT"
DATABASE_URL=$(db_url "$PORT")
KILN_ADMIN_DATABASE_URL=$(db_url "$PORT" "$ADMIN_ROLE")
export DATABASE_URL KILN_ADMIN_DATABASE_URL
export PGOPTIONS='-c client_min_messages=warning'
tsx scripts/soak.ts "$@"
