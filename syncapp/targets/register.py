"""The built-in register as a target: validate against the schema, write objects in bulk.

This module is the one place that writes register objects: syncs (RegisterWriter), the deletion of
vanished objects, the admin and the API (`register_object_save`, `register_objects_delete`) all come
through here, so that every change is recorded in one place (the outbox the pushes drain, syncapp.outbox).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema_rs
from django.db import DatabaseError, DataError, IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from syncapp.bulk import rows_insert, rows_update
from syncapp.declared import Declared
from syncapp.errors import InvalidObject
from syncapp.hashing import canonical_json, hash_value
from syncapp.ids import uuid7
from syncapp.models import Object, Schema, StoredFile, Synchronization, stored_files_storage
from syncapp.outbox import changes_record
from syncapp.targets.base import (
    BARE,
    GUARDED,
    ONE_BY_ONE,
    BulkWriteFailed,
    Outcome,
    Version,
    Write,
    WriterKind,
    writer_type,
)

logger = logging.getLogger(__name__)

# Keywords whose meaning the compiled validator may read differently from the jsonschema library
# (regular expression dialects, format assertions): schemas using them are checked by jsonschema alone.
_DIALECT_KEYWORDS = ("pattern", "patternProperties", "format", "$dynamicRef", "$recursiveRef")


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


def _uses_dialect_keywords(node: Any) -> bool:
    stack = [node]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if any(keyword in value for keyword in _DIALECT_KEYWORDS):
                return True
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


@dataclass(frozen=True)
class SchemaCheck:
    """A schema ready to validate objects: a compiled fast path, and jsonschema for the wording."""

    path: str
    reference: Any
    fast: Any

    def problem(self, data: Any) -> str | None:
        """Return why the object breaks the schema, naming every place (up to ten), or None."""
        if self.fast is not None:
            try:
                if self.fast.is_valid(data):
                    return None
            except (ValueError, TypeError):
                pass  # a value the compiled validator cannot read: jsonschema decides
        errors = sorted(self.reference.iter_errors(data), key=lambda error: list(error.absolute_path))
        if not errors:
            return None
        problems = []
        for error in errors[:10]:
            location = ".".join(str(part) for part in error.absolute_path) or "(root)"
            problems.append(f"{location}: {error.message}")
        return f"invalid against schema {self.path}: " + "; ".join(problems)


@lru_cache(maxsize=256)
def _schema_check(schema_id: int, updated_at: str, path: str, schema_json: str) -> SchemaCheck:
    document = json.loads(schema_json)
    reference = validator_for(document, default=Draft202012Validator)(document)
    fast = None
    if isinstance(document, dict) and not _uses_dialect_keywords(document):
        try:
            fast = jsonschema_rs.validator_for(document, validate_formats=False)
        except (ValueError, TypeError) as error:  # a schema the compiled validator does not take
            logger.info("schema %s is validated by jsonschema alone: %s", path, error)
    return SchemaCheck(path=path, reference=reference, fast=fast)


def schema_check(schema: Schema) -> SchemaCheck:
    """Return the validator of a schema, built once per version of it and process."""
    return _schema_check(schema.pk, schema.updated_at.isoformat(), schema.path, canonical_json(schema.schema or {}))


def validate_register_object(*, schema: Schema, data: Any) -> None:
    """Raise InvalidObject naming every place where the object breaks the schema."""
    problem = schema_check(schema).problem(data)
    if problem is not None:
        raise InvalidObject(problem)


# ---------------------------------------------------------------------------------------------
# Single objects: the admin and the API


def register_object_save(*, obj: Object) -> Object:
    """Validate and save one object (new or changed), as the admin and the API do; record the change for
    the pushes."""
    validate_register_object(schema=obj.schema, data=obj.data)
    event = "create" if obj._state.adding else "update"
    with transaction.atomic():
        obj.save()
        changes_record(schema_id=obj.schema_id, changes=[(str(obj.pk), event)])
    return obj


def register_objects_delete(*, objects: Iterable[Object] | None = None, schema: Schema | None = None,
                            target_ids: Iterable[str] = (), written_by: Synchronization | None = None,
                            caused_by: Iterable[int] = ()) -> int:
    """Delete objects, given as records or as ids of one schema; return how many were deleted; record the
    deletions for the pushes (`written_by`: the synchronization deleting them, `caused_by`: the push
    origin of its run; a push does not go back to them)."""
    ids = [obj.pk for obj in objects or ()]
    query = Object.objects.filter(pk__in=ids)
    if schema is not None:
        query = Object.objects.filter(pk__in=[*ids, *target_ids], schema=schema)
    with transaction.atomic():
        gone = list(query.values_list("pk", "schema_id"))
        files_content_delete_after_commit(object_ids=[pk for pk, _ in gone])
        deleted, _ = query.delete()
        for schema_id in {schema_id for _, schema_id in gone}:
            changes_record(schema_id=schema_id, changes=[(str(pk), "delete") for pk, of in gone if of == schema_id],
                           written_by=written_by, caused_by=caused_by)
    return deleted


def files_content_delete_after_commit(*, object_ids: list[Any]) -> None:
    """Delete the content of the files of these objects once their deletion commits (their records go with
    the objects)."""
    names = list(StoredFile.objects.filter(object_id__in=object_ids).exclude(file="").values_list("file", flat=True))
    if names:
        storage = stored_files_storage()
        transaction.on_commit(lambda: [storage.delete(name) for name in names])


# ---------------------------------------------------------------------------------------------
# The writer of syncs


def _connection_lost() -> bool:
    raw = connection.connection
    return raw is None or bool(getattr(raw, "closed", False)) or not connection.is_usable()


def _connection_broken() -> bool:
    """Return whether the connection itself failed, not only its transaction: in an aborted transaction
    every statement fails, a probe (is_usable) included, so only the driver's own state can tell."""
    raw = connection.connection
    return raw is None or bool(getattr(raw, "closed", False)) or bool(getattr(raw, "broken", False))


