"""The end of a run: delete what vanished, close it with its counts, start what comes after it."""
from __future__ import annotations

from django.db import connection, transaction

from contracts import runs
from contracts.models import ContractLog, RunChunk, RunPage, SynchronizationContract, SynchronizationRun
from syncapp.deletion import vanished_delete
from syncapp.incremental import run_cursor_store
from syncapp.models import Object
from syncapp.runs.start import run_start_waiting
from workers import dispatch


def follow_ups_due(run: SynchronizationRun) -> bool:
    """Return whether the run's follow-ups start: after success, or partial with followUpsOnPartial."""
    if run.is_test:
        return False
    if run.status == SynchronizationRun.Status.SUCCEEDED:
        return True
    on_partial = (run.synchronization.source_config or {}).get("followUpsOnPartial", False)
    return run.status == SynchronizationRun.Status.PARTIAL and on_partial in (True, "true", "1", 1)


def run_close_if_complete(*, run_id: int) -> None:
    """Close the run if all its work has ended: delete what vanished, keep its cursor, then act on its end."""
    finished = runs.run_try_finish(run_id=run_id, before_close=vanished_delete, on_status=run_cursor_store)
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
    Where autovacuum is off, the tables are vacuumed too.
    """
    if connection.vendor != "postgresql" or run.created + run.deleted < STATISTICS_CHANGED_ROWS:
        return
    tables = ", ".join(
        model._meta.db_table for model in (SynchronizationContract, Object, ContractLog, RunPage, RunChunk)
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('autovacuum') = 'on'")
        autovacuum = cursor.fetchone()[0]
        if autovacuum or connection.in_atomic_block:
            cursor.execute(f"ANALYZE {tables}")
        else:
            # Nobody else removes the old row versions a run leaves: every index scan would wade through them.
            cursor.execute(f"VACUUM (ANALYZE) {tables}")
