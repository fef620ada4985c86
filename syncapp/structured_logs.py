"""Logs that say what work they belong to: the run, synchronization, page and chunk being worked on.

The tasks (workers.tasks) and the in-process runner (syncapp.runner) name the work they do with
`work_context`; every line logged inside it carries those ids, in whatever thread or worker process it
runs. `LOG_FORMAT=json` (config/settings.py) writes each line as one JSON object (`JsonFormatter`); the
plain format appends the ids. The URLs in a message or a traceback are masked (syncapp.outbound.masking)
before either format writes it: a secret query value or password that reached a message is not logged.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from syncapp.outbound.masking import mask_url

# The ids a line may carry, in the order the plain format shows them.
WORK_KEYS = ("run", "synchronization", "page", "chunk")

_work: contextvars.ContextVar[MappingProxyType] = contextvars.ContextVar("sync_work", default=MappingProxyType({}))

_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>]+""")


def _merged(ids: dict[str, int | None]) -> MappingProxyType:
    unknown = set(ids) - set(WORK_KEYS)
    if unknown:
        raise TypeError(f"work_context takes {', '.join(WORK_KEYS)}, not {', '.join(sorted(unknown))}")
    merged = {**_work.get(), **ids}
    return MappingProxyType({key: value for key, value in merged.items() if value is not None})


@contextlib.contextmanager
def work_context(**ids: int | None) -> Iterator[None]:
    """Name the work done inside this block (run=, synchronization=, page=, chunk=) on every line it logs;
    an id given as None is not named inside it."""
    token = _work.set(_merged(ids))
    try:
        yield
    finally:
        _work.reset(token)


def work_context_add(**ids: int | None) -> None:
    """Add ids learnt while working (the run's synchronization) to the work named by the enclosing block."""
    _work.set(_merged(ids))


def work_ids() -> dict[str, int]:
    """Return the ids of the work being done now."""
    return dict(_work.get())


def urls_mask(text: str) -> str:
    """Return the text with the secrets of every URL in it masked."""
    return _URL.sub(lambda match: mask_url(match.group(0)), text) if "://" in text else text


class WorkContextFilter(logging.Filter):
    """Give each record the ids of the work being done (`record.work`) and its message with URLs masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.work = work_ids()
        message = record.getMessage()
        masked = urls_mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info:
        return urls_mask(formatter.formatException(record.exc_info))
    if record.exc_text:
        return urls_mask(record.exc_text)
    return None


class PlainFormatter(logging.Formatter):
    """`time level logger message [run=… page=…]`, then the traceback, URLs masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname} {record.name} {urls_mask(record.getMessage())}"
        work = getattr(record, "work", None) or work_ids()
        if work:
            line += " [" + " ".join(f"{key}={work[key]}" for key in WORK_KEYS if key in work) + "]"
        exception = _exception_text(self, record)
        if exception:
            line += "\n" + exception
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, exception, and the ids of the work."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": urls_mask(record.getMessage()),
        }
        # Every line has the same keys, null where there is nothing: a collector's index stays one shape.
        entry["exception"] = _exception_text(self, record)
        work = getattr(record, "work", None) or work_ids()
        entry.update({key: work[key] for key in WORK_KEYS if key in work})
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
