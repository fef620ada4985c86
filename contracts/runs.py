"""The life of a run record: start, count, finish."""
from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from contracts.models import ContractLog, RunChunk, RunPage, SynchronizationRun
from syncapp import metrics
from syncapp.errors import SyncError
from syncapp.models import SchedulerHeartbeat, Synchronization
from workers import dispatch

logger = logging.getLogger(__name__)


class RunRefused(SyncError):
    """A run could not be started: another is active, or the synchronization is disabled."""


def run_create(
    *,
    synchronization: Synchronization,
    trigger: str = SynchronizationRun.Trigger.MANUAL,
    test: bool = False,
    force: bool = False,
    parent: SynchronizationRun | None = None,
    queue: bool = False,
    scope: list[str] | None = None,
    mode: str = SynchronizationRun.Mode.FULL,
    push_origin: list[int] | None = None,
) -> SynchronizationRun:
    """Create a queued run; when another run of the synchronization is active, refuse or wait behind it.

    A run with a `scope` reads, writes and deletes only the objects with those origin ids. An
    incremental run (`mode`) asks only for what changed since the stored cursor, and deletes nothing.
    `push_origin`: the synchronizations whose writes caused the run (a push), first to last.
    """
    with transaction.atomic():
        # Lock the synchronization so two starts at once cannot both see "no active run".
        Synchronization.objects.select_for_update().filter(pk=synchronization.pk).first()
        waiting = False
        if not test:
            active = (
                SynchronizationRun.objects.filter(
                    synchronization=synchronization,
                    status__in=SynchronizationRun.ACTIVE_STATUSES,
                    is_test=False,
                )
                .order_by("created_at")
                .first()
            )
            if active is not None and not queue:
                raise RunRefused(
                    f"synchronization {synchronization.reference!r} already has run {active.pk} "
                    f"{active.status}: wait for it to end, or ask to queue behind it"
                )
            waiting = active is not None
        run = SynchronizationRun.objects.create(
            synchronization=synchronization, trigger=trigger, is_test=test, is_forced=force, parent=parent,
            waiting=waiting, heartbeat_at=timezone.now(), owner="" if waiting else run_owner(),
            scope=sorted(set(scope or [])), mode=mode, push_origin=list(push_origin or []),
        )
        if not waiting and not test:
            dispatch.runner_hand_over(run_id=run.pk)
        return run


def run_owner() -> str:
    """Return who runs a run started now: this process when tasks run in process, nobody in particular with
    a broker, nobody yet when it is left to the runner (`sync serve`, workers.dispatch.for_the_runner)."""
    if not settings.TASKS_IN_PROCESS or dispatch.runner_leaves_to():
        return ""
    return process_identity()


def _process_start(pid: int) -> str | None:
    """Return when the process started (clock ticks since boot), or None where /proc does not tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@functools.cache
def process_identity() -> str:
    """Return this process as host:pid:start, to tell later whether it still lives."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid) or ''}"


def process_gone(owner: str) -> bool:
    """Return whether the process an owner names has ended; only a process of this host can be told."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid, start = parts[0], int(parts[1]), parts[2]
    if host != socket.gethostname():
        return False
    if start and Path("/proc").is_dir():
        # A pid is reused: the same pid with another start time is another process.
        return _process_start(pid) != start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class RunFacts:
    """What never changes about a run: read once per worker process."""

    pk: int
    synchronization_id: int
    is_forced: bool
    # The synchronizations whose writes caused the run (SynchronizationRun.push_origin).
    push_origin: tuple[int, ...] = ()
    # The origin ids the run is limited to (SynchronizationRun.scope); empty: everything.
    scope: frozenset[str] = frozenset()


@functools.lru_cache(maxsize=64)
def run_facts(*, run_id: int) -> RunFacts | None:
    """Return the run's synchronization, force flag, push origin and scope, or None when there is no such run."""
    row = SynchronizationRun.objects.filter(pk=run_id).values_list(
        "pk", "synchronization_id", "is_forced", "push_origin", "scope"
    ).first()
    if row is None:
        return None
    pk, synchronization_id, is_forced, push_origin, scope = row
    return RunFacts(pk=pk, synchronization_id=synchronization_id, is_forced=is_forced,
                    push_origin=tuple(push_origin or ()), scope=frozenset(str(value) for value in scope or ()))


