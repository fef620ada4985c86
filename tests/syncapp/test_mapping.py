"""The mapping language: paths, templates, casts, sub-mappings and validation."""

import copy
import pickle
import time
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncapp import mapping as mapping_module
from syncapp.mapping import (
    MAX_OUTPUT_CHARS,
    UUID_NAMESPACE,
    MappingError,
    MappingSpec,
    apply_mapping,
    validate_mapping,
    validate_mapping_config,
)

REMOVED = object()


@pytest.fixture
def pet() -> dict[str, Any]:
    return {
        "name": "Rex",
        "age": 3,
        "weight": 12.5,
        "vaccinated": False,
        "owner": None,
        "tags": ["good", "dog"],
        "address": {"city": "Utrecht", "zip": "3511"},
        "data": {"items": [{"kind": "cat", "legs": "4"}, {"kind": "bird", "legs": "2"}]},
    }


def run(mapping: dict[str, Any], data: dict[str, Any], **spec: Any) -> Any:
    return apply_mapping(spec=MappingSpec(mapping=mapping, **spec), data=data)


def cast(name: str | list[str], value: Any, **extra: Any) -> Any:
    """Return what a cast makes of `value` at key "v", or REMOVED when it removes the key."""
    result = apply_mapping(spec=MappingSpec(cast={"v": name}, pass_through=True), data={"v": value, **extra})
    return result.get("v", REMOVED)


# --------------------------------------------------------------------------------------------------
# Mapping values


def test_dot_path_copies_keep_their_type(pet: dict) -> None:
    result = run({"n": "name", "a": "age", "w": "weight", "v": "vaccinated", "o": "owner", "t": "tags"}, pet)
    assert result == {"n": "Rex", "a": 3, "w": 12.5, "v": False, "o": None, "t": ["good", "dog"]}
    assert type(result["a"]) is int


def test_an_encoded_dot_in_a_mapping_path_or_key_names_a_key_that_holds_a_dot() -> None:
    # given a case keyed as xxllnc keys it, and a mapping as OpenConnector writes it
    case = {"values": {"attribute.woo_titel": "Besluit", "case.subject": "Vergunning"}}
    mapping = {"titel": "values.attribute&#46;woo_titel", "meta&#46;subject": "values.case&#46;subject"}

    # then the paths find the dotted keys and the key writes one
    assert run(mapping, case) == {"titel": "Besluit", "meta.subject": "Vergunning"}


def test_copied_values_are_independent_of_the_input(pet: dict) -> None:
    result = run({"where": "address", "first": "data.items.0"}, pet)
    result["where"]["city"] = "Gouda"
    result["first"]["kind"] = "dog"
    assert pet["address"]["city"] == "Utrecht"
    assert pet["data"]["items"][0]["kind"] == "cat"


def test_target_dot_paths_build_nested_objects(pet: dict) -> None:
    assert run({"pet.name": "name", "pet.home.city": "address.city"}, pet) == {
        "pet": {"name": "Rex", "home": {"city": "Utrecht"}}
    }


def test_string_without_template_syntax_is_a_constant(pet: dict) -> None:
    assert run({"species": "dog", "note": "name is Rex"}, pet) == {"species": "dog", "note": "name is Rex"}


@pytest.mark.parametrize("source", ["", "."])
def test_empty_and_dot_sources_are_constants_not_the_whole_input(pet: dict, source: str) -> None:
    assert run({"x": source}, pet) == {"x": source}


@pytest.mark.parametrize("constant", [5, 2.5, True, False, None, [1, "a"], {"a": {"b": 1}}])
def test_non_string_values_are_constants(pet: dict, constant: Any) -> None:
    assert run({"x": constant}, pet) == {"x": constant}


