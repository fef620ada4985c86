"""Time-ordered identifiers for rows written in bulk."""
from __future__ import annotations

import time
import uuid

from syncapp.ids import uuid7


def test_a_uuid7_carries_its_millisecond_first_so_later_ones_sort_after_earlier_ones():
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()

    assert (first.version, first.variant) == (7, uuid.RFC_4122)
    assert first < second
    assert abs((first.int >> 80) - time.time_ns() // 1_000_000) < 1000
    assert len({uuid7() for _ in range(1000)}) == 1000
