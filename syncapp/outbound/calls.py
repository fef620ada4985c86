"""Call an HTTP source or API: the settings of every call, one page fetched and its body decoded.

Settings of a call come from the source's `configuration`, then the synchronization's
`sourceConfig`; later wins per key (headers compare without regard to letter case), dotted keys like
`headers.Accept` or `query.status` are accepted, and a `null` value removes what an earlier level set:

    {"headers": {"Accept": "application/json"}, "query": {"status": "active"},
     "connectTimeout": 5, "timeout": 30, "verify": false}

`timeout` (or `readTimeout`, `read_timeout`) is the read timeout, `connectTimeout` (or
`connect_timeout`) the connect timeout, in seconds, each at most `SYNC_HTTP_MAX_TIMEOUT`; `verify`
turns TLS verification off, or names a CA bundle file. Every error names the URL, the status and the
content type, never a secret.

A source's `configuration` may also set a request budget kept by all workers together,
`"rateLimit": {"requests": 10, "per": "second"}` (`per`: second, minute, hour, day or seconds); the
calls themselves, with rate limits, retries and waits, are syncapp.http's. The api source, the file
source, the api target and enrichment all call through here.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import orjson
import requests
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as xml_fromstring
from django.conf import settings
from pydantic import Field, JsonValue, field_validator, model_validator

from syncapp.authentication import (
    AuthenticationFailed,
    Authenticator,
    CredentialsError,
    authenticator_for,
    guzzle_auth_credentials,
    guzzle_auth_folded,
)
from syncapp.declared import Declared
from syncapp.dotpath import MISSING
from syncapp.egress import cross_host_refused, same_origin
from syncapp.errors import SourceError, TransientSourceError
from syncapp.http import HttpError, OnWait, RateLimited, TransientHttpError, budget_problems, http_request
from syncapp.mapping import MappingError, MappingSpec, apply_mapping, validate_mapping_config
from syncapp.models import Source
from syncapp.outbound.masking import is_secret_name, mask_url, redact
from syncapp.outbound.masking import snippet as redacted_snippet
from syncapp.outbound.urls import query_split, url_join
from syncapp.pagination import PageRequest

Seconds = float | int | str
"""A number of seconds (10, 2.5)."""
Verify = bool | str
"""true, false (only where SYNC_TLS_VERIFY_OFF_ALLOWED permits), the path of a CA bundle, or a CA certificate
itself (PEM text, as OpenConnector passes it to Guzzle)."""

BASIC_EXAMPLE = '{"type": "basic", "username": "...", "password": "..."}'


def _secrets_refused(value: dict[str, JsonValue] | None, *, field: str) -> dict[str, JsonValue] | None:
    """Refuse a header or query parameter that carries a secret: a configuration is shown, exported and
    sent where its calls go, while credentials are write-only, encrypted and bound to the source's origin.
    The value is never quoted."""
    named = sorted(name for name, item in (value or {}).items() if is_secret_name(name) and item not in (None, ""))
    if named:
        kind = "header" if field == "headers" else "query parameter"
        if named[0].lower() in ("authorization", "proxy-authorization"):
            example = '{"type": "bearer", "token": "..."}'
        else:
            where = "header" if field == "headers" else "query"
            example = f'{{"type": "apiKey", "in": "{where}", "name": "{named[0]}", "value": "..."}}'
        raise ValueError(
            f"{', '.join(f'`{name}`' for name in named)}: a {kind} that carries a secret goes in the source's "
            f"`credentials` (write-only, encrypted, sent only to the source's own origin), e.g. {example}"
        )
    return value


class CallOptions(Declared):
    """How a source is called over HTTP: merged over the source's own configuration, later wins."""

    headers: dict[str, JsonValue] | None = None
    """Headers of every call (`headers.X` may also be written as its own key); not secrets (Authorization,
    Cookie, X-Api-Key, …): those go in the source's credentials."""
    query: dict[str, JsonValue] | None = None
    """Query parameters of every call (`query.x` may also be written as its own key); not secrets (api_key,
    token, …): those go in the source's credentials."""
    connect_timeout: Seconds | None = Field(None, alias="connectTimeout")
    """Seconds to wait for a connection (also Guzzle's `connect_timeout`)."""
    timeout: Seconds | None = None
    """Seconds to wait for an answer (also `readTimeout`)."""
    read_timeout: Seconds | None = Field(None, alias="readTimeout")
    """Another name for `timeout`."""
    verify: Verify | None = None
    """TLS verification: a CA bundle's path, or a CA certificate as PEM text (OpenConnector's Guzzle option);
    false turns it off, refused unless the operator allows it (SYNC_TLS_VERIFY_OFF_ALLOWED). Also `verifyTls`,
    `verifySsl`."""
    verify_tls: Verify | None = Field(None, alias="verifyTls")
    """Another name for `verify`."""
    verify_ssl: Verify | None = Field(None, alias="verifySsl")
    """Another name for `verify`."""
    auth: JsonValue = None
    """Guzzle's `[username, password]` (OpenConnector's basic authentication): refused here, since a password
    goes in the source's `credentials` ({"type": "basic", ...}); importing from OpenConnector moves it there."""

    @model_validator(mode="before")
    @classmethod
    def _fold_dotted(cls, value: Any) -> Any:
        """Read `headers.X` and `query.x` keys as entries of headers and query, as the calls do,
        `auth.0`, `auth.1` as Guzzle's auth list, and `connect_timeout` (Guzzle's name) as connectTimeout."""
        if not isinstance(value, dict):
            return value
        value = guzzle_auth_folded(value)
        if "connect_timeout" in value and "connectTimeout" not in value:
            value = {("connectTimeout" if key == "connect_timeout" else key): item for key, item in value.items()}
        if not any(isinstance(key, str) and "." in key for key in value):
            return value
        folded: dict[str, Any] = {}
        for key, item in value.items():
            name, dot, inner = key.partition(".") if isinstance(key, str) else (key, "", "")
            if dot and name in ("headers", "query") and inner:
                part = folded.setdefault(name, {})
                if isinstance(part, dict):
                    part[inner] = item
            else:
                folded[key] = item
        for name in ("headers", "query"):
            if name in value and isinstance(value[name], dict) and isinstance(folded.get(name), dict):
                folded[name] = {**folded[name], **value[name]}
        return folded

    @field_validator("headers", "query")
    @classmethod
    def _no_secrets(cls, value: dict[str, JsonValue] | None, info: Any) -> dict[str, JsonValue] | None:
        """Refuse a header or query parameter that carries a secret (see _secrets_refused)."""
        return _secrets_refused(value, field=info.field_name)

    @field_validator("auth")
    @classmethod
    def _auth_refused(cls, value: JsonValue) -> JsonValue:
        """Refuse a password in a configuration, pointing to the credentials; an empty auth is none."""
        try:
            credentials = guzzle_auth_credentials(value, path="auth")
        except CredentialsError as error:
            raise ValueError("; ".join(problem.removeprefix("auth: ") for problem in error.problems)) from None
        if credentials is None:
            return None
        raise ValueError(
            "a username and password go in the source's `credentials` (write-only, encrypted, sent only to the "
            f"source's own origin), e.g. {BASIC_EXAMPLE}; an import from OpenConnector moves them there"
        )


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
    # A call that may wait for days holds a worker (and its run) for as long: the operator sets the bound.
    bound = settings.SYNC_HTTP_MAX_TIMEOUT
    if seconds > bound:
        raise SourceError(f"{name} must be at most {bound} seconds (SYNC_HTTP_MAX_TIMEOUT), got {value!r}")
    return seconds


PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


def _verify(value: Any, *, name: str) -> bool | str:
    """Return what `verify` asks: True, a CA bundle's path or PEM text, or False where the operator allows it."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        value = value.strip().lower() in ("true", "1")
    if value is False and not settings.SYNC_TLS_VERIFY_OFF_ALLOWED:
        # A call that trusts any certificate hands the source's credentials to whoever is in between.
        raise SourceError(
            f"{name} false turns TLS verification off, which SYNC_TLS_VERIFY_OFF_ALLOWED does not allow here; "
            "give the CA bundle instead (its path, or the certificate as PEM text)"
        )
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()  # a CA bundle file, or the certificate itself
    raise SourceError(f"{name} must be true, false or a CA bundle (a path or PEM text), got {value!r}")


def _ca_bundle(verify: bool | str) -> bool | str:
    """Return the path requests verifies with: a PEM certificate given as text (as OpenConnector passes it to
    Guzzle, which writes it to a file) is written once to a file named by its hash."""
    if not isinstance(verify, str) or PEM_BEGIN not in verify:
        return verify
    digest = hashlib.sha256(verify.encode()).hexdigest()
    path = Path(tempfile.gettempdir()) / f"sync-ca-{digest}.pem"
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_text(verify if verify.endswith("\n") else verify + "\n", encoding="ascii")
        partial.replace(path)  # whole or not at all: another worker may read it at the same time
    return str(path)


def call_settings(*, source: Source, source_config: dict[str, Any], where: str = "sourceConfig") -> CallSettings:
    """Return the headers, query, timeouts and TLS verification of every call: the source's, then the
    synchronization's (its sourceConfig, or the targetConfig of an API target: `where` names it)."""
    headers: dict[str, str] = {}
    query: dict[str, Any] = {}
    connect: float = settings.SYNC_HTTP_CONNECT_TIMEOUT
    read: float = settings.SYNC_HTTP_READ_TIMEOUT
    verify: bool | str = True
    levels = (("configuration", source.configuration or {}), (where, source_config or {}))
    for where, config in levels:
        if not isinstance(config, dict):
            continue
        if any(key == "auth" or (isinstance(key, str) and key.startswith("auth.")) for key in config
               if config[key] not in (None, "", [], {})):
            # Saved before it was refused at save: a password is never sent from a configuration.
            raise SourceError(f"{where}.auth: a username and password go in the credentials of source "
                              f"{source.reference!r}, e.g. {BASIC_EXAMPLE}")
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
    return CallSettings(headers=headers, query=query, timeout=(connect, read), verify=_ca_bundle(verify))


