"""Runs that never stay stuck: lost runs failed, and the runs waiting behind an ended run started."""
from __future__ import annotations

from contracts import runs
from contracts.models import SynchronizationRun
from syncapp.runs.start import run_start_waiting


def run_cancel(*, run: SynchronizationRun) -> bool:
    """Cancel an active run and start the run waiting behind it; return False if it had ended."""
    cancelled = runs.run_cancel(run=run)
    if cancelled:
        run_start_waiting(synchronization_id=run.synchronization_id)
    return cancelled


def runs_recover() -> list[int]:
    """Fail every lost run and start the runs waiting behind ended ones; return the ids of the failed runs.

    Celery beat sends this every minute; every start of a run does the same for its synchronization
    (`syncapp.runs.start.synchronization_unblock`), so the embedded mode, which has no beat, recovers too.
    """
    failed = runs.runs_fail_stale()
    waiting = (
        SynchronizationRun.objects.filter(status=SynchronizationRun.Status.QUEUED, waiting=True)
        .values_list("synchronization_id", flat=True).distinct()
    )
    for synchronization_id in set(waiting):
        run_start_waiting(synchronization_id=synchronization_id)
    return failed
