"""The one check of a synchronization, and of a mapping, that the admin, the API and imports all call.

A synchronization is checked as a document in the bundle's names (`sourceType`, `sourceId`,
`sourceConfig`, …), whichever door it came through: the admin and the API turn their fields into one
(`synchronization_document`) and the problems' paths back into their fields (`problems_by_field`).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from syncapp.conditions import validate_conditions
from syncapp.cron import schedule_problems
from syncapp.deletion import deletion_config_problems
from syncapp.errors import PaginationError
from syncapp.follow_ups import follow_up_cycle, follow_up_graph
from syncapp.mapping import validate_mapping_config
from syncapp.models import Mapping, Rule, Schema, Source, Synchronization
from syncapp.pagination import pagination_from_source_config
from syncapp.runs.context import run_settings_problems
from syncapp.sources import reader_kind, reader_kinds, source_config_problems_of
from syncapp.targets import target_config_problems_of, writer_kind, writer_kinds
from syncapp.write_back import write_back_problems

MAPPING_FIELDS = {"mapping": "mapping", "unset": "unset", "cast": "cast", "passThrough": "pass_through"}
# A synchronization's keys in a document, and the model fields the admin and the API show them in.
SYNCHRONIZATION_FIELDS = {
    "reference": "reference", "name": "name", "description": "description", "sourceType": "source_type",
    "sourceConfig": "source_config", "sourceHashMapping": "source_hash_mapping",
    "sourceTargetMapping": "source_target_mapping", "conditions": "conditions", "targetType": "target_type",
    "targetConfig": "target_config", "targetSourceMapping": "target_source_mapping", "followUps": "follow_ups",
    "schedule": "schedule", "isEnabled": "is_enabled", "actions": "actions",
}
MAPPING_KEYS = ("sourceHashMapping", "sourceTargetMapping", "targetSourceMapping")
_KEYED = re.compile(r"^([A-Za-z_][\w.\[\]]*)(?::\s+|\s+)(.*)$", re.S)


def mapping_problems_by_field(*, config: dict[str, Any], reference: str | None) -> dict[str, list[str]]:
    """Return a mapping configuration's problems keyed by the model field each belongs to."""
    known = set(Mapping.objects.values_list("reference", flat=True)) | ({reference} if reference else set())
    errors: dict[str, list[str]] = {}
    for problem in validate_mapping_config(config, known_references=known):
        prefix = problem.split(".", 1)[0].split(":", 1)[0].split("[", 1)[0]
        errors.setdefault(MAPPING_FIELDS.get(prefix, "mapping"), []).append(problem)
    return errors


@dataclass
class Known:
    """What a synchronization may name besides what is stored: the records of a bundle being imported."""

    sources: dict[str, Source] = field(default_factory=dict)  # unsaved, as the bundle has them
    schemas: set[str] = field(default_factory=set)  # "register/schema" paths
    mappings: set[str] = field(default_factory=set)
    synchronizations: set[str] = field(default_factory=set)
    rules: set[str] = field(default_factory=set)
    # The follow-ups of every synchronization, stored and in the bundle: a cycle is refused.
    follow_ups: dict[str, list[str]] | None = None

    def source(self, reference: Any) -> Source | None:
        if not isinstance(reference, str):
            return None
        return self.sources.get(reference) or Source.objects.filter(reference=reference).first()

    def schema_exists(self, path: Any) -> bool:
        if not isinstance(path, str) or "/" not in path:
            return False
        register, _, schema = path.partition("/")
        return path in self.schemas or Schema.objects.filter(register__reference=register, reference=schema).exists()

    def mapping_exists(self, reference: Any) -> bool:
        return isinstance(reference, str) and (
            reference in self.mappings or Mapping.objects.filter(reference=reference).exists()
        )

    def rule_exists(self, reference: Any) -> bool:
        return isinstance(reference, str) and (
            reference in self.rules or Rule.objects.filter(reference=reference).exists()
        )

    def synchronization_exists(self, reference: Any) -> bool:
        return isinstance(reference, str) and (
            reference in self.synchronizations or Synchronization.objects.filter(reference=reference).exists()
        )


