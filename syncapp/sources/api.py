"""Read pages of objects from an HTTP source: settings, authentication, JSON and XML, extraction.

Settings of a call come from the source's `configuration`, then the synchronization's
`sourceConfig`; later wins per key (headers compare without regard to letter case), dotted keys like
`headers.Accept` or `query.status` are accepted, and a `null` value removes what an earlier level set:

    {"headers": {"Accept": "application/json"}, "query": {"status": "active"},
     "connectTimeout": 5, "timeout": 30, "verify": false}

`timeout` (or `readTimeout`, `read_timeout`) is the read timeout, `connectTimeout` (or
`connect_timeout`) the connect timeout, in seconds; `verify` turns TLS verification off, or names a CA
bundle file. Every error names the URL, the status and the content type, never a secret.

A source's `configuration` may also set a request budget kept by all workers together,
`"rateLimit": {"requests": 10, "per": "second"}` (`per`: second, minute, hour, day or seconds); the
calls themselves, with rate limits, retries and waits, are syncapp.http's.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from xml.etree.ElementTree import Element, ParseError

import orjson
import requests
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as xml_fromstring
from django.conf import settings

from syncapp.authentication import (
    AuthenticationFailed,
    Authenticator,
    CredentialsError,
    authenticator_for,
    mask_url,
    redact,
)
from syncapp.authentication import snippet as redacted_snippet
from syncapp.dotpath import MISSING, get_path
from syncapp.egress import cross_host_refused, location_problems, same_origin
from syncapp.errors import SourceError, TransientSourceError
from syncapp.hashing import hash_hashes, hash_value
from syncapp.http import HttpError, OnWait, RateLimited, TransientHttpError, budget_problems, http_request
from syncapp.models import Source, Synchronization
from syncapp.pagination import (
    PageRequest,
    PaginationConfig,
    first_page_request,
    next_page_request,
    page_repeats_previous,
    pagination_from_source_config,
    query_split,
)
from syncapp.sources import Fetched, ReadPage, reader_type, source_record_check

logger = logging.getLogger(__name__)

AUTO_RESULTS_KEYS = ("items", "result", "results", "data")
DEFAULT_ACCEPT = "application/json, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
CONNECT_TIMEOUT_KEYS = ("connectTimeout", "connect_timeout")
READ_TIMEOUT_KEYS = ("timeout", "readTimeout", "read_timeout")
VERIFY_KEYS = ("verify", "verifyTls", "verify_tls", "verifySsl", "verify_ssl")


@dataclass
class FetchedPage:
    url: str  # with secrets masked: fit for messages
    status: int
    headers: dict[str, str]
    body: Any
    format: str = "json"  # or "xml"
    # Query parameters that carry a secret on every call; next links must not keep them.
    secret_params: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class CallSettings:
    """What every call of a synchronization to its source carries."""

    headers: dict[str, str]
    query: dict[str, Any]
    timeout: tuple[float, float]
    verify: bool | str


# ---------------------------------------------------------------------------------------------
# Settings


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


def _header_value(value: Any) -> str:
    # A list (OpenConnector's merge makes them of repeated headers) is one header with its values joined.
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _set_header(headers: dict[str, str], name: str, value: Any) -> None:
    for existing in [key for key in headers if key.lower() == name.lower()]:
        del headers[existing]
    if value is not None:
        headers[name] = _header_value(value)


def _first_key(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in config and config[key] not in (None, ""):
            return config[key]
    return MISSING


def _seconds(value: Any, *, name: str) -> float:
    if isinstance(value, bool):
        raise SourceError(f"{name} must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise SourceError(f"{name} must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise SourceError(f"{name} must be more than 0 seconds, got {value!r}")
    return seconds


def _verify(value: Any, *, name: str) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, str) and value.strip():
        return value.strip()  # a CA bundle file
    raise SourceError(f"{name} must be true, false or the path of a CA bundle, got {value!r}")


def call_settings(*, source: Source, source_config: dict[str, Any]) -> CallSettings:
    """Return the headers, query, timeouts and TLS verification of every call: the source's, then the
    synchronization's."""
    headers: dict[str, str] = {}
    query: dict[str, Any] = {}
    connect: float = settings.SYNC_HTTP_CONNECT_TIMEOUT
    read: float = settings.SYNC_HTTP_READ_TIMEOUT
    verify: bool | str = True
    levels = (("configuration", source.configuration or {}), ("sourceConfig", source_config or {}))
    for where, config in levels:
        if not isinstance(config, dict):
            continue
        for name, value in _split_dotted(config, name="headers").items():
            _set_header(headers, str(name), value)
        for name, value in _split_dotted(config, name="query").items():
            if value is None:
                query.pop(str(name), None)
            else:
                query[str(name)] = value
        value = _first_key(config, CONNECT_TIMEOUT_KEYS)
        if value is not MISSING:
            connect = _seconds(value, name=f"{where}.connectTimeout")
        value = _first_key(config, READ_TIMEOUT_KEYS)
        if value is not MISSING:
            read = _seconds(value, name=f"{where}.timeout")
        value = _first_key(config, VERIFY_KEYS)
        if value is not MISSING:
            verify = _verify(value, name=f"{where}.verify")
    return CallSettings(headers=headers, query=query, timeout=(connect, read), verify=verify)


