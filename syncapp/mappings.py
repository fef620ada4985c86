"""Stored mappings as the mapping language applies them: a Mapping record made a MappingSpec, and one
named by its reference (for mappings that map list elements with another)."""
from __future__ import annotations

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