def synchronization_problems(
    item: dict[str, Any], *, path: str = "", known: Known | None = None, previous_reference: str | None = None,
    read_changed: Callable[[], bool] | bool = True,
) -> list[str]:
    """Return every problem of a synchronization document, each "path.key: message".

    `known`: the records of a bundle imported with it; `previous_reference`: the reference it is stored
    under (a renamed one keeps the follow-ups that point at it); `read_changed`: whether what it reads
    changed, so the source itself is asked (a database: the table or query on the database).
    """
    known = known or Known()
    at = f"{path}." if path else ""
    problems: list[str] = []
    source_type = item.get("sourceType", "api")
    reader = reader_kind(source_type) if isinstance(source_type, str) else None
    if reader is None:
        names = ", ".join(kind.kind for kind in reader_kinds())
        problems.append(f"{at}sourceType: must be one of {names}, got {source_type!r}")
    source_config = item.get("sourceConfig")
    source_config = {} if source_config is None else source_config
    if not isinstance(source_config, dict):
        problems.append(f"{at}sourceConfig: must be an object")
    elif reader is not None:
        problems += _source_config_problems(source_type, source_config, at=at, known=known)
    problems += _source_problems(item, reader=reader, source_config=source_config, at=at, known=known,
                                 problems_so_far=bool(problems), read_changed=read_changed)
    for key in MAPPING_KEYS:
        reference = item.get(key)
        if reference not in (None, "") and not known.mapping_exists(reference):
            problems.append(f"{at}{key}: no mapping with reference {reference!r}")
    problems += validate_conditions(item.get("conditions") or {}, path=f"{at}conditions")
    problems += _target_problems(item, at=at, known=known)
    problems += write_back_problems(item, path=path) if path else [
        problem.removeprefix(".") for problem in write_back_problems(item, path="")
    ]
    problems += _follow_up_problems(item, at=at, known=known, previous_reference=previous_reference)
    problems += _action_problems(item, at=at, known=known)
    problems += [f"{at}{problem}" for problem in schedule_problems(item.get("schedule") or "")]
    return problems


def _source_config_problems(source_type: str, source_config: dict[str, Any], *, at: str, known: Known) -> list[str]:
    """Return the problems of a sourceConfig: its kind's declaration and checks, and the run's settings."""
    where = f"{at}sourceConfig"
    checks = [_keyed(problem, where=where) for problem in deletion_config_problems(source_config)]
    checks += [
        _keyed(problem, where=where)
        for problem in run_settings_problems(source_config, known_sources=set(known.sources))
    ]
    if "pagination" in source_config or "maxPages" in source_config or "usesPagination" in source_config:
        try:
            pagination_from_source_config(source_config)
        except PaginationError as error:
            checks.insert(0, _keyed(str(error), where=where))
    return source_config_problems_of(source_type, source_config, path=where, checks=checks)


def _keyed(problem: str, *, where: str) -> str:
    """Return a problem worded "key message" or "key: message" as "where.key: message"."""
    if problem.startswith(where):
        return problem
    match = _KEYED.match(problem)
    if match is None:
        return f"{where}: {problem}"
    return f"{where}.{match.group(1)}: {match.group(2)}"


def _source_problems(
    item: dict[str, Any], *, reader: Any, source_config: Any, at: str, known: Known, problems_so_far: bool,
    read_changed: Callable[[], bool] | bool,
) -> list[str]:
    """Return the problems of what sourceId names: the schema, or a Source of the kind the reader reads."""
    if reader is None:
        return []
    source_id = item.get("sourceId")
    if reader.reads_schema:
        return [] if known.schema_exists(source_id) else [f"{at}sourceId: no register/schema {source_id!r}"]
    source = known.source(source_id)
    if source is None:
        return [f"{at}sourceId: no source with reference {source_id!r}"]
    if source.type != reader.source_kind:
        return [
            f"{at}sourceId: source {source.reference!r} is of type {source.type}; a synchronization of "
            f"sourceType {reader.kind} reads a source of type {reader.source_kind}"
        ]
    if problems_so_far or not isinstance(source_config, dict):
        return []  # the source itself is asked once everything else is sound
    live = read_changed() if callable(read_changed) else read_changed
    return reader.source_problems(
        source=source, source_config=source_config, path=f"{at}sourceConfig", source_path=f"{at}sourceId", live=live,
    )


def _target_problems(item: dict[str, Any], *, at: str, known: Known) -> list[str]:
    """Return the problems of targetType, what targetId names and targetConfig."""
    target_type = item.get("targetType", "register/schema")
    writer = writer_kind(target_type) if isinstance(target_type, str) else None
    if writer is None:
        names = ", ".join(kind.kind for kind in writer_kinds())
        return [f"{at}targetType: must be one of {names}, got {target_type!r}"]
    problems = []
    target_id = item.get("targetId")
    if writer.writes_schema:
        if not known.schema_exists(target_id):
            problems.append(f"{at}targetId: no register/schema {target_id!r}")
    else:
        target = known.source(target_id)
        if target is None:
            problems.append(f"{at}targetId: no source with reference {target_id!r}")
        elif target.type != writer.source_kind:
            problems.append(f"{at}targetId: source {target.reference!r} is of type {target.type}; a target of "
                            f"type {writer.kind} is a source of type {writer.source_kind}")
    target_config = item.get("targetConfig")
    known_mappings = set(known.mappings) | set(Mapping.objects.values_list("reference", flat=True))
    problems += target_config_problems_of(
        target_type, {} if target_config is None else target_config, path=f"{at}targetConfig",
        known_mappings=known_mappings,
    )
    return problems


