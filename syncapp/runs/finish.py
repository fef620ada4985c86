"""The end of a run: delete what vanished, close it with its counts, start what comes after it."""
from __future__ import annotations

from django.db import transaction

from contracts import runs
from contracts.models import SynchronizationRun
from syncapp.deletion import vanished_delete
from syncapp.follow_ups import follow_ups_due
from syncapp.runs.start import run_start_waiting
from workers import dispatch


def run_close_if_complete(*, run_id: int) -> None:
    """Close the run if all its work has ended: delete what vanished, then act on its end."""
    finished = runs.run_try_finish(run_id=run_id, before_close=vanished_delete)
    if finished is not None:
        run_finished(run=finished)


def run_finished(*, run: SynchronizationRun) -> None:
    """Start the follow-ups of a run that has just ended, and the run waiting behind it."""
    with transaction.atomic():
        if follow_ups_due(run) and run.synchronization.follow_ups.exists():
            dispatch.follow_ups_start(run_id=run.pk)
        run_start_waiting(synchronization_id=run.synchronization_id)
