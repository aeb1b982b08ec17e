#!/usr/bin/env bash
# npm test: every suite against a throwaway Postgres cluster, ending with one "N passed, N failed" line.
#
# Installs what is missing (Debian packages when root, npm ci, the pg_net look-alike), starts a
# private cluster on a free loopback port, applies the platform bootstrap, the migrations (with
# the Supabase CLI) and the seed, then runs: schema lint, advisors, generated-types and schema freshness,
# pgTAP, Deno checks and tests for the Edge Functions, tsc, and vitest. The cluster and anything
# the run started are stopped on every exit path.

usage() {
  cat <<'EOF'
usage: npm test [-- SUITE...]

Runs all suites, or only the named ones:
  lint       supabase db lint (plpgsql_check), fails on errors
  advisors   supabase db advisors, fails on any warning about public/private
  types      the committed Database types and supabase/schema.sql match the migrated schema
  pgtap      supabase/tests/database/*.test.sql through pg_prove
  deno       deno check, lint, fmt --check and test on supabase/functions
  tsc        tsc --noEmit on scripts and TypeScript tests
  vitest     supabase/tests/integration/**/*.test.ts

Environment: KILN_TEST_PORT picks the cluster port (default: first free from 54330).
Suites get DATABASE_URL (as postgres, the non-superuser project owner) and
KILN_ADMIN_DATABASE_URL (as supabase_admin, only for stand-ins of the platform's own processes).
Exit status: 0 when every suite passed, 1 otherwise, 2 for bad arguments.
EOF
}

ALL_SUITES=(lint advisors types pgtap deno tsc vitest)
SUITES=()
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    lint | advisors | types | pgtap | deno | tsc | vitest) SUITES+=("$arg") ;;
    *) echo "unknown suite: $arg (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#SUITES[@]} -eq 0 ] && SUITES=("${ALL_SUITES[@]}")

# shellcheck source=lib/local-stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/local-stack.sh"
set +e # suites fail individually; the summary reports them
cd "$KILN_ROOT" || exit 1

export PATH="$KILN_ROOT/node_modules/.bin:$PATH"
# Deno ships its own CA list; use the system store too so npm: imports resolve behind a TLS proxy.
export DENO_TLS_CA_STORE=${DENO_TLS_CA_STORE:-system,mozilla}

