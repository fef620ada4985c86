"""Throughput and memory of the service against the practical limit, on this machine.

    bash bench/run.sh                      # the whole table (about 15 minutes)
    bash bench/run.sh --records 20000 --repeat 1 --no-million   # a quick look

Starts the bench source API (bench/source_api.py) and a real Celery worker (concurrency 2) on the
machine's Redis and PostgreSQL (database sync_bench, emptied of this benchmark's data), then runs,
each case `--repeat` times, median taken:

- a first sync of N records (100 a page, a five-field mapping, validated against a JSON Schema);
- a re-run with nothing changed, and one with 10% of the records changed;
- a first sync of 10,000 records from a source answering each page after 20 ms, and of 2,000 after
  200 ms, with pages fetched four at a time and one at a time;
- the worker's peak memory (resident set of its largest process) at N and at 1,000,000 records.

Beside each case the limit pipeline (bench/limit_pipeline.py: fetch, parse, hash, COPY) reads the
same source in the same minute; the table shows both and their ratio.
"""
from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DSN = os.environ.get("BENCH_DATABASE_URL", "postgresql://root@127.0.0.1:5432/sync_bench")
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
QUEUE = f"bench-{os.getpid()}"
os.environ.setdefault("SYNC_ALLOWED_NETWORKS", "127.0.0.0/8")  # the bench source is on loopback
# On PostgreSQL the service refuses to start without a secret key; the bench and its workers share this one.
os.environ.setdefault("DJANGO_SECRET_KEY", f"bench-{secrets.token_urlsafe(32)}")
os.environ.update(DATABASE_URL=DSN, CELERY_BROKER_URL=BROKER, CELERY_TASK_DEFAULT_QUEUE=QUEUE,
                  DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING")


def database_ensure() -> None:
    import psycopg

    name = DSN.rsplit("/", 1)[1]
    admin = DSN.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


database_ensure()

import django  # noqa: E402

django.setup()

import psutil  # noqa: E402
import requests  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from limit_pipeline import limit_run  # noqa: E402

from contracts.models import SynchronizationRun  # noqa: E402
from syncapp import runs as sync_runs  # noqa: E402
from syncapp.configuration import bundle_import  # noqa: E402
from syncapp.models import Synchronization  # noqa: E402

SCHEMA = {
    "type": "object", "required": ["name", "species", "legs"],
    "properties": {
        "name": {"type": "string", "minLength": 1}, "species": {"type": "string"},
        "legs": {"type": "integer", "minimum": 0}, "keeper": {"type": "string"}, "born": {"type": "string"},
    },
}
MAPPING = {"name": "name", "species": "species", "legs": "legs", "keeper": "keeper.email", "born": "born"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """A subprocess of the benchmark, stopped with it."""

    def __init__(self, args: list[str], *, log: Path, env: dict | None = None, ready: str | None = None):
        self.log = log
        self._file = open(log, "w")  # noqa: SIM115 - open while the process lives
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=self._file, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})}, start_new_session=True)
        deadline = time.monotonic() + 60
        while ready and ready not in log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{args[:4]} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._file.close()


