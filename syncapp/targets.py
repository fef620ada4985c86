"""Write mapped objects to a target: the built-in register."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from syncapp.models import Object, Schema


class TargetError(Exception):
    """The target refused or failed the write."""


class InvalidObject(ValueError):
    """The mapped object does not fit the target's schema."""


@dataclass(frozen=True)
class WriteResult:
    target_id: str
    action: str  # "create" or "update"


@lru_cache(maxsize=256)
def _validator(schema_id: int, updated_at: str, schema_json: str):
    import json

    schema = json.loads(schema_json)
    cls = validator_for(schema, default=Draft202012Validator)
    return cls(schema)


def check_json_schema(schema: Any) -> list[str]:
    """Return the problems of a JSON Schema document, empty when it is usable."""
    if not isinstance(schema, dict):
        return ["a JSON Schema must be an object"]
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as error:
        location = "/".join(str(part) for part in error.path) or "(root)"
        return [f"{location}: {error.message}"]
    return []


def validate_register_object(*, schema: Schema, data: Any) -> None:
    """Raise InvalidObject naming every place where the object breaks the schema."""
    from syncapp.hashing import canonical_json

    validator = _validator(schema.pk, schema.updated_at.isoformat(), canonical_json(schema.schema or {}))
    errors = sorted(validator.iter_errors(data), key=lambda error: list(error.absolute_path))
    if errors:
        problems = []
        for error in errors[:10]:
            location = ".".join(str(part) for part in error.absolute_path) or "(root)"
            problems.append(f"{location}: {error.message}")
        raise InvalidObject(f"invalid against schema {schema.path}: " + "; ".join(problems))


def write_register_object(*, schema: Schema, target_id: str | None, data: Any) -> WriteResult:
    """Create the object, or update it in place when it still exists; validate it first."""
    validate_register_object(schema=schema, data=data)
    if target_id:
        updated = Object.objects.filter(pk=target_id, schema=schema).update(data=data, updated_at=_now())
        if updated:
            return WriteResult(target_id=str(target_id), action="update")
    created = Object.objects.create(schema=schema, data=data)
    return WriteResult(target_id=str(created.pk), action="create")


def delete_register_object(*, schema: Schema, target_id: str) -> bool:
    """Delete the object; return False when it was already gone."""
    deleted, _ = Object.objects.filter(pk=target_id, schema=schema).delete()
    return bool(deleted)


def register_object_exists(*, schema: Schema, target_id: str) -> bool:
    """Return whether the target object is still there."""
    return Object.objects.filter(pk=target_id, schema=schema).exists()


def _now():
    from django.utils import timezone

    return timezone.now()
