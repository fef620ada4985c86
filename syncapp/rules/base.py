"""What a rule kind implements and declares, and how it registers: the object a rule is applied to, the
failure that fails that object, and the table the kinds' decorator fills.

The kinds (mapping, error, synchronization, save_object, extend_input, fetch_file, write_file) import
this module, never the registry (`syncapp.rules`, which asks the table) nor each other; the registry
imports the kinds, so every kind is registered once it is loaded. What OpenConnector does with each is
in its `SynchronizationService::processRules()` and the `process…Rule()` methods beside it.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from django.core.exceptions import ValidationError

from syncapp import kinds
from syncapp.declared import Declared
from syncapp.errors import SyncError
from syncapp.mapping import MappingError, apply_mapping
from syncapp.mappings import mapping_spec, resolve_mapping
from syncapp.models import Mapping, Object, Rule, Schema, Source, Synchronization


class RuleFailed(SyncError):
    """A rule could not be applied to an object: the object fails with this reason (not its chunk)."""


@dataclass(frozen=True)
class Known:
    """What a rule's configuration may name besides what is stored (the records of a bundle being imported)."""

    sources: frozenset[str] = frozenset()
    mappings: frozenset[str] = frozenset()
    schemas: frozenset[str] = frozenset()  # register/schema paths
    synchronizations: frozenset[str] = frozenset()


class Prepared:
    """What the rules' steps before the transaction (RuleKind.prepare) had for one object at one timing, by
    rule and by what each asked, for their apply inside the transaction; files they downloaded are in `folder`,
    removed once the chunk is written."""

    def __init__(self, *, folder: Path):
        self.folder = folder
        self.results: dict[tuple[int, Hashable], Any] = {}

    def put(self, *, rule: Rule, key: Hashable, result: Any) -> None:
        """Keep what a rule's step before the transaction had for what it asked (`key`)."""
        self.results[(rule.pk, key)] = result

    def get(self, *, rule: Rule, key: Hashable) -> Any | None:
        """Return what the rule's step before the transaction had for `key`, or None."""
        return self.results.get((rule.pk, key))

    def spool(self) -> Path:
        """Return the path of a new empty file in the folder, to write a download to."""
        handle, path = tempfile.mkstemp(dir=self.folder)
        os.close(handle)
        return Path(path)


@dataclass
class Applied:
    """One object a synchronization's rules are applied to, as it stands."""

    synchronization: Synchronization
    timing: str  # Rule.Timing: before the write (the mapped object) or after it (the object as written)
    data: dict[str, Any]
    # The register object the object is, once there is one: after the write, its target id (a register
    # target) or its origin id (a register source written to an API); None before the write of a new one.
    object_id: str | None
    run_id: int | None = None
    # The synchronizations whose runs led to this one (SynchronizationRun.push_origin), for the runs rules start.
    push_origin: tuple[int, ...] = ()
    # Run after the object's rules all passed and its unit of work committed (runs started by rules).
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # What the rules' steps before the transaction had for the object (RuleKind.prepare), where a transaction
    # locks the whole database (SQLite); None elsewhere: a rule then calls out as it goes.
    prepared: Prepared | None = None


