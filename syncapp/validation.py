"""Validation shared by the admin forms, the API serializers and import: problems per model field."""
from __future__ import annotations

from typing import Any

from syncapp.mapping import validate_mapping_config
from syncapp.models import Mapping

MAPPING_FIELDS = {"mapping": "mapping", "unset": "unset", "cast": "cast", "passThrough": "pass_through"}


def mapping_problems_by_field(*, config: dict[str, Any], reference: str | None) -> dict[str, list[str]]:
    """Return a mapping configuration's problems keyed by the model field each belongs to."""
    known = set(Mapping.objects.values_list("reference", flat=True)) | ({reference} if reference else set())
    errors: dict[str, list[str]] = {}
    for problem in validate_mapping_config(config, known_references=known):
        prefix = problem.split(".", 1)[0].split(":", 1)[0].split("[", 1)[0]
        errors.setdefault(MAPPING_FIELDS.get(prefix, "mapping"), []).append(problem)
    return errors
