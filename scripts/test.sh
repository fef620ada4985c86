#!/usr/bin/env bash
# The whole test suite, on the machine's PostgreSQL and Redis with a real Celery worker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# Debian packages some tests drive: the browser tests (tests/test_admin_browser*.py) the machine's Chromium
# (Playwright's own browser download is not used), the Twig oracle tests (marker twig_oracle) real Twig
# under PHP's command line. Install what is missing; those tests fail or skip, saying so, when that was
# impossible. SYNC_CHROMIUM names another Chromium executable.
chromium="${SYNC_CHROMIUM:-/usr/bin/chromium}"
missing=()
[ -x "$chromium" ] || missing+=(chromium)
{ command -v php >/dev/null && [ -f /usr/share/php/Twig/autoload.php ]; } || missing+=(php-cli php-twig)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: missing, installing the Debian packages: ${missing[*]}" >&2
  as_root=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
    as_root=(sudo -n)
  fi
  if [ "$(id -u)" -ne 0 ] && [ ${#as_root[@]} -eq 0 ]; then
    echo "test.sh: cannot install ${missing[*]} (not root, no sudo): install them (or set SYNC_CHROMIUM);" \
      "the tests that need them fail or skip" >&2
  elif ! command -v apt-get >/dev/null; then
    echo "test.sh: cannot install ${missing[*]} (no apt-get): the tests that need them fail or skip" >&2
  elif ! { "${as_root[@]}" apt-get update -qq >/dev/null \
           && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
              "${missing[@]}" >/dev/null; }; then
    echo "test.sh: apt-get install ${missing[*]} failed: the tests that need them fail or skip" >&2
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
