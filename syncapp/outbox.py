"""The outbox of register changes: recorded where objects are written, drained by the pushes.

The register's writer (syncapp.targets.register) writes every register object, so it is where
changes are known; what they start (pushes to the synchronizations reading the schema, write-backs
to the sources they came from) is decided above it, by syncapp.pushes. In between is this outbox: a
row per batch of changes, in the same transaction as the change itself, and a drain sent after the
transaction commits. The writer then never imports the pushes, and a change is pushed exactly when
it was committed.
"""
from __future__ import annotations

from collections.abc import Iterable

from syncapp.models import OutboxChange, Synchronization
from workers import dispatch

# The changes of register objects, as the outbox records them.
EVENTS = ("create", "update", "delete")


def changes_record(
    *, schema_id: int, changes: Iterable[tuple[str, str]], written_by: Synchronization | None = None,
    caused_by: Iterable[int] = (),
) -> OutboxChange | None:
    """Record register changes ((object id, event) pairs) in the current transaction, and send the drain
    of their schema for after it commits; `written_by`: the synchronization whose run made them,
    `caused_by`: the synchronizations whose writes caused that run (its push origin), first to last."""
    changes = [[str(object_id), event] for object_id, event in changes]
    if not changes:
        return None
    origin = [int(pk) for pk in caused_by]
    if written_by is not None:
        origin.append(written_by.pk)
    change = OutboxChange.objects.create(schema_id=schema_id, changes=changes, written_by=written_by, origin=origin)
    dispatch.outbox_drain(schema_id=schema_id)
    return change
