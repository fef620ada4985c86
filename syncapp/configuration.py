"""Import and export configuration bundles (sources, registers, mappings, rules, synchronizations).

Import validates the whole bundle before it writes anything, reports every problem with its path
in the file, and upserts by `reference`, so importing the same bundle twice changes nothing.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from syncapp.audit import change_record, fields_changed
from syncapp.authentication import credential_problems, location_origin
from syncapp.conditions import conditions_normalize
from syncapp.declared import unknown_key_message
from syncapp.documents import document_keys, schema_keys
from syncapp.errors import SyncError
from syncapp.follow_ups import follow_up_graph
from syncapp.mapping import validate_mapping_config
from syncapp.models import Mapping, Register, Rule, Schema, Source, Synchronization, SynchronizationAction
from syncapp.openconnector import bundle_normalize, bundle_read
from syncapp.rules import Known as RuleKnown
from syncapp.rules import rule_problems
from syncapp.sources import reader_kind, source_configuration_problems, source_record_kinds, source_record_problems
from syncapp.targets import writer_kind
from syncapp.targets.register import check_json_schema
from syncapp.validation import Known, synchronization_problems

REFERENCE_PATTERN = re.compile(r"^[-a-zA-Z0-9_]+$")
MAX_REFERENCE_LENGTH = 120  # the lengths of the reference and name columns
MAX_NAME_LENGTH = 200
SECTIONS = ("sources", "registers", "mappings", "rules", "synchronizations")
# What an export writes for a source's credentials, and what an import reads as "keep the stored ones".
CREDENTIALS_KEPT = "(write-only: kept as stored)"


class ConfigurationInvalid(SyncError, ValueError):
    """A bundle has problems; `problems` lists each with its path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the configuration:\n" + "\n".join(problems))


@dataclass
class ImportResult:
    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SECTIONS, 0))
    updated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SECTIONS, 0))
    # What was added or changed, with the fields that changed: recorded in the configuration's history.
    changes: list[tuple[Any, str, list[str]]] = field(default_factory=list)
    # The paths of what an OpenConnector export holds that this service does not do: not imported.
    ignored: list[str] = field(default_factory=list)
    # What became of each secret header or query parameter in an OpenConnector export's configurations:
    # moved into the source's credentials, or not imported (a configuration may not hold secrets).
    moved: list[str] = field(default_factory=list)
    # "path: what" of an OpenConnector document: links resolved by position, bookkeeping and empty keys left out.
    notes: list[str] = field(default_factory=list)
    # "path: why" of what an OpenConnector document holds that is not imported at all (rules, actions).
    not_imported: list[str] = field(default_factory=list)


