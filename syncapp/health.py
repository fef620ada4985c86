"""Whether the service can work: its database, broker and budget store, its workers and schedulers.

`/health/ready` and `sync status` read the checks here; `sync doctor` adds what a deployment needs
once (migrations, keys, allowed networks, media storage). The queue's readings for /metrics are taken
here too, at scrape time, from the broker.

Workers are asked with Celery's ping (a broadcast answered by each worker's main process, within a
short timeout) rather than a heartbeat row written by a worker signal: it tells which workers answer
now, costs no writes while nobody asks, and needs no table that lost workers would leave stale.
Schedulers keep their heartbeat rows (SchedulerHeartbeat): they tick anyway, and a tick that stopped
is what matters.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from config.celery import app as celery_app
from config.keys import BUILTIN_SECRET_KEY
from contracts.models import SynchronizationRun
from syncapp.models import SchedulerHeartbeat
from syncapp.schedules import scheduler_silent_after

logger = logging.getLogger(__name__)

# How long a check of a store waits to connect and for an answer: a probe must answer within seconds.
STORE_TIMEOUT_SECONDS = 2.0
# How long workers get to answer a ping: they answer from their main process at once when alive. A ping
# waits this long for more answers unless it stops at the first: /health/ready does, a probe must be quick.
WORKER_PING_SECONDS = 1.0
READY_WORKER_PING_SECONDS = 0.5
# The header of every task message carrying when it was sent (config.celery), for the queue's oldest age.
SENT_AT_HEADER = "sync_sent_at"


@dataclass
class Check:
    """One thing checked: whether it is fine, what it says, what to do about it, and how long it took.

    A check that is fine but has a `fix` is advice: `sync doctor` shows it as a warning and still passes.
    """

    name: str
    ok: bool
    detail: str
    seconds: float = 0.0
    fix: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        answer = {"ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 4), **self.extra}
        if self.fix:
            answer["fix"] = self.fix
        return answer


def _timed(name: str, probe: Callable[[], Check]) -> Check:
    started = time.monotonic()
    try:
        check = probe()
    except Exception as error:  # every failure of a probe is its answer, whatever raised it
        check = Check(name=name, ok=False, detail=f"{type(error).__name__}: {error}".strip())
    check.seconds = time.monotonic() - started
    return check


def _redis_ping(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=STORE_TIMEOUT_SECONDS,
                                  socket_connect_timeout=STORE_TIMEOUT_SECONDS)
    try:
        client.ping()
    finally:
        client.close()


def database_check() -> Check:
    """Ask the database for one row."""
    def probe() -> Check:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return Check(name="database", ok=True, detail=connections[DEFAULT_DB_ALIAS].vendor)

    check = _timed("database", probe)
    if not check.ok:
        # A broken connection must not be reused by the next request of this thread.
        connections[DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()
        check.fix = "check DATABASE_URL and that the database server is up and reachable from here"
    return check


def broker_check() -> Check:
    """Ping the broker (Redis); with tasks in process there is none to ask."""
    if settings.TASKS_IN_PROCESS:
        return Check(name="broker", ok=True, detail="none: tasks run in process (no CELERY_BROKER_URL)")

    def probe() -> Check:
        _redis_ping(settings.CELERY_BROKER_URL)
        return Check(name="broker", ok=True, detail="redis answers")

    check = _timed("broker", probe)
    if not check.ok:
        check.fix = "check CELERY_BROKER_URL and that Redis is up and reachable from here"
    return check


def budget_store_check() -> Check:
    """Ping the Redis that keeps the sources' request budgets (SYNC_REDIS_URL)."""
    if not settings.SYNC_REDIS_URL:
        return Check(name="budget_store", ok=True, detail="none: each process keeps its own (no SYNC_REDIS_URL)")

    def probe() -> Check:
        _redis_ping(settings.SYNC_REDIS_URL)
        return Check(name="budget_store", ok=True, detail="redis answers")

    check = _timed("budget_store", probe)
    if not check.ok:
        check.fix = "check SYNC_REDIS_URL (by default the broker's) and that Redis is up and reachable"
    return check


def workers_check(*, timeout: float = WORKER_PING_SECONDS, first_only: bool = False) -> Check:
    """Ping the Celery workers (all that answer within `timeout`, or only the first); with tasks in process
    the runner of `sync serve` does their work."""
    if settings.TASKS_IN_PROCESS:
        return Check(name="workers", ok=True, detail="none needed: tasks run in process", extra={"answering": []})

    def probe() -> Check:
        answers = celery_app.control.ping(timeout=timeout, limit=1 if first_only else None) or []
        names = sorted(name for answer in answers for name in answer)
        if not names:
            return Check(name="workers", ok=False, detail=f"no worker answered a ping within {timeout:g} s",
                         fix="start a worker: `.venv/bin/celery -A config worker`", extra={"answering": []})
        detail = "answering" if first_only else f"{len(names)} answering"
        return Check(name="workers", ok=True, detail=detail, extra={"answering": names})

    return _timed("workers", probe)


