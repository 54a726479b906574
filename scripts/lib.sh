# Shared set-up for scripts/serve and scripts/test: PostgreSQL and cargo on a fresh machine.

pg_ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p 5432
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

# Start the local PostgreSQL cluster if it is installed but not running.
ensure_local_postgres() {
  pg_ready && return 0
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_ready && return 0; sleep 1; done
  echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2
  return 1
}

# Debian's Chromium and ChromeDriver, for the console's browser tests (tests/api/console.rs).
ensure_chromium() {
  command -v chromedriver >/dev/null 2>&1 && [ -x /usr/bin/chromium ] && return 0
  echo "installing chromium and chromium-driver (Debian's packages) for the browser tests" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q chromium chromium-driver >/dev/null ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium chromium-driver >/dev/null; }
}

# Debian's HAProxy, the load balancer of scripts/cluster and of tests/api/replicas.rs.
ensure_haproxy() {
  command -v haproxy >/dev/null 2>&1 && return 0
  echo "installing haproxy (Debian's package) for the cluster and its tests" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q haproxy >/dev/null ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q haproxy >/dev/null; }
}

ensure_cargo() {
  if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null 2>&1 || { echo "cargo (Rust stable) is required" >&2; return 1; }
}

# The ceiling of a benchmark: pgbench, one-row inserts into a table shaped like `events`
# (created and dropped in database $1), for $2 seconds at $3 clients; prints tps.
pgbench_ceiling() {
  local db=$1 secs=$2 clients=$3 work
  work=$(mktemp -d)
  psql -q -h 127.0.0.1 -U postgres "$db" <<'SQL'
DROP TABLE IF EXISTS bench_events;
CREATE TABLE bench_events (LIKE events INCLUDING DEFAULTS);
ALTER TABLE bench_events ALTER COLUMN position SET DEFAULT nextval('events_position_seq');
ALTER TABLE bench_events ADD PRIMARY KEY (aggregate_type, aggregate_id, sequence);
SQL
  cat >"$work/insert.sql" <<'SQL'
\set s random(1, 1000000000)
INSERT INTO bench_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ('Bench', 'b' || :client_id, :s, 'Benched', '1.0', '{"AbsenceProcessed":{"absence_id":1,"processor":"boss","result":"ok","permission":true}}', '{"actor":"boss","actor_kind":"manager","channel":"http","request_id":"00000000-0000-0000-0000-000000000000"}') ON CONFLICT DO NOTHING;
SQL
  pgbench -n -h 127.0.0.1 -U postgres -c "$clients" -j $((clients < 2 ? 1 : 2)) -T "$secs" \
    -f "$work/insert.sql" "$db" 2>/dev/null | awk '/^tps/ {print int($3)}'
  psql -q -h 127.0.0.1 -U postgres "$db" -c "DROP TABLE bench_events"
  rm -rf "$work"
}
