"""Start a run: create its record and its first page, or queue it behind the active run."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from contracts import runs
from contracts.models import RunPage, SynchronizationRun
from syncapp.errors import ConfigurationError
from syncapp.incremental import run_mode
from syncapp.models import Synchronization
from syncapp.runs.context import context_load, first_request
from syncapp.runs.deferred import runs_send_came_due
from workers import dispatch


def run_start(
    *,
    synchronization: Synchronization,
    trigger: str = SynchronizationRun.Trigger.MANUAL,
    force: bool = False,
    parent: SynchronizationRun | None = None,
    queue: bool = False,
    scope: list[str] | None = None,
    full: bool = False,
    push_origin: list[int] | None = None,
) -> SynchronizationRun:
    """Create a run and queue its first page; when one is active, refuse, or wait behind it if `queue`.

    `scope` limits the run to the objects with these origin ids (a push of changed register objects).
    A synchronization with sourceConfig.incremental reads incrementally from its stored cursor, unless
    `full` asks for every record (and with it, the deletion of what vanished). `push_origin`: the
    synchronizations whose writes caused this run (a push), carried on by what it writes.
    """
    context = context_load(synchronization_id=synchronization.pk)
    if not synchronization.is_enabled:
        raise runs.RunRefused(f"synchronization {synchronization.reference!r} is disabled")
    synchronization_unblock(synchronization_id=synchronization.pk)
    with transaction.atomic():
        run = runs.run_create(
            synchronization=synchronization, trigger=trigger, force=force, parent=parent, queue=queue, scope=scope,
            mode=run_mode(context.synchronization, full=full or bool(scope)), push_origin=push_origin,
        )
        if not run.waiting:
            RunPage.objects.create(run=run, number=1, request=first_request(context, run=run))
            dispatch.pages_fetch(run_id=run.pk, numbers=[1])
    return run


def synchronization_unblock(*, synchronization_id: int) -> None:
    """Fail the synchronization's lost runs, send its deferred work that came due, then start the run
    waiting behind them if none is active.

    Every start does this first, so a run whose worker or process died never blocks the
    synchronization for good, with or without Celery beat.
    """
    runs.runs_fail_stale(synchronization_id=synchronization_id)
    # Deferred work that came due is sent here too: the embedded mode has no beat to send it.
    runs_send_came_due(synchronization_id=synchronization_id)
    run_start_waiting(synchronization_id=synchronization_id)


def run_start_waiting(*, synchronization_id: int) -> SynchronizationRun | None:
    """Start the oldest run queued behind another run of the synchronization, if none is active now.

    A waiting run that cannot start (its configuration broke meanwhile) fails with the reason, and
    the next one in line is tried.
    """
    with transaction.atomic():
        Synchronization.objects.select_for_update().filter(pk=synchronization_id).first()
        active = SynchronizationRun.objects.filter(
            synchronization_id=synchronization_id, status__in=SynchronizationRun.ACTIVE_STATUSES,
            waiting=False, is_test=False,
        )
        if active.exists():
            return None
        waiting = SynchronizationRun.objects.filter(
            synchronization_id=synchronization_id, status=SynchronizationRun.Status.QUEUED, waiting=True
        ).order_by("created_at", "pk")
        for run in waiting:
            try:
                context = context_load(synchronization_id=synchronization_id)
                request = first_request(context, run=run)  # an endpoint template can fail too
            except ConfigurationError as error:
                SynchronizationRun.objects.filter(pk=run.pk).update(
                    status=SynchronizationRun.Status.FAILED, waiting=False, finished_at=timezone.now(),
                    error_message=f"could not start after the run before it: {error}",
                )
                continue
            SynchronizationRun.objects.filter(pk=run.pk).update(
                waiting=False, heartbeat_at=timezone.now(), owner=runs.run_owner()
            )
            dispatch.runner_hand_over(run_id=run.pk)
            RunPage.objects.get_or_create(run=run, number=1, defaults={"request": request})
            dispatch.pages_fetch(run_id=run.pk, numbers=[1])
            return run
    return None
