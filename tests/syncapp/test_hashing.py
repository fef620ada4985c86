"""Hashes: orjson's speed with the json module's bytes, so contracts of earlier versions still match."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from syncapp.hashing import _FLOAT_DIFFERS, _float_may_differ, canonical_bytes, hash_hashes, hash_value


def stdlib_canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_the_canonical_bytes_are_those_of_the_json_module_for_any_json_value(value):
    assert canonical_bytes(value) == stdlib_canonical(value)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40) | st.text(alphabet="0123456789eE.-+x٣", max_size=40).map(str.encode))
def test_the_fast_test_for_floats_written_otherwise_answers_as_the_regular_expression(text):
    assert _float_may_differ(text) == (_FLOAT_DIFFERS.search(text) is not None)


def test_floats_orjson_writes_otherwise_take_the_json_modules_form():
    for value in (1e16, 1e-5, 1.234e-7, 9.99e22, -2.5e-300, 5e-324, 1.7976931348623157e308):
        assert canonical_bytes({"x": value}) == stdlib_canonical({"x": value})


def test_keys_are_sorted_at_every_depth_and_list_order_is_kept():
    assert canonical_bytes({"b": [3, 1], "a": {"d": 1, "c": "é"}}) == '{"a":{"c":"é","d":1},"b":[3,1]}'.encode()


def test_values_json_has_no_type_for_are_written_as_text():
    import datetime
    import decimal
    import uuid

    value = {"when": datetime.date(2026, 1, 2), "amount": decimal.Decimal("1.10"), "id": uuid.UUID(int=1)}

    assert canonical_bytes(value) == stdlib_canonical(value)


def test_a_hash_is_the_sha256_of_the_canonical_bytes_and_a_page_fingerprint_follows_its_objects():
    first, second = hash_value({"a": 1}), hash_value({"a": 2})

    assert len(first) == 64 and first != second and hash_value({"a": 1}) == first
    assert hash_hashes([first, second]) != hash_hashes([second, first])
