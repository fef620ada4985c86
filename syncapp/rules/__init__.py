"""Rules: what a synchronization does with each object besides mapping and writing it (OpenConnector's
rules, named in a synchronization's `actions`), one kind per Rule.type, registered by type.

A synchronization's rules run on each object it writes, inside that object's unit of work: those
timed `before` on the mapped object before it is written (OpenConnector runs them after the mapping,
before the write: SynchronizationService::synchronizeContract), those timed `after` on the object as
written, with `_objectBeforeMapping` (the object as the source gave it) beside it. They run by their
`order`, then as `actions` lists them; each only when its JSON Logic `conditions` hold on the object
as it stands. A rule that fails fails its object, with the rule's name and the reason; the objects
beside it are written. A new kind is a module here that registers its class with `rule_type`
(syncapp.rules.base) and is imported below; the kinds import the base, never this module.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from syncapp.conditions import ConditionError, conditions_compile, validate_conditions
from syncapp.declared import DeclarationInvalid, Declared, declaration_problems, json_schema_of
from syncapp.errors import SyncError
from syncapp.http import RateLimited
from syncapp.models import Rule, Synchronization

# The kinds register themselves on import (syncapp.rules.base).
from syncapp.rules import error as _error  # noqa: F401
from syncapp.rules import extend_input as _extend_input  # noqa: F401
from syncapp.rules import fetch_file as _fetch_file  # noqa: F401
from syncapp.rules import mapping as _mapping  # noqa: F401
from syncapp.rules import save_object as _save_object  # noqa: F401
from syncapp.rules import synchronization as _synchronization  # noqa: F401
from syncapp.rules import write_file as _write_file  # noqa: F401
from syncapp.rules.base import RULES, Applied, Known, Prepared, RuleFailed, RuleKind

__all__ = [
    "Actions", "Applied", "Known", "Prepared", "RuleFailed", "actions_of", "rule_configuration_declaration",
    "rule_configuration_schemas", "rule_kind", "rule_kinds", "rule_problems",
]


def rule_kind(rule_type: str) -> type[RuleKind] | None:
    """Return the class registered for a Rule.type, or None."""
    return RULES.get(rule_type) if isinstance(rule_type, str) else None


def rule_kinds() -> list[type[RuleKind]]:
    """Return the classes of every rule type, in the order they registered."""
    return list(RULES.values())


def rule_configuration_declaration(rule_type: str) -> type[Declared] | None:
    """Return the declaration of a Rule's configuration for its type, or None for an unknown type."""
    cls = rule_kind(rule_type)
    return cls.declaration if cls is not None else None


def rule_configuration_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of a Rule's configuration for each type."""
    return {cls.kind: json_schema_of(cls.declaration) for cls in RULES.values()}


def rule_problems(*, rule_type: Any, timing: Any, conditions: Any, configuration: Any, path: str = "",
                  known: Known | None = None) -> list[str]:
    """Return the problems of a rule as it is about to be saved, each "field: message" after `path`;
    `known`: what it may name besides what is stored (the records of a bundle being imported)."""
    known = known or Known()
    problems = []
    cls = rule_kind(rule_type)
    if cls is None:
        problems.append(f"{path}type: must be one of {', '.join(RULES)}, got {rule_type!r}")
    if timing not in Rule.Timing.values:
        problems.append(f"{path}timing: must be one of {', '.join(Rule.Timing.values)}, got {timing!r}")
    elif cls is not None and timing not in cls.timings:
        problems.append(f"{path}timing: a {cls.kind} rule runs {' or '.join(cls.timings)} the write only")
    problems += validate_conditions(conditions, path=f"{path}conditions")
    if cls is not None:
        where = f"{path}configuration"
        if not isinstance(configuration, dict):
            problems.append(f"{where}: must be an object")
        else:
            problems += declaration_problems(
                cls.declaration, configuration, path=where,
                checks=cls.config_problems(configuration, path=where, known=known),
            )
    return problems


@dataclass
class _Step:
    rule: Rule
    kind: RuleKind
    passes: Any


class Actions:
    """A synchronization's rules, loaded once per run and worker process, applied to one object at a time."""

    def __init__(self, rules: list[Rule]):
        self.steps: list[_Step] = []
        self.problems: list[str] = []
        for rule in rules:
            cls = rule_kind(rule.type)
            if cls is None:
                self.problems.append(f"rule {rule.reference!r}: type {rule.type!r} is not a rule type")
                continue
            try:
                self.steps.append(_Step(rule=rule, kind=cls(rule), passes=conditions_compile(rule.conditions)))
            except DeclarationInvalid as error:
                self.problems.append(f"rule {rule.reference!r}: configuration: {error}")

    def __bool__(self) -> bool:
        return bool(self.steps) or bool(self.problems)

    def timed(self, timing: str) -> bool:
        """Return whether any rule runs at this timing."""
        return any(step.rule.timing == timing for step in self.steps)

    def calls_out(self) -> bool:
        """Return whether any rule calls other hosts (has a step before the transaction: RuleKind.prepare)."""
        return any(step.kind.calls_out for step in self.steps)

    def prepare(self, applied: Applied) -> dict[str, Any] | None:
        """Run the steps before the transaction of the rules of the object's timing, outside any transaction,
        in order, each on the object as the rules before it will most likely leave it; what they had goes to
        `applied.prepared`. Return the object as the rules will most likely leave it, or None from the first
        rule whose result cannot be foreseen (the rules after it prepare nothing: inside the transaction
        they find nothing prepared and fail the object, rather than call out there)."""
        if self.problems:
            return None
        data = applied.data
        for step in self.steps:
            if step.rule.timing != applied.timing:
                continue
            try:
                if not step.passes(data):
                    continue
                # A copy: what a rule would leave to run after the commit belongs to its apply, not to this.
                data = step.kind.prepare(replace(applied, data=data, after_commit=[]))
            except (SyncError, ConditionError):
                return None  # the rule fails the object when applied: nothing after it runs
            if not isinstance(data, dict):
                return None
        return data

    def apply(self, applied: Applied) -> dict[str, Any]:
        """Return the object after the rules of its timing; raise RuleFailed naming the rule that failed."""
        if self.problems:
            raise RuleFailed(self.problems[0])
        data = applied.data
        for step in self.steps:
            if step.rule.timing != applied.timing:
                continue
            label = f"rule {step.rule.name or step.rule.reference!r} ({step.rule.type})"
            try:
                if not step.passes(data):
                    continue
                applied.data = data
                data = step.kind.apply(applied)
            except RuleFailed as failure:
                raise RuleFailed(f"{label}: {failure}") from None
            except RateLimited as limited:
                # Not the object's fault: the object is tried again later (syncapp.runs.actions).
                raise RateLimited(f"{label}: {limited}", wait_seconds=limited.wait_seconds, url=limited.url) from None
            except ConditionError as error:
                raise RuleFailed(f"{label}: conditions: {error}") from None
            except SyncError as error:
                raise RuleFailed(f"{label}: {error}") from None
            if not isinstance(data, dict):
                raise RuleFailed(f"{label}: made a {type(data).__name__}, not an object")
        applied.data = data
        return data


def actions_of(synchronization: Synchronization) -> Actions:
    """Return the synchronization's rules in the order they run: by `order`, then as `actions` lists them."""
    links = synchronization.action_links.select_related("rule").order_by("position", "pk")
    rules = [link.rule for link in links]
    rules.sort(key=lambda rule: rule.order)  # stable: equal orders keep the list's order
    return Actions(rules)
