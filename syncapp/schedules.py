"""Start synchronizations whose cron schedule is due, and record the starts that had to be skipped."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from croniter import croniter
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from contracts.models import SynchronizationRun
from contracts.runs import RunRefused
from syncapp.cron import schedule_last_due
from syncapp.errors import ConfigurationError
from syncapp.incremental import incremental_config
from syncapp.models import Synchronization
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
