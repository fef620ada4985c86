"""Find the next page of a source: page numbers, next links, or none.

A page request is plain JSON (`{"url": ..., "params": {...}, ...}`) so it can be stored on the
run's page record and handed to the task that fetches it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from syncapp.dotpath import MISSING, get_path

PAGINATION_TYPES = ("auto", "page", "next", "none")
NEXT_LINK_PATHS = ("next", "links.next", "links.next.href", "_links.next.href", "@odata.nextLink", "meta.next")
TOTAL_PATHS = ("count", "total", "totalCount", "meta.total", "meta.count", "pagination.total")


class PaginationError(ValueError):
    """The pagination settings are wrong, or the source's pages would loop."""


@dataclass(frozen=True)
class PaginationConfig:
    type: str = "auto"
    page_param: str = "page"
    start_page: int = 1
    page_size_param: str | None = None
    page_size: int | None = None
    total_path: str | None = None
    next_path: str | None = None
    stop_on_empty_page: bool = True
    max_pages: int | None = None


@dataclass
class PageRequest:
    """What to ask the source for one page, and what is known from the pages before it."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)
    page: int | None = None
    seen_objects: int = 0
    previous_fingerprint: str | None = None
    seen_urls: list[str] = field(default_factory=list)
    mode: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "params": self.params,
            "page": self.page,
            "seenObjects": self.seen_objects,
            "previousFingerprint": self.previous_fingerprint,
            "seenUrls": self.seen_urls,
            "mode": self.mode,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageRequest:
        return cls(
            url=data["url"],
            params=dict(data.get("params") or {}),
            page=data.get("page"),
            seen_objects=data.get("seenObjects", 0),
            previous_fingerprint=data.get("previousFingerprint"),
            seen_urls=list(data.get("seenUrls") or []),
            mode=data.get("mode"),
        )


def _as_bool(value: Any, *, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "1", "0"}:
        return value.lower() in {"true", "1"}
    raise PaginationError(f"{name} must be true or false, got {value!r}")


def _as_int(value: Any, *, name: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise PaginationError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise PaginationError(f"{name} must be at least {minimum}, got {number}")
    return number


def pagination_from_source_config(source_config: dict[str, Any]) -> PaginationConfig:
    """Return the pagination settings of a sourceConfig, OpenConnector's names included."""
    raw = source_config.get("pagination")
    if raw is None:
        raw = {}
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        raise PaginationError("pagination must be an object like {\"type\": \"page\"}")
    kind = raw.get("type", "auto")
    if "usesPagination" in source_config and not _as_bool(
        source_config["usesPagination"], name="usesPagination"
    ):
        kind = "none"
    if kind not in PAGINATION_TYPES:
        raise PaginationError(f"pagination.type must be one of {', '.join(PAGINATION_TYPES)}, got {kind!r}")
    page_param = raw.get("pageParam") or source_config.get("paginationQuery") or "page"
    max_pages = raw.get("maxPages", source_config.get("maxPages"))
    config = PaginationConfig(
        type=kind,
        page_param=str(page_param),
        start_page=_as_int(raw.get("startPage", 1), name="pagination.startPage"),
        page_size_param=raw.get("pageSizeParam"),
        page_size=_as_int(raw["pageSize"], name="pagination.pageSize", minimum=1) if "pageSize" in raw else None,
        total_path=raw.get("totalPath"),
        next_path=raw.get("nextPath"),
        stop_on_empty_page=_as_bool(raw.get("stopOnEmptyPage", True), name="pagination.stopOnEmptyPage"),
        max_pages=_as_int(max_pages, name="maxPages", minimum=1) if max_pages not in (None, "") else None,
    )
    if config.page_size_param and config.page_size is None:
        raise PaginationError("pagination.pageSize is needed with pagination.pageSizeParam")
    return config


def first_page_request(*, config: PaginationConfig, url: str, params: dict[str, Any]) -> PageRequest:
    """Return the request of the first page."""
    params = dict(params)
    if config.type == "page":
        params[config.page_param] = config.start_page
        if config.page_size_param:
            params[config.page_size_param] = config.page_size
        return PageRequest(url=url, params=params, page=config.start_page, mode="page")
    return PageRequest(url=url, params=params, page=config.start_page if config.type == "auto" else None)


def _find_next_link(*, config: PaginationConfig, body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    paths = (config.next_path,) if config.next_path else NEXT_LINK_PATHS
    for path in paths:
        value = get_path(body, path)
        if isinstance(value, dict):
            value = value.get("href")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _find_total(*, config: PaginationConfig, body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    paths = (config.total_path,) if config.total_path else TOTAL_PATHS
    for path in paths:
        value = get_path(body, path)
        if value is MISSING or isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return int(value)
    return None


def next_page_request(
    *,
    config: PaginationConfig,
    current: PageRequest,
    body: Any,
    object_count: int,
    fingerprint: str,
) -> PageRequest | None:
    """Return the request of the page after this one, or None when this was the last page."""
    if config.type == "none":
        return None
    seen_objects = current.seen_objects + object_count
    seen_urls = [*current.seen_urls, _request_key(current)][-50:]

    if config.type in ("next", "auto") and current.mode in (None, "next"):
        link = _find_next_link(config=config, body=body)
        if link is not None:
            url = urljoin(current.url, link)
            candidate = PageRequest(
                url=url, params={}, seen_objects=seen_objects, seen_urls=seen_urls,
                previous_fingerprint=fingerprint, mode="next",
            )
            if _request_key(candidate) in seen_urls:
                raise PaginationError(f"the source repeats its next link {url}: stopping instead of looping")
            return candidate
        if config.type == "next" or current.mode == "next":
            return None

    # Page numbers: explicit `page`, or `auto` when the body offers no next link.
    if object_count == 0 and config.stop_on_empty_page:
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
        previous_fingerprint=fingerprint, seen_urls=seen_urls, mode="page",
    )


def page_repeats_previous(*, config: PaginationConfig, current: PageRequest, fingerprint: str) -> bool:
    """Return True when this page is the page before it again, under `auto`: the source does not page.

    Under explicit pagination a repeated page is an error, not the end.
    """
    if current.previous_fingerprint is None or current.previous_fingerprint != fingerprint:
        return False
    if config.type == "auto" and current.mode == "page":
        return True
    raise PaginationError(
        f"page {current.page or ''} at {current.url} repeats the page before it: stopping instead of looping"
    )


def _request_key(request: PageRequest) -> str:
    query = "&".join(f"{key}={value}" for key, value in sorted(request.params.items()))
    return f"{request.url}?{query}" if query else request.url
