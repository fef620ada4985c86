"""Identifiers of rows written in bulk."""
from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """Return a time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds, then random bits.

    Rows written in bulk (register objects, contract logs) get these: one after another, they land at
    the end of their primary key index instead of on a random page of it, which keeps inserts cheap
    when the index no longer fits in memory.
    """
    milliseconds = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    value = (milliseconds & (2**48 - 1)) << 80 | 0x7 << 76 | (random >> 68 & 0xFFF) << 64 | 0b10 << 62
    value |= random & (2**62 - 1)
    return uuid.UUID(int=value)
