"""`save_object` rules: the object, mapped if a mapping is named, is saved as a new object of a register
schema, and the rule's result is the saved object (OpenConnector's processSaveObjectRule).

With `patch`, the object merges into the stored object whose id the object had before the mapping
(`_objectBeforeMapping.id`, after the write) or has (`id`), which must be in that schema.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from syncapp.declared import Declared, Flag
from syncapp.errors import InvalidObject
from syncapp.models import Object, Schema
from syncapp.rules.base import (
    Applied,
    Known,
    RuleFailed,
    RuleKind,
    mapping_apply,
    mapping_problems,
    object_of,
    rule_type,
    schema_problems,
)
from syncapp.targets.register import register_object_save


class SaveObjectRuleConfig(Declared):
    """configuration of a `save_object` rule."""

    register_reference: str = Field(alias="register")
    """The register, by reference."""
    schema_reference: str = Field(alias="schema")
    """The schema of that register, by reference, the object is saved in."""
    mapping: str | None = None
    """A mapping, by reference, applied to the object first."""
    patch: Flag = False
    """true: merge into the stored object with the object's id instead of saving a new one."""


@rule_type("save_object", label="Save object")
class SaveObjectRule(RuleKind):
    declaration = SaveObjectRuleConfig

    @staticmethod
    def config_problems(configuration: dict[str, Any], *, path: str, known: Known) -> list[str]:
        problems = mapping_problems(configuration.get("mapping"), path=f"{path}.mapping", known=known)
        register, schema = configuration.get("register"), configuration.get("schema")
        if isinstance(register, str) and isinstance(schema, str):
            problems += schema_problems(f"{register}/{schema}", path=f"{path}.schema", known=known)
        return problems

    def prepare(self, applied: Applied) -> dict[str, Any] | None:
        # As apply leaves it, but for the id of a new object, not known before it is saved.
        config: SaveObjectRuleConfig = self.config
        data = mapping_apply(config.mapping, data=dict(applied.data)) if config.mapping else dict(applied.data)
        data.pop("_objectBeforeMapping", None)
        if not config.patch:
            return data
        before = applied.data.get("_objectBeforeMapping")
        object_id = (before or {}).get("id") if isinstance(before, dict) else None
        existing = object_of(object_id or applied.data.get("id"))
        if existing is None:
            return None  # apply fails the object
        return {**(existing.data or {}), **data, "id": str(existing.pk)}

    def apply(self, applied: Applied) -> dict[str, Any]:
        config: SaveObjectRuleConfig = self.config
        data = dict(applied.data)
        before = data.get("_objectBeforeMapping")
        schema = Schema.objects.select_related("register").filter(
            register__reference=config.register_reference, reference=config.schema_reference,
        ).first()
        if schema is None:
            raise RuleFailed(f"no schema {config.register_reference}/{config.schema_reference}")
        if config.mapping:
            data = mapping_apply(config.mapping, data=data)  # it may read _objectBeforeMapping
        data.pop("_objectBeforeMapping", None)
        obj = Object(schema=schema, data=data)
        if config.patch:
            object_id = (before or {}).get("id") if isinstance(before, dict) else None
            existing = object_of(object_id or applied.data.get("id"))
            if existing is None or existing.schema_id != schema.pk:
                raise RuleFailed(f"patch: no object {object_id or applied.data.get('id')!r} in {schema.path}")
            existing.data = {**(existing.data or {}), **data}
            obj = existing
        try:
            register_object_save(obj=obj)
        except InvalidObject as error:
            raise RuleFailed(str(error)) from None
        return {**obj.data, "id": str(obj.pk)}
