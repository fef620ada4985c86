"""Property-based fuzzing (hypothesis) of what reads outside input: results extraction, pagination,
mappings, conditions, configuration import, the SQL checker of database sources, and locations and URLs
(the egress policy). Whatever the input, the only exceptions are the project's own clear errors.

Each test runs a fixed budget of examples, the same ones every run (derandomized: a test that passed
cannot fail by chance), so the suite stays within minutes. `SYNC_FUZZ_EXAMPLES=5000` runs that many
fresh examples per test instead, to explore further (README, Tests; scripts/test.sh)."""
from __future__ import annotations

import ipaddress
import json
import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncapp.conditions import ConditionError, evaluate_conditions, validate_conditions
from syncapp.configuration import ConfigurationInvalid, bundle_import, bundle_validate
from syncapp.egress import DENIED_NETWORKS, address_refusal, location_problems, same_origin, url_refusal
from syncapp.errors import PaginationError, SourceError
from syncapp.hashing import hash_hashes
from syncapp.imports import Document, import_checked
from syncapp.mapping import MappingError, MappingSpec, apply_mapping, validate_mapping_config
from syncapp.models import Mapping, Register, Rule, Schema, Source, Synchronization
from syncapp.openconnector import bundle_normalize, config_dot_applied
from syncapp.pagination import (
    PageRequest,
    first_page_request,
    link_header_next,
    next_page_request,
    pagination_from_source_config,
)
from syncapp.sources.api import extract_objects
from syncapp.sources.database import query_problems

FUZZ_EXAMPLES = os.environ.get("SYNC_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(FUZZ_EXAMPLES or "40"), deadline=None, derandomize=not FUZZ_EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
# Text that looks like what the parsers look for, so that examples reach past the first check.
pathish = st.sampled_from(["", "_root", "_object", "results", "data.items", "a.0.b", "..", "0", "items.-1"]) | st.text(
    max_size=15
)
urlish = st.sampled_from([
    "http://127.0.0.1:1/a?page=2", "/relative?x=1", "https://[::1", "http://x:notaport/", "javascript:alert(1)",
    "", "//host/path", "http://127.0.0.1:1/a?page=1&page=2",
]) | st.text(max_size=40)


@FUZZ
@given(body=json_values, position=st.none() | pathish, xml=st.booleans())
def test_extracting_objects_from_any_body_gives_a_list_or_a_source_error(body, position, xml):
    try:
        objects = extract_objects(body=body, results_position=position, url="http://127.0.0.1:1/a", xml=xml)
    except SourceError:
        return
    assert isinstance(objects, list)


link_values = st.lists(
    st.tuples(urlish, st.sampled_from(['rel="next"', "rel=next", 'rel="prev"', "rel", "", 'rel="next"; x=1'])),
    max_size=3,
).map(lambda links: ", ".join(f"<{url}>; {rel}" for url, rel in links)) | st.text(max_size=60)

pagination_configs = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["auto", "page", "offset", "cursor", "next", "link_header", "none", "bogus"]) | scalars,
    "pageParam": scalars, "pageSize": scalars, "startPage": scalars, "limit": scalars, "offsetParam": scalars,
    "cursorPath": pathish | scalars, "nextPath": pathish | scalars, "totalPath": pathish | scalars,
    "hasMorePath": pathish | scalars, "stopOnEmptyPage": scalars,
})


@FUZZ
@given(pagination=pagination_configs | json_values, body=json_values, link=link_values,
       count=st.integers(0, 200), url=urlish)
def test_paginating_any_answer_gives_a_next_request_none_or_a_pagination_error(pagination, body, link, count, url):
    try:
        config = pagination_from_source_config({"pagination": pagination})
        current = first_page_request(config=config, url=url, params={})
        following = next_page_request(
            config=config, current=current, body=body, object_count=count, fingerprint=hash_hashes([]),
            headers={"Link": link},
        )
    except (PaginationError, SourceError):
        return
    assert following is None or isinstance(following, PageRequest)
    if following is not None:
        assert PageRequest.from_json(following.to_json()) == following


@FUZZ
@given(link=link_values)
def test_any_link_header_gives_a_link_or_none(link):
    found = link_header_next({"Link": link})
    assert found is None or isinstance(found, str)


templates = st.sampled_from([
    "{{ name }}", "{{ name | upper }}", "{{ items | map_each('x') }}", "{{ 1 / 0 }}", "{{ name[0:3] }}",
    "{{ ''.__class__ }}", "{% for i in range(3) %}{{ i }}{% endfor %}", "{{ name * 3 }}", "{{", "{{ x.y.z }}",
    "{{ [name] * 2 }}", "{{ {'a': name} }}", "{{ name | int }}",
]) | st.text(max_size=25)
casts = st.sampled_from(["int", "bool", "float", "string", "datetime", "moneyStringToInt", "unsetIfValue==x",
                         "int,bool", "json", "nonsense", "", "array", "keyCantBeValue"]) | st.text(max_size=12)


