"""Declared configurations: each kind says its settings once, as a typed model, and everything else is derived.

A declaration is a pydantic model whose fields are the configuration's keys, camelCase as they are
written in bundles, the API and the admin. From it come the check of what is saved (unknown keys are
refused with their path and the closest known name), the JSON Schema served to the admin's editors and
put into the OpenAPI description, and the reference page `docs/configuration.md`.

A declaration checks the shape (which keys, which JSON types); what needs more than the value itself
(a mapping that must exist, a template that must parse, a database that must answer) is the kind's own
check, run beside it. Both speak of a key by its path; a key is blamed once (`problems_merged`).
"""
from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, WithJsonSchema
from pydantic.alias_generators import to_camel

from syncapp.errors import SyncError


class Declared(BaseModel):
    """A configuration's declaration: camelCase keys, unknown keys refused, JSON types as written."""

    model_config = ConfigDict(
        extra="forbid", strict=True, alias_generator=to_camel, validate_by_alias=True, validate_by_name=False,
        serialize_by_alias=True, use_attribute_docstrings=True, frozen=True,
    )

    @classmethod
    def read(cls, value: Any) -> Any:
        """Return the configuration as its typed model; raise DeclarationInvalid naming every problem."""
        try:
            return cls.model_validate(value if value is not None else {})
        except ValidationError as error:
            raise DeclarationInvalid(problems_of(cls, error, value=value, path="")) from None


class DeclarationInvalid(SyncError, ValueError):
    """A configuration does not fit its declaration; `problems` names each with its path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


# ---------------------------------------------------------------------------------------------
# Values that more than one declaration takes


def _flag(value: Any) -> Any:
    """Take true/false, and OpenConnector's "true"/"false" text, as a boolean."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if value is not True and value is not False:
        raise ValueError("must be true or false")
    return value


Flag = Annotated[bool, BeforeValidator(_flag), WithJsonSchema({"type": "boolean"})]
"""A yes or no: JSON true or false (OpenConnector's "true"/"false" text is read as such)."""

DotPath = Annotated[str, WithJsonSchema({"type": "string", "format": "dot-path"})]
"""A dot path into an object, e.g. data.items."""
Template = Annotated[str, WithJsonSchema({"type": "string", "format": "template"})]
"""Text, or a template rendered with the run's variables ({{ originId }})."""


# ---------------------------------------------------------------------------------------------
# Problems, worded with their paths


def problems_of(model: type[BaseModel], error: ValidationError, *, value: Any, path: str,
                echo: bool = True) -> list[str]:
    """Return the problems of a validation error, one per key, each "path: message".

    Union members pydantic tried appear in its locations; they are dropped, so a problem names the
    key as the document has it. `echo`: whether the offending value may be quoted (never for secrets).
    """
    by_path: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        keys = _data_location(value, item["loc"])
        where = _join(path, keys)
        if item["type"] == "extra_forbidden":
            message = unknown_key_message(key=str(keys[-1]) if keys else "", known=known_keys(model, keys[:-1]))
        else:
            message = _message(item, echo=echo)
        messages = by_path.setdefault(where, [])
        if message not in messages:
            messages.append(message)
    # A value that fits no member of a union is blamed on the member whose keys it has: an object given
    # where text or an object may stand is judged as the object, not refused as text.
    deeper = {where for where in by_path if any(_within_strictly(other, where) for other in by_path)}
    return [
        f"{where}: {' or '.join(messages)}" for where, messages in by_path.items()
        if where not in deeper or any("unknown key" in message for message in messages)
    ]


def _within_strictly(path: str, parent: str) -> bool:
    return path.startswith((parent + ".", parent + "["))


def unknown_key_message(*, key: str, known: list[str]) -> str:
    """Return how an unknown key is refused: with the closest known name, else the names known."""
    camel = to_camel(key) if "_" in key else key
    if camel != key and camel in known:
        return f"unknown key, did you mean `{camel}`? (keys are camelCase)"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if not close:
        lowered = {name.lower(): name for name in known}
        close = [lowered[key.lower()]] if key.lower() in lowered else []
    if close:
        return f"unknown key, did you mean `{close[0]}`?"
    return f"unknown key (known: {', '.join(known)})" if known else "unknown key"


