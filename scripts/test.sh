#!/usr/bin/env bash
# The whole test suite, on the machine's PostgreSQL and Redis with a real Celery worker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# The browser test (tests/test_admin_browser.py) drives the machine's Chromium: Playwright's own browser
# download is not used. Install it when it is missing; the test fails, saying so, if that was impossible.
chromium="${SYNC_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "test.sh: $chromium is missing: installing the Debian package chromium" >&2
  as_root=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
    as_root=(sudo -n)
  fi
  if [ "$(id -u)" -ne 0 ] && [ ${#as_root[@]} -eq 0 ]; then
    echo "test.sh: cannot install Chromium (not root, no sudo): install the package chromium, or set" \
      "SYNC_CHROMIUM to a Chromium executable; the browser test fails without it" >&2
  elif ! command -v apt-get >/dev/null; then
    echo "test.sh: cannot install Chromium (no apt-get): install it and set SYNC_CHROMIUM to its executable;" \
      "the browser test fails without it" >&2
  elif ! { "${as_root[@]}" apt-get update -qq >/dev/null \
           && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
    echo "test.sh: apt-get install chromium failed: the browser test fails without it" >&2
  fi
fi
# The browser test's screenshots: the committed ones in docs/screenshots are refreshed on purpose
# (`SYNC_SCREENSHOTS_DIR=docs/screenshots scripts/test.sh -m browser`), not by every run of the suite.
export SYNC_SCREENSHOTS_DIR="${SYNC_SCREENSHOTS_DIR:-${TMPDIR:-/tmp}/sync-screenshots}"
export DATABASE_URL="${TEST_DATABASE_URL:-postgresql://root@127.0.0.1:5432/test}"
export CELERY_BROKER_URL="${TEST_CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}"
# The tests' sources and targets are servers on loopback, which the default policy denies.
export SYNC_ALLOWED_NETWORKS="${SYNC_ALLOWED_NETWORKS:-127.0.0.0/8,::1/128}"
.venv/bin/ruff check .
# The modules depend one way ([tool.importlinter] in pyproject.toml).
.venv/bin/lint-imports
DATABASE_URL=sqlite:////tmp/sync-makemigrations-check.sqlite3 \
  .venv/bin/python manage.py makemigrations --check --dry-run
# Two test processes side by side (SYNC_TEST_PROCESSES=0 runs them in this one). The fuzz tests run 40 fixed
# examples each; SYNC_FUZZ_EXAMPLES=5000 runs that many fresh ones (tests/syncapp/test_fuzz.py).
exec .venv/bin/pytest -n "${SYNC_TEST_PROCESSES:-2}" "$@"
