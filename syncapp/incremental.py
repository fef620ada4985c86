"""Incremental reads: a cursor taken from the records, so a run asks the source only for what changed.

`sourceConfig.incremental`:

    {"cursorPath": "updated_at", "param": "updated_since", "initialValue": "2024-01-01T00:00:00Z",
     "type": "datetime", "format": "iso", "fullSchedule": "0 3 * * 0"}

- `cursorPath` (required): the dot path of the cursor value in each record.
- `param`: the query parameter the API reader sends the cursor as, on the first page and every page
  after it. Other readers, and endpoint templates (`{{ cursor.value }}`), get it as the `cursor`
  variable of the run.
- `initialValue`: the cursor of the first run. Without one, the first run is a full run.
- `type`: how values compare: `number`, `datetime` (ISO 8601; numbers are epoch seconds) or
  `string`; by default each value says for itself (a JSON number, an ISO 8601 text, other text).
- `format`: how a datetime cursor is sent: `iso` (UTC, with `Z`), `epoch`, `epochMs`, `date`, or a
  strftime pattern; by default the value is sent as the records hold it.
- `fullSchedule`: a cron expression for full runs, apart from the synchronization's schedule.

A run is `full` or `incremental` (recorded on the run). An incremental run sends the stored cursor
and never deletes what it did not see: deletion happens only on a full run. Each planned page keeps
the greatest cursor value of its records; when a run succeeds, the greatest of its pages is stored
on the synchronization (an incremental run keeps the stored one if it saw nothing greater; a full
run replaces it). A failed or partial run stores nothing, so the next run asks again from where the
last successful one ended. A record without a usable cursor value is synced like any other, but
does not move the cursor: it is counted on the run (`cursor_missing`) and logged as a warning, since
failing it would hold the cursor back for good.

Sources usually filter with "at or after" the cursor: the records at the boundary come again and
are found unchanged.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from contracts.models import RunPage, SynchronizationRun
from syncapp.cron import schedule_problems
from syncapp.dotpath import MISSING, get_path
from syncapp.errors import SyncError
from syncapp.models import Synchronization

logger = logging.getLogger(__name__)

TYPES = ("auto", "number", "datetime", "string")
FORMATS = ("raw", "iso", "epoch", "epochMs", "date")
KEYS = {"cursorPath", "param", "initialValue", "type", "format", "fullSchedule"}


class CursorError(SyncError, ValueError):
    """A cursor value that cannot be read as the configured type."""


@dataclass(frozen=True)
class IncrementalConfig:
    cursor_path: str
    param: str
    initial_value: Any
    type: str
    format: str
    full_schedule: str


def incremental_config(source_config: dict[str, Any] | None) -> IncrementalConfig | None:
    """Return sourceConfig.incremental, or None when the synchronization reads everything every run."""
    raw = (source_config or {}).get("incremental")
    if not raw:
        return None
    if incremental_problems(source_config or {}):
        return None  # checked at save; a broken one reads everything rather than guessing
    return IncrementalConfig(
        cursor_path=raw["cursorPath"], param=str(raw.get("param") or ""), initial_value=raw.get("initialValue"),
        type=raw.get("type") or "auto", format=raw.get("format") or "raw", full_schedule=raw.get("fullSchedule") or "",
    )


def incremental_problems(source_config: dict[str, Any]) -> list[str]:
    """Return the problems of sourceConfig.incremental, each naming its key."""
    raw = source_config.get("incremental")
    if raw in (None, {}, False):
        return []
    if not isinstance(raw, dict):
        return ["incremental: must be an object like {\"cursorPath\": \"updated_at\", \"param\": \"updated_since\"}"]
    problems = []
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        problems.append(f"incremental: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    path = raw.get("cursorPath")
    if not isinstance(path, str) or not path.strip():
        problems.append("incremental.cursorPath: required, the dot path of the cursor in each record (updated_at)")
    for key in ("param", "fullSchedule"):
        if raw.get(key) not in (None, "") and not isinstance(raw.get(key), str):
            problems.append(f"incremental.{key}: must be text")
    kind = raw.get("type") or "auto"
    if kind not in TYPES:
        problems.append(f"incremental.type: must be one of {', '.join(TYPES)}, got {kind!r}")
    fmt = raw.get("format") or "raw"
    if not isinstance(fmt, str) or (fmt not in FORMATS and "%" not in fmt):
        problems.append(f"incremental.format: must be one of {', '.join(FORMATS)} or a strftime pattern, got {fmt!r}")
    if fmt not in (None, "raw") and kind in ("number", "string"):
        problems.append(f"incremental.format: {fmt!r} sends a date and time; this cursor's type is {kind}")
    initial = raw.get("initialValue")
    if initial is not None and kind in TYPES:
        try:
            cursor_order(initial, kind=kind)
            if isinstance(fmt, str) and fmt != "raw":
                _datetime(initial)  # it is sent as a date and time
        except CursorError as error:
            problems.append(f"incremental.initialValue: {error}")
    if isinstance(raw.get("fullSchedule"), str) and raw["fullSchedule"]:
        problems += [f"incremental.fullSchedule{problem.removeprefix('schedule')}"
                     for problem in schedule_problems(raw["fullSchedule"])]
    return problems


# ---------------------------------------------------------------------------------------------
# Comparing values


def _datetime(value: Any) -> datetime:
    if isinstance(value, bool):
        raise CursorError(f"{value!r} is not a date and time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise CursorError(f"{value!r} is not a date and time")
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise CursorError(f"{value!r} is not a date and time in seconds since 1970 (milliseconds? use type "
                              "number)") from None
    if not isinstance(value, str):
        raise CursorError(f"{value!r} is not a date and time")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CursorError(f"{value!r} is not an ISO 8601 date and time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _kind_of(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    if isinstance(value, str) and not value.strip():
        raise CursorError("empty text is no cursor")
    if isinstance(value, str):
        try:
            _datetime(value)
        except CursorError:
            return "string"
        return "datetime"
    raise CursorError(f"{value!r} is not a number, a date or text")


def cursor_order(value: Any, *, kind: str) -> tuple[str, Any]:
    """Return (kind, key) by which cursor values compare: numbers as numbers, dates as moments, text as text."""
    if value is None or value is MISSING:
        raise CursorError("no value")
    if kind == "auto":
        kind = _kind_of(value)
    if kind == "number":
        if isinstance(value, bool):
            raise CursorError(f"{value!r} is not a number")
        try:
            number = float(value) if isinstance(value, str) else value
        except ValueError:
            raise CursorError(f"{value!r} is not a number") from None
        if not isinstance(number, int | float) or not math.isfinite(number):
            raise CursorError(f"{value!r} is not a number")
        return "number", number
    if kind == "datetime":
        return "datetime", _datetime(value)
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise CursorError(f"{value!r} is not text")
    return "string", str(value)


def cursor_greatest(values: list[Any], *, kind: str) -> Any:
    """Return the greatest of these cursor values (None for none); values of different kinds cannot compare."""
    best: Any = None
    best_key: tuple[str, Any] | None = None
    for value in values:
        if value is None:
            continue
        key = cursor_order(value, kind=kind)
        if best_key is not None and key[0] != best_key[0]:
            raise CursorError(f"cursor values {best!r} and {value!r} are of different kinds ({best_key[0]}, {key[0]})")
        if best_key is None or key[1] > best_key[1]:
            best, best_key = value, key
    return best


def page_cursor(objects: list[Any], *, config: IncrementalConfig) -> tuple[Any, int]:
    """Return the greatest cursor value of a page's records, and how many records had no usable one."""
    best: Any = None
    best_key: tuple[str, Any] | None = None
    missing = 0
    for obj in objects:
        value = get_path(obj, config.cursor_path) if isinstance(obj, dict) else MISSING
        try:
            key = cursor_order(value, kind=config.type)
            if best_key is not None and key[0] != best_key[0]:
                raise CursorError(f"a {key[0]}, where the page's other cursors are of kind {best_key[0]}")
        except CursorError as error:
            missing += 1
            if missing == 1:
                logger.warning("a record without a usable cursor at %r (%s): synced, but it does not move the cursor",
                               config.cursor_path, error)
            continue
        if best_key is None or key[1] > best_key[1]:
            best, best_key = value, key
    return best, missing


