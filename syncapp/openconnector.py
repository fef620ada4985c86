"""Read OpenConnector's configurations as configuration bundles.

OpenConnector (a Nextcloud app whose configuration names this service keeps) exports objects with
its own bookkeeping fields, PHP's `[]` for an empty object, booleans written as text, dotted keys,
references that are URLs or missing (a `slug` instead), and links to other objects by numeric
database id. `bundle_read` turns such an export into this service's bundle format, naming what it
does not import; a bundle already in that format comes back unchanged.

Accepted shapes: a bundle (`sources`, `registers`, `mappings`, `rules`, `synchronizations` lists);
OpenConnector's `components` document (what its ConfigurationService::importConfiguration() reads: those
sections, lists or objects keyed by slug); and one object with its `@type` (`source`, `mapping`, `rule`,
`synchronization`). Every object of a `components` document or with an `@type` is OpenConnector's.

What OpenConnector's objects are read as:

- PHP's `[]` is an empty object wherever the declarations (syncapp.documents, each kind's pydantic
  declaration) say an object stands, at any depth (sourceConfig.headers, targetConfig, a source's
  configuration, …); an object with keys 0, 1, … is the list it stands for where a list stands.
- A dotted key of a source's `configuration`, a `sourceConfig` or a `targetConfig` is placed where its
  path points, as OpenConnector's CallService::applyConfigDot() does before every call
  (`"headers.API-KEY": ""` is `{"headers": {"API-KEY": ""}}`, `"extraDataConfigs.0.staticEndpoint"` the
  first entry of `extraDataConfigs`, `"auth.0"`, `"auth.1"` the list `auth`); what is not an object on
  the way becomes one, later keys win.
- A link to another object (`"sourceId": "3"`, `"targetId": "1/2"`, `"sourceTargetMapping": "5"`,
  `"followUps": [4]`) is resolved, in this order: an object of the bundle whose reference, original
  reference (an URL), slug or uuid is that text; one whose `id` is that number; when the objects of that
  kind carry no ids, the one at that position (counting from 1, as OpenConnector's ids do on a fresh
  install); when the bundle holds one object of that kind, that one (an export's ids are those of the
  installation it came from); an existing object with that reference; an existing object with that
  primary key. A link resolved by position or as the only object is said in the notes. What cannot be
  resolved is left for validation to report with its path.
- A rule (the `rules` section, `@type: rule`) takes its type's settings from `configuration[type]` (the
  older `configuration.synchronization` id too), and what they name by id (`source`, `mapping`,
  `synchronization`) by reference; a synchronization's `actions` name rules as other links do.
"""
from __future__ import annotations

import base64
import copy
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel

from syncapp.authentication import CredentialsError, guzzle_auth_credentials, guzzle_auth_folded
from syncapp.declared import known_keys
from syncapp.documents import DOCUMENTS, document_keys, schema_keys
from syncapp.egress import PLACEHOLDER
from syncapp.models import Mapping, Register, Rule, Schema, Source, Synchronization
from syncapp.outbound.masking import is_secret_name
from syncapp.rules import rule_configuration_declaration
from syncapp.sources import reader_kind, source_configuration_declaration
from syncapp.targets import writer_kind

SECTIONS = ("sources", "registers", "mappings", "rules", "synchronizations")
_TYPES = {
    "source": "sources", "mapping": "mappings", "synchronization": "synchronizations", "register": "registers",
    "rule": "rules",
}
_REFERENCE = re.compile(r"^[-a-zA-Z0-9_]+$")
# Fields only OpenConnector writes: an item with one of them is an export, whose reference may need
# deriving and whose empty objects may be written as [].
_EXPORT_FIELDS = frozenset({
    "@type", "@id", "@context", "id", "uuid", "slug", "version", "created", "updated", "dateCreated",
    "dateModified", "configurations",
})
# What an export records about itself and its runs, not how to synchronize: dropped without a report.
_BOOKKEEPING = frozenset({
    "currentPage", "sourceHash", "targetHash", "sourceLastChanged", "sourceLastChecked", "sourceLastSynced",
    "targetLastChanged", "targetLastSynced", "targetLastChecked", "status", "objectCount", "lastCall", "lastSync",
    "logRetention", "errorRetention", "test", "rateLimitLimit", "rateLimitRemaining", "rateLimitReset",
    "rateLimitWindow", "dateCreated", "dateModified", "created", "updated",
})
_SOURCE_AUTH_FIELDS = ("auth", "apikey", "authorizationHeader", "username", "password", "secret", "jwt", "jwtId")
# Without one of these OpenConnector's OAuth form is left empty: no credentials.
_OAUTH_FILLED = ("tokenUrl", "clientId", "clientSecret", "grant_type")
_OAUTH_KEYS = {
    "tokenUrl": "tokenUrl", "client_id": "clientId", "client_secret": "clientSecret", "scope": "scope",
    "audience": "audience", "authentication": "clientAuthentication", "grant_type": "grant_type",
    "tokenLocation": "tokenPath",
}


