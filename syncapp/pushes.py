"""Pushes on change: a register object created, updated or deleted starts the synchronizations that
read its schema, for the objects that changed.

The register's writer (syncapp.targets.register) is the one place that writes register objects, so it
is the one place that reports changes: the admin, the API and synchronizations writing into the
register all come through it. It records them in the outbox (syncapp.outbox) in the same transaction;
this module drains the outbox after the transaction commits (a rolled-back change pushes nothing) and
sends a task per synchronization reading the schema, which starts an `event` run limited to those
objects. Changes that come while a run of the synchronization is active are gathered into one run
waiting behind it, so a burst makes two runs, not one per object. A change written by a
synchronization is not pushed to the source it came from (no ping-pong between a pull and a push of
the same data).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from contracts.models import SynchronizationRun
from contracts.runs import RunRefused
from syncapp.errors import ConfigurationError
from syncapp.models import OutboxChange, Synchronization
from syncapp.runs.start import run_start
from syncapp.sources.register import push_events
from syncapp.write_back import changes_write_back
from workers import dispatch

logger = logging.getLogger(__name__)

# An outbox row still there after this long lost its drain: the periodic sweep pushes it.
OUTBOX_LEFT_SECONDS = 60


def changes_drain(*, change_id: int) -> bool:
    """Push the changes of one outbox row and remove it; return False when it was drained already.

    The row is locked while it is pushed, so two drains of the same row (a redelivered task, the
    sweep of left-over rows) push it once.
    """
    with transaction.atomic():
        change = OutboxChange.objects.select_for_update(skip_locked=True).filter(pk=change_id).first()
        if change is None:
            return False
        written_by = (
            Synchronization.objects.filter(pk=change.written_by_id).first() if change.written_by_id else None
        )
        changes_push(
            schema_id=change.schema_id, changes=[tuple(pair) for pair in change.changes], written_by=written_by
        )
        change.delete()
    return True


def changes_drain_left(*, older_than_seconds: float = OUTBOX_LEFT_SECONDS) -> int:
    """Drain the outbox rows whose own drain was lost (a worker that died, a broker that lost the task);
    return how many were pushed now."""
    before = timezone.now() - timedelta(seconds=older_than_seconds)
    left = OutboxChange.objects.filter(created_at__lte=before).values_list("pk", flat=True)
    return sum(changes_drain(change_id=change_id) for change_id in list(left))


def changes_push(
    *, schema_id: int, changes: Iterable[tuple[str, str]], written_by: Synchronization | None = None
) -> None:
    """Push register changes ((object id, event) pairs) to the synchronizations reading the schema, and
    write updated objects back to the two-way synchronizations that brought them, after the current
    transaction commits."""
    changes = list(changes)
    if not changes:
        return
    changed = sorted({object_id for object_id, event in changes if event == "update"})
    if changed:
        changes_write_back(schema_id=schema_id, object_ids=changed, written_by=written_by)
    readers = Synchronization.objects.filter(
        source_schema_id=schema_id, is_enabled=True  # a source that reads a schema names it here
    ).values_list("pk", "source_config", "target_source_id")
    for synchronization_id, source_config, target_source_id in readers:
        if written_by is not None and (
            synchronization_id == written_by.pk
            or (target_source_id is not None and target_source_id == written_by.source_id)
        ):
            continue  # back to where the object came from
        events = push_events(source_config)
        object_ids = sorted({object_id for object_id, event in changes if event in events})
        if object_ids:
            dispatch.push_start(synchronization_id=synchronization_id, object_ids=object_ids)


def push_start(*, synchronization_id: int, object_ids: list[str]) -> SynchronizationRun | None:
    """Start an event run for these objects, or add them to the event run waiting behind the active one."""
    synchronization = Synchronization.objects.filter(pk=synchronization_id, is_enabled=True).first()
    if synchronization is None:
        return None
    with transaction.atomic():
        Synchronization.objects.select_for_update().filter(pk=synchronization_id).first()
        waiting = (
            SynchronizationRun.objects.select_for_update()
            .filter(synchronization_id=synchronization_id, status=SynchronizationRun.Status.QUEUED, waiting=True,
                    trigger=SynchronizationRun.Trigger.EVENT)
            .order_by("created_at").first()
        )
        if waiting is not None:
            waiting.scope = sorted(set(waiting.scope or []) | set(object_ids))
            waiting.save(update_fields=["scope"])
            return waiting
    try:
        return run_start(
            synchronization=synchronization, trigger=SynchronizationRun.Trigger.EVENT, queue=True, scope=object_ids
        )
    except (RunRefused, ConfigurationError) as error:
        logger.warning("push of %d object(s) to %s not started: %s", len(object_ids), synchronization.reference, error)
        return None
