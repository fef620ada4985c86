"""Read pages of objects from an HTTP source."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from syncapp.dotpath import MISSING, get_path
from syncapp.models import Source
from syncapp.pagination import PageRequest

logger = logging.getLogger(__name__)

AUTO_RESULTS_KEYS = ("items", "result", "results", "data")


class SourceError(Exception):
    """The source could not be read, or answered something that is not a page of objects."""


class TransientSourceError(SourceError):
    """The source failed in a way that may pass: a timeout, a dropped connection, a 5xx."""


@dataclass
class FetchedPage:
    url: str
    status: int
    headers: dict[str, str]
    body: Any


def _split_dotted(config: dict[str, Any], *, name: str) -> dict[str, Any]:
    """Return config[name] merged with dotted keys like `headers.Accept`; later wins per key."""
    merged: dict[str, Any] = {}
    nested = config.get(name)
    if isinstance(nested, dict):
        merged.update(nested)
    prefix = f"{name}."
    for key, value in config.items():
        if isinstance(key, str) and key.startswith(prefix):
            merged[key[len(prefix):]] = value
    return merged


def request_settings(*, source: Source, source_config: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Return the headers and query of every call: the source's, then the synchronization's."""
    headers: dict[str, str] = {}
    query: dict[str, Any] = {}
    for config in (source.configuration or {}, source_config or {}):
        headers.update({str(k): str(v) for k, v in _split_dotted(config, name="headers").items()})
        query.update(_split_dotted(config, name="query"))
    return headers, query


def endpoint_url(*, source: Source, source_config: dict[str, Any]) -> str:
    """Return the source location with the synchronization's endpoint appended."""
    location = source.location.rstrip("/")
    endpoint = str(source_config.get("endpoint") or "")
    if endpoint.startswith(("http://", "https://")):
        return endpoint
    if not endpoint:
        return location
    return f"{location}/{endpoint.lstrip('/')}"


def _timeouts(source: Source) -> tuple[float, float]:
    config = source.configuration or {}
    connect = config.get("connectTimeout", settings.SYNC_HTTP_CONNECT_TIMEOUT)
    read = config.get("timeout", config.get("readTimeout", settings.SYNC_HTTP_READ_TIMEOUT))
    return float(connect), float(read)


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, TransientSourceError)


@retry(
    retry=retry_if_exception(_is_transient),
    stop=stop_after_attempt(3),
    wait=wait_exponential_jitter(multiplier=0.5, max=5),
    reraise=True,
)
def _get(*, url: str, params: dict[str, Any], headers: dict[str, str], timeout: tuple[float, float]):
    try:
        response = requests.get(url, params=params, headers=headers, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as error:
        raise TransientSourceError(f"GET {url}: {type(error).__name__}: {error}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientSourceError(f"GET {response.url} answered {response.status_code}")
    return response


def fetch_page(*, source: Source, source_config: dict[str, Any], request: PageRequest) -> FetchedPage:
    """Fetch one page and return its decoded body."""
    headers, query = request_settings(source=source, source_config=source_config)
    headers.setdefault("Accept", "application/json")
    params = {**query, **request.params} if request.mode != "next" else dict(request.params)
    response = _get(url=request.url, params=params, headers=headers, timeout=_timeouts(source))
    content_type = response.headers.get("Content-Type", "")
    if response.status_code >= 400:
        raise SourceError(
            f"GET {response.url} answered {response.status_code} ({content_type or 'no content type'}): "
            f"{response.text[:200]!r}"
        )
    if not response.content.strip():
        raise SourceError(f"GET {response.url} answered {response.status_code} with an empty body")
    try:
        body = response.json()
    except ValueError:
        raise SourceError(
            f"GET {response.url} answered {response.status_code} with {content_type or 'no content type'}, "
            f"not JSON: {response.text[:200]!r}"
        ) from None
    return FetchedPage(url=response.url, status=response.status_code, headers=dict(response.headers), body=body)


def extract_objects(*, body: Any, results_position: str | None, url: str) -> list[Any]:
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
    raise SourceError(
        f"{url}: no list of objects found in the body (looked for {', '.join(AUTO_RESULTS_KEYS)}); "
        "set resultsPosition"
    )
