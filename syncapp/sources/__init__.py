"""Sources: one reader per source type, registered by type.

A reader turns a page request (plain JSON, stored on the run's page record) into a page of objects
and the request of the page after it; the run steps (syncapp.runs) know no source type. A new kind
of source is a module here that registers its reader class with `reader_type`.

Reading is split in two so pages can be fetched ahead and still be judged in order: `fetch` does
the I/O and returns what came back (storable as bytes), `page` is pure and says which objects the
answer holds and what comes next.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import orjson

from syncapp import kinds
from syncapp.declared import Declared, declaration_problems, json_schema_of
from syncapp.models import Source, Synchronization


class SourceError(Exception):
    """The source could not be read, or answered something that is not a page of objects."""


class TransientSourceError(SourceError):
    """The source failed in a way that may pass: a timeout, a dropped connection, a 5xx."""


@dataclass
class Fetched:
    """What a source answered to one page request."""

    request: dict[str, Any]  # the request as asked
    body: Any
    url: str = ""  # with secrets masked: fit for messages
    headers: dict[str, str] = field(default_factory=dict)
    format: str = "json"
    meta: dict[str, Any] = field(default_factory=dict)  # the reader's own notes

    def to_json(self) -> str:
        return orjson.dumps({
            "request": self.request, "body": self.body, "url": self.url, "headers": self.headers,
            "format": self.format, "meta": self.meta,
        }, default=str).decode()

    @classmethod
    def from_json(cls, data: str) -> Fetched:
        return cls(**orjson.loads(data))


@dataclass
class ReadPage:
    """The objects of a page, their plain hashes, and the request of the next page (None: the last)."""

    objects: list[Any]
    hashes: list[str]
    next_request: dict[str, Any] | None


class Reader(Protocol):
    """What the run steps ask of a source."""

    concurrency: int  # pages that may be fetched at once
    max_pages: int | None

    def first_request(self, *, variables: dict[str, Any]) -> dict[str, Any]:
        """Return the request of a run's first page; `variables` are the run's, for endpoint templates."""

    def fetch(self, *, request: dict[str, Any], on_wait: Any = None) -> Fetched:
        """Ask the source for one page. Raise SourceError, or RateLimited to be retried later."""

    def page(self, *, request: dict[str, Any], fetched: Fetched) -> ReadPage:
        """Return the page's objects and the next page's request. Raise SourceError or PaginationError."""

    def ahead(self, *, request: dict[str, Any], steps: int) -> dict[str, Any] | None:
        """Return the request `steps` pages after this one if it is known without reading; else None."""

    def same_request(self, first: dict[str, Any], second: dict[str, Any]) -> bool:
        """Return whether two requests ask the source the same thing."""


class ReaderKind:
    """What a reader class declares beside reading; each kind's reader subclasses it and says what differs.

    The registry and the checks of a synchronization ask these, never the kind's name.
    """

    kind: ClassVar[str] = ""  # Synchronization.source_type, set by reader_type
    label: ClassVar[str] = ""
    declaration: ClassVar[type[Declared]]  # its sourceConfig
    # What sourceId names: a register schema ("register/schema"), or a Source record of source_kind.
    reads_schema: ClassVar[bool] = False
    source_kind: ClassVar[str] = ""
    # Where the origin id of each object is, when the reader knows better than sourceConfig.idPosition (a
    # database source's id column); None: idPosition says.
    id_position: str | None = None

    @staticmethod
    def config_problems(source_config: dict[str, Any], *, path: str) -> list[str]:
        """Return the problems of a sourceConfig that its declaration's shape does not say, each with its path."""
        return []

    @staticmethod
    def source_problems(*, source: Source, source_config: dict[str, Any], path: str, source_path: str,
                        live: bool) -> list[str]:
        """Return the problems of reading this sourceConfig from this source (`live`: ask the source itself)."""
        return []

    @staticmethod
    def problem(synchronization: Synchronization) -> str | None:
        """Return why the synchronization cannot be read as it is stored, or None."""
        return None


_readers: dict[str, type[ReaderKind]] = {}
# The save-time checks of Source records, by Source.type: a kind's module registers its own.
_record_checks: dict[str, Callable[..., list[str]]] = {}
_configurations: dict[str, tuple[type[Declared], Callable[..., list[str]]]] = {}


