"""Values fit for the JSON columns of contract logs on every database."""
from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings

from syncapp.hashing import canonical_bytes

# PostgreSQL's jsonb cannot hold the NUL character, which JSON text may carry ("\u0000"): a log
# must record the object that failed because of it, not fail with it.
_NUL = b"\\u0000"


def log_value(value: Any) -> Any:
    """Return the value as a log keeps it: JSON objects and lists as they are, anything else wrapped; one
    longer than SYNC_LOG_VALUE_MAX_BYTES as JSON is cut, and says so (a target's answer can be any size)."""
    if value is None:
        return None
    if not isinstance(value, (dict, list)):
        value = {"value": value}
    encoded = canonical_bytes(value)
    limit = settings.SYNC_LOG_VALUE_MAX_BYTES
    if len(encoded) > limit:
        return {
            "truncated": f"{len(encoded):,} bytes as JSON, cut to the first {limit:,} (SYNC_LOG_VALUE_MAX_BYTES)",
            "start": encoded[:limit].decode("utf-8", errors="ignore"),  # JSON text: a NUL is escaped in it
        }
    if _NUL not in encoded:
        return value
    return orjson.loads(encoded.replace(_NUL, b"\\ufffd"))


def log_text(text: str, *, limit: int = 5000) -> str:
    """Return an error message as a text column keeps it: cut, and without NUL characters."""
    return text[:limit].replace("\x00", "\ufffd")
