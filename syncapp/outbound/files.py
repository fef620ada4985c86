"""Fetch a file from an HTTP source for a rule: through the one HTTP layer (egress policy, credentials to
the source's own origin only, request budget, rate limits, retries), its body written to a sink within
SYNC_RULE_FILE_MAX_BYTES, and asked conditionally (If-None-Match, If-Modified-Since) when a version of it
is stored, so an unchanged file is not downloaded again."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

from django.conf import settings

from syncapp.authentication import CredentialsError, authenticator_for
from syncapp.egress import cross_host_refused, same_origin
from syncapp.errors import SourceError
from syncapp.http import BodyLimits, OnWait, http_request
from syncapp.models import Source
from syncapp.outbound.calls import call_settings, source_errors
from syncapp.outbound.masking import mask_url
from syncapp.outbound.masking import snippet as redacted_snippet
from syncapp.outbound.urls import url_join


@dataclass(frozen=True)
class FetchedFile:
    """What the source answered: the file written to the sink, or not modified since the version known."""

    url: str  # as asked for, with secrets masked
    final_url: str  # where the answer came from (after redirects), with secrets masked
    not_modified: bool
    headers: dict[str, str]


def file_limits() -> BodyLimits:
    """Return the bounds of a file a rule fetches."""
    return BodyLimits(
        max_bytes=settings.SYNC_RULE_FILE_MAX_BYTES, max_bytes_setting="SYNC_RULE_FILE_MAX_BYTES",
        seconds=settings.SYNC_HTTP_TOTAL_TIMEOUT, seconds_setting="SYNC_HTTP_TOTAL_TIMEOUT",
    )


def file_url(*, source: Source, endpoint: str) -> str:
    """Return the URL of a file named by an endpoint: appended to the source's location, or the URL itself
    (one on the location counts as its endpoint, as OpenConnector's fetchFile reads it)."""
    location = source.location or ""
    if location and endpoint.startswith(location):
        endpoint = endpoint[len(location):]
    return url_join(location=location, endpoint=endpoint)


def file_address(*, source: Source, endpoint: str) -> str:
    """Return how a fetched file's origin is recorded: its URL with secrets masked."""
    return mask_url(file_url(source=source, endpoint=endpoint))


def file_fetch(
    *, source: Source, endpoint: str, sink: BinaryIO, method: str = "GET", configuration: dict[str, Any] | None = None,
    body: Any = None, etag: str = "", last_modified: str = "", on_wait: OnWait | None = None,
) -> FetchedFile:
    """Fetch the file at `endpoint` (appended to the source's location, or a URL) into `sink`.

    `configuration` (headers, query, timeouts) is merged over the source's own; `etag` and `last_modified`
    of a stored version make the request conditional. Raise SourceError naming the URL (secrets masked),
    TransientSourceError when retries ran out, RateLimited when the wait is too long to hold here.
    """
    call = call_settings(source=source, source_config=configuration or {})
    location = source.location or ""
    url = file_url(source=source, endpoint=endpoint)
    try:
        auth = authenticator_for(source=source, timeout=call.timeout, verify=call.verify)
    except CredentialsError as error:
        raise SourceError(f"the credentials of source {source.reference!r} are not usable: {error}") from None
    secret_params = auth.credentials.secret_params
    shown = file_address(source=source, endpoint=endpoint)
    headers = dict(call.headers)
    if not any(name.lower() == "accept" for name in headers):
        headers["Accept"] = "*/*"
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    params = dict(call.query)
    # Credentials go to the source's own origin only: a file may be named by a URL anywhere.
    own_host = same_origin(url, location)
    if not own_host and cross_host_refused():
        raise SourceError(f"{shown} is on another host than source {source.reference!r} ({location}); "
                          "SYNC_CROSS_HOST_REQUESTS is refuse")
    if own_host:
        auth.apply(headers=headers, params=params)
    with source_errors(secrets=auth.secrets):
        def send():
            return http_request(
                method=method, url=url, params=params, headers=headers, timeout=call.timeout, verify=call.verify,
                source=source, secret_params=secret_params, secret_headers=auth.credentials.secret_headers,
                secrets=auth.secrets, on_wait=on_wait, sink=sink, sink_limits=file_limits(),
                json=body if method != "GET" else None,
            )

        response = send()
        if response.status_code == 401 and auth.can_refresh and own_host:
            auth.refresh()  # a cached token may have been revoked: a new one, once
            auth.apply(headers=headers, params=params)
            response = send()
    final = mask_url(response.url or url, secret_params=secret_params)
    if response.status_code == 304 and (etag or last_modified):
        return FetchedFile(url=shown, final_url=final, not_modified=True, headers=dict(response.headers))
    if not 200 <= response.status_code < 300:
        content_type = response.headers.get("Content-Type") or "no content type"
        hint = ": check the source's credentials" if response.status_code in (401, 403) else ""
        raise SourceError(f"{method} {shown} answered {response.status_code} ({content_type}){hint}: "
                          f"{redacted_snippet(response.text, auth.secrets)!r}")
    return FetchedFile(url=shown, final_url=final, not_modified=False, headers=dict(response.headers))
