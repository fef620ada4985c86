"""Read OpenConnector exports as configuration bundles.

OpenConnector (a Nextcloud app whose configuration names this service keeps) exports objects with
its own bookkeeping fields, PHP's `[]` for an empty object, booleans written as text, references
that are URLs or missing (a `slug` instead), and links to other objects by numeric database id.
`bundle_normalize` turns such an export into this service's bundle format; a bundle already in that
format comes back unchanged.

Accepted shapes: a bundle (`sources`, `registers`, `mappings`, `synchronizations` lists); an
OpenAPI-style export with those sections under `components` (lists, or objects keyed by slug); and
one exported object with its `@type` (`source`, `mapping`, `synchronization`).

A numeric id (`"sourceId": 3`, `"targetId": "1/2"`, `"sourceTargetMapping": "5"`, `"followUps": [4]`)
is resolved, in this order: an item of the bundle whose reference is that text; an item of the
bundle with that `id`; the item at that position (counting from 1, as OpenConnector's ids do) when
the bundle's items carry no ids; an existing object with that reference; an existing object with
that primary key. What cannot be resolved is left for validation to report with its path.
"""
from __future__ import annotations

import base64
import copy
import re
from typing import Any

from syncapp.declared import known_keys
from syncapp.documents import document_keys, schema_keys
from syncapp.mapping import TWIG
from syncapp.models import Mapping, Register, Schema, Source, Synchronization
from syncapp.outbound.masking import is_secret_name
from syncapp.sources import reader_kind, source_configuration_declaration
from syncapp.targets import writer_kind

SECTIONS = ("sources", "registers", "mappings", "synchronizations")
_TYPES = {"source": "sources", "mapping": "mappings", "synchronization": "synchronizations", "register": "registers"}
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
_OAUTH_KEYS = {
    "tokenUrl": "tokenUrl", "client_id": "clientId", "client_secret": "clientSecret", "scope": "scope",
    "audience": "audience", "authentication": "clientAuthentication", "grant_type": "grant_type",
    "tokenLocation": "tokenPath",
}


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


def _sections(bundle: dict[str, Any]) -> dict[str, Any]:
    """Return the bundle's sections, taken from `components` or an `@type` when it is written so."""
    if isinstance(bundle.get("@type"), str) and bundle["@type"].lower() in _TYPES:
        return {_TYPES[bundle["@type"].lower()]: [bundle]}
    components = bundle.get("components")
    if isinstance(components, dict) and not any(section in bundle for section in SECTIONS):
        sections: dict[str, Any] = {}
        for section in SECTIONS:
            value = components.get(section)
            if isinstance(value, dict):
                value = [
                    {"reference": key, **item} if isinstance(item, dict) and "reference" not in item else item
                    for key, item in value.items()
                ]
            if value is not None:
                sections[section] = value
        return sections
    return bundle


def _reference_of(item: dict[str, Any], *, section: str, index: int) -> str:
    reference = item.get("reference")
    if isinstance(reference, str) and _REFERENCE.match(reference):
        return reference
    for candidate in (item.get("slug"), item.get("name")):
        if isinstance(candidate, str) and _slugify(candidate):
            return _slugify(candidate)
    return f"{section.rstrip('s')}-{index + 1}"


def _source_credentials(item: dict[str, Any], configuration: dict[str, Any]) -> dict[str, Any] | None:
    """Return credentials from OpenConnector's source fields and `authentication.*` configuration."""
    oauth = {
        _OAUTH_KEYS[key.split(".", 1)[1]]: value
        for key, value in configuration.items()
        if key.startswith("authentication.") and key.split(".", 1)[1] in _OAUTH_KEYS
    }
    nested = configuration.get("authentication")
    if isinstance(nested, dict):
        oauth.update({_OAUTH_KEYS[key]: value for key, value in nested.items() if key in _OAUTH_KEYS})
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


