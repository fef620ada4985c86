"""`mapping` rules: the object is reshaped by a stored mapping (OpenConnector's processMappingRule)."""
from __future__ import annotations

from typing import Any

from syncapp.declared import Declared
from syncapp.rules.base import Applied, Known, RuleKind, mapping_apply, mapping_problems, rule_type


class MappingRuleConfig(Declared):
    """configuration of a `mapping` rule."""

    mapping: str
    """The mapping, by reference, applied to the object."""


@rule_type("mapping", label="Mapping")
class MappingRule(RuleKind):
    declaration = MappingRuleConfig
    foreseeable = True

    @staticmethod
    def config_problems(configuration: dict[str, Any], *, path: str, known: Known) -> list[str]:
        return mapping_problems(configuration.get("mapping"), path=f"{path}.mapping", known=known)

    def apply(self, applied: Applied) -> dict[str, Any]:
        return mapping_apply(self.config.mapping, data=applied.data)
