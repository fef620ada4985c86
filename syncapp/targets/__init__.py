"""Targets: one writer per target type, registered by type.

A writer applies a chunk of planned writes (and the deletions of vanished objects) to its target and
reports each object's outcome; the run steps (syncapp.runs) know no target type. A new target is a
module here that registers its writer class with `writer_type`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from syncapp.models import Synchronization


@dataclass(frozen=True)
class Write:
    """One planned write: the object mapped from a source object, for the contract's target id."""

    target_id: str | None
    data: Any
    origin_id: str = ""
    # Names this write of this run, the same when the write is tried again (an idempotency key).
    key: str = ""
    # The hash of what was last written there: a target that holds something else was changed there.
    known_hash: str = ""


@dataclass(frozen=True)
class Outcome:
    """What became of one write: created, updated, invalid, failed, or retry (failed for a passing reason)."""

    kind: str
    target_id: str | None = None
    error: str = ""
    response: Any = None

    CREATED: ClassVar[str] = "created"
    UPDATED: ClassVar[str] = "updated"
    INVALID: ClassVar[str] = "invalid"
    FAILED: ClassVar[str] = "failed"
    RETRY: ClassVar[str] = "retry"
    # Two-way sync: changed at the target too since the last sync. CONFLICT leaves both for a person;
    # KEPT keeps the target's version (conflictWinner target), which then goes back to the source.
    CONFLICT: ClassVar[str] = "conflict"
    KEPT: ClassVar[str] = "kept"


class Writer(Protocol):
    """What the run steps ask of a target."""

    def validate(self, data: Any) -> None:
        """Raise InvalidObject when the object cannot be written to this target."""

    def existing(self, target_ids: list[str]) -> set[str]:
        """Return those of the target ids that are still there."""

    def write(self, writes: list[Write]) -> list[Outcome]:
        """Apply the writes; return one outcome per write, in order. Raise only for what ends the chunk."""

    def delete(self, target_ids: list[str]) -> None:
        """Delete the objects; one that is gone already counts as deleted."""


@dataclass
class _Registry:
    writers: dict[str, type] = field(default_factory=dict)


_registry = _Registry()


def writer_type(target_type: str):
    """Register a writer class for a target type (a class decorator)."""
    def register(cls: type) -> type:
        _registry.writers[target_type] = cls
        return cls

    return register


def writer_problem(synchronization: Synchronization) -> str | None:
    """Return why the synchronization's target cannot be written, or None."""
    cls = _registry.writers.get(synchronization.target_type)
    if cls is None:
        kind = synchronization.target_type
        return f"synchronization {synchronization.reference!r}: target type {kind!r} cannot be written yet"
    return cls.problem(synchronization)


def writer_for(synchronization: Synchronization) -> Writer:
    """Return the writer of the synchronization's target; check writer_problem first."""
    return _registry.writers[synchronization.target_type](synchronization)


# The writers register themselves on import.
from syncapp.targets import api as _api  # noqa: E402, F401
from syncapp.targets import register as _register  # noqa: E402, F401