def test_template_renders_with_the_input_as_context(pet: dict) -> None:
    assert run({"label": "{{ name }} ({{ age }}) from {{ address.city | upper }}"}, pet) == {
        "label": "Rex (3) from UTRECHT"
    }


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ age }}", 3),
        ("{{ weight * 2 }}", 25.0),
        ("{{ vaccinated }}", False),
        ("{{ owner }}", None),
        ("{{ tags }}", ["good", "dog"]),
        ("{{ address }}", {"city": "Utrecht", "zip": "3511"}),
        ("{{ tags | length }}", 2),
        ("{{ (1, 2) }}", [1, 2]),
        ("{{- age -}}", 3),
        ("{{ name }}", "Rex"),
        ("{{ missing }}", ""),
        ("{{ age }} years", "3 years"),
        ("{{ age }}{{ age }}", "33"),
        (" {{ age }}", " 3"),
        ("{{ range(2) }}", "range(0, 2)"),
    ],
)
def test_single_expression_keeps_its_native_value(pet: dict, template: str, expected: Any) -> None:
    result = run({"x": template}, pet)["x"]
    assert result == expected
    assert type(result) is type(expected)


def test_dict_keys_win_over_dict_methods_in_templates() -> None:
    assert run({"x": "{{ data.items }}", "y": "{{ data.keys }}"}, {"data": {"items": [1], "keys": "k"}}) == {
        "x": [1],
        "y": "k",
    }


def test_missing_variable_renders_empty(pet: dict) -> None:
    assert run({"x": "[{{ nickname }}]"}, pet) == {"x": "[]"}


def test_trailing_newline_of_a_template_is_kept(pet: dict) -> None:
    assert run({"x": "{{ name }}\n"}, pet) == {"x": "Rex\n"}


def test_pass_through_starts_from_the_input(pet: dict) -> None:
    result = run({"name": "{{ name | upper }}", "extra": 1}, pet, pass_through=True)
    assert result == {**pet, "name": "REX", "extra": 1}
    result["address"]["city"] = "Gouda"
    assert pet["address"]["city"] == "Utrecht"


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
    | st.datetimes() | st.tuples(st.integers()),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4) | st.integers(), children,
                                                                      max_size=4),
    max_leaves=20,
)


def containers(value: Any) -> list[int]:
    """Return the ids of the dicts and lists in a value."""
    if isinstance(value, dict):
        return [id(value), *(found for item in value.values() for found in containers(item))]
    if isinstance(value, list):
        return [id(value), *(found for item in value for found in containers(item))]
    return []


@settings(max_examples=300, deadline=None)
@given(json_like)
def test_values_are_copied_as_deepcopy_copies_them_sharing_no_container(value: Any) -> None:
    copied = mapping_module._copied(value)

    assert copied == copy.deepcopy(value)
    assert not set(containers(copied)) & set(containers(value))


def test_a_container_held_twice_is_copied_once_and_a_cycle_is_copied_as_deepcopy_has_it() -> None:
    shared = {"city": "Utrecht"}
    looped: list[Any] = [1]
    looped.append(looped)

    copied = mapping_module._copied({"home": shared, "work": shared, "loop": looped})

    assert copied["home"] is copied["work"] and copied["home"] is not shared
    assert copied["loop"][1] is copied["loop"] and copied["loop"] is not looped


def test_without_pass_through_the_result_starts_empty(pet: dict) -> None:
    assert run({"n": "name"}, pet) == {"n": "Rex"}


def test_unset_removes_paths_after_mapping(pet: dict) -> None:
    result = run({"copy": "address"}, pet, pass_through=True, unset=["data", "copy.zip", "not.there"])
    assert "data" not in result
    assert result["copy"] == {"city": "Utrecht"}


def test_templates_read_the_input_not_the_result(pet: dict) -> None:
    assert run({"name": "Max", "greeting": "hi {{ name }}"}, pet) == {"name": "Max", "greeting": "hi Rex"}


def test_result_with_only_hash_key_becomes_that_value(pet: dict) -> None:
    assert run({"#": "tags"}, pet) == ["good", "dog"]
    assert run({"#": "{{ name }}!"}, pet) == "Rex!"


def test_result_with_hash_and_other_keys_stays_an_object(pet: dict) -> None:
    assert run({"#": "name", "age": "age"}, pet) == {"#": "Rex", "age": 3}


def test_conflicting_targets_raise_a_mapping_error_naming_the_key(pet: dict) -> None:
    with pytest.raises(MappingError) as caught:
        run({"a": "name", "a.b": "age"}, pet)
    assert caught.value.key == "a.b"


@pytest.mark.parametrize("data", [[1], "text", None])
def test_input_must_be_an_object(data: Any) -> None:
    with pytest.raises(MappingError, match="input must be an object"):
        apply_mapping(spec=MappingSpec(), data=data)