def cursor_format(value: Any, *, config: IncrementalConfig) -> Any:
    """Return the cursor as it is sent to the source."""
    if config.format == "raw" or value is None:
        return value
    moment = _datetime(value).astimezone(UTC)
    if config.format == "iso":
        return moment.isoformat().replace("+00:00", "Z")
    if config.format == "epoch":
        seconds = moment.timestamp()
        return int(seconds) if seconds.is_integer() else seconds
    if config.format == "epochMs":
        return int(round(moment.timestamp() * 1000))
    if config.format == "date":
        return moment.date().isoformat()
    return moment.strftime(config.format)


# ---------------------------------------------------------------------------------------------
# Runs


def stored_cursor(synchronization, *, config: IncrementalConfig) -> Any:
    """Return the cursor the next incremental run starts from: the stored one, else initialValue."""
    if synchronization.incremental_cursor is not None and synchronization.incremental_cursor_path == config.cursor_path:
        return synchronization.incremental_cursor
    return config.initial_value


def run_mode(synchronization, *, full: bool) -> str:
    """Return the mode of a run about to start: incremental when there is a cursor to start from."""
    config = incremental_config(synchronization.source_config)
    if full or config is None or stored_cursor(synchronization, config=config) is None:
        return SynchronizationRun.Mode.FULL
    return SynchronizationRun.Mode.INCREMENTAL


