"""The parts of a synchronization's sourceConfig that more than one kind of source takes, declared once.

Each kind's own declaration (in its module) is built from these: every kind takes the run settings
(ids, deletion, chunks, enrichment, incremental reads); a kind that calls HTTP takes the call options.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, JsonValue, field_validator, model_validator

from syncapp.declared import Declared, DotPath, Flag, Template
from syncapp.outbound.masking import is_secret_name

Seconds = float | int | str
"""A number of seconds (10, 2.5)."""
Verify = bool | str
"""true, false, or the path of a CA bundle."""


class CallOptions(Declared):
    """How a source is called over HTTP: merged over the source's own configuration, later wins."""

    headers: dict[str, JsonValue] | None = None
    """Headers of every call (`headers.X` may also be written as its own key); not secrets (Authorization,
    Cookie, X-Api-Key, …): those go in the source's credentials."""
    query: dict[str, JsonValue] | None = None
    """Query parameters of every call (`query.x` may also be written as its own key); not secrets (api_key,
    token, …): those go in the source's credentials."""
    connect_timeout: Seconds | None = Field(None, alias="connectTimeout")
    """Seconds to wait for a connection."""
    timeout: Seconds | None = None
    """Seconds to wait for an answer (also `readTimeout`)."""
    read_timeout: Seconds | None = Field(None, alias="readTimeout")
    """Another name for `timeout`."""
    verify: Verify | None = None
    """false to skip TLS verification, or the path of a CA bundle (also `verifyTls`, `verifySsl`)."""
    verify_tls: Verify | None = Field(None, alias="verifyTls")
    """Another name for `verify`."""
    verify_ssl: Verify | None = Field(None, alias="verifySsl")
    """Another name for `verify`."""

    @model_validator(mode="before")
    @classmethod
    def _fold_dotted(cls, value: Any) -> Any:
        """Read `headers.X` and `query.x` keys as entries of headers and query, as the calls do."""
        if not isinstance(value, dict) or not any(isinstance(key, str) and "." in key for key in value):
            return value
        folded: dict[str, Any] = {}
        for key, item in value.items():
            name, dot, inner = key.partition(".") if isinstance(key, str) else (key, "", "")
            if dot and name in ("headers", "query") and inner:
                part = folded.setdefault(name, {})
                if isinstance(part, dict):
                    part[inner] = item
            else:
                folded[key] = item
        for name in ("headers", "query"):
            if name in value and isinstance(value[name], dict) and isinstance(folded.get(name), dict):
                folded[name] = {**folded[name], **value[name]}
        return folded

    @field_validator("headers", "query")
    @classmethod
    def _no_secrets(cls, value: dict[str, JsonValue] | None, info: Any) -> dict[str, JsonValue] | None:
        """Refuse a header or query parameter that carries a secret: a configuration is shown, exported and
        sent where its calls go, while credentials are write-only, encrypted and bound to the source's origin.
        The value is never quoted."""
        named = sorted(name for name, item in (value or {}).items() if is_secret_name(name) and item not in (None, ""))
        if named:
            kind = "header" if info.field_name == "headers" else "query parameter"
            if named[0].lower() in ("authorization", "proxy-authorization"):
                example = '{"type": "bearer", "token": "..."}'
            else:
                where = "header" if info.field_name == "headers" else "query"
                example = f'{{"type": "apiKey", "in": "{where}", "name": "{named[0]}", "value": "..."}}'
            raise ValueError(
                f"{', '.join(f'`{name}`' for name in named)}: a {kind} that carries a secret goes in the source's "
                f"`credentials` (write-only, encrypted, sent only to the source's own origin), e.g. {example}"
            )
        return value


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