def scheduler_check(*, now=None) -> Check:
    """Say whether a scheduler (`sync serve` or Celery beat) ticked lately, from the heartbeat rows."""
    def probe() -> Check:
        moment = now or timezone.now()
        silent_after = scheduler_silent_after()
        recent = list(SchedulerHeartbeat.objects.filter(ticked_at__gte=moment - timedelta(seconds=silent_after)))
        ticking = [{"kind": beat.kind, "host": beat.host, "pid": beat.pid, "tickedAt": beat.ticked_at.isoformat()}
                   for beat in recent]
        if ticking:
            return Check(name="scheduler", ok=True, detail=f"{len(ticking)} ticking", extra={"ticking": ticking})
        last = SchedulerHeartbeat.objects.order_by("-ticked_at").first()
        since = f"last tick {last.ticked_at.isoformat()} ({last})" if last else "never ticked"
        start = ("`.venv/bin/python manage.py sync serve`" if settings.TASKS_IN_PROCESS
                 else "Celery beat: `.venv/bin/celery -A config beat`")
        return Check(name="scheduler", ok=False, detail=f"none ticked in the last {silent_after:g} s ({since})",
                     fix=f"start {start}", extra={"ticking": []})

    return _timed("scheduler", probe)


def readiness() -> tuple[bool, dict[str, Any]]:
    """Return whether this process can serve (database, broker, budget store) and every check's answer.

    Workers and schedulers are shown, not required: a web process without them still serves the API,
    and a load balancer taking it out would not bring them back.
    """
    required = [database_check(), broker_check(), budget_store_check()]
    ready = all(check.ok for check in required)
    # Without a broker no ping gets through: asking would only wait for its connection to fail again.
    shown = [workers_check(timeout=READY_WORKER_PING_SECONDS, first_only=True)] if required[1].ok else []
    if required[0].ok:
        shown.append(scheduler_check())
    answer = {
        "status": "ready" if ready else "unavailable",
        "failed": [check.name for check in required if not check.ok],
        "checks": {check.name: check.as_dict() for check in required + shown},
    }
    return ready, answer


# ---------------------------------------------------------------------------------------------
# sync doctor


def migrations_check() -> Check:
    """Say which migrations are not applied to the database."""
    def probe() -> Check:
        from django.db.migrations.executor import MigrationExecutor

        connection = connections[DEFAULT_DB_ALIAS]
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in pending[:5])
            more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
            return Check(name="migrations", ok=False, detail=f"{len(pending)} not applied: {names}{more}",
                         fix="run `.venv/bin/python manage.py migrate`")
        return Check(name="migrations", ok=True, detail="all applied")

    return _timed("migrations", probe)


def keys_check() -> Check:
    """Say whether the secret key and the credential keys are set, not the development ones."""
    problems = []
    if settings.SECRET_KEY == BUILTIN_SECRET_KEY:
        problems.append("DJANGO_SECRET_KEY is the key built into the source, which is public")
    if not settings.SYNC_CREDENTIAL_KEYS:
        problems.append("SYNC_CREDENTIAL_KEYS is not set: credentials are sealed with a key derived from "
                        "DJANGO_SECRET_KEY, and changing that key would make them unreadable")
    if problems:
        return Check(name="keys", ok=False, detail="; ".join(problems),
                     fix="set DJANGO_SECRET_KEY and SYNC_CREDENTIAL_KEYS (`manage.py sync keygen` makes a key)")
    return Check(name="keys", ok=True, detail="DJANGO_SECRET_KEY and SYNC_CREDENTIAL_KEYS set")


def networks_check() -> Check:
    """Say what sources may call and who may read /metrics without a token; advise an allow-list."""
    allowed = ", ".join(str(network) for network in settings.SYNC_ALLOWED_NETWORKS)
    readers = ", ".join(str(network) for network in settings.SYNC_METRICS_ALLOWED_NETWORKS) or "nobody"
    if allowed:
        reach = f"sources may call only {allowed}"
    elif settings.SYNC_DENY_PRIVATE_NETWORKS:
        reach = "sources may call any public address; private ranges refused"
    else:
        reach = "sources may call any address but loopback, link-local and reserved ones: private ranges too"
    detail = f"{reach}; /metrics without a token: {readers}"
    wide = [str(network) for network in settings.SYNC_METRICS_ALLOWED_NETWORKS if network.prefixlen == 0]
    if wide:
        return Check(name="networks", ok=False, detail=f"{detail}; {', '.join(wide)} lets anyone read /metrics",
                     fix="narrow SYNC_METRICS_ALLOWED_NETWORKS to the scrapers' networks")
    if not allowed and not settings.SYNC_DENY_PRIVATE_NETWORKS:
        # Not wrong, but whoever configures a source can make the service call the internal network.
        return Check(name="networks", ok=True, detail=detail, fix="set SYNC_ALLOWED_NETWORKS to the networks "
                     "sources live on, or SYNC_DENY_PRIVATE_NETWORKS=true")
    return Check(name="networks", ok=True, detail=detail)


