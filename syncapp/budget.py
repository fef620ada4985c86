"""How many bytes one page may hold: the rows, records and details read for it together, and any one value.

A page is read into memory whole (it is judged, hashed and planned as one), so a source that answers
with rows of hundreds of megabytes, or with many large rows, would exhaust a worker. Every reader
counts what it reads against a `PageBudget` while it reads (a database cursor row by row, a file line
by line, the details of the page's objects one by one) and stops with `PageTooLarge` at the first byte
over: the page fails with a message naming the limit and its setting, and the run ends failed.

Sizes are of the values as the service keeps them (text as its characters, bytes as their base64);
they are a measure of memory, not an exact one.
"""
from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings

from syncapp.errors import SourceError


class PageTooLarge(SourceError):
    """A page, or one value in it, holds more bytes than the service reads into memory at once."""


def value_size(value: Any) -> int:
    """Return about how many bytes a value read from a source takes as the service keeps it."""
    if value is None or isinstance(value, (bool, int, float)):
        return 8
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, (dict, list, tuple)):
        return len(orjson.dumps(value, default=str))
    return len(str(value))


class PageBudget:
    """The bytes one page may still take (SYNC_PAGE_MAX_BYTES) and the most one value may take
    (SYNC_VALUE_MAX_BYTES); `where` names the page for messages."""

    def __init__(self, *, where: str, page_limit: int | None = None, value_limit: int | None = None):
        self.where = where
        self.page_limit = settings.SYNC_PAGE_MAX_BYTES if page_limit is None else page_limit
        self.value_limit = settings.SYNC_VALUE_MAX_BYTES if value_limit is None else value_limit
        self.used = 0

    def value_check(self, size: int, *, what: str) -> None:
        """Fail when one value is over the per-value limit."""
        if size > self.value_limit:
            raise PageTooLarge(
                f"{self.where}: {what} holds {size:,} bytes, more than one value may ({self.value_limit:,} bytes, "
                "SYNC_VALUE_MAX_BYTES)"
            )

    def add(self, size: int, *, what: str) -> None:
        """Count bytes read for the page; fail at the first byte over the page's limit."""
        self.used += size
        if self.used > self.page_limit:
            raise PageTooLarge(
                f"{self.where}: the page holds more than {self.page_limit:,} bytes (SYNC_PAGE_MAX_BYTES) by {what}; "
                "read fewer rows a page (sourceConfig.pageSize) or raise the limit"
            )

    def add_row(self, row: dict[str, Any], *, what: str) -> None:
        """Count a row (a record, an object) read for the page: each value checked, all of them counted."""
        total = 0
        for name, value in row.items():
            size = value_size(value)
            self.value_check(size, what=f"{what}, {name!r}")
            total += size + len(str(name))
        self.add(total, what=what)
