"""Find the next page of a source: page numbers, offsets, cursors, next links, Link headers, or none.

A page request is plain JSON (`{"url": ..., "params": {...}, ...}`) so it can be stored on the
run's page record and handed to the task that fetches it. Everything here is a pure function of the
settings, the request and the answer; the HTTP calls live in `syncapp.outbound.calls`.

The keys of `sourceConfig.pagination` (all optional but `type`), with OpenConnector's
`usesPagination`, `paginationQuery` and `maxPages` on `sourceConfig` itself still understood:

    {"type": "page",   "pageParam": "page", "startPage": 1, "pageSizeParam": "per_page", "pageSize": 100,
                       "totalPath": "count", "hasMorePath": "meta.has_more", "stopOnEmptyPage": true}
    {"type": "offset", "offsetParam": "offset", "limitParam": "limit", "limit": 100, "startOffset": 0,
                       "totalPath": "total", "hasMorePath": "has_more"}
    {"type": "cursor", "cursorPath": "meta.next_cursor", "cursorParam": "cursor", "hasMorePath": "meta.has_more"}
    {"type": "next",   "nextPath": "_links.next.href"}
    {"type": "link_header"}
    {"type": "none"}
    {"type": "auto"}   (the default: a next link in the body, else a Link header, else page numbers)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from syncapp.dotpath import MISSING, get_path
from syncapp.errors import PaginationError
from syncapp.outbound.masking import mask_url
from syncapp.outbound.urls import query_split, url_without_params

PAGINATION_TYPES = ("auto", "page", "offset", "cursor", "next", "link_header", "none")
PAGINATION_KEYS = frozenset({
    "type", "pageParam", "startPage", "pageSizeParam", "pageSize", "offsetParam", "limitParam", "limit",
    "startOffset", "cursorPath", "cursorParam", "nextPath", "totalPath", "hasMorePath", "stopOnEmptyPage",
    "maxPages",
})
NEXT_LINK_PATHS = (
    "next", "links.next", "links.next.href", "_links.next.href", "@odata.nextLink", "odata.nextLink",
    "meta.next", "pagination.next", "paging.next", "nextLink", "next_page_url",
)
TOTAL_PATHS = (
    "count", "total", "totalCount", "total_count", "@odata.count", "meta.total", "meta.count",
    "pagination.total", "page.totalElements",
)
CURSOR_PATHS = (
    "next_cursor", "nextCursor", "meta.next_cursor", "meta.nextCursor", "pagination.next_cursor",
    "pagination.nextCursor", "response_metadata.next_cursor", "paging.cursors.after", "cursor.next",
)
HAS_MORE_PATHS = ("has_more", "hasMore", "meta.has_more", "meta.hasMore", "pagination.has_more", "pagination.hasMore")
# How many earlier requests a run remembers to notice a loop; a longer loop ends at maxPages.
REMEMBERED_REQUESTS = 50
DEFAULT_LIMIT = 100
_LINK_PART = re.compile(r"<(?P<url>[^>]*)>(?P<params>[^,<]*)")
_REL = re.compile(r"""rel\s*=\s*(?:"(?P<quoted>[^"]*)"|(?P<bare>[^;,\s]+))""", re.IGNORECASE)


@dataclass(frozen=True)
class PaginationConfig:
    type: str = "auto"
    page_param: str = "page"
    start_page: int = 1
    page_size_param: str | None = None
    page_size: int | None = None
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = DEFAULT_LIMIT
    start_offset: int = 0
    cursor_path: str | None = None
    cursor_param: str = "cursor"
    next_path: str | None = None
    total_path: str | None = None
    has_more_path: str | None = None
    stop_on_empty_page: bool = True
    max_pages: int | None = None

    @property
    def positional_params(self) -> frozenset[str]:
        """Return the parameters that say which page this is: a next link must not inherit them."""
        return frozenset({self.page_param, self.offset_param, self.cursor_param})