def configuration_problems(configuration: Any, *, path: str) -> list[str]:
    """Return the problems of a source configuration (call settings and request budget), with their path."""
    if not isinstance(configuration, dict):
        return []
    return _call_problems(configuration, path=path) + budget_problems(
        configuration.get("rateLimit"), path=f"{path}.rateLimit"
    )


def _call_problems(configuration: dict[str, Any], *, path: str) -> list[str]:
    """Return the problems of the call settings (headers, query, timeouts, TLS), with their path."""
    problems = []
    for name in ("headers", "query"):
        if name in configuration and configuration[name] is not None and not isinstance(configuration[name], dict):
            problems.append(f"{path}.{name}: must be an object")
    for keys, check in ((CONNECT_TIMEOUT_KEYS, _seconds), (READ_TIMEOUT_KEYS, _seconds), (VERIFY_KEYS, _verify)):
        for key in keys:
            if configuration.get(key) in (None, ""):
                continue
            try:
                check(configuration[key], name=f"{path}.{key}")
            except SourceError as error:
                problems.append(str(error).replace(f"{path}.{key} ", f"{path}.{key}: ", 1))
    return problems


def source_config_problems(source_config: Any, *, path: str) -> list[str]:
    """Return the problems of a sourceConfig's call settings and endpoint template, with their path."""
    if not isinstance(source_config, dict):
        return []
    problems = _call_problems(source_config, path=path)
    if source_config.get("rateLimit") is not None:
        # One budget per source, kept by every synchronization that reads it.
        problems.append(f"{path}.rateLimit: a request budget belongs in the source's configuration")
    for key in ("resultsPosition", "idPosition"):
        value = source_config.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{path}.{key}: must be text (a dot path), got {type(value).__name__}")
    endpoint = source_config.get("endpoint")
    if endpoint is not None and not isinstance(endpoint, str):
        problems.append(f"{path}.endpoint: must be text")
    elif endpoint and ("{{" in endpoint or "{%" in endpoint):
        from syncapp.mapping import validate_mapping_config

        for problem in validate_mapping_config({"mapping": {"endpoint": endpoint}}):
            problems.append(f"{path}.{problem.removeprefix('mapping.')}")
    return problems


def _endpoint_render(endpoint: str, *, variables: dict[str, Any]) -> str:
    """Render an endpoint template (Jinja2, in the mapping sandbox) with the run's variables."""
    from syncapp.mapping import MappingError, MappingSpec, apply_mapping

    try:
        rendered = apply_mapping(spec=MappingSpec(mapping={"endpoint": endpoint}), data=variables)
    except MappingError as error:
        raise SourceError(f"sourceConfig.endpoint: {error}") from None
    value = rendered.get("endpoint") if isinstance(rendered, dict) else rendered
    return "" if value is None else str(value)


def endpoint_url(
    *, source: Source, source_config: dict[str, Any], variables: dict[str, Any] | None = None
) -> str:
    """Return the source location with the synchronization's endpoint appended.

    An endpoint with template syntax is rendered first, with `variables` (the run's) as its context.
    A query in the location and one in the endpoint are both kept.
    """
    endpoint = str(source_config.get("endpoint") or "")
    if "{{" in endpoint or "{%" in endpoint:
        endpoint = _endpoint_render(endpoint, variables=variables or {})
    return url_join(location=source.location, endpoint=endpoint)


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


# ---------------------------------------------------------------------------------------------
# Calls


def _call_params(*, call: CallSettings, request: PageRequest) -> dict[str, Any]:
    """Return the query of a call: configured, then the request's; a next link's own query wins."""
    _, url_query = query_split(request.url)
    params = {**call.query, **request.params}
    return {key: value for key, value in params.items() if key not in url_query}