def media_check() -> Check:
    """Write, read and remove a file in the media storage (SYNC_MEDIA_ROOT)."""
    def probe() -> Check:
        root = Path(settings.MEDIA_ROOT)
        root.mkdir(parents=True, exist_ok=True)
        probe_file = root / f".doctor-{uuid.uuid4().hex}"
        try:
            probe_file.write_bytes(b"ok")
            if probe_file.read_bytes() != b"ok":
                return Check(name="media", ok=False, detail=f"{root}: a file written read back differently")
        finally:
            probe_file.unlink(missing_ok=True)
        return Check(name="media", ok=True, detail=f"{root} writable")

    check = _timed("media", probe)
    if not check.ok:
        check.fix = "make SYNC_MEDIA_ROOT a directory every web process and worker can write"
    return check


def doctor_checks() -> list[Check]:
    """Return every check of a deployment, in the order they depend on each other."""
    checks = [database_check()]
    if checks[0].ok:
        checks.append(migrations_check())
    checks += [keys_check(), networks_check(), broker_check(), budget_store_check()]
    if checks[-2].ok:
        checks.append(workers_check())
    if checks[0].ok:
        checks.append(scheduler_check())
    checks.append(media_check())
    return checks


# ---------------------------------------------------------------------------------------------
# Readings of the queue and the runs for /metrics, taken at scrape time


def queue_readings(*, now: float | None = None) -> tuple[int, float | None]:
    """Return how many task messages wait in the queue and the age in seconds of the oldest at `now`
    (epoch seconds, by default this moment); None for the age when none waits."""
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=STORE_TIMEOUT_SECONDS,
                                  socket_connect_timeout=STORE_TIMEOUT_SECONDS)
    try:
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        length = client.llen(queue)
        # Kombu pushes on the left and workers take from the right: the oldest message is the last.
        oldest = client.lindex(queue, -1) if length else None
    finally:
        client.close()
    if oldest is None:
        return length, None
    try:
        sent_at = orjson.loads(oldest).get("headers", {}).get(SENT_AT_HEADER)
    except (orjson.JSONDecodeError, AttributeError):
        sent_at = None
    if not isinstance(sent_at, (int, float)):
        return length, None
    return length, max(0.0, (time.time() if now is None else now) - float(sent_at))


class ScrapeCollector(Collector):
    """The queue (from the broker) and the active runs (from the database), read when /metrics is scraped.

    A store that does not answer leaves its metrics out (Prometheus sees them missing, /health/ready says
    why) and is counted in `sync_scrape_errors`: the counts of the processes are still served.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        failed = GaugeMetricFamily("sync_scrape_errors", "Stores this scrape could not read (1: not read).",
                                   labels=["store"])
        try:
            counts = dict.fromkeys(SynchronizationRun.ACTIVE_STATUSES, 0)
            for status in SynchronizationRun.objects.filter(status__in=counts).values_list("status", flat=True):
                counts[status] += 1
        except DatabaseError as error:
            logger.warning("/metrics: the active runs could not be read: %s", error)
            connections[DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()
            failed.add_metric(["database"], 1)
        else:
            failed.add_metric(["database"], 0)
            active = GaugeMetricFamily("sync_runs_active", "Runs queued or running now, by status.",
                                       labels=["status"])
            for status, number in counts.items():
                active.add_metric([str(status)], number)
            yield active
        if settings.TASKS_IN_PROCESS:
            yield failed
            return
        try:
            length, age = queue_readings()
        except RedisError as error:
            logger.warning("/metrics: the queue could not be read from the broker: %s", error)
            failed.add_metric(["broker"], 1)
        else:
            failed.add_metric(["broker"], 0)
            yield GaugeMetricFamily("sync_queue_length", "Task messages waiting in the broker's queue.", value=length)
            yield GaugeMetricFamily(
                "sync_queue_oldest_age_seconds", "How long the oldest waiting task message has waited (0: none).",
                value=age or 0.0,
            )
        yield failed
