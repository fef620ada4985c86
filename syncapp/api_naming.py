"""The API's one naming style: camelCase field names, as the configuration bundles spell them.

Models keep their Python names; serializers built on `CamelCaseModelSerializer` answer and take the
camelCase name of every field (`source_config` is `sourceConfig`), and name it so in their errors.
A request body takes the names the API documents and nothing else: every serializer of a body
(`CamelCaseModelSerializer`, `BodySerializer`) refuses a name it has no field for, with the name
meant when it can tell (`source_config`: use `sourceConfig`; `endpiont`: did you mean `endpoint`?),
rather than drop it and store a configuration without what the caller thought it sent.
"""
from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any, ClassVar

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


def _squashed(name: str) -> str:
    # The same name in another spelling: snake_case, kebab-case or another case (`source_config`, `SourceConfig`).
    return name.replace("_", "").replace("-", "").casefold()


def unknown_field_problem(*, name: str, known: Collection[str], writable: Collection[str]) -> str:
    """Return why `name` is refused in a body whose fields are `known`, with the field meant when it can tell.

    `writable` are the fields a body can set; the others the API only answers."""
    spellings = {_squashed(field): field for field in known}
    meant = spellings.get(_squashed(name))
    if meant is not None and meant in writable:
        return f"unknown field, use `{meant}`"
    if meant is not None:
        return f"unknown field; the API answers `{meant}`, a body cannot set it"
    folded = {field.casefold(): field for field in writable}
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1)
    if close:
        return f"unknown field, did you mean `{folded[close[0]]}`?"
    if not writable:
        return "unknown field; this takes no fields"
    return "unknown field; this takes " + ", ".join(f"`{field}`" for field in writable)


def unknown_field_problems(
    *, sent: Iterable[str], known: Collection[str], writable: Collection[str], hints: Mapping[str, str],
) -> dict[str, list[str]]:
    """Return each name of `sent` that is not `known` with why it is refused; `hints` say it for names the
    service knows elsewhere (a bundle's `sourceId`)."""
    return {
        name: [f"unknown field, {hints[name]}" if name in hints
               else unknown_field_problem(name=name, known=known, writable=writable)]
        for name in sent if name not in known
    }


# Names a browser's form adds beside the fields: Django's CSRF token (the browsable API's forms).
FORM_ONLY_NAMES = frozenset({"csrfmiddlewaretoken"})


class RefusesUnknownFields:
    """Refuse, in a body, every name no field of the serializer has, beside the problems of its fields.

    A name of a read-only field (`id`, `createdAt`) is not refused, only ignored as DRF does: the API
    answers it, so a body got from the API, changed and sent back (GET, modify, PUT) goes through.
    """

    # Other names a body may use for a field: {"input": "data"} (the field's former name).
    also_accepted: ClassVar[dict[str, str]] = {}
    # Why a name the service knows elsewhere is not one of the API: {"sourceId": "the API takes `source`"}.
    unknown_field_hints: ClassVar[dict[str, str]] = {}

    def unknown_field_problems(self, data: Any) -> dict[str, list[str]]:
        """Return the names of the body `data` that no field has, each with why it is refused."""
        if not isinstance(data, Mapping):
            return {}  # not an object: the serializer says so itself
        fields: dict[str, serializers.Field] = self.fields  # type: ignore[attr-defined]
        sent = (str(name) for name in data)
        if hasattr(data, "getlist"):  # a form or multipart body
            sent = (name for name in sent if name not in FORM_ONLY_NAMES)
        return unknown_field_problems(
            sent=sent, known=[*fields, *self.also_accepted],
            writable=[name for name, field in fields.items() if not field.read_only],
            hints=self.unknown_field_hints,
        )

    def run_validation(self, data: Any = serializers.empty) -> Any:
        unknown = self.unknown_field_problems(data)
        try:
            validated = super().run_validation(data)  # type: ignore[misc]
        except serializers.ValidationError as error:
            if unknown and isinstance(error.detail, dict):
                raise serializers.ValidationError({**unknown, **error.detail}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return validated


class BodySerializer(RefusesUnknownFields, serializers.Serializer):
    """A serializer of a request body that is not a record (an action's options, a sample to try)."""


class JSONBooleanField(serializers.BooleanField):
    """true or false, the JSON booleans; DRF's BooleanField would read "yes", "on" or 1 as true."""

    default_error_messages = {"invalid": "must be true or false (a JSON boolean), got {input}"}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=json.dumps(data, default=str)[:50])


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


class _CamelCaseFields(serializers.ModelSerializer):

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


class CamelCaseModelSerializer(RefusesUnknownFields, _CamelCaseFields):
    """A model serializer whose fields, and the errors naming them, are camelCase; a body with a name no field
    has is refused naming it (and not renamed: `source_config` is refused as sent, with "use `sourceConfig`")."""


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
