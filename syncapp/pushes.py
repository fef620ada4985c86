"""Pushes on change: a register object created, updated or deleted starts the synchronizations that
read its schema, for the objects that changed.

The register's writer (syncapp.targets.register) is the one place that writes register objects, so it
is the one place that reports changes: the admin, the API and synchronizations writing into the
register all come through it. It records them in the outbox (syncapp.outbox) in the same transaction;
this module drains the outbox after the transaction commits (a rolled-back change pushes nothing) and
sends a task per synchronization reading the schema, which starts an `event` run limited to those
objects. The drain of a schema takes all its pending changes at once, and changes that come while a
run of the synchronization is active are gathered into one run waiting behind it, so a burst makes a
handful of runs, not one per save.

Every change carries its origin: the synchronizations whose runs led to it, first to last (a run
started by a push carries the origin of the changes it pushes, and what it writes adds itself). A
push never goes back to a synchronization of its origin, nor into a schema or a source one of them
read: a pull is not pushed back to the source it came from, and two synchronizations pushing to each
other (schema a to b and b to a) stop after one hop instead of writing for ever.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from contracts.models import SynchronizationRun
from contracts.runs import RunRefused
from syncapp.errors import ConfigurationError
from syncapp.models import OutboxChange, Schema, Synchronization
from syncapp.runs.start import run_start
from syncapp.sources.register import push_events
from syncapp.write_back import changes_write_back
from workers import dispatch

logger = logging.getLogger(__name__)

# An outbox row still there after this long lost its drain: the periodic sweep pushes it.
OUTBOX_LEFT_SECONDS = 60
# Outbox rows a drain takes in one transaction (a save records one row; a chunk of a run, one row).
DRAIN_ROWS = 2000


def changes_drain(*, schema_id: int) -> int:
    """Push every pending change of a schema at once and remove them; return how many rows were pushed.

    One drain of a schema at a time: the schema is locked while its rows are taken and pushed, and a
    drain that finds it locked leaves its rows to the drain holding it, which takes what came meanwhile
    before it ends. A burst of saves is then pushed by a handful of runs, not one per save.
    """
    pushed = 0
    while True:
        with transaction.atomic():
            # FOR NO KEY UPDATE: the saves of the schema's objects (their foreign key) are not held up.
            locked = Schema.objects.select_for_update(skip_locked=True, no_key=True).filter(pk=schema_id)
            if locked.values_list("pk", flat=True).first() is None:
                return pushed  # drained elsewhere now (that drain takes these rows too), or gone
            rows = list(OutboxChange.objects.filter(schema_id=schema_id).order_by("pk")[:DRAIN_ROWS])
            if not rows:
                taken = 0
            else:
                changes_push_rows(schema_id=schema_id, rows=rows)
                OutboxChange.objects.filter(pk__in=[row.pk for row in rows]).delete()
                taken = len(rows)
        pushed += taken
        # A row committed while the lock was held found it taken and left itself to this drain: look
        # once more after letting go, and stop only when nothing is left.
        if not taken and not OutboxChange.objects.filter(schema_id=schema_id).exists():
            return pushed


def changes_drain_left(*, older_than_seconds: float = OUTBOX_LEFT_SECONDS) -> int:
    """Drain the schemas with outbox rows whose own drain was lost (a worker that died, a broker that lost
    the task); return how many rows were pushed now."""
    before = timezone.now() - timedelta(seconds=older_than_seconds)
    left = OutboxChange.objects.filter(created_at__lte=before).values_list("schema_id", flat=True).distinct()
    return sum(changes_drain(schema_id=schema_id) for schema_id in sorted(set(left)))


def changes_push_rows(*, schema_id: int, rows: list[OutboxChange]) -> None:
    """Push outbox rows of a schema together: the changes of one origin as one push per reader."""
    by_origin: dict[tuple[int, ...], list[tuple[str, str]]] = {}
    for row in rows:
        by_origin.setdefault(tuple(row.origin or ()), []).extend(tuple(pair) for pair in row.changes)
    for origin, changes in by_origin.items():
        changes_push(schema_id=schema_id, changes=changes, origin=list(origin))


def push_skipped(*, reader: dict[str, Any], origin: list[int], came_from: dict[int, tuple]) -> bool:
    """Return whether a push to `reader` would go back to where its changes came from: a synchronization
    of the origin chain, or a schema or source one of them read (a cycle of pushes ends there)."""
    if reader["pk"] in origin:
        return True
    for source_schema_id, source_id in (came_from[pk] for pk in origin if pk in came_from):
        if reader["target_schema_id"] is not None and reader["target_schema_id"] == source_schema_id:
            return True
        if reader["target_source_id"] is not None and reader["target_source_id"] == source_id:
            return True
    return False


def changes_push(
    *, schema_id: int, changes: Iterable[tuple[str, str]], origin: list[int] | None = None
) -> None:
    """Push register changes ((object id, event) pairs) to the synchronizations reading the schema, and
    write updated objects back to the two-way synchronizations that brought them, after the current
    transaction commits.

    `origin`: the synchronizations whose runs led to the changes, first to last (empty for a person's).
    No push goes back to one of them, nor into a schema or a source one of them read: a write caused
    by a push does not push back to its origin, and a cycle of pushes ends after one hop.
    """
    changes = list(changes)
    origin = list(origin or [])
    if not changes:
        return
    changed = sorted({object_id for object_id, event in changes if event == "update"})
    if changed:
        changes_write_back(schema_id=schema_id, object_ids=changed, written_by_any=origin)
    came_from = {
        pk: (source_schema_id, source_id)
        for pk, source_schema_id, source_id in Synchronization.objects.filter(pk__in=origin).values_list(
            "pk", "source_schema_id", "source_id"
        )
    }
    readers = Synchronization.objects.filter(
        source_schema_id=schema_id, is_enabled=True  # a source that reads a schema names it here
    ).values("pk", "source_config", "target_schema_id", "target_source_id").order_by("pk")
    for reader in readers:
        if push_skipped(reader=reader, origin=origin, came_from=came_from):
            continue
        events = push_events(reader["source_config"])
        object_ids = sorted({object_id for object_id, event in changes if event in events})
        if object_ids:
            dispatch.push_start(synchronization_id=reader["pk"], object_ids=object_ids, push_origin=origin)


def push_start(
    *, synchronization_id: int, object_ids: list[str], push_origin: list[int] | None = None
) -> SynchronizationRun | None:
    """Start an event run for these objects, or add them to the event run of the same origin waiting
    behind the active one."""
    push_origin = list(push_origin or [])
    synchronization = Synchronization.objects.filter(pk=synchronization_id, is_enabled=True).first()
    if synchronization is None:
        return None
    with transaction.atomic():
        Synchronization.objects.select_for_update().filter(pk=synchronization_id).first()
        waiting = (
            SynchronizationRun.objects.select_for_update()
            .filter(synchronization_id=synchronization_id, status=SynchronizationRun.Status.QUEUED, waiting=True,
                    trigger=SynchronizationRun.Trigger.EVENT, push_origin=push_origin)
            .order_by("created_at").first()
        )
        if waiting is not None:
            waiting.scope = sorted(set(waiting.scope or []) | set(object_ids))
            waiting.save(update_fields=["scope"])
            return waiting
    try:
        return run_start(
            synchronization=synchronization, trigger=SynchronizationRun.Trigger.EVENT, queue=True, scope=object_ids,
            push_origin=push_origin,
        )
    except (RunRefused, ConfigurationError) as error:
        logger.warning("push of %d object(s) to %s not started: %s", len(object_ids), synchronization.reference, error)
        return None
