"""The peer: dlt's `rest_api` source into PostgreSQL, on the bench source, with dlt's defaults.

    bench/.venv-dlt/bin/python bench/dlt_peer.py --url http://127.0.0.1:8950 --dsn postgresql://root@127.0.0.1/sync_bench

Runs in its own virtual environment (bench/.venv-dlt, made by bench/throughput.py): dlt is never a
dependency of the service. Reads every page (100 records a page, page numbers until an empty page),
loads them into the table `records` of the dataset `dlt_bench` (replacing what an earlier run
loaded), and prints one JSON line: the records loaded and the seconds the pipeline took.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from urllib.parse import urlsplit, urlunsplit

import dlt
from dlt.sources.rest_api import rest_api_source


def with_password(dsn: str) -> str:
    """Return the DSN with a password: dlt asks for one, the bench database trusts loopback and ignores it."""
    parts = urlsplit(dsn)
    if parts.password is not None:
        return dsn
    user = parts.username or "postgres"
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:unused@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def peer_run(*, url: str, dsn: str, per_page: int = 100) -> tuple[int, float]:
    """Load every record of the bench source with dlt; return the records loaded and the seconds."""
    source = rest_api_source({
        "client": {
            "base_url": url,
            "paginator": {"type": "page_number", "base_page": 1, "page_param": "page", "total_path": None},
        },
        "resources": [{
            "name": "records",
            "endpoint": {"path": "records", "params": {"per_page": per_page}, "data_selector": "results"},
        }],
    })
    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as pipelines_dir:
        pipeline = dlt.pipeline(
            pipeline_name="bench_dlt", pipelines_dir=pipelines_dir, dataset_name="dlt_bench",
            destination=dlt.destinations.postgres(credentials=with_password(dsn)),
        )
        started = time.perf_counter()
        pipeline.run(source, write_disposition="replace")
        seconds = time.perf_counter() - started
        with pipeline.sql_client() as client:
            count = client.execute_sql("SELECT count(*) FROM records")[0][0]
    return count, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--dsn", required=True)
    args = parser.parse_args()
    count, seconds = peer_run(url=args.url, dsn=args.dsn)
    print(json.dumps({"records": count, "seconds": seconds}))


if __name__ == "__main__":
    main()