@dataclass
class PageRequest:
    """What to ask the source for one page, and what is known from the pages before it.

    `carry` holds the query of the endpoint, which every page keeps: a next link that drops one of
    those parameters gets it back. Known from the page before, for guessing the pages after this one
    (page numbers, offsets): `pages_left`, the pages from this one to the last when the source said how
    many objects it holds; `page_objects`, the objects of the page before; `after_short`, whether that
    page held fewer than the one before it, a sign that this one is the last.
    """

    url: str
    params: dict[str, Any] = field(default_factory=dict)
    page: int | None = None
    offset: int | None = None
    seen_objects: int = 0
    previous_fingerprint: str | None = None
    seen_urls: list[str] = field(default_factory=list)
    mode: str | None = None
    carry: dict[str, Any] = field(default_factory=dict)
    pages_left: int | None = None
    page_objects: int | None = None
    after_short: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "params": self.params,
            "page": self.page,
            "offset": self.offset,
            "seenObjects": self.seen_objects,
            "previousFingerprint": self.previous_fingerprint,
            "seenUrls": self.seen_urls,
            "mode": self.mode,
            "carry": self.carry,
            "pagesLeft": self.pages_left,
            "pageObjects": self.page_objects,
            "afterShort": self.after_short,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageRequest:
        return cls(
            url=data["url"],
            params=dict(data.get("params") or {}),
            page=data.get("page"),
            offset=data.get("offset"),
            seen_objects=data.get("seenObjects", 0),
            previous_fingerprint=data.get("previousFingerprint"),
            seen_urls=list(data.get("seenUrls") or []),
            mode=data.get("mode"),
            carry=dict(data.get("carry") or {}),
            pages_left=data.get("pagesLeft"),
            page_objects=data.get("pageObjects"),
            after_short=bool(data.get("afterShort")),
        )


