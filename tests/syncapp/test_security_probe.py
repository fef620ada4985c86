"""The findings of ../shared/findings/security-probe.md, each reproduced: what broke then holds now.

Findings 1 (credentials to other hosts), 3 (bodies without limits), 6 (addresses) and 7 (absurd pages)
are in test_egress.py; 2 (permissions) in test_permissions.py; 11's plain-text credentials and tokens
in test_sealing.py. The rest are here, numbered as in the probe.
"""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from syncapp import runs as sync_runs
from syncapp.conditions import ConditionError, evaluate_conditions, evaluate_rule
from syncapp.configuration import ConfigurationInvalid, bundle_import, bundle_load, bundle_validate
from syncapp.mapping import MappingError, MappingSpec, apply_mapping
from syncapp.models import Object
from tests.conftest import zoo_bundle
from tests.helpers import credentials_set, import_zoo
from tests.loopback import LoopbackServer

API_KEY = "key-probe-0d5f19a7c3-never-show"
PASSWORD = "pw-probe-77c1e0b2aa-never-show"


@pytest.fixture
def staff_api(admin_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


# 4. JSON Logic without resource bounds


def test_4_a_rule_that_doubles_a_text_forty_times_fails_clearly_at_once():
    rule = {"reduce": [[1] * 40, {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "x"]}

    with pytest.raises(ConditionError, match="built a text longer than 100,000 characters"):
        evaluate_rule(rule=rule, data={})


def test_4_a_number_out_of_range_is_a_clear_error_not_a_500(staff_api, db):
    response = staff_api.post("/api/conditions/try/", {"conditions": {"*": [1e300] * 20}, "data": {}},
                              format="json")

    assert response.status_code in (200, 400)
    assert "out of range" in json.dumps(response.json())


def test_4_squaring_a_number_forty_times_stops_at_the_bound():
    rule = {"reduce": [[1] * 40, {"*": [{"var": "accumulator"}, {"var": "accumulator"}]}, 10]}

    with pytest.raises(ConditionError, match="out of range"):
        evaluate_conditions(conditions=rule, data={})


def test_4_ordinary_rules_are_untouched_by_the_bounds():
    assert evaluate_rule(rule={"cat": ["a", {"var": "b"}]}, data={"b": "c"}) == "ac"
    assert evaluate_rule(rule={"reduce": [[1, 2, 3], {"+": [{"var": "accumulator"}, {"var": "current"}]}, 0]},
                         data={}) == 6


# 5. Mapping output not bounded when serialised


@pytest.mark.parametrize("template", ["{{ [['x'*999999]*1000]*1000 }}", "{{ ['x'*999999]*1000 }}"])
def test_5_a_value_small_in_memory_but_huge_written_out_is_refused(template):
    with pytest.raises(MappingError, match="the value written out exceeds 1000000 characters"):
        apply_mapping(spec=MappingSpec(mapping={"a": template}), data={})


def test_5_the_try_endpoint_answers_the_bound_instead_of_dying(staff_api, db):
    response = staff_api.post(
        "/api/mappings/try/", {"mapping": {"a": "{{ [['x'*999999]*1000]*1000 }}"}, "data": {}}, format="json"
    )

    assert response.status_code in (200, 400)
    assert "exceeds 1000000 characters" in json.dumps(response.json())


# 8. A YAML alias bomb


def test_8_a_yaml_alias_bomb_is_refused_before_it_grows(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for index, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[index]
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 1000

    with pytest.raises(ConfigurationInvalid, match="aliases .* are not allowed in a bundle"):
        bundle_load(path)


# 9. Secrets cut before they were masked


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
@pytest.mark.parametrize(("credentials", "secret"), [
    ({"type": "apiKey", "in": "header", "name": "X-API-Key", "value": API_KEY}, API_KEY),
    ({"type": "basic", "username": "zoo", "password": PASSWORD}, PASSWORD),
])
def test_9_a_secret_echoed_at_the_cut_of_an_error_leaves_no_prefix_anywhere(credentials, secret, admin_client):
    # Given a source that refuses the call and echoes the secret so that it straddles the 200th character
    def echo(seen):
        return 401, {"Content-Type": "text/plain"}, "x" * 190 + secret + " was refused"

    with LoopbackServer(echo) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        credentials_set(sync.source, credentials)

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    shown = [run.error_message, *run.pages.values_list("error_message", flat=True)]
    out = io.StringIO()
    call_command("sync", "status", str(run.pk), stdout=out)
    shown.append(out.getvalue())
    shown.append(admin_client.get(f"/admin/contracts/synchronizationrun/{run.pk}/change/").content.decode())
    assert run.status == "failed" and "answered 401" in run.error_message
    for text in shown:
        assert secret[:6] not in text


# 10. Tracebacks instead of clear errors


@pytest.mark.django_db
def test_10_nan_in_a_bundle_is_named_with_its_path():
    bundle = zoo_bundle(location="http://127.0.0.1:8900")
    bundle["sources"][0]["configuration"]["timeout"] = float("nan")

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_import(bundle)

    assert caught.value.problems == ["sources[0].configuration.timeout: nan is not a JSON number"]


def test_10_nan_in_a_bundle_file_is_not_json(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text('{"sources": [{"reference": "s", "location": "http://127.0.0.1:1", "x": NaN}]}')

    with pytest.raises(ConfigurationInvalid, match="not valid json: NaN is not a JSON number"):
        bundle_load(path)


@pytest.mark.django_db
def test_10_an_openconnector_id_in_superscript_digits_is_a_clear_problem():
    export = {"name": "x", "sourceId": "¹", "sourceType": "api", "targetType": "register/schema", "targetId": "1/1"}

    with pytest.raises(ConfigurationInvalid):
        bundle_validate({"synchronizations": [export]})


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_10_a_bundle_nested_100000_deep_is_a_clear_error(tmp_path, suffix):
    path = tmp_path / f"deep{suffix}"
    path.write_text("[" * 100_000 + "]" * 100_000)

    with pytest.raises(ConfigurationInvalid, match="nest"):
        bundle_load(path)


@pytest.mark.django_db
def test_10_a_bundle_nested_deeper_than_the_bound_is_refused_naming_where():
    deep: object = "x"
    for _ in range(150):
        deep = {"d": deep}
    bundle = zoo_bundle(location="http://127.0.0.1:8900")
    bundle["sources"][0]["configuration"]["deep"] = deep

    with pytest.raises(ConfigurationInvalid, match="nests deeper than 100 levels"):
        bundle_import(bundle)


@pytest.mark.parametrize("path", ["/api/conditions/try/", "/api/mappings/try/"])
def test_10_a_request_nested_100000_deep_answers_400_on_the_try_endpoints(staff_api, db, path):
    response = staff_api.generic("POST", path, "[" * 100_000 + "]" * 100_000, content_type="application/json")

    assert response.status_code == 400
    assert "nests too deep" in response.json()["detail"]


@pytest.mark.django_db
def test_10_a_location_that_is_not_a_url_is_refused_when_saved():
    with pytest.raises(ConfigurationInvalid, match=r"sources\[0\].location: .*not a valid URL"):
        bundle_import(zoo_bundle(location="http://[::1"))


@pytest.mark.django_db
@pytest.mark.parametrize("position", [["results"], 3])
def test_10_a_results_position_that_is_not_text_is_refused_when_saved(position):
    bundle = zoo_bundle(location="http://127.0.0.1:8900")
    bundle["synchronizations"][0]["sourceConfig"]["resultsPosition"] = position

    with pytest.raises(ConfigurationInvalid, match="resultsPosition: must be text"):
        bundle_import(bundle)


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_10_xml_with_an_unknown_encoding_fails_the_page_clearly():
    body = "<?xml version='1.0' encoding='bogus'?><animals><animal><id>1</id></animal></animals>"
    with LoopbackServer(lambda seen: (200, {"Content-Type": "application/xml"}, body)) as server:
        sync = import_zoo(zoo_bundle(location=server.url))

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed" and "not valid XML" in run.error_message
    assert Object.objects.count() == 0


def test_10_sync_import_of_a_bad_file_is_a_command_error_not_a_traceback(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)

    with pytest.raises(CommandError, match="nests too deep"):
        call_command("sync", "import", str(path), stdout=io.StringIO())


# 11. Invalid UTF-8 replaced silently; and what held: JSON nested 100,000 deep


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
@pytest.mark.parametrize(("body", "message"), [
    (b'{"results": [{"id": 1, "name": "caf\xe9"}]}', "not valid utf-8 text"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
])
def test_11_a_body_that_is_not_utf8_or_nests_too_deep_fails_the_page_clearly(body, message):
    with LoopbackServer(lambda seen: (200, {"Content-Type": "application/json"}, body)) as server:
        sync = import_zoo(zoo_bundle(location=server.url))

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed" and message in run.error_message, run.error_message
    assert Object.objects.count() == 0


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_11_a_declared_charset_is_honoured():
    body = '{"results": [{"id": 1, "name": "café", "species": "cat", "status": "active"}]}'.encode("latin-1")
    with LoopbackServer(lambda seen: (200, {"Content-Type": "application/json; charset=latin-1"}, body)) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "none"}}
        sync.save()

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.found == 1, run.error_message
