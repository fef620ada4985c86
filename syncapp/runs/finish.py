"""The end of a run: delete what vanished, close it with its counts, start what comes after it."""
from __future__ import annotations

from django.db import connection, transaction

from contracts import runs
from contracts.models import ContractLog, SynchronizationContract, SynchronizationRun
from syncapp.deletion import vanished_delete
from syncapp.follow_ups import follow_ups_due
from syncapp.models import Object
from syncapp.runs.start import run_start_waiting
from workers import dispatch


def run_close_if_complete(*, run_id: int) -> None:
    """Close the run if all its work has ended: delete what vanished, then act on its end."""
    finished = runs.run_try_finish(run_id=run_id, before_close=vanished_delete)
    if finished is not None:
        run_finished(run=finished)


# A run that created or deleted this many contracts leaves PostgreSQL's statistics of them behind.
STATISTICS_CHANGED_ROWS = 10000


def run_finished(*, run: SynchronizationRun) -> None:
    """Start the follow-ups of a run that has just ended, and the run waiting behind it."""
    with transaction.atomic():
        if follow_ups_due(run) and run.synchronization.follow_ups.exists():
            dispatch.follow_ups_start(run_id=run.pk)
        run_start_waiting(synchronization_id=run.synchronization_id)
    statistics_refresh(run=run)


def statistics_refresh(*, run: SynchronizationRun) -> None:
    """Refresh the planner's statistics after a run that changed many contracts.

    A first sync fills the tables faster than autovacuum looks at them, and until it does the
    planner reads a page's contracts with the plans of a small table: the next run would pay for it.
    """
    if connection.vendor != "postgresql" or run.created + run.deleted < STATISTICS_CHANGED_ROWS:
        return
    tables = [SynchronizationContract._meta.db_table, Object._meta.db_table, ContractLog._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(tables)}")
