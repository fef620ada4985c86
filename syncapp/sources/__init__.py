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
from typing import Any, Protocol

import orjson

from syncapp.models import Synchronization


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


_readers: dict[str, type] = {}
# The save-time checks of Source records, by Source.type: a kind's module registers its own.
_record_checks: dict[str, Callable[..., list[str]]] = {}


def reader_type(source_type: str):
    """Register a reader class for a source type (a class decorator)."""
    def register(cls: type) -> type:
        _readers[source_type] = cls
        return cls

    return register


def source_record_check(source_kind: str):
    """Register the save-time check of Source records of a type (a function decorator).

    The check is called with `location`, `credentials` (None: not given, the stored ones are kept),
    `has_upload` and `path` (a prefix such as "sources[0]."), and returns problems that start with
    their path and field: "location: …", "sources[0].credentials: …".
    """
    def register(check: Callable[..., list[str]]) -> Callable[..., list[str]]:
        _record_checks[source_kind] = check
        return check

    return register


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


# The readers register themselves on import.
from syncapp.sources import api as _api  # noqa: E402, F401
from syncapp.sources import database as _database  # noqa: E402, F401
from syncapp.sources import file as _file  # noqa: E402, F401
from syncapp.sources import register as _register  # noqa: E402, F401