@dataclass
class Reading:
    """An OpenConnector document read as a bundle of this service, and what was not imported of it."""

    bundle: Any
    # The paths of settings this service does not do: not imported.
    ignored: list[str] = field(default_factory=list)
    # What became of each secret header or query parameter of a configuration: moved into credentials, or not.
    moved: list[str] = field(default_factory=list)
    # "path: what": links resolved by position, bookkeeping and empty keys left out, placeholders.
    notes: list[str] = field(default_factory=list)
    # "path: why" of whole objects and entries not imported (rules, a synchronization's actions).
    not_imported: list[str] = field(default_factory=list)


def _is_export(item: dict[str, Any]) -> bool:
    return any(key in item for key in _EXPORT_FIELDS)


def _slugify(text: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:120]


def _numeric(value: Any) -> int | None:
    """Return the number a link holds when it is an OpenConnector id, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _object(value: Any) -> Any:
    """Return PHP's empty array as the empty object it stands for."""
    return {} if value == [] else value


def _sections(bundle: dict[str, Any], reading: Reading) -> tuple[dict[str, Any], bool]:
    """Return the bundle's sections, taken from `components` or an `@type` when it is written so, and whether
    they are OpenConnector's objects; what a `components` document holds that this service has no counterpart
    for is named in `reading.not_imported`."""
    if isinstance(bundle.get("@type"), str) and bundle["@type"].lower() in _TYPES:
        return {_TYPES[bundle["@type"].lower()]: [bundle]}, True
    components = bundle.get("components")
    if isinstance(components, dict) and not any(section in bundle for section in SECTIONS):
        sections: dict[str, Any] = {}
        for section, value in components.items():
            if section not in (*SECTIONS, "rules"):
                if not _empty(value):
                    reading.not_imported.append(f"components.{section}: not imported: this service has no {section}")
                continue
            if isinstance(value, dict):
                value = [
                    {"reference": key, **item} if isinstance(item, dict) and "reference" not in item else item
                    for key, item in value.items()
                ]
            if value is not None:
                sections[section] = value
        described = sorted(key for key in bundle if key != "components")
        if described:
            reading.notes.append(f"{', '.join(described)}: the document's description of itself, not imported")
        return sections, True
    return bundle, False


def config_dot_applied(config: dict[str, Any]) -> dict[str, Any]:
    """Return an OpenConnector configuration with each dotted key placed where its path points, as its
    CallService::applyConfigDot() does (adbar/dot's set, in the order of the keys): `"headers.X": v` is
    `{"headers": {"X": v}}`; what is not an object on the way becomes one; keys 0, 1, … make a list."""
    dotted = [key for key in config if isinstance(key, str) and "." in key]
    if not dotted:
        return config
    placed: Any = dict(config)
    for key in dotted:
        placed = _dot_placed(placed, key.split("."), config[key])
    for key in dotted:
        placed.pop(key, None)
    return {key: _php_lists(value) for key, value in placed.items()}  # a configuration stays an object


def _dot_placed(node: Any, parts: list[str], value: Any) -> Any:
    """Return `node` with `value` set at the path `parts`, as adbar/dot's set() does on a PHP array."""
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):
        index = _numeric(head)
        if index is not None and str(index) == head and index <= len(node):
            node = list(node)
            if index == len(node):
                node.append(None)
            node[index] = _dot_placed(_container_or_new(node[index], rest), rest, value)
            return node
        node = {str(position): item for position, item in enumerate(node)}  # PHP: a list is a keyed array
    node = dict(node) if isinstance(node, dict) else {}
    node[head] = _dot_placed(_container_or_new(node.get(head), rest), rest, value)
    return node


def _container_or_new(value: Any, rest: list[str]) -> Any:
    # adbar/dot: on the way to the key, what is not an array is replaced by an empty one.
    return value if not rest or isinstance(value, dict | list) else {}


def _php_lists(value: Any) -> Any:
    """Return a value whose objects keyed 0, 1, … n-1 in that order are lists, as PHP's arrays encode."""
    if isinstance(value, list):
        return [_php_lists(item) for item in value]
    if not isinstance(value, dict):
        return value
    value = {key: _php_lists(item) for key, item in value.items()}
    if value and list(value) == [str(index) for index in range(len(value))]:
        return list(value.values())
    return value


