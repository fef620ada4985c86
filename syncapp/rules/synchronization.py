"""`synchronization` rules: another synchronization runs for the object.

OpenConnector's processSyncRule (at the commit this follows) returns the object unchanged and runs
nothing. Here the rule starts an `event` run of the named synchronization limited to this object, as a
push does, once the object's write has committed: so the synchronization named must read the register
schema the object is in (a whole run after another is a follow-up: `followUps`). The run carries the
chain of synchronizations that led to it, so two synchronizations naming each other stop after one hop.
"""
from __future__ import annotations

from typing import Any

from syncapp.declared import Declared
from syncapp.models import Rule, Synchronization
from syncapp.rules.base import Applied, Known, RuleFailed, RuleKind, object_of, rule_type
from workers import dispatch


class SynchronizationRuleConfig(Declared):
    """configuration of a `synchronization` rule."""

    synchronization: str
    """The synchronization, by reference, run for the object: one that reads the register schema it is in."""


@rule_type("synchronization", label="Synchronization")
class SynchronizationRule(RuleKind):
    declaration = SynchronizationRuleConfig
    timings = (Rule.Timing.AFTER,)  # the object must be in the register first

    @staticmethod
    def config_problems(configuration: dict[str, Any], *, path: str, known: Known) -> list[str]:
        reference = configuration.get("synchronization")
        if not isinstance(reference, str) or reference in known.synchronizations:
            return []
        other = Synchronization.objects.filter(reference=reference).first()
        if other is None:
            return [f"{path}.synchronization: no synchronization with reference {reference!r}"]
        if other.source_schema_id is None:
            return [f"{path}.synchronization: {reference!r} does not read a register schema, so it cannot run "
                    "for one object (a run after another is a follow-up: followUps)"]
        return []

    def prepare(self, applied: Applied) -> dict[str, Any] | None:
        return applied.data  # it starts a run once the object is written, and changes nothing of it

    def apply(self, applied: Applied) -> dict[str, Any]:
        reference = self.config.synchronization
        other = Synchronization.objects.filter(reference=reference).first()
        if other is None:
            raise RuleFailed(f"no synchronization with reference {reference!r}")
        stored = object_of(applied.object_id) if applied.object_id else None
        if stored is None or other.source_schema_id != stored.schema_id:
            raise RuleFailed(
                f"synchronization {reference!r} reads {other.source_schema or 'no register schema'}, not the "
                f"schema of this object ({stored.schema.path if stored is not None else 'not in the register'})"
            )
        origin = [*applied.push_origin, applied.synchronization.pk]
        if other.pk in origin:
            return applied.data  # already in the chain that led here: it does not run again (no loop)
        applied.after_commit.append(lambda: dispatch.push_start(
            synchronization_id=other.pk, object_ids=[str(stored.pk)], push_origin=origin,
        ))
        return applied.data