@FUZZ
@given(
    mapping=st.dictionaries(pathish, templates | pathish, max_size=4),
    cast=st.dictionaries(pathish, casts, max_size=3),
    unset=st.lists(pathish, max_size=2),
    pass_through=st.booleans(),
    data=st.dictionaries(st.sampled_from(["name", "items", "x", "a"]) | st.text(max_size=5), json_values,
                         max_size=5),
)
def test_any_mapping_of_any_object_gives_a_result_or_a_mapping_error(mapping, cast, unset, pass_through, data):
    config = {"mapping": mapping, "cast": cast, "unset": unset, "passThrough": pass_through}
    validate_mapping_config(config)  # never raises: it lists problems
    try:
        result = apply_mapping(
            spec=MappingSpec(mapping=mapping, cast=cast, unset=unset, pass_through=pass_through), data=data
        )
    except MappingError:
        return
    assert result is not None


operators = st.sampled_from(["==", "!=", "===", "<", ">", "<=", "and", "or", "!", "!!", "if", "var", "missing",
                             "in", "cat", "substr", "+", "-", "*", "/", "%", "min", "max", "merge", "map",
                             "filter", "reduce", "all", "some", "none", "method", "os.system", "log"])
rules = st.recursive(
    scalars,
    lambda children: st.builds(lambda op, args: {op: args}, operators, st.lists(children, max_size=3) | children),
    max_leaves=15,
)


@FUZZ
@given(rule=rules | json_values, data=json_values)
def test_any_rule_on_any_data_is_true_false_or_a_condition_error(rule, data):
    problems = validate_conditions(rule)
    assert isinstance(problems, list)
    try:
        assert evaluate_conditions(conditions=rule, data=data) in (True, False)
    except ConditionError:
        return


# Records of the right shape with any value at a few keys, so that examples reach past the first checks
# (a type that is a list once crashed the import); any section may also be any value.
references = st.sampled_from(["a", "b", "zoo"]) | scalars
kinds = st.sampled_from(["api", "database", "file", "register/schema", "x"]) | st.lists(
    st.sampled_from(["api", "file"]), min_size=1, max_size=2) | json_values
schema_lists = st.lists(st.fixed_dictionaries({"reference": references}, optional={"schema": json_values}),
                        max_size=2) | json_values


rule_types = st.sampled_from(["mapping", "error", "fetch_file", "write_file", "save_object", "x"]) | json_values


def records(required: dict, optional: dict) -> st.SearchStrategy:
    """Return lists of one or two records with the required keys and some of the optional ones."""
    return st.lists(st.fixed_dictionaries(required, optional=optional), min_size=1, max_size=2)


sections = st.fixed_dictionaries({}, optional={
    "sources": records({"reference": references, "type": kinds}, {
        "location": urlish | scalars, "configuration": json_values, "credentials": json_values,
    }) | json_values,
    "mappings": records({"reference": references}, {
        "mapping": json_values, "cast": json_values, "unset": json_values,
    }) | json_values,
    "synchronizations": records({"reference": references, "sourceType": kinds}, {
        "sourceId": references, "sourceConfig": json_values, "conditions": rules | json_values,
        "targetType": kinds, "targetId": st.sampled_from(["zoo/a", "a"]) | scalars, "schedule": scalars,
        "followUps": json_values, "sourceTargetMapping": scalars, "actions": json_values,
    }) | json_values,
    "registers": records({"reference": references, "schemas": schema_lists}, {"id": scalars, "name": scalars})
    | json_values,
    "rules": records({"reference": references, "type": rule_types}, {
        "timing": st.sampled_from(["before", "after"]) | json_values, "order": json_values,
        "conditions": rules | json_values, "configuration": json_values,
    }) | json_values,
})


@pytest.mark.django_db
@FUZZ
@given(bundle=sections | json_values)
def test_any_bundle_is_valid_or_a_list_of_problems(bundle):
    try:
        bundle_validate(bundle)
    except ConfigurationInvalid as invalid:
        assert invalid.problems and all(isinstance(problem, str) for problem in invalid.problems)


openconnector_items = st.fixed_dictionaries({}, optional={
    "id": scalars, "name": scalars, "sourceId": scalars, "targetId": scalars, "sourceType": scalars,
    "targetType": scalars, "sourceConfig": json_values, "conditions": json_values, "actions": json_values,
    "location": scalars, "auth": scalars, "apikey": scalars, "configuration": json_values, "uuid": scalars,
    "type": kinds, "schemas": schema_lists,
})