# --------------------------------------------------------------------------------------------------
# Sub-mappings


ANIMAL = MappingSpec(mapping={"species": "kind", "legs": "legs"}, cast={"legs": "int"})


def resolver(specs: dict[str, MappingSpec]) -> Any:
    return specs.__getitem__


def test_each_element_of_a_list_is_mapped_with_another_mapping(pet: dict) -> None:
    spec = MappingSpec(mapping={"animals": "{{ data.items | map_each('animal') }}"})
    result = apply_mapping(spec=spec, data=pet, resolve_mapping=resolver({"animal": ANIMAL}))
    assert result == {"animals": [{"species": "cat", "legs": 4}, {"species": "bird", "legs": 2}]}


def test_map_each_is_also_a_global_function(pet: dict) -> None:
    species = MappingSpec(mapping={"#": "kind"})
    spec = MappingSpec(mapping={"kinds": "{{ map_each(data['items'], 'species') }}"})
    result = apply_mapping(spec=spec, data=pet, resolve_mapping=resolver({"species": species}))
    assert result == {"kinds": ["cat", "bird"]}


@pytest.mark.parametrize("template", ["{{ nothing | map_each('animal') }}", "{{ owner | map_each('animal') }}"])
def test_map_each_of_nothing_is_an_empty_list(pet: dict, template: str) -> None:
    spec = MappingSpec(mapping={"animals": template})
    assert apply_mapping(spec=spec, data=pet, resolve_mapping=resolver({"animal": ANIMAL})) == {"animals": []}


def test_map_each_error_names_the_target_and_the_element(pet: dict) -> None:
    pet["data"]["items"][1]["legs"] = "many"
    spec = MappingSpec(mapping={"animals": "{{ data.items | map_each('animal') }}"})
    with pytest.raises(MappingError) as caught:
        apply_mapping(spec=spec, data=pet, resolve_mapping=resolver({"animal": ANIMAL}))
    assert caught.value.key == "animals"
    assert "element 1" in str(caught.value)
    assert "legs" in str(caught.value)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ data.items | map_each('zoo') }}", "cannot resolve mapping 'zoo'"),
        ("{{ name | map_each('animal') }}", "map_each expects an array"),
        ("{{ tags | map_each('animal') }}", "input must be an object"),
    ],
)
def test_map_each_reports_bad_references_and_values(pet: dict, template: str, message: str) -> None:
    spec = MappingSpec(mapping={"x": template})
    with pytest.raises(MappingError, match=message):
        apply_mapping(spec=spec, data=pet, resolve_mapping=resolver({"animal": ANIMAL}))


def test_map_each_without_a_resolver_is_an_error(pet: dict) -> None:
    with pytest.raises(MappingError, match="no mapping resolver"):
        run({"x": "{{ data.items | map_each('animal') }}"}, pet)


def test_a_mapping_that_maps_itself_is_stopped() -> None:
    looping = MappingSpec(mapping={"x": "{{ [{}] | map_each('loop') }}"})
    started = time.perf_counter()
    with pytest.raises(MappingError, match="nest deeper than") as caught:
        apply_mapping(spec=looping, data={}, resolve_mapping=resolver({"loop": looping}))
    assert time.perf_counter() - started < 30
    assert caught.value.key == "x"


# --------------------------------------------------------------------------------------------------
# Sandbox and bounds


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ address.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ tags.append(1) }}",
        "{{ address.update({'x': 1}) }}",
    ],
)
def test_template_cannot_reach_python_internals(pet: dict, template: str) -> None:
    with pytest.raises(MappingError, match="unsafe") as caught:
        run({"x": template}, pet)
    assert caught.value.key == "x"
    assert pet["tags"] == ["good", "dog"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x' * 100000000 }}",
        "{{ [1] * 100000000 }}",
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}{% endmacro %}{{ d('x', 40) }}",
        "{% macro m() %}{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endmacro %}{{ m() | length }}",
        "{% set s %}{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endset %}{{ s | length }}",
        "{% filter upper %}{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endfilter %}",
        "{{ 2 ** 100000000 }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ 'x' | center(1000000000) }}",
        "{{ ('x' * 999999) | replace('x', 'yy') }}",
        "{{ 'x' | indent(1000000000) }}",
        "{{ (10**100).to_bytes(10**9, 'big') }}",
    ],
)
def test_huge_template_output_is_stopped(pet: dict, template: str) -> None:
    started = time.perf_counter()
    with pytest.raises(MappingError) as caught:
        run({"x": template}, pet)
    assert time.perf_counter() - started < 30
    assert caught.value.key == "x"
    assert str(caught.value).startswith("x: template error: ")


