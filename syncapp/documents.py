"""The records of a configuration bundle, declared: what each of sources, registers, mappings and
synchronizations takes, in the names bundles, the API and the reference page use.

A kind's own settings (a synchronization's sourceConfig and targetConfig, a source's configuration)
are declared by the kind (syncapp.sources, syncapp.targets) and checked there; here they are objects.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue

from syncapp.declared import Declared


class Document(Declared):
    """What every record of a bundle has."""

    model_config = {**Declared.model_config, "strict": False}  # the shape of values is checked by each key's owner

    reference: Any = None
    """The record's name in the bundle and the API: letters, digits, - and _ (other records name it by this)."""
    name: Any = None
    """A readable name (default the reference)."""
    description: Any = None
    """What it is for."""


class SourceDocument(Document):
    """An external system objects come from, or go to."""

    type: Any = None
    """api (default), database or file."""
    location: Any = None
    """The base URL (api), the connection URL (database), or the URL or path of the file (file)."""
    configuration: Any = None
    """Headers, query, timeouts and a request budget of every call (keys by type: see below)."""
    credentials: Any = None
    """Write-only: a bearer token, an API key, basic or OAuth2 credentials (database: a password)."""
    is_enabled: Any = None
    """false: no synchronization reads it."""


class SchemaDocument(Document):
    """A JSON Schema that the objects of a register are validated against."""

    json_schema: JsonValue = Field(None, alias="schema")
    """The JSON Schema (draft 2020-12)."""


class RegisterDocument(Document):
    """A group of schemas in the built-in store."""

    schemas: Any = None
    """Its schemas."""


class MappingDocument(Document):
    """A transformation of one object into another."""

    mapping: Any = None
    """Keys of the new object: dot paths copied with their types, or templates rendered (Jinja2)."""
    unset: Any = None
    """Dot paths removed from the result."""
    cast: Any = None
    """Casts by dot path: int, bool, datetime, moneyStringToInt, unsetIfValue==X, … (chained with commas)."""
    pass_through: Any = None
    """true: start from the whole source object instead of an empty one."""


class SynchronizationDocument(Document):
    """Where objects come from, which count, how they are reshaped and where they go."""

    source_type: Any = None
    """api (default), register/schema, database or file: how the source is read."""
    source_id: Any = None
    """The source's reference (api, database, file) or register/schema path."""
    source_config: Any = None
    """How the source is read: keys by source type (see below)."""
    source_hash_mapping: Any = None
    """A mapping, by reference, of the part of an object whose hash tells whether it changed."""
    source_target_mapping: Any = None
    """A mapping, by reference, from a source object to the target's."""
    conditions: Any = None
    """JSON Logic: which objects count."""
    target_type: Any = None
    """register/schema (default) or api."""
    target_id: Any = None
    """The register/schema path, or the reference of the source whose API is written."""
    target_config: Any = None
    """How the target is written: keys by target type (see below)."""
    target_source_mapping: Any = None
    """A mapping, by reference, from the register back to the source (two-way sync)."""
    follow_ups: Any = None
    """Synchronizations, by reference, started after a successful run."""
    schedule: Any = None
    """A cron expression (five fields, or six with seconds last)."""
    is_enabled: Any = None
    """false: it neither runs nor is pushed to."""


DOCUMENTS: dict[str, type[Document]] = {
    "sources": SourceDocument, "registers": RegisterDocument, "mappings": MappingDocument,
    "synchronizations": SynchronizationDocument,
}


def document_keys(section: str) -> list[str]:
    """Return the keys a record of a bundle's section takes."""
    model = DOCUMENTS[section]
    return [field.alias or name for name, field in model.model_fields.items()]


def schema_keys() -> list[str]:
    """Return the keys a schema of a register takes."""
    return [field.alias or name for name, field in SchemaDocument.model_fields.items()]
