"""The peer of the benchmark: dlt's `rest_api` source reading the bench source into PostgreSQL.

    bench/.venv-dlt/bin/python bench/dlt_peer.py --url http://127.0.0.1:8950 \
        --dsn postgresql://root@127.0.0.1:5432/sync_bench_dlt --pagination page --expect 100000

Runs with the virtual environment that bench/run.sh makes for dlt (`pip install "dlt[postgres]"`),
never with the service's: dlt is no dependency of the service. Reads `/records` 100 a page, by page
number (`page_number` from 1, no total: the source's `count` counts records, dlt's `total_path`
counts pages, so dlt stops at the first empty page, one request more than the service) or by the
source's next links (`json_link` on `next`), and loads into the database of `--dsn` with dlt's
defaults otherwise (append, nested lists as child tables, dicts flattened into columns). The dataset
and the pipeline's local state are dropped first, so every run is a first load. dlt's anonymous
telemetry is off (a call home per run is no part of the load).

Prints one line of JSON: records, seconds (`pipeline.run`: extract, normalize, load), records/s.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
import psycopg2  # noqa: E402
from dlt.sources.rest_api import rest_api_source  # noqa: E402

PAGINATORS = {
    "page": {"type": "page_number", "page_param": "page", "base_page": 1, "total_path": None},
    "next": {"type": "json_link", "next_url_path": "next"},
}


def database_ensure(*, dsn: str) -> None:
    """Create the peer's database when it is missing."""
    name = dsn.rsplit("/", 1)[1]
    admin = psycopg2.connect(dsn.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()


def dataset_drop(*, dsn: str, dataset: str) -> None:
    """Drop the dataset (and its staging dataset) so the next run is a first load."""
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for schema in (dataset, f"{dataset}_staging"):
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        connection.close()


def rows_count(*, dsn: str, dataset: str, table: str) -> int:
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT count(*) FROM "{dataset}"."{table}"')
            return cursor.fetchone()[0]
    finally:
        connection.close()


def dlt_credentials(dsn: str) -> str:
    """Return the DSN as dlt takes it: dlt insists on a password, which a server that trusts us ignores."""
    parts = urlsplit(dsn)
    if parts.password is not None or not parts.username:
        return dsn
    return urlunsplit(parts._replace(netloc=f"{parts.username}:unused@{parts.netloc.split('@', 1)[1]}"))


def peer_run(*, url: str, dsn: str, dataset: str, pagination: str, per_page: int) -> tuple[int, float]:
    """Load every record of the bench source with dlt as a first load; return the rows and seconds."""
    database_ensure(dsn=dsn)
    dataset_drop(dsn=dsn, dataset=dataset)
    source = rest_api_source({
        "client": {"base_url": url, "paginator": PAGINATORS[pagination]},
        "resources": [{
            "name": "records",
            "endpoint": {"path": "records", "params": {"per_page": per_page}, "data_selector": "results"},
        }],
    })
    # A fresh pipelines directory: no local state from an earlier run.
    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as pipelines_dir:
        pipeline = dlt.pipeline(
            pipeline_name="bench_dlt", pipelines_dir=pipelines_dir, dataset_name=dataset,
            destination=dlt.destinations.postgres(credentials=dlt_credentials(dsn)),
        )
        started = time.perf_counter()
        pipeline.run(source)
        seconds = time.perf_counter() - started
    return rows_count(dsn=dsn, dataset=dataset, table="records"), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the bench source (bench/source_api.py)")
    parser.add_argument("--dsn", required=True, help="the peer's PostgreSQL database (created if missing)")
    parser.add_argument("--dataset", default="bench_dlt")
    parser.add_argument("--pagination", choices=sorted(PAGINATORS), default="page")
    parser.add_argument("--per-page", type=int, default=100)
    parser.add_argument("--expect", type=int, help="the records the source holds: fail on any other count")
    args = parser.parse_args()
    records, seconds = peer_run(url=args.url, dsn=args.dsn, dataset=args.dataset, pagination=args.pagination,
                                per_page=args.per_page)
    if args.expect is not None and records != args.expect:
        sys.exit(f"dlt loaded {records} records, expected {args.expect}")
    print(json.dumps({"records": records, "seconds": round(seconds, 3),
                      "records_per_second": round(records / seconds, 1), "dlt": dlt.__version__}))


if __name__ == "__main__":
    main()