def cursor_variables(synchronization, *, run) -> dict[str, Any] | None:
    """Return what a reader sends for the cursor of an incremental run ({param, value, path}), else None."""
    config = incremental_config(synchronization.source_config)
    if config is None or run is None or run.mode != SynchronizationRun.Mode.INCREMENTAL:
        return None
    value = stored_cursor(synchronization, config=config)
    if value is None:
        return None
    return {"param": config.param, "value": cursor_format(value, config=config), "raw": value,
            "path": config.cursor_path}


def run_cursor_store(run) -> None:
    """Take the greatest cursor of a closing run's pages; store it on the synchronization if the run succeeded.

    Runs in the run's closing transaction, after its status is known.
    """
    sync = run.synchronization
    config = incremental_config(sync.source_config)
    if config is None or run.is_test or run.scope:
        return
    values = list(
        RunPage.objects.filter(run_id=run.pk, status=RunPage.Status.DONE, cursor_value__isnull=False)
        .values_list("cursor_value", flat=True)
    )
    try:
        greatest = cursor_greatest(values, kind=config.type)
    except CursorError as error:
        logger.warning("run %s: the cursor is not stored: %s", run.pk, error)
        return
    run.cursor_value = greatest
    if run.status != SynchronizationRun.Status.SUCCEEDED:
        return
    if run.mode == SynchronizationRun.Mode.INCREMENTAL:
        previous = stored_cursor(sync, config=config)
        try:
            greatest = cursor_greatest([previous, greatest], kind=config.type)
        except CursorError as error:
            # Records of this run hold a cursor of another kind than the stored one (a date where text
            # was, say): the stored cursor stays rather than move to a value it cannot be compared with.
            logger.warning("run %s: the cursor stays %r: %s", run.pk, previous, error)
            return
        if greatest is None:
            return
    Synchronization.objects.filter(pk=sync.pk).update(
        incremental_cursor=greatest, incremental_cursor_path=config.cursor_path if greatest is not None else "",
        incremental_cursor_at=timezone.now(),
    )
