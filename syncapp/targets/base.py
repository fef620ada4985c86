"""What a target kind implements and declares, and how it registers: the writer interface, writes and
outcomes, and the table the kinds' decorator fills.

The kinds (api, register) import this module, never the registry (`syncapp.targets`, which asks the
table) nor each other; the registry imports the kinds, so every kind is registered once it is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from syncapp import kinds
from syncapp.declared import Declared
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
    # The synchronizations whose writes caused the run writing this (SynchronizationRun.push_origin): a
    # target that starts pushes (the register) passes it on, so they do not go back where they came from.
    push_origin: tuple[int, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What became of one write: created, updated, invalid, failed, or retry (failed for a passing reason)."""

    kind: str
    target_id: str | None = None
    error: str = ""
    response: Any = None
    # RETRY for a rate limit: the seconds the target asked to wait (0: none asked, back off as usual).
    wait_seconds: float = 0

    CREATED: ClassVar[str] = "created"
    UPDATED: ClassVar[str] = "updated"
    INVALID: ClassVar[str] = "invalid"
    FAILED: ClassVar[str] = "failed"
    RETRY: ClassVar[str] = "retry"
    # Two-way sync: changed at the target too since the last sync. CONFLICT leaves both for a person;
    # KEPT keeps the target's version (conflictWinner target), which then goes back to the source.
    CONFLICT: ClassVar[str] = "conflict"
    KEPT: ClassVar[str] = "kept"


# How a writer whose writes go into the caller's transaction writes a batch (Writer.write's `bulk`).
GUARDED = "guarded"  # in bulk, in a savepoint: an object that spoils the bulk statement is found one by one
BARE = "bare"  # in bulk, no savepoint: a spoiled bulk statement raises BulkWriteFailed, the transaction aborted
ONE_BY_ONE = "one by one"  # each object in a savepoint of its own: what a caller asks after BulkWriteFailed


class BulkWriteFailed(Exception):
    """A bulk write (`bulk=BARE`) failed on one of its objects and left the transaction aborted: the
    caller rolls the transaction back and writes the same objects again ONE_BY_ONE."""


@dataclass(frozen=True)
class Version:
    """What a writer checks its writes against, as a chunk's claim read it (WriterKind.version_sql)."""

    value: Any


class Writer(Protocol):
    """What the run steps ask of a target."""

    def validate(self, data: Any) -> None:
        """Raise InvalidObject when the object cannot be written to this target."""

    def existing(self, target_ids: list[str]) -> set[str]:
        """Return those of the target ids that are still there."""

    def write(self, writes: list[Write], *, bulk: str = GUARDED, version: Version | None = None) -> list[Outcome]:
        """Apply the writes; return one outcome per write, in order. Raise only for what ends the chunk, and
        BulkWriteFailed when asked `bulk=BARE`. `version`: read with the chunk's claim (version_sql)."""

    def delete(self, target_ids: list[str], *, push_origin: tuple[int, ...] = ()) -> None:
        """Delete the objects; one that is gone already counts as deleted. `push_origin`: as Write's."""

    def version_sql(self) -> tuple[str, list[Any]] | None:
        """Return a query of one value telling the version of what writes are checked against (WriterKind's)."""


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

    def version_sql(self) -> tuple[str, list[Any]] | None:
        """Return a query of one value that changes with what the writes are checked against (the register's
        schema), for a chunk's claim to read on the way (PostgreSQL) and pass to write; None: nothing."""
        return None

    @staticmethod
    def config_problems(target_config: dict[str, Any], *, path: str, known_mappings: set[str]) -> list[str]:
        """Return the problems of a targetConfig that its declaration's shape does not say, each with its path."""
        return []

    @staticmethod
    def problem(synchronization: Synchronization) -> str | None:
        """Return why the synchronization cannot be written as it is stored, or None."""
        return None


# The writer class of each target type: each kind registers its own with the decorator below.
WRITERS: dict[str, type[WriterKind]] = {}


def writer_type(target_type: str, *, label: str, source_kind: str = "", writes_schema: bool = False):
    """Register a writer class for a target type (a class decorator).

    `source_kind`: the type of Source record its targetId names (default the same name); `writes_schema`:
    its targetId names a register schema instead.
    """
    def register(cls: type[WriterKind]) -> type[WriterKind]:
        cls.kind, cls.label, cls.writes_schema = target_type, label, writes_schema
        cls.source_kind = "" if writes_schema else (source_kind or target_type)
        WRITERS[target_type] = cls
        kinds.WRITER_KINDS[target_type] = label
        return cls

    return register