def test_output_just_under_the_bound_is_allowed(pet: dict) -> None:
    assert len(run({"x": f"{{{{ 'x' * {MAX_OUTPUT_CHARS} }}}}"}, pet)["x"]) == MAX_OUTPUT_CHARS


@pytest.mark.parametrize(
    "template",
    [
        "{% set s = 'x' * 999999 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    ],
)
def test_endless_work_without_output_is_stopped(pet: dict, template: str) -> None:
    started = time.perf_counter()
    with pytest.raises(MappingError):
        run({"x": template}, pet)
    assert time.perf_counter() - started < 30


def test_loops_still_know_their_length(pet: dict) -> None:
    template = "{% for t in tags %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}"
    assert run({"x": template}, pet) == {"x": "1/2,2/2"}


def test_templates_are_compiled_once(pet: dict) -> None:
    mapping_module._compile.cache_clear()
    run({"x": "{{ name }}-{{ age }}"}, pet)
    run({"x": "{{ name }}-{{ age }}"}, pet)
    info = mapping_module._compile.cache_info()
    assert (info.misses, info.hits) == (1, 1)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 1 / 0 }}", "kind: template error: division by zero"),
        ("{{ name | nofilter }}", "kind: template syntax error: No filter named 'nofilter'. (line 1)"),
        ("{{ kind }", "kind: template syntax error: unexpected '}' (line 1)"),
        ("{{ missing.attr }}", "kind: template error: 'missing' is undefined"),
    ],
)
def test_template_errors_name_the_target_key(pet: dict, template: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        run({"kind": template}, pet)
    assert caught.value.key == "kind"
    assert str(caught.value) == message


def test_absurdly_nested_template_is_a_mapping_error(pet: dict) -> None:
    template = "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"
    with pytest.raises(MappingError, match="cannot compile"):
        run({"x": template}, pet)
    assert validate_mapping(spec=MappingSpec(mapping={"x": template}))[0].startswith("mapping.x: template error")


# --------------------------------------------------------------------------------------------------
# Extra filters


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ address | json }}", '{"city": "Utrecht", "zip": "3511"}'),
        ("{{ nothing | json }}", "null"),
        ("{{ 'Zoë' | b64enc }}", "Wm/Dqw=="),
        ("{{ 'Wm/Dqw==' | b64dec }}", "Zoë"),
        ("{{ 'Café au Lait!' | slugify }}", "cafe-au-lait"),
        ("{{ '  --  ' | slugify }}", ""),
        ("{{ '2024-03-01T10:30:00Z' | date('%d-%m-%Y %H:%M') }}", "01-03-2024 10:30"),
        ("{{ 0 | date('%Y-%m-%d') }}", "1970-01-01"),
        ("{{ owner | date('%Y') }}", ""),
        ("{{ 'Rex' | uuid }}", str(uuid.uuid5(UUID_NAMESPACE, "Rex"))),
    ],
)
def test_extra_filters(pet: dict, template: str, expected: str) -> None:
    assert run({"x": template}, pet) == {"x": expected}


def test_uuid_without_a_value_is_random(pet: dict) -> None:
    result = run({"a": "{{ uuid() }}", "b": "{{ uuid() }}", "c": "{{ owner | uuid }}"}, pet)
    assert len({result["a"], result["b"], result["c"]}) == 3
    assert all(uuid.UUID(value).version == 4 for value in result.values())


def test_uuid_of_the_same_value_is_stable(pet: dict) -> None:
    assert run({"a": "{{ address | uuid }}"}, pet) == run({"a": "{{ address | uuid }}"}, pet)


def test_bad_filter_input_is_a_mapping_error(pet: dict) -> None:
    with pytest.raises(MappingError, match="x: template error: .*base64"):
        run({"x": "{{ 'not base64!' | b64dec }}"}, pet)


# --------------------------------------------------------------------------------------------------
# Casts


