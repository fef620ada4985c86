#!/usr/bin/env bash
# The benchmark table of bench/README.md: set up, then bench/throughput.py (its --help tells the options).
# Needs the machine's PostgreSQL (127.0.0.1:5432, trust) and Redis (127.0.0.1:6379).
# dlt, the peer, gets a virtual environment of its own (bench/.venv-dlt): it is no dependency of the service.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [[ " $* " != *" --no-dlt "* ]]; then
  stamp=bench/.venv-dlt/.installed
  if [ ! -f "$stamp" ]; then
    "${PYTHON:-python3}" -m venv bench/.venv-dlt
    bench/.venv-dlt/bin/python -m pip install --quiet "dlt[postgres]"
    touch "$stamp"
  fi
fi
exec .venv/bin/python bench/throughput.py "$@"
