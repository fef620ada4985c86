"""The names of the kinds of sources and targets, for the models' choices.

Each kind's module registers itself with its registry (syncapp.sources, syncapp.targets), which records
its name and label here; the models read their choices from here (as callables, so a new kind changes no
model), without importing the kinds.
"""
from __future__ import annotations

SOURCE_RECORD_KINDS: dict[str, str] = {}  # Source.type: label
READER_KINDS: dict[str, str] = {}  # Synchronization.source_type: label
WRITER_KINDS: dict[str, str] = {}  # Synchronization.target_type: label
RULE_KINDS: dict[str, str] = {}  # Rule.type: label (syncapp.rules)


def source_record_choices() -> list[tuple[str, str]]:
    """Return the choices of Source.type: the kinds of source records registered."""
    return list(SOURCE_RECORD_KINDS.items())


def reader_choices() -> list[tuple[str, str]]:
    """Return the choices of Synchronization.source_type: the kinds of sources that can be read."""
    return list(READER_KINDS.items())


def writer_choices() -> list[tuple[str, str]]:
    """Return the choices of Synchronization.target_type: the kinds of targets that can be written."""
    return list(WRITER_KINDS.items())


def rule_choices() -> list[tuple[str, str]]:
    """Return the choices of Rule.type: the kinds of rules registered."""
    return list(RULE_KINDS.items())
