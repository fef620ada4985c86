"""Targets: one writer per target type, registered by type.

A writer applies a chunk of planned writes (and the deletions of vanished objects) to its target and
reports each object's outcome; the run steps (syncapp.runs) know no target type. A new target is a
module here that registers its writer class with `writer_type`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from syncapp import kinds
from syncapp.declared import Declared, declaration_problems, json_schema_of
from syncapp.models import Synchronization


class TargetError(Exception):
    """The target refused or failed the write."""


class InvalidObject(ValueError):
    """The mapped object does not fit the target's schema."""


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


class WriterKind:
    """What a writer class declares beside writing; each kind's writer subclasses it and says what differs."""

    kind: ClassVar[str] = ""  # Synchronization.target_type, set by writer_type
    label: ClassVar[str] = ""
    declaration: ClassVar[type[Declared]]  # its targetConfig
    # What targetId names: a register schema ("register/schema"), or a Source record of source_kind.
    writes_schema: ClassVar[bool] = False
    source_kind: ClassVar[str] = ""
    # Whether its writes roll back with the chunk's transaction (a remote API's do not).
    transactional: ClassVar[bool] = True

    @staticmethod
    def config_problems(target_config: dict[str, Any], *, path: str, known_mappings: set[str]) -> list[str]:
        """Return the problems of a targetConfig that its declaration's shape does not say, each with its path."""
        return []

    @staticmethod
    def problem(synchronization: Synchronization) -> str | None:
        """Return why the synchronization cannot be written as it is stored, or None."""
        return None


_writers: dict[str, type[WriterKind]] = {}


def writer_type(target_type: str, *, label: str, source_kind: str = "", writes_schema: bool = False):
    """Register a writer class for a target type (a class decorator).

    `source_kind`: the type of Source record its targetId names (default the same name); `writes_schema`:
    its targetId names a register schema instead.
    """
    def register(cls: type[WriterKind]) -> type[WriterKind]:
        cls.kind, cls.label, cls.writes_schema = target_type, label, writes_schema
        cls.source_kind = "" if writes_schema else (source_kind or target_type)
        _writers[target_type] = cls
        kinds.WRITER_KINDS[target_type] = label
        return cls

    return register


def writer_kind(target_type: str) -> type[WriterKind] | None:
    """Return the writer class registered for a target type, or None."""
    return _writers.get(target_type)


def writer_kinds() -> list[type[WriterKind]]:
    """Return the writer classes of every target type, in the order they registered."""
    return list(_writers.values())


def target_config_problems_of(
    target_type: str, target_config: Any, *, path: str = "targetConfig", known_mappings: set[str] | None = None,
) -> list[str]:
    """Return the problems of a synchronization's targetConfig for its target type, each with its path:
    its declaration's (unknown keys, JSON types) and the kind's own checks, a key blamed once."""
    cls = _writers.get(target_type)
    if cls is None:
        return []  # the target type itself is refused
    if not isinstance(target_config, dict):
        return [f"{path}: must be an object"]
    checks = cls.config_problems(target_config, path=path, known_mappings=known_mappings or set())
    return declaration_problems(cls.declaration, target_config, path=path, checks=checks)


def target_config_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of targetConfig for each target type."""
    return {cls.kind: json_schema_of(cls.declaration) for cls in _writers.values()}


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


# The writers register themselves on import.
from syncapp.targets import api as _api  # noqa: E402, F401
from syncapp.targets import register as _register  # noqa: E402, F401
