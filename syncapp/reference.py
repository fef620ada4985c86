"""The reference page of every configuration key, written from the declarations (docs/configuration.md).

`manage.py configuration_reference` writes it; a test fails when the committed page differs from what
the declarations say, so the page cannot fall behind the code.
"""
from __future__ import annotations

from typing import Any

from syncapp.declared import Declared, json_schema_of
from syncapp.documents import DOCUMENTS, SchemaDocument
from syncapp.rules import rule_kinds
from syncapp.sources import reader_kinds, source_configuration_declaration, source_record_kinds
from syncapp.targets import writer_kinds

INTRO = """# Configuration reference

Every key a configuration takes, as the service declares it: a bundle (`sync import`, `sync export`),
the REST API (`/api/docs/` shows the same declarations) and the admin's editors take these names, and
refuse any other key with the closest known name. This page is written from the declarations in the
code by `manage.py configuration_reference`; a test fails when it is out of date.

A key that is left out takes its default; `null` means the same as leaving it out.
"""


def configuration_reference() -> str:
    """Return the reference page, in Markdown."""
    parts: dict[str, dict[str, Any]] = {}  # the declared parts (pagination, extraDataConfigs, …) by name
    lines = [INTRO]
    lines += ["## A bundle's records", ""]
    for section, model in DOCUMENTS.items():
        lines += _table(f"`{section}[]`", json_schema_of(model), parts)
    lines += _table("`registers[].schemas[]`", json_schema_of(SchemaDocument), parts)
    lines += ["## A source's `configuration`, by its `type`", ""]
    for kind in source_record_kinds():
        declaration = source_configuration_declaration(kind)
        lines += _table(f"`type: {kind}`", _schema(declaration, parts), parts)
    lines += ["## A synchronization's `sourceConfig`, by its `sourceType`", ""]
    for reader in reader_kinds():
        lines += _table(f"`sourceType: {reader.kind}`", _schema(reader.declaration, parts), parts)
    lines += ["## A synchronization's `targetConfig`, by its `targetType`", ""]
    for writer in writer_kinds():
        lines += _table(f"`targetType: {writer.kind}`", _schema(writer.declaration, parts), parts)
    lines += ["## A rule's `configuration`, by its `type`", ""]
    for rule in rule_kinds():
        lines += _table(f"`type: {rule.kind}`", _schema(rule.declaration, parts), parts)
    lines += ["## The parts more than one configuration takes", ""]
    parts.pop("JsonValue", None)  # any JSON value: no keys to list
    for name in sorted(parts):
        lines += _table(f"<a id=\"{name.lower()}\"></a>`{name}`", parts[name], parts)
    return "\n".join(lines).rstrip() + "\n"


def _schema(model: type[Declared], parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    schema = json_schema_of(model)
    parts.update(schema.pop("$defs", {}))
    return schema


def _table(title: str, schema: dict[str, Any], parts: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"### {title}", ""]
    if schema.get("description"):
        lines += [_one_line(schema["description"]), ""]
    properties = schema.get("properties") or {}
    if not properties:
        return [*lines, "Takes no keys.", ""]
    required = set(schema.get("required") or [])
    lines += ["| key | type | meaning |", "|---|---|---|"]
    for key, declared in properties.items():
        name = f"`{key}`" + (" (required)" if key in required else "")
        lines.append(f"| {name} | {_type_text(declared, parts)} | {_one_line(declared.get('description', ''))} |")
    return [*lines, ""]


def _type_text(schema: dict[str, Any], parts: dict[str, dict[str, Any]]) -> str:
    """Return a schema's type as a reader wants it: `text`, `whole number`, one of `a`, `b`, a part's link."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return "any JSON value" if name == "JsonValue" else f"[{name}](#{name.lower()})"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "anyOf" in schema:
        texts = list(dict.fromkeys(_type_text(option, parts) for option in schema["anyOf"]))
        if "number" in texts and "whole number" in texts:
            texts.remove("whole number")
        return " or ".join(texts)
    kind = schema.get("type")
    if kind == "array":
        return f"list of {_type_text(schema.get('items') or {}, parts)}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_type_text(schema['additionalProperties'], parts)}"
    return {
        "string": "text", "integer": "whole number", "number": "number", "boolean": "true or false",
        "object": "object", "null": "null",
    }.get(kind, "any JSON value")


def _one_line(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