def bundle_load(path: Path) -> Any:
    """Read a JSON or YAML bundle from a file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigurationInvalid([f"{path}: not UTF-8 text: {error}"]) from None
    kind = path.suffix.lstrip(".") or "JSON"
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml.load(text, Loader=BundleYamlLoader)  # noqa: S506 - a safe loader without aliases
        return json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, yaml.YAMLError, ValueError) as error:
        raise ConfigurationInvalid([f"{path}: not valid {kind}: {error}"]) from None
    except RecursionError:
        raise ConfigurationInvalid([f"{path}: not valid {kind}: it nests too deep"]) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class BundleYamlLoader(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases: a few hundred bytes of aliases can stand for
    gigabytes of data (a "billion laughs"), and a configuration bundle does not need them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a bundle: write the value out", event.start_mark
            )
        return super().compose_node(parent, index)


MAX_BUNDLE_DEPTH = 100


def unstorable_values(value: Any, *, path: str = "") -> list[str]:
    """Return a problem for each value the database cannot store (NaN, infinity, NUL characters) and for
    nesting too deep."""
    problems = []
    stack = [(value, path, 0)]
    while stack:
        node, location, depth = stack.pop()
        if depth > MAX_BUNDLE_DEPTH:
            problems.append(f"{location or '(root)'}: nests deeper than {MAX_BUNDLE_DEPTH} levels")
            continue
        if isinstance(node, float) and not math.isfinite(node):
            problems.append(f"{location or '(root)'}: {node} is not a JSON number")
        elif isinstance(node, str) and "\x00" in node:
            problems.append(f"{location or '(root)'}: text with a NUL character cannot be stored")
        elif isinstance(node, dict):
            for key in node:
                if isinstance(key, str) and "\x00" in key:
                    problems.append(f"{location or '(root)'}: a key with a NUL character cannot be stored")
            stack.extend((item, f"{location}.{key}" if location else str(key), depth + 1) for key, item in node.items())
        elif isinstance(node, list):
            stack.extend((item, f"{location}[{index}]", depth + 1) for index, item in enumerate(node))
    return problems


class _Checker:
    def __init__(self, bundle: Any):
        self.bundle = bundle
        self.problems: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def items(self, section: str) -> list[tuple[str, dict]]:
        return self.listed(self.bundle.get(section, []), path=section)

    def listed(self, value: Any, *, path: str) -> list[tuple[str, dict]]:
        """Return the objects of a list with their paths; report non-objects and bad references."""
        section = path
        if not isinstance(value, list):
            self.add(section, "must be a list")
            return []
        result = []
        references: set[str] = set()
        for index, item in enumerate(value):
            path = f"{section}[{index}]"
            if not isinstance(item, dict):
                self.add(path, "must be an object")
                continue
            reference = item.get("reference")
            if not isinstance(reference, str) or not REFERENCE_PATTERN.match(reference):
                self.add(f"{path}.reference", "must be a slug of letters, digits, - and _")
                continue
            if len(reference) > MAX_REFERENCE_LENGTH:
                self.add(f"{path}.reference", f"must be at most {MAX_REFERENCE_LENGTH} characters")
                continue
            if reference in references:
                self.add(f"{path}.reference", f"{reference!r} appears twice in {section}")
                continue
            references.add(reference)
            name = item.get("name")
            if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_LENGTH):
                self.add(f"{path}.name", f"must be text of at most {MAX_NAME_LENGTH} characters")
            result.append((path, item))
        return result

    def text(self, path: str, item: dict, key: str, *, required: bool = False) -> None:
        value = item.get(key)
        if value is None:
            if required:
                self.add(f"{path}.{key}", "is required")
            return
        if not isinstance(value, str):
            self.add(f"{path}.{key}", "must be text")

    def json_object(self, path: str, item: dict, key: str) -> None:
        if key in item and item[key] is not None and not isinstance(item[key], dict):
            self.add(f"{path}.{key}", "must be an object")


def _schema_paths(registers: list[tuple[str, dict]]) -> set[str]:
    paths = set()
    for _path, register in registers:
        schemas = register.get("schemas")
        for schema in schemas if isinstance(schemas, list) else []:  # anything else is refused by itself
            if isinstance(schema, dict) and isinstance(schema.get("reference"), str):
                paths.add(f"{register['reference']}/{schema['reference']}")
    return paths


def _bundle_source(item: dict[str, Any]) -> Source:
    """Return a source as the bundle has it (not saved), its credentials the stored ones where kept."""
    stored = Source.objects.filter(reference=item["reference"]).first()
    credentials = item.get("credentials")
    location = item.get("location") or ""
    # Credentials the bundle gives are bound to its location, as the import stores them; kept ones stay bound
    # where they were.
    origin = location_origin(location) if isinstance(location, str) and credentials else ""
    if credentials == CREDENTIALS_KEPT or "credentials" not in item:
        credentials = stored.credentials if stored is not None else {}
        origin = stored.credentials_origin if stored is not None else ""
    return Source(
        reference=item["reference"], type=item.get("type", "api"), location=location,
        configuration=item.get("configuration") or {}, credentials=credentials if isinstance(credentials, dict) else {},
        credentials_origin=origin,
    )


def _read_changed(item: dict, sources: list[tuple[str, dict]]) -> bool:
    """Return whether importing a synchronization changes what it reads from its source (then the source is
    asked, a database about its table or query); a bundle imported again does not need the source up."""
    stored = Synchronization.objects.filter(reference=item["reference"]).select_related("source").first()
    if stored is None or stored.source is None:
        return True
    read = (item.get("sourceType", "api"), item.get("sourceId"), item.get("sourceConfig") or {})
    if (stored.source_type, stored.source.reference, stored.source_config) != read:
        return True
    for _path, source in sources:
        if source["reference"] != stored.source.reference:
            continue
        credentials = source.get("credentials", CREDENTIALS_KEPT)
        return (
            source.get("location") != stored.source.location
            or (source.get("configuration") or {}) != stored.source.configuration
            or (credentials != CREDENTIALS_KEPT and (credentials or {}) != stored.source.credentials)
        )
    return False


def _unknown_keys(section: str, path: str, item: dict[str, Any]) -> list[str]:
    """Return a problem for each key a record of the section does not take, with the closest known name."""
    known = document_keys(section)
    return [
        f"{path}.{key}: {unknown_key_message(key=str(key), known=known)}" for key in item if key not in known
    ]


def bundle_validate(bundle: Any) -> None:
    """Raise ConfigurationInvalid listing every problem of the bundle with its path."""
    unstorable = unstorable_values(bundle)
    if unstorable:
        raise ConfigurationInvalid(unstorable)  # what follows would choke on them
    bundle = bundle_normalize(bundle)  # an OpenConnector export reads as a bundle
    if not isinstance(bundle, dict):
        raise ConfigurationInvalid(["(root): a configuration bundle must be an object"])
    check = _Checker(bundle)
    unknown = sorted(set(bundle) - set(SECTIONS))
    for key in unknown:
        check.add(key, f"unknown section (expected {', '.join(SECTIONS)})")

    sources = check.items("sources")
    for path, item in sources:
        check.problems.extend(_unknown_keys("sources", path, item))
        kind = item.get("type", "api")
        check.text(path, item, "location")  # whether it needs one is its kind's to say (source_record_problems)
        if kind not in source_record_kinds():
            check.add(f"{path}.type", f"must be one of {', '.join(source_record_kinds())}, got {kind!r}")
        elif item.get("location") is None or isinstance(item.get("location"), str):
            # An uploaded file is not part of a bundle: a source that has one keeps it.
            has_upload = Source.objects.filter(reference=item.get("reference")).exclude(file="").exists()
            credentials = item.get("credentials")
            check.problems.extend(source_record_problems(
                kind=kind, location=item.get("location"), has_upload=has_upload, path=f"{path}.",
                credentials=None if credentials == CREDENTIALS_KEPT else credentials,
            ))
        check.json_object(path, item, "configuration")
        if item.get("credentials") != CREDENTIALS_KEPT:
            check.json_object(path, item, "credentials")
        if isinstance(item.get("credentials"), dict):
            check.problems.extend(credential_problems(item["credentials"], path=f"{path}.credentials"))
        check.problems.extend(source_configuration_problems(
            kind=kind, configuration=item.get("configuration"), path=f"{path}.configuration",
        ))

    registers = check.items("registers")
    for path, item in registers:
        check.problems.extend(_unknown_keys("registers", path, item))
        for schema_path, schema in check.listed(item.get("schemas", []), path=f"{path}.schemas"):
            check.problems.extend(
                f"{schema_path}.{key}: {unknown_key_message(key=str(key), known=schema_keys())}"
                for key in schema if key not in schema_keys()
            )
            for problem in check_json_schema(schema.get("schema", {})):
                check.add(f"{schema_path}.schema", problem)

    mappings = check.items("mappings")
    known_mappings = {item["reference"] for _, item in mappings} | set(
        Mapping.objects.values_list("reference", flat=True)
    )
    for path, item in mappings:
        check.problems.extend(_unknown_keys("mappings", path, item))
        for problem in validate_mapping_config(item, known_references=known_mappings):
            check.problems.append(f"{path}.{problem}")

    synchronizations = check.items("synchronizations")
    rules = check.items("rules")
    rule_known = RuleKnown(
        sources=frozenset(item["reference"] for _, item in sources), mappings=frozenset(known_mappings),
        schemas=frozenset(_schema_paths(registers)),
        synchronizations=frozenset(item["reference"] for _, item in synchronizations),
    )
    for path, item in rules:
        check.problems.extend(_unknown_keys("rules", path, item))
        order = item.get("order", 0)
        if isinstance(order, bool) or not isinstance(order, int):
            check.add(f"{path}.order", f"must be a whole number, got {order!r}")
        check.problems.extend(rule_problems(
            rule_type=item.get("type"), timing=item.get("timing", Rule.Timing.BEFORE),
            conditions=item.get("conditions") or {}, configuration=item.get("configuration") or {},
            path=f"{path}.", known=rule_known,
        ))
    graph = follow_up_graph()
    for _path, item in synchronizations:
        follow_ups = item.get("followUps")
        references = follow_ups if isinstance(follow_ups, list) else []
        graph[item["reference"]] = [reference for reference in references if isinstance(reference, str)]
    known = Known(
        sources={item["reference"]: _bundle_source(item) for _, item in sources},
        schemas=_schema_paths(registers), mappings={item["reference"] for _, item in mappings},
        synchronizations={item["reference"] for _, item in synchronizations}, follow_ups=graph,
        rules={item["reference"] for _, item in rules},
    )
    sound = not check.problems  # the sources themselves are asked only about a bundle sound so far
    for path, item in synchronizations:
        check.problems.extend(_unknown_keys("synchronizations", path, item))
        check.problems.extend(synchronization_problems(
            item, path=path, known=known,
            read_changed=(lambda item=item: _read_changed(item, sources)) if sound else False,
        ))
    if check.problems:
        raise ConfigurationInvalid(check.problems)


def _upsert(model, reference: str, values: dict, result: ImportResult, section: str, **lookup):
    existing = model.objects.filter(reference=reference, **lookup).first()
    changed = fields_changed(existing, values) if existing is not None else []
    instance, created = model.objects.update_or_create(reference=reference, defaults=values, **lookup)
    (result.created if created else result.updated)[section] += 1
    if created or changed:
        result.changes.append((instance, "added" if created else "changed", changed))
    return instance


def _schema_by_path(target_id: str) -> Schema:
    register, _, schema = target_id.partition("/")
    return Schema.objects.get(register__reference=register, reference=schema)


def bundle_import(bundle: Any, *, actor: Any = None) -> ImportResult:
    """Validate the bundle, then create or update everything in it in one transaction.

    Each object added or changed is recorded in its history, for `actor` (a user; None for the
    command line).
    """
    bundle_validate(bundle)
    reading = bundle_read(bundle)
    bundle = reading.bundle
    result = ImportResult(ignored=reading.ignored, moved=reading.moved, notes=reading.notes,
                          not_imported=reading.not_imported)
    with transaction.atomic():
        for item in bundle.get("sources", []):
            values = {
                "name": item.get("name") or item["reference"],
                "description": item.get("description") or "",
                "type": item.get("type", "api"),
                "location": item.get("location") or "",
                "configuration": item.get("configuration") or {},
                "is_enabled": item.get("isEnabled", True),
            }
            if "credentials" in item and item["credentials"] != CREDENTIALS_KEPT:
                values["credentials"] = item.get("credentials") or {}
                # Credentials the bundle gives are bound to its location; kept ones stay bound where they were.
                values["credentials_origin"] = location_origin(values["location"]) if values["credentials"] else ""
            _upsert(Source, item["reference"], values, result, "sources")
        for item in bundle.get("registers", []):
            register = _upsert(
                Register, item["reference"],
                {"name": _optional_name(item), "description": item.get("description") or ""},
                result, "registers",
            )
            for schema in item.get("schemas") or []:
                Schema.objects.update_or_create(
                    register=register, reference=schema["reference"],
                    defaults={
                        "name": _optional_name(schema),
                        "description": schema.get("description") or "",
                        "schema": schema.get("schema") or {},
                    },
                )
        for item in bundle.get("mappings", []):
            _upsert(
                Mapping, item["reference"],
                {
                    "name": _optional_name(item),
                    "description": item.get("description") or "",
                    "mapping": item.get("mapping") or {},
                    "unset": item.get("unset") or [],
                    "cast": item.get("cast") or {},
                    "pass_through": bool(item.get("passThrough", False)),
                },
                result, "mappings",
            )
        for item in bundle.get("rules", []):
            _upsert(
                Rule, item["reference"],
                {
                    "name": item.get("name") or item["reference"],
                    "description": item.get("description") or "",
                    "type": item["type"],
                    "timing": item.get("timing") or Rule.Timing.BEFORE,
                    "order": item.get("order") or 0,
                    "conditions": conditions_normalize(item.get("conditions")),
                    "configuration": item.get("configuration") or {},
                },
                result, "rules",
            )
        synchronizations = []
        for item in bundle.get("synchronizations", []):
            synchronizations.append((item, _upsert(
                Synchronization, item["reference"], _synchronization_values(item), result, "synchronizations"
            )))
        for item, synchronization in synchronizations:
            follow_ups = Synchronization.objects.filter(reference__in=item.get("followUps") or [])
            synchronization.follow_ups.set(follow_ups)
            if "actions" in item:
                synchronization_actions_set(synchronization, item.get("actions") or [])
        for instance, action, fields in result.changes:
            change_record(user=actor, instance=instance, action=action, fields=fields, via="import")
    return result


def synchronization_actions_set(synchronization: Synchronization, references: list[str]) -> None:
    """Set a synchronization's `actions`: these rules, by reference, in this order."""
    rules = {rule.reference: rule for rule in Rule.objects.filter(reference__in=references)}
    wanted = [(position, rules[reference]) for position, reference in enumerate(references)]
    current = [(link.position, link.rule_id) for link in synchronization.action_links.order_by("position", "pk")]
    if current == [(position, rule.pk) for position, rule in wanted]:
        return
    synchronization.action_links.all().delete()
    SynchronizationAction.objects.bulk_create([
        SynchronizationAction(synchronization=synchronization, rule=rule, position=position)
        for position, rule in wanted
    ])