CAST_CASES = [
    # name, value, expected (REMOVED: the key is removed)
    ("string", 12, "12"),
    ("string", "", ""),
    ("string", None, ""),
    ("string", True, "true"),
    ("string", {"a": 1}, '{"a": 1}'),
    ("int", "12", 12),
    ("int", " 12.9 ", 12),
    ("int", 7.0, 7),
    ("int", "", None),
    ("int", None, None),
    ("integer", "-3", -3),
    ("integer", "12345678901234567890", 12345678901234567890),
    ("float", "1.5", 1.5),
    ("float", 2, 2.0),
    ("float", "", None),
    ("float", None, None),
    ("bool", "yes", True),
    ("bool", "On", True),
    ("bool", "0", False),
    ("bool", "", False),
    ("bool", None, False),
    ("bool", 2, True),
    ("bool", 0.0, False),
    ("boolean", "false", False),
    ("?bool", "true", True),
    ("?bool", "off", False),
    ("?bool", "", None),
    ("?bool", None, None),
    ("array", "a", ["a"]),
    ("array", [1, 2], [1, 2]),
    ("array", "", [""]),
    ("array", None, []),
    ("array", {"a": 1}, [{"a": 1}]),
    ("json", '{"a": [1, 2]}', {"a": [1, 2]}),
    ("json", "", None),
    ("json", None, None),
    ("json", 5, 5),
    ("jsonToArray", "[1, 2]", [1, 2]),
    ("jsonToArray", '{"a": 1, "b": 2}', [1, 2]),
    ("jsonToArray", "", []),
    ("jsonToArray", None, []),
    ("jsonToArray", {"a": 1}, [1]),
    ("jsonToArray", 5, [5]),
    ("nullStringToNull", "null", None),
    ("nullStringToNull", "NULL", None),
    ("nullStringToNull", "", ""),
    ("nullStringToNull", None, None),
    ("nullStringToNull", 5, 5),
    ("base64", "hi", "aGk="),
    ("base64", 12, "MTI="),
    ("base64", "", ""),
    ("base64", None, None),
    ("base64Decode", "aGk=", "hi"),
    ("base64Decode", "aGk", "hi"),
    ("base64Decode", "", ""),
    ("base64Decode", None, None),
    ("url", "a b/c&d", "a%20b%2Fc%26d"),
    ("url", "", ""),
    ("url", None, None),
    ("urlDecode", "a%20b%2Fc", "a b/c"),
    ("urlDecode", "", ""),
    ("urlDecode", None, None),
    ("html", '<b>"Tom" & Jerry</b>', "&lt;b&gt;&quot;Tom&quot; &amp; Jerry&lt;/b&gt;"),
    ("html", "", ""),
    ("html", None, None),
    ("htmlDecode", "&lt;b&gt; &amp; &eacute;", "<b> & é"),
    ("htmlDecode", "", ""),
    ("htmlDecode", None, None),
    ("datetime", "2024-03-01T10:00:00Z", "2024-03-01T10:00:00+00:00"),
    ("datetime", "2024-03-01 10:00:00", "2024-03-01T10:00:00"),
    ("datetime", "31-12-2024", "2024-12-31T00:00:00"),
    ("datetime", "20240301", "2024-03-01T00:00:00"),
    ("datetime", "31/12/2024 13:45", "2024-12-31T13:45:00"),
    ("datetime", "Fri, 01 Mar 2024 10:00:00 +0100", "2024-03-01T10:00:00+01:00"),
    ("datetime", 0, "1970-01-01T00:00:00+00:00"),
    ("datetime", "1700000000", "2023-11-14T22:13:20+00:00"),
    ("datetime", 1700000000000, "2023-11-14T22:13:20+00:00"),
    ("datetime", "", None),
    ("datetime", None, None),
    ("unsetIfValue==", "", REMOVED),
    ("unsetIfValue==", "x", "x"),
    ("unsetIfValue==", None, None),
    ("unsetIfValue==null", None, REMOVED),
    ("unsetIfValue==0", 0, REMOVED),
    ("unsetIfValue==[]", [], REMOVED),
    ("unsetIfValue==n/a", "n/a", REMOVED),
    ("setNullIfValue==n/a", "n/a", None),
    ("setNullIfValue==n/a", "ok", "ok"),
    ("setNullIfValue==", "", None),
    ("setNullIfValue==", None, None),
    ("setNullIfValue==5", 5, None),
    ("keyCantBeValue", "v", REMOVED),
    ("keyCantBeValue", "value", "value"),
    ("keyCantBeValue", "", ""),
    ("keyCantBeValue", None, None),
    ("keyCantBeValue", 5, 5),
    ("moneyStringToInt", "12.34", 1234),
    ("moneyStringToInt", "12", 1200),
    ("moneyStringToInt", "0.1", 10),
    ("moneyStringToInt", 12.34, 1234),
    ("moneyStringToInt", "-1.005", -101),
    ("moneyStringToInt", "", None),
    ("moneyStringToInt", None, None),
    ("intToMoneyString", 1234, "12.34"),
    ("intToMoneyString", "1234", "12.34"),
    ("intToMoneyString", 5, "0.05"),
    ("intToMoneyString", -5, "-0.05"),
    ("intToMoneyString", "", None),
    ("intToMoneyString", None, None),
    ("coordinateStringToArray", "52.1,4.3", [52.1, 4.3]),
    ("coordinateStringToArray", " 52.1 , 4.3 ", [52.1, 4.3]),
    ("coordinateStringToArray", "52.1 4.3 2", [52.1, 4.3, 2.0]),
    ("coordinateStringToArray", [52.1, 4.3], [52.1, 4.3]),
    ("coordinateStringToArray", "", None),
    ("coordinateStringToArray", None, None),
]


