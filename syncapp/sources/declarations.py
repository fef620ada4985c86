"""The parts of a synchronization's sourceConfig that more than one kind of source takes, declared once.

Each kind's own declaration (in its module) is built from these: every kind takes the run settings
(ids, deletion, chunks, enrichment, incremental reads); a kind that calls HTTP takes the call options.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import JsonValue, model_validator

from syncapp.declared import Declared, DotPath, Flag, Template
from syncapp.outbound.calls import CallOptions

__all__ = ["CallOptions", "ExtraData", "HttpSourceConfiguration", "Incremental", "RateLimit", "RunSettings"]

class RateLimit(Declared):
    """A request budget kept by every worker together."""

    requests: int
    """Requests allowed in each period."""
    per: str | int | float | None = None
    """The period: second (default), minute, hour, day, or a number of seconds."""


class HttpSourceConfiguration(CallOptions):
    """A source's `configuration` when it is called over HTTP (an API, a file at a URL): every call's settings."""

    rate_limit: RateLimit | None = None
    """A request budget kept by all workers together, e.g. {"requests": 10, "per": "second"}."""


class Incremental(Declared):
    """Incremental reads: only what changed since the cursor the last successful run stored."""

    cursor_path: DotPath
    """The dot path (a column, for a database) of each record's cursor value, e.g. updated_at."""
    param: str | None = None
    """The query parameter the cursor is sent as (an API source); or use {{ cursor.value }} in the endpoint."""
    initial_value: JsonValue = None
    """The cursor of the first run; without it the first run is full."""
    type: Literal["auto", "number", "datetime", "string"] | None = None
    """How cursor values compare (default: each by its own kind)."""
    format: str | None = None
    """How a date cursor is sent: raw, iso, epoch, epochMs, date or a strftime pattern."""
    full_schedule: str | None = None
    """A cron schedule of full runs, which delete what vanished."""


class ExtraData(Declared):
    """One detail request per object, its answer set at a dot path or merged into the object."""

    static_endpoint: Template | None = None
    """The detail's endpoint: a template with originId, subObjectId and object."""
    dynamic_endpoint_location: DotPath | None = None
    """A dot path in the object holding the detail's endpoint or URL."""
    endpoint_template: Template | None = None
    """Renders the final endpoint from `endpoint`, `object` and `originId`."""
    endpoint_id_location: DotPath | None = None
    """A dot path whose value replaces the origin id in the endpoint."""
    sub_object_id: DotPath | None = None
    """A dot path whose value is the template's subObjectId."""
    key_to_set_extra_data: DotPath | None = None
    """Where the answer is set in the object (else its keys are merged)."""
    merge_extra_data: Flag | None = None
    """In an extraDataConfigPerResult: each result keeps its keys, its detail merged in (else the detail replaces
    it). In an entry of extraDataConfigs the detail is merged either way, as in OpenConnector."""
    unset_config_key: str | list[str] | None = None
    """sourceConfig keys (say `query`) left out of the detail call."""
    source: str | int | None = None
    """Another source, by reference, the detail is read from."""
    source_id: str | int | None = None
    """Another name for `source`."""
    extra_data_config_per_result: ExtraData | None = None
    """For an answer that is a list: each of its items enriched in turn with this."""
    results_location: DotPath | None = None
    """A dot path of the list in the answer, with extraDataConfigPerResult."""


class RunSettings(Declared):
    """What every kind of source takes: ids, deletion, chunks, follow-ups, enrichment, incremental reads."""

    @model_validator(mode="before")
    @classmethod
    def _no_incremental(cls, value: Any) -> Any:
        """Read an empty or false `incremental` (PHP's [] among them) as none."""
        if isinstance(value, dict) and value.get("incremental", None) in ({}, [], False):
            return {key: item for key, item in value.items() if key != "incremental"}
        return value

    id_position: DotPath | None = None
    """The dot path of each object's origin id (default `id`)."""
    id_path: DotPath | None = None
    """Another name for `idPosition`."""
    max_pages: int | None = None
    """A safety limit: a run that reaches it ends partial and deletes nothing."""
    delete_missing: Flag | None = None
    """false: never delete what vanished from the source (default true)."""
    delete_safety_limit: str | float | int | None = None
    """Refuse to delete more than this share of the objects in one run (default "50%"); a forced run may."""
    follow_ups_on_partial: Flag | None = None
    """Start the follow-ups after a partial run too."""
    chunk_size: int | None = None
    """Changed objects written by one task in one transaction, 1 to 10000 (default SYNC_CHUNK_SIZE)."""
    extra_data_configs: list[ExtraData] | None = None
    """Enrichment per object (OpenConnector's keys)."""
    fetch_extra_data_before_conditions: Flag | None = None
    """Enrich before the conditions, so they can use the detail (default: after them)."""
    extra_data_concurrency: int | None = None
    """Objects of a page enriched at once, 1 to 32 (default SYNC_PAGE_CONCURRENCY)."""
    extra_data_only_when_changed: Flag | None = None
    """Enrich only objects whose list entry changed (a forced run enriches all)."""
    incremental: Incremental | None = None
    """Incremental reads with a stored cursor."""
