"""What a source kind implements, and the values it passes: the reader interface and its page types.

The kinds (api, database, file, register) import this module, never the registry (`syncapp.sources`)
nor each other; the registry imports the kinds.

Reading is split in two so pages can be fetched ahead and still be judged in order: `fetch` does
the I/O and returns what came back (storable as bytes), `page` is pure and says which objects the
answer holds and what comes next.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from django.conf import settings

from syncapp.errors import SourceError


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


def concurrency_of(source_config: dict[str, Any]) -> int:
    """Return sourceConfig.concurrency: how many pages may be fetched at once (default SYNC_PAGE_CONCURRENCY)."""
    value = source_config.get("concurrency", settings.SYNC_PAGE_CONCURRENCY)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
        raise SourceError(f"sourceConfig.concurrency must be a whole number from 1 to 32, got {value!r}")
    return value
