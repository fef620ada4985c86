"""Start synchronizations whose cron schedule is due, and record the starts that had to be skipped."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from croniter import croniter
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from contracts.models import SynchronizationRun
from contracts.runs import RunRefused, process_identity
from syncapp.cron import schedule_last_due, schedule_next_due
from syncapp.errors import ConfigurationError
from syncapp.incremental import incremental_config
from syncapp.models import SchedulerHeartbeat, Synchronization
from syncapp.runs.start import run_start

logger = logging.getLogger(__name__)


def schedule_claim(*, synchronization: Synchronization, due: datetime, field: str = "schedule_checked_at") -> bool:
    """Mark the due time as acted on; return False when it was already (by another beat or tick).

    `field` is where the schedule keeps its last due time: the full-run schedule keeps its own.
    """
    return bool(
        Synchronization.objects.filter(pk=synchronization.pk)
        .filter(Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lt": due}))
        .update(**{field: due})
    )


def schedule_skip_record(*, synchronization: Synchronization, due: datetime, reason: str) -> None:
    """Record a due time whose run was not started, for the admin to show."""
    Synchronization.objects.filter(pk=synchronization.pk).update(
        schedule_skips=F("schedule_skips") + 1, schedule_skipped_at=due, schedule_skip_reason=reason[:2000]
    )
    logger.warning("scheduled run of %s at %s skipped: %s", synchronization.reference, due.isoformat(), reason)


def schedules_start_due(*, now: datetime | None = None) -> list[SynchronizationRun]:
    """Start each enabled synchronization whose schedule came due since it was last acted on.

    Each due time is acted on once, by one beat. A start refused because a run is still active is
    recorded as a skip. A due time more than two ticks old (the beat was down, or the synchronization
    disabled) starts nothing: it is recorded as missed, and the next due time starts a run.
    """
    now = now or timezone.now()
    grace = timedelta(seconds=2 * max(settings.SYNC_SCHEDULE_TICK_SECONDS, 30))
    started = []

    def start_if_due(sync: Synchronization, *, schedule: str, field: str, full: bool, covered: bool = False) -> bool:
        """Start the run of a due time not acted on yet; return whether one started."""
        if not croniter.is_valid(schedule):
            return False
        checked = getattr(sync, field)
        due = schedule_last_due(schedule, now=now)
        if checked is not None and due <= checked:
            return False
        if not schedule_claim(synchronization=sync, due=due, field=field) or covered:
            return False
        if due < now - grace:
            if checked is not None:
                schedule_skip_record(
                    synchronization=sync, due=due,
                    reason="missed: no beat was running then, or the synchronization was disabled",
                )
            return False
        try:
            # A full run is the only one that deletes: one due while an incremental run is active waits
            # behind it, rather than leave deletions to the next due time.
            started.append(run_start(
                synchronization=sync, trigger=SynchronizationRun.Trigger.SCHEDULE, full=full, queue=full,
            ))
        except (RunRefused, ConfigurationError) as error:
            kind = "full run" if full else "run"
            schedule_skip_record(synchronization=sync, due=due, reason=f"{kind}: {error}")
            return False
        return True

    scheduled = Q(schedule__gt="") | Q(source_config__has_key="incremental")
    for sync in Synchronization.objects.filter(scheduled, is_enabled=True):
        # The full-run schedule of an incremental synchronization first: when both come due at once,
        # the full run reads everything the incremental one would, which then does not start.
        config = incremental_config(sync.source_config)
        full = False
        if config is not None and config.full_schedule:
            full = start_if_due(sync, schedule=config.full_schedule, field="full_schedule_checked_at", full=True)
        if sync.schedule:
            start_if_due(sync, schedule=sync.schedule, field="schedule_checked_at", full=False, covered=full)
    return started


def scheduler_tick_record(*, kind: str, now: datetime | None = None) -> None:
    """Record that this process ticked now (`sync serve`, or Celery beat's tick task on a worker)."""
    now = now or timezone.now()
    identity = process_identity()
    host, pid, _ = identity.rsplit(":", 2)
    SchedulerHeartbeat.objects.update_or_create(
        identity=identity, defaults={"kind": kind, "host": host, "pid": int(pid), "ticked_at": now},
    )
    # Rows of processes long gone: kept as long as runs are, for the runs they owned.
    cutoff = now - timedelta(days=settings.SYNC_LOG_RETENTION_DAYS)
    SchedulerHeartbeat.objects.filter(ticked_at__lt=cutoff).delete()


def scheduler_silent_after() -> float:
    """Return the seconds without a tick after which no scheduler counts as running: three ticks missed."""
    return max(3 * settings.SYNC_SCHEDULE_TICK_SECONDS, 90)


def scheduler_warning(*, now: datetime | None = None) -> str | None:
    """Return why schedules (and, tasks in process, queued runs) wait for nothing, or None when a scheduler
    ticked lately or nothing needs one."""
    now = now or timezone.now()
    last = SchedulerHeartbeat.objects.order_by("-ticked_at").first()
    if last is not None and last.ticked_at >= now - timedelta(seconds=scheduler_silent_after()):
        return None
    scheduled = Synchronization.objects.filter(is_enabled=True).filter(
        Q(schedule__gt="") | Q(source_config__incremental__has_key="fullSchedule")
    ).exists()
    if not scheduled and not settings.TASKS_IN_PROCESS:
        return None
    since = f"last tick {timezone.localtime(last.ticked_at):%Y-%m-%d %H:%M:%S %Z} ({last})" if last else "never ticked"
    if settings.TASKS_IN_PROCESS:
        return (f"No scheduler is running ({since}): schedules do not fire and runs started from the admin or "
                "the API stay queued. Start `.venv/bin/python manage.py sync serve`.")
    return (f"No scheduler is running ({since}): schedules do not fire. Start Celery beat "
            "(`.venv/bin/celery -A config beat`).")


def synchronization_next_run(synchronization: Synchronization, *, now: datetime | None = None) -> datetime | None:
    """Return when the synchronization's schedule (or its full-run schedule) next comes due; None without one."""
    if not synchronization.is_enabled:
        return None
    now = now or timezone.now()
    schedules = [synchronization.schedule]
    config = incremental_config(synchronization.source_config)
    if config is not None:
        schedules.append(config.full_schedule or "")
    dues = [schedule_next_due(schedule, now=now) for schedule in schedules if schedule and croniter.is_valid(schedule)]
    return min(dues, default=None)
