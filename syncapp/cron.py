"""Cron expressions: whether one is valid, and when it last came due.

Schedules (a synchronization's runs) and incremental reads (their full runs) both read cron
expressions; this is the one place that knows how.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from croniter import croniter


def schedule_problems(schedule: str) -> list[str]:
    """Return the problems of a cron expression; an empty one means no schedule."""
    if schedule and not isinstance(schedule, str):
        return [f"schedule: must be text, a cron expression like \"*/15 * * * *\", got {type(schedule).__name__}"]
    if schedule and not croniter.is_valid(schedule):
        return [f"schedule: {schedule!r} is not a cron expression like \"*/15 * * * *\""]
    return []


def schedule_last_due(schedule: str, *, now: datetime) -> datetime:
    """Return the latest time at or before `now` at which the schedule came due."""
    # croniter's get_prev is strictly before its start: start just after now, so now itself counts.
    return croniter(schedule, now + timedelta(microseconds=1)).get_prev(datetime)


def schedule_next_due(schedule: str, *, now: datetime) -> datetime:
    """Return the first time after `now` at which the schedule comes due."""
    return croniter(schedule, now).get_next(datetime)