def run_mark_running(*, run_id: int) -> bool:
    """Move a queued run to running; return False when it is not active any more."""
    now = timezone.now()
    SynchronizationRun.objects.filter(pk=run_id, status=SynchronizationRun.Status.QUEUED).update(
        status=SynchronizationRun.Status.RUNNING, started_at=now, heartbeat_at=now, owner=run_owner()
    )
    return SynchronizationRun.objects.filter(pk=run_id, status=SynchronizationRun.Status.RUNNING).exists()


_RUNS = SynchronizationRun._meta.db_table
_COUNTERS = frozenset(field.attname for field in SynchronizationRun._meta.concrete_fields) - {"id", "heartbeat_at"}
# What tells whether a run's work has all ended (run_is_complete), as a counters statement returns it.
COMPLETION_COLUMNS = ("status", "fetch_finished", "objects_done", "objects_queued", "pages_judged", "pages_ended")


@dataclass(frozen=True)
class Completion:
    """A run's completion fields as one statement left them (under the run row's lock)."""

    status: str
    fetch_finished: bool
    objects_done: int
    objects_queued: int
    pages_judged: int
    pages_ended: int

    @property
    def may_close(self) -> bool:
        """Whether the run may be complete: running, and its work all ended as this statement saw it."""
        return self.status == SynchronizationRun.Status.RUNNING and run_is_complete(self)


def run_counts_sql(*, run_id: int, returning: bool = False, **increments: float) -> tuple[str, list]:
    """Return the UPDATE that adds to the run's counters and moves its heartbeat, as SQL and parameters,
    to be run alone or folded into another statement (a WITH of PostgreSQL); raw SQL, for the hot path.

    `returning`: the statement returns the run's COMPLETION_COLUMNS, as they are after it.
    """
    unknown = set(increments) - _COUNTERS
    if unknown:
        raise ValueError(f"run counters: no such counter {sorted(unknown)} on {_RUNS}")
    changes = [(name, value) for name, value in increments.items() if value]
    sets = "".join(f", {name} = {name} + %s" for name, _ in changes)
    sql = f"UPDATE {_RUNS} SET heartbeat_at = %s{sets} WHERE id = %s"
    if returning:
        sql += " RETURNING " + ", ".join(COMPLETION_COLUMNS)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    return sql, [now, *(value for _, value in changes), run_id]


def run_completion(*, run_id: int) -> Completion | None:
    """Return the run's completion fields as they are now; raw SQL: a page's task asks after every page, and
    the ORM took seven times the CPU of the read itself to build it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(COMPLETION_COLUMNS)} FROM {_RUNS} WHERE id = %s", [run_id])
        row = cursor.fetchone()
    return Completion(*row) if row is not None else None


def run_add_counts(*, run_id: int, **increments: float) -> None:
    """Add to the run's counters in one UPDATE, safe against concurrent tasks; it is a heartbeat too."""
    sql, params = run_counts_sql(run_id=run_id, **increments)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def run_add_counts_returning(*, run_id: int, **increments: float) -> Completion | None:
    """Add to the run's counters (run_add_counts) and return its completion fields as they are after it."""
    sql, params = run_counts_sql(run_id=run_id, returning=True, **increments)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return Completion(*row) if row is not None else None


