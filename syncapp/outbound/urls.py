"""Take URLs apart and put them together: queries as dicts, parameters removed, endpoints joined."""
from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from syncapp.errors import PaginationError


def _split(url: str) -> SplitResult:
    """Return the parts of a URL; one that is not a URL (a next link `http://[::1`) is a PaginationError."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it is what validates it
    except ValueError as error:
        raise PaginationError(f"{url[:200]!r} is not a valid URL ({error})") from None
    return parts


def query_split(url: str) -> tuple[str, dict[str, Any]]:
    """Return the URL without its query, and the query as a dict (a repeated key gives a list)."""
    parts = _split(url)
    query: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in query:
            existing = query[key]
            query[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            query[key] = value
    return urlunsplit(parts._replace(query="")), query


def url_without_params(url: str, names: frozenset[str] | set[str]) -> str:
    """Return the URL with the named query parameters removed, the rest in their order."""
    if not names:
        return url
    parts = _split(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(key, value) for key, value in pairs if key not in names]
    if len(kept) == len(pairs):
        return url
    return urlunsplit(parts._replace(query=urlencode(kept)))


def url_join(*, location: str, endpoint: str) -> str:
    """Return an endpoint appended to a source location; an absolute URL stays as it is.

    A query in the location and one in the endpoint are both kept.
    """
    if endpoint.startswith(("http://", "https://")):
        return endpoint
    if not endpoint:
        return location
    location = urlsplit(location)
    path_part, _, endpoint_query = endpoint.partition("?")
    path = location.path.rstrip("/")
    if path_part:
        path = f"{path}/{path_part.lstrip('/')}"
    query = "&".join(part for part in (location.query, endpoint_query) if part)
    return urlunsplit(location._replace(path=path, query=query))