def reader_type(source_type: str, *, label: str, source_kind: str = "", reads_schema: bool = False):
    """Register a reader class for a source type (a class decorator).

    `source_kind`: the type of Source record its sourceId names (default the same name); `reads_schema`:
    its sourceId names a register schema instead.
    """
    def register(cls: type[ReaderKind]) -> type[ReaderKind]:
        cls.kind, cls.label, cls.reads_schema = source_type, label, reads_schema
        cls.source_kind = "" if reads_schema else (source_kind or source_type)
        _readers[source_type] = cls
        kinds.READER_KINDS[source_type] = label
        return cls

    return register


def source_record_check(
    source_kind: str, *, label: str, configuration: type[Declared],
    configuration_check: Callable[..., list[str]] = lambda configuration, *, path: [],
):
    """Register a kind of Source record and the save-time check of its records (a function decorator).

    `configuration`: the declaration of the record's `configuration`; `configuration_check(configuration,
    path=…)` says what its shape does not.

    The check is called with `location`, `credentials` (None: not given, the stored ones are kept),
    `has_upload` and `path` (a prefix such as "sources[0]."), and returns problems that start with
    their path and field: "location: …", "sources[0].credentials: …".
    """
    def register(check: Callable[..., list[str]]) -> Callable[..., list[str]]:
        _record_checks[source_kind] = check
        _configurations[source_kind] = (configuration, configuration_check)
        kinds.SOURCE_RECORD_KINDS[source_kind] = label
        return check

    return register


def source_record_kinds() -> list[str]:
    """Return the types a Source record may have."""
    return list(_record_checks)


def source_record_problems(
    *, kind: str, location: Any, credentials: Any = None, has_upload: bool = False, path: str = ""
) -> list[str]:
    """Return the problems of a Source record of a type as it is about to be saved."""
    check = _record_checks.get(kind)
    if check is None:
        return [f"{path}type: must be one of {', '.join(_record_checks)}, got {kind!r}"]
    return check(location=location, credentials=credentials, has_upload=has_upload, path=path)


def source_configuration_problems(*, kind: str, configuration: Any, path: str = "configuration") -> list[str]:
    """Return the problems of a Source record's `configuration` for its type, each with its path."""
    if kind not in _configurations or configuration in (None, ""):
        return []
    if not isinstance(configuration, dict):
        return [f"{path}: must be an object"]
    declaration, check = _configurations[kind]
    return declaration_problems(declaration, configuration, path=path, checks=check(configuration, path=path))


def source_configuration_declaration(kind: str) -> type[Declared] | None:
    """Return the declaration of a Source record's `configuration` for its type, or None for an unknown type."""
    found = _configurations.get(kind)
    return found[0] if found is not None else None


def source_configuration_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of a Source record's `configuration` for each type."""
    return {kind: json_schema_of(declaration) for kind, (declaration, _check) in _configurations.items()}


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
    return _readers.get(source_type)


def reader_kinds() -> list[type[ReaderKind]]:
    """Return the reader classes of every source type, in the order they registered."""
    return list(_readers.values())


def source_config_problems_of(
    source_type: str, source_config: Any, *, path: str = "sourceConfig", checks: list[str] = (),
) -> list[str]:
    """Return the problems of a synchronization's sourceConfig for its source type, each with its path:
    its declaration's (unknown keys, JSON types), the kind's own checks and `checks` (those of the run's
    settings every kind takes), a key blamed once."""
    cls = _readers.get(source_type)
    if cls is None:
        return []  # the source type itself is refused
    if not isinstance(source_config, dict):
        return [f"{path}: must be an object"]
    return declaration_problems(
        cls.declaration, source_config, path=path, checks=[*cls.config_problems(source_config, path=path), *checks],
    )


def source_config_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of sourceConfig for each source type."""
    return {cls.kind: json_schema_of(cls.declaration) for cls in _readers.values()}


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


# The readers register themselves on import.
from syncapp.sources import api as _api  # noqa: E402, F401
from syncapp.sources import database as _database  # noqa: E402, F401
from syncapp.sources import file as _file  # noqa: E402, F401
from syncapp.sources import register as _register  # noqa: E402, F401