def synchronization_actions(synchronization: Synchronization) -> list[str]:
    """Return the references of a synchronization's rules, as its `actions` lists them."""
    return [link.rule.reference for link in synchronization.action_links.select_related("rule").order_by(
        "position", "pk")]


def _optional_name(item: dict) -> str:
    """Return the name of a register, schema or mapping: its reference when the bundle gives none, and a
    blank name as blank (these may be saved without one, and an export writes it so)."""
    name = item.get("name")
    return item["reference"] if name is None else name


def _mapping_or_none(reference: str | None) -> Mapping | None:
    return Mapping.objects.get(reference=reference) if reference else None


def _synchronization_values(item: dict) -> dict:
    source_type = item.get("sourceType", "api")
    target_type = item.get("targetType", "register/schema")
    # What sourceId and targetId name is the kind's to say: a register schema, or a Source record.
    reads_schema, writes_schema = reader_kind(source_type).reads_schema, writer_kind(target_type).writes_schema
    return {
        "name": item.get("name") or item["reference"],
        "description": item.get("description") or "",
        "source_type": source_type,
        "source": None if reads_schema else Source.objects.get(reference=item["sourceId"]),
        "source_schema": _schema_by_path(item["sourceId"]) if reads_schema else None,
        "source_config": item.get("sourceConfig") or {},
        "source_hash_mapping": _mapping_or_none(item.get("sourceHashMapping")),
        "source_target_mapping": _mapping_or_none(item.get("sourceTargetMapping")),
        "conditions": conditions_normalize(item.get("conditions")),
        "target_type": target_type,
        "target_schema": _schema_by_path(item["targetId"]) if writes_schema else None,
        "target_source": None if writes_schema else Source.objects.get(reference=item["targetId"]),
        "target_config": item.get("targetConfig") or {},
        "target_source_mapping": _mapping_or_none(item.get("targetSourceMapping")),
        "schedule": item.get("schedule") or "",
        "is_enabled": item.get("isEnabled", True),
    }