def fetch_page(
    *, source: Source, source_config: dict[str, Any], request: PageRequest, on_wait: OnWait | None = None,
    call: CallSettings | None = None,
) -> FetchedPage:
    """Fetch one page and return its decoded body; every error is free of secrets.

    Rate limits, the source's request budget and retries are the HTTP layer's (syncapp.http): each wait
    is reported to `on_wait`, and a wait too long to happen here raises RateLimited (not a SourceError:
    the page is not lost, its task is retried later).
    """
    call = call or call_settings(source=source, source_config=source_config)
    try:
        auth = authenticator_for(source=source, timeout=call.timeout, verify=call.verify)
    except CredentialsError as error:
        raise SourceError(f"the credentials of source {source.reference!r} are not usable: {error}") from None
    try:
        return _fetch(call=call, auth=auth, request=request, source=source, on_wait=on_wait)
    except AuthenticationFailed as error:
        raise SourceError(redact(str(error), auth.secrets)) from None
    except SourceError as error:
        raise type(error)(redact(str(error), auth.secrets)) from None
    except RateLimited as limited:
        raise RateLimited(
            redact(str(limited), auth.secrets), wait_seconds=limited.wait_seconds, url=limited.url
        ) from None


def _get(
    *, url: str, params: dict[str, Any], headers: dict[str, str], call: CallSettings, source: Source,
    secret_params: frozenset[str], secret_headers: frozenset[str], secrets: list[str], on_wait: OnWait | None,
) -> requests.Response:
    try:
        return http_request(
            method="GET", url=url, params=params, headers=headers, timeout=call.timeout, verify=call.verify,
            source=source, secret_params=secret_params, secret_headers=secret_headers, secrets=secrets,
            on_wait=on_wait,
        )
    except TransientHttpError as error:
        raise TransientSourceError(str(error)) from None
    except HttpError as error:
        raise SourceError(str(error)) from None


def _fetch(
    *, call: CallSettings, auth: Authenticator, request: PageRequest, source: Source, on_wait: OnWait | None = None
) -> FetchedPage:
    secret_params = auth.credentials.secret_params
    headers = dict(call.headers)
    if not any(name.lower() == "accept" for name in headers):
        headers["Accept"] = DEFAULT_ACCEPT
    params = _call_params(call=call, request=request)
    # Credentials go to the source's own host only: a next link or Link header may name any other.
    own_host = same_origin(request.url, source.location)
    if not own_host and cross_host_refused():
        raise SourceError(
            f"{mask_url(request.url, secret_params=secret_params)} is on another host than source "
            f"{source.reference!r} ({source.location}); SYNC_CROSS_HOST_REQUESTS is refuse"
        )
    if own_host:
        auth.apply(headers=headers, params=params)
    options = {
        "url": request.url, "call": call, "source": source, "secret_params": secret_params,
        "secret_headers": auth.credentials.secret_headers, "secrets": auth.secrets, "on_wait": on_wait,
    }
    response = _get(params=params, headers=headers, **options)
    if response.status_code == 401 and auth.can_refresh and own_host:
        # The cached token may have been revoked or expired early: fetch a new one, once.
        auth.refresh()
        auth.apply(headers=headers, params=params)
        response = _get(params=params, headers=headers, **options)
    url = mask_url(response.url, secret_params=secret_params)
    body, kind = decode_body(response, url=url, secrets=auth.secrets)
    return FetchedPage(
        url=url, status=response.status_code, headers=dict(response.headers), body=body, format=kind,
        secret_params=secret_params,
    )


# ---------------------------------------------------------------------------------------------
# Bodies


def _body_kind(content_type: str, content: bytes) -> str:
    """Return json, xml or html: by the content type, else by the first characters of the body."""
    media = content_type.split(";", 1)[0].strip().lower()
    if "json" in media:
        return "json"
    if "html" in media:
        return "html"
    if "xml" in media:
        return "xml"
    start = content.lstrip()[:200].lower()
    if start.startswith((b"{", b"[")):
        return "json"
    if start.startswith(b"<"):
        return "html" if (b"<html" in start or b"<!doctype html" in start) else "xml"
    return "json"


