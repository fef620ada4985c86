#!/usr/bin/env bash
# The whole test suite, on the machine's PostgreSQL and Redis with a real Celery worker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DATABASE_URL="${TEST_DATABASE_URL:-postgresql://root@127.0.0.1:5432/test}"
export CELERY_BROKER_URL="${TEST_CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}"
# The tests' sources and targets are servers on loopback, which the default policy denies.
export SYNC_ALLOWED_NETWORKS="${SYNC_ALLOWED_NETWORKS:-127.0.0.0/8,::1/128}"
.venv/bin/ruff check .
DATABASE_URL=sqlite:////tmp/sync-makemigrations-check.sqlite3 \
  .venv/bin/python manage.py makemigrations --check --dry-run
exec .venv/bin/pytest "$@"