def _action_problems(item: dict[str, Any], *, at: str, known: Known) -> list[str]:
    """Return the problems of a synchronization's `actions`: rules by reference, each once."""
    actions = item.get("actions") or []
    if not isinstance(actions, list) or not all(isinstance(reference, str) for reference in actions):
        return [f"{at}actions: must be a list of rule references"]
    problems = [
        f"{at}actions[{index}]: no rule with reference {reference!r}"
        for index, reference in enumerate(actions) if not known.rule_exists(reference)
    ]
    seen: set[str] = set()
    for index, reference in enumerate(actions):
        if reference in seen:
            problems.append(f"{at}actions[{index}]: rule {reference!r} is listed twice")
        seen.add(reference)
    return problems


def _follow_up_problems(
    item: dict[str, Any], *, at: str, known: Known, previous_reference: str | None
) -> list[str]:
    follow_ups = item.get("followUps") or []
    if not isinstance(follow_ups, list):
        return [f"{at}followUps: must be a list of synchronization references"]
    problems = [
        f"{at}followUps[{index}]: no synchronization with reference {reference!r}"
        for index, reference in enumerate(follow_ups) if not known.synchronization_exists(reference)
    ]
    reference = item.get("reference")
    if not isinstance(reference, str) or not reference:
        return problems
    graph = dict(known.follow_ups if known.follow_ups is not None else follow_up_graph())
    if previous_reference and previous_reference != reference:
        # A renamed synchronization keeps the edges that point at it.
        graph.pop(previous_reference, None)
        rename = {previous_reference: reference}
        graph = {key: [rename.get(ref, ref) for ref in refs] for key, refs in graph.items()}
    graph[reference] = [ref for ref in follow_ups if isinstance(ref, str)]
    chain = follow_up_cycle(graph=graph, start=reference)
    if chain is not None:
        problems.append(f"{at}followUps: follow-ups make a cycle: " + " → ".join(chain))
    return problems


def synchronization_document(values: dict[str, Any], *, follow_ups: list[str],
                             actions: list[str] | None = None) -> dict[str, Any]:
    """Return a synchronization as a document in the bundle's names, from its model fields' values
    (records, not ids), as the admin's form and the API's serializer have them."""
    def reference(record: Any) -> str | None:
        return getattr(record, "reference", None) if record is not None else None

    def named(*, schema: Any, source: Any, names_schema: bool) -> str | None:
        """Return what sourceId or targetId names: the schema's path, or the source's reference."""
        if names_schema:
            return schema.path if schema is not None else None
        return reference(source)

    source_type = values.get("source_type") or "api"
    target_type = values.get("target_type") or "register/schema"
    reader, writer = reader_kind(source_type), writer_kind(target_type)
    return {
        "reference": values.get("reference"),
        "name": values.get("name"),
        "description": values.get("description"),
        "sourceType": source_type,
        "sourceId": named(schema=values.get("source_schema"), source=values.get("source"),
                          names_schema=reader is not None and reader.reads_schema),
        "sourceConfig": values.get("source_config"),
        "sourceHashMapping": reference(values.get("source_hash_mapping")),
        "sourceTargetMapping": reference(values.get("source_target_mapping")),
        "conditions": values.get("conditions"),
        "targetType": target_type,
        "targetId": named(schema=values.get("target_schema"), source=values.get("target_source"),
                          names_schema=writer is not None and writer.writes_schema),
        "targetConfig": values.get("target_config"),
        "targetSourceMapping": reference(values.get("target_source_mapping")),
        "followUps": follow_ups,
        "actions": list(actions or []),
        "schedule": values.get("schedule") or "",
        "isEnabled": values.get("is_enabled", True),
    }


def problems_by_field(problems: list[str], *, document: dict[str, Any]) -> dict[str, list[str]]:
    """Return a synchronization document's problems by the model field the admin and the API show each in.

    sourceId and targetId are the field of the record they name (a source or a schema); a problem
    inside sourceConfig keeps its key ("endpiont: unknown key, …").
    """
    reader = reader_kind(document.get("sourceType") or "")
    writer = writer_kind(document.get("targetType") or "")
    names = {
        **SYNCHRONIZATION_FIELDS,
        "sourceId": "source_schema" if reader is not None and reader.reads_schema else "source",
        "targetId": "target_schema" if writer is None or writer.writes_schema else "target_source",
    }
    fields: dict[str, list[str]] = {}
    for problem in problems:
        where, _, message = problem.partition(": ")
        key = re.split(r"[.\[]", where, maxsplit=1)[0]
        inner = where[len(key):].lstrip(".")
        name = names.get(key, "non_field_errors")
        # A problem inside a field keeps its path, as a bundle's names it (sourceConfig.endpiont: …); one of
        # the whole field is shown at the field, which names it already.
        fields.setdefault(name, []).append(f"{where}: {message}" if inner else message)
    return fields