def run_deferral_record(*, run_id: int) -> datetime | None:
    """Record on the run when its next deferred page or object is due (None: nothing waits); return it.

    Also a heartbeat: a run that just deferred work made progress.
    """
    now = timezone.now()
    dues = [
        model.objects.filter(run_id=run_id, status__in=statuses, not_before__gt=now)
        .order_by("not_before").values_list("not_before", flat=True).first()
        for model, statuses in ((RunPage, RunPage.OPEN_STATUSES), (RunChunk, [RunChunk.Status.QUEUED]))
    ]
    until = min((due for due in dues if due is not None), default=None)
    SynchronizationRun.objects.filter(pk=run_id).update(deferred_until=until, heartbeat_at=now)
    return until


def run_fail(*, run_id: int, message: str) -> None:
    """Record an error of the run itself; it ends failed once its tasks have ended."""
    SynchronizationRun.objects.filter(pk=run_id).update(error_message=message[:5000], fetch_finished=True)


def run_work_forget(*, run_id: int) -> None:
    """Drop what an ended run kept for its tasks: its chunks and the answers of pages fetched ahead."""
    RunChunk.objects.filter(run_id=run_id).delete()
    RunPage.objects.filter(run_id=run_id, payload__isnull=False).update(payload=None)


def run_is_complete(run: SynchronizationRun | Completion) -> bool:
    """Return whether every page and object task of the run has ended."""
    return run.fetch_finished and run.objects_done >= run.objects_queued and run.pages_ended >= run.pages_judged


def final_status(run: SynchronizationRun) -> str:
    """Return the status a complete run ends with."""
    if run.error_message and not (run.max_pages_reached or run.deletion_refused):
        return SynchronizationRun.Status.FAILED
    if run.invalid or run.failed or run.max_pages_reached or run.deletion_refused:
        return SynchronizationRun.Status.PARTIAL
    return SynchronizationRun.Status.SUCCEEDED


def run_try_finish(
    *, run_id: int, before_close: Callable[[SynchronizationRun], None] | None = None,
    on_status: Callable[[SynchronizationRun], None] | None = None,
) -> SynchronizationRun | None:
    """Close the run when all its work has ended; return it only to the one caller that closed it.

    `before_close` runs under the run's lock, in the closing transaction: the deletion of vanished
    objects happens there, so it happens once. `on_status` runs there too, once the run's final
    status is set (the cursor of a successful incremental read is stored there).
    """
    # Most calls come while the run still has work: tell them apart without taking the run's lock.
    ahead = run_completion(run_id=run_id)
    if ahead is None or not ahead.may_close:
        return None
    with transaction.atomic():
        run = SynchronizationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != SynchronizationRun.Status.RUNNING or not run_is_complete(run):
            return None
        if before_close is not None:
            before_close(run)
        run.status = final_status(run)
        run.finished_at = timezone.now()
        if on_status is not None:
            on_status(run)
        run.save()
        run_work_forget(run_id=run.pk)
    logger.info("run %s of %s ended %s %s", run.pk, run.synchronization_id, run.status, run.counts)
    run_end_count(run_id=run.pk)
    return run


def run_end_count(*, run_id: int) -> None:
    """Count an ended run (not a test) in the metrics: its status and how long it took."""
    run = SynchronizationRun.objects.filter(pk=run_id, is_test=False).select_related("synchronization").only(
        "status", "started_at", "finished_at", "synchronization__reference"
    ).first()
    if run is None or run.status not in SynchronizationRun.ENDED_STATUSES:
        return
    metrics.run_end_record(
        synchronization=run.synchronization.reference, status=run.status, seconds=run.duration_seconds
    )


def run_cancel(*, run: SynchronizationRun) -> bool:
    """Cancel an active run: its queued tasks do nothing, and nothing is deleted. Return False if it had ended."""
    with transaction.atomic():
        cancelled = SynchronizationRun.objects.filter(
            pk=run.pk, status__in=SynchronizationRun.ACTIVE_STATUSES
        ).update(status=SynchronizationRun.Status.CANCELLED, finished_at=timezone.now(), waiting=False)
        RunPage.objects.filter(run_id=run.pk, status__in=RunPage.OPEN_STATUSES).update(
            status=RunPage.Status.FAILED, error_message="cancelled", finished_at=timezone.now()
        )
        run_work_forget(run_id=run.pk)
    run.refresh_from_db()
    if cancelled:
        run_end_count(run_id=run.pk)
    return bool(cancelled)


