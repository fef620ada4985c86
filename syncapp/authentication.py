"""Authenticate calls to a source: none, API key, basic, bearer token, OAuth2 client credentials.

A source's `credentials` (write-only: never shown in admin, API, exports or logs) take one of these
shapes; `type` may be left out when the other keys say it, and OpenConnector-style spellings work:

    {}                                                            no authentication
    {"type": "bearer", "token": "..."}                             Authorization: Bearer ...
    {"type": "apiKey", "in": "header", "name": "X-API-Key", "value": "..."}
    {"type": "apiKey", "in": "query", "name": "api_key", "value": "..."}
    {"type": "basic", "username": "...", "password": "..."}
    {"type": "oauth2", "tokenUrl": "https://.../token", "clientId": "...", "clientSecret": "...",
     "scope": "read", "audience": "...", "clientAuthentication": "basic" | "body"}

OAuth2 access tokens are cached on the source row (shared by every worker on every machine) until
shortly before they expire; a call answered 401 fetches a new token once and is tried again.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from syncapp.errors import SyncError
from syncapp.http import HttpError, http_request
from syncapp.outbound.masking import mask_url, redact, snippet

logger = logging.getLogger(__name__)

AUTH_TYPES = ("none", "apiKey", "basic", "bearer", "oauth2")
_TYPE_ALIASES = {
    "none": "none", "noauth": "none", "anonymous": "none",
    "apikey": "apiKey", "key": "apiKey",
    "basic": "basic", "basicauth": "basic", "usernamepassword": "basic",
    "bearer": "bearer", "token": "bearer", "bearertoken": "bearer", "accesstoken": "bearer",
    "oauth": "oauth2", "oauth2": "oauth2", "clientcredentials": "oauth2", "oauth2clientcredentials": "oauth2",
}
_ALIASES: dict[str, tuple[str, ...]] = {
    "token": ("token", "accessToken", "access_token", "bearer", "bearerToken", "jwt"),
    "value": ("value", "key", "apiKey", "apikey", "api_key", "apiKeyValue"),
    "name": ("name", "header", "headerName", "param", "paramName", "parameter", "keyName", "authorizationHeader"),
    "in": ("in", "location", "placement", "addTo"),
    "username": ("username", "user", "userName"),
    "password": ("password", "pass"),
    "tokenUrl": ("tokenUrl", "token_url", "tokenEndpoint", "token_endpoint", "accessTokenUrl"),
    "clientId": ("clientId", "client_id"),
    "clientSecret": ("clientSecret", "client_secret"),
    "scope": ("scope", "scopes"),
    "audience": ("audience",),
    "clientAuthentication": ("clientAuthentication", "client_authentication", "authentication"),
    "tokenPath": ("tokenPath", "tokenLocation"),
}
_IN_ALIASES = {"header": "header", "headers": "header", "query": "query", "queryparam": "query", "url": "query"}
_CLIENT_AUTH_ALIASES = {
    "basic": "basic", "basicauth": "basic", "header": "basic", "clientsecretbasic": "basic",
    "body": "body", "post": "body", "form": "body", "clientsecretpost": "body",
}
# How a refused value of the credentials is spoken of: never quoted, since a secret written in the
# wrong key (a token given as the `type`) would be shown in the answer, the form and the logs.
_NOT_ECHOED = "got another value (not shown: credentials are never echoed)"
# Refresh a token this long before the expiry the server announced, so a call never carries a
# token that expires on the way.
EXPIRY_MARGIN_SECONDS = 30
# A token response without `expires_in` is trusted this long; a 401 replaces it sooner if needed.
DEFAULT_TOKEN_LIFETIME_SECONDS = 300


class CredentialsError(SyncError, ValueError):
    """A source's credentials are not one of the supported shapes; `problems` lists each with its path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Credentials:
    """A source's credentials, in one shape whatever the spelling they were written in."""

    type: str = "none"
    token: str = ""
    location: str = "header"  # apiKey: header or query
    name: str = ""
    value: str = ""
    username: str = ""
    password: str = ""
    token_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    scope: str = ""
    audience: str = ""
    client_authentication: str = "basic"
    token_path: str = "access_token"

    @property
    def secrets(self) -> list[str]:
        """Return every value that must never be shown: in errors, logs or stored records."""
        values = [self.token, self.value, self.password, self.client_secret]
        if self.type == "basic":
            values.append(_basic_value(self.username, self.password))
        if self.type == "oauth2":
            values.append(_basic_value(self.client_id, self.client_secret))
        return [value for value in values if value]

    @property
    def secret_headers(self) -> frozenset[str]:
        """Return the headers (lower case) this source's calls carry secrets in."""
        if self.type in ("bearer", "basic", "oauth2"):
            return frozenset({"authorization"})
        if self.type == "apiKey" and self.location == "header":
            return frozenset({self.name.lower()})
        return frozenset()

    @property
    def secret_params(self) -> frozenset[str]:
        """Return the query parameters this source's calls carry secrets in."""
        if self.type == "apiKey" and self.location == "query":
            return frozenset({self.name})
        return frozenset()


