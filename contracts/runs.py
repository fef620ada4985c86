"""The life of a run record: start, count, finish."""
from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from contracts.models import RunPage, SynchronizationRun
from syncapp.models import Synchronization

logger = logging.getLogger(__name__)


class RunRefused(Exception):
    """A run could not be started: another is active, or the synchronization is disabled."""


def run_create(
    *,
    synchronization: Synchronization,
    trigger: str = SynchronizationRun.Trigger.MANUAL,
    test: bool = False,
    force: bool = False,
    parent: SynchronizationRun | None = None,
) -> SynchronizationRun:
    """Create a queued run; refuse when another run of the synchronization is active."""
    with transaction.atomic():
        # Lock the synchronization so two starts at once cannot both see "no active run".
        Synchronization.objects.select_for_update().filter(pk=synchronization.pk).first()
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
            if active is not None:
                raise RunRefused(
                    f"synchronization {synchronization.reference!r} already has run {active.pk} "
                    f"{active.status}: wait for it to end"
                )
        return SynchronizationRun.objects.create(
            synchronization=synchronization, trigger=trigger, is_test=test, is_forced=force, parent=parent
        )


def run_mark_running(*, run_id: int) -> bool:
    """Move a queued run to running; return False when it is not active any more."""
    SynchronizationRun.objects.filter(pk=run_id, status=SynchronizationRun.Status.QUEUED).update(
        status=SynchronizationRun.Status.RUNNING, started_at=timezone.now()
    )
    return SynchronizationRun.objects.filter(pk=run_id, status=SynchronizationRun.Status.RUNNING).exists()


def run_add_counts(*, run_id: int, **increments: int) -> None:
    """Add to the run's counters in one UPDATE, safe against concurrent tasks."""
    changes = {name: F(name) + value for name, value in increments.items() if value}
    if changes:
        SynchronizationRun.objects.filter(pk=run_id).update(**changes)


def run_fail(*, run_id: int, message: str) -> None:
    """Record an error of the run itself; it ends failed once its tasks have ended."""
    SynchronizationRun.objects.filter(pk=run_id).update(error_message=message[:5000], fetch_finished=True)


def run_is_complete(run: SynchronizationRun) -> bool:
    """Return whether every page and object task of the run has ended."""
    return (
        run.fetch_finished
        and run.objects_done >= run.objects_queued
        and not RunPage.objects.filter(run_id=run.pk, status=RunPage.Status.QUEUED).exists()
    )


def final_status(run: SynchronizationRun) -> str:
    """Return the status a complete run ends with."""
    if run.error_message and not run.max_pages_reached:
        return SynchronizationRun.Status.FAILED
    if run.invalid or run.failed or run.max_pages_reached:
        return SynchronizationRun.Status.PARTIAL
    return SynchronizationRun.Status.SUCCEEDED


def run_try_finish(*, run_id: int) -> SynchronizationRun | None:
    """Close the run when all its work has ended; return it only to the one caller that closed it."""
    with transaction.atomic():
        run = SynchronizationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != SynchronizationRun.Status.RUNNING or not run_is_complete(run):
            return None
        run.status = final_status(run)
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
    logger.info("run %s of %s ended %s %s", run.pk, run.synchronization_id, run.status, run.counts)
    return run


def run_summary(run: SynchronizationRun) -> dict:
    """Return the run as plain JSON, for the command line and the API."""
    return {
        "id": run.pk,
        "reference": str(run.reference),
        "synchronization": run.synchronization.reference,
        "trigger": run.trigger,
        "test": run.is_test,
        "force": run.is_forced,
        "status": run.status,
        "counts": run.counts,
        "pagesFetched": run.pages_fetched,
        "error": run.error_message or None,
        "createdAt": run.created_at.isoformat() if run.created_at else None,
        "startedAt": run.started_at.isoformat() if run.started_at else None,
        "finishedAt": run.finished_at.isoformat() if run.finished_at else None,
        "durationSeconds": run.duration_seconds,
        "parent": run.parent_id,
    }
