"""A synchronization loaded once per run and worker process, with its reader, rules and writer."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.conf import settings
from django.utils import timezone

from contracts.models import SynchronizationRun
from syncapp.conditions import conditions_compile
from syncapp.enrichment import Enricher, extra_data_problems
from syncapp.errors import ConfigurationError, PaginationError, SourceError
from syncapp.hashing import hash_value
from syncapp.incremental import (
    CursorError,
    IncrementalConfig,
    cursor_variables,
    incremental_config,
    incremental_problems,
)
from syncapp.mapping import JINJA2, apply_mapping
from syncapp.mappings import mapping_resolver, mapping_spec
from syncapp.models import Mapping, Synchronization
from syncapp.outbound.calls import call_source_by_reference
from syncapp.rules import Actions, actions_of
from syncapp.runs.planner import Rules
from syncapp.sources import reader_for, reader_problem
from syncapp.sources.base import Reader, concurrency_of
from syncapp.targets import writer_for, writer_problem
from syncapp.targets.base import Writer


def synchronization_fingerprint(synchronization: Synchronization) -> str:
    """Return a hash of everything that shapes the written objects: a change re-checks them all."""
    def mapping_json(mapping: Mapping | None) -> Any:
        if mapping is None:
            return None
        shape = [mapping.mapping, mapping.unset, mapping.cast, mapping.pass_through]
        # The language only when it is not the default, so Jinja2 mappings keep the fingerprint they had.
        return shape if mapping.language == JINJA2 else [*shape, mapping.language]

    config = synchronization.source_config or {}
    # Set only when configured, so synchronizations without them keep the fingerprint they were written with.
    enrichment = {
        key: config[key]
        for key in ("extraDataConfigs", "fetchExtraDataBeforeConditions", "extraDataOnlyWhenChanged")
        if config.get(key)
    }
    # A synchronization's rules shape what is written too; set only when it has some (the fingerprints of
    # those without stay as they were written).
    actions = _actions_fingerprint(synchronization)
    return hash_value(
        {
            **({"enrichment": enrichment} if enrichment else {}),
            **({"actions": actions} if actions else {}),
            "idPosition": config.get("idPosition") or config.get("idPath"),
            "conditions": synchronization.conditions,
            "hashMapping": mapping_json(synchronization.source_hash_mapping),
            "targetMapping": mapping_json(synchronization.source_target_mapping),
            "targetType": synchronization.target_type,
            "targetSchema": synchronization.target_schema_id,
            "targetSource": synchronization.target_source_id,
            "targetConfig": synchronization.target_config,
        }
    )


def _actions_fingerprint(synchronization: Synchronization) -> str:
    """Return a hash of the synchronization's rules as they are configured, "" without rules."""
    if synchronization.pk is None:
        return ""
    actions = [
        [link.rule.reference, link.rule.type, link.rule.timing, link.rule.order, link.rule.conditions,
         link.rule.configuration]
        for link in synchronization.action_links.select_related("rule").order_by("position", "pk")
    ]
    return hash_value(actions) if actions else ""


def chunk_size_of(source_config: dict[str, Any]) -> int:
    """Return sourceConfig.chunkSize: how many changed objects one write task takes (default SYNC_CHUNK_SIZE)."""
    value = source_config.get("chunkSize", settings.SYNC_CHUNK_SIZE)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10000:
        raise ConfigurationError(f"sourceConfig.chunkSize must be a whole number from 1 to 10000, got {value!r}")
    return value


@dataclass
class SyncContext:
    """What every page and chunk of a run needs, built once."""

    synchronization: Synchronization
    fingerprint: str
    chunk_size: int
    rules: Rules
    _reader: Reader | None = None
    _writer: Writer | None = None
    # sourceConfig.extraDataConfigs, None without them; sourceConfig.incremental, None without it.
    enricher: Enricher | None = None
    incremental: IncrementalConfig | None = None
    # The synchronization's rules (its `actions`), None without them.
    actions: Actions | None = None

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = reader_for(self.synchronization)
        return self._reader

    @property
    def writer(self) -> Writer:
        if self._writer is None:
            self._writer = writer_for(self.synchronization)
        return self._writer


def _rules(synchronization: Synchronization, *, fingerprint: str, writer_check, id_position: str | None) -> Rules:
    config = synchronization.source_config or {}
    target_spec = mapping_spec(synchronization.source_target_mapping) if synchronization.source_target_mapping else None
    hash_spec = mapping_spec(synchronization.source_hash_mapping) if synchronization.source_hash_mapping else None
    resolve_mapping = mapping_resolver()  # the mappings nested in these, read once per run and process

    def to_target(obj: dict) -> Any:
        if target_spec is None:
            return obj
        return apply_mapping(
            spec=target_spec, data=obj, resolve_mapping=resolve_mapping, call_source=call_source_by_reference
        )

    def origin_hash(obj: dict, plain: str) -> str:
        return hash_value(apply_mapping(spec=hash_spec, data=obj, resolve_mapping=resolve_mapping))

    actions = _actions_fingerprint(synchronization)
    return Rules(
        # A reader may name the id itself (a database's id column); idPath is a file source's name for it.
        id_position=id_position or str(config.get("idPosition") or config.get("idPath") or "id"),
        fingerprint=fingerprint,
        passes=conditions_compile(synchronization.conditions),
        origin_hash=origin_hash if hash_spec is not None else None,
        to_target=to_target,
        validate=writer_check,
        **({"target_hash": lambda obj: hash_value({"object": obj, "actions": actions})} if actions else {}),
    )


