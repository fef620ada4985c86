"""The errors a Twig template raises: syntax (when parsed) and runtime (when rendered)."""

from __future__ import annotations

from syncapp.errors import SyncError

__all__ = ["TwigError", "TwigRuntimeError", "TwigSyntaxError"]


class TwigError(SyncError):
    """Report a problem with a template, with the line it is on (0 when unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"{self.message} (line {self.line})" if self.line else self.message


class TwigSyntaxError(TwigError):
    """Report a template that does not parse."""


class TwigRuntimeError(TwigError):
    """Report a template that fails while rendering."""
