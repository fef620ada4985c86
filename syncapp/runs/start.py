"""Start a run: create its record and its first page, or queue it behind the active run."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from contracts import runs
from contracts.models import RunPage, SynchronizationRun
from syncapp.models import Synchronization
from syncapp.runs.context import ConfigurationError, context_load, first_request
from workers import dispatch


def run_start(
    *,
    synchronization: Synchronization,
    trigger: str = SynchronizationRun.Trigger.MANUAL,
    force: bool = False,
    parent: SynchronizationRun | None = None,
    queue: bool = False,
) -> SynchronizationRun:
    """Create a run and queue its first page; when one is active, refuse, or wait behind it if `queue`."""
    context = context_load(synchronization_id=synchronization.pk)
    if not synchronization.is_enabled:
        raise runs.RunRefused(f"synchronization {synchronization.reference!r} is disabled")
    with transaction.atomic():
        run = runs.run_create(
            synchronization=synchronization, trigger=trigger, force=force, parent=parent, queue=queue
        )
        if not run.waiting:
            RunPage.objects.create(run=run, number=1, request=first_request(context, run=run))
            dispatch.pages_fetch(run_id=run.pk, numbers=[1])
    return run


def run_start_waiting(*, synchronization_id: int) -> SynchronizationRun | None:
    """Start the oldest run queued behind another run of the synchronization, if none is active now."""
    with transaction.atomic():
        Synchronization.objects.select_for_update().filter(pk=synchronization_id).first()
        active = SynchronizationRun.objects.filter(
            synchronization_id=synchronization_id, status__in=SynchronizationRun.ACTIVE_STATUSES,
            waiting=False, is_test=False,
        )
        if active.exists():
            return None
        run = (
            SynchronizationRun.objects.filter(
                synchronization_id=synchronization_id, status=SynchronizationRun.Status.QUEUED, waiting=True
            )
            .order_by("created_at", "pk")
            .first()
        )
        if run is None:
            return None
        try:
            context = context_load(synchronization_id=synchronization_id)
            request = first_request(context, run=run)  # an endpoint template can fail too
        except ConfigurationError as error:
            SynchronizationRun.objects.filter(pk=run.pk).update(
                status=SynchronizationRun.Status.FAILED, waiting=False, error_message=str(error),
                finished_at=timezone.now(),
            )
            return None
        SynchronizationRun.objects.filter(pk=run.pk).update(waiting=False, heartbeat_at=timezone.now())
        RunPage.objects.get_or_create(run=run, number=1, defaults={"request": request})
        dispatch.pages_fetch(run_id=run.pk, numbers=[1])
    return run