def _as_bool(value: Any, *, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.strip().lower() in {"true", "1", "yes"}
    raise PaginationError(f"{name} must be true or false, got {value!r}")


def _as_int(value: Any, *, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise PaginationError(f"{name} must be a whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise PaginationError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise PaginationError(f"{name} must be at least {minimum}, got {number}")
    return number


def _as_name(value: Any, *, name: str, default: str | None) -> str | None:
    """Return a parameter name or dot path; blank means the default."""
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise PaginationError(f"{name} must be text, got {value!r}")
    return value.strip() or default


def _max_pages_default() -> int | None:
    """Return the service-wide safety limit on pages, when Django settings are there to ask."""
    try:
        from django.conf import settings

        return int(getattr(settings, "SYNC_DEFAULT_MAX_PAGES", 0)) or None
    except Exception:  # settings not configured: a plain library use
        return None


def pagination_from_source_config(source_config: dict[str, Any]) -> PaginationConfig:
    """Return the pagination settings of a sourceConfig, OpenConnector's names included."""
    if not isinstance(source_config, dict):
        raise PaginationError("sourceConfig must be an object")
    raw = source_config.get("pagination")
    if raw is None or raw == [] or raw == "":
        raw = {}  # PHP writes an empty object as []
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        raise PaginationError('pagination must be an object like {"type": "page"}')
    unknown = sorted(str(key) for key in raw if key not in PAGINATION_KEYS)
    if unknown:
        raise PaginationError(
            f"pagination.{unknown[0]} is not a pagination setting (known: {', '.join(sorted(PAGINATION_KEYS))})"
        )
    kind = raw.get("type", "auto")
    if "usesPagination" in source_config and not _as_bool(source_config["usesPagination"], name="usesPagination"):
        kind = "none"
    if kind not in PAGINATION_TYPES:
        raise PaginationError(f"pagination.type must be one of {', '.join(PAGINATION_TYPES)}, got {kind!r}")
    page_param = _as_name(
        raw.get("pageParam") or source_config.get("paginationQuery"), name="pagination.pageParam", default="page"
    )
    max_pages = raw.get("maxPages", source_config.get("maxPages"))
    max_pages = (
        _as_int(max_pages, name="maxPages", minimum=1) if max_pages not in (None, "") else _max_pages_default()
    )
    config = PaginationConfig(
        type=kind,
        page_param=page_param,
        start_page=_as_int(raw.get("startPage", 1), name="pagination.startPage"),
        page_size_param=_as_name(raw.get("pageSizeParam"), name="pagination.pageSizeParam", default=None),
        page_size=_as_int(raw["pageSize"], name="pagination.pageSize", minimum=1) if "pageSize" in raw else None,
        offset_param=_as_name(raw.get("offsetParam"), name="pagination.offsetParam", default="offset"),
        limit_param=_as_name(raw.get("limitParam"), name="pagination.limitParam", default="limit"),
        limit=_as_int(raw.get("limit", DEFAULT_LIMIT), name="pagination.limit", minimum=1),
        start_offset=_as_int(raw.get("startOffset", 0), name="pagination.startOffset"),
        cursor_path=_as_name(raw.get("cursorPath"), name="pagination.cursorPath", default=None),
        cursor_param=_as_name(raw.get("cursorParam"), name="pagination.cursorParam", default="cursor"),
        next_path=_as_name(raw.get("nextPath"), name="pagination.nextPath", default=None),
        total_path=_as_name(raw.get("totalPath"), name="pagination.totalPath", default=None),
        has_more_path=_as_name(raw.get("hasMorePath"), name="pagination.hasMorePath", default=None),
        stop_on_empty_page=_as_bool(raw.get("stopOnEmptyPage", True), name="pagination.stopOnEmptyPage"),
        max_pages=max_pages,
    )
    if config.page_size_param and config.page_size is None:
        raise PaginationError("pagination.pageSize is needed with pagination.pageSizeParam")
    if config.type == "offset" and config.offset_param == config.limit_param:
        raise PaginationError("pagination.offsetParam and pagination.limitParam must differ")
    if config.type == "page" and not config.stop_on_empty_page and not (config.total_path or config.has_more_path):
        raise PaginationError(
            "pagination.stopOnEmptyPage false needs pagination.totalPath or pagination.hasMorePath to know the end"
        )
    return config


# ---------------------------------------------------------------------------------------------
# Requests


def first_page_request(*, config: PaginationConfig, url: str, params: dict[str, Any]) -> PageRequest:
    """Return the request of the first page; the endpoint's own query is kept for every page."""
    base_url, endpoint_query = query_split(url)
    carry = {**endpoint_query, **params}
    request_params = dict(carry)
    if config.type == "page":
        request_params[config.page_param] = config.start_page
        if config.page_size_param:
            request_params[config.page_size_param] = config.page_size
        return PageRequest(url=base_url, params=request_params, page=config.start_page, mode="page", carry=carry)
    if config.type == "offset":
        request_params[config.offset_param] = config.start_offset
        request_params[config.limit_param] = config.limit
        return PageRequest(
            url=base_url, params=request_params, offset=config.start_offset, mode="offset", carry=carry
        )
    if config.type == "cursor":
        return PageRequest(url=base_url, params=request_params, mode="cursor", carry=carry)
    return PageRequest(
        url=base_url, params=request_params, page=config.start_page if config.type == "auto" else None, carry=carry
    )


def _looks_like_link(value: str) -> bool:
    """Return whether a body value is a URL rather than, say, a cursor token or a page number."""
    return value.startswith(("http://", "https://", "/", "?", "./", "../"))


def _find_next_link(*, config: PaginationConfig, body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    paths = (config.next_path,) if config.next_path else NEXT_LINK_PATHS
    for path in paths:
        value = get_path(body, path)
        if isinstance(value, dict):
            value = value.get("href", value.get("#text"))
        if isinstance(value, str) and value.strip():
            link = value.strip()
            # Under auto-detection a `next` that is not a URL (a page number, a token) is not a link.
            if config.next_path or config.type == "next" or _looks_like_link(link):
                return link
    return None


def link_header_next(headers: dict[str, str] | None) -> str | None:
    """Return the target of the `rel="next"` link of an HTTP Link header (RFC 8288), if any."""
    if not headers:
        return None
    values = [value for name, value in headers.items() if name.lower() == "link"]
    for value in values:
        for match in _LINK_PART.finditer(value):
            rel = _REL.search(match["params"])
            if rel is None:
                continue
            relations = (rel["quoted"] if rel["quoted"] is not None else rel["bare"]).lower().split()
            if "next" in relations and match["url"].strip():
                return match["url"].strip()
    return None


def _first_value(body: Any, paths: tuple[str, ...]) -> Any:
    if not isinstance(body, dict):
        return MISSING
    for path in paths:
        value = get_path(body, path)
        if value is not MISSING:
            return value
    return MISSING


def _find_total(*, config: PaginationConfig, body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    paths = (config.total_path,) if config.total_path else TOTAL_PATHS
    for path in paths:
        value = get_path(body, path)
        if isinstance(value, dict):
            value = value.get("#text", MISSING)  # an XML element
        if value is MISSING or isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return int(value)
    return None


def _find_has_more(*, config: PaginationConfig, body: Any) -> bool | None:
    """Return the body's has-more flag, or None when it has none."""
    value = _first_value(body, (config.has_more_path,) if config.has_more_path else HAS_MORE_PATHS)
    if isinstance(value, dict):
        value = value.get("#text", MISSING)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def _find_cursor(*, config: PaginationConfig, body: Any) -> str | None:
    value = _first_value(body, (config.cursor_path,) if config.cursor_path else CURSOR_PATHS)
    if isinstance(value, dict):
        value = value.get("#text", MISSING)
    if value is MISSING or value is None or isinstance(value, (bool, list, dict)):
        return None
    text = str(value).strip()
    return text or None


def _request_key(request: PageRequest) -> str:
    query = "&".join(f"{key}={value}" for key, value in sorted(request.params.items()))
    return f"{request.url}?{query}" if query else request.url


def _follow(
    *,
    config: PaginationConfig,
    current: PageRequest,
    link: str,
    mode: str,
    seen_objects: int,
    seen_urls: list[str],
    fingerprint: str | None,
    drop_params: frozenset[str],
) -> PageRequest:
    """Return the request of a next link, keeping the endpoint's query the link leaves out."""
    try:
        joined = urljoin(current.url, link)
    except ValueError as error:
        raise PaginationError(f"the next link {link[:200]!r} is not a valid URL ({error})") from None
    url = url_without_params(joined, drop_params)
    query_split(url)  # a link that is no URL fails here, not when it is asked for
    _, link_query = query_split(url)
    carried = {
        key: value
        for key, value in current.carry.items()
        if key not in link_query and key not in config.positional_params and key not in drop_params
    }
    candidate = PageRequest(
        url=url, params=carried, seen_objects=seen_objects, seen_urls=seen_urls,
        previous_fingerprint=fingerprint, mode=mode, carry=current.carry,
    )
    key = _request_key(candidate)
    if key in seen_urls or key == _request_key(current):
        what = "Link header" if mode == "link" else "next link"
        raise PaginationError(f"the source repeats its {what} {mask_url(url)}: stopping instead of looping")
    return candidate


def next_page_request(
    *,
    config: PaginationConfig,
    current: PageRequest,
    body: Any,
    object_count: int,
    fingerprint: str,
    headers: dict[str, str] | None = None,
    drop_params: frozenset[str] = frozenset(),
) -> PageRequest | None:
    """Return the request of the page after this one, or None when this was the last page.

    `drop_params` names query parameters never stored in a request (an API key in the query: it is
    added to every call, and a next link that repeats it must not keep it in the run's records).
    """
    if config.type == "none":
        return None
    seen_objects = current.seen_objects + object_count
    seen_urls = [*current.seen_urls, _request_key(current)][-REMEMBERED_REQUESTS:]
    # An empty page has nothing to compare: two empty pages in a row are not a loop by themselves.
    remembered = fingerprint if object_count else None
    follow = {
        "config": config, "current": current, "seen_objects": seen_objects, "seen_urls": seen_urls,
        "fingerprint": remembered, "drop_params": drop_params,
    }

    if config.type in ("next", "auto") and current.mode in (None, "next"):
        link = _find_next_link(config=config, body=body)
        if link is not None:
            return _follow(link=link, mode="next", **follow)
        if config.type == "next" or current.mode == "next":
            return None

    if config.type in ("link_header", "auto") and current.mode in (None, "link"):
        link = link_header_next(headers)
        if link is not None:
            return _follow(link=link, mode="link", **follow)
        if config.type == "link_header" or current.mode == "link":
            return None

    if config.type == "cursor":
        return _next_cursor_request(
            config=config, current=current, body=body, seen_objects=seen_objects, seen_urls=seen_urls,
            fingerprint=remembered,
        )
    if config.type == "offset":
        return _next_offset_request(
            config=config, current=current, body=body, object_count=object_count, seen_objects=seen_objects,
            seen_urls=seen_urls, fingerprint=remembered,
        )
    return _next_page_number_request(
        config=config, current=current, body=body, object_count=object_count, seen_objects=seen_objects,
        seen_urls=seen_urls, fingerprint=remembered,
    )


def _pages_left(*, total: int | None, seen_objects: int, page_size: int) -> int | None:
    """Return how many pages of `page_size` hold the objects not seen yet, when the total is known."""
    if total is None or page_size <= 0:
        return None
    return -(-(total - seen_objects) // page_size)


def _short(*, current: PageRequest, object_count: int) -> bool:
    """Return whether a page held fewer objects than the page before it."""
    return current.page_objects is not None and object_count < current.page_objects


def _next_page_number_request(
    *,
    config: PaginationConfig,
    current: PageRequest,
    body: Any,
    object_count: int,
    seen_objects: int,
    seen_urls: list[str],
    fingerprint: str | None,
) -> PageRequest | None:
    """Page numbers: explicit `page`, or `auto` when the body offers no next link."""
    if object_count == 0 and config.stop_on_empty_page:
        return None
    if _find_has_more(config=config, body=body) is False:
        return None
    total = _find_total(config=config, body=body)
    if total is not None and seen_objects >= total:
        return None
    page = (current.page if current.page is not None else config.start_page) + 1
    params = dict(current.params)
    params[config.page_param] = page
    if config.page_size_param and config.page_size_param not in params:
        params[config.page_size_param] = config.page_size
    return PageRequest(
        url=current.url, params=params, page=page, seen_objects=seen_objects,
        previous_fingerprint=fingerprint, seen_urls=seen_urls, mode="page", carry=current.carry,
        pages_left=_pages_left(total=total, seen_objects=seen_objects, page_size=object_count),
        page_objects=object_count, after_short=_short(current=current, object_count=object_count),
    )


def _next_offset_request(
    *,
    config: PaginationConfig,
    current: PageRequest,
    body: Any,
    object_count: int,
    seen_objects: int,
    seen_urls: list[str],
    fingerprint: str | None,
) -> PageRequest | None:
    """Offsets: advance by the objects received, so a server that caps the limit skips nothing."""
    if object_count == 0:
        return None
    if _find_has_more(config=config, body=body) is False:
        return None
    offset = (current.offset if current.offset is not None else config.start_offset) + object_count
    total = _find_total(config=config, body=body)
    if total is not None:
        if offset >= total:
            return None
    elif object_count < config.limit:
        return None  # a short page is the last one when the source does not say how many there are
    params = {**current.params, config.offset_param: offset, config.limit_param: config.limit}
    return PageRequest(
        url=current.url, params=params, offset=offset, seen_objects=seen_objects,
        previous_fingerprint=fingerprint, seen_urls=seen_urls, mode="offset", carry=current.carry,
        pages_left=_pages_left(total=total, seen_objects=offset, page_size=object_count),
        page_objects=object_count, after_short=_short(current=current, object_count=object_count),
    )


def _next_cursor_request(
    *,
    config: PaginationConfig,
    current: PageRequest,
    body: Any,
    seen_objects: int,
    seen_urls: list[str],
    fingerprint: str | None,
) -> PageRequest | None:
    """Cursors: the body names the next page's cursor; none, or has-more false, ends the run."""
    if _find_has_more(config=config, body=body) is False:
        return None
    cursor = _find_cursor(config=config, body=body)
    if cursor is None:
        return None
    if current.params.get(config.cursor_param) == cursor:
        raise PaginationError(
            f"the source repeats its cursor {cursor!r} at {mask_url(current.url)}: stopping instead of looping"
        )
    candidate = PageRequest(
        url=current.url, params={**current.params, config.cursor_param: cursor}, seen_objects=seen_objects,
        previous_fingerprint=fingerprint, seen_urls=seen_urls, mode="cursor", carry=current.carry,
    )
    if _request_key(candidate) in seen_urls:
        raise PaginationError(
            f"the source returns cursor {cursor!r} at {mask_url(current.url)} a second time: "
            "stopping instead of looping"
        )
    return candidate


def page_repeats_previous(*, config: PaginationConfig, current: PageRequest, fingerprint: str) -> bool:
    """Return True when this page is the page before it again, under `auto`: the source does not page.

    Under explicit pagination a repeated page is an error, not the end.
    """
    if current.previous_fingerprint is None or current.previous_fingerprint != fingerprint:
        return False
    if config.type == "auto" and current.mode == "page":
        return True
    if current.page is not None:
        where = f"page {current.page} at {mask_url(current.url)}"
    else:
        where = f"the page at {mask_url(_request_key(current))}"
    raise PaginationError(f"{where} repeats the page before it: stopping instead of looping")