def runs_fail_stale(*, synchronization_id: int | None = None, stale_after: float | None = None) -> list[int]:
    """Fail the active runs whose worker or process was lost, hand back those of a runner that ended;
    return the ids of the failed runs. One query when nothing is lost: every look at runs may call it.

    A run is lost when its tasks made no progress for `stale_after` seconds (SYNC_RUN_STALE_SECONDS),
    or at once when it ran in a process of this host that has ended. A run whose process was a runner
    (`sync serve`) is queued again instead, with no owner: nobody waits for it at a terminal, its pages
    and chunks are in the database, and the next runner takes it up where it stopped (its tasks are
    idempotent). A run of `sync run` fails: the person who started it saw its command end.
    """
    seconds = settings.SYNC_RUN_STALE_SECONDS if stale_after is None else stale_after
    now = timezone.now()
    cutoff = now - timedelta(seconds=seconds)
    active = SynchronizationRun.objects.filter(
        status__in=SynchronizationRun.ACTIVE_STATUSES, waiting=False, is_test=False
    )
    if synchronization_id is not None:
        active = active.filter(synchronization_id=synchronization_id)
    # A run whose work waits for a server's Retry-After is not lost until it stays still past the due time.
    still_lost = Q(heartbeat_at__lt=cutoff) & ~Q(deferred_until__gte=cutoff)
    reasons: dict[int, tuple[Q, str]] = {}
    gone: dict[int, str] = {}
    rows = active.values_list("pk", "owner", "status", "heartbeat_at", "deferred_until")
    for run_id, owner, status, heartbeat_at, deferred_until in rows:
        if heartbeat_at is not None and heartbeat_at < cutoff and not (deferred_until and deferred_until >= cutoff):
            if owner == "" and status == SynchronizationRun.Status.QUEUED and settings.TASKS_IN_PROCESS:
                message = (f"no runner took it in {seconds:g}s: is `manage.py sync serve` running? "
                           "nothing was deleted")
            else:
                message = f"no progress for {seconds:g}s: the worker running it was lost; nothing was deleted"
            reasons[run_id] = (still_lost, message)
        elif owner and process_gone(owner):
            gone[run_id] = owner
    if gone:
        runners = set(SchedulerHeartbeat.objects.filter(
            kind=SchedulerHeartbeat.Kind.SERVE, identity__in=set(gone.values())
        ).values_list("identity", flat=True))
        for run_id, owner in gone.items():
            pid = owner.rsplit(":", 2)[1]
            if owner in runners:
                run_hand_back(run_id=run_id, owner=owner,
                              reason=f"the runner running it (pid {pid}) ended; queued for the next runner")
                continue
            reasons[run_id] = (
                Q(owner=owner), f"the process running it (pid {pid}) ended before the run did; nothing was deleted",
            )
    failed = []
    for run_id, (still, message) in reasons.items():
        with transaction.atomic():
            updated = SynchronizationRun.objects.filter(
                still, pk=run_id, status__in=SynchronizationRun.ACTIVE_STATUSES
            ).update(status=SynchronizationRun.Status.FAILED, finished_at=timezone.now(), error_message=message)
            if updated:
                RunPage.objects.filter(run_id=run_id, status__in=RunPage.OPEN_STATUSES).update(
                    status=RunPage.Status.FAILED, error_message="run failed: worker lost", finished_at=timezone.now()
                )
                run_work_forget(run_id=run_id)
        if updated:
            logger.warning("run %s failed: %s", run_id, message)
            run_end_count(run_id=run_id)
            failed.append(run_id)
    return failed


