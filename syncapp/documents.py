"""The records of a configuration bundle, declared: what each of sources, registers, mappings, rules and
synchronizations takes, in the names bundles, the API and the reference page use.

A kind's own settings (a synchronization's sourceConfig and targetConfig, a source's configuration)
are declared by the kind (syncapp.sources, syncapp.targets) and checked there; here they are objects.
"""
from __future__ import annotations

from pydantic import Field, JsonValue

from syncapp.declared import Declared


class Document(Declared):
    """What every record of a bundle has."""

    # Its keys are checked here (unknown keys refused); each value by the check of its owner (validation,
    # the kinds' declarations), which words its problems better than a type can.

    reference: str | None = None
    """The record's name in the bundle and the API: letters, digits, - and _ (other records name it by this)."""
    name: str | None = None
    """A readable name (default the reference)."""
    description: str | None = None
    """What it is for."""


class SourceDocument(Document):
    """An external system objects come from, or go to."""

    type: str | None = None
    """api (default), database or file."""
    location: str | None = None
    """The base URL (api), the connection URL (database), or the URL or path of the file (file)."""
    configuration: dict[str, JsonValue] | None = None
    """Headers, query, timeouts and a request budget of every call (keys by type: see below)."""
    credentials: dict[str, JsonValue] | None = None
    """Write-only: a bearer token, an API key, basic or OAuth2 credentials (database: a password)."""
    is_enabled: bool | None = None
    """false: no synchronization reads it."""


class SchemaDocument(Document):
    """A JSON Schema that the objects of a register are validated against."""

    json_schema: dict[str, JsonValue] | None = Field(None, alias="schema")
    """The JSON Schema (draft 2020-12)."""


class RegisterDocument(Document):
    """A group of schemas in the built-in store."""

    schemas: list[SchemaDocument] | None = None
    """Its schemas."""


class MappingDocument(Document):
    """A transformation of one object into another."""

    mapping: dict[str, JsonValue] | None = None
    """Keys of the new object: dot paths copied with their types, or templates rendered (Jinja2)."""
    unset: list[str] | None = None
    """Dot paths removed from the result."""
    cast: dict[str, str] | None = None
    """Casts by dot path: int, bool, datetime, moneyStringToInt, unsetIfValue==X, … (chained with commas)."""
    pass_through: bool | None = None
    """true: start from the whole source object instead of an empty one."""


class RuleDocument(Document):
    """A step a synchronization takes with each object it writes (OpenConnector's rules; a synchronization
    names its rules in `actions`)."""

    type: str | None = None
    """mapping, error, synchronization, save_object, extend_input, fetch_file or write_file."""
    timing: str | None = None
    """before (default: after the mapping, before the write) or after (the write)."""
    order: int | None = None
    """Rules of a synchronization run by this number, lowest first (default 0; then as `actions` lists them)."""
    conditions: JsonValue | None = None
    """JSON Logic on the object: the rule applies only when they hold."""
    configuration: dict[str, JsonValue] | None = None
    """The settings of its type (keys by type: see below)."""


class SynchronizationDocument(Document):
    """Where objects come from, which count, how they are reshaped and where they go."""

    source_type: str | None = None
    """api (default), register/schema, database or file: how the source is read."""
    source_id: str | None = None
    """The source's reference (api, database, file) or register/schema path."""
    source_config: dict[str, JsonValue] | None = None
    """How the source is read: keys by source type (see below)."""
    source_hash_mapping: str | None = None
    """A mapping, by reference, of the part of an object whose hash tells whether it changed."""
    source_target_mapping: str | None = None
    """A mapping, by reference, from a source object to the target's."""
    conditions: JsonValue | None = None
    """JSON Logic: which objects count."""
    target_type: str | None = None
    """register/schema (default) or api."""
    target_id: str | None = None
    """The register/schema path, or the reference of the source whose API is written."""
    target_config: dict[str, JsonValue] | None = None
    """How the target is written: keys by target type (see below)."""
    target_source_mapping: str | None = None
    """A mapping, by reference, from the register back to the source (two-way sync)."""
    follow_ups: list[str] | None = None
    """Synchronizations, by reference, started after a successful run."""
    actions: list[str] | None = None
    """Rules, by reference, run on each object written (by their order, then as listed)."""
    schedule: str | None = None
    """A cron expression (five fields, or six with seconds last)."""
    is_enabled: bool | None = None
    """false: it neither runs nor is pushed to."""


DOCUMENTS: dict[str, type[Document]] = {
    "sources": SourceDocument, "registers": RegisterDocument, "mappings": MappingDocument,
    "rules": RuleDocument, "synchronizations": SynchronizationDocument,
}


def document_keys(section: str) -> list[str]:
    """Return the keys a record of a bundle's section takes."""
    model = DOCUMENTS[section]
    return [field.alias or name for name, field in model.model_fields.items()]


def schema_keys() -> list[str]:
    """Return the keys a schema of a register takes."""
    return [field.alias or name for name, field in SchemaDocument.model_fields.items()]
