"""Pushes on change: a register object created, updated or deleted starts the synchronizations that
read its schema, for the objects that changed.

The register's writer (syncapp.targets.register) is the one place that writes register objects, so it
is the one place that reports changes: the admin, the API and synchronizations writing into the
register all come through it. The pushes are sent after the transaction commits (a rolled-back change
pushes nothing) as a task, which starts an `event` run limited to those objects. Changes that come
while a run of the synchronization is active are gathered into one run waiting behind it, so a burst
makes two runs, not one per object. A change written by a synchronization is not pushed to the source
it came from (no ping-pong between a pull and a push of the same data).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction

from contracts.models import SynchronizationRun
from syncapp.models import Synchronization
from syncapp.sources.register import push_events
from workers import dispatch

logger = logging.getLogger(__name__)


def changes_push(
    *, schema_id: int, changes: Iterable[tuple[str, str]], written_by: Synchronization | None = None
) -> None:
    """Push register changes ((object id, event) pairs) to the synchronizations reading the schema,
    after the current transaction commits."""
    changes = list(changes)
    if not changes:
        return
    from syncapp.write_back import changes_write_back

    changed = sorted({object_id for object_id, event in changes if event == "update"})
    if changed:
        changes_write_back(schema_id=schema_id, object_ids=changed, written_by=written_by)
    readers = Synchronization.objects.filter(
        source_type=Synchronization.SourceType.REGISTER, source_schema_id=schema_id, is_enabled=True
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
    from contracts.runs import RunRefused
    from syncapp.errors import ConfigurationError
    from syncapp.runs.start import run_start

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
