#!/usr/bin/env bash
# The whole suite. Locally: SQLite, plus PostgreSQL and Redis when they answer (tests that need a
# missing service skip with a one-line reason). Under CI=true: SQLite AND PostgreSQL, Redis and
# Chromium required; a missing one fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PYTHONDONTWRITEBYTECODE=1
PG_URL="${IMALI_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
CI="${CI:-false}"

port_open() { "$PY" - "$1" "$2" <<'PYEOF'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError:
    sys.exit(1)
PYEOF
}

if [ "$CI" = "true" ]; then
  # Services this machine kind starts before a session; start them again if they stopped.
  if ! port_open 127.0.0.1 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  if ! port_open 127.0.0.1 6379; then
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  if [ ! -x /usr/bin/chromium ]; then
    echo "Installing Debian's Chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || { echo "FAILED: could not install chromium"; exit 1; }
  fi
  port_open 127.0.0.1 5432 || { echo "FAILED: PostgreSQL is required under CI=true and does not answer on 127.0.0.1:5432"; exit 1; }
  port_open 127.0.0.1 6379 || { echo "FAILED: Redis is required under CI=true and does not answer on 127.0.0.1:6379"; exit 1; }
fi

# Redis for the Huey integration tests (they skip locally if it is absent, fail under CI): database
# 15 for the SQLite pass, 14 for the PostgreSQL pass.
REDIS_BASE="${IMALI_TEST_REDIS_BASE:-redis://127.0.0.1:6379}"

# The two passes are independent (own database, own var dir, own Redis database), so when both run
# they run at the same time: much of the suite waits on peers, sockets and subprocesses, and the
# machine has two cores. IMALI_TEST_SEQUENTIAL=1 runs them one after the other.
run_sqlite() {
  env -u DATABASE_URL IMALI_TEST_REDIS_URL="$REDIS_BASE/15" IMALI_VAR_DIR="$(mktemp -d)" .venv/bin/pytest "$@"
}
run_postgres() {
  DATABASE_URL="$PG_URL" IMALI_PG_TEST_DB="test_imali_ci" IMALI_TEST_REDIS_URL="$REDIS_BASE/14" \
    IMALI_VAR_DIR="$(mktemp -d)" .venv/bin/pytest "$@"
}

status=0
if [ "$CI" = "true" ] || port_open 127.0.0.1 5432; then
  if [ "${IMALI_TEST_SEQUENTIAL:-0}" = "1" ]; then
    echo "=== Test suite on SQLite ==="
    run_sqlite "$@" || status=$?
    echo "=== Test suite on PostgreSQL ($PG_URL) ==="
    run_postgres "$@" || status=$?
  else
    pg_log="$(mktemp)"
    echo "=== Test suite on PostgreSQL ($PG_URL), in the background; its output follows the SQLite pass ==="
    run_postgres "$@" >"$pg_log" 2>&1 &
    pg_pid=$!
    echo "=== Test suite on SQLite ==="
    run_sqlite "$@" || status=$?
    pg_status=0
    wait "$pg_pid" || pg_status=$?
    echo "=== Test suite on PostgreSQL ($PG_URL) ==="
    cat "$pg_log"
    rm -f "$pg_log"
    [ "$pg_status" = 0 ] || status=$pg_status
  fi
else
  echo "=== Test suite on SQLite ==="
  run_sqlite "$@" || status=$?
  echo "PostgreSQL not reachable on 127.0.0.1:5432: skipping the PostgreSQL run (it is required under CI=true)."
fi
exit $status
