"""Throughput and memory of the service against the practical limit, on this machine.

    bash bench/run.sh                      # the whole table (about 15 minutes)
    bash bench/run.sh --records 20000 --repeat 1 --no-million   # a quick look

Starts the bench source API (bench/source_api.py) and a real Celery worker (concurrency 2) on the
machine's Redis and PostgreSQL (database sync_bench, emptied of this benchmark's data), then runs,
each case `--repeat` times, median taken:

- a first sync of N records (100 a page, a five-field mapping, validated against a JSON Schema);
- a re-run with nothing changed, and one with 10% of the records changed;
- a first sync of 10,000 records from a source answering each page after 100 ms, following next
  links: its time against pages x latency;
- a first sync of 4,000 records from a source answering each page after 200 ms, with page numbers,
  `concurrency` 4 against one page at a time;
- two such runs at once, on one worker and on two (each of concurrency 2);
- the worker's peak memory (resident set of its largest process) at N and at 1,000,000 records.

Beside each case the limit pipeline (bench/limit_pipeline.py: fetch, parse, hash, COPY) reads the
same source in the same minute, and beside the first sync the peer does too: dlt's `rest_api`
source into PostgreSQL (bench/dlt_peer.py, in its own virtual environment bench/.venv-dlt, made
here if missing: dlt is never a dependency of the service). The table shows them and the ratios.
"""
from __future__ import annotations

import argparse
import json
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
from syncapp.models import Source as SourceRecord  # noqa: E402
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


DLT_VENV = ROOT / "bench" / ".venv-dlt"


def dlt_ensure() -> Path:
    """Return the python of the peer's virtual environment, made with dlt and its PostgreSQL driver if missing."""
    python = DLT_VENV / "bin" / "python"
    if not (DLT_VENV / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "dlt[postgres]>=1.0"], check=True)
        (DLT_VENV / ".installed").touch()
    return python


def dlt_run(*, python: Path, url: str, records: int) -> float:
    """Load the bench source with dlt's rest_api source; return the seconds it took."""
    done = subprocess.run([str(python), "bench/dlt_peer.py", "--url", url, "--dsn", DSN], cwd=ROOT, check=True,
                          capture_output=True, text=True, env={**os.environ, "RUNTIME__LOG_LEVEL": "WARNING"})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["records"] != records:
        raise SystemExit(f"dlt loaded {result['records']} records, not {records}")
    return result["seconds"]


def worker_start(*, log_dir: Path, name: str) -> Process:
    return Process(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUE, "--concurrency", "2",
         "--without-gossip", "--without-mingle", "--loglevel", "INFO", "--hostname", f"{QUEUE}-{name}@%h"],
        log=log_dir / f"worker-{name}.log", env={"LOG_LEVEL": "WARNING"}, ready="ready",
    )