PASSED=0
FAILED=0
SUMMARY_PRINTED=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-test.XXXXXX")
KILN_STACK_LOGS=$WORK
# Every exit path stops the cluster and, if the suites never got to report (a setup step died,
# or the run was interrupted), still ends with the summary line, counting the failure.
cleanup() {
  cluster_stop "$WORK"
  rm -rf "$WORK"
  [ "$SUMMARY_PRINTED" = 1 ] || echo "$PASSED passed, $((FAILED + 1)) failed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_dependencies || exit 1

# The first free port from 54330. A port free when checked can still be taken before postgres
# binds it (the system may give it to another program's outgoing connection as its local port):
# then the next one is tried.
start_on_a_free_port() {
  local candidate
  for candidate in $(seq 54330 54399); do
    port_in_use "$candidate" && continue
    log "starting a throwaway cluster on 127.0.0.1:$candidate"
    cluster_init "$WORK" "$candidate" || exit 1
    if as_pg_owner "$PG_BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w -t 60 start >/dev/null; then
      PORT=$candidate
      return 0
    fi
    grep -q "Address already in use" "$WORK/postgres.log" || { tail -20 "$WORK/postgres.log" >&2; die "postgres did not start"; }
    log "port $candidate was taken before postgres bound it; trying the next"
    rm -rf "$WORK/data" "$WORK/postgres.log"
  done
  die "no free port in 54330-54399"
}

PORT=${KILN_TEST_PORT:-}
if [ -n "$PORT" ]; then
  log "starting a throwaway cluster on 127.0.0.1:$PORT"
  cluster_init "$WORK" "$PORT" || exit 1
  cluster_start "$WORK" || exit 1
else
  start_on_a_free_port
fi
# Suites connect as `postgres`, the project owner's non-superuser role, as on hosted Supabase.
# The superuser's URL is exported only for what stands in for the platform's own processes.
DB_URL=$(db_url "$PORT")
ADMIN_DB_URL=$(db_url "$PORT" "$ADMIN_ROLE")
export DATABASE_URL=$DB_URL
export KILN_ADMIN_DATABASE_URL=$ADMIN_DB_URL
export PGOPTIONS='-c client_min_messages=warning'

log "bootstrap, migrations, seed"
db_prepare "$PORT" || exit 1
# pgTAP is a privileged extension: created by the superuser, as supautils does on the platform.
psql_url "$ADMIN_DB_URL" -c 'create extension if not exists pgtap with schema extensions' >/dev/null || exit 1
psql_url "$DB_URL" -f sql/test_helpers.sql >/dev/null || exit 1
psql_url "$ADMIN_DB_URL" -f sql/test_platform_helpers.sql >/dev/null || exit 1

FAILED_SUITES=()
record() { # record SUITE PASSED FAILED
  PASSED=$((PASSED + $2))
  FAILED=$((FAILED + $3))
  [ "$3" -gt 0 ] && FAILED_SUITES+=("$1")
  log "$1: $2 passed, $3 failed"
}
check() { # check NAME COMMAND...: one test that passes when the command exits 0
  local name=$1
  shift
  if "$@"; then record "$name" 1 0; else record "$name" 0 1; fi
}

run_lint() {
  supabase db lint --db-url "$(cli_url "$DB_URL")" --schema public,private --level error --fail-on error
}

run_advisors() {
  local report="$WORK/advisors.json"
  supabase db advisors --db-url "$(cli_url "$DB_URL")" --level warn --output-format json >"$report" 2>"$WORK/advisors.err" ||
    { cat "$WORK/advisors.err" >&2; return 1; }
  node -e '
    const { results = [] } = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const ours = results.filter((r) => ["public", "private"].includes(r.metadata?.schema));
    for (const r of ours) console.error(`${r.level} ${r.name}: ${r.detail}`);
    process.exit(ours.length ? 1 : 0);
  ' "$report"
}

run_types() {
  local fresh="$WORK/database.types.ts"
  bash scripts/db-types.sh --db-url "$DB_URL" --out "$fresh" || return 1
  if ! diff -u supabase/functions/_shared/database.types.ts "$fresh" >"$WORK/types.diff"; then
    head -40 "$WORK/types.diff" >&2
    echo "supabase/functions/_shared/database.types.ts is stale: run npm run db:types" >&2
    return 1
  fi
  local schema="$WORK/schema.sql"
  bash scripts/db-schema.sh --db-url "$DB_URL" --out "$schema" || return 1
  if ! diff -u supabase/schema.sql "$schema" >"$WORK/schema.diff"; then
    head -40 "$WORK/schema.diff" >&2
    echo "supabase/schema.sql is stale: run npm run db:schema" >&2
    return 1
  fi
}

run_pgtap() {
  local out="$WORK/pgtap.out" ok not_ok
  pg_prove --verbose --ext .sql -d "$DB_URL" supabase/tests/database/*.test.sql >"$out" 2>&1
  local status=$?
  grep -E '^(not ok|ok) |^# |Failed|Result|Files=' "$out" | grep -Ev '^ok ' >&2
  ok=$(grep -cE '^ok [0-9]+' "$out")
  not_ok=$(grep -cE '^not ok [0-9]+' "$out")
  # A file that dies or misses its plan fails even when no single assertion did.
  [ "$status" -ne 0 ] && [ "$not_ok" -eq 0 ] && not_ok=1
  record pgtap "$ok" "$not_ok"
}

run_deno() {
  local out="$WORK/deno-test.out" passed failed
  check "deno check" deno check supabase/functions/
  check "deno lint" deno lint supabase/functions/
  check "deno fmt" deno fmt --check supabase/functions/
  deno test --allow-env --allow-net --allow-read supabase/functions/ 2>&1 | tee "$out" >&2
  local status=${PIPESTATUS[0]}
  passed=$(sed -nE 's/.*\| ([0-9]+) passed.*/\1/p' "$out" | tail -1)
  failed=$(sed -nE 's/.*\| ([0-9]+) failed.*/\1/p' "$out" | tail -1)
  passed=${passed:-0}
  failed=${failed:-0}
  [ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
  record "deno test" "$passed" "$failed"
}

run_vitest() {
  local report="$WORK/vitest.json" counts
  vitest run --reporter=default --reporter=json --outputFile="$report" >&2
  local status=$?
  counts=$(node -e '
    try {
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      console.log(r.numPassedTests, r.numFailedTests);
    } catch { console.log("0 0"); }
  ' "$report")
  set -- $counts
  local failed=$2
  [ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
  record vitest "$1" "$failed"
}

for suite in "${SUITES[@]}"; do
  log "suite: $suite"
  case "$suite" in
    lint) check lint run_lint ;;
    advisors) check advisors run_advisors ;;
    types) check types run_types ;;
    pgtap) run_pgtap ;;
    deno) run_deno ;;
    tsc) check tsc tsc --noEmit -p tsconfig.json ;;
    vitest) run_vitest ;;
  esac
done

[ ${#FAILED_SUITES[@]} -gt 0 ] && log "failed: ${FAILED_SUITES[*]}"
SUMMARY_PRINTED=1
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
