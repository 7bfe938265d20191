#!/usr/bin/env bash
# The whole test suite, one command: lint, then every test against the real PostgreSQL and Redis
# (started by scripts/services.sh), with the production stack's test (tests/test_production.py:
# scripts/serve.sh for real, on its own ports), then again on the embedded default (SQLite, no
# Redis, no production test). Under CI=true the PostgreSQL, Redis and production tests must run:
# if the services cannot start, or such a test would be skipped, the run fails. Extra arguments
# go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh"

echo "==> programs the tests drive (certmonger and scep for SCEP, chromium for the browser tests)"
if ! scripts/test-tools.sh; then
  if [ "${CI:-}" = "true" ]; then
    echo "CI=true and the test programs could not be installed: failing" >&2
    exit 1
  fi
  echo "warning: test programs unavailable; the SCEP interop and browser tests will be skipped" >&2
fi

echo "==> lint (ruff, and the layering between the apps: lint-imports)"
ruff check .
ruff format --check .
lint-imports --no-cache

echo "==> services (PostgreSQL, Redis)"
# The SQLite pass repeats what does not depend on the database server; the production stack
# and the browser tests, which cost minutes, run once: in the first pass when it runs.
once="not production"
# Services this run starts are stopped when it ends, pass or fail (ones already running stay).
if ! scripts/services.sh status >/dev/null 2>&1; then
  trap 'scripts/services.sh stop >/dev/null 2>&1 || true' EXIT
fi
if scripts/services.sh start; then
  eval "$(scripts/services.sh env)"
  echo "==> tests on PostgreSQL + Redis"
  python -m pytest -p no:cacheprovider "$@"
  once="not production and not browser"
elif [ "${CI:-}" = "true" ]; then
  echo "CI=true and PostgreSQL/Redis could not be started: failing" >&2
  exit 1
else
  echo "warning: services unavailable; their tests will be skipped" >&2
fi

echo "==> tests on the embedded default (SQLite, no Redis)"
env -u DATABASE_URL -u REDIS_URL python -m pytest -p no:cacheprovider \
  -m "not postgres and not redis and $once" "$@"