def declaration_problems(model: type[Declared], value: Any, *, path: str, checks: list[str] = ()) -> list[str]:
    """Return the problems of a configuration: its declaration's (unknown keys, JSON types) and the kind's
    own `checks`, each with its path, a key blamed once."""
    if not isinstance(value, dict):
        return [f"{path}: must be an object"]
    try:
        model.read(value)
        shape: list[str] = []
    except DeclarationInvalid as error:
        shape = [
            f"{path}{problem.removeprefix('(root)')}" if problem.startswith("(root)") else f"{path}.{problem}"
            for problem in error.problems
        ]
    return problems_merged(shape, list(checks))


def problems_merged(shape: list[str], checks: list[str]) -> list[str]:
    """Return the kind's own problems and those of the shape that name a key the kind's checks do not.

    The kind's checks word a key's problem better (ranges, references); the shape's stand where they
    say nothing, and an unknown key is always said.
    """
    blamed = {problem.split(": ", 1)[0] for problem in checks}
    kept = [
        problem for problem in shape
        if "unknown key" in problem.split(": ", 1)[-1] or not any(
            _within(problem.split(": ", 1)[0], other) for other in blamed
        )
    ]
    return kept + [problem for problem in checks if problem not in kept]


def _within(path: str, other: str) -> bool:
    return path == other or path.startswith((other + ".", other + "[")) or other.startswith((path + ".", path + "["))


def _message(item: dict[str, Any], *, echo: bool) -> str:
    kind = item["type"]
    message = str(item["msg"])
    if kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
    else:
        message = {
            "bool_type": "must be true or false", "string_type": "must be text", "int_type": "must be a whole number",
            "float_type": "must be a number", "dict_type": "must be an object", "list_type": "must be a list",
            "model_type": "must be an object", "missing": "is required",
            "literal_error": "must be one of " + str(item.get("ctx", {}).get("expected", "")).replace("'", "").replace(
                " or ", ", "
            ),
        }.get(kind, message[:1].lower() + message[1:])
    if echo and kind not in ("missing",) and "input" in item and not kind.startswith("value_error"):
        shown = repr(item["input"])
        message += f", got {shown[:80] + '…' if len(shown) > 80 else shown}"
    return message


def _data_location(value: Any, loc: tuple[Any, ...]) -> list[Any]:
    """Return the parts of a pydantic location that are keys or indexes of the value (not union members)."""
    keys: list[Any] = []
    node = value
    for part in loc:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if (isinstance(node, dict) and part in node) or in_list:
            keys.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not _is_member_tag(part):
            keys.append(part)  # a missing key
            node = None
    return keys


def _is_member_tag(part: str) -> bool:
    # pydantic names a union member it tried: "bool", "str", "list[str]", "literal['a','b']", a model's name
    return bool(re.match(r"^(literal\[|list\[|dict\[|function-|json-or-python\[)", part)) or part in (
        "bool", "str", "int", "float", "dict", "list", "none",
    ) or part[:1].isupper()


def _join(path: str, keys: list[Any]) -> str:
    where = path
    for key in keys:
        where = f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))
    return where or "(root)"


def known_keys(model: type[BaseModel], keys: list[Any]) -> list[str]:
    """Return the keys the declaration takes at a location (its own when `keys` is empty)."""
    current: Any = model
    for key in keys:
        if isinstance(key, int):
            continue  # a list's item has its list's declaration
        field = _field_by_alias(current, key)
        if field is None:
            return []
        current = _model_in(field)
        if current is None:
            return []
    return [field.alias or name for name, field in current.model_fields.items()]


def _field_by_alias(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if (field.alias or name) == key:
            return field.annotation
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """Return the declaration inside a field's type (list[X], X | None, Annotated[X, …], dict[str, X])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if origin in (list, dict, typing.Union, types.UnionType, Literal) or origin is not None:
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    return None


# ---------------------------------------------------------------------------------------------
# Schemas


def json_schema_of(model: type[BaseModel], *, ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """Return the JSON Schema of a declaration, as the admin's editors and the OpenAPI description use it.

    A key left out and a key set to null mean the same here: the schema shows each key by its type,
    without pydantic's generated titles. `ref_template` places its parts (OpenAPI keeps them among its
    components).
    """
    return _plain(model.model_json_schema(by_alias=True, mode="validation", ref_template=ref_template))


def _plain(node: Any) -> Any:
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _plain(value) for key, value in node.items() if key != "title" or not isinstance(value, str)}
    if node.get("default", ...) is None:
        del node["default"]
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        node.pop("anyOf")
        node = {**rest[0], **node} if len(rest) == 1 else {**node, "anyOf": rest}
    return node