def bundle_export() -> dict:
    """Return everything configured as a bundle; credentials are write-only: a placeholder stands for them,
    which an import of the bundle reads as "keep the stored credentials"."""
    return {
        "sources": [
            {
                "reference": source.reference, "name": source.name, "description": source.description,
                "type": source.type, "location": source.location, "configuration": source.configuration,
                "isEnabled": source.is_enabled,
                **({"credentials": CREDENTIALS_KEPT} if source.credentials else {}),
            }
            for source in Source.objects.all()
        ],
        "registers": [
            {
                "reference": register.reference, "name": register.name, "description": register.description,
                "schemas": [
                    {"reference": schema.reference, "name": schema.name, "description": schema.description,
                     "schema": schema.schema}
                    for schema in register.schemas.all()
                ],
            }
            for register in Register.objects.prefetch_related("schemas")
        ],
        "mappings": [
            {
                "reference": mapping.reference, "name": mapping.name, "description": mapping.description,
                "mapping": mapping.mapping, "unset": mapping.unset, "cast": mapping.cast,
                "passThrough": mapping.pass_through,
            }
            for mapping in Mapping.objects.all()
        ],
        "rules": [rule_export(rule) for rule in Rule.objects.all()],
        "synchronizations": [
            synchronization_export(synchronization)
            for synchronization in Synchronization.objects.select_related(
                "source", "source_schema__register", "source_hash_mapping", "source_target_mapping",
                "target_schema__register", "target_source", "target_source_mapping",
            ).prefetch_related("follow_ups", "action_links__rule")
        ],
    }


