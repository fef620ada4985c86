"""What a source kind implements and declares, and how it registers: the reader interface, its page
types, and the tables the kinds' decorators fill.

The kinds (api, database, file, register) import this module, never the registry (`syncapp.sources`,
which asks these tables) nor each other; the registry imports the kinds, so every kind is registered
once the registry is loaded.

Reading is split in two so pages can be fetched ahead and still be judged in order: `fetch` does
the I/O and returns what came back (storable as bytes), `page` is pure and says which objects the
answer holds and what comes next.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import orjson
from django.conf import settings

from syncapp import kinds
from syncapp.declared import Declared
from syncapp.errors import SourceError
from syncapp.models import Source, Synchronization


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
    reads_ahead: bool  # a page task fetches the pages after it (syncapp.runs.reading)
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
    # Whether a page task sends the next pages' requests from threads while it plans the page it has
    # (syncapp.runs.reading): worth it where the source's latency dominates, as with an HTTP API.
    reads_ahead: ClassVar[bool] = False

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


READERS: dict[str, type[ReaderKind]] = {}


# The reader class of each source type, the save-time checks of Source records and the declarations of
# their configuration, by Source.type: each kind registers its own with the decorators below.
RECORD_CHECKS: dict[str, Callable[..., list[str]]] = {}


RECORD_CONFIGURATIONS: dict[str, tuple[type[Declared], Callable[..., list[str]]]] = {}


def reader_type(source_type: str, *, label: str, source_kind: str = "", reads_schema: bool = False):
    """Register a reader class for a source type (a class decorator).

    `source_kind`: the type of Source record its sourceId names (default the same name); `reads_schema`:
    its sourceId names a register schema instead.
    """
    def register(cls: type[ReaderKind]) -> type[ReaderKind]:
        cls.kind, cls.label, cls.reads_schema = source_type, label, reads_schema
        cls.source_kind = "" if reads_schema else (source_kind or source_type)
        READERS[source_type] = cls
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
        RECORD_CHECKS[source_kind] = check
        RECORD_CONFIGURATIONS[source_kind] = (configuration, configuration_check)
        kinds.SOURCE_RECORD_KINDS[source_kind] = label
        return check

    return register


def concurrency_of(source_config: dict[str, Any]) -> int:
    """Return sourceConfig.concurrency: how many pages may be fetched at once (default SYNC_PAGE_CONCURRENCY)."""
    value = source_config.get("concurrency", settings.SYNC_PAGE_CONCURRENCY)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
        raise SourceError(f"sourceConfig.concurrency must be a whole number from 1 to 32, got {value!r}")
    return value
