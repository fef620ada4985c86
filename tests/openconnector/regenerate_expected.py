"""Regenerate tests/openconnector/expected/<folder>.json: what OpenConnector makes of each shipped folder
against its fake (python -m tests.openconnector.regenerate_expected; needs php-cli and php-twig).

It does what OpenConnector's SynchronizationService, CallService and RuleService do (commit c1d9a896 of
github ConductionNL/openconnector; the functions are named where they are followed), asking the fake
in tests/openconnector/fakes.py, and runs each mapping with real Twig through oracle.php (MappingService::
executeMapping). It writes per synchronization: the requests OpenConnector makes, the objects it writes,
which cases the conditions leave out, and the files its rules store.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from tests.openconnector.fakes import FAKES, Fake
from tests.openconnector.shipped import EXPECTED, FOLDERS, documents, folder_copied

ORACLE = Path(__file__).parent / "oracle.php"
LOCATION = "{location}"  # the fake's URL, in the fixtures


# ---------------------------------------------------------------------------------------------
# Adbar\Dot and CallService::applyConfigDot


def dot_get(items: Any, key: str) -> Any:
    if isinstance(items, dict) and key in items:
        return items[key]
    for segment in key.split("."):
        if isinstance(items, dict) and segment in items:
            items = items[segment]
        elif isinstance(items, list) and segment.isdigit() and int(segment) < len(items):
            items = items[int(segment)]
        else:
            return None
    return items


def dot_set(items: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(items.get(part), dict):
            items[part] = {}
        items = items[part]
    items[parts[-1]] = value


def apply_config_dot(config: Any) -> dict[str, Any]:
    """CallService::applyConfigDot: `a.b` keys set at a.b, then removed; PHP's [] is an empty map."""
    if not isinstance(config, dict):
        return {}
    result = json.loads(json.dumps(config))
    for key, value in config.items():
        if "." in key:
            dot_set(result, key, value)
            result.pop(key, None)
    return result


