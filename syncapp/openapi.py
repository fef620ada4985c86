"""The OpenAPI description says what each endpoint really answers, its refusals included.

Every operation can answer 401 (no credentials) and 403 (not staff, or without the permission);
one on a single record 404; one that takes a body or filters 400; a deletion 409 when other records
use the record. A synchronization in a path is its numeric id or its reference. Operations that
answer more (409) say so with `extend_schema`. A body is an object of the documented names only
(`additionalProperties: false`): any other name is refused with 400 naming it.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from syncapp.api_naming import RefusesUnknownFields
from syncapp.declared import Declared, json_schema_of
from syncapp.rules import rule_kinds
from syncapp.sources import reader_kinds, source_configuration_declaration, source_record_kinds
from syncapp.targets import writer_kinds

COMPONENTS = "#/components/schemas/{model}"


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong.")


# A refusal of a body or of filters: the names refused, each with its problems, or a `detail`.
VALIDATION_ERROR = OpenApiResponse(
    response={
        "type": "object",
        "additionalProperties": {},
        "description": (
            "Each refused field or query parameter with its problems, or `detail`. A name the body or the "
            "query may not have is refused under that name, with the name meant when it can tell: "
            '``{"source_config": ["unknown field, use `sourceConfig`"]}``.'
        ),
    },
    description="Refused: the body or a query parameter is invalid, or names what the operation does not take.",
)
NOT_AUTHENTICATED = OpenApiResponse(ErrorSerializer, description="No or invalid credentials.")
FORBIDDEN = OpenApiResponse(ErrorSerializer, description="Not staff, or without the permission for this.")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such record.")
CONFLICT = OpenApiResponse(ErrorSerializer, description="Refused in the current state; `detail` says why.")

IN_USE = OpenApiResponse(ErrorSerializer, description="Other records use this one; `detail` names them.")

ID_OR_REFERENCE = OpenApiParameter(
    "id", OpenApiTypes.STR, OpenApiParameter.PATH,
    description="The synchronization's numeric id or its reference.",
)


class SyncAutoSchema(AutoSchema):
    """drf-spectacular's schema with the refusals every operation can answer."""

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if getattr(self.view, "lookup_by_reference", False) and "{id}" in self.path:
            parameters.append(ID_OR_REFERENCE)
        return parameters

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        serializer = force_instance(serializer)
        schema = super()._map_basic_serializer(serializer, direction)
        if type(serializer).__doc__ is None:
            # drf-spectacular would describe it with the docstring of a base (CamelCaseModelSerializer's).
            schema.pop("description", None)
        if isinstance(serializer, RefusesUnknownFields):
            properties = schema.setdefault("properties", {})
            for alias, name in serializer.also_accepted.items():
                properties[alias] = {**properties[name], "deprecated": True,
                                     "description": f"The former name of `{name}`."}
            schema["additionalProperties"] = False
        return schema

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        errors = {"401": NOT_AUTHENTICATED, "403": FORBIDDEN}
        if "{" in self.path:
            errors["404"] = NOT_FOUND
        takes_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None
        filtered = self.method == "GET" and self._is_list_view() and bool(self.get_filter_backends())
        if takes_body or filtered:
            errors["400"] = VALIDATION_ERROR
        if self.method == "DELETE":
            errors["409"] = IN_USE
        for code, response in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses


# ---------------------------------------------------------------------------------------------
# The declared configurations, key by key


def _declarations() -> dict[str, list[tuple[str, type[Declared]]]]:
    """Return the declarations of each configuration field, by the kind each belongs to."""
    return {
        "sourceConfig": [(kind.kind, kind.declaration) for kind in reader_kinds()],
        "targetConfig": [(kind.kind, kind.declaration) for kind in writer_kinds()],
        "configuration": [(kind, source_configuration_declaration(kind)) for kind in source_record_kinds()],
        "ruleConfiguration": [(kind.kind, kind.declaration) for kind in rule_kinds()],
    }


def declared_field_schema(name: str, *, by: str) -> dict[str, Any]:
    """Return the OpenAPI schema of a configuration field: one of its kinds' declarations (`by`: the field
    whose value chooses)."""
    declarations = _declarations()[name]
    listing = ", ".join(f"{kind} → `{model.__name__}`" for kind, model in declarations)
    return {
        "type": "object",
        "anyOf": [{"$ref": COMPONENTS.format(model=model.__name__)} for _kind, model in dict(declarations).items()],
        "description": f"Its keys depend on `{by}`: {listing}.",
    }


def declarations_add(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Add every declared configuration, and its parts, to the description's components (a spectacular hook)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for declarations in _declarations().values():
        for _kind, model in declarations:
            schema = json_schema_of(model, ref_template=COMPONENTS)
            for part, part_schema in {**schema.pop("$defs", {}), model.__name__: schema}.items():
                if part in schemas and schemas[part] != part_schema:
                    raise ValueError(f"the OpenAPI component {part} is both a serializer and a declaration")
                schemas[part] = part_schema
    return result