def decode_body(response: requests.Response, *, url: str, secrets: Iterable[str] = ()) -> tuple[Any, str]:
    """Return the body of an answer as JSON data, and whether it was json or xml."""
    status = response.status_code
    content_type = response.headers.get("Content-Type", "") or "no content type"
    snippet = redacted_snippet(response.text, secrets)
    if status >= 400:
        hint = ": check the source's credentials" if status in (401, 403) else ""
        raise SourceError(f"GET {url} answered {status} ({content_type}){hint}: {snippet!r}")
    if not response.content.strip():
        raise SourceError(f"GET {url} answered {status} ({content_type}) with an empty body")
    kind = _body_kind(content_type, response.content)
    if kind == "html":
        raise SourceError(
            f"GET {url} answered {status} with {content_type}, not JSON or XML (an HTML page): {snippet!r}"
        )
    if kind == "xml":
        try:
            return xml_to_data(xml_fromstring(response.content)), "xml"
        except (ParseError, DefusedXmlException, ValueError, LookupError, RecursionError) as error:
            raise SourceError(
                f"GET {url} answered {status} with {content_type}, not valid XML ({error}): {snippet!r}"
            ) from None
    try:
        return orjson.loads(response.content), "json"
    except orjson.JSONDecodeError:
        pass  # not strict JSON (NaN, a BOM, another encoding): the json module is more lenient
    # The declared charset, else UTF-8 (with or without a BOM), decoded strictly: bytes that are not
    # text in it are an error of the page, not characters silently replaced.
    charset = response.encoding if "charset" in content_type.lower() and response.encoding else "utf-8-sig"
    try:
        text = response.content.decode(charset)
    except (UnicodeDecodeError, LookupError) as error:
        raise SourceError(
            f"GET {url} answered {status} with {content_type}, not valid {charset.removesuffix('-sig')} text "
            f"({error})"
        ) from None
    try:
        return json.loads(text), "json"
    except (ValueError, RecursionError) as error:
        reason = "it nests too deep" if isinstance(error, RecursionError) else str(error)
        raise SourceError(
            f"GET {url} answered {status} with {content_type}, not JSON ({reason}): {snippet!r}"
        ) from None


def _local_name(tag: str) -> str:
    """Return a tag or attribute name without its `{namespace}`."""
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def xml_to_data(element: Element) -> dict[str, Any]:
    """Return an XML element as a dict, as OpenConnector reads XML.

    Attributes go under `@attributes`, text under `#text`; a child element that occurs more than once
    becomes a list. The root element's own name is dropped: its content is the body.
    """
    result: dict[str, Any] = {}
    if element.attrib:
        result["@attributes"] = {_local_name(name): value for name, value in element.attrib.items()}
    for child in element:
        if not isinstance(child.tag, str):
            continue  # a comment or processing instruction
        name = _local_name(child.tag)
        value = xml_to_data(child)
        if name not in result:
            result[name] = value
        elif isinstance(result[name], list):
            result[name].append(value)
        else:
            result[name] = [result[name], value]
    text = (element.text or "").strip()
    if text:
        result["#text"] = text
    return result


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


def concurrency_of(source_config: dict[str, Any]) -> int:
    """Return sourceConfig.concurrency: how many pages may be fetched at once (default SYNC_PAGE_CONCURRENCY)."""
    value = source_config.get("concurrency", settings.SYNC_PAGE_CONCURRENCY)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
        raise SourceError(f"sourceConfig.concurrency must be a whole number from 1 to 32, got {value!r}")
    return value


@reader_type(Synchronization.SourceType.API)
class ApiReader:
    """Pages of an HTTP API: its pagination, authentication, rate limits and answers (JSON or XML)."""

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
        if current.mode == "page" and current.page is not None and config.type in ("page", "auto"):
            params = {**current.params, config.page_param: current.page + steps}
            predicted = PageRequest(url=current.url, params=params, page=current.page + steps, mode="page",
                                    carry=current.carry)
            return predicted.to_json()
        if current.mode == "offset" and current.offset is not None and config.type == "offset":
            offset = current.offset + steps * config.limit
            params = {**current.params, config.offset_param: offset}
            predicted = PageRequest(url=current.url, params=params, offset=offset, mode="offset", carry=current.carry)
            return predicted.to_json()
        return None  # next links, Link headers and cursors are known only from the page before

    def same_request(self, first: dict[str, Any], second: dict[str, Any]) -> bool:
        return first.get("url") == second.get("url") and (first.get("params") or {}) == (second.get("params") or {})


@source_record_check(Source.Type.API)
def api_source_problems(*, location: Any, credentials: Any, has_upload: bool, path: str) -> list[str]:
    """Return the problems of an API source as saved: its base URL must be one the egress policy allows."""
    return location_problems(location if isinstance(location, str) else "", path=f"{path}location")
