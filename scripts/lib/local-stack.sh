# Shared shell functions for the local Supabase-compatible stack (sourced, not executed).
#
# Used by scripts/test.sh (a throwaway cluster per run), scripts/stack.sh (a long-lived one) and
# the scripts that start from either: demo.sh, soak.sh and bench/bench.sh.
# Everything here is development tooling: nothing in this file deploys.
# Every step that can fail calls `die` itself: callers use these functions in `||` lists, where
# bash ignores `set -e`.

set -euo pipefail

KILN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_MAJOR=15
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/$PG_MAJOR/bin}
SUPABASE_CLI="$KILN_ROOT/node_modules/.bin/supabase"

log() { printf '\033[36m[kiln]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[kiln] error:\033[0m %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Run a Postgres server binary as the cluster owner: initdb and postgres refuse to run as root.
as_pg_owner() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_sharedir() { "$PG_BINDIR/pg_config" --sharedir 2>/dev/null || echo "/usr/share/postgresql/$PG_MAJOR"; }
pg_pkglibdir() { "$PG_BINDIR/pg_config" --pkglibdir 2>/dev/null || echo "/usr/lib/postgresql/$PG_MAJOR/lib"; }

# True when the real pg_net extension (a preloaded background worker) is installed.
has_real_pg_net() { [ -f "$(pg_pkglibdir)/pg_net.so" ]; }

# Debian packages the stack needs, and the file each one provides.
apt_requirements() {
  cat <<EOF
postgresql-$PG_MAJOR $PG_BINDIR/initdb
postgresql-$PG_MAJOR-cron $(pg_pkglibdir)/pg_cron.so
postgresql-$PG_MAJOR-pgtap $(pg_sharedir)/extension/pgtap.control
postgresql-$PG_MAJOR-plpgsql-check $(pg_sharedir)/extension/plpgsql_check.control
postgresql-$PG_MAJOR-wal2json $(pg_pkglibdir)/wal2json.so
libtap-parser-sourcehandler-pgtap-perl /usr/bin/pg_prove
procps /usr/bin/pgrep
EOF
}

missing_packages() {
  local pkg file
  while read -r pkg file; do
    [ -e "$file" ] || echo "$pkg"
  done < <(apt_requirements) | sort -u
}

ensure_system_packages() {
  local missing=()
  mapfile -t missing < <(missing_packages)
  [ ${#missing[@]} -eq 0 ] && return 0
  if is_root && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || die "apt-get install failed"
    mapfile -t missing < <(missing_packages)
    [ ${#missing[@]} -eq 0 ] || die "still missing after apt-get install: ${missing[*]}"
  else
    die "missing system packages; install them with: sudo apt-get install ${missing[*]}"
  fi
}

# Without the real pg_net, install the look-alike extension files (sql/pg_net_lookalike) so that
# `create extension pg_net` in a migration works unchanged; the stack runs its worker.
ensure_pg_net() {
  has_real_pg_net && return 0
  local dest src changed=0
  dest="$(pg_sharedir)/extension"
  for src in "$KILN_ROOT"/sql/pg_net_lookalike/*; do
    cmp -s "$src" "$dest/$(basename "$src")" || changed=1
  done
  [ $changed = 0 ] && return 0
  if [ -w "$dest" ]; then
    log "installing the pg_net look-alike extension into $dest"
    cp "$KILN_ROOT"/sql/pg_net_lookalike/* "$dest/" || die "could not copy the pg_net look-alike into $dest"
  else
    die "pg_net is not installed: run once as root to install the look-alike (cp sql/pg_net_lookalike/* $dest/), or install the real pg_net"
  fi
}

# npm ci when node_modules is missing or older than the lock file.
ensure_node_modules() {
  local stamp="$KILN_ROOT/node_modules/.kiln-lock.sha256" want
  want=$(sha256sum "$KILN_ROOT/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "npm ci"
    (cd "$KILN_ROOT" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"
    echo "$want" >"$stamp"
  fi
}

ensure_dependencies() {
  ensure_system_packages
  ensure_pg_net
  ensure_node_modules
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The cluster's superuser, as on hosted Supabase: it applies the platform bootstrap, which makes
# `postgres` the project owner's non-superuser role. Everything else connects as `postgres`.
ADMIN_ROLE=supabase_admin

# db_url PORT [ROLE]: the loopback URL of a local cluster's database (trust authentication).
db_url() { echo "postgresql://${2:-postgres}@127.0.0.1:$1/postgres"; }

# cluster_init DIR PORT: a new cluster in DIR/data, owned by the postgres user when run as root.
cluster_init() {
  local dir=$1 port=$2 preload=pg_cron
  has_real_pg_net && preload="pg_cron,pg_net"
  mkdir -p "$dir"
  is_root && chown postgres "$dir"
  as_pg_owner "$PG_BINDIR/initdb" -D "$dir/data" -U "$ADMIN_ROLE" -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  cat >>"$dir/data/postgresql.conf" <<EOF

# kiln local stack
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_preload_libraries = '$preload'
cron.database_name = 'postgres'
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
# Throwaway data: durability off for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  # Trust on loopback TCP and on the socket in the cluster's own directory: no other host can
  # reach a cluster listening on 127.0.0.1.
  cat >"$dir/data/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
EOF
}

cluster_start() {
  local dir=$1
  as_pg_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null ||
    { tail -20 "$dir/postgres.log" >&2; die "postgres did not start"; }
}

# True when the server binary was installed (its inode changed; dpkg keeps the package's mtime)
# after the cluster in DIR started: a postgresql-15 upgrade under a running server, which then
# fails to load the new libraries (plpgsql: "undefined symbol") until it restarts.
cluster_binary_newer() {
  local pidfile="$1/data/postmaster.pid" started installed
  [ -f "$pidfile" ] || return 1
  started=$(sed -n 3p "$pidfile")
  installed=$(stat -c %Z "$PG_BINDIR/postgres" 2>/dev/null) || return 1
  [[ "$started" =~ ^[0-9]+$ ]] && [ "$installed" -gt "$started" ]
}

stale_binary_message() {
  echo "the postgres server binary ($PG_BINDIR/postgres) was installed at $(date -d "@$(stat -c %Z "$PG_BINDIR/postgres")" '+%F %T') after the cluster in $1 started at $(date -d "@$(sed -n 3p "$1/data/postmaster.pid")" '+%F %T')"
}

# cluster_restart_if_stale DIR: restart a running cluster whose server binary was upgraded under it.
cluster_restart_if_stale() {
  local dir=$1
  cluster_binary_newer "$dir" || return 0
  log "$(stale_binary_message "$dir"): restarting it"
  as_pg_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -m fast -w -t 60 restart >/dev/null ||
    { tail -20 "$dir/postgres.log" >&2; die "postgres did not restart"; }
}

cluster_stop() {
  local dir=$1 postmaster
  [ -f "$dir/data/postmaster.pid" ] || return 0
  # Tests freeze the real pg_net's background worker (SIGSTOP) while it must not send: a frozen
  # worker never handles the shutdown's SIGTERM and the server would wait for it. Thaw the server's
  # processes first (SIGCONT does nothing to a running one).
  postmaster=$(head -1 "$dir/data/postmaster.pid")
  [[ "$postmaster" =~ ^[0-9]+$ ]] && { pgrep -P "$postmaster" | xargs -r kill -CONT 2>/dev/null || true; }
  # A run that failed with "undefined symbol" errors should say why.
  if cluster_binary_newer "$dir"; then
    printf '\033[33m[kiln] warning:\033[0m %s; errors since then (such as plpgsql "undefined symbol") came from the old server, not from the code\n' \
      "$(stale_binary_message "$dir")" >&2
  fi
  as_pg_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# The CLI treats any port but 54322 as a remote project and insists on TLS; local clusters have none.
cli_url() { case "$1" in *\?*) echo "$1&sslmode=disable" ;; *) echo "$1?sslmode=disable" ;; esac; }

psql_url() { psql "$1" -X -q -v ON_ERROR_STOP=1 "${@:2}"; }

# migrations_not_here URL: the migration versions that database has applied and
# supabase/migrations does not hold (another checkout applied them), space-separated.
migrations_not_here() {
  local applied version
  applied=$(psql_url "$1" -At -c "select version from supabase_migrations.schema_migrations order by version" 2>/dev/null) || return 0
  for version in $applied; do
    compgen -G "$KILN_ROOT/supabase/migrations/${version}_*.sql" >/dev/null || printf '%s ' "$version"
  done | sed 's/ $//'
}

# db_prepare PORT: what the platform provides (as the superuser), then, as `postgres`, our
# migrations (with the real CLI), the local stack's settings overrides and the seed.
db_prepare() {
  local url admin_url
  url=$(db_url "$1")
  admin_url=$(db_url "$1" "$ADMIN_ROLE")
  psql_url "$admin_url" -c 'select 1' >/dev/null 2>&1 ||
    die "no $ADMIN_ROLE role on 127.0.0.1:$1: this cluster predates the hosted-like roles; recreate it (npm run stack:reset)"
  psql_url "$admin_url" -f "$KILN_ROOT/sql/platform_bootstrap.sql" >/dev/null || die "the platform bootstrap failed"
  (cd "$KILN_ROOT" && "$SUPABASE_CLI" migration up --db-url "$(cli_url "$url")" --include-all >/dev/null 2>"$KILN_STACK_LOGS/migrations.log") ||
    { cat "$KILN_STACK_LOGS/migrations.log" >&2; die "migrations failed"; }
  psql_url "$url" -f "$KILN_ROOT/sql/local_settings.sql" >/dev/null || die "the local settings failed"
  if [ -f "$KILN_ROOT/supabase/seed.sql" ]; then
    psql_url "$url" -f "$KILN_ROOT/supabase/seed.sql" >/dev/null || die "the seed failed"
  fi
}
