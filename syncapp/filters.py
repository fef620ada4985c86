"""Filters of the API's lists (django-filter): documented in the OpenAPI description and validated.

A value a filter cannot take is refused with 400 naming the filter; a query parameter no filter of
the list knows is refused naming the ones it knows: a misspelt filter that silently returned
everything (or nothing) would mislead.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError

from syncapp import kinds
from syncapp.api_naming import record_named
from syncapp.models import Object, Rule, Schema, Source, StoredFile, Synchronization

# Query parameters every list takes besides its filters.
PAGING_PARAMETERS = ("limit", "offset", "format")


class SynchronizationFilter(django_filters.CharFilter):
    """A synchronization named by its numeric id or its reference."""

    def __init__(self, *, field_name: str = "synchronization", **kwargs: Any):
        kwargs.setdefault("help_text", "The synchronization's numeric id or its reference.")
        super().__init__(field_name=field_name, **kwargs)

    def filter(self, qs: QuerySet, value: str) -> QuerySet:
        if value in ("", None):
            return qs
        named = record_named(Synchronization.objects.all(), value)
        return qs.none() if named is None else qs.filter(**{f"{self.field_name}_id": named.pk})


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(django_filters.NumberFilter):
    """A record named by its numeric id."""

    field_class = forms.IntegerField


class _TrueOrFalseField(forms.NullBooleanField):
    # The select widget of NullBooleanField reads any other text as "unknown": take the text as given.
    widget = forms.TextInput

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if value in (True, "true", "True", "1"):
            return True
        if value in (False, "false", "False", "0"):
            return False
        raise forms.ValidationError(f"must be true or false, got {str(value)[:50]!r}")


class TrueOrFalseFilter(django_filters.BooleanFilter):
    """true or false; anything else is refused rather than ignored."""

    field_class = _TrueOrFalseField


class _InstantField(IsoDateTimeField):
    def to_python(self, value: Any) -> datetime | None:
        moment = super().to_python(value)
        if moment is None:
            return None
        # In UTC: PostgreSQL takes offsets up to 15:59 only, ISO 8601 allows more.
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(f"{str(value)[:50]!r} is out of range") from None


class InstantFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date and time, any offset."""

    field_class = _InstantField


def after(field_name: str, what: str) -> django_filters.IsoDateTimeFilter:
    return InstantFilter(
        field_name=field_name, lookup_expr="gte", help_text=f"Only those {what} at or after this ISO 8601 time."
    )


def before(field_name: str, what: str) -> django_filters.IsoDateTimeFilter:
    return InstantFilter(
        field_name=field_name, lookup_expr="lt", help_text=f"Only those {what} before this ISO 8601 time."
    )


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend that also refuses the query parameters a list does not take."""

    def filter_queryset(self, request: Any, queryset: QuerySet, view: Any) -> QuerySet:
        if getattr(view, "action", None) == "list":
            filterset_class = self.get_filterset_class(view, queryset)
            names = list(filterset_class.base_filters) if filterset_class else []
            unknown = sorted(set(request.query_params) - set(names) - set(PAGING_PARAMETERS))
            if unknown:
                takes = ", ".join([*names, *PAGING_PARAMETERS[:2]])
                raise ValidationError({name: [f"unknown filter; this list takes {takes}"] for name in unknown})
        return super().filter_queryset(request, queryset, view)


class SourceFilterSet(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(choices=kinds.source_record_choices)
    isEnabled = TrueOrFalseFilter(field_name="is_enabled")

    class Meta:
        model = Source
        fields: list[str] = []


class SchemaFilterSet(django_filters.FilterSet):
    register = IdFilter(field_name="register_id", help_text="The register's id.")

    class Meta:
        model = Schema
        fields: list[str] = []


class ObjectFilterSet(django_filters.FilterSet):
    schema = IdFilter(field_name="schema_id", help_text="The schema's id.")

    class Meta:
        model = Object
        fields: list[str] = []


class StoredFileFilterSet(django_filters.FilterSet):
    object = django_filters.UUIDFilter(field_name="object_id", help_text="The register object's uuid.")
    rule = IdFilter(field_name="rule_id", help_text="The id of the rule that stored it.")

    class Meta:
        model = StoredFile
        fields: list[str] = []


class RuleFilterSet(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(field_name="type", choices=kinds.rule_choices)
    timing = django_filters.ChoiceFilter(field_name="timing", choices=Rule.Timing.choices)

    class Meta:
        model = Rule
        fields: list[str] = []


class SynchronizationFilterSet(django_filters.FilterSet):
    source = IdFilter(field_name="source_id", help_text="The source's id.")
    sourceType = django_filters.ChoiceFilter(
        field_name="source_type", choices=kinds.reader_choices
    )
    targetType = django_filters.ChoiceFilter(
        field_name="target_type", choices=kinds.writer_choices
    )
    isEnabled = TrueOrFalseFilter(field_name="is_enabled")

    class Meta:
        model = Synchronization
        fields: list[str] = []
