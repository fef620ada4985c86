"""Mappings written in Twig (language "twig"): rendered as OpenConnector renders them, bounded as Jinja2
mappings are, chosen per mapping and carried by bundles, the API, the admin and OpenConnector imports."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncapp.configuration import ConfigurationInvalid, bundle_export, bundle_import
from syncapp.mapping import MappingError, MappingSpec, apply_mapping, validate_mapping, validate_mapping_config
from syncapp.models import Mapping
from syncapp.openconnector import bundle_normalize

CONFIGURATIONS = Path(__file__).resolve().parents[3] / "shared/conformance/openconnector/configurations"


def twig(data: dict[str, Any], resolve=None, **mapping: Any) -> Any:
    """Apply a Twig mapping of ``mapping`` to ``data``."""
    return apply_mapping(spec=MappingSpec(mapping=mapping, language="twig"), data=data, resolve_mapping=resolve)


# -- semantics


def test_a_set_inside_a_loop_carries_to_the_next_iteration_and_out_of_the_loop():
    template = (
        '[{% set n = 0 %}{% for f in files %}{% if n > 0 %}, {% endif %}"{{ f }}"{% set n = n + 1 %}{% endfor %}]'
    )

    count = "{% set n = 0 %}{% for f in files %}{% set n = n + 1 %}{% endfor %}{{ n }}"

    result = twig({"files": ["a", "b", "c"]}, out=template, count=count)

    assert json.loads(result["out"]) == ["a", "b", "c"]
    assert result["count"] == "3"


def test_booleans_and_null_print_as_php_prints_them_and_every_result_is_text():
    result = twig({"list": [1, 2], "yes": True, "no": False}, t="{{ yes }}", f="[{{ no }}]", n="[{{ nothing }}]",
                  whole="{{ list|length }}", array="{{ list }}")

    assert result == {"t": "1", "f": "[]", "n": "[]", "whole": "2", "array": "Array"}


def test_scalar_constants_become_text_as_openconnector_coerces_them_and_arrays_stay():
    result = twig({"n": 1}, featured=False, active=True, count=0, ratio=1.5, tags=["a"], meta={"b": 1})

    assert result == {"featured": "", "active": "1", "count": "0", "ratio": "1.5", "tags": ["a"], "meta": {"b": 1}}


def test_a_null_constant_is_refused_as_openconnector_fails_on_it():
    with pytest.raises(MappingError, match="null constant") as raised:
        twig({}, nothing=None)

    assert raised.value.key == "nothing"
    assert validate_mapping_config({"mapping": {"nothing": None}, "language": "twig"}) == [
        "mapping.nothing: a null constant cannot be rendered (OpenConnector fails on it too)"
    ]
    assert validate_mapping_config({"mapping": {"nothing": None}}) == []


def test_a_root_result_is_always_an_array_as_openconnector_returns_it():
    assert apply_mapping(spec=MappingSpec(mapping={"#": "{{ name }}"}, language="twig"), data={"name": "x"}) == ["x"]
    assert apply_mapping(spec=MappingSpec(mapping={"#": "list"}, language="twig"), data={"list": [1]}) == [1]


def test_json_to_array_decodes_as_openconnector_keeping_objects_and_nulling_what_is_not_json():
    spec = MappingSpec(
        mapping={"one": "{{ {'a': 1}|json_encode }}", "list": "[{{ 1 }}, {{ 2 }}]", "bad": "[1,", "kept": "items"},
        cast={"one": "jsonToArray", "list": "jsonToArray", "bad": "jsonToArray", "kept": "jsonToArray"},
        language="twig",
    )

    result = apply_mapping(spec=spec, data={"items": [{"x": 1}]})

    assert result == {"one": {"a": 1}, "list": [1, 2], "bad": None, "kept": [{"x": 1}]}


def test_the_jinja2_language_stays_the_default_with_its_native_values():
    result = apply_mapping(spec=MappingSpec(mapping={"items": "{{ list }}"}), data={"list": [1, 2]})

    assert result == {"items": [1, 2]}


def test_output_is_escaped_then_entity_decoded_as_openconnector_does():
    result = twig({"q": "a &amp; <b>"}, raw="{{ q }}", text="Caf&eacute; &amp; {{ 'x'|raw }}")

    # Twig escapes q to "a &amp;amp; &lt;b&gt;", html_entity_decode turns it back; literal entities are decoded.
    assert result == {"raw": "a &amp; <b>", "text": "Café & x"}


def test_dates_follow_php_formats_in_utc_and_twig_drops_the_backslash_of_an_unknown_escape():
    result = twig(
        {"when": "2024-03-05T10:20:30+01:00"},
        escaped="{{ when|date('Y-m-d\\\\TH:i:s\\\\Z') }}", dropped="{{ when|date('Y-m-d\\TH:i:s') }}",
        day="{{ when|date('D j M y, N') }}",
    )

    assert result == {"escaped": "2024-03-05T09:20:30Z", "dropped": "2024-03-05UTC09:20:30", "day": "Tue 5 Mar 24, 2"}


def test_null_coalescing_defined_empty_and_default_tell_missing_from_empty():
    result = twig(
        {"zero": 0, "empty": "", "list": []},
        a="{{ missing ?? 'fallback' }}", b="{{ zero ?? 'fallback' }}", c="{{ zero is empty ? 'e' : 'ne' }}",
        d="{{ empty is empty and list is empty and missing is not defined ? 'yes' }}", e="{{ zero|default('d') }}",
    )

    assert result == {"a": "fallback", "b": "0", "c": "ne", "d": "yes", "e": "0"}


def test_keys_with_dots_and_numeric_keys_are_reached_as_in_twig():
    result = twig({"values": {"case.subject": "S"}, "fields": [{"label": "L"}]},
                  subject="{{ values['case.subject'] }}", label="{{ fields.0.label }}{{ fields[0]['label'] }}")

    assert result == {"subject": "S", "label": "LL"}


def test_arrow_functions_merge_json_encode_and_replace_work_together():
    result = twig(
        {"items": [{"n": 1}, {"n": 2}, {"n": 3}], "extra": {"a": "b/c"}},
        odd="{{ items|filter(i => i.n is odd)|map(i => i.n)|join(',') }}",
        json="{{ extra|merge({'d': 1.5})|json_encode }}",
        sum="{{ items|reduce((carry, i) => carry + i.n, 0) }}",
        dots="{{ '1.2.3'|replace({'.': '_'}) }}",
    )

    assert result == {"odd": "1,3", "json": '{"a":"b\\/c","d":1.5}', "sum": "6", "dots": "1_2_3"}


def test_execute_mapping_applies_another_mapping_by_reference_also_to_a_list():
    # A scalar element of a list is mapped as {"0": element, "value": element}, as OpenConnector does.
    specs = {"inner": MappingSpec(mapping={"name": "{{ (n ?? value)|upper }}"}, language="twig")}

    result = twig(
        {"item": {"n": "a"}, "items": [{"n": "b"}, "c"]}, resolve=specs.__getitem__,
        one="{{ executeMapping('inner', item)|json_encode }}",
        many="{{ executeMapping('inner', items, true)|json_encode }}",
    )

    assert json.loads(result["one"]) == {"name": "A"}
    assert json.loads(result["many"]) == [{"name": "B"}, {"name": "C"}]


def test_a_mapping_that_executes_itself_stops_at_the_nesting_bound():
    spec = MappingSpec(mapping={"x": "{{ executeMapping('self', _context)|json_encode }}"}, language="twig")

    with pytest.raises(MappingError, match="nest deeper"):
        apply_mapping(spec=spec, data={}, resolve_mapping=lambda reference: spec)


def test_generate_uuid_gives_a_random_version_4_uuid():
    result = twig({}, a="{{ generateUuid() }}", b="{{ generateUuid() }}")

    assert result["a"] != result["b"]
    assert result["a"][14] == "4"


# -- errors and bounds


@pytest.mark.parametrize(("template", "message"), [
    ("{% for i in 1..200000 %}{% endfor %}", "range of 200000 items exceeds 100000"),
    ("{% for i in 1..100000 %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}", "output exceeds 1000000"),
    ("{% set s = 'x' %}{% for i in 1..25 %}{% set s = s ~ s %}{% endfor %}", "exceeds 1000000"),
    ("{% for i in 1..100000 %}{% for j in 1..100 %}{% endfor %}{% endfor %}", "more than 1000000 operations"),
    ("{{ '%999999999s'|format(1) }}", "format width"),
    ("{{ 1|number_format(9999999) }}", "number_format with 9999999 decimals"),
    ("{% set s = range(1, 1000)|join(',') %}{{ s|replace({',': s}) }}", "replace would produce more"),
    ("{% set a = range(1, 1000) %}{% set b = [a, a, a, a, a, a, a, a, a, a] %}"
     "{% set c = [b, b, b, b, b, b, b, b, b, b] %}{% set d = [c, c, c, c, c, c, c, c, c, c] %}{{ d|json_encode }}",
     "json_encode would produce more"),
    ("{% set a = range(1, 1000)|map(i => 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') %}"
     "{% set b = a|merge(a)|merge(a)|merge(a) %}{{ [b|join, b|join, b|join, b|join, b|join]|join }}",
     "join would produce"),
])
def test_a_twig_template_beyond_the_bounds_stops_with_a_mapping_error(template, message):
    with pytest.raises(MappingError, match=message) as raised:
        twig({}, big=template)

    assert raised.value.key == "big"


def test_a_regular_expression_that_repeats_a_repetition_is_refused_rather_than_run():
    with pytest.raises(MappingError, match="repeats a repetition"):
        twig({"text": "a" * 40 + "!"}, check="{{ text matches '/^(a+)+$/' ? 'yes' : 'no' }}")

    assert twig({"text": "abc"}, check="{{ text matches '/^a.c$/' ? 'yes' : 'no' }}") == {"check": "yes"}


def test_a_runtime_error_names_the_key_and_the_line():
    with pytest.raises(MappingError) as raised:
        twig({"text": "abc"}, total="{% if true %}\n{{ text + 1 }}{% endif %}")

    assert raised.value.key == "total"
    assert "(line 2)" in raised.value.message


def test_validation_reports_twig_syntax_problems_with_their_line_and_unknown_functions():
    spec = MappingSpec(mapping={"a": "{% if x %}\n{% elsif y %}{% endif %}", "b": "{{ getFiles('1') }}",
                                "c": "{{ x|preg_replace('/a/', '') }}", "ok": "{{ x ?? 1 }}"}, language="twig")

    assert validate_mapping(spec=spec) == [
        'mapping.a: template syntax error: Unknown "elsif" tag. (line 2)',
        'mapping.b: template syntax error: Unknown "getFiles" function. (line 1)',
        'mapping.c: template syntax error: Unknown "preg_replace" filter. (line 1)',
    ]


def test_every_shipped_openconnector_mapping_is_valid_twig_but_the_one_with_filters_twig_lacks():
    problems = {
        path.parts[-3]: validate_mapping_config(
            {"mapping": json.loads(path.read_text(encoding="utf-8")).get("mapping") or {}, "language": "twig"}
        )
        for path in CONFIGURATIONS.glob("*/mappings/*.json")
    }

    assert {folder: found for folder, found in problems.items() if found} == {
        # OpenConnector fails on this template too (real Twig: 'Unknown "strip_tags" filter').
        "woo-elastic": [
            'mapping.link: template syntax error: Unknown "strip_tags" filter. Did you mean "striptags"? (line 1)'
        ],
    }


def test_a_twig_template_is_not_valid_jinja2_and_the_other_way_round():
    twig_only = {"mapping": {"a": "{% if x %}1{% elseif y %}2{% endif %}"}}
    jinja_only = {"mapping": {"a": "{% if x %}1{% elif y %}2{% endif %}"}}

    assert validate_mapping_config({**twig_only, "language": "twig"}) == []
    assert validate_mapping_config(twig_only) != []
    assert validate_mapping_config({**jinja_only, "language": "twig"}) != []


def test_an_unknown_language_is_refused():
    assert validate_mapping_config({"mapping": {}, "language": "php"}) == [
        "language: must be one of jinja2, twig, not 'php'"
    ]


# -- plumbing


@pytest.mark.django_db
def test_a_bundle_mapping_keeps_its_language_through_import_and_export():
    bundle = {"mappings": [
        {"reference": "in-twig", "language": "twig", "mapping": {"a": "{{ x ?? 'none' }}"}},
        {"reference": "in-jinja", "mapping": {"a": "{{ x | default('none') }}"}},
    ]}

    bundle_import(bundle)

    exported = {item["reference"]: item for item in bundle_export()["mappings"]}
    assert (exported["in-twig"]["language"], exported["in-jinja"]["language"]) == ("twig", "jinja2")
    assert Mapping.objects.get(reference="in-twig").language == "twig"


@pytest.mark.django_db
def test_a_bundle_twig_mapping_with_a_syntax_error_is_refused_with_its_path_and_line():
    bundle = {"mappings": [{"reference": "bad", "language": "twig", "mapping": {"a": "{{ x }\n}"}}]}

    with pytest.raises(ConfigurationInvalid) as raised:
        bundle_import(bundle)

    assert "mappings[0].mapping.a: template syntax error" in str(raised.value.problems)


def test_every_mapping_read_from_openconnector_is_twig():
    exports = [json.loads(path.read_text(encoding="utf-8")) for path in CONFIGURATIONS.glob("*/mappings/*.json")]

    bundle = bundle_normalize({"mappings": [{"@type": "mapping", **item} for item in exports]})

    assert {item.get("language") for item in bundle["mappings"]} == {"twig"}


@pytest.mark.django_db
def test_the_api_takes_and_shows_the_language_and_checks_twig_syntax(api):
    created = api.post("/api/mappings/", {"reference": "t", "language": "twig", "mapping": {"a": "{{ x ?? 1 }}"}},
                       format="json")
    refused = api.post("/api/mappings/", {"reference": "u", "language": "twig", "mapping": {"a": "{% if %}"}},
                       format="json")

    assert created.status_code == 201, created.json()
    assert api.get(f"/api/mappings/{created.json()['id']}/").json()["language"] == "twig"
    assert refused.status_code == 400
    assert "line 1" in json.dumps(refused.json())


@pytest.mark.django_db
def test_the_api_tries_a_draft_twig_mapping(api):
    response = api.post("/api/mappings/try/", {
        "language": "twig", "mapping": {"a": "{% for k, v in data %}{{ k }}={{ v }};{% endfor %}"},
        "data": {"data": {"x": 1, "y": True}},
    }, format="json")

    assert response.json() == {"ok": True, "result": {"a": "x=1;y=1;"}}


def test_the_admin_form_has_the_language_and_checks_twig_syntax(admin_client):
    response = admin_client.post("/admin/syncapp/mapping/add/", {
        "reference": "t", "name": "", "description": "", "language": "twig",
        "mapping": json.dumps({"a": "{% for x in y %}"}), "unset": "[]", "cast": "{}",
    })

    assert response.status_code == 200
    assert "line 1" in str(response.context["adminform"].form.errors)
    assert not Mapping.objects.exists()