@pytest.mark.parametrize(("name", "value", "expected"), CAST_CASES)
def test_cast_converts_the_value(name: str, value: Any, expected: Any) -> None:
    result = cast(name, value)
    assert result == expected
    assert type(result) is type(expected)


CAST_FAILURES = [
    ("int", "abc"),
    ("int", [1]),
    ("int", "nan"),
    ("integer", {"a": 1}),
    ("float", "abc"),
    ("float", {}),
    ("float", "inf"),
    ("bool", "maybe"),
    ("bool", []),
    ("boolean", {"a": 1}),
    ("?bool", "maybe"),
    ("json", "{bad"),
    ("jsonToArray", "{bad"),
    ("base64", [1]),
    ("base64Decode", "!!"),
    ("base64Decode", 5),
    ("base64Decode", "//79"),
    ("url", {"a": 1}),
    ("urlDecode", 5),
    ("html", []),
    ("htmlDecode", 5),
    ("datetime", "not a date"),
    ("datetime", True),
    ("datetime", [2024]),
    ("moneyStringToInt", "abc"),
    ("moneyStringToInt", True),
    ("moneyStringToInt", [1]),
    ("intToMoneyString", "abc"),
    ("intToMoneyString", 12.5),
    ("intToMoneyString", []),
    ("coordinateStringToArray", "a,b"),
    ("coordinateStringToArray", "52.1"),
    ("coordinateStringToArray", 5),
]


@pytest.mark.parametrize(("name", "value"), CAST_FAILURES)
def test_cast_that_cannot_convert_raises_naming_the_path(name: str, value: Any) -> None:
    with pytest.raises(MappingError) as caught:
        cast(name, value)
    assert caught.value.key == "v"
    assert str(caught.value).startswith(f'v: cast "{name}" cannot convert')


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"legs": [1, 2, 3]}, 3),
        ({"legs": []}, 0),
        ({"legs": {"a": 1, "b": 2}}, 2),
        ({"legs": None}, 0),
        ({}, 0),
    ],
)
def test_count_value_counts_the_list_in_the_input(extra: dict, expected: int) -> None:
    assert cast("countValue:legs", "anything", **extra) == expected


def test_count_value_of_a_non_list_is_an_error() -> None:
    with pytest.raises(MappingError, match="countValue needs an array"):
        cast("countValue:legs", 1, legs="abc")


def test_count_value_reads_the_input_not_the_result() -> None:
    spec = MappingSpec(mapping={"count": 0, "legs": []}, cast={"count": "countValue:legs"})
    assert apply_mapping(spec=spec, data={"legs": [1, 2]}) == {"count": 2, "legs": []}


def test_key_cant_be_value_compares_the_last_key_of_a_nested_path() -> None:
    spec = MappingSpec(mapping={"a.status": "status", "a.other": "x"}, cast={"a.status": "keyCantBeValue"})
    assert apply_mapping(spec=spec, data={"status": "status", "x": 1}) == {"a": {"other": 1}}


