"""`error` rules: the object fails with the configured code, name and message (OpenConnector's
processErrorRule answers them as an HTTP error; a synchronization records them as the object's failure)."""
from __future__ import annotations

from typing import Any

from syncapp.declared import Declared
from syncapp.rules.base import Applied, RuleFailed, RuleKind, rule_type


class ErrorRuleConfig(Declared):
    """configuration of an `error` rule: what the object fails with."""

    code: int = 500
    """The status code OpenConnector answers with (recorded with the message)."""
    name: str = ""
    """A short name of the error."""
    message: str = ""
    """What is wrong with the object."""


@rule_type("error", label="Error")
class ErrorRule(RuleKind):
    declaration = ErrorRuleConfig

    def apply(self, applied: Applied) -> dict[str, Any]:
        config: ErrorRuleConfig = self.config
        said = ": ".join(part for part in (config.name, config.message) if part)
        raise RuleFailed(f"error {config.code}{': ' + said if said else ''}")