def _normal(value: Any) -> str:
    return re.sub(r"[-_\s]", "", str(value)).lower()


def _pick(raw: dict[str, Any], key: str) -> tuple[str | None, Any]:
    """Return (spelling found, value) of a credentials key under any of its aliases."""
    for alias in _ALIASES[key]:
        if alias in raw and raw[alias] not in (None, ""):
            return alias, raw[alias]
    return None, None


def _infer_type(raw: dict[str, Any]) -> str:
    if _pick(raw, "tokenUrl")[0] or _pick(raw, "clientId")[0]:
        return "oauth2"
    if _pick(raw, "username")[0]:
        return "basic"
    if _pick(raw, "token")[0]:
        return "bearer"
    if _pick(raw, "value")[0]:
        return "apiKey"
    return "none"


def credential_problems(raw: Any, *, path: str = "credentials") -> list[str]:
    """Return every problem of a credentials object, each with its path."""
    try:
        credentials_parse(raw, path=path)
    except CredentialsError as error:
        return list(error.problems)
    return []


def credentials_kind(stored: Any) -> str:
    """Return the type stored credentials name, as a form may show it: a known type, else "set" (a value
    that is no known type may be a secret written in the wrong key)."""
    kind = stored.get("type") if isinstance(stored, dict) else None
    return _TYPE_ALIASES.get(_normal(kind), "set") if isinstance(kind, str) else "set"


def credentials_parse(raw: Any, *, path: str = "credentials") -> Credentials:
    """Return the credentials in their one shape; raise CredentialsError listing every problem."""
    if raw in (None, "", []):
        return Credentials()
    if isinstance(raw, dict) and set(raw) == {"unsealable"}:
        raise CredentialsError([f"{path}: {raw['unsealable']}"])
    if not isinstance(raw, dict):
        raise CredentialsError([f"{path}: must be an object like {{\"type\": \"bearer\", \"token\": \"...\"}}"])
    problems: list[str] = []
    kind = raw.get("type", raw.get("auth"))
    if kind in (None, ""):
        kind = _infer_type(raw)
    elif _normal(kind) in _TYPE_ALIASES:
        kind = _TYPE_ALIASES[_normal(kind)]
    else:
        raise CredentialsError([f"{path}.type: must be one of {', '.join(AUTH_TYPES)}, {_NOT_ECHOED}"])

    def text(key: str, *, required: bool) -> str:
        alias, value = _pick(raw, key)
        if value is None:
            if required:
                problems.append(f"{path}.{_ALIASES[key][0]}: is required for {kind} authentication")
            return ""
        if isinstance(value, list) and key == "scope" and all(isinstance(item, str) for item in value):
            return " ".join(value)
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            problems.append(f"{path}.{alias}: must be text")
            return ""
        return str(value)

    values: dict[str, Any] = {"type": kind}
    if kind == "bearer":
        values["token"] = text("token", required=True)
    elif kind == "apiKey":
        values["value"] = text("value", required=True)
        alias, where = _pick(raw, "in")
        location = _IN_ALIASES.get(_normal(where)) if where is not None else "header"
        if location is None:
            problems.append(f"{path}.{alias}: must be header or query, {_NOT_ECHOED}")
            location = "header"
        values["location"] = location
        # OpenConnector puts an API key in the Authorization header unless told otherwise.
        values["name"] = text("name", required=location == "query") or ("Authorization" if location == "header" else "")
    elif kind == "basic":
        values["username"] = text("username", required=True)
        values["password"] = text("password", required=True)
    elif kind == "oauth2":
        values["token_url"] = text("tokenUrl", required=True)
        values["client_id"] = text("clientId", required=True)
        values["client_secret"] = text("clientSecret", required=True)
        values["scope"] = text("scope", required=False)
        values["audience"] = text("audience", required=False)
        values["token_path"] = text("tokenPath", required=False) or "access_token"
        alias, method = _pick(raw, "clientAuthentication")
        if method is not None:
            if _normal(method) not in _CLIENT_AUTH_ALIASES:
                problems.append(f"{path}.{alias}: must be basic or body, {_NOT_ECHOED}")
            else:
                values["client_authentication"] = _CLIENT_AUTH_ALIASES[_normal(method)]
        grant = raw.get("grant_type", raw.get("grantType"))
        if grant not in (None, "", "client_credentials"):
            problems.append(f"{path}.grant_type: only client_credentials is supported, {_NOT_ECHOED}")
        if values["token_url"] and not values["token_url"].startswith(("http://", "https://")):
            problems.append(f"{path}.tokenUrl: must be an http:// or https:// URL")
    if problems:
        raise CredentialsError(problems)
    return Credentials(**values)