@pytest.mark.django_db
@FUZZ
@given(export=openconnector_items | st.lists(openconnector_items, max_size=3) | json_values)
def test_any_openconnector_export_reads_as_a_bundle_or_a_list_of_problems(export):
    try:
        bundle_validate(bundle_normalize(export))
    except ConfigurationInvalid as invalid:
        assert invalid.problems


dotted_keys = st.sampled_from([
    "headers.Accept", "query.q", "auth.0", "auth.1", "extraDataConfigs.0.staticEndpoint", "extraDataConfigs.1",
    "extraDataConfigs.0.extraDataConfigPerResult.subObjectId", "a.b", "a.b.c", "a", ".", "x..y", "0.0",
]) | st.text(max_size=12)
dotted_configs = st.dictionaries(dotted_keys, json_values, max_size=6)
openconnector_objects = st.fixed_dictionaries({}, optional={
    "name": scalars, "sourceId": scalars, "targetId": scalars, "sourceType": kinds, "targetType": kinds,
    "sourceConfig": dotted_configs | json_values, "targetConfig": dotted_configs | json_values,
    "configuration": dotted_configs | json_values, "location": scalars, "actions": json_values, "mapping": json_values,
})


@pytest.mark.django_db
@FUZZ
@given(components=st.fixed_dictionaries({}, optional={
    section: st.lists(openconnector_objects, max_size=3) | st.dictionaries(st.text(max_size=8), openconnector_objects,
                                                                          max_size=2) | json_values
    for section in ("sources", "mappings", "rules", "synchronizations", "endpoints")
}))
def test_any_components_document_is_reported_object_by_object(components):
    report = import_checked(Document(content={"components": components}), write=False)

    assert all(isinstance(problem, str) for problem in report.problems)
    assert all(item.outcome in ("importable", "refused", "not imported") for item in report.objects)


@FUZZ
@given(config=dotted_configs)
def test_dotted_keys_are_all_placed_whatever_the_configuration(config):
    placed = config_dot_applied(config)

    assert isinstance(placed, dict)
    assert not any("." in key for key in placed if isinstance(key, str))


# Bundles the fuzzer once crashed `sync import` with (TypeError), each with the field the import must name.
CRASHED_IMPORTS = {
    "sourceType a list": (
        {"synchronizations": [{"reference": "y", "name": "y", "sourceType": ["api"], "sourceConfig": {}}]},
        "synchronizations[0].sourceType: must be one of",
    ),
    "a source's type a list": (
        {"sources": [{"reference": "s", "type": ["api"], "location": "http://127.0.0.1:1/",
                      "configuration": {"headers": {}}}]},
        "sources[0].type: must be one of",
    ),
    "an exported source's type a list": (
        {"sources": [{"id": 1, "name": "s", "type": ["api"], "location": "http://127.0.0.1:1/"}]},
        "sources[0].type: must be one of",
    ),
    "an exported register's schemas a number": (
        {"registers": [{"id": 1, "reference": "r", "name": "r", "schemas": 5}]},
        "registers[0].schemas: must be a list",
    ),
    "schemas a number beside an exported synchronization": (
        {"registers": [{"reference": "r", "name": "r", "schemas": 5}], "synchronizations": [{"id": 1, "name": "y"}]},
        "registers[0].schemas: must be a list",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("bundle, problem", CRASHED_IMPORTS.values(), ids=CRASHED_IMPORTS.keys())
def test_a_bundle_that_once_crashed_the_import_is_refused_naming_the_field_and_stores_nothing(
    tmp_path, bundle, problem
):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))

    with pytest.raises(CommandError) as caught:
        call_command("sync", "import", str(path))

    assert problem in str(caught.value)
    assert not any(model.objects.exists() for model in (Source, Register, Schema, Mapping, Synchronization))


@pytest.mark.django_db
@FUZZ
@given(bundle=sections)
def test_importing_any_bundle_stores_it_or_refuses_it_storing_nothing(bundle):
    try:
        bundle_import(bundle)
    except ConfigurationInvalid as invalid:
        assert invalid.problems and all(isinstance(problem, str) for problem in invalid.problems)
        assert not any(model.objects.exists() for model in (Source, Register, Schema, Mapping, Rule, Synchronization))
    finally:
        for model in (Synchronization, Rule, Mapping, Schema, Register, Source):
            model.objects.all().delete()  # each example starts from an empty configuration


# The SQL checker of database sources: text that looks like SQL, so that examples reach past the first word.
sql_words = st.sampled_from([
    "SELECT", "select", "WITH", "FROM", "WHERE", "AS", "id", "name", "t", "*", ",", "(", ")", ";", "'", '"', "`",
    "--", "/*", "*/", "#", "\\", "$$", "$tag$", "E'", "FOR", "UPDATE", "SHARE", "LOCK", "IN", "MODE", "INSERT",
    "DELETE", "DROP", "INTO", "UNION", "pg_sleep(1)", "1", "é", "Ä", "ß", "\u00a0", "\n", "/*!", "N'x'",
]) | st.text(max_size=6)
sql_texts = st.lists(sql_words, max_size=12).map(" ".join) | st.text(max_size=60)


