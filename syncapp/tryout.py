"""Try a mapping or conditions on a sample before using them: the result, or the error and where."""
from __future__ import annotations

from typing import Any

from syncapp.conditions import ConditionError, evaluate_rule, is_truthy, validate_conditions
from syncapp.mapping import MappingError, MappingSpec, apply_mapping, validate_mapping_config
from syncapp.mappings import resolve_mapping
from syncapp.models import Mapping


def mapping_config_of(mapping: Mapping) -> dict[str, Any]:
    """Return a Mapping record in the configuration format."""
    return {
        "mapping": mapping.mapping,
        "unset": mapping.unset,
        "cast": mapping.cast,
        "passThrough": mapping.pass_through,
        "language": mapping.language,
    }


def mapping_try(*, config: dict[str, Any], sample: Any) -> dict[str, Any]:
    """Apply a mapping configuration to a sample input; return the result or the errors."""
    known = set(Mapping.objects.values_list("reference", flat=True))
    problems = validate_mapping_config(config, known_references=known)
    if problems:
        return {"ok": False, "errors": problems}
    if not isinstance(sample, dict):
        return {"ok": False, "errors": ["data: a mapping takes a JSON object"]}
    try:
        result = apply_mapping(spec=MappingSpec.from_config(config), data=sample, resolve_mapping=resolve_mapping)
    except MappingError as error:
        return {"ok": False, "errors": [str(error)], "key": error.key}
    return {"ok": True, "result": result}


def conditions_try(*, conditions: Any, sample: Any) -> dict[str, Any]:
    """Evaluate conditions on a sample object; say whether it passes, or what is wrong."""
    problems = validate_conditions(conditions or {})
    if problems:
        return {"ok": False, "errors": problems}
    if conditions in (None, {}, []):
        return {"ok": True, "passes": True, "result": None}
    try:
        result = evaluate_rule(rule=conditions, data=sample)
    except ConditionError as error:
        return {"ok": False, "errors": [str(error)]}
    return {"ok": True, "passes": is_truthy(result), "result": result}
