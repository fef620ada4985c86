"""Enrichment per object: OpenConnector's `sourceConfig.extraDataConfigs`, an extra GET for each object.

Each entry of the list names where the detail is and where its answer goes:

    {"staticEndpoint": "/animals/{{ originId }}", "keyToSetExtraData": "detail"}
    {"dynamicEndpointLocation": "links.self", "mergeExtraData": true}
    {"staticEndpoint": "/keepers/{{ subObjectId }}", "subObjectId": "keeper.id", "source": "staff-api",
     "keyToSetExtraData": "keeper", "unsetConfigKey": "query"}

- `staticEndpoint`: an endpoint (appended to the source's location, or an absolute URL), a template
  with `originId` (the object's origin id, or the value at `endpointIdLocation`), `subObjectId`
  (the value at the dot path `subObjectId`) and `object`; both ids are URL-encoded.
- `dynamicEndpointLocation`: the dot path in the object that holds the endpoint or URL.
- `endpointTemplate`: a template rendered last, with `endpoint`, `object` and `originId`.
- `keyToSetExtraData`: the dot path in the object the answer is set at; without it the answer's
  keys are merged into the object (an answer that is not an object then is an error).
- `mergeExtraData`: for an entry of `extraDataConfigs` itself it changes nothing (OpenConnector merges
  what it brings into the object either way); for an `extraDataConfigPerResult` it decides what each
  result becomes, as OpenConnector's `fetchExtraDataForObject` returns it: with it, the result with its
  detail merged in (at `keyToSetExtraData`, or its keys); without it, the detail alone (or an object
  holding only `keyToSetExtraData`), the result itself replaced.
- `source` (or `sourceId`): another Source, by reference, to ask instead of the synchronization's.
- `unsetConfigKey`: a key (or a list) of the sourceConfig left out of the call, e.g. `query`, or one
  parameter, `query.zql` (written flat or inside `query`): the sourceConfig's headers and query go with
  every detail call, as in OpenConnector.
- `extraDataConfigPerResult`, `resultsLocation`: the answer is a list (at `resultsLocation`; the list
  then stands for the whole answer); each of its items is enriched in turn with this nested
  configuration, which may nest another (at most three deep). `{{ originId }}` in a nested endpoint is
  the origin id of the entry above it (its `endpointIdLocation` value, if it has one), as in
  OpenConnector; `{{ subObjectId }}` is the value at `subObjectId` in the result itself.

`sourceConfig.extraDataConcurrency` (1 to 32, default SYNC_PAGE_CONCURRENCY) objects of a page are
enriched at once.

`sourceConfig.fetchExtraDataBeforeConditions: true` enriches before the conditions, so they can use
the detail; by default, as in OpenConnector, objects are enriched after the conditions (an object
filtered out costs no request) and before the hash, the mapping and the write.

Detail calls go through the source's HTTP layer as pages do: egress policy, credentials (to the
source's own host only), request budget, rate limits, and retries of timeouts and 5xx answers. A
detail that cannot be had (a 404, garbage, retries spent) fails that object only, with the URL
(secrets masked) on its contract and log; a rate limit too long to wait out retries the page later.

The hash that tells whether an object changed is taken of the enriched object, so a changed detail
is written. The price: every object that reaches enrichment costs its detail request on every run,
unchanged or not, since only the detail itself can say whether it changed. With incremental reads
(sourceConfig.incremental) the list holds only what changed, and only that is enriched. Where the
list entry changes whenever its detail does (an `updated_at` in the list), `extraDataOnlyWhenChanged:
true` enriches only objects whose list entry changed (or all, on a forced run): the hash is then the
list entry's, and a change of the detail alone is not seen until the entry changes or a forced run.
"""
from __future__ import annotations

import contextvars
import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connections

