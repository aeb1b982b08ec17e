#!/usr/bin/env bash
# npm run db:types: generate the TypeScript `Database` types from a live schema.
#
# Runs @supabase/postgres-meta directly: the same generator `supabase gen types typescript`
# runs inside its container, so the output matches what the CLI would write on the platform.

usage() {
  cat <<'EOF_USAGE'
usage: npm run db:types [-- --db-url URL] [--out FILE]

  --db-url URL   database to read (default: the local stack, postgresql://postgres@127.0.0.1:54322/postgres)
  --out FILE     where to write (default: supabase/functions/_shared/database.types.ts)
EOF_USAGE
}

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DB_URL=${DATABASE_URL:-postgresql://postgres@127.0.0.1:54322/postgres}
OUT="$ROOT/supabase/functions/_shared/database.types.ts"
while [ $# -gt 0 ]; do
  case "$1" in
    --db-url) DB_URL=${2:?--db-url needs a value}; shift 2 ;;
    --out) OUT=${2:?--out needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
PG_META_DB_URL="$DB_URL" \
  PG_META_GENERATE_TYPES=typescript \
  PG_META_GENERATE_TYPES_INCLUDED_SCHEMAS=public \
  PG_META_GENERATE_TYPES_DETECT_ONE_TO_ONE_RELATIONSHIPS=true \
  node "$ROOT/node_modules/@supabase/postgres-meta/dist/server/server.js" >"$generated" 2>"$generated.err" ||
  { cat "$generated.err" >&2; rm -f "$generated.err"; exit 1; }
rm -f "$generated.err"
[ -s "$generated" ] || { echo "the type generator wrote nothing" >&2; exit 1; }
mv "$generated" "$OUT"
echo "wrote $OUT" >&2