class RegisterTargetConfig(Declared):
    """targetConfig of a synchronization into the register: it takes no settings (the schema is its targetId)."""


@writer_type("register/schema", label="Register/Schema", writes_schema=True)
class RegisterWriter(WriterKind):
    """Write the mapped objects of a chunk to a schema of the register, in bulk."""

    declaration = RegisterTargetConfig

    def __init__(self, synchronization: Synchronization):
        self.synchronization = synchronization
        self.schema: Schema = synchronization.target_schema
        self.check = schema_check(self.schema)
        # Two-way sync (sourceConfig.writeBack): an object changed here since the last sync is a
        # conflict the source's version does not simply overwrite, unless the source wins.
        config = synchronization.source_config or {}
        self.winner = str(config.get("conflictWinner") or "source") if config.get("writeBack") else "source"

    @staticmethod
    def problem(synchronization: Synchronization) -> str | None:
        if synchronization.target_schema is None:
            return f"synchronization {synchronization.reference!r} has no register/schema target (targetId)"
        return None

    def validate(self, data: Any) -> None:
        problem = self.check.problem(data)
        if problem is not None:
            raise InvalidObject(problem)

    def existing(self, target_ids: list[str]) -> set[str]:
        if not target_ids:
            return set()
        rows = Object.objects.filter(schema=self.schema, pk__in=target_ids).values_list("pk", flat=True)
        return {str(pk) for pk in rows}

    def version_sql(self) -> tuple[str, list[Any]]:
        return f"SELECT updated_at FROM {Schema._meta.db_table} WHERE id = %s", [self.schema.pk]

    def schema_refresh(self, *, version: Version | None = None) -> None:
        """Validate against the schema as it is now: an object the register keeps always fits its schema,
        also when the schema was changed during the run. `version`: the schema's as the chunk's claim read
        it (version_sql); the schema is read again only when it differs."""
        if version is not None and version.value == self.schema.updated_at:
            return
        changed = Schema.objects.filter(pk=self.schema.pk).exclude(updated_at=self.schema.updated_at)
        fresh = changed.select_related("register").first()
        if fresh is not None:
            self.schema = fresh
            self.check = schema_check(fresh)

    def write(self, writes: list[Write], *, bulk: str = GUARDED, version: Version | None = None) -> list[Outcome]:
        self.schema_refresh(version=version)
        outcomes: list[Outcome | None] = [None] * len(writes)
        valid: list[int] = []
        for index, write in enumerate(writes):
            problem = self.check.problem(write.data)
            if problem is None:
                valid.append(index)
            else:
                outcomes[index] = Outcome(Outcome.INVALID, error=problem)
        if valid and bulk == ONE_BY_ONE:
            for index in valid:
                outcomes[index] = self._write_one(writes[index])
        elif valid and bulk == BARE:
            # No savepoint: a statement less each way. An object that spoils the bulk statement aborts the
            # caller's transaction, which then rolls back and asks again one by one (syncapp.runs.chunks).
            try:
                for index, outcome in zip(valid, self._write_many([writes[i] for i in valid]), strict=True):
                    outcomes[index] = outcome
            except DatabaseError as error:
                if _connection_broken():
                    raise
                raise BulkWriteFailed(f"bulk write to {self.schema.path} failed: {error}") from error
        elif valid:
            try:
                with transaction.atomic():
                    for index, outcome in zip(valid, self._write_many([writes[i] for i in valid]), strict=True):
                        outcomes[index] = outcome
            except DatabaseError as error:
                if _connection_lost():
                    raise
                # One object spoils the bulk statement: write them one by one to find it.
                logger.info("bulk write to %s failed (%s): writing object by object", self.schema.path, error)
                for index in valid:
                    outcomes[index] = self._write_one(writes[index])
        return outcomes  # type: ignore[return-value]

    def _write_many(self, writes: list[Write]) -> list[Outcome]:
        now = timezone.now()
        wanted = [write.target_id for write in writes if write.target_id]
        present = self.existing(wanted) if self.winner == "source" else self._present_with_hashes(wanted)
        creates: list[dict[str, Any]] = []
        updates: list[Object] = []
        outcomes = []
        for write in writes:
            changed_here = (
                isinstance(present, dict) and write.target_id in present and write.known_hash
                and present[write.target_id] != write.known_hash
            )
            if changed_here and self.winner == "target":
                outcomes.append(Outcome(Outcome.KEPT, target_id=write.target_id))
            elif changed_here:
                outcomes.append(Outcome(
                    Outcome.CONFLICT, target_id=write.target_id,
                    error="changed in the register and at the source since the last sync: resolve it in the admin",
                ))
            elif write.target_id and write.target_id in present:
                updates.append(Object(pk=write.target_id, schema=self.schema, data=write.data, updated_at=now))
                outcomes.append(Outcome(Outcome.UPDATED, target_id=write.target_id))
            else:
                # A new object, or one deleted from the register since: created (again).
                created = {"uuid": uuid7(), "schema_id": self.schema.pk, "data": write.data,
                           "created_at": now, "updated_at": now}
                creates.append(created)
                outcomes.append(Outcome(Outcome.CREATED, target_id=str(created["uuid"])))
        rows_insert(Object, creates)
        if updates:
            rows_update(Object, updates, ["data", "updated_at"])
        changes_record(
            schema_id=self.schema.pk, written_by=self.synchronization,
            caused_by=writes[0].push_origin if writes else (),
            changes=[(str(o.target_id), "create" if o.kind == Outcome.CREATED else "update") for o in outcomes
                     if o.kind in (Outcome.CREATED, Outcome.UPDATED)],
        )
        return outcomes

    def _present_with_hashes(self, target_ids: list[str]) -> dict[str, str]:
        """Return the hash of each object still there (two-way sync: to see what changed here)."""
        if not target_ids:
            return {}
        rows = Object.objects.filter(schema=self.schema, pk__in=target_ids).values_list("pk", "data")
        return {str(pk): hash_value(data) for pk, data in rows}

    def _write_one(self, write: Write) -> Outcome:
        try:
            with transaction.atomic():
                [outcome] = self._write_many([write])
            return outcome
        except (IntegrityError, DataError) as error:
            return Outcome(Outcome.FAILED, error=f"{type(error).__name__}: {error}".strip())
        except OperationalError as error:
            if _connection_lost():
                raise
            return Outcome(Outcome.RETRY, error=f"{type(error).__name__}: {error}".strip())
        except DatabaseError as error:
            if _connection_lost():
                raise
            return Outcome(Outcome.FAILED, error=f"{type(error).__name__}: {error}".strip())

    def delete(self, target_ids: list[str], *, push_origin: tuple[int, ...] = ()) -> None:
        register_objects_delete(schema=self.schema, target_ids=target_ids, written_by=self.synchronization,
                                caused_by=push_origin)


__all__ = [
    "RegisterWriter", "SchemaCheck", "check_json_schema", "register_object_save",
    "register_objects_delete", "schema_check", "validate_register_object",
]