def php_arrays_read(value: Any, annotation: Any) -> Any:
    """Return an OpenConnector value as its declaration reads it, at any depth: PHP's `[]` as an empty object
    where an object stands (and no list may), an object keyed 0, 1, … as the list it stands for where a list
    stands (and no object may: PHP iterates such an array in the order of its keys)."""
    shapes = _shapes(annotation)
    models = [shape for shape in shapes if isinstance(shape, type)]
    objects = [shape[1] for shape in shapes if isinstance(shape, tuple) and shape[0] == "object"]
    lists = [shape[1] for shape in shapes if isinstance(shape, tuple) and shape[0] == "list"]
    if value == [] and (models or objects) and not lists:
        return {}
    numbered = isinstance(value, dict) and value and all(_numeric(key) is not None for key in value)
    if numbered and lists and not (models or objects):
        value = list(value.values())
    if isinstance(value, dict) and models:
        fields = {(info.alias or name): info.annotation for name, info in models[0].model_fields.items()}
        return {key: php_arrays_read(item, fields[key]) if key in fields else item for key, item in value.items()}
    if isinstance(value, dict) and objects:
        return {key: php_arrays_read(item, objects[0]) for key, item in value.items()}
    if isinstance(value, list) and lists:
        return [php_arrays_read(item, lists[0]) for item in value]
    return value


def _shapes(annotation: Any) -> list[Any]:
    """Return what a declared type may be that PHP's arrays stand for: declarations (models), ("object", type of
    its values) and ("list", type of its items); nothing for text, numbers and free JSON."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is Annotated:
        return _shapes(arguments[0])
    if origin in (typing.Union, types.UnionType):
        return [shape for argument in arguments for shape in _shapes(argument)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if origin is dict or annotation is dict:
        return [("object", arguments[1] if len(arguments) == 2 else Any)]
    if origin is list or annotation is list:
        return [("list", arguments[0] if arguments else Any)]
    return []


def _reference_of(item: dict[str, Any], *, section: str, index: int) -> str:
    reference = item.get("reference")
    if isinstance(reference, str) and _REFERENCE.match(reference):
        return reference
    for candidate in (item.get("slug"), item.get("name")):
        if isinstance(candidate, str) and _slugify(candidate):
            return _slugify(candidate)
    return f"{section.rstrip('s')}-{index + 1}"


def _source_credentials(item: dict[str, Any], configuration: dict[str, Any]) -> dict[str, Any] | None:
    """Return credentials from OpenConnector's source fields and `authentication` configuration."""
    oauth = {
        _OAUTH_KEYS[key.split(".", 1)[1]]: value
        for key, value in configuration.items()
        if key.startswith("authentication.") and key.split(".", 1)[1] in _OAUTH_KEYS and not _empty(value)
    }
    nested = configuration.get("authentication")
    if isinstance(nested, dict):
        oauth.update({_OAUTH_KEYS[key]: value for key, value in nested.items() if key in _OAUTH_KEYS
                      and not _empty(value)})
    if not any(oauth.get(key) for key in _OAUTH_FILLED):
        oauth = {}  # OpenConnector's form left empty (`"authentication": "body"` alone is its default)
    auth = str(item.get("auth") or "").strip().lower()
    if oauth:
        return {"type": "oauth2", **oauth}
    if auth in ("apikey", "api-key", "api_key") and item.get("apikey"):
        return {
            "type": "apiKey", "in": "header", "name": item.get("authorizationHeader") or "Authorization",
            "value": item["apikey"],
        }
    if auth in ("basic", "username-password") or (not auth and item.get("username") and item.get("password")):
        return {"type": "basic", "username": item.get("username") or "", "password": item.get("password") or ""}
    if auth in ("", "none"):
        return None
    # jwt and other schemes this service does not speak: validation names the type.
    return {"type": auth}