def _source(item: dict[str, Any], *, path: str, moved: list[str], ignored: list[str]) -> dict[str, Any]:
    configuration = _object(item.get("configuration")) or {}
    if isinstance(configuration, dict):
        configuration = dict(configuration)
        credentials = _source_credentials(item, configuration)
        if credentials is not None and not item.get("credentials"):
            item["credentials"] = credentials
        # Secrets and OpenConnector's template calls (`{{ oauthToken(source) }}`) leave the configuration.
        for key in list(configuration):
            secret = key == "authentication" or key.startswith("authentication.")
            template = key.lower() == "headers.authorization" and "{{" in str(configuration[key])
            if secret or template:
                del configuration[key]
        headers = _object(item.get("headers"))
        if isinstance(headers, dict) and headers and "headers" not in configuration:
            configuration["headers"] = headers
        _secrets_moved(item, configuration, path=path, moved=moved, ignored=ignored)
    item["configuration"] = configuration
    for key in (*_SOURCE_AUTH_FIELDS, "headers"):
        item.pop(key, None)
    if item.get("isEnabled") is None:
        item.pop("isEnabled", None)
    return item


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


def _secrets_moved(item: dict[str, Any], configuration: dict[str, Any], *, path: str, moved: list[str],
                   ignored: list[str]) -> None:
    """Move a secret header or query parameter of an exported source into its credentials, where it is
    write-only, encrypted and sent only to the source's origin; this service refuses it in a configuration.

    Credentials hold one secret: one the export already sets in them, or a second one here, is not
    imported and the report says so. A template (`{{ oauthToken(source) }}`) is OpenConnector's own call.
    """
    for where, location, name, value in _secret_entries(configuration):
        _secret_removed(configuration, where)
        if "{{" in str(value) or "{%" in str(value):
            if where.lower() != "headers.authorization":
                ignored.append(f"{path}.configuration.{where}")
        elif not item.get("credentials"):
            item["credentials"] = _credentials_of_secret(location, name, value)
            moved.append(f"{path}.configuration.{where}: moved into {path}.credentials "
                         f"({item['credentials']['type']}), sent only to the source's own origin")
        else:
            moved.append(f"{path}.configuration.{where}: not imported, {path}.credentials already hold a "
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
    # OpenConnector renders every mapping's templates with Twig.
    item["language"] = TWIG
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


class _Resolver:
    """Turn OpenConnector's numeric ids into references of the bundle or the database."""

    def __init__(self, sections: dict[str, list[dict[str, Any]]]):
        self.sections = sections
        self.schemas = [
            (register, schema)
            for register in sections.get("registers", [])
            for schema in _schemas_of(register)
            if isinstance(schema, dict)
        ]

    @staticmethod
    def _in_items(items: list[dict[str, Any]], value: Any) -> dict[str, Any] | None:
        text = str(value)
        for item in items:
            if item.get("reference") == text:
                return item
        number = _numeric(value)
        if number is None:
            return None
        for item in items:
            if _numeric(item.get("id")) == number:
                return item
        if not any("id" in item for item in items) and 1 <= number <= len(items):
            return items[number - 1]
        return None

    def reference(self, section: str, model, value: Any) -> Any:
        """Return the reference an id names, or the value unchanged when nothing has it."""
        if value in (None, ""):
            return value
        found = self._in_items(self.sections.get(section, []), value)
        if found is not None:
            return found["reference"]
        text = str(value)
        if model.objects.filter(reference=text).exists():
            return text
        number = _numeric(value)
        if number is not None:
            reference = model.objects.filter(pk=number).values_list("reference", flat=True).first()
            if reference is not None:
                return reference
        return text if isinstance(value, int) else value

    def schema_path(self, value: Any) -> Any:
        """Return `register/schema` references for an OpenConnector `registerId/schemaId`."""
        if not isinstance(value, str) or "/" not in value:
            return value
        register_id, _, schema_id = value.partition("/")
        if _numeric(register_id) is None and _numeric(schema_id) is None:
            return value
        register = self._in_items(self.sections.get("registers", []), register_id)
        if register is not None:
            schema = self._in_items([s for s in _schemas_of(register) if isinstance(s, dict)], schema_id)
            if schema is None:
                matches = [pair for pair in self.schemas if pair[0] is register]
                found = self._in_items([schema for _, schema in self.schemas], schema_id)
                schema = found if any(found is s for _, s in matches) else None
            if schema is not None:
                return f"{register['reference']}/{schema['reference']}"
        register_ref = self.reference("registers", Register, register_id)
        schema = Schema.objects.filter(register__reference=register_ref, reference=schema_id).first()
        if schema is None and _numeric(schema_id) is not None:
            schema = Schema.objects.select_related("register").filter(pk=_numeric(schema_id)).first()
        return schema.path if schema is not None else value


def _synchronization(item: dict[str, Any], resolve: _Resolver) -> dict[str, Any]:
    if _is_export(item):
        for key in ("sourceConfig", "targetConfig", "conditions"):
            if key in item:
                item[key] = _object(item[key]) if item[key] is not None else {}
        if item.get("isEnabled") is None:
            item.pop("isEnabled", None)
    # What sourceId and targetId name is the kind's to say: a register schema, or a Source record.
    reader = reader_kind(item.get("sourceType") or "api") if isinstance(item.get("sourceType"), str | None) else None
    writer = writer_kind(item.get("targetType") or "register/schema") if isinstance(
        item.get("targetType"), str | None) else None
    for key, kind, reads_schema in (
        ("sourceId", reader, getattr(reader, "reads_schema", False)),
        ("targetId", writer, getattr(writer, "writes_schema", False)),
    ):
        if key in item and kind is not None:
            item[key] = (
                resolve.schema_path(item[key]) if reads_schema else resolve.reference("sources", Source, item[key])
            )
    for key in ("sourceHashMapping", "sourceTargetMapping", "targetSourceMapping"):
        if key in item:
            item[key] = resolve.reference("mappings", Mapping, item[key])
    source_config = item.get("sourceConfig")
    if isinstance(source_config, dict) and isinstance(source_config.get("extraDataConfigs"), list):
        # An extra data call on another source names it by OpenConnector's id: keep its reference instead.
        for entry in source_config["extraDataConfigs"]:
            while isinstance(entry, dict):
                for key in ("source", "sourceId"):
                    if entry.get(key) not in (None, ""):
                        entry[key] = resolve.reference("sources", Source, entry[key])
                entry = entry.get("extraDataConfigPerResult")
    follow_ups = item.get("followUps")
    if isinstance(follow_ups, list):
        item["followUps"] = [resolve.reference("synchronizations", Synchronization, ref) for ref in follow_ups]
    return item


def _unflatten(config: dict[str, Any], *, prefix: str) -> dict[str, Any]:
    """Return a configuration whose `prefix.N.key` entries (OpenConnector's flat form of a list of objects,
    `extraDataConfigs.0.staticEndpoint`) are the list they stand for; other keys as they are."""
    flat = {key: value for key, value in config.items() if isinstance(key, str) and key.startswith(prefix + ".")}
    if not flat:
        return config
    entries: dict[int, dict[str, Any]] = {}
    rest = {key: value for key, value in config.items() if key not in flat}
    for key, value in flat.items():
        index, _, inner = key[len(prefix) + 1:].partition(".")
        if not (index.isascii() and index.isdigit()) or not inner:
            rest[key] = value  # not the flat form: validation names it
            continue
        node = entries.setdefault(int(index), {})
        *parents, last = inner.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[last] = value
    listed = rest.get(prefix) if isinstance(rest.get(prefix), list) else []
    rest[prefix] = [*listed, *(entries[index] for index in sorted(entries))]
    return rest


def _empty(value: Any) -> bool:
    return value in (None, "", [], {})


def _keep_known(item: dict[str, Any], *, known: list[str], path: str, ignored: list[str]) -> dict[str, Any]:
    """Return the item with only the keys this service reads; each other key that holds something is named
    in `ignored` (an empty one says nothing and goes quietly)."""
    kept = {}
    for key, value in item.items():
        if key in known or (isinstance(key, str) and key.split(".", 1)[0] in ("headers", "query") and "." in key
                            and "headers" in known):
            kept[key] = value
        elif not _empty(value):
            ignored.append(f"{path}.{key}")
    return kept


def _config_known(config: Any, *, kind: Any, path: str, ignored: list[str], declaration: Any = None) -> Any:
    """Return an exported sourceConfig, targetConfig or configuration with only the keys its kind declares."""
    declaration = declaration or getattr(kind, "declaration", None)
    if declaration is None or not isinstance(config, dict):
        return config
    config = {key: _object(value) if key in ("headers", "query", "pagination") else value
              for key, value in _unflatten(config, prefix="extraDataConfigs").items()}
    return _keep_known(config, known=known_keys(declaration, []), path=path, ignored=ignored)


def bundle_normalize(bundle: Any) -> Any:
    """Return an OpenConnector export as a bundle of this service; any other bundle as it is."""
    return bundle_read(bundle)[0]


def bundle_read(bundle: Any) -> tuple[Any, list[str], list[str]]:
    """Return an OpenConnector export as a bundle of this service, the paths of what it holds that this
    service does not do (ignored, and reported by the import), and what became of each secret header or
    query parameter of a configuration (moved into credentials, or not imported); any other bundle as it is.

    Only the records of an export are trimmed so: in a bundle of this service an unknown key is a
    mistake, refused by validation with the closest known name.
    """
    ignored: list[str] = []
    moved: list[str] = []
    if not isinstance(bundle, dict):
        return bundle, ignored, moved
    sections = copy.deepcopy(_sections(bundle))
    if not isinstance(sections, dict):
        return bundle, ignored, moved
    for section in SECTIONS:
        items = sections.get(section)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not _is_export(item):
                continue
            item["reference"] = _reference_of(item, section=section, index=index)
            if item.get("description") is None and "description" in item:
                item["description"] = ""
            for schema in _schemas_of(item) if section == "registers" else []:
                if isinstance(schema, dict) and _is_export(schema):
                    schema["reference"] = _reference_of(schema, section="schemas", index=0)
    resolve = _Resolver({
        section: [item for item in sections.get(section) or [] if isinstance(item, dict)]
        for section in SECTIONS
        if isinstance(sections.get(section), list)
    })
    for index, item in enumerate(sections.get("sources") or [] if isinstance(sections.get("sources"), list) else []):
        if isinstance(item, dict) and _is_export(item):
            _source(item, path=f"sources[{index}]", moved=moved, ignored=ignored)
    for item in sections.get("mappings") or [] if isinstance(sections.get("mappings"), list) else []:
        if isinstance(item, dict) and _is_export(item):
            _mapping(item)
    for index, item in enumerate(
        sections.get("synchronizations") or [] if isinstance(sections.get("synchronizations"), list) else []
    ):
        if isinstance(item, dict):
            _synchronization(item, resolve)
            if _is_export(item):
                _config_secrets_dropped(item.get("sourceConfig"), path=f"synchronizations[{index}].sourceConfig",
                                        source=item.get("sourceId"), moved=moved)
    for section in SECTIONS:
        items = sections.get(section)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if isinstance(item, dict) and _is_export(item):
                items[index] = _export_trimmed(item, section=section, path=f"{section}[{index}]", ignored=ignored)
    return sections, ignored, moved


def _export_trimmed(item: dict[str, Any], *, section: str, path: str, ignored: list[str]) -> dict[str, Any]:
    """Return an exported record with what this service reads, naming in `ignored` what it does not."""
    # The export's own bookkeeping (ids, versions, dates, counts) is not configuration: not reported.
    bookkeeping = {key: item.pop(key) for key in list(item) if key in _EXPORT_FIELDS or key in _BOOKKEEPING}
    del bookkeeping
    if section == "synchronizations":
        source_type, target_type = item.get("sourceType") or "api", item.get("targetType") or "register/schema"
        item["sourceConfig"] = _config_known(
            item.get("sourceConfig"), kind=reader_kind(source_type) if isinstance(source_type, str) else None,
            path=f"{path}.sourceConfig", ignored=ignored,
        )
        item["targetConfig"] = _config_known(
            item.get("targetConfig"), kind=writer_kind(target_type) if isinstance(target_type, str) else None,
            path=f"{path}.targetConfig", ignored=ignored,
        )
    if section == "sources" and isinstance(item.get("type", "api"), str):
        item["configuration"] = _config_known(
            item.get("configuration"), kind=None, path=f"{path}.configuration", ignored=ignored,
            declaration=source_configuration_declaration(item.get("type", "api")),
        )
    if section == "registers":
        for schema_index, schema in enumerate(_schemas_of(item)):
            if isinstance(schema, dict) and _is_export(schema):
                item["schemas"][schema_index] = _keep_known(
                    {key: value for key, value in schema.items() if key not in _EXPORT_FIELDS},
                    known=schema_keys(), path=f"{path}.schemas[{schema_index}]", ignored=ignored,
                )
    return _keep_known(item, known=document_keys(section), path=path, ignored=ignored)