class RuleKind:
    """What a rule class declares beside applying itself; each kind subclasses it and says what differs."""

    kind: ClassVar[str] = ""  # Rule.type, set by rule_type
    label: ClassVar[str] = ""
    declaration: ClassVar[type[Declared]]  # its configuration
    # The timings it can run at (after the write only: it needs the object written).
    timings: ClassVar[tuple[str, ...]] = (Rule.Timing.BEFORE, Rule.Timing.AFTER)
    # Whether it calls other hosts: then its `prepare` makes those calls before the object's transaction.
    calls_out: ClassVar[bool] = False
    # Whether apply only reads and reshapes the object (no write, no call): run before the transaction too,
    # it foresees what the rules after it are given, so that theirs can prepare on it.
    foreseeable: ClassVar[bool] = False

    def __init__(self, rule: Rule):
        self.rule = rule
        self.config = self.declaration.read(rule.configuration or {})

    @staticmethod
    def config_problems(configuration: dict[str, Any], *, path: str, known: Known) -> list[str]:
        """Return the problems of a configuration its declaration's shape does not say (what it names that
        does not exist), each with its path."""
        return []

    def apply(self, applied: Applied) -> dict[str, Any]:
        """Return the object as the rule leaves it; raise RuleFailed to fail the object."""
        raise NotImplementedError

    def prepare(self, applied: Applied) -> dict[str, Any] | None:
        """Before the object's transaction, outside any: make the calls the rule would make in apply, keeping
        what they answered in `applied.prepared` (a transaction that calls out would hold SQLite's write lock
        for as long as the other host takes); return the object as the rule will most likely leave it, for the
        rules after it to prepare on, or None when that cannot be foreseen."""
        return self.apply(applied) if self.foreseeable else None


# ---------------------------------------------------------------------------------------------
# What more than one kind names: mappings, sources, schemas, register objects


def mapping_problems(reference: Any, *, path: str, known: Known) -> list[str]:
    """Return the problem of a mapping reference that names no mapping."""
    if isinstance(reference, str) and reference not in known.mappings and not Mapping.objects.filter(
        reference=reference
    ).exists():
        return [f"{path}: no mapping with reference {reference!r}"]
    return []


def mapping_apply(reference: str, *, data: dict[str, Any]) -> dict[str, Any]:
    """Return the object reshaped by the stored mapping with this reference; raise RuleFailed."""
    mapping = Mapping.objects.filter(reference=reference).first()
    if mapping is None:
        raise RuleFailed(f"no mapping with reference {reference!r}")
    try:
        result = apply_mapping(spec=mapping_spec(mapping), data=data, resolve_mapping=resolve_mapping)
    except MappingError as error:
        raise RuleFailed(f"mapping {mapping.reference!r}: {error}") from None
    if not isinstance(result, dict):
        raise RuleFailed(f"mapping {mapping.reference!r} made a {type(result).__name__}, not an object")
    return result


def source_problems(reference: Any, *, path: str, known: Known) -> list[str]:
    """Return the problem of a source reference that names no HTTP source."""
    if not isinstance(reference, str) or reference in known.sources:
        return []
    source = Source.objects.filter(reference=reference).first()
    if source is None:
        return [f"{path}: no source with reference {reference!r}"]
    if source.type != "api":
        return [f"{path}: source {reference!r} is not an HTTP (api) source"]
    return []


def source_of(reference: str) -> Source:
    """Return the HTTP source with this reference; raise RuleFailed."""
    source = Source.objects.filter(reference=reference).first()
    if source is None:
        raise RuleFailed(f"no source with reference {reference!r}")
    if source.type != "api":
        raise RuleFailed(f"source {reference!r} is not an HTTP (api) source")
    return source


def schema_problems(path_value: Any, *, path: str, known: Known) -> list[str]:
    """Return the problem of a register/schema path that names no schema."""
    if not isinstance(path_value, str) or path_value in known.schemas:
        return []
    register, _, schema = path_value.partition("/")
    if not Schema.objects.filter(register__reference=register, reference=schema).exists():
        return [f"{path}: no schema {path_value!r} (register/schema)"]
    return []


def object_of(object_id: Any) -> Object | None:
    """Return the register object with this id (a UUID, or a URL ending in one), or None."""
    text = str(object_id or "").rstrip("/").rsplit("/", 1)[-1]
    try:
        return Object.objects.select_related("schema").filter(pk=text).first()
    except (ValueError, TypeError, ValidationError):
        return None


RULES: dict[str, type[RuleKind]] = {}


def rule_type(rule_kind: str, *, label: str):
    """Register a rule class for a Rule.type (a class decorator)."""
    def register(cls: type[RuleKind]) -> type[RuleKind]:
        cls.kind, cls.label = rule_kind, label
        RULES[rule_kind] = cls
        kinds.RULE_KINDS[rule_kind] = label
        return cls

    return register
