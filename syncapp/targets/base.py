"""What a target kind implements, and the values it passes: the writer interface, writes and outcomes.

The kinds (api, register) import this module, never the registry (`syncapp.targets`) nor each other;
the registry imports the kinds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol


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