def runs_together(syncs: list[Synchronization], *, expect: dict[str, int]) -> float:
    """Start runs of these synchronizations at once; return the seconds until the last has ended."""
    started = time.perf_counter()
    runs = [sync_runs.run_start(synchronization=sync) for sync in syncs]
    for run in runs:
        while True:
            run.refresh_from_db()
            if run.status not in SynchronizationRun.ACTIVE_STATUSES:
                break
            time.sleep(0.05)
        wrong = {name: run.counts[name] for name, value in expect.items() if run.counts[name] != value}
        if run.status != "succeeded" or wrong:
            raise SystemExit(f"run {run.pk} ended {run.status} with {run.counts} (expected {expect})")
    return time.perf_counter() - started


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
    parser.add_argument("--next-records", type=int, default=10_000, help="records of the 100 ms next-link case")
    parser.add_argument("--slow-records", type=int, default=4_000, help="records of the 200 ms page-number cases")
    parser.add_argument("--no-dlt", action="store_true", help="skip the peer (dlt rest_api into PostgreSQL)")
    parser.add_argument("--concurrency", type=int, default=4, help="sourceConfig.concurrency of the main cases")
    args = parser.parse_args()
    log_dir = ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    data_clear()
    Synchronization.objects.all().delete()
    # An earlier bench's sources point at ports of sources long stopped: their credentials are bound to them.
    SourceRecord.objects.all().delete()
    dlt_python = None if args.no_dlt else dlt_ensure()
    worker = worker_start(log_dir=log_dir, name="one")
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
        peers: list[float] = []
        peak = 0
        for repeat in range(args.repeat):
            data_clear()
            source.version(1)
            memory.reset()
            limits["first"].append(n / limit_run(url=source.url, dsn=DSN)[1])
            if dlt_python is not None:
                peers.append(n / dlt_run(python=dlt_python, url=source.url, records=n))
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
            if case == "first" and peers:
                peer = statistics.median(peers)
                rows.append((f"dlt rest_api into PostgreSQL, first sync, {n:,} objects", peer, limit,
                             f"{peer / limit:.0%}; the service {service / peer:.1f}x dlt"))

        # 100 ms a page, next links: one page after another at best, so pages x latency is the floor.
        records = args.next_records
        linked = Source(records=records, latency_ms=100, log_dir=log_dir)
        next_sync = synchronization(reference="next-100", source=linked, concurrency=1,
                                    pagination={"type": "next", "nextPath": "next"})
        timings = []
        for _ in range(args.repeat):
            data_clear()
            timings.append(timed_run(next_sync, expect={"created": records}))
        linked.process.stop()
        seconds = statistics.median(timings)
        floor = -(-records // 100) * 0.1  # the last page has no next link
        rows.append((f"first sync, {records:,}, 100 ms a page, next links", records / seconds, None,
                     f"{seconds:.1f} s, {seconds / floor:.2f}x pages x latency ({floor:.1f} s)"))

        # 200 ms a page, page numbers: four pages at once against one at a time, then two runs at once.
        records = args.slow_records
        slow = Source(records=records, latency_ms=200, log_dir=log_dir)
        paged = {"type": "page", "pageSizeParam": "per_page", "pageSize": 100, "totalPath": "count"}
        by_concurrency: dict[int, list[float]] = {4: [], 1: []}
        for concurrency in (4, 1):
            latency_sync = synchronization(reference=f"latency-200-{concurrency}", source=slow,
                                           concurrency=concurrency, pagination=paged)
            for _ in range(args.repeat):
                data_clear()
                by_concurrency[concurrency].append(timed_run(latency_sync, expect={"created": records}))
        parallel, sequential = statistics.median(by_concurrency[4]), statistics.median(by_concurrency[1])
        rows.append((f"first sync, {records:,}, 200 ms a page, 4 pages at once", records / parallel, None,
                     f"{sequential / parallel:.1f}x one page at a time"))
        rows.append((f"first sync, {records:,}, 200 ms a page, one page at a time", records / sequential, None, ""))
        pair = [synchronization(reference=f"pair-{which}", source=slow, concurrency=4, pagination=paged)
                for which in ("a", "b")]
        by_workers: dict[int, list[float]] = {1: [], 2: []}
        for workers in (1, 2):
            second = worker_start(log_dir=log_dir, name="two") if workers == 2 else None
            try:
                for _ in range(args.repeat):
                    data_clear()
                    by_workers[workers].append(runs_together(pair, expect={"created": records}))
            finally:
                if second is not None:
                    second.stop()
        one, two = statistics.median(by_workers[1]), statistics.median(by_workers[2])
        rows.append((f"two runs at once, {records:,} each, 200 ms a page, 4 at once, two workers",
                     2 * records / two, None, f"{one / two:.2f}x one worker"))
        rows.append((f"two runs at once, {records:,} each, 200 ms a page, 4 at once, one worker",
                     2 * records / one, None, ""))
        slow.process.stop()
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
