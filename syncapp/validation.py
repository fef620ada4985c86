"""Validation shared by the admin forms, the API serializers and import: problems per model field."""
from __future__ import annotations

from typing import Any

from syncapp.cron import schedule_problems
from syncapp.deletion import deletion_config_problems
from syncapp.errors import PaginationError
from syncapp.follow_ups import follow_up_cycle_message, follow_up_graph
from syncapp.mapping import validate_mapping_config
from syncapp.models import Mapping, Source, Synchronization
from syncapp.pagination import pagination_from_source_config
from syncapp.runs.context import run_settings_problems
from syncapp.sources import source_config_problems_of
from syncapp.sources.database import database_read_problems
from syncapp.targets.api import target_config_problems

MAPPING_FIELDS = {"mapping": "mapping", "unset": "unset", "cast": "cast", "passThrough": "pass_through"}


def mapping_problems_by_field(*, config: dict[str, Any], reference: str | None) -> dict[str, list[str]]:
    """Return a mapping configuration's problems keyed by the model field each belongs to."""
    known = set(Mapping.objects.values_list("reference", flat=True)) | ({reference} if reference else set())
    errors: dict[str, list[str]] = {}
    for problem in validate_mapping_config(config, known_references=known):
        prefix = problem.split(".", 1)[0].split(":", 1)[0].split("[", 1)[0]
        errors.setdefault(MAPPING_FIELDS.get(prefix, "mapping"), []).append(problem)
    return errors


def synchronization_problems_by_field(
    *, reference: str | None, previous_reference: str | None, source_config: Any, schedule: str,
    follow_ups: list[str], target_type: str = "", target_config: Any = None, source_type: str = "",
    source: Source | None = None, source_changed: bool = True,
) -> dict[str, list[str]]:
    """Return the problems of a synchronization's settings that the field types do not catch.

    A database source's table or query is checked on the database itself (read-only) when it is new or
    `source_changed` (its source, source type or sourceConfig): a synchronization can be renamed or
    disabled while its database is down.
    """
    errors: dict[str, list[str]] = {}
    if source_type == Synchronization.SourceType.DATABASE:
        for problem in database_read_problems(source=source, source_config=source_config, live=source_changed):
            if problem.startswith("sourceId"):
                errors.setdefault("source", []).append(problem.removeprefix("sourceId").lstrip(": "))
            else:
                errors.setdefault("source_config", []).append(problem)
    if target_type == "api":
        problems = target_config_problems(target_config)
        if problems:
            errors["target_config"] = problems
    if isinstance(source_config, dict):
        problems = errors.pop("source_config", [])
        problems += deletion_config_problems(source_config) + run_settings_problems(source_config)
        problems += source_config_problems_of(source_type, source_config)
        try:
            pagination_from_source_config(source_config)
        except PaginationError as error:
            problems.insert(0, str(error))
        if problems:
            errors["source_config"] = problems
    else:
        errors["source_config"] = ["must be a JSON object"]
    if schedule_problems(schedule or ""):
        errors["schedule"] = schedule_problems(schedule)
    if reference:
        graph = follow_up_graph()
        if previous_reference and previous_reference != reference:
            # A renamed synchronization keeps the edges that point at it.
            graph.pop(previous_reference, None)
            rename = {previous_reference: reference}
            graph = {key: [rename.get(ref, ref) for ref in refs] for key, refs in graph.items()}
        message = follow_up_cycle_message(reference=reference, follow_ups=follow_ups, graph=graph)
        if message:
            errors["follow_ups"] = [message]
    return errors