@pytest.mark.parametrize(
    ("casts", "expected"), [("int,string", "12"), (["int", "string"], "12"), ("int, string", "12")]
)
def test_casts_are_chained_in_order(casts: Any, expected: Any) -> None:
    assert cast(casts, "12.7") == expected


def test_list_form_allows_commas_in_the_compared_value() -> None:
    assert cast(["unsetIfValue==a,b"], "a,b") is REMOVED


def test_chain_stops_once_the_key_is_removed() -> None:
    assert cast("unsetIfValue==,int", "") is REMOVED


def test_casts_skip_paths_that_do_not_exist() -> None:
    spec = MappingSpec(mapping={"a": 1}, cast={"b": "int", "c": "setNullIfValue==", "d": "countValue:a"})
    assert apply_mapping(spec=spec, data={"a": [1]}) == {"a": 1}


def test_casts_run_after_unset() -> None:
    spec = MappingSpec(mapping={"a": "x"}, unset=["a"], cast={"a": "int"})
    assert apply_mapping(spec=spec, data={"x": "not a number"}) == {}


def test_casts_apply_to_nested_paths() -> None:
    spec = MappingSpec(pass_through=True, cast={"lines.0.qty": "int", "meta.source": "string"})
    result = apply_mapping(spec=spec, data={"lines": [{"qty": "2"}], "meta.source": 5})
    assert result == {"lines": [{"qty": 2}], "meta.source": "5"}


def test_hash_result_is_taken_after_casts() -> None:
    assert apply_mapping(spec=MappingSpec(mapping={"#": "n"}, cast={"#": "int"}), data={"n": "4"}) == 4


@pytest.mark.parametrize("casts", ["integr", "int,", 5, ["int", 5]])
def test_unknown_cast_raises_when_applied(casts: Any) -> None:
    with pytest.raises(MappingError) as caught:
        cast(casts, "1")
    assert caught.value.key == "v"


# --------------------------------------------------------------------------------------------------
# Errors and config


def test_mapping_error_is_a_value_error_with_a_key() -> None:
    error = MappingError(key="kind", message="template error: boom")
    assert isinstance(error, ValueError)
    assert (error.key, error.message, str(error)) == (
        "kind",
        "template error: boom",
        "kind: template error: boom",
    )
    assert str(MappingError(key=None, message="boom")) == "boom"


def test_mapping_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(MappingError(key="kind", message="boom")))
    assert (type(error), error.key, error.message) == (MappingError, "kind", "boom")


def test_spec_is_built_from_camel_case_config() -> None:
    config = {"mapping": {"a": "b"}, "unset": ["c"], "cast": {"a": "int"}, "passThrough": True, "title": "x"}
    assert MappingSpec.from_config(config) == MappingSpec(
        mapping={"a": "b"}, unset=["c"], cast={"a": "int"}, pass_through=True
    )


def test_spec_config_keys_default_to_empty() -> None:
    assert MappingSpec.from_config({}) == MappingSpec(mapping={}, unset=[], cast={}, pass_through=False)


def test_spec_does_not_share_the_config_dicts() -> None:
    config: dict[str, Any] = {"mapping": {"a": "b"}}
    spec = MappingSpec.from_config(config)
    config["mapping"]["a"] = "changed"
    assert spec.mapping == {"a": "b"}


@pytest.mark.parametrize("config", [{"mapping": []}, {"passThrough": "yes"}, {"unset": "a"}, []])
def test_spec_from_badly_shaped_config_raises(config: Any) -> None:
    with pytest.raises(MappingError, match="invalid mapping config"):
        MappingSpec.from_config(config)


# --------------------------------------------------------------------------------------------------
# Validation


def test_valid_mapping_has_no_problems() -> None:
    spec = MappingSpec(
        mapping={"a": "name", "b": "{{ x | map_each('animal') }}", "c": 5},
        unset=["d"],
        cast={"a": "int,string", "b": ["array"]},
    )
    assert validate_mapping(spec=spec, known_references={"animal"}) == []