def encode_keys(value: Any) -> Any:
    """encodeArrayKeys(..., '.', '&#46;'), which conditions see."""
    if isinstance(value, dict) and value:
        return {key.replace(".", "&#46;"): encode_keys(item) for key, item in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# JsonLogic (jwadhams/json-logic-php): the operations these synchronizations use


def truthy(value: Any) -> bool:
    if isinstance(value, list | dict):
        return len(value) > 0
    return bool(value) and value != "0"


def json_logic(rule: Any, data: Any) -> Any:
    if isinstance(rule, list):
        return [json_logic(item, data) for item in rule]
    if not isinstance(rule, dict) or len(rule) != 1:
        return rule
    ((op, args),) = rule.items()
    if op == "var":
        name = args[0] if isinstance(args, list) else args
        return dot_get(data, str(name))
    args = args if isinstance(args, list) else [args]
    if op == "if":
        for i in range(0, len(args) - 1, 2):
            if truthy(json_logic(args[i], data)):
                return json_logic(args[i + 1], data)
        return json_logic(args[-1], data) if len(args) % 2 else None
    values = [json_logic(arg, data) for arg in args]
    if op == "!!":
        return truthy(values[0])
    if op == "and":
        return all(truthy(v) for v in values)
    if op == "or":
        return any(truthy(v) for v in values)
    if op == "==":
        return values[0] == values[1]
    if op == "in":
        return values[0] in values[1]
    raise ValueError(f"json-logic operation {op!r} is not written here")


# ---------------------------------------------------------------------------------------------
# CallService::call against the fake


class Calls:
    """CallService::call: the source's configuration merged in (headers, Guzzle's auth), Twig in its values
    rendered per call (oauthToken(source) posts to the token URL each time), Guzzle's `query` option
    replacing the endpoint's own query string."""

    def __init__(self, fake: Fake, source: dict[str, Any]):
        self.fake, self.source = fake, source
        self.configuration = apply_config_dot(source.get("configuration"))
        self.made: list[dict[str, Any]] = []

    def headers(self) -> dict[str, str]:
        headers = dict(self.configuration.get("headers") or {})
        for name, value in headers.items():
            if "{{ oauthToken(source) }}" in str(value):
                headers[name] = str(value).replace("{{ oauthToken(source) }}", self.oauth_token())
            elif "{{" in str(value):
                raise ValueError(f"header template {value!r} is not written here")
        auth = self.configuration.get("auth")
        if isinstance(auth, dict) and auth:  # Guzzle's ['username', 'password'], from "auth.0"/"auth.1"
            pair = f"{auth['0']}:{auth['1']}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers

    def oauth_token(self) -> str:
        auth = self.configuration["authentication"]
        form = {"grant_type": auth["grant_type"], "scope": auth["scope"]}
        if auth.get("authentication") == "body":
            form |= {"client_id": auth["client_id"], "client_secret": auth["client_secret"]}
        request = urllib.request.Request(auth["tokenUrl"], data=urlencode(form).encode(), method="POST")
        with urllib.request.urlopen(request) as answer:
            return json.loads(answer.read())["access_token"]

    def call(self, endpoint: str, *, kind: str, query: dict[str, Any] | None = None) -> tuple[bytes, dict[str, str]]:
        headers = self.headers()
        url = self.source["location"] + endpoint
        if query:
            url = url.split("?", 1)[0] + "?" + urlencode(query)
        parts = urlsplit(url)

        self.made.append(
            {
                "kind": kind,
                "method": "GET",
                "path": unquote(parts.path),
                "query": dict(parse_qsl(parts.query, keep_blank_values=True)),
                "headers": headers,
            }
        )
        request = urllib.request.Request(url.replace(" ", "%20"), headers=headers)
        with urllib.request.urlopen(request) as answer:
            return answer.read(), dict(answer.headers)

    def json(self, endpoint: str, *, kind: str, query: dict[str, Any] | None = None) -> Any:
        body, _ = self.call(endpoint, kind=kind, query=query)
        return json.loads(body)


# ---------------------------------------------------------------------------------------------
# SynchronizationService


def strip_location(endpoint: str, location: str) -> str:
    return endpoint[len(location) :] if endpoint.startswith(location) else endpoint


def objects_listed(calls: Calls, config: dict[str, Any]) -> list[dict[str, Any]]:
    """getAllObjectsFromApi, fetchAllPagesOptimized, getNextPageInfo, getAllObjectsFromArray."""
    uses_pagination = str(config.get("usesPagination", "true")).lower() not in ("false", "0", "no", "off")
    if config.get("resultsPosition") == "_object":
        uses_pagination = False
    query = dict(config.get("query") or {})
    endpoint, objects, page, next_endpoint = config.get("endpoint", ""), [], 1, None
    for _ in range(50 if uses_pagination else 1):
        result = calls.json(endpoint, kind="list", query=query or None)
        found = dot_get(result, config["resultsPosition"]) if config.get("resultsPosition") else None
        found = found or []
        if not found:
            break
        objects += found
        if "next" in result or next_endpoint:
            next_endpoint = result.get("next")
            if not next_endpoint:
                break
            endpoint = strip_location(next_endpoint, calls.source["location"])
        else:
            page += 1
            query = {**query, config.get("paginationQuery", "page"): page}
    return objects


def extra_data(
    calls: Calls, sync_config: dict[str, Any], extra: dict[str, Any], obj: Any, origin_id: str | None
) -> Any:
    """fetchExtraDataForObject."""
    if "dynamicEndpointLocation" not in extra and "staticEndpoint" not in extra:
        return obj
    if "dynamicEndpointLocation" in extra:
        endpoint = dot_get(obj, extra["dynamicEndpointLocation"])
    if "staticEndpoint" in extra:
        if origin_id is None:
            origin_id = str(dot_get(obj, sync_config.get("idPosition") or "id"))
        endpoint = extra["staticEndpoint"].replace("{{ originId }}", origin_id).replace("{{originId}}", origin_id)
        if "subObjectId" in extra and dot_get(obj, extra["subObjectId"]) is not None:
            sub = str(dot_get(obj, extra["subObjectId"]))
            endpoint = endpoint.replace("{{ subObjectId }}", sub).replace("{{subObjectId}}", sub)
    # getObjectFromSource: the synchronization's headers and query, the source's location taken off
    data = calls.json(
        strip_location(endpoint, calls.source["location"]), kind="detail", query=sync_config.get("query") or None
    )
    if "extraDataConfigPerResult" in extra:
        results = dot_get(data, extra["resultsLocation"]) if "resultsLocation" in extra else data
        data = [
            extra_data(calls, sync_config, extra["extraDataConfigPerResult"], result, origin_id) for result in results
        ]
    if "keyToSetExtraData" in extra:
        data = {extra["keyToSetExtraData"]: data}
    if extra.get("mergeExtraData") in (True, "true"):
        return {**obj, **data}
    return data


def mapped(mapping: dict[str, Any], inputs: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    """Run MappingService::executeMapping with real Twig (oracle.php)."""
    answer = subprocess.run(
        ["php", str(ORACLE)],
        input=json.dumps({"mapping": mapping, "inputs": inputs}),
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(answer.stdout)
    return result["twig"], result["outputs"]


def volatile(value: Any) -> dict[str, str]:
    """A value of the clock ('now'|date(...)): its shape, each digit any digit."""
    return {"$matches": "^" + re.sub(r"\\d|\d", r"\\d", re.escape(str(value))) + "$"}


def files_fetched(calls: Calls, rule: dict[str, Any], output: dict[str, Any]) -> list[dict[str, Any]]:
    """processFetchFileRule, processMultipleFilesWithCleanup, getFileContext, fetchFile."""
    config = rule["configuration"]["fetch_file"]
    attachments = dot_get(output, config["filePath"])
    if not attachments:
        return []
    entries = attachments if isinstance(attachments, list) else [attachments]
    stored = []
    for entry in entries:
        endpoint = entry.get("endpoint") if isinstance(entry, dict) else entry
        if endpoint is None:
            continue
        labels = [
            entry.get(key) for key in ("label", "labels", "tag", "tags") if isinstance(entry, dict) and entry.get(key)
        ]
        tags = [label for label in labels if label in (config.get("tags") or [])]
        body, headers = calls.call(strip_location(endpoint, calls.source["location"]), kind="file")
        stored.append(
            {
                "endpoint": endpoint,
                "filename": entry.get("filename"),
                "tags": tags,
                "sha256": hashlib.sha256(body).hexdigest(),
                "size": len(body),
            }
        )
    return stored


def synchronization_run(folder: Path, fake: Fake, sync: dict[str, Any], *, calls: Calls) -> dict[str, Any]:
    """synchronizeExternToIntern, processSynchronizationObject, synchronizeContract, processRules."""
    config = apply_config_dot(sync.get("sourceConfig"))
    mapping = next(iter(documents(folder, "mappings").values()))
    rules = list(documents(folder, "rules").values())
    listed = objects_listed(calls, config)
    kept, filtered = [], []
    for obj in listed:
        origin_id = str(dot_get(obj, config.get("idPosition") or "id"))
        conditions = sync.get("conditions") or []
        if conditions and not truthy(json_logic(conditions, encode_keys(obj))):
            filtered.append(origin_id)
            continue
        extras = config.get("extraDataConfigs") or []
        # PHP's Dot sets `extraDataConfigs.0.x` as array [0 => [...]]: a list, in the order of its keys.
        for extra in extras.values() if isinstance(extras, dict) else extras:
            obj = {**obj, **extra_data(calls, config, extra, obj, None)}
        kept.append((origin_id, obj))
    twig, outputs = mapped(mapping, [obj for _, obj in kept])
    objects, files = {}, {}
    for (origin_id, _), output in zip(kept, outputs, strict=True):
        for key, template in mapping["mapping"].items():
            if isinstance(template, str) and re.search(r"""['"]now['"]\s*\|\s*date""", template) and key in output:
                output[key] = volatile(output[key])
        objects[origin_id] = output
        # Rules run after the write only when the synchronization names them in `actions`.
        for rule in rules if sync.get("actions") else []:
            if rule.get("type") == "fetch_file":
                files[origin_id] = files_fetched(calls, rule, output)
    return {"twig": twig, "listed": len(listed), "filtered": filtered, "objects": objects, "files": files}


def folder_expected(name: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, FAKES[name]() as fake:
        folder = folder_copied(name, into=Path(tmp), location=fake.url)
        (source,) = documents(folder, "sources").values()
        synchronizations = {}
        for sync in documents(folder, "synchronizations").values():
            calls = Calls(fake, source)
            result = synchronization_run(folder, fake, sync, calls=calls)
            seen = [(m, p, q) for m, p, q in fake.requests_seen() if p != "/oauth2/token"]
            made = [(c["method"], c["path"], c["query"]) for c in calls.made]
            assert seen == made, (seen, made)  # what this script says it asked is what the fake saw
            twig = result.pop("twig")
            result["requests"] = {
                kind: [{k: v for k, v in c.items() if k != "kind"} for c in calls.made if c["kind"] == kind]
                for kind in ("list", "detail", "file")
            }
            synchronizations[sync["name"]] = result
            fake.server.requests.clear()
        # The fake's port changes from run to run: `{location}` stands for it.
        synchronizations = json.loads(json.dumps(synchronizations).replace(fake.url, LOCATION))
    return {"note": NOTE.format(twig=twig, name=name), "synchronizations": synchronizations}


NOTE = (
    "What OpenConnector (github ConductionNL/openconnector, commit c1d9a896) makes of the shipped folder "
    "{name} against its fake (tests/openconnector/fakes.py). Written by `python -m tests.openconnector."
    "regenerate_expected` (needs php-cli, php-twig): requests, conditions and extra data as "
    "SynchronizationService/CallService do them (read from the PHP), objects by oracle.php, which runs the "
    "mapping as MappingService::executeMapping does with real Twig {twig} (OpenConnector requires ^3.14). "
    "`objects` are keyed by origin id; {{\"$matches\": regex}} stands for a value of the clock ('now'|date). "
    "`files`: what the rules fetch (sha256 of the body) and store, by origin id, with the tags kept; rules "
    "run only when the synchronization lists them in `actions`, and only for objects written (not on a run "
    "that finds them unchanged). On a second run OpenConnector asks the list and every detail again (extra "
    "data is fetched before the origin hash is compared), and fetches no file. Request headers are those the "
    "source's configuration sets (an empty value: sent empty); `{{location}}` is the fake's URL."
)


def main(argv: list[str]) -> None:
    EXPECTED.mkdir(exist_ok=True)
    for name in argv or FOLDERS:
        expected = folder_expected(name)
        (EXPECTED / f"{name}.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote expected/{name}.json")


if __name__ == "__main__":
    main(sys.argv[1:])
