"""Targets: one writer per target type, registered by type.

A writer applies a chunk of planned writes (and the deletions of vanished objects) to its target and
reports each object's outcome; the run steps (syncapp.runs) know no target type. A new target is a
module here that registers its writer class with `writer_type` (syncapp.targets.base) and is imported
below; the kinds import the base, never this module.
"""
from __future__ import annotations

from typing import Any

from syncapp.declared import declaration_problems, json_schema_of
from syncapp.models import Synchronization

# The writers register themselves on import (syncapp.targets.base).
from syncapp.targets import api as _api  # noqa: F401
from syncapp.targets import register as _register  # noqa: F401
from syncapp.targets.base import WRITERS, Writer, WriterKind


def writer_kind(target_type: str) -> type[WriterKind] | None:
    """Return the writer class registered for a target type, or None."""
    return WRITERS.get(target_type)


def writer_kinds() -> list[type[WriterKind]]:
    """Return the writer classes of every target type, in the order they registered."""
    return list(WRITERS.values())


def target_config_problems_of(
    target_type: str, target_config: Any, *, path: str = "targetConfig", known_mappings: set[str] | None = None,
) -> list[str]:
    """Return the problems of a synchronization's targetConfig for its target type, each with its path:
    its declaration's (unknown keys, JSON types) and the kind's own checks, a key blamed once."""
    cls = WRITERS.get(target_type)
    if cls is None:
        return []  # the target type itself is refused
    if not isinstance(target_config, dict):
        return [f"{path}: must be an object"]
    checks = cls.config_problems(target_config, path=path, known_mappings=known_mappings or set())
    return declaration_problems(cls.declaration, target_config, path=path, checks=checks)


def target_config_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of targetConfig for each target type."""
    return {cls.kind: json_schema_of(cls.declaration) for cls in WRITERS.values()}


def writer_problem(synchronization: Synchronization) -> str | None:
    """Return why the synchronization's target cannot be written, or None."""
    cls = WRITERS.get(synchronization.target_type)
    if cls is None:
        kind = synchronization.target_type
        return f"synchronization {synchronization.reference!r}: target type {kind!r} cannot be written yet"
    return cls.problem(synchronization)


def writer_for(synchronization: Synchronization) -> Writer:
    """Return the writer of the synchronization's target; check writer_problem first."""
    return WRITERS[synchronization.target_type](synchronization)