def rule_export(rule: Rule) -> dict:
    """Return one rule in the bundle format."""
    return {
        "reference": rule.reference, "name": rule.name, "description": rule.description, "type": rule.type,
        "timing": rule.timing, "order": rule.order, "conditions": rule.conditions,
        "configuration": rule.configuration,
    }


def synchronization_export(synchronization: Synchronization) -> dict:
    """Return one synchronization in the bundle format."""
    def ref(instance) -> str | None:
        return instance.reference if instance is not None else None

    def path(schema: Schema | None) -> str | None:
        return schema.path if schema is not None else None

    # sourceId and targetId name what the kinds read, as an import sets them; a relation of the other sort,
    # which nothing reads, is left out (an api source with a schema beside it exported the schema). A type
    # no kind is registered for exports what it holds, for the import to name its problem.
    reader, writer = reader_kind(synchronization.source_type), writer_kind(synchronization.target_type)
    if reader.reads_schema if reader else synchronization.source_schema is not None:
        source_id = path(synchronization.source_schema)
    else:
        source_id = ref(synchronization.source)
    if writer.writes_schema if writer else synchronization.target_schema is not None:
        target_id = path(synchronization.target_schema)
    else:
        target_id = ref(synchronization.target_source)
    return {
        "reference": synchronization.reference,
        "name": synchronization.name,
        "description": synchronization.description,
        "sourceType": synchronization.source_type,
        "sourceId": source_id,
        "sourceConfig": synchronization.source_config,
        "sourceHashMapping": ref(synchronization.source_hash_mapping),
        "sourceTargetMapping": ref(synchronization.source_target_mapping),
        "conditions": synchronization.conditions,
        "targetType": synchronization.target_type,
        "targetId": target_id,
        "targetConfig": synchronization.target_config,
        "targetSourceMapping": ref(synchronization.target_source_mapping),
        "followUps": sorted(follow_up.reference for follow_up in synchronization.follow_ups.all()),
        "actions": [link.rule.reference for link in sorted(
            synchronization.action_links.all(), key=lambda link: (link.position, link.pk))],
        "schedule": synchronization.schedule,
        "isEnabled": synchronization.is_enabled,
    }