def _source(item: dict[str, Any], *, path: str, reading: Reading) -> dict[str, Any]:
    kind = item.get("type") or "api"
    configuration = _object(item.get("configuration")) or {}
    if isinstance(configuration, dict):
        configuration = config_dot_applied(dict(configuration))
        declaration = source_configuration_declaration(kind) if isinstance(kind, str) else None
        if declaration is not None:
            configuration = php_arrays_read(configuration, declaration)
        credentials = _source_credentials(item, configuration)
        if credentials is not None and not item.get("credentials"):
            item["credentials"] = credentials
        for key in [key for key in configuration if key == "authentication" or key.startswith("authentication.")]:
            # Secrets: what they hold is in the credentials now, or they were left empty.
            value = configuration.pop(key)
            if credentials is None or credentials.get("type") != "oauth2":
                if not _empty(value):
                    reading.notes.append(f"{path}.configuration.{key}: OAuth settings not filled in (no tokenUrl, "
                                         "client or grant), not imported: the source gets no credentials")
            else:
                reading.moved.append(f"{path}.configuration.{key}: moved into {path}.credentials (oauth2)")
        headers = _object(item.get("headers"))
        if isinstance(headers, dict) and headers and "headers" not in configuration:
            configuration["headers"] = headers
        elif not _empty(headers):
            reading.ignored.append(f"{path}.headers")  # OpenConnector's calls send configuration.headers only
        _placeholders_noted(configuration, path=f"{path}.configuration", reading=reading)
        _guzzle_auth_moved(item, configuration, path=path, reading=reading)
        _secrets_moved(item, configuration, path=path, reading=reading)
    item["configuration"] = configuration
    for key in _SOURCE_AUTH_FIELDS:
        value = item.get(key)
        if _empty(value):
            continue  # left for the trimming, which names it among the empty keys
        del item[key]
        if key == "auth" and str(value).strip().lower() == "none":
            continue  # read: no credentials
        if item.get("credentials") and key in ("auth", "apikey", "authorizationHeader", "username", "password"):
            continue  # read into the credentials above
        reading.ignored.append(f"{path}.{key}")
    item.pop("headers", None)
    if item.get("isEnabled") is None:
        item.pop("isEnabled", None)
    return item


def _placeholders_noted(config: dict[str, Any], *, path: str, reading: Reading) -> None:
    """Note each header and query parameter whose value is a placeholder (`{token}`): sent as written, as
    OpenConnector sends it, until it is filled in."""
    for part in ("headers", "query"):
        entries = config.get(part)
        for name, value in entries.items() if isinstance(entries, dict) else ():
            if isinstance(value, str) and PLACEHOLDER.search(value):
                reading.notes.append(f"{path}.{part}.{name}: {PLACEHOLDER.search(value).group(0)} is a placeholder, "
                                     "sent as written until it is filled in")


def _guzzle_auth_moved(item: dict[str, Any], configuration: dict[str, Any], *, path: str, reading: Reading) -> None:
    """Move Guzzle's `auth` option of an exported source's configuration (`[username, password]`, or its flat
    `auth.0`, `auth.1` keys), which OpenConnector sends with every call, into its credentials as basic
    authentication. One this service does not speak (digest) stays, for validation to refuse with its reason;
    one of another shape (a lone `auth.0`) is named as ignored."""
    folded = dict(guzzle_auth_folded(configuration))
    if "auth" not in folded:
        return
    try:
        credentials = guzzle_auth_credentials(folded["auth"], path=f"{path}.configuration.auth")
    except CredentialsError:
        if isinstance(folded["auth"], list) and len(folded["auth"]) == 3:
            configuration.clear()  # digest, ntlm: validation refuses the source naming the scheme
            configuration.update(folded)
            return
        # Not Guzzle's shape (a lone `auth.0`): Guzzle would send half a password; named as ignored.
        for key in [key for key in configuration if key == "auth" or key not in folded]:
            del configuration[key]
        reading.ignored.append(f"{path}.configuration.auth")
        return
    for key in [key for key in configuration if key == "auth" or key not in folded]:
        del configuration[key]
    if credentials is None:
        return
    if item.get("credentials"):
        reading.moved.append(f"{path}.configuration.auth: not imported, {path}.credentials already hold a "
                             "secret; put this one there instead if the source needs it")
        return
    item["credentials"] = credentials
    reading.moved.append(f"{path}.configuration.auth: moved into {path}.credentials (basic), sent only to the "
                         "source's own origin")