from syncapp.budget import PageBudget, value_size
from syncapp.dotpath import DOT, MISSING, delete_path, get_path, set_path
from syncapp.errors import SourceError, SyncError
from syncapp.http import OnWait
from syncapp.mapping import MappingError, validate_mapping_config
from syncapp.models import Source
from syncapp.outbound.calls import call_settings, endpoint_render, fetch_page
from syncapp.outbound.urls import url_join
from syncapp.pagination import PageRequest

KEYS = {
    "staticEndpoint", "dynamicEndpointLocation", "endpointTemplate", "endpointIdLocation", "subObjectId",
    "keyToSetExtraData", "mergeExtraData", "unsetConfigKey", "source", "sourceId", "extraDataConfigPerResult",
    "resultsLocation",
}
MAX_NESTING = 3
# Requests one object's enrichment may make (an answer whose every result is enriched again).
MAX_REQUESTS_PER_OBJECT = 1000


class EnrichmentFailed(SyncError):
    """The detail of one object could not be had; the object fails, the run goes on."""


@dataclass(frozen=True)
class ExtraData:
    """One entry of sourceConfig.extraDataConfigs."""

    where: str  # its path in the configuration, for messages
    static_endpoint: str = ""
    dynamic_location: str = ""
    endpoint_template: str = ""
    endpoint_id_location: str = ""
    sub_object_id: str = ""
    key: str = ""
    merge: bool = False
    unset_config_keys: tuple[str, ...] = ()
    source: str = ""
    per_result: ExtraData | None = None
    results_location: str = ""


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


def before_conditions(source_config: dict[str, Any]) -> bool:
    """Return whether objects are enriched before the conditions (fetchExtraDataBeforeConditions)."""
    return _truthy((source_config or {}).get("fetchExtraDataBeforeConditions"))


def concurrency_of(source_config: dict[str, Any]) -> int:
    """Return extraDataConcurrency: how many objects of a page are enriched at once (default SYNC_PAGE_CONCURRENCY)."""
    value = (source_config or {}).get("extraDataConcurrency", settings.SYNC_PAGE_CONCURRENCY)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
        raise ValueError(f"extraDataConcurrency: must be a whole number from 1 to 32, got {value!r}")
    return value


def only_when_changed(source_config: dict[str, Any]) -> bool:
    """Return whether only objects whose list entry changed are enriched (extraDataOnlyWhenChanged)."""
    return _truthy((source_config or {}).get("extraDataOnlyWhenChanged"))


def _entry_problems(raw: Any, *, where: str, depth: int) -> list[str]:
    if not isinstance(raw, dict):
        return [f"{where}: must be an object with staticEndpoint or dynamicEndpointLocation"]
    problems = []
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(unknown)}")
    if not raw.get("staticEndpoint") and not raw.get("dynamicEndpointLocation"):
        problems.append(f"{where}: needs staticEndpoint (a templated endpoint) or dynamicEndpointLocation (a dot path)")
    for key in ("staticEndpoint", "dynamicEndpointLocation", "endpointTemplate", "endpointIdLocation",
                "subObjectId", "keyToSetExtraData", "resultsLocation"):
        if raw.get(key) not in (None, "") and not isinstance(raw.get(key), str):
            problems.append(f"{where}.{key}: must be text")
    for key in ("staticEndpoint", "endpointTemplate"):
        value = raw.get(key)
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            for problem in validate_mapping_config({"mapping": {"endpoint": value}}):
                problems.append(f"{where}.{key}: {problem.split(':', 1)[-1].strip()}")
    unset = raw.get("unsetConfigKey")
    if unset not in (None, "") and not (
        isinstance(unset, str) or (isinstance(unset, list) and all(isinstance(key, str) for key in unset))
    ):
        problems.append(f"{where}.unsetConfigKey: must be a sourceConfig key or a list of them")
    source = raw.get("source", raw.get("sourceId"))
    if source not in (None, "") and (isinstance(source, bool) or not isinstance(source, str | int)):
        problems.append(f"{where}.source: must be the reference of a source")
    merge = raw.get("mergeExtraData")
    if merge is not None and not isinstance(merge, bool) and str(merge).lower() not in ("true", "false"):
        problems.append(f"{where}.mergeExtraData: must be true or false")
    nested = raw.get("extraDataConfigPerResult")
    if nested is not None:
        if depth >= MAX_NESTING:
            problems.append(f"{where}.extraDataConfigPerResult: nested more than {MAX_NESTING} deep")
        else:
            problems += _entry_problems(nested, where=f"{where}.extraDataConfigPerResult", depth=depth + 1)
    return problems