def guzzle_auth_folded(value: dict[str, Any]) -> dict[str, Any]:
    """Return a configuration whose `auth.0`, `auth.1`, `auth.2` keys (OpenConnector's flat form of Guzzle's
    `auth` list) are that list."""
    flat = {key: item for key, item in value.items() if isinstance(key, str) and key.startswith("auth.")
            and key[5:].isascii() and key[5:].isdecimal()}
    if not flat:
        return value
    folded = {key: item for key, item in value.items() if key not in flat}
    listed = list(folded.get("auth") or []) if isinstance(folded.get("auth"), list) else []
    for key in sorted(flat, key=lambda key: int(key[5:])):
        listed.append(flat[key])
    folded["auth"] = listed
    return folded


def guzzle_auth_credentials(value: Any, *, path: str = "configuration.auth") -> dict[str, Any] | None:
    """Return the credentials Guzzle's `auth` option stands for (OpenConnector passes a source's
    `configuration` to Guzzle as it is): `[user, password]` or `[user, password, "basic"]` is basic
    authentication; None for an empty one. Raise CredentialsError for what this service does not speak
    (digest, ntlm) or a shape Guzzle does not take, never quoting a value."""
    if value in (None, "", [], {}):
        return None
    if isinstance(value, dict) and all(isinstance(key, str) and key.isdecimal() for key in value):
        value = [value[key] for key in sorted(value, key=int)]  # PHP's list as an object {"0": ..., "1": ...}
    if not isinstance(value, list) or not 2 <= len(value) <= 3 or not all(
        isinstance(item, str | int) and not isinstance(item, bool) for item in value
    ):
        raise CredentialsError([f"{path}: must be [username, password] or [username, password, \"basic\"] "
                                f"(Guzzle's auth option), {_NOT_ECHOED}"])
    scheme = str(value[2]).strip().lower() if len(value) == 3 else "basic"
    if scheme != "basic":
        shown = scheme if scheme in ("digest", "ntlm") else "another scheme (not shown)"
        raise CredentialsError([f"{path}: {shown} authentication is not supported, only basic"])
    return {"type": "basic", "username": str(value[0]), "password": str(value[1])}


