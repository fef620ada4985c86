"""Throughput and memory of the service against the practical limit and against dlt, on this machine.

    bash bench/run.sh                      # the whole table (30 to 45 minutes)
    bash bench/run.sh --records 5000 --repeat 1 --no-million   # a quick look (add --no-dlt to skip dlt)

Starts the bench source API (bench/source_api.py) and a real Celery worker (concurrency 2) on the
machine's Redis and PostgreSQL (database sync_bench, emptied of this benchmark's data), then runs,
each case `--repeat` times, median taken:

- a first sync of N records (100 a page by page number, a five-field mapping, validated against a
  JSON Schema), a re-run with nothing changed, and one with 10% of the records changed; beside each,
  in the same minute, the limit pipeline (bench/limit_pipeline.py: fetch, parse, hash, COPY) and the
  peer, dlt's `rest_api` source into PostgreSQL (bench/dlt_peer.py, in its own virtual environment
  bench/.venv-dlt, database sync_bench_dlt). dlt has no change detection: on the re-runs it loads
  everything again, so its figure there is a full reload;
- (a) a first sync from a source answering each page after 100 ms, followed by its next links: the
  run's time against pages x latency, what reading one page after another cannot go below;
- (b) the same after 200 ms a page by page number, sourceConfig.concurrency 4 against 1, on the one
  worker of concurrency 2;
- (c) the same 200 ms source, two worker processes (a second Celery worker, concurrency 2, its own
  hostname) against the one, with sourceConfig.concurrency 8 so that the workers are the bound;
- the worker's peak memory (resident set of its largest process) at N and at 1,000,000 records.

The table at the end (markdown) gives each figure with its goal (issue 24) and whether it is met.
"""
from __future__ import annotations

import argparse
import json
import math
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DSN = os.environ.get("BENCH_DATABASE_URL", "postgresql://root@127.0.0.1:5432/sync_bench")
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
# dlt's destination: a database of its own beside the bench's (created by bench/dlt_peer.py if missing).
DLT_DSN = os.environ.get("BENCH_DLT_DATABASE_URL", f"{DSN}_dlt")
DLT_PYTHON = ROOT / "bench" / ".venv-dlt" / "bin" / "python"
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