def configuration_problems(configuration: Any, *, path: str) -> list[str]:
    """Return the problems of a source configuration (call settings and request budget), with their path."""
    if not isinstance(configuration, dict):
        return []
    return call_options_problems(configuration, path=path) + budget_problems(
        configuration.get("rateLimit"), path=f"{path}.rateLimit"
    )


def call_options_problems(configuration: dict[str, Any], *, path: str) -> list[str]:
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
    problems = call_options_problems(source_config, path=path)
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
        for problem in validate_mapping_config({"mapping": {"endpoint": endpoint}}):
            problems.append(f"{path}.{problem.removeprefix('mapping.')}")
    return problems


def endpoint_render(endpoint: str, *, variables: dict[str, Any]) -> str:
    """Render an endpoint template (Jinja2, in the mapping sandbox) with these variables; raise MappingError."""
    rendered = apply_mapping(spec=MappingSpec(mapping={"endpoint": endpoint}), data=variables)
    value = rendered.get("endpoint") if isinstance(rendered, dict) else rendered
    return "" if value is None else str(value)


def _endpoint_render(endpoint: str, *, variables: dict[str, Any]) -> str:
    """Render sourceConfig.endpoint with the run's variables; raise SourceError naming the key."""
    try:
        return endpoint_render(endpoint, variables=variables)
    except MappingError as error:
        raise SourceError(f"sourceConfig.endpoint: {error}") from None


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


_CALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@contextlib.contextmanager
def source_errors(*, secrets: Iterable[str]) -> Iterator[None]:
    """Raise the HTTP layer's errors of a call to a source as the service's source errors, its secrets
    redacted (a rate limit stays a rate limit, for the caller to wait or defer)."""
    secrets = list(secrets)
    try:
        yield
    except TransientHttpError as error:
        raise TransientSourceError(redact(str(error), secrets)) from None
    except HttpError as error:
        raise SourceError(redact(str(error), secrets)) from None
    except AuthenticationFailed as error:
        raise SourceError(redact(str(error), secrets)) from None
    except RateLimited as limited:
        raise RateLimited(redact(str(limited), secrets), wait_seconds=limited.wait_seconds,
                          url=limited.url) from None


def source_call(*, source: Source, endpoint: str, method: str = "GET", configuration: dict[str, Any] | None = None,
                on_wait: OnWait | None = None) -> str:
    """Send one request to a source as OpenConnector's callSource does, through this service's HTTP layer
    (egress policy, the source's request budget and rate limits, its credentials); return the answer's body
    as text, whatever its status (as Guzzle with http_errors off), base64 when it is not UTF-8.

    ``configuration`` takes Guzzle's options as OpenConnector passes them: ``headers``, ``query``, ``json``,
    ``body``, timeouts and ``verify`` (dotted keys too), over the source's own configuration.
    """
    method = method.upper()
    if method not in _CALL_METHODS:
        raise SourceError(f"callSource: method {method!r} is not one of {', '.join(_CALL_METHODS)}")
    configuration = configuration or {}
    # As OpenConnector: an endpoint that holds the source's location is cut after it.
    if source.location and source.location in endpoint:
        endpoint = endpoint[len(source.location):]
    call = call_settings(source=source, source_config=configuration)
    try:
        auth = authenticator_for(source=source, timeout=call.timeout, verify=call.verify)
    except CredentialsError as error:
        raise SourceError(f"the credentials of source {source.reference!r} are not usable: {error}") from None
    headers = dict(call.headers)
    params = dict(call.query)
    url = url_join(location=source.location, endpoint=endpoint)
    if same_origin(url, source.location):
        auth.apply(headers=headers, params=params)
    elif cross_host_refused():
        raise SourceError(
            f"callSource: {mask_url(url)} is on another host than source {source.reference!r} "
            f"({source.location}); SYNC_CROSS_HOST_REQUESTS is refuse"
        )
    body = configuration.get("body")
    with source_errors(secrets=auth.secrets):
        response = http_request(
            method=method, url=url, params=params, headers=headers, json=configuration.get("json"),
            data=body if isinstance(body, str | bytes) else None, timeout=call.timeout, verify=call.verify,
            source=source, secret_params=auth.credentials.secret_params,
            secret_headers=auth.credentials.secret_headers, secrets=auth.secrets, on_wait=on_wait,
        )
    try:
        return response.content.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(response.content).decode("ascii")


def call_source_by_reference(*, source_id: str, endpoint: str, method: str = "GET",
                             configuration: dict[str, Any] | None = None) -> str:
    """Call the source a template names (by reference, or by id) with ``source_call``."""
    source = Source.objects.filter(reference=source_id).first()
    if source is None and source_id.isdigit():
        source = Source.objects.filter(pk=int(source_id)).first()
    if source is None:
        raise SourceError(f"callSource: there is no source {source_id!r}")
    return source_call(source=source, endpoint=endpoint, method=method, configuration=configuration)


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
