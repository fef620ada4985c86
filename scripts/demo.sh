#!/usr/bin/env bash
# The demo: set up, start the bundled sample source, import a configuration, run it twice.
# With no DATABASE_URL and no CELERY_BROKER_URL it runs on SQLite with tasks in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python manage.py migrate --no-input -v 0
exec .venv/bin/python manage.py demo "$@"
