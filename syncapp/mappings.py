"""Stored mappings as the mapping language applies them: a Mapping record made a MappingSpec, and one
named by its reference (for mappings that map list elements with another)."""
from __future__ import annotations

from collections.abc import Callable

from syncapp.mapping import MappingError, MappingSpec
from syncapp.models import Mapping


def mapping_spec(mapping: Mapping) -> MappingSpec:
    """Return the mapping language's view of a Mapping record."""
    return MappingSpec(
        mapping=dict(mapping.mapping or {}),
        unset=list(mapping.unset or []),
        cast=dict(mapping.cast or {}),
        pass_through=mapping.pass_through,
        language=mapping.language,
    )


def resolve_mapping(reference: str) -> MappingSpec:
    """Return the mapping with this reference, for mappings that map list elements with another."""
    mapping = Mapping.objects.filter(reference=reference).first()
    if mapping is None:
        raise MappingError(key=None, message=f"unknown mapping {reference!r}")
    return mapping_spec(mapping)


def mapping_resolver() -> Callable[[str], MappingSpec]:
    """Return resolve_mapping reading each mapping once: a run's objects then cost no query per map_each or
    executeMapping call (one per element, for a mapping nested in another). A run maps with the mappings
    as it found them: one changed during the run reaches the objects of the next run, as the run's own does."""
    found: dict[str, MappingSpec] = {}

    def resolve(reference: str) -> MappingSpec:
        spec = found.get(reference)
        if spec is None:
            spec = found[reference] = resolve_mapping(reference)  # an unknown one raises, every time
        return spec

    return resolve