def _secret_entries(config: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """Return the secret headers and query parameters of a configuration: (path in it, header or query, name,
    value), written as `headers.X` keys or as entries of `headers` and `query`."""
    found = []
    for key, value in config.items():
        part, dot, name = key.partition(".") if isinstance(key, str) else ("", "", "")
        if dot and part in ("headers", "query") and name and is_secret_name(name) and not _empty(value):
            found.append((key, "header" if part == "headers" else "query", name, value))
    for part in ("headers", "query"):
        entries = _object(config.get(part))
        if isinstance(entries, dict):
            found += [(f"{part}.{name}", "header" if part == "headers" else "query", name, value)
                      for name, value in entries.items() if is_secret_name(name) and not _empty(value)]
    return found


def _secret_removed(config: dict[str, Any], where: str) -> None:
    """Remove a `headers.X` key, or the X entry of `headers`, from a configuration."""
    if where in config:
        del config[where]
        return
    part, _, name = where.partition(".")
    entries = dict(_object(config.get(part)) or {})
    entries.pop(name, None)
    config[part] = entries


def _credentials_of_secret(location: str, name: str, value: Any) -> dict[str, Any]:
    """Return the credentials a secret header or query parameter stands for."""
    text = str(value)
    scheme, _, rest = text.partition(" ")
    if location == "header" and name.lower() == "authorization" and scheme.lower() == "bearer" and rest.strip():
        return {"type": "bearer", "token": rest.strip()}
    if location == "header" and name.lower() == "authorization" and scheme.lower() == "basic" and rest.strip():
        try:
            username, colon, password = base64.b64decode(rest.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            colon = ""
        if colon:
            return {"type": "basic", "username": username, "password": password}
    return {"type": "apiKey", "in": location, "name": name, "value": text}


def _secrets_moved(item: dict[str, Any], configuration: dict[str, Any], *, path: str, reading: Reading) -> None:
    """Move a secret header or query parameter of an exported source into its credentials, where it is
    write-only, encrypted and sent only to the source's origin; this service refuses it in a configuration.

    Credentials hold one secret: one the export already sets in them, or a second one here, is not
    imported and the report says so. A template (`{{ oauthToken(source) }}`) is OpenConnector's own call.
    """
    for where, location, name, value in _secret_entries(configuration):
        _secret_removed(configuration, where)
        if "{{" in str(value) or "{%" in str(value):
            if where.lower() != "headers.authorization":
                reading.ignored.append(f"{path}.configuration.{where}")
            elif (item.get("credentials") or {}).get("type") == "oauth2":
                reading.notes.append(f"{path}.configuration.{where}: OpenConnector's token call, not imported: "
                                     f"{path}.credentials (oauth2) send the token")
            else:
                reading.notes.append(f"{path}.configuration.{where}: OpenConnector's token call, not imported: "
                                     "the source has no oauth2 credentials to send a token with (set them)")
        elif not item.get("credentials"):
            item["credentials"] = _credentials_of_secret(location, name, value)
            reading.moved.append(f"{path}.configuration.{where}: moved into {path}.credentials "
                                 f"({item['credentials']['type']}), sent only to the source's own origin")
        else:
            reading.moved.append(f"{path}.configuration.{where}: not imported, {path}.credentials already hold a "
                                 f"secret; put this one there instead if the source needs it")


def _config_secrets_dropped(config: Any, *, path: str, source: Any, moved: list[str]) -> None:
    """Drop the secret headers and query parameters of an exported synchronization's sourceConfig: a secret
    belongs in its source's credentials, which this service refuses to guess from a synchronization."""
    if not isinstance(config, dict):
        return
    for where, _location, _name, value in _secret_entries(config):
        _secret_removed(config, where)
        if "{{" not in str(value) and "{%" not in str(value):
            moved.append(f"{path}.{where}: not imported, a secret goes in the credentials of source {source!r}")


def _mapping(item: dict[str, Any]) -> dict[str, Any]:
    for key in ("mapping", "cast"):
        if key in item:
            item[key] = _object(item[key]) if item[key] is not None else {}
    if item.get("unset") is None:
        item.pop("unset", None)
    if item.get("passThrough") is None:
        item.pop("passThrough", None)
    return item


def _schemas_of(register: dict[str, Any]) -> list[Any]:
    """Return a register's schemas when they are a list; anything else is left for validation to refuse."""
    schemas = register.get("schemas")
    return schemas if isinstance(schemas, list) else []


_KIND_OF = {"sources": "source", "mappings": "mapping", "synchronizations": "synchronization",
            "registers": "register", "schemas": "schema", "rules": "rule"}


class _Resolver:
    """Turn OpenConnector's links (ids, uuids, slugs, references) into references of the bundle or the database."""

    def __init__(self, sections: dict[str, list[dict[str, Any]]], *, names: dict[int, set[str]], notes: list[str]):
        self.sections = sections
        self.names = names  # each object's other names (original reference, slug, uuid, @id), by id()
        self.notes = notes
        self.schemas = [
            (register, schema)
            for register in sections.get("registers", [])
            for schema in _schemas_of(register)
            if isinstance(schema, dict)
        ]

    def _in_items(self, items: list[dict[str, Any]], value: Any) -> tuple[dict[str, Any] | None, str]:
        """Return the item a link names and how: "" by a name or an id, else the rule that picked it."""
        text = str(value)
        for item in items:
            if item.get("reference") == text or text in self.names.get(id(item), ()):
                return item, ""
        number = _numeric(value)
        if number is None:
            return None, ""
        for item in items:
            if _numeric(item.get("id")) == number:
                return item, ""
        if not any("id" in item for item in items) and 1 <= number <= len(items):
            if len(items) == 1:
                return items[0], "the only one in the bundle"
            return items[number - 1], f"the {_ordinal(number)} of the bundle's {len(items)}"
        if len(items) == 1 and not any(_numeric(item.get("id")) == number for item in items):
            return items[0], "the only one in the bundle"
        return None, ""

    def reference(self, section: str, model, value: Any, *, path: str = "") -> Any:
        """Return the reference a link names, or the value unchanged when nothing has it."""
        if value in (None, ""):
            return value
        found, how = self._in_items(self.sections.get(section, []), value)
        if found is not None:
            if how and path:
                self.notes.append(f"{path}: {value!r} read as {_KIND_OF[section]} {found['reference']!r}, {how}")
            return found["reference"]
        text = str(value)
        if model.objects.filter(reference=text).exists():
            return text
        number = _numeric(value)
        if number is not None:
            reference = model.objects.filter(pk=number).values_list("reference", flat=True).first()
            if reference is not None:
                if path:
                    self.notes.append(f"{path}: {value!r} read as the stored {_KIND_OF[section]} {reference!r} "
                                      f"(its database id)")
                return reference
        return text if isinstance(value, int) else value

    def schema_path(self, value: Any, *, path: str = "") -> Any:
        """Return `register/schema` references for an OpenConnector `registerId/schemaId`."""
        if not isinstance(value, str) or "/" not in value:
            return value
        register_id, _, schema_id = value.partition("/")
        if _numeric(register_id) is None and _numeric(schema_id) is None:
            return value
        register, _how = self._in_items(self.sections.get("registers", []), register_id)
        if register is not None:
            schema, _how = self._in_items([s for s in _schemas_of(register) if isinstance(s, dict)], schema_id)
            if schema is None:
                matches = [pair for pair in self.schemas if pair[0] is register]
                found, _how = self._in_items([schema for _, schema in self.schemas], schema_id)
                schema = found if any(found is s for _, s in matches) else None
            if schema is not None:
                return f"{register['reference']}/{schema['reference']}"
        register_ref = self.reference("registers", Register, register_id)
        schema = Schema.objects.filter(register__reference=register_ref, reference=schema_id).first()
        if schema is None and _numeric(schema_id) is not None:
            schema = Schema.objects.select_related("register").filter(pk=_numeric(schema_id)).first()
        if schema is not None and schema.path != value and path:
            self.notes.append(
                f"{path}: {value!r} read as the stored register/schema {schema.path!r} (their database ids)"
            )
        return schema.path if schema is not None else value


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _synchronization(item: dict[str, Any], resolve: _Resolver, *, path: str, export: bool) -> dict[str, Any]:
    # What sourceId and targetId name is the kind's to say: a register schema, or a Source record.
    reader = reader_kind(item.get("sourceType") or "api") if isinstance(item.get("sourceType"), str | None) else None
    writer = writer_kind(item.get("targetType") or "register/schema") if isinstance(
        item.get("targetType"), str | None) else None
    if export:
        for key, kind in (("sourceConfig", reader), ("targetConfig", writer)):
            if key in item:
                config = _object(item[key]) if item[key] is not None else {}
                if isinstance(config, dict):
                    config = config_dot_applied(config)
                    if getattr(kind, "declaration", None) is not None:
                        config = php_arrays_read(config, kind.declaration)
                item[key] = config
        if "conditions" in item:
            item["conditions"] = _object(item["conditions"]) if item["conditions"] is not None else {}
        if item.get("isEnabled") is None:
            item.pop("isEnabled", None)
    for key, kind, reads_schema in (
        ("sourceId", reader, getattr(reader, "reads_schema", False)),
        ("targetId", writer, getattr(writer, "writes_schema", False)),
    ):
        if key in item and kind is not None:
            item[key] = (
                resolve.schema_path(item[key], path=f"{path}.{key}") if reads_schema
                else resolve.reference("sources", Source, item[key], path=f"{path}.{key}")
            )
    for key in ("sourceHashMapping", "sourceTargetMapping", "targetSourceMapping"):
        if key in item:
            item[key] = resolve.reference("mappings", Mapping, item[key], path=f"{path}.{key}")
    source_config = item.get("sourceConfig")
    if isinstance(source_config, dict) and isinstance(source_config.get("extraDataConfigs"), list):
        # An extra data call on another source names it by OpenConnector's id: keep its reference instead.
        for index, entry in enumerate(source_config["extraDataConfigs"]):
            where = f"{path}.sourceConfig.extraDataConfigs[{index}]"
            while isinstance(entry, dict):
                for key in ("source", "sourceId"):
                    if entry.get(key) not in (None, ""):
                        entry[key] = resolve.reference("sources", Source, entry[key], path=f"{where}.{key}")
                entry = entry.get("extraDataConfigPerResult")
                where += ".extraDataConfigPerResult"
    follow_ups = item.get("followUps")
    if isinstance(follow_ups, list):
        item["followUps"] = [
            resolve.reference("synchronizations", Synchronization, ref, path=f"{path}.followUps[{index}]")
            for index, ref in enumerate(follow_ups)
        ]
    actions = item.get("actions")
    if isinstance(actions, list):
        item["actions"] = [
            resolve.reference("rules", Rule, ref, path=f"{path}.actions[{index}]") for index, ref in enumerate(actions)
        ]
    return item


# What a rule's configuration names by OpenConnector's id, and the section that holds it.
_RULE_LINKS = {"source": ("sources", Source), "mapping": ("mappings", Mapping),
               "synchronization": ("synchronizations", Synchronization)}


def _rule(item: dict[str, Any], resolve: _Resolver, *, path: str) -> dict[str, Any]:
    """Return an OpenConnector rule as this service's: its type's settings (OpenConnector's configuration[type],
    or the older configuration.synchronization id) as its configuration, what they name by id by reference."""
    item["conditions"] = _object(item.get("conditions")) if item.get("conditions") is not None else {}
    configuration = _object(item.get("configuration"))
    kind = item.get("type")
    if isinstance(configuration, dict) and isinstance(kind, str) and kind in configuration:
        inner = _object(configuration[kind])
        if kind == "synchronization" and not isinstance(inner, dict):
            inner = {"synchronization": inner}  # Rule::parseConfiguration's older form
        configuration = inner if isinstance(inner, dict) else configuration
    declaration = rule_configuration_declaration(kind) if isinstance(kind, str) else None
    if isinstance(configuration, dict):
        if declaration is not None:
            configuration = php_arrays_read(configuration, declaration)
        for key, (section, model) in _RULE_LINKS.items():
            if configuration.get(key) not in (None, "") and not isinstance(configuration[key], dict | list):
                configuration[key] = resolve.reference(section, model, configuration[key],
                                                       path=f"{path}.configuration.{key}")
    item["configuration"] = configuration
    return item


def _empty(value: Any) -> bool:
    return value in (None, "", [], {})


def _keep_known(item: dict[str, Any], *, known: list[str], path: str, ignored: list[str],
                empty: list[str]) -> dict[str, Any]:
    """Return the item with only the keys this service reads; each other key that holds something is named
    in `ignored`, an empty one in `empty`."""
    kept = {}
    for key, value in item.items():
        if key in known or (isinstance(key, str) and key.split(".", 1)[0] in ("headers", "query") and "." in key
                            and "headers" in known):
            kept[key] = value
        elif _empty(value):
            empty.append(f"{path}.{key}")
        else:
            ignored.append(f"{path}.{key}")
    return kept


def _declared_only(value: Any, declaration: type[BaseModel], *, path: str, ignored: list[str],
                   empty: list[str]) -> Any:
    """Return an OpenConnector configuration with only the keys its declaration takes, at any depth (the
    entries of extraDataConfigs, pagination, …); each other key is named in `ignored` or `empty`."""
    if not isinstance(value, dict):
        return value
    kept = _keep_known(value, known=known_keys(declaration, []), path=path, ignored=ignored, empty=empty)
    fields = {(info.alias or name): info.annotation for name, info in declaration.model_fields.items()}
    for key, item in kept.items():
        shapes = _shapes(fields.get(key))
        models = [shape for shape in shapes if isinstance(shape, type)]
        listed = [shape[1] for shape in shapes if isinstance(shape, tuple) and shape[0] == "list"]
        if isinstance(item, dict) and models:
            kept[key] = _declared_only(item, models[0], path=f"{path}.{key}", ignored=ignored, empty=empty)
        elif isinstance(item, list) and listed and _shapes(listed[0]) and isinstance(_shapes(listed[0])[0], type):
            inner = _shapes(listed[0])[0]
            kept[key] = [
                _declared_only(entry, inner, path=f"{path}.{key}[{index}]", ignored=ignored, empty=empty)
                for index, entry in enumerate(item)
            ]
    return kept


def bundle_normalize(bundle: Any) -> Any:
    """Return an OpenConnector export as a bundle of this service; any other bundle as it is."""
    return bundle_read(bundle).bundle


def _list_of(sections: dict[str, Any], section: str) -> list[Any]:
    items = sections.get(section)
    return items if isinstance(items, list) else []


def bundle_read(bundle: Any) -> Reading:
    """Return an OpenConnector document as a bundle of this service, with what it holds that this service
    does not do (ignored, reported by the import), what became of each secret header or query parameter of a
    configuration (moved into credentials, or not imported), notes and what is not imported at all; any
    other bundle as it is.

    Only OpenConnector's objects are trimmed so: in a bundle of this service an unknown key is a mistake,
    refused by validation with the closest known name.
    """
    reading = Reading(bundle=bundle)
    if not isinstance(bundle, dict):
        return reading
    found, openconnector = _sections(bundle, reading)
    sections = copy.deepcopy(found)
    if not isinstance(sections, dict):
        return reading

    def is_openconnector(item: dict[str, Any]) -> bool:
        return openconnector or _is_export(item)

    names: dict[int, set[str]] = {}
    for section in SECTIONS:
        for index, item in enumerate(_list_of(sections, section)):
            if not isinstance(item, dict) or not is_openconnector(item):
                continue
            item.update(php_arrays_read(item, DOCUMENTS[section]))
            names[id(item)] = {
                str(item[key]) for key in ("reference", "slug", "uuid", "@id") if isinstance(item.get(key), str | int)
            }
            item["reference"] = _reference_of(item, section=section, index=index)
            if item.get("description") is None and "description" in item:
                item["description"] = ""
            for schema in _schemas_of(item) if section == "registers" else []:
                if isinstance(schema, dict) and _is_export(schema):
                    names[id(schema)] = {str(schema[key]) for key in ("reference", "slug", "uuid")
                                         if isinstance(schema.get(key), str | int)}
                    schema["reference"] = _reference_of(schema, section="schemas", index=0)
    resolve = _Resolver(
        {section: [item for item in _list_of(sections, section) if isinstance(item, dict)] for section in SECTIONS
         if isinstance(sections.get(section), list)},
        names=names, notes=reading.notes,
    )
    for index, item in enumerate(_list_of(sections, "sources")):
        if isinstance(item, dict) and is_openconnector(item):
            _source(item, path=f"sources[{index}]", reading=reading)
    for item in _list_of(sections, "mappings"):
        if isinstance(item, dict) and is_openconnector(item):
            _mapping(item)
    for index, item in enumerate(_list_of(sections, "rules")):
        if isinstance(item, dict) and is_openconnector(item):
            _rule(item, resolve, path=f"rules[{index}]")
    for index, item in enumerate(_list_of(sections, "synchronizations")):
        if isinstance(item, dict):
            path = f"synchronizations[{index}]"
            _synchronization(item, resolve, path=path, export=is_openconnector(item))
            if is_openconnector(item):
                _config_secrets_dropped(item.get("sourceConfig"), path=f"{path}.sourceConfig",
                                        source=item.get("sourceId"), moved=reading.moved)
    for section in SECTIONS:
        items = _list_of(sections, section)
        for index, item in enumerate(items):
            if isinstance(item, dict) and is_openconnector(item):
                items[index] = _export_trimmed(item, section=section, path=f"{section}[{index}]", reading=reading)
    reading.bundle = sections
    return reading


def _export_trimmed(item: dict[str, Any], *, section: str, path: str, reading: Reading) -> dict[str, Any]:
    """Return an exported record with what this service reads, naming what it does not: in `ignored` what
    holds something, and in one note each its bookkeeping and its empty keys."""
    bookkeeping = [key for key in item if key in _EXPORT_FIELDS or key in _BOOKKEEPING]
    for key in bookkeeping:
        del item[key]
    empty: list[str] = []
    declarations = {}
    if section == "synchronizations":
        source_type, target_type = item.get("sourceType") or "api", item.get("targetType") or "register/schema"
        reader = reader_kind(source_type) if isinstance(source_type, str) else None
        writer = writer_kind(target_type) if isinstance(target_type, str) else None
        declarations = {"sourceConfig": getattr(reader, "declaration", None),
                        "targetConfig": getattr(writer, "declaration", None)}
    if section == "sources" and isinstance(item.get("type", "api"), str):
        declarations = {"configuration": source_configuration_declaration(item.get("type") or "api")}
    if section == "rules" and isinstance(item.get("type"), str):
        declarations = {"configuration": rule_configuration_declaration(item["type"])}
    for key, declaration in declarations.items():
        if declaration is not None and isinstance(item.get(key), dict):
            item[key] = _declared_only(item[key], declaration, path=f"{path}.{key}", ignored=reading.ignored,
                                       empty=empty)
    if section == "registers":
        for schema_index, schema in enumerate(_schemas_of(item)):
            if isinstance(schema, dict) and _is_export(schema):
                item["schemas"][schema_index] = _keep_known(
                    {key: value for key, value in schema.items() if key not in _EXPORT_FIELDS},
                    known=schema_keys(), path=f"{path}.schemas[{schema_index}]", ignored=reading.ignored,
                    empty=empty,
                )
    kept = _keep_known(item, known=document_keys(section), path=path, ignored=reading.ignored, empty=empty)
    if bookkeeping:
        reading.notes.append(f"{path}: OpenConnector's bookkeeping, not imported: {', '.join(bookkeeping)}")
    if empty:
        reading.notes.append(f"{path}: empty, not imported: {', '.join(where[len(path) + 1:] for where in empty)}")
    return kept
