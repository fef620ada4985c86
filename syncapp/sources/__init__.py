"""Sources: one reader per source type, registered by type.

A reader turns a page request (plain JSON, stored on the run's page record) into a page of objects
and the request of the page after it; the run steps (syncapp.runs) know no source type. A new kind
of source is a module here that registers its reader class with `reader_type` (syncapp.sources.base)
and is imported below; the kinds import the base, never this module.
"""
from __future__ import annotations

from typing import Any

from syncapp.declared import Declared, declaration_problems, json_schema_of
from syncapp.models import Synchronization

# The readers register themselves on import (syncapp.sources.base).
from syncapp.sources import api as _api  # noqa: F401
from syncapp.sources import database as _database  # noqa: F401
from syncapp.sources import file as _file  # noqa: F401
from syncapp.sources import register as _register  # noqa: F401
from syncapp.sources.base import READERS, RECORD_CHECKS, RECORD_CONFIGURATIONS, Reader, ReaderKind


def source_record_kinds() -> list[str]:
    """Return the types a Source record may have."""
    return list(RECORD_CHECKS)


def source_record_problems(
    *, kind: str, location: Any, credentials: Any = None, has_upload: bool = False, path: str = ""
) -> list[str]:
    """Return the problems of a Source record of a type as it is about to be saved."""
    check = RECORD_CHECKS.get(kind) if isinstance(kind, str) else None  # a list or object is no type either
    if check is None:
        return [f"{path}type: must be one of {', '.join(RECORD_CHECKS)}, got {kind!r}"]
    return check(location=location, credentials=credentials, has_upload=has_upload, path=path)


def source_configuration_problems(*, kind: str, configuration: Any, path: str = "configuration") -> list[str]:
    """Return the problems of a Source record's `configuration` for its type, each with its path."""
    # A type that is not text (a list, an object) is refused at `type`: its configuration has no declaration.
    if not isinstance(kind, str) or kind not in RECORD_CONFIGURATIONS or configuration in (None, ""):
        return []
    if not isinstance(configuration, dict):
        return [f"{path}: must be an object"]
    declaration, check = RECORD_CONFIGURATIONS[kind]
    return declaration_problems(declaration, configuration, path=path, checks=check(configuration, path=path))


def source_configuration_declaration(kind: str) -> type[Declared] | None:
    """Return the declaration of a Source record's `configuration` for its type, or None for an unknown type."""
    found = RECORD_CONFIGURATIONS.get(kind) if isinstance(kind, str) else None
    return found[0] if found is not None else None


def source_configuration_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of a Source record's `configuration` for each type."""
    return {kind: json_schema_of(declaration) for kind, (declaration, _check) in RECORD_CONFIGURATIONS.items()}


def problems_by_field(problems: list[str]) -> dict[str, list[str]]:
    """Return "field: message" problems (as source_record_problems words them) grouped by field."""
    fields: dict[str, list[str]] = {}
    for problem in problems:
        name, _, message = problem.partition(": ")
        name, dot, inner = name.partition(".")  # credentials.type: … is a problem of the credentials field
        fields.setdefault(name, []).append(f"{inner}: {message}" if dot else message)
    return fields


def reader_kind(source_type: str) -> type[ReaderKind] | None:
    """Return the reader class registered for a source type, or None."""
    return READERS.get(source_type)


def reader_kinds() -> list[type[ReaderKind]]:
    """Return the reader classes of every source type, in the order they registered."""
    return list(READERS.values())


def source_config_problems_of(
    source_type: str, source_config: Any, *, path: str = "sourceConfig", checks: list[str] = (),
) -> list[str]:
    """Return the problems of a synchronization's sourceConfig for its source type, each with its path:
    its declaration's (unknown keys, JSON types), the kind's own checks and `checks` (those of the run's
    settings every kind takes), a key blamed once."""
    cls = READERS.get(source_type)
    if cls is None:
        return []  # the source type itself is refused
    if not isinstance(source_config, dict):
        return [f"{path}: must be an object"]
    return declaration_problems(
        cls.declaration, source_config, path=path, checks=[*cls.config_problems(source_config, path=path), *checks],
    )


def source_config_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of sourceConfig for each source type."""
    return {cls.kind: json_schema_of(cls.declaration) for cls in READERS.values()}


def reader_problem(synchronization: Synchronization) -> str | None:
    """Return why the synchronization's source cannot be read, or None."""
    cls = READERS.get(synchronization.source_type)
    if cls is None:
        kind = synchronization.source_type
        return f"synchronization {synchronization.reference!r}: source type {kind!r} cannot be read yet"
    return cls.problem(synchronization)


def reader_for(synchronization: Synchronization) -> Reader:
    """Return the reader of the synchronization's source; check reader_problem first."""
    return READERS[synchronization.source_type](synchronization)


