"""Read pages of objects from an HTTP source: the reader of `api` sources, and the objects of a page.

The calls (settings, authentication, JSON and XML bodies) are syncapp.outbound.calls'; pages are
found by syncapp.pagination.
"""
from __future__ import annotations

import logging
from typing import Any, Literal

from django.conf import settings

from syncapp.declared import Declared, DotPath, Flag, Template
from syncapp.dotpath import MISSING, get_path
from syncapp.egress import location_problems
from syncapp.errors import SourceError
from syncapp.hashing import hash_hashes, hash_value
from syncapp.http import OnWait
from syncapp.models import Source, Synchronization
from syncapp.outbound.calls import (
    call_settings,
    configuration_problems,
    endpoint_url,
    fetch_page,
    source_config_problems,
)
from syncapp.pagination import (
    PageRequest,
    PaginationConfig,
    first_page_request,
    next_page_request,
    page_repeats_previous,
    pagination_from_source_config,
)
from syncapp.sources.base import Fetched, ReaderKind, ReadPage, concurrency_of, reader_type, source_record_check
from syncapp.sources.declarations import CallOptions, HttpSourceConfiguration, RunSettings

logger = logging.getLogger(__name__)

AUTO_RESULTS_KEYS = ("items", "result", "results", "data")


# ---------------------------------------------------------------------------------------------
# Objects of a page


def _xml_single(value: Any) -> list[Any] | None:
    """Return an XML element that occurs once as a list of one: XML cannot say it is a list."""
    return [value] if isinstance(value, dict) else None


def extract_objects(*, body: Any, results_position: str | None, url: str, xml: bool = False) -> list[Any]:
    """Return the list of objects in a page body; a body without one is an error naming the URL."""
    if results_position == "_root":
        if isinstance(body, list):
            return body
        raise SourceError(f"{url}: resultsPosition is _root but the body is a {type(body).__name__}, not a list")
    if results_position == "_object":
        if isinstance(body, dict):
            return [body]
        raise SourceError(f"{url}: resultsPosition is _object but the body is not an object")
    if results_position:
        found = get_path(body, results_position)
        if isinstance(found, list):
            return found
        if xml and _xml_single(found) is not None:
            return [found]
        what = "nothing" if found is MISSING else f"a {type(found).__name__}"
        raise SourceError(f"{url}: resultsPosition {results_position!r} holds {what}, not a list")
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in AUTO_RESULTS_KEYS:
            if isinstance(body.get(key), list):
                return body[key]
        lists = [key for key, value in body.items() if isinstance(value, list)]
        if len(lists) == 1:
            return body[lists[0]]
        if xml and not lists:
            elements = [key for key, value in body.items() if key not in ("@attributes", "#text")]
            if len(elements) == 1 and isinstance(body[elements[0]], dict):
                return [body[elements[0]]]
    raise SourceError(
        f"{url}: no list of objects found in the body (looked for {', '.join(AUTO_RESULTS_KEYS)} and the only "
        "list at the top level); set resultsPosition"
    )


# ---------------------------------------------------------------------------------------------
# The reader of `api` sources


class Pagination(Declared):
    """How the next page is found (syncapp.pagination); `auto` finds a next link, a Link header or page numbers."""

    type: Literal["auto", "page", "offset", "cursor", "next", "link_header", "none"] | None = None
    """The kind of pagination (default auto)."""
    page_param: str | None = None
    """page: the query parameter of the page number (default page)."""
    start_page: int | None = None
    """page: the number of the first page (default 1)."""
    page_size_param: str | None = None
    """page: the query parameter of the page size (needs pageSize)."""
    page_size: int | None = None
    """page: the page size sent."""
    offset_param: str | None = None
    """offset: the query parameter of the offset (default offset)."""
    limit_param: str | None = None
    """offset: the query parameter of the limit (default limit)."""
    limit: int | None = None
    """offset: the limit sent."""
    start_offset: int | None = None
    """offset: the first offset (default 0)."""
    cursor_path: DotPath | None = None
    """cursor: where the next cursor is in the answer."""
    cursor_param: str | None = None
    """cursor: the query parameter the cursor is sent as (default cursor)."""
    next_path: DotPath | None = None
    """next: where the next page's link is in the answer."""
    total_path: DotPath | None = None
    """Where the total count is in the answer."""
    has_more_path: DotPath | None = None
    """Where a has-more flag is in the answer."""
    stop_on_empty_page: Flag | None = None
    """page: an empty page is the end (default true)."""
    max_pages: int | None = None
    """Another place for sourceConfig.maxPages."""


class WriteBack(Declared):
    """Where objects changed in the register are sent back to (default the endpoint + /{{ targetId }}, PUT)."""

    update_endpoint: Template | None = None
    """The endpoint of the update, a template with targetId."""
    update_method: str | None = None
    """The method of the update: PUT (default), PATCH or POST."""


class ApiSourceConfig(RunSettings, CallOptions):
    """sourceConfig of a synchronization that reads pages of an HTTP API."""

    endpoint: Template | None = None
    """Appended to the source's location; may be a template (/changes?since={{ lastSync }})."""
    results_position: DotPath | None = None
    """_root, _object, a dot path, or unset: items, result, results, data, then the only list."""
    concurrency: int | None = None
    """Pages fetched at once, 1 to 32 (default SYNC_PAGE_CONCURRENCY); other kinds read a page after another."""
    pagination: Pagination | Literal["auto", "page", "offset", "cursor", "next", "link_header", "none"] | None = None
    """How the next page is found."""
    uses_pagination: Flag | None = None
    """OpenConnector's switch: false reads one page."""
    pagination_query: str | None = None
    """OpenConnector's name of the page parameter."""
    write_back: Flag | WriteBack | None = None
    """Two-way sync: send objects changed in the register back to the source (needs targetSourceMapping)."""
    conflict_winner: Literal["source", "target", "manual"] | None = None
    """Two-way sync: who wins when an object changed on both sides (default source)."""


