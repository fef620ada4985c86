"""Targets: one writer per target type, registered by type.

A writer applies a chunk of planned writes (and the deletions of vanished objects) to its target and
reports each object's outcome; the run steps (syncapp.runs) know no target type. A new target is a
module here implementing the interface of `syncapp.targets.base`, named in the table below: this
module imports the kinds, the kinds never import it.
"""
from __future__ import annotations

from syncapp.models import Synchronization
from syncapp.targets.api import ApiWriter
from syncapp.targets.base import Writer
from syncapp.targets.register import RegisterWriter

# The writer class of each target type.
_writers: dict[str, type] = {
    Synchronization.TargetType.API: ApiWriter,
    Synchronization.TargetType.REGISTER: RegisterWriter,
}


def writer_problem(synchronization: Synchronization) -> str | None:
    """Return why the synchronization's target cannot be written, or None."""
    cls = _writers.get(synchronization.target_type)
    if cls is None:
        kind = synchronization.target_type
        return f"synchronization {synchronization.reference!r}: target type {kind!r} cannot be written yet"
    return cls.problem(synchronization)


def writer_for(synchronization: Synchronization) -> Writer:
    """Return the writer of the synchronization's target; check writer_problem first."""
    return _writers[synchronization.target_type](synchronization)