def extra_data_problems(source_config: dict[str, Any], *, known_sources: set[str] | None = None) -> list[str]:
    """Return the problems of sourceConfig.extraDataConfigs, each with its path.

    `known_sources`: the references a `source` may name (else the database's sources are asked).
    """
    raw = source_config.get("extraDataConfigs")
    problems: list[str] = []
    for key in ("fetchExtraDataBeforeConditions", "extraDataOnlyWhenChanged"):
        value = source_config.get(key)
        if value is not None and not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
            problems.append(f"{key}: must be true or false")
    if "extraDataConcurrency" in source_config:
        try:
            concurrency_of(source_config)
        except ValueError as error:
            problems.append(str(error))
    if only_when_changed(source_config) and before_conditions(source_config):
        # An unchanged object is not enriched: conditions on its detail would filter it out, and delete it.
        problems.append("extraDataOnlyWhenChanged: cannot be combined with fetchExtraDataBeforeConditions")
    if raw in (None, []):
        return problems
    if not isinstance(raw, list):
        return [*problems, "extraDataConfigs: must be a list of objects"]
    for index, entry in enumerate(raw):
        problems += _entry_problems(entry, where=f"extraDataConfigs[{index}]", depth=1)
    if problems:
        return problems

    for entry in extra_data_configs(source_config):
        for item in _walk(entry):
            if not item.source:
                continue
            known = item.source in known_sources if known_sources is not None else False
            if not known and not Source.objects.filter(reference=item.source).exists():
                problems.append(f"{item.where}.source: no source with reference {item.source!r}")
    return problems


def _walk(entry: ExtraData):
    while entry is not None:
        yield entry
        entry = entry.per_result


def _entry(raw: dict[str, Any], *, where: str) -> ExtraData:
    unset = raw.get("unsetConfigKey")
    nested = raw.get("extraDataConfigPerResult")
    return ExtraData(
        where=where,
        static_endpoint=raw.get("staticEndpoint") or "",
        dynamic_location=raw.get("dynamicEndpointLocation") or "",
        endpoint_template=raw.get("endpointTemplate") or "",
        endpoint_id_location=raw.get("endpointIdLocation") or "",
        sub_object_id=raw.get("subObjectId") or "",
        key=raw.get("keyToSetExtraData") or "",
        merge=_truthy(raw.get("mergeExtraData")),
        unset_config_keys=tuple(unset if isinstance(unset, list) else [unset] if unset else []),
        source=str(raw.get("source") or raw.get("sourceId") or ""),
        per_result=_entry(nested, where=f"{where}.extraDataConfigPerResult") if isinstance(nested, dict) else None,
        results_location=raw.get("resultsLocation") or "",
    )


def extra_data_configs(source_config: dict[str, Any] | None) -> list[ExtraData]:
    """Return the entries of sourceConfig.extraDataConfigs (check extra_data_problems first)."""
    raw = (source_config or {}).get("extraDataConfigs")
    if not isinstance(raw, list):
        return []
    return [_entry(entry, where=f"extraDataConfigs[{index}]") for index, entry in enumerate(raw)
            if isinstance(entry, dict)]


# ---------------------------------------------------------------------------------------------
# Fetching