@reader_type("api", label="API")
class ApiReader(ReaderKind):
    """Pages of an HTTP API: its pagination, authentication, rate limits and answers (JSON or XML)."""

    declaration = ApiSourceConfig
    reads_ahead = True

    def __init__(self, synchronization: Synchronization):
        self.source: Source = synchronization.source
        self.source_config: dict[str, Any] = synchronization.source_config or {}
        self.pagination: PaginationConfig = pagination_from_source_config(self.source_config)
        self.results_position: str | None = self.source_config.get("resultsPosition") or None
        self.concurrency = concurrency_of(self.source_config)
        self.max_pages = self.pagination.max_pages
        # Read once per run and worker process, not per request.
        self.call = call_settings(source=self.source, source_config=self.source_config)

    @staticmethod
    def config_problems(source_config: dict[str, Any], *, path: str) -> list[str]:
        problems = source_config_problems(source_config, path=path)
        incremental = source_config.get("incremental")
        endpoint = source_config.get("endpoint")
        if (
            isinstance(incremental, dict) and not incremental.get("param")
            and not (isinstance(endpoint, str) and "cursor" in endpoint)
        ):
            # Never sent, the cursor would change nothing read, and the runs called incremental would
            # never delete what vanished.
            problems.append(f"{path}.incremental.param: name the query parameter the cursor is sent as (or use "
                            "{{ cursor.value }} in the endpoint)")
        return problems

    @staticmethod
    def problem(synchronization: Synchronization) -> str | None:
        if synchronization.source is None:
            return f"synchronization {synchronization.reference!r} has no api source (sourceId)"
        return None

    def first_request(self, *, variables: dict[str, Any]) -> dict[str, Any]:
        url = endpoint_url(source=self.source, source_config=self.source_config, variables=variables)
        # An incremental run's cursor goes with the first page and, carried, with every page after it.
        cursor = variables.get("cursor") or {}
        params = {cursor["param"]: cursor["value"]} if cursor.get("param") else {}
        return first_page_request(config=self.pagination, url=url, params=params).to_json()

    def fetch(self, *, request: dict[str, Any], on_wait: OnWait | None = None) -> Fetched:
        fetched = fetch_page(
            source=self.source, source_config=self.source_config, request=PageRequest.from_json(request),
            on_wait=on_wait, call=self.call,
        )
        return Fetched(
            request=request, body=fetched.body, url=fetched.url, headers=fetched.headers, format=fetched.format,
            meta={"secretParams": sorted(fetched.secret_params)},
        )

    def page(self, *, request: dict[str, Any], fetched: Fetched) -> ReadPage:
        current = PageRequest.from_json(request)
        objects = extract_objects(
            body=fetched.body, results_position=self.results_position, url=fetched.url, xml=fetched.format == "xml"
        )
        if len(objects) > settings.SYNC_MAX_PAGE_OBJECTS:
            raise SourceError(
                f"{fetched.url}: the page holds {len(objects):,} objects, more than {settings.SYNC_MAX_PAGE_OBJECTS:,} "
                "(SYNC_MAX_PAGE_OBJECTS): ask for smaller pages"
            )
        hashes = [hash_value(obj) for obj in objects]
        fingerprint = hash_hashes(hashes)
        if page_repeats_previous(config=self.pagination, current=current, fingerprint=fingerprint):
            return ReadPage(objects=[], hashes=[], next_request=None)
        following = next_page_request(
            config=self.pagination, current=current, body=fetched.body, headers=fetched.headers,
            object_count=len(objects), fingerprint=fingerprint,
            drop_params=frozenset(fetched.meta.get("secretParams") or ()),
        )
        return ReadPage(objects=objects, hashes=hashes, next_request=following.to_json() if following else None)

    def ahead(self, *, request: dict[str, Any], steps: int) -> dict[str, Any] | None:
        current = PageRequest.from_json(request)
        config = self.pagination
        if current.pages_left is not None and steps >= current.pages_left:
            return None  # past the last page the source said it has
        if current.after_short:
            return None  # the page before was shorter than the one before it: this one is likely the last
        if current.mode == "page" and current.page is not None and config.type in ("page", "auto"):
            params = {**current.params, config.page_param: current.page + steps}
            predicted = PageRequest(url=current.url, params=params, page=current.page + steps, mode="page",
                                    carry=current.carry)
            return predicted.to_json()
        if current.mode == "offset" and current.offset is not None and config.type == "offset":
            # By the objects a page held: a server that caps the limit answers fewer than asked for.
            offset = current.offset + steps * (current.page_objects or config.limit)
            params = {**current.params, config.offset_param: offset}
            predicted = PageRequest(url=current.url, params=params, offset=offset, mode="offset", carry=current.carry)
            return predicted.to_json()
        return None  # next links, Link headers and cursors are known only from the page before

    def same_request(self, first: dict[str, Any], second: dict[str, Any]) -> bool:
        return first.get("url") == second.get("url") and (first.get("params") or {}) == (second.get("params") or {})


@source_record_check(
    "api", label="API", configuration=HttpSourceConfiguration, configuration_check=configuration_problems,
)
def api_source_problems(*, location: Any, credentials: Any, has_upload: bool, path: str) -> list[str]:
    """Return the problems of an API source as saved: its base URL must be one the egress policy allows."""
    return location_problems(location if isinstance(location, str) else "", path=f"{path}location")
