"""The service's errors: one base class, and the family that crosses layers.

Every error the service raises on purpose derives from `SyncError`, so a caller that means "anything
the service refused or could not do" says so in one word. The errors here are raised low (a reader, a
pagination, a writer) and caught high (the run steps, the API): they live at the bottom so that the
modules raising them never import upward. Errors that stay inside one module live in that module and
derive from `SyncError` too.
"""
from __future__ import annotations


class SyncError(Exception):
    """Something the service refused or could not do; the message says what and where."""


class ConfigurationError(SyncError, ValueError):
    """The synchronization cannot run as configured."""


class SourceError(SyncError):
    """The source could not be read, or answered something that is not a page of objects."""


class TransientSourceError(SourceError):
    """The source failed in a way that may pass: a timeout, a dropped connection, a 5xx."""


class PaginationError(SyncError, ValueError):
    """The pagination settings are wrong, or the source's pages would loop."""


class TargetError(SyncError):
    """The target refused or failed the write."""


class InvalidObject(SyncError, ValueError):
    """The mapped object does not fit the target's schema."""
