"""`extend_input` rules: values of the object that name a register object (its UUID, or a URL ending in
one) are replaced by that object (OpenConnector's processExtendInputRule); with `fetchObject`, the
object is replaced by the stored object with its id, those properties extended."""
from __future__ import annotations

import copy
from typing import Any

from pydantic import field_validator

from syncapp.declared import Declared, DotPath, Flag
from syncapp.dotpath import MISSING, get_path, set_path
from syncapp.rules.base import Applied, RuleFailed, RuleKind, object_of, rule_type


class ExtendInputRuleConfig(Declared):
    """configuration of an `extend_input` rule."""

    properties: list[DotPath] | str
    """Dot paths of the values to extend (a list, or OpenConnector's comma-separated text)."""
    fetch_object: Flag = False
    """true: the result is the stored object with the object's id (`@self.id`, `id` or `uuid`)."""

    @field_validator("properties")
    @classmethod
    def _listed(cls, value: list[str] | str) -> list[str] | str:
        return value if isinstance(value, list) else [part.strip() for part in value.split(",") if part.strip()]


def _as_data(obj) -> dict[str, Any]:
    return {**(obj.data or {}), "id": str(obj.pk)}


@rule_type("extend_input", label="Extend input")
class ExtendInputRule(RuleKind):
    declaration = ExtendInputRuleConfig
    foreseeable = True

    def apply(self, applied: Applied) -> dict[str, Any]:
        config: ExtendInputRuleConfig = self.config
        data = copy.deepcopy(applied.data)
        if config.fetch_object:
            self_id = get_path(data, "@self.id")
            object_id = next((value for value in (self_id, data.get("id"), data.get("uuid"))
                              if value not in (MISSING, None, "")), None)
            stored = object_of(object_id) if object_id is not None else None
            if stored is None:
                raise RuleFailed(f"fetchObject: no register object {object_id!r}")
            data = _as_data(stored)
        for path in config.properties:
            value = get_path(data, path)
            if value is MISSING or value in (None, "") or isinstance(value, dict | list | bool):
                continue
            found = object_of(value)
            if found is None:
                continue  # as OpenConnector: a value that names no object stays as it is
            try:
                set_path(data, path, _as_data(found))
            except ValueError as error:
                raise RuleFailed(f"properties {path!r}: {error}") from None
        return data