def context_load(*, synchronization_id: int) -> SyncContext:
    """Load a synchronization with its source, mappings and target in one query; raise ConfigurationError
    when it cannot run as configured."""
    synchronization = Synchronization.objects.select_related(
        "source", "source_schema__register", "source_hash_mapping", "source_target_mapping",
        "target_schema__register", "target_source",
    ).get(pk=synchronization_id)
    problem = reader_problem(synchronization) or writer_problem(synchronization)
    if problem:
        raise ConfigurationError(problem)
    fingerprint = synchronization_fingerprint(synchronization)
    context = SyncContext(
        synchronization=synchronization, fingerprint=fingerprint,
        chunk_size=chunk_size_of(synchronization.source_config or {}),
        rules=None,  # type: ignore[arg-type]  # set below: the rules check objects with the writer
    )
    try:
        # Building it checks the source settings. A reader that knows where its objects' ids are (a
        # database source's id column) says so; else sourceConfig.idPosition does.
        id_position = context.reader.id_position
    except (PaginationError, SourceError) as error:
        raise ConfigurationError(f"sourceConfig: {error}") from None
    context.rules = _rules(
        synchronization, fingerprint=fingerprint, writer_check=context.writer.validate, id_position=id_position
    )
    config = synchronization.source_config or {}
    if config.get("extraDataConfigs"):
        problems = extra_data_problems(config)
        if problems:
            raise ConfigurationError(f"sourceConfig.{problems[0]}")
        context.enricher = Enricher(synchronization)
    problems = incremental_problems(config)
    if problems:
        raise ConfigurationError(f"sourceConfig.{problems[0]}")
    context.incremental = incremental_config(config)
    actions = actions_of(synchronization)
    if actions.problems:
        raise ConfigurationError(f"actions: {actions.problems[0]}")
    context.actions = actions or None
    return context


@functools.lru_cache(maxsize=16)
def context_for_run(*, synchronization_id: int, run_id: int) -> SyncContext:
    """Return the synchronization as loaded once per run and worker process, for its page and chunk tasks.

    A mapping changed during a run reaches the objects of the next run: their contracts keep the
    fingerprint they were written with, so that run re-checks them.
    """
    return context_load(synchronization_id=synchronization_id)


def endpoint_variables(context: SyncContext, *, run: SynchronizationRun | None) -> dict[str, Any]:
    """Return what an endpoint template may use: the run, and when the last successful run started."""
    sync = context.synchronization
    last = (
        SynchronizationRun.objects.filter(
            synchronization_id=sync.pk, is_test=False, status=SynchronizationRun.Status.SUCCEEDED
        )
        .exclude(pk=run.pk if run is not None else None)
        .order_by("-created_at")
        .first()
    )
    now = run.created_at if run is not None and run.created_at else timezone.now()

    def utc(moment) -> str:
        # "Z", not "+00:00": a "+" in a query string reads as a space.
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

    return {
        "run": {
            "id": run.pk if run is not None else None,
            "reference": str(run.reference) if run is not None else "",
            "trigger": run.trigger if run is not None else "",
            "test": bool(run.is_test) if run is not None else False,
            "force": bool(run.is_forced) if run is not None else False,
            "scope": list(run.scope or []) if run is not None else [],
        },
        "now": utc(now),
        "lastSync": utc(last.started_at or last.created_at) if last is not None else "",
        "synchronization": {"reference": sync.reference, "name": sync.name},
        # An incremental run's cursor ({param, value, raw, path}), None on a full run: readers send it.
        "cursor": cursor_variables(sync, run=run),
    }


def first_request(context: SyncContext, *, run: SynchronizationRun | None = None) -> dict[str, Any]:
    """Return the request of the run's first page; an endpoint template is rendered for this run."""
    try:
        variables = endpoint_variables(context, run=run)
    except CursorError as error:
        raise ConfigurationError(f"sourceConfig.incremental: the stored cursor cannot be sent: {error}") from None
    try:
        request = context.reader.first_request(variables=variables)
    except SourceError as error:
        raise ConfigurationError(str(error)) from None
    if run is not None and run.pk is not None and variables["cursor"] is not None:
        run.cursor_sent = variables["cursor"]["raw"]
        SynchronizationRun.objects.filter(pk=run.pk).update(cursor_sent=run.cursor_sent)
    return request


def run_settings_problems(source_config: dict[str, Any], *, known_sources: set[str] | None = None) -> list[str]:
    """Return the problems of sourceConfig's chunkSize, concurrency, incremental and extraDataConfigs.

    `known_sources`: references of sources an extraDataConfigs entry may name besides the database's
    (those of a bundle being imported).
    """
    problems = []
    try:
        chunk_size_of(source_config)
    except ConfigurationError as error:
        problems.append(str(error).removeprefix("sourceConfig."))
    try:
        concurrency_of(source_config)
    except SourceError as error:
        problems.append(str(error).removeprefix("sourceConfig."))
    problems += incremental_problems(source_config)
    problems += extra_data_problems(source_config, known_sources=known_sources)
    return problems
