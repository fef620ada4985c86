#!/usr/bin/env bash
# The benchmark table of bench/README.md: set up, then bench/throughput.py (its --help tells the options).
# Needs the machine's PostgreSQL (127.0.0.1:5432, trust) and Redis (127.0.0.1:6379).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python bench/throughput.py "$@"