def _render(template: str, *, variables: dict[str, Any], where: str) -> str:
    """Render an endpoint template in the mapping sandbox."""
    if "{{" not in template and "{%" not in template:
        return template

    try:
        return endpoint_render(template, variables=variables)
    except MappingError as error:
        raise EnrichmentFailed(f"{where}: {error}") from None


def _id_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return quote(str(value), safe="")


def _result_shaped(entry: ExtraData, *, result: dict[str, Any], detail: Any) -> Any:
    """Return what one result of a detail becomes with its own detail, as OpenConnector's
    fetchExtraDataForObject returns it: the detail (at keyToSetExtraData), merged into the result only
    with mergeExtraData."""
    shaped: Any
    if entry.key:
        shaped = copy.deepcopy(result) if entry.merge else {}
        try:
            set_path(shaped, entry.key, detail)
        except (ValueError, TypeError) as error:
            raise EnrichmentFailed(f"{entry.where}.keyToSetExtraData {entry.key!r}: {error}") from None
        return shaped
    if not entry.merge:
        return detail
    if not isinstance(detail, dict):
        raise EnrichmentFailed(
            f"{entry.where}: the detail is a {type(detail).__name__}, not an object to merge into the result; "
            "set keyToSetExtraData"
        )
    return {**result, **detail}


@dataclass
class Enrichment:
    """What enriching a page's objects brought: objects by their index, failures by index, requests made."""

    before_conditions: bool
    # Only objects whose list entry changed were enriched: their hash is the list entry's.
    only_changed: bool = False
    objects: dict[int, Any] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    requests: int = 0