@FUZZ
@given(query=sql_texts)
def test_the_sql_checker_answers_any_text_with_a_list_of_problems(query):
    problems = query_problems(query)

    assert isinstance(problems, list) and all(isinstance(problem, str) and problem for problem in problems)


@FUZZ
@given(query=sql_texts, statement=st.sampled_from(["DELETE FROM t", "DROP TABLE t", "UPDATE t SET a = 1",
                                                   "INSERT INTO t VALUES (1)"]))
def test_a_query_the_checker_accepts_is_refused_once_a_writing_statement_follows_it(query, statement):
    if query_problems(query):
        return  # refused already
    assert query_problems(f"{query}\n;{statement}")


# Locations and URLs: the egress policy judges any text, and an address inside another by what it holds.
hosts = st.sampled_from(["127.0.0.1", "[::1]", "169.254.169.254", "[64:ff9b::a9fe:a9fe]", "localhost",
                         "example.org", "[::ffff:127.0.0.1]", "0", "0x7f.1", "[fe80::1%25eth0]", "2130706433",
                         "[2002:7f00:1::]", "xn--nxasmq6b", "exa mple.org", ""]) | st.text(max_size=15)
urls = st.builds(
    lambda scheme, userinfo, host, port, path: f"{scheme}{userinfo}{host}{port}{path}",
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "file://", "//", "", "javascript:"]),
    st.sampled_from(["", "user:pw@", "@", "a@b@"]), hosts,
    st.sampled_from(["", ":80", ":0", ":99999", ":x", ":"]), st.sampled_from(["", "/", "/a?b=c#d", "\\x"]),
) | urlish


@pytest.mark.usefixtures("default_egress_policy")
@FUZZ
@given(url=urls)
def test_the_egress_policy_judges_any_url_or_location_with_none_or_a_reason(url):
    refusal = url_refusal(url, resolve=False)
    problems = location_problems(url)

    assert refusal is None or (isinstance(refusal, str) and refusal)
    assert all(isinstance(problem, str) and problem.startswith("location: ") for problem in problems)
    assert same_origin(url, url)


denied_ipv4 = st.sampled_from([network for network in DENIED_NETWORKS if network.version == 4]).flatmap(
    lambda network: st.integers(int(network.network_address), int(network.broadcast_address))
).map(ipaddress.IPv4Address)


def _carried(ipv4: ipaddress.IPv4Address, form: str) -> ipaddress.IPv6Address:
    """Return an IPv6 address that carries the IPv4 address in the given form."""
    number = int(ipv4)
    return ipaddress.IPv6Address({
        "mapped": (0xFFFF << 32) | number,
        "nat64": (0x64FF9B << 96) | number,
        "nat64 local /48": (0x64FF9B0001 << 80) | ((number >> 16) << 64) | ((number & 0xFFFF) << 40),
        "6to4": (0x2002 << 112) | (number << 80) | 1,
        "teredo client": (0x20010000 << 96) | (0xFFFFFFFF ^ number),
        "teredo server": (0x20010000 << 96) | (number << 64),
    }[form])


@pytest.mark.usefixtures("default_egress_policy")
@FUZZ
@given(ipv4=denied_ipv4, form=st.sampled_from(["mapped", "nat64", "nat64 local /48", "6to4", "teredo client",
                                               "teredo server"]))
def test_an_ipv6_address_carrying_a_denied_ipv4_address_is_refused(ipv4, form):
    carried = _carried(ipv4, form)

    assert address_refusal(ipv4) is not None
    assert address_refusal(carried) is not None, f"{carried} ({form} of {ipv4})"
    assert url_refusal(f"http://[{carried}]/", resolve=False) is not None


# Extraction of objects: a list placed anywhere in a body is found where resultsPosition says it is.
names = st.from_regex(r"[a-z]{1,6}", fullmatch=True)
objects = st.lists(st.dictionaries(names, scalars, max_size=3), max_size=4)


@FUZZ
@given(path=st.lists(names, min_size=1, max_size=3), found=objects, noise=st.dictionaries(names, json_values,
                                                                                       max_size=3))
def test_a_list_of_objects_is_extracted_from_where_results_position_names_it(path, found, noise):
    body: object = found
    for name in reversed(path):
        body = {**noise, name: body}

    assert extract_objects(body=body, results_position=".".join(path), url="http://127.0.0.1:1/a") == found
    assert extract_objects(body=found, results_position="_root", url="http://127.0.0.1:1/a") == found
