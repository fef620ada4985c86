"""Sources: one reader per source type, registered by type.

A reader turns a page request (plain JSON, stored on the run's page record) into a page of objects
and the request of the page after it; the run steps (syncapp.runs) know no source type. A new kind
of source is a module here implementing the interface of `syncapp.sources.base`, named in the
tables below: this module imports the kinds, the kinds never import it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncapp.models import Source, Synchronization
from syncapp.sources.api import ApiReader, api_source_problems
from syncapp.sources.base import Reader
from syncapp.sources.database import DatabaseReader, database_source_problems
from syncapp.sources.file import FileReader, file_source_problems
from syncapp.sources.register import RegisterReader

# The reader class of each source type.
_readers: dict[str, type] = {
    Synchronization.SourceType.API: ApiReader,
    Synchronization.SourceType.DATABASE: DatabaseReader,
    Synchronization.SourceType.FILE: FileReader,
    Synchronization.SourceType.REGISTER: RegisterReader,
}
# The save-time checks of Source records, by Source.type. A check is called with `location`,
# `credentials` (None: not given, the stored ones are kept), `has_upload` and `path` (a prefix such as
# "sources[0]."), and returns problems that start with their path and field: "location: …",
# "sources[0].credentials: …".
_record_checks: dict[str, Callable[..., list[str]]] = {
    Source.Type.API: api_source_problems,
    Source.Type.DATABASE: database_source_problems,
    Source.Type.FILE: file_source_problems,
}


def source_record_problems(
    *, kind: str, location: Any, credentials: Any = None, has_upload: bool = False, path: str = ""
) -> list[str]:
    """Return the problems of a Source record of a type as it is about to be saved."""
    check = _record_checks.get(kind)
    if check is None:
        return []
    return check(location=location, credentials=credentials, has_upload=has_upload, path=path)


def problems_by_field(problems: list[str]) -> dict[str, list[str]]:
    """Return "field: message" problems (as source_record_problems words them) grouped by field."""
    fields: dict[str, list[str]] = {}
    for problem in problems:
        name, _, message = problem.partition(": ")
        name, dot, inner = name.partition(".")  # credentials.type: … is a problem of the credentials field
        fields.setdefault(name, []).append(f"{inner}: {message}" if dot else message)
    return fields


def source_config_problems_of(source_type: str, source_config: Any, *, path: str = "sourceConfig") -> list[str]:
    """Return the problems of a synchronization's sourceConfig for its source type, each with its path.

    Each reader class says what its settings must be (`config_problems`); a type without a reader has
    none to check here (reader_problem says it cannot be read).
    """
    check = getattr(_readers.get(source_type), "config_problems", None)
    return check(source_config, path=path) if check is not None and isinstance(source_config, dict) else []


def reader_problem(synchronization: Synchronization) -> str | None:
    """Return why the synchronization's source cannot be read, or None."""
    cls = _readers.get(synchronization.source_type)
    if cls is None:
        kind = synchronization.source_type
        return f"synchronization {synchronization.reference!r}: source type {kind!r} cannot be read yet"
    return cls.problem(synchronization)


def reader_for(synchronization: Synchronization) -> Reader:
    """Return the reader of the synchronization's source; check reader_problem first."""
    return _readers[synchronization.source_type](synchronization)