class Enricher:
    """Fetch the details of a synchronization's objects; built once per run and worker process."""

    def __init__(self, synchronization):
        self.synchronization = synchronization
        self.source_config: dict[str, Any] = synchronization.source_config or {}
        self.configs = extra_data_configs(self.source_config)
        self.before_conditions = before_conditions(self.source_config)
        self.only_changed = only_when_changed(self.source_config)
        self.concurrency = concurrency_of(self.source_config)
        names = {item.source for entry in self.configs for item in _walk(entry) if item.source}
        self.sources = {source.reference: source for source in Source.objects.filter(reference__in=names)}
        self._calls: dict[tuple[str, tuple[str, ...]], Any] = {}

    def _source(self, entry: ExtraData):
        if entry.source:
            source = self.sources.get(entry.source)
            if source is None:
                raise EnrichmentFailed(f"{entry.where}.source: no source with reference {entry.source!r}")
        else:
            source = self.synchronization.source
            if source is None:
                raise EnrichmentFailed(
                    f"{entry.where}: the synchronization has no source to ask; name one with `source`"
                )
        # Details are calls of the API kind (its call settings, credentials and budget): part of that kind.
        if source.type != "api":
            raise EnrichmentFailed(f"{entry.where}: source {source.reference!r} is not an HTTP (api) source")
        return source

    def _call(self, source, entry: ExtraData):
        """Return the call settings of a detail request: the source's, then the sourceConfig's, less unset keys."""
        key = (source.reference, entry.unset_config_keys)
        if key not in self._calls:
            self._calls[key] = (call_settings(source=source, source_config=self._config(entry)), self._config(entry))
        return self._calls[key]

    def _config(self, entry: ExtraData) -> dict[str, Any]:
        """Return the sourceConfig of a detail call, less its unsetConfigKey keys: `query` drops `query` and
        every `query.x`; `query.zql` drops that key, written flat or inside `query`."""
        config = copy.deepcopy(self.source_config)
        for unset in entry.unset_config_keys:
            for name in [name for name in config if name == unset or name.startswith(f"{unset}.")]:
                del config[name]
            if "." in unset or DOT in unset:
                delete_path(config, unset)
        return config

    def endpoint(self, entry: ExtraData, *, obj: dict[str, Any], origin_id: str) -> str:
        """Return the endpoint of an object's detail, as configured."""
        return self._endpoint(entry, obj=obj, origin_id=origin_id)[0]

    def _endpoint(self, entry: ExtraData, *, obj: dict[str, Any], origin_id: Any) -> tuple[str, Any]:
        """Return the endpoint of an object's detail and the origin id it was made with (endpointIdLocation's)."""
        endpoint = ""
        if entry.dynamic_location:
            found = get_path(obj, entry.dynamic_location)
            if found is not MISSING and found not in (None, "") and not isinstance(found, dict | list):
                endpoint = str(found)
        if entry.static_endpoint:
            if entry.endpoint_id_location:
                found = get_path(obj, entry.endpoint_id_location)
                if found is MISSING or found in (None, "") or isinstance(found, dict | list):
                    raise EnrichmentFailed(
                        f"{entry.where}.endpointIdLocation {entry.endpoint_id_location!r} holds no id in the object"
                    )
                origin_id = found
            variables: dict[str, Any] = {"originId": _id_text(origin_id), "object": obj}
            if entry.sub_object_id:
                found = get_path(obj, entry.sub_object_id)
                if found is not MISSING and found not in (None, "") and not isinstance(found, dict | list):
                    variables["subObjectId"] = _id_text(found)
            endpoint = _render(entry.static_endpoint, variables=variables, where=f"{entry.where}.staticEndpoint")
        if entry.endpoint_template:
            variables = {"endpoint": endpoint, "object": obj, "originId": _id_text(origin_id)}
            endpoint = _render(entry.endpoint_template, variables=variables, where=f"{entry.where}.endpointTemplate")
        if not endpoint:
            what = (f"dynamicEndpointLocation {entry.dynamic_location!r} holds no endpoint" if entry.dynamic_location
                    and not entry.static_endpoint else "the endpoint rendered empty")
            raise EnrichmentFailed(f"{entry.where}: {what} for this object")
        return endpoint, origin_id

    def fetch(self, entry: ExtraData, *, endpoint: str, on_wait: OnWait | None, count: Callable[[], None],
              measure: Callable[[Any, str], None] = lambda body, what: None) -> Any:
        """Return the body of a detail request; an error that is the object's raises EnrichmentFailed.

        `measure(body, what)` counts the body against the page's budget (PageTooLarge fails the page).
        """
        source = self._source(entry)
        call, config = self._call(source, entry)
        url = url_join(location=source.location, endpoint=endpoint)
        count()
        try:
            fetched = fetch_page(source=source, source_config=config, request=PageRequest(url=url), on_wait=on_wait,
                                 call=call)
        except SourceError as error:  # RateLimited is not one: the page is retried later
            raise EnrichmentFailed(f"{entry.where}: {error}") from None
        measure(fetched.body, f"the detail at {fetched.url or endpoint} ({entry.where})")
        return fetched.body

    def enrich_one(
        self, entry: ExtraData, *, obj: dict[str, Any], origin_id: str, on_wait: OnWait | None,
        count: Callable[[], None], measure: Callable[[Any, str], None] = lambda body, what: None,
    ) -> Any:
        """Return the detail of one object (or of one result of a detail), its results enriched in turn."""
        endpoint, origin_id = self._endpoint(entry, obj=obj, origin_id=origin_id)
        extra = self.fetch(entry, endpoint=endpoint, on_wait=on_wait, count=count, measure=measure)
        nested = entry.per_result
        if nested is not None:
            results = get_path(extra, entry.results_location) if entry.results_location else extra
            if isinstance(results, dict):
                results = dict(results)
                keys = list(results)
            elif isinstance(results, list):
                results = list(results)
                keys = list(range(len(results)))
            else:
                where = f"resultsLocation {entry.results_location!r}" if entry.results_location else "the answer"
                raise EnrichmentFailed(f"{entry.where}: {where} holds no list of results to enrich")
            for key in keys:
                if not isinstance(results[key], dict):
                    # OpenConnector fails the object here too (a result must be an array to enrich).
                    raise EnrichmentFailed(
                        f"{nested.where}: result {key!r} is a {type(results[key]).__name__}, not an object to enrich"
                    )
                detail = self.enrich_one(nested, obj=results[key], origin_id=origin_id, on_wait=on_wait,
                                         count=count, measure=measure)
                results[key] = _result_shaped(nested, result=results[key], detail=detail)
            extra = results
        return extra

    def enrich(self, obj: dict[str, Any], *, origin_id: str, on_wait: OnWait | None = None,
               count: Callable[[], None] = lambda: None,
               measure: Callable[[Any, str], None] = lambda body, what: None) -> dict[str, Any]:
        """Return the object with the details of every extraDataConfigs entry set or merged into it."""
        enriched = copy.deepcopy(obj)
        requests = 0

        def counted() -> None:
            nonlocal requests
            requests += 1
            if requests > MAX_REQUESTS_PER_OBJECT:
                raise EnrichmentFailed(f"more than {MAX_REQUESTS_PER_OBJECT} detail requests for one object")
            count()

        for entry in self.configs:
            extra = self.enrich_one(entry, obj=enriched, origin_id=origin_id, on_wait=on_wait, count=counted,
                                    measure=measure)
            if entry.key:
                try:
                    set_path(enriched, entry.key, extra)
                except (ValueError, TypeError) as error:
                    raise EnrichmentFailed(f"{entry.where}.keyToSetExtraData {entry.key!r}: {error}") from None
            elif isinstance(extra, dict):
                enriched.update(extra)
            else:
                raise EnrichmentFailed(
                    f"{entry.where}: the detail is a {type(extra).__name__}, not an object to merge; "
                    "set keyToSetExtraData"
                )
        return enriched


