"""Prometheus metrics of the service: what is counted, recorded at the service's few chokepoints.

The calls to other hosts (syncapp.http), the end of a run (contracts.runs) and the recording of a
chunk (syncapp.runs.chunks) call the `*_record` functions here; nothing else touches an instrument.

A Celery worker's pool and a web server's processes each count in their own process. With
PROMETHEUS_MULTIPROC_DIR set (the same directory for every process of a machine, emptied before they
start), prometheus-client writes each process's values to files there and `registry_collect` sums
them at scrape time. Without it (`sync serve`, one process) the process's own values are served.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# Runs last from seconds (a test, an incremental run) to hours (a first full read).
RUN_SECONDS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
HTTP_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
CHUNK_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WAIT_SECONDS_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)

OBJECTS = Counter(
    "sync_objects", "Objects a run's chunks recorded, by synchronization and outcome "
    "(created, updated, unchanged, invalid, failed).", ["synchronization", "outcome"],
)
RUNS = Counter("sync_runs_ended", "Runs that ended, by synchronization and final status.",
               ["synchronization", "status"])
RUN_SECONDS = Histogram(
    "sync_run_duration_seconds", "How long ended runs took, from start to end.", ["synchronization"],
    buckets=RUN_SECONDS_BUCKETS,
)
HTTP_SECONDS = Histogram(
    "sync_http_request_duration_seconds", "Calls to other hosts (pages, tokens, API targets), by source, "
    "until the whole answer was read.", ["source"], buckets=HTTP_SECONDS_BUCKETS,
)
HTTP_RESPONSES = Counter(
    "sync_http_responses", "Answers of other hosts, by source and HTTP status; errors without an answer "
    "(timeouts, refused connections) as status \"error\".", ["source", "status"],
)
WAITS = Histogram(
    "sync_http_wait_seconds", "Waits before a call: `rate_limit` for a server's limit or the source's "
    "request budget, `retry` for a backoff after a failed attempt.", ["source", "reason"],
    buckets=WAIT_SECONDS_BUCKETS,
)
BUDGET_TAKEN = Counter("sync_request_budget_taken", "Slots taken of sources' request budgets (rateLimit).",
                       ["source"])
BUDGET_SPENT = Counter(
    "sync_request_budget_spent", "Times a source's request budget had no slot left and the call waited "
    "(or was handed back to the queue).", ["source"],
)
RETRIES = Counter("sync_object_retries", "Objects whose write failed for a passing reason and was retried alone.",
                  ["synchronization"])
CHUNK_SECONDS = Histogram(
    "sync_chunk_write_duration_seconds", "How long writing a chunk of objects to the target and recording "
    "it took.", ["synchronization"], buckets=CHUNK_SECONDS_BUCKETS,
)


def multiprocess_dir() -> Path | None:
    """Return the directory the processes of this machine write their values to, or None (one process)."""
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


def objects_record(*, synchronization: str, counts: dict[str, int], retries: int) -> None:
    """Count the outcomes of a recorded chunk."""
    for outcome, number in counts.items():
        if number:
            OBJECTS.labels(synchronization=synchronization, outcome=outcome).inc(number)
    if retries:
        RETRIES.labels(synchronization=synchronization).inc(retries)


def chunk_write_record(*, synchronization: str, seconds: float) -> None:
    """Record how long a chunk's write took."""
    CHUNK_SECONDS.labels(synchronization=synchronization).observe(seconds)


def run_end_record(*, synchronization: str, status: str, seconds: float | None) -> None:
    """Count an ended run and its duration (None when it never started)."""
    RUNS.labels(synchronization=synchronization, status=status).inc()
    if seconds is not None:
        RUN_SECONDS.labels(synchronization=synchronization).observe(max(0.0, seconds))


def http_answer_record(*, source: str, status: int | None, seconds: float) -> None:
    """Record one attempt of a call: its status (None: no answer) and how long it took."""
    HTTP_SECONDS.labels(source=source).observe(seconds)
    HTTP_RESPONSES.labels(source=source, status=str(status) if status is not None else "error").inc()


def wait_record(*, source: str, retry: bool, seconds: float) -> None:
    """Record a wait before a call: a retry's backoff, or a rate limit's or budget's turn."""
    WAITS.labels(source=source, reason="retry" if retry else "rate_limit").observe(seconds)


def budget_record(*, source: str, taken: bool) -> None:
    """Count a slot taken of a source's request budget, or a moment it had none left."""
    (BUDGET_TAKEN if taken else BUDGET_SPENT).labels(source=source).inc()


def registry_collect(*, extra: Iterable[Collector] = (), directory: Path | None = None) -> bytes:
    """Return the exposition of every process's values (summed when multiprocess) and of `extra`."""
    directory = directory or multiprocess_dir()
    if directory is None:
        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))
    else:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(directory))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


class _Forward(Collector):
    """The process's own registry, served beside scrape-time collectors without registering them there."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self):
        return self.registry.collect()