def synchronization(
    *, reference: str, source: Source, pagination: dict, concurrency: int = 4, endpoint: str = "/records"
) -> Synchronization:
    bundle_import({
        "sources": [{"reference": f"{reference}-api", "name": reference, "type": "api", "location": source.url}],
        "registers": [{"reference": "bench", "schemas": [{"reference": "record", "schema": SCHEMA}]}],
        "mappings": [{"reference": "bench-in", "mapping": MAPPING, "cast": {"legs": "int"}}],
        "synchronizations": [{
            "reference": reference, "name": reference, "sourceType": "api", "sourceId": f"{reference}-api",
            "sourceConfig": {"endpoint": endpoint, "resultsPosition": "results", "pagination": pagination,
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


def worker_start(*, log_dir: Path, number: int = 1) -> Process:
    """Start a Celery worker process (concurrency 2) on the bench's queue, with a hostname of its own."""
    name = QUEUE if number == 1 else f"{QUEUE}-{number}"
    return Process(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUE, "--concurrency", "2",
         "--without-gossip", "--without-mingle", "--loglevel", "INFO", "--hostname", f"{name}@%h"],
        log=log_dir / f"worker-{number}.log", env={"LOG_LEVEL": "WARNING"}, ready="ready",
    )


def dlt_run(*, source: Source, records: int) -> dict:
    """Load the source with the dlt peer as a first load (its own process and venv); return its JSON."""
    done = subprocess.run(
        [str(DLT_PYTHON), "bench/dlt_peer.py", "--url", source.url, "--dsn", DLT_DSN, "--pagination", "page",
         "--expect", str(records)],
        cwd=ROOT, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the dlt peer failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


PAGE_NUMBERS = {"type": "page", "pageSizeParam": "per_page", "pageSize": 100, "totalPath": "count"}


@dataclass
class Row:
    """One line of the table; a goal is (what, met), met None when it was not measured."""

    case: str
    service: str
    reference: str = ""
    ratio: str = ""
    dlt: str = ""
    versus_dlt: str = ""
    goals: list[tuple[str, bool | None]] = field(default_factory=list)

    def cells(self) -> list[str]:
        goal = "; ".join(what for what, _ in self.goals)
        met = "; ".join("not measured" if ok is None else "met" if ok else "**not met**" for _, ok in self.goals)
        return [self.case, self.service, self.reference, self.ratio, self.dlt, self.versus_dlt, goal, met]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main_cases(*, args: argparse.Namespace, log_dir: Path, memory: MemoryWatch) -> tuple[list[Row], float, str]:
    """Run the first sync and the re-runs beside the limit and dlt; return the rows, the peak and dlt's version."""
    n = args.records
    source = Source(records=n, log_dir=log_dir)
    sync = synchronization(reference="bench", source=source, concurrency=args.concurrency, pagination=PAGE_NUMBERS)
    names = ("first", "unchanged", "changed")
    service: dict[str, list[float]] = {name: [] for name in names}
    limits: dict[str, list[float]] = {name: [] for name in names}
    peer: dict[str, list[float]] = {name: [] for name in names}
    expected = {"first": {"created": n}, "unchanged": {"unchanged": n},
                "changed": {"updated": n // 10, "unchanged": n - n // 10}}
    peak = 0
    version = ""
    try:
        for repeat in range(args.repeat):
            data_clear()
            source.version(1)
            for name in names:
                if name == "changed":
                    source.version(2)
                memory.reset()
                limits[name].append(n / limit_run(url=source.url, dsn=DSN)[1])
                service[name].append(n / timed_run(sync, expect=expected[name]))
                if name == "first":
                    peak = max(peak, memory.peak)
                if not args.no_dlt:
                    answer = dlt_run(source=source, records=n)
                    peer[name].append(answer["records_per_second"])
                    version = answer["dlt"]
            print(f"repeat {repeat + 1}: " + ", ".join(
                f"{name} {service[name][-1]:,.0f}/s (limit {limits[name][-1]:,.0f}/s"
                + (f", dlt {peer[name][-1]:,.0f}/s)" if peer[name] else ")") for name in names), flush=True)
    finally:
        source.process.stop()
    goals = {"first": 0.40, "unchanged": 0.60, "changed": 0.50}
    labels = {"first": f"first sync, {n:,} objects", "unchanged": "re-run, nothing changed",
              "changed": "re-run, 10% changed"}
    rows = []
    for name in names:
        rate, limit, dlt_rate = median(service[name]), median(limits[name]), median(peer[name])
        row = Row(case=labels[name], service=f"{rate:,.0f} objects/s", reference=f"{limit:,.0f}/s",
                  ratio=f"{rate / limit:.0%}",
                  goals=[(f">= {goals[name]:.0%} of the limit", rate / limit >= goals[name])])
        if dlt_rate is not None:
            row.dlt = f"{dlt_rate:,.0f}/s" + ("" if name == "first" else " (full reload)")
            row.versus_dlt = f"{rate / dlt_rate:.1f}x"
        if name == "first":
            row.goals.append((">= 3x dlt", None if dlt_rate is None else rate / dlt_rate >= 3))
        rows.append(row)
    return rows, peak, version


def next_link_case(*, args: argparse.Namespace, log_dir: Path) -> Row:
    """(a) Next links, 100 ms a page: the run's time against pages x latency."""
    records, latency = args.next_records, 0.100
    source = Source(records=records, latency_ms=latency * 1000, log_dir=log_dir)
    try:
        sync = synchronization(reference="next-100", source=source, concurrency=args.concurrency,
                               pagination={"type": "next", "nextPath": "next"}, endpoint="/records?per_page=100")
        timings = []
        for _ in range(args.repeat):
            data_clear()
            timings.append(timed_run(sync, expect={"created": records}))
            print(f"next links, 100 ms a page: {timings[-1]:.2f} s", flush=True)
    finally:
        source.process.stop()
    pages = math.ceil(records / 100)
    seconds, floor = statistics.median(timings), pages * latency
    return Row(case=f"(a) first sync, {records:,}, 100 ms a page, next links", service=f"{seconds:.2f} s",
               reference=f"{floor:.2f} s ({pages} pages x 100 ms)", ratio=f"{seconds / floor:.2f}x",
               goals=[("<= 1.15x pages x latency", seconds / floor <= 1.15)])


def slow_source_runs(*, source: Source, records: int, reference: str, concurrency: int, repeat: int) -> float:
    """Run first syncs of the slow source; return the median seconds."""
    sync = synchronization(reference=reference, source=source, concurrency=concurrency, pagination=PAGE_NUMBERS)
    timings = []
    for _ in range(repeat):
        data_clear()
        timings.append(timed_run(sync, expect={"created": records}))
        print(f"{reference}: {timings[-1]:.2f} s", flush=True)
    return statistics.median(timings)


def concurrency_case(*, args: argparse.Namespace, log_dir: Path) -> list[Row]:
    """(b) 200 ms a page by page number: sourceConfig.concurrency 4 against 1 on one worker."""
    records = args.slow_records
    source = Source(records=records, latency_ms=200, log_dir=log_dir)
    try:
        parallel = slow_source_runs(source=source, records=records, reference="slow-4", concurrency=4,
                                    repeat=args.repeat)
        sequential = slow_source_runs(source=source, records=records, reference="slow-1", concurrency=1,
                                      repeat=args.repeat)
    finally:
        source.process.stop()
    return [
        Row(case=f"(b) first sync, {records:,}, 200 ms a page, concurrency 4", service=f"{parallel:.2f} s",
            reference=f"{sequential:.2f} s at concurrency 1", ratio=f"{sequential / parallel:.1f}x faster",
            goals=[(">= 3.5x", sequential / parallel >= 3.5)]),
    ]


def workers_case(*, args: argparse.Namespace, log_dir: Path) -> Row:
    """(c) 200 ms a page by page number: two worker processes against one."""
    records, concurrency = args.scale_records, args.scale_concurrency
    source = Source(records=records, latency_ms=200, log_dir=log_dir)
    try:
        one = slow_source_runs(source=source, records=records, reference="workers-1", concurrency=concurrency,
                               repeat=args.repeat)
        second = worker_start(log_dir=log_dir, number=2)
        try:
            two = slow_source_runs(source=source, records=records, reference="workers-2", concurrency=concurrency,
                                   repeat=args.repeat)
        finally:
            second.stop()
    finally:
        source.process.stop()
    return Row(case=f"(c) first sync, {records:,}, 200 ms a page, concurrency {concurrency}, two workers",
               service=f"{two:.2f} s", reference=f"{one:.2f} s with one worker", ratio=f"{one / two:.1f}x faster",
               goals=[(">= 1.8x", one / two >= 1.8)])


def memory_case(*, args: argparse.Namespace, log_dir: Path, memory: MemoryWatch, peak: float) -> Row:
    """The worker's peak memory over a first sync of --million records, against that of --records."""
    data_clear()
    big = Source(records=args.million, log_dir=log_dir)
    try:
        big_sync = synchronization(reference="million", source=big, pagination=PAGE_NUMBERS)
        memory.reset()
        seconds = timed_run(big_sync, expect={"created": args.million})
    finally:
        big.process.stop()
    growth = memory.peak / peak if peak else 0
    return Row(case=f"worker peak RSS, {args.million:,} objects (first sync {args.million / seconds:,.0f}/s)",
               service=f"{memory.peak / 2**20:,.0f} MB", reference=f"{peak / 2**20:,.0f} MB at {args.records:,}",
               ratio=f"{growth:.2f}x", goals=[("within 10% of the smaller run", bool(peak) and growth <= 1.10)])


def table_print(*, rows: list[Row], args: argparse.Namespace, load: tuple[float, ...], dlt_version: str) -> None:
    print()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
          f"load before {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, median of {args.repeat}"
          + (f", dlt {dlt_version}" if dlt_version else ", dlt skipped"))
    print()
    header = ["case", "service", "limit / reference", "ratio", "dlt", "service/dlt", "goal", "met"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="records of the first sync and re-runs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--million", type=int, default=1_000_000, help="records of the memory case")
    parser.add_argument("--no-million", action="store_true", help="skip the memory case at --million records")
    parser.add_argument("--no-dlt", action="store_true", help="skip the dlt peer (and, in run.sh, its venv)")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency cases (a), (b) and (c)")
    parser.add_argument("--next-records", type=int, default=5_000, help="records of (a), 100 ms a page")
    parser.add_argument("--slow-records", type=int, default=4_000, help="records of (b), 200 ms a page")
    parser.add_argument("--scale-records", type=int, default=4_000, help="records of (c), 200 ms a page")
    parser.add_argument("--scale-concurrency", type=int, default=8, help="sourceConfig.concurrency of (c)")
    parser.add_argument("--concurrency", type=int, default=4, help="sourceConfig.concurrency of the main cases and (a)")
    args = parser.parse_args()
    if not args.no_dlt and not DLT_PYTHON.exists():
        raise SystemExit(f"{DLT_PYTHON} is missing: run bench/run.sh (it makes it), or pass --no-dlt")
    log_dir = ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    data_clear()
    Synchronization.objects.all().delete()
    # The bench's sources too: each run serves them on new ports, and a source whose location moved
    # keeps its credentials unsent until a user confirms them (a second run on the database failed).
    SourceRecord.objects.filter(reference__endswith="-api").delete()
    worker = worker_start(log_dir=log_dir)
    memory = MemoryWatch(worker.process.pid)
    load = os.getloadavg()
    try:
        rows, peak, dlt_version = main_cases(args=args, log_dir=log_dir, memory=memory)
        if not args.no_latency:
            rows.append(next_link_case(args=args, log_dir=log_dir))
            rows += concurrency_case(args=args, log_dir=log_dir)
            rows.append(workers_case(args=args, log_dir=log_dir))
        rows.append(Row(case=f"worker peak RSS, {args.records:,} objects", service=f"{peak / 2**20:,.0f} MB",
                        goals=[("below 200 MB", peak / 2**20 < 200)]))
        if not args.no_million:
            rows.append(memory_case(args=args, log_dir=log_dir, memory=memory, peak=peak))
    finally:
        memory.stop()
        worker.stop()
        data_clear()
    table_print(rows=rows, args=args, load=load, dlt_version=dlt_version)


if __name__ == "__main__":
    main()