def objects_enrich(
    *, enricher: Enricher, objects: list[Any], chosen: list[tuple[int, str]], on_wait: OnWait | None = None,
    budget: PageBudget | None = None,
) -> Enrichment:
    """Enrich the chosen objects of a page ((index, origin id) pairs); a failure is that object's alone.

    Up to `extraDataConcurrency` objects are enriched at once, each thread with its own database
    connection (closed when it ends) and HTTP session; the source's request budget and rate limits
    hold for all of them together. A rate limit too long to wait out (RateLimited) stops the others
    and is raised, so the page is retried later. The details count against the page's `budget`
    together with its objects: one over it stops the others and raises PageTooLarge, failing the page.
    """
    result = Enrichment(before_conditions=enricher.before_conditions, only_changed=enricher.only_changed)
    lock = threading.Lock()
    pending = iter(chosen)
    stop: list[BaseException] = []

    def count() -> None:
        with lock:
            result.requests += 1

    def measure(body: Any, what: str) -> None:
        if budget is None:
            return
        size = value_size(body)
        with lock:
            budget.add(size, what=what)  # one answer is bounded by the HTTP layer (SYNC_HTTP_MAX_RESPONSE_BYTES)

    def work() -> None:
        while True:
            with lock:
                if stop:
                    return
                item = next(pending, None)
            if item is None:
                return
            index, origin_id = item
            try:
                enriched = enricher.enrich(objects[index], origin_id=origin_id, on_wait=on_wait, count=count,
                                           measure=measure)
            except EnrichmentFailed as error:
                with lock:
                    result.failures[index] = f"enrichment failed: {error}"
                continue
            except BaseException as error:  # RateLimited, or a bug: the page's task decides
                with lock:
                    stop.append(error)
                return
            with lock:
                result.objects[index] = enriched

    threads = min(enricher.concurrency, len(chosen))
    if threads <= 1:
        work()
    else:
        def in_thread() -> None:
            try:
                work()
            finally:
                connections.close_all()  # this thread's own connections

        # Each thread in a copy of this one's context: its log lines name the run and page it works for.
        workers = [threading.Thread(target=contextvars.copy_context().run, args=(in_thread,), name="enrich",
                                    daemon=True) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    if stop:
        raise stop[0]
    return result
