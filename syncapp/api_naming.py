"""The API's one naming style: camelCase field names, as the configuration bundles spell them.

Models keep their Python names; serializers built on `CamelCaseModelSerializer` answer and take the
camelCase name of every field (`source_config` is `sourceConfig`), and name it so in their errors.
"""
from __future__ import annotations

from typing import Any

from django.db.models import JSONField, Model, QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


def record_named(queryset: QuerySet, named: int | str) -> Model | None:
    """Return the record a request names: by id when it is a number, else by reference, else by an id
    spelt as text (a reference may be all digits, "2024": the reference wins)."""
    if isinstance(named, int):
        return queryset.filter(pk=named).first()
    found = queryset.filter(reference=named).first()
    # isascii: "²".isdigit() is true, and int() refuses it
    if found is None and named.isascii() and named.isdigit() and len(named) < 19:
        found = queryset.filter(pk=int(named)).first()
    return found


def camel_case(name: str) -> str:
    """Return a snake_case name in camelCase (`target_last_action` is `targetLastAction`)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_errors(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {camel_case(str(key)): value for key, value in detail.items()}
    return detail


class NotNullJSONField(serializers.JSONField):
    """A JSON field that refuses null unless it allows it, also when null comes as the text of a form."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if value is None and not self.allow_null:
            self.fail("null")
        return value


class CamelCaseModelSerializer(serializers.ModelSerializer):
    """A model serializer whose fields, and the errors naming them, are camelCase."""

    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping, JSONField: NotNullJSONField}

    def get_fields(self) -> dict[str, serializers.Field]:
        renamed: dict[str, serializers.Field] = {}
        for name, field in super().get_fields().items():
            camel = camel_case(name)
            if camel != name and field.source is None:
                field.source = name
            renamed[camel] = field
        return renamed

    def run_validation(self, data: Any = serializers.empty) -> Any:
        # Object-level validation (`validate`) names model fields; the caller knows them camelCase.
        try:
            return super().run_validation(data)
        except serializers.ValidationError as error:
            raise serializers.ValidationError(_camel_errors(error.detail)) from None


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class IdOrReferenceRelatedField(serializers.PrimaryKeyRelatedField):
    """A related record named by its numeric id or by its reference; answered by its id."""

    default_error_messages = {
        **serializers.PrimaryKeyRelatedField.default_error_messages,
        "does_not_exist": 'No record with id or reference "{pk_value}".',
        "incorrect_type": "Expected an id (a number) or a reference (text), got {data_type}.",
    }

    def to_internal_value(self, data: Any) -> Model:
        queryset: QuerySet = self.get_queryset()
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            self.fail("incorrect_type", data_type=type(data).__name__)
        found = record_named(queryset, data)
        if found is None:
            self.fail("does_not_exist", pk_value=str(data))
        return found
