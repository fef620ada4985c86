"""Keep secrets out of messages: URLs with their secret query values masked, texts with secrets redacted."""
from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

# Query parameter names that carry secrets in any URL, also when no credentials name them.
SECRET_PARAM_NAMES = frozenset({
    "access_token", "api_key", "apikey", "api-key", "key", "token", "client_secret", "password", "secret",
    "signature", "sig", "auth", "authorization",
})


# Words of a header or query parameter name that say it carries a secret: `X-Api-Key`, `api_key`,
# `accessToken`, `Proxy-Authorization`, `client_secret`, `X-Auth-Token`, `Cookie`.
_SECRET_WORDS = frozenset({
    "key", "apikey", "token", "secret", "password", "passwd", "pwd", "auth", "authorization", "cookie",
    "credential", "credentials", "signature", "session", "sessionid",
})
_SECRET_ENDINGS = ("apikey", "accesskey", "privatekey", "secretkey", "token", "secret", "password", "auth")


def is_secret_name(name: str) -> bool:
    """Return whether a header or query parameter of this name carries a secret (case-insensitive).

    The name is read word by word (`-`, `_`, `.`, spaces and camelCase part them), so `author`, `keyword`
    and `Accept` are not secrets while `X-Api-Key`, `accessToken` and `xauthtoken` are."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    words = [word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word]
    return any(word in _SECRET_WORDS or word.endswith(_SECRET_ENDINGS) for word in words) or (
        str(name).lower() in SECRET_PARAM_NAMES
    )


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
    """Return the text with every secret value in it replaced by `***`, longest first: as written, and in
    the forms a server echoes it in (JSON-escaped, percent-encoded, base64)."""
    forms = {form for secret in secrets if secret and len(secret) >= 3 for form in secret_forms(secret)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


# A base64 run shorter than this is too likely to occur by chance to be masked.
_BASE64_MIN_CHARACTERS = 8


def secret_forms(secret: str) -> set[str]:
    """Return the secret as written and as an answer may echo it: JSON-escaped (`\\"`, PHP's `\\/`,
    `\\u00e9`), percent-encoded (either letter case, `+` for a space) and base64 (standard and URL-safe, at
    any alignment inside a longer encoded text, of the secret as written or JSON-escaped)."""
    forms = {secret}
    for ensure_ascii in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1]
        forms |= {escaped, escaped.replace("/", "\\/")}
        forms |= {re.sub(r"\\u[0-9a-f]{4}", lambda match: match.group(0).upper().replace("\\U", "\\u"), form)
                  for form in set(forms)}
    # A JSON body sent base64-encoded carries the secret JSON-escaped.
    for written in set(forms):
        forms |= _base64_forms(written.encode())
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret), quote_plus(secret, safe="/")):
        forms |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda match: match.group(0).lower(), encoded)}
    return {form for form in forms if form}


def _base64_forms(raw: bytes) -> set[str]:
    """Return the base64 text of the bytes alone, and the characters that encode only them when they
    stand 0, 1 or 2 bytes into a longer encoded text (a token inside `user:token`, a JSON body)."""
    forms = {base64.b64encode(raw).decode("ascii")}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        # Character j carries bits 6j to 6j+6 of the stream: keep those wholly inside the secret's bits.
        start, end = -(-8 * shift // 6), 8 * (shift + len(raw)) // 6
        forms.add(encoded[start:end])
    forms |= {form.replace("+", "-").replace("/", "_") for form in forms}
    return {form for form in forms if len(form) >= _BASE64_MIN_CHARACTERS}
