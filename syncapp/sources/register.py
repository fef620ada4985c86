"""The built-in register as a source: the objects of one schema, read in keyset pages.

Each object reads as its data with `id` set to its UUID, the origin id its contracts keep. Pages are
keyset pages in UUID order (`sourceConfig.pageSize`, default 100), never OFFSET: a page costs the same
however far the run has come, and an object written meanwhile is seen once at most.
"""
from __future__ import annotations

import uuid
from typing import Any, Literal

from django.conf import settings

from syncapp.errors import SourceError
from syncapp.hashing import hash_value
from syncapp.models import Object, Synchronization
from syncapp.outbound.calls import source_config_problems
from syncapp.outbox import EVENTS
from syncapp.sources.base import Fetched, ReaderKind, ReadPage, reader_type
from syncapp.sources.declarations import RunSettings

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 10_000


def push_events(source_config: dict) -> tuple[str, ...]:
    """Return the events that start a push (sourceConfig.triggerOnlyOnEvents; default all of them)."""
    events = (source_config or {}).get("triggerOnlyOnEvents")
    if not isinstance(events, list) or not events:
        return EVENTS
    return tuple(event for event in events if event in EVENTS)


def push_events_problems(source_config: dict, *, path: str) -> list[str]:
    """Return the problems of sourceConfig.triggerOnlyOnEvents."""
    events = (source_config or {}).get("triggerOnlyOnEvents")
    if events is None:
        return []
    if not isinstance(events, list) or any(event not in EVENTS for event in events):
        return [f"{path}.triggerOnlyOnEvents: must be a list of {', '.join(EVENTS)}, got {events!r}"]
    return []


class RegisterSourceConfig(RunSettings):
    """sourceConfig of a synchronization that reads the objects of a register schema."""

    page_size: int | None = None
    """Objects a page, 1 to 10000 (default 100)."""
    trigger_only_on_events: list[Literal["create", "update", "delete"]] | None = None
    """The changes of the schema that start a pushed run (default all three)."""


def register_source_config_problems(config: dict[str, Any], *, path: str) -> list[str]:
    """Return the problems of a register source's settings, each with its path."""
    size = config.get("pageSize", DEFAULT_PAGE_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        return [f"{path}.pageSize: must be a whole number from 1 to {MAX_PAGE_SIZE}, got {size!r}"]
    return []


def register_object_as_source(obj: Object) -> dict[str, Any]:
    """Return a register object as a source object: its data, with `id` its UUID."""
    data = obj.data if isinstance(obj.data, dict) else {"value": obj.data}
    return {**data, "id": str(obj.uuid)}


@reader_type("register/schema", label="Register/Schema", reads_schema=True)
class RegisterReader(ReaderKind):
    """The objects of one register schema, in keyset pages by UUID."""

    declaration = RegisterSourceConfig
    concurrency = 1  # each page's start is the end of the page before

    def __init__(self, synchronization: Synchronization):
        config = synchronization.source_config or {}
        self.schema_id = synchronization.source_schema_id
        problems = register_source_config_problems(config, path="sourceConfig")
        if problems:
            raise SourceError("; ".join(problems))
        self.page_size = config.get("pageSize", DEFAULT_PAGE_SIZE)
        max_pages = config.get("maxPages")
        self.max_pages = max_pages if isinstance(max_pages, int) and max_pages > 0 else settings.SYNC_DEFAULT_MAX_PAGES

    @staticmethod
    def config_problems(source_config: dict[str, Any], *, path: str) -> list[str]:
        problems = (
            source_config_problems(source_config, path=path)
            + register_source_config_problems(source_config, path=path)
            + push_events_problems(source_config, path=path)
        )
        if source_config.get("incremental"):
            # Pushes already send only what changed; an "incremental" read of the register would only
            # stop deletions.
            problems.append(f"{path}.incremental: the register is read whole (pushes send what changed); leave it out")
        return problems

    @staticmethod
    def problem(synchronization: Synchronization) -> str | None:
        if synchronization.source_schema_id is None:
            return f"synchronization {synchronization.reference!r} has no register/schema source (sourceId)"
        return None

    def first_request(self, *, variables: dict[str, Any]) -> dict[str, Any]:
        # A run limited to some objects (a push) reads only those.
        return {"after": "", "only": list((variables.get("run") or {}).get("scope") or [])}

    def fetch(self, *, request: dict[str, Any], on_wait: Any = None) -> Fetched:
        objects = Object.objects.filter(schema_id=self.schema_id).order_by("uuid")
        if request.get("only"):
            objects = objects.filter(uuid__in=[value for value in request["only"] if _is_uuid(value)])
        if request.get("after"):
            objects = objects.filter(uuid__gt=request["after"])
        body = [register_object_as_source(obj) for obj in objects[: self.page_size]]
        return Fetched(request=request, body=body, url=f"register schema {self.schema_id}")

    def page(self, *, request: dict[str, Any], fetched: Fetched) -> ReadPage:
        objects = list(fetched.body)
        following = (
            {"after": objects[-1]["id"], "only": request.get("only") or []} if len(objects) == self.page_size else None
        )
        return ReadPage(objects=objects, hashes=[hash_value(obj) for obj in objects], next_request=following)

    def ahead(self, *, request: dict[str, Any], steps: int) -> dict[str, Any] | None:
        return None

    def same_request(self, first: dict[str, Any], second: dict[str, Any]) -> bool:
        return first.get("after") == second.get("after") and first.get("only") == second.get("only")


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