def _basic_value(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


# ---------------------------------------------------------------------------------------------
# The origin credentials are bound to

_DEFAULT_PORTS = {"http": 80, "https": 443}


def location_origin(location: str) -> str:
    """Return the origin of a location, `scheme://host:port` (the scheme's port when none is written), or ""
    for a location that is no URL (a path, an upload)."""
    try:
        parts = urlsplit(str(location or "").strip())
        port = parts.port
    except ValueError:
        return ""
    if not parts.scheme or not parts.hostname:
        return ""
    scheme = parts.scheme.lower()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = port or _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def credentials_bind(source: Any) -> None:
    """Bind a source's credentials to the origin of its location (not saved): call it only for a user
    allowed to change credentials, when they set or confirm them."""
    source.credentials_origin = location_origin(source.location) if source.credentials else ""


def credentials_refusal(source: Any) -> str | None:
    """Return why a source's credentials may not be sent (its location moved to another origin since they
    were set or confirmed), or None when they may."""
    if not source.credentials:
        return None
    bound, current = getattr(source, "credentials_origin", "") or "", location_origin(source.location)
    if bound == current:
        return None
    return (
        f"credentials: confirmed for {bound or 'no origin'}, but the location is now at {current or 'no origin'}; "
        "they are not sent until a user allowed to change credentials confirms them for it (set them again, "
        "tick \"Confirm the credentials\" on the source in the admin, or send \"confirmCredentials\": true to the API)"
    )


# ---------------------------------------------------------------------------------------------
# Applying credentials to a call


class AuthenticationFailed(SyncError):
    """The token URL did not hand out a token; the message names it without any secret."""


@dataclass
class Authenticator:
    """Add a source's credentials to its calls, fetching and caching an OAuth2 token when needed."""

    source: Any
    credentials: Credentials
    timeout: tuple[float, float]
    verify: bool | str = True
    _token: str | None = field(default=None, repr=False)
    # Every access token this call used: a refused one may come back in the refusal's body.
    _used_tokens: list[str] = field(default_factory=list, repr=False)

    @property
    def secrets(self) -> list[str]:
        return [*self.credentials.secrets, *self._used_tokens]

    @property
    def can_refresh(self) -> bool:
        return self.credentials.type == "oauth2"

    def apply(self, *, headers: dict[str, str], params: dict[str, Any]) -> None:
        """Set the headers or query parameters that authenticate a call; they win over configured ones."""
        credentials = self.credentials
        if credentials.type == "bearer":
            _set_header(headers, "Authorization", f"Bearer {credentials.token}")
        elif credentials.type == "basic":
            _set_header(headers, "Authorization", f"Basic {_basic_value(credentials.username, credentials.password)}")
        elif credentials.type == "apiKey":
            if credentials.location == "query":
                params[credentials.name] = credentials.value
            else:
                _set_header(headers, credentials.name, credentials.value)
        elif credentials.type == "oauth2":
            _set_header(headers, "Authorization", f"Bearer {self.access_token()}")

    def refresh(self) -> None:
        """Forget the cached token and fetch a new one (after the source answered 401)."""
        self._token = None
        _cache_store(self.source, {})
        self.access_token()

    def access_token(self) -> str:
        """Return a valid access token: this call's, the cached one, or a new one from the token URL."""
        if self._token:
            return self._token
        key = self._cache_key()
        cached = _cache_load(self.source)
        if cached.get("key") == key and float(cached.get("expiresAt") or 0) > time.time() + EXPIRY_MARGIN_SECONDS:
            self._token = str(cached["token"])
            self._used_tokens.append(self._token)
            return self._token
        token, lifetime = self._fetch_token()
        logger.info(
            "fetched an OAuth2 token for source %s from %s, valid %d s",
            getattr(self.source, "reference", "?"), mask_url(self.credentials.token_url), lifetime,
        )
        self._token = token
        self._used_tokens.append(token)
        _cache_store(self.source, {"key": key, "token": token, "expiresAt": time.time() + lifetime})
        return token

    def _cache_key(self) -> str:
        """Identify the credentials a cached token belongs to: changed credentials never reuse it."""
        c = self.credentials
        material = "\n".join([c.token_url, c.client_id, c.client_secret, c.scope, c.audience])
        return hashlib.sha256(material.encode()).hexdigest()

    def _fetch_token(self) -> tuple[str, float]:
        c = self.credentials
        data = {"grant_type": "client_credentials"}
        if c.scope:
            data["scope"] = c.scope
        if c.audience:
            data["audience"] = c.audience
        headers = {"Accept": "application/json"}
        if c.client_authentication == "body":
            data.update(client_id=c.client_id, client_secret=c.client_secret)
        else:
            headers["Authorization"] = f"Basic {_basic_value(c.client_id, c.client_secret)}"
        url = mask_url(c.token_url)
        try:
            # Through the one HTTP layer: the token URL's address is checked like a source's, its answer
            # bounded, and a redirect elsewhere never carries the client secret along.
            response = http_request(
                method="POST", url=c.token_url, data=data, headers=headers, timeout=self.timeout,
                verify=self.verify, secret_headers=frozenset({"authorization"}), secrets=self.secrets,
            )
        except HttpError as error:
            raise AuthenticationFailed(redact(f"OAuth2 token request to {url} failed: {error}", self.secrets)) from None
        content_type = response.headers.get("Content-Type", "") or "no content type"
        if response.status_code >= 400:
            raise AuthenticationFailed(
                f"OAuth2 token request to {url} answered {response.status_code} ({content_type}): "
                f"{snippet(response.text, self.secrets)!r}"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get(c.token_path) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthenticationFailed(
                f"OAuth2 token request to {url} answered {response.status_code} ({content_type}) "
                f"without {c.token_path!r}"
            )
        try:
            lifetime = float(body.get("expires_in", DEFAULT_TOKEN_LIFETIME_SECONDS))
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME_SECONDS
        return token, max(lifetime, 0.0)


def _set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header, replacing one of the same name in any letter case."""
    for existing in [key for key in headers if key.lower() == name.lower()]:
        del headers[existing]
    headers[name] = value


def _cache_load(source: Any) -> dict[str, Any]:
    if getattr(source, "pk", None) is None:
        return dict(getattr(source, "auth_token_cache", None) or {})
    # Read the row, not the instance: another worker may have fetched a token since it was loaded.
    row = type(source).objects.filter(pk=source.pk).values_list("auth_token_cache", flat=True).first()
    return dict(row or {})


def _cache_store(source: Any, value: dict[str, Any]) -> None:
    source.auth_token_cache = value
    if getattr(source, "pk", None) is not None:
        # Only this column: the rest of the row (rate-limit state) belongs to other writers.
        type(source).objects.filter(pk=source.pk).update(auth_token_cache=value)


def authenticator_for(*, source: Any, timeout: tuple[float, float], verify: bool | str = True) -> Authenticator:
    """Return the authenticator of a source; raise CredentialsError when its credentials are malformed or
    not confirmed for the origin of its location."""
    refusal = credentials_refusal(source)
    if refusal is not None:
        raise CredentialsError([refusal])
    return Authenticator(
        source=source, credentials=credentials_parse(source.credentials or {}), timeout=timeout, verify=verify
    )
