"""Start synchronizations whose cron schedule is due."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from croniter import croniter
from django.utils import timezone

from contracts.models import SynchronizationRun
from syncapp.models import Synchronization

logger = logging.getLogger(__name__)


def schedule_problems(schedule: str) -> list[str]:
    """Return the problems of a cron expression; an empty one means no schedule."""
    if schedule and not croniter.is_valid(schedule):
        return [f"schedule: {schedule!r} is not a cron expression like \"*/15 * * * *\""]
    return []


def schedules_start_due(*, now: datetime | None = None) -> list[SynchronizationRun]:
    """Start each enabled synchronization whose schedule matches this minute, once per minute."""
    from contracts.runs import RunRefused
    from syncapp.runs.context import ConfigurationError
    from syncapp.runs.start import run_start

    minute = (now or timezone.now()).replace(second=0, microsecond=0)
    started = []
    for sync in Synchronization.objects.filter(is_enabled=True).exclude(schedule=""):
        if not croniter.is_valid(sync.schedule) or not croniter.match(sync.schedule, minute):
            continue
        already = SynchronizationRun.objects.filter(
            synchronization=sync, trigger=SynchronizationRun.Trigger.SCHEDULE,
            created_at__gte=minute, created_at__lt=minute + timedelta(minutes=1),
        ).exists()
        if already:
            continue
        try:
            started.append(run_start(synchronization=sync, trigger=SynchronizationRun.Trigger.SCHEDULE))
        except (RunRefused, ConfigurationError) as error:
            logger.warning("scheduled run of %s not started: %s", sync.reference, error)
    return started