def test_template_syntax_error_names_the_key() -> None:
    spec = MappingSpec(mapping={"kind": "{{ kind }", "ok": "{{ kind }}"})
    assert validate_mapping(spec=spec) == ["mapping.kind: template syntax error: unexpected '}' (line 1)"]


def test_unknown_filter_is_reported_without_data() -> None:
    problems = validate_mapping(spec=MappingSpec(mapping={"kind": "{{ kind | shout }}"}))
    assert problems == ["mapping.kind: template syntax error: No filter named 'shout'. (line 1)"]


def test_unknown_cast_names_the_key() -> None:
    assert validate_mapping(spec=MappingSpec(cast={"legs": "integr"})) == ['cast.legs: unknown cast "integr"']


@pytest.mark.parametrize("name", [*sorted({case[0] for case in CAST_CASES}), "countValue:a.b", "setNullIfValue==x,y"])
def test_every_known_cast_name_validates(name: str) -> None:
    assert validate_mapping(spec=MappingSpec(cast={"v": [name]})) == []


@pytest.mark.parametrize(
    ("casts", "problem"),
    [
        ("int,strng", 'cast.v: unknown cast "strng"'),
        (["Int"], 'cast.v: unknown cast "Int"'),
        ("unsetIfValue=x", 'cast.v: unknown cast "unsetIfValue=x"'),
        ("countValue:", 'cast.v: cast "countValue:" needs a path'),
        (5, "cast.v: casts must be a string or a list of strings"),
    ],
)
def test_bad_casts_are_reported(casts: Any, problem: str) -> None:
    assert validate_mapping(spec=MappingSpec(cast={"v": casts})) == [problem]


def test_unset_entries_must_be_strings() -> None:
    assert validate_mapping(spec=MappingSpec(unset=["a", 3])) == ["unset.1: must be a string, not int"]


def test_empty_target_path_is_reported() -> None:
    assert validate_mapping(spec=MappingSpec(mapping={"": "x"})) == ["mapping.: target path must be a non-empty string"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ items | map_each('zoo') }}",
        "{{ map_each(items, 'zoo') }}",
        "{{ items | map_each(reference='zoo') }}",
        "{% for x in items | map_each('zoo') %}{{ x }}{% endfor %}",
    ],
)
def test_unknown_map_each_reference_names_the_key(template: str) -> None:
    spec = MappingSpec(mapping={"animals": template})
    assert validate_mapping(spec=spec, known_references={"animal"}) == [
        'mapping.animals: unknown mapping reference "zoo"'
    ]


def test_map_each_references_are_not_checked_without_known_references() -> None:
    assert validate_mapping(spec=MappingSpec(mapping={"animals": "{{ items | map_each('zoo') }}"})) == []


def test_dynamic_map_each_references_are_not_checked() -> None:
    spec = MappingSpec(mapping={"animals": "{{ items | map_each(kind) }}"})
    assert validate_mapping(spec=spec, known_references=set()) == []


@pytest.mark.parametrize(
    ("config", "problems"),
    [
        ([], ["mapping config must be an object, not array"]),
        ({"mapping": ["a"]}, ["mapping: must be an object, not array"]),
        ({"unset": "a"}, ["unset: must be an array, not string"]),
        ({"unset": ["a", None]}, ["unset.1: must be a string, not null"]),
        ({"cast": "int"}, ["cast: must be an object, not string"]),
        ({"passThrough": 1}, ["passThrough: must be a boolean, not int"]),
    ],
)
def test_config_shape_problems_are_reported(config: Any, problems: list[str]) -> None:
    assert validate_mapping_config(config) == problems


def test_config_validation_delegates_to_mapping_validation() -> None:
    config = {"mapping": {"kind": "{{ kind }"}, "cast": {"legs": "integr"}, "passThrough": False}
    assert validate_mapping_config(config) == [
        "mapping.kind: template syntax error: unexpected '}' (line 1)",
        'cast.legs: unknown cast "integr"',
    ]


def test_config_validation_checks_references_when_given() -> None:
    config = {"mapping": {"a": "{{ x | map_each('zoo') }}"}}
    assert validate_mapping_config(config, known_references={"animal"}) == [
        'mapping.a: unknown mapping reference "zoo"'
    ]


def test_valid_config_has_no_problems() -> None:
    assert validate_mapping_config({"mapping": {"a": "b"}, "unset": [], "cast": {}, "passThrough": True}) == []