def run_hand_back(*, run_id: int, owner: str, reason: str) -> bool:
    """Queue an active run again for the runner, with no owner, if `owner` still holds it; return whether it was.

    Its counts, pages and chunks stay: the runner that takes it sends what is still open (syncapp.runner).
    """
    handed = SynchronizationRun.objects.filter(
        pk=run_id, owner=owner, status__in=SynchronizationRun.ACTIVE_STATUSES
    ).update(owner="", status=SynchronizationRun.Status.QUEUED, heartbeat_at=timezone.now())
    if handed:
        logger.warning("run %s: %s", run_id, reason)
    return bool(handed)


def logs_purge(*, older_than_days: int | None = None) -> dict[str, int]:
    """Delete contract logs and ended runs older than the retention; keep each synchronization's last run."""
    days = settings.SYNC_LOG_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    logs, _ = ContractLog.objects.filter(created_at__lt=cutoff).delete()
    last_run = SynchronizationRun.objects.filter(synchronization=OuterRef("pk")).order_by("-created_at", "-id")
    keep = Synchronization.objects.annotate(last=Subquery(last_run.values("pk")[:1])).values_list("last", flat=True)
    _, per_model = (
        SynchronizationRun.objects.filter(created_at__lt=cutoff, status__in=SynchronizationRun.ENDED_STATUSES)
        .exclude(pk__in=[pk for pk in keep if pk is not None])
        .delete()
    )
    runs_deleted = per_model.get(SynchronizationRun._meta.label, 0)
    return {"contractLogs": logs, "runs": runs_deleted}


def run_progress(run: SynchronizationRun) -> dict:
    """Return how far a run has come, for a progress bar: objects done of found, pages, and a line."""
    done = run.filtered + run.unchanged + run.created + run.updated + run.invalid + run.failed
    active = run.status in SynchronizationRun.ACTIVE_STATUSES
    seconds = ((run.finished_at or timezone.now()) - run.started_at).total_seconds() if run.started_at else 0.0
    text = f"{run.status}: {done:,} of {run.found:,} objects done, {run.pages_fetched:,} pages, {seconds:.0f} s"
    if active and run.deferred_until is not None:
        text += f"; waiting for a Retry-After until {instant_text(run.deferred_until)}"
    return {
        "id": run.pk, "status": run.status, "active": active, "found": run.found, "done": done,
        "pagesFetched": run.pages_fetched, "counts": run.counts, "seconds": round(seconds, 1), "text": text,
    }


def instant_text(moment: datetime | None) -> str | None:
    """Return a moment as the API spells it: ISO 8601 in the current time zone, UTC as `Z` (as DRF does)."""
    if moment is None:
        return None
    text = timezone.localtime(moment).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def run_summary(run: SynchronizationRun) -> dict:
    """Return the run as plain JSON for the command line, with the names the API gives its fields."""
    return {
        "id": run.pk,
        "reference": str(run.reference),
        "synchronization": run.synchronization_id,
        "synchronizationReference": run.synchronization.reference,
        "trigger": run.trigger,
        "isTest": run.is_test,
        "isForced": run.is_forced,
        "mode": run.mode,
        "status": run.status,
        "counts": run.counts,
        "pagesFetched": run.pages_fetched,
        "enrichments": run.enrichments,
        "enrichmentsFailed": run.enrichments_failed,
        "cursorSent": run.cursor_sent,
        "cursorValue": run.cursor_value,
        "cursorMissing": run.cursor_missing,
        "retries": run.retries,
        "waitedSeconds": round(run.waited_seconds, 3),
        "deferredUntil": instant_text(run.deferred_until),
        "errorMessage": run.error_message,
        "createdAt": instant_text(run.created_at),
        "startedAt": instant_text(run.started_at),
        "finishedAt": instant_text(run.finished_at),
        "durationSeconds": run.duration_seconds,
        "parent": run.parent_id,
    }