class Source:
    def __init__(self, *, records: int, latency_ms: float = 0, log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process(
            [sys.executable, "bench/source_api.py", "--port", str(self.port), "--records", str(records),
             "--latency-ms", str(latency_ms)], log=log_dir / f"source-{self.port}.log",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{self.url}/control?version=1", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def version(self, number: int) -> None:
        requests.get(f"{self.url}/control?version={number}", timeout=10).raise_for_status()


class MemoryWatch:
    """Sample the worker's processes; keep the largest resident set seen since the last reset."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
                self.peak = max(self.peak, *(process.memory_info().rss for process in processes))
            except psutil.Error:
                pass
            time.sleep(0.2)

    def reset(self) -> None:
        self.peak = 0

    def stop(self) -> None:
        self._stop.set()


def synchronization(*, reference: str, source: Source, pagination: dict, concurrency: int = 4) -> Synchronization:
    bundle_import({
        "sources": [{"reference": f"{reference}-api", "name": reference, "type": "api", "location": source.url}],
        "registers": [{"reference": "bench", "schemas": [{"reference": "record", "schema": SCHEMA}]}],
        "mappings": [{"reference": "bench-in", "mapping": MAPPING, "cast": {"legs": "int"}}],
        "synchronizations": [{
            "reference": reference, "name": reference, "sourceType": "api", "sourceId": f"{reference}-api",
            "sourceConfig": {"endpoint": "/records", "resultsPosition": "results", "pagination": pagination,
                             "concurrency": concurrency, "deleteSafetyLimit": "100%"},
            "sourceTargetMapping": "bench-in", "targetType": "register/schema", "targetId": "bench/record",
        }],
    })
    return Synchronization.objects.get(reference=reference)


def data_clear() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE contracts_contractlog, contracts_runchunk, contracts_runpage, contracts_synchronizationcontract, "
            "contracts_synchronizationrun, syncapp_object CASCADE"
        )


def timed_run(sync: Synchronization, *, expect: dict[str, int]) -> float:
    started = time.perf_counter()
    run = sync_runs.run_start(synchronization=sync)
    while True:
        run.refresh_from_db()
        if run.status not in SynchronizationRun.ACTIVE_STATUSES:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    wrong = {name: run.counts[name] for name, value in expect.items() if run.counts[name] != value}
    if run.status != "succeeded" or wrong:
        raise SystemExit(f"run {run.pk} ended {run.status} with {run.counts} (expected {expect}): {run.error_message}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--million", type=int, default=1_000_000, help="records of the memory case")
    parser.add_argument("--no-million", action="store_true", help="skip the memory case at --million records")
    parser.add_argument("--latency-records", type=int, default=10_000, help="records of the 20 ms case")
    parser.add_argument("--slow-records", type=int, default=2_000, help="records of the 200 ms case")
    parser.add_argument("--concurrency", type=int, default=4, help="sourceConfig.concurrency of the main cases")
    args = parser.parse_args()
    log_dir = ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    data_clear()
    Synchronization.objects.all().delete()
    worker = Process(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUE, "--concurrency", "2",
         "--without-gossip", "--without-mingle", "--loglevel", "INFO", "--hostname", f"{QUEUE}@%h"],
        log=log_dir / "worker.log", env={"LOG_LEVEL": "WARNING"}, ready="ready",
    )
    memory = MemoryWatch(worker.process.pid)
    rows: list[tuple[str, float, float | None, str]] = []
    load = os.getloadavg()
    try:
        n = args.records
        source = Source(records=n, log_dir=log_dir)
        sync = synchronization(reference="bench", source=source, concurrency=args.concurrency,
                               pagination={"type": "page", "pageSizeParam": "per_page", "pageSize": 100,
                                           "totalPath": "count"})
        cases: dict[str, list[float]] = {"first": [], "unchanged": [], "changed": []}
        limits: dict[str, list[float]] = {"first": [], "unchanged": [], "changed": []}
        peak = 0
        for repeat in range(args.repeat):
            data_clear()
            source.version(1)
            memory.reset()
            limits["first"].append(n / limit_run(url=source.url, dsn=DSN)[1])
            cases["first"].append(n / timed_run(sync, expect={"created": n}))
            peak = max(peak, memory.peak)
            limits["unchanged"].append(n / limit_run(url=source.url, dsn=DSN)[1])
            cases["unchanged"].append(n / timed_run(sync, expect={"unchanged": n}))
            source.version(2)
            limits["changed"].append(n / limit_run(url=source.url, dsn=DSN)[1])
            cases["changed"].append(n / timed_run(sync, expect={"updated": n // 10, "unchanged": n - n // 10}))
            print(f"repeat {repeat + 1}: " + ", ".join(f"{case} {values[-1]:.0f}/s" for case, values in cases.items()),
                  flush=True)
        source.process.stop()
        for case, label in (("first", f"first sync, {n:,} objects"), ("unchanged", "re-run, nothing changed"),
                            ("changed", "re-run, 10% changed")):
            service, limit = statistics.median(cases[case]), statistics.median(limits[case])
            rows.append((label, service, limit, f"{service / limit:.0%}"))

        for records, latency in ((args.latency_records, 20), (args.slow_records, 200)):
            slow = Source(records=records, latency_ms=latency, log_dir=log_dir)
            timings: dict[int, list[float]] = {4: [], 1: []}
            for concurrency in (4, 1):
                latency_sync = synchronization(
                    reference=f"latency-{latency}-{concurrency}", source=slow, concurrency=concurrency,
                    pagination={"type": "page", "pageSizeParam": "per_page", "pageSize": 100, "totalPath": "count"},
                )
                for _ in range(args.repeat):
                    data_clear()
                    timings[concurrency].append(timed_run(latency_sync, expect={"created": records}))
            slow.process.stop()
            parallel, sequential = statistics.median(timings[4]), statistics.median(timings[1])
            rows.append((f"first sync, {records:,}, {latency} ms a page, 4 pages at once", records / parallel, None,
                         f"{sequential / parallel:.1f}x faster"))
            rows.append((f"first sync, {records:,}, {latency} ms a page, one page at a time", records / sequential,
                         None, ""))
        rows.append((f"worker peak RSS, {n:,} objects", peak / 2**20, None, "MB"))
        if not args.no_million:
            data_clear()
            big = Source(records=args.million, log_dir=log_dir)
            big_sync = synchronization(reference="million", source=big,
                                       pagination={"type": "page", "pageSizeParam": "per_page", "pageSize": 100,
                                                   "totalPath": "count"})
            memory.reset()
            seconds = timed_run(big_sync, expect={"created": args.million})
            rows.append((f"worker peak RSS, {args.million:,} objects", memory.peak / 2**20, None,
                         f"MB ({peak and memory.peak / peak:.2f}x; first sync {args.million / seconds:.0f}/s)"))
            big.process.stop()
    finally:
        memory.stop()
        worker.stop()
        data_clear()
    print()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
          f"load before {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, median of {args.repeat}")
    print()
    print("| case | service | limit | ratio |")
    print("|---|---|---|---|")
    for label, service, limit, ratio in rows:
        unit = "" if ratio.startswith("MB") else " objects/s"
        shown = f"{service:,.0f}{unit}"
        print(f"| {label} | {shown} | {f'{limit:,.0f}/s' if limit else ''} | {ratio} |")


if __name__ == "__main__":
    main()
