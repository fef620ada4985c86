"""Keep secrets out of messages: URLs with their secret query values masked, texts with secrets redacted."""
from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameter names that carry secrets in any URL, also when no credentials name them.
SECRET_PARAM_NAMES = frozenset({
    "access_token", "api_key", "apikey", "api-key", "key", "token", "client_secret", "password", "secret",
    "signature", "sig", "auth", "authorization",
})


def mask_url(url: str, *, secret_params: Iterable[str] = ()) -> str:
    """Return the URL with secret query values and a password in it replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    names = {name.lower() for name in secret_params} | SECRET_PARAM_NAMES
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    masked = [(key, "***" if key.lower() in names and value else value) for key, value in pairs]
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}" if ":" in userinfo else netloc
    query = urlencode(masked, safe="*") if masked != pairs else parts.query
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def snippet(text: str, secrets: Iterable[str], *, length: int = 200) -> str:
    """Return the start of a text for a message, its secrets masked first: cutting first could leave
    the beginning of a secret that masking no longer recognises."""
    return redact(text, secrets)[:length]


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return the text with every secret value in it replaced by `***`, longest first."""
    for secret in sorted({secret for secret in secrets if secret and len(secret) >= 3}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
