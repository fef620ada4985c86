"""Values fit for the JSON columns of contract logs on every database."""
from __future__ import annotations

from typing import Any

import orjson

from syncapp.hashing import canonical_bytes

# PostgreSQL's jsonb cannot hold the NUL character, which JSON text may carry ("\u0000"): a log
# must record the object that failed because of it, not fail with it.
_NUL = b"\\u0000"


def log_value(value: Any) -> Any:
    """Return the value as a log keeps it: JSON objects and lists as they are, anything else wrapped."""
    if value is None:
        return None
    if not isinstance(value, (dict, list)):
        value = {"value": value}
    encoded = canonical_bytes(value)
    if _NUL not in encoded:
        return value
    return orjson.loads(encoded.replace(_NUL, b"\\ufffd"))


def log_text(text: str, *, limit: int = 5000) -> str:
    """Return an error message as a text column keeps it: cut, and without NUL characters."""
    return text[:limit].replace("\x00", "\ufffd")
