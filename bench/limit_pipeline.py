"""The practical limit of a sync on this machine: fetch, parse, hash and COPY, nothing else.

    python bench/limit_pipeline.py --url http://127.0.0.1:8950 --dsn postgresql://root@127.0.0.1/sync_bench

One process reads every page with a keep-alive session, parses it with orjson, hashes each record's
canonical JSON (sorted keys, as the service does) and COPYs (id, hash, record) into a PostgreSQL
table, committing each page. No contracts, no mapping, no validation, no tasks: what the service
does beyond this is its own cost.
"""
from __future__ import annotations

import argparse
import hashlib
import time

import orjson
import psycopg
import requests


def limit_run(*, url: str, dsn: str, per_page: int = 100) -> tuple[int, float]:
    """Sync every record of the bench source into a bare table; return the records and seconds."""
    with psycopg.connect(dsn) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS bench_limit (origin_id text, hash text, data jsonb)")
        connection.execute("TRUNCATE bench_limit")
        connection.commit()
        session = requests.Session()
        session.trust_env = False
        started = time.perf_counter()
        count = 0
        page = 1
        while True:
            body = orjson.loads(session.get(f"{url}/records", params={"page": page, "per_page": per_page}).content)
            results = body["results"]
            if not results:
                break
            copy_sql = "COPY bench_limit (origin_id, hash, data) FROM STDIN"
            with connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for item in results:
                    encoded = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
                    copy.write_row((str(item["id"]), hashlib.sha256(encoded).hexdigest(), encoded.decode()))
            connection.commit()
            count += len(results)
            if body.get("next") is None:
                break
            page += 1
        return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--dsn", required=True)
    args = parser.parse_args()
    count, seconds = limit_run(url=args.url, dsn=args.dsn)
    print(f"{count} records in {seconds:.2f} s: {count / seconds:.0f} records/s")


if __name__ == "__main__":
    main()
