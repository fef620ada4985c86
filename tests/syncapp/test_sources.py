"""Calls to a source (SYNC.md section 4): merged settings, TLS, templates, JSON and XML bodies, clear errors,
and finding the objects in a body."""
from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from syncapp import runs as sync_runs
from syncapp.configuration import ConfigurationInvalid, bundle_validate
from syncapp.errors import SourceError
from syncapp.models import Source
from syncapp.outbound.calls import call_settings, configuration_problems, endpoint_url, fetch_page, xml_to_data
from syncapp.outbound.masking import mask_url
from syncapp.pagination import PageRequest, first_page_request, pagination_from_source_config
from syncapp.sources.api import extract_objects
from tests.conftest import zoo_bundle
from tests.helpers import import_zoo
from tests.loopback import LoopbackServer


def source_at(url: str, **configuration: Any) -> Source:
    """An unsaved source: fetching needs no database."""
    return Source(reference="zoo-api", name="Zoo", location=url, configuration=configuration, credentials={})


def fetch(source: Source, source_config: dict[str, Any] | None = None):
    source_config = source_config or {}
    request = first_page_request(
        config=pagination_from_source_config(source_config),
        url=endpoint_url(source=source, source_config=source_config), params={},
    )
    return fetch_page(source=source, source_config=source_config, request=request)


# ---------------------------------------------------------------------------------------------
# Settings of a call


def test_headers_of_the_source_and_the_synchronization_merge_later_winning_whatever_the_letter_case():
    with LoopbackServer(lambda seen: (200, {}, [])) as server:
        source = source_at(
            server.url, headers={"Accept": "application/xml", "X-Tenant": "a"}, **{"headers.X-Trace": "1"}
        )
        fetch(source, {"headers": {"accept": "application/json"}, "headers.X-Tenant": "b", "headers.X-Trace": None})

    seen = server.requests[0]
    assert seen.headers["accept"] == ["application/json"]
    assert seen.headers["x-tenant"] == ["b"]
    assert "x-trace" not in seen.headers


def test_a_list_of_header_values_is_sent_as_one_header():
    with LoopbackServer(lambda seen: (200, {}, [])) as server:
        fetch(source_at(server.url, headers={"Accept": ["application/json", "text/json"]}))

    assert server.requests[0].headers["accept"] == ["application/json, text/json"]


def test_query_parameters_of_the_source_the_synchronization_and_the_endpoint_all_reach_the_source():
    with LoopbackServer(lambda seen: (200, {}, [])) as server:
        source = source_at(f"{server.url}/api?version=2", query={"a": "1", "b": "1", "gone": "x"})
        fetch(source, {"endpoint": "/animals?c=3", "query.b": "2", "query": {"gone": None}})

    assert server.requests[0].path == "/api/animals"
    assert server.requests[0].query == {"version": "2", "c": "3", "a": "1", "b": "2"}


def test_timeouts_come_from_settings_then_the_source_then_the_synchronization(settings):
    settings.SYNC_HTTP_CONNECT_TIMEOUT, settings.SYNC_HTTP_READ_TIMEOUT = 3, 30
    source = source_at("http://x", connectTimeout=2, timeout="7")

    assert call_settings(source=source_at("http://x"), source_config={}).timeout == (3.0, 30.0)
    assert call_settings(source=source, source_config={}).timeout == (2.0, 7.0)
    assert call_settings(source=source, source_config={"read_timeout": 9}).timeout == (2.0, 9.0)


@pytest.mark.parametrize(
    ("configuration", "problem"),
    [
        ({"timeout": "soon"}, "configuration.timeout: must be a number of seconds, got 'soon'"),
        ({"connectTimeout": 0}, "configuration.connectTimeout: must be more than 0 seconds"),
        ({"verify": 3}, "configuration.verify: must be true, false or a CA bundle (a path or PEM text)"),
        ({"headers": ["Accept"]}, "configuration.headers: must be an object"),
    ],
)
def test_bad_call_settings_are_reported_with_their_path(configuration, problem):
    problems = configuration_problems(configuration, path="configuration")

    assert len(problems) == 1 and problems[0].startswith(problem), problems


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def test_tls_is_verified_unless_turned_off_where_allowed_or_given_a_ca_bundle_as_a_path_or_pem_text(
    certificate, settings
):
    settings.SYNC_TLS_VERIFY_OFF_ALLOWED = True
    with LoopbackServer(lambda seen: (200, {}, [{"id": 1}]), tls=certificate) as server:
        with pytest.raises(SourceError, match="TLS failed"):
            fetch(source_at(server.url))
        unverified = fetch(source_at(server.url, verify="false"))
        with_bundle = fetch(source_at(server.url), {"verify": str(certificate[0])})
        # OpenConnector passes the certificate itself to Guzzle, which writes it to a file
        with_pem = fetch(source_at(server.url, verify=certificate[0].read_text()))

    assert unverified.body == with_bundle.body == with_pem.body == [{"id": 1}]
    assert len(server.requests) == 3  # the refused handshake is not retried, and never reaches the handler


def test_verify_false_is_refused_at_save_and_at_a_call_unless_the_operator_allows_it(settings):
    # given an operator who did not allow TLS verification off
    settings.SYNC_TLS_VERIFY_OFF_ALLOWED = False

    # then a configuration that turns it off is refused, naming the setting
    problems = configuration_problems({"verify": False}, path="configuration")
    assert len(problems) == 1 and problems[0].startswith("configuration.verify: false turns TLS verification off")
    assert "SYNC_TLS_VERIFY_OFF_ALLOWED" in problems[0]
    # and one saved before fails its calls instead of trusting any certificate
    with pytest.raises(SourceError, match="SYNC_TLS_VERIFY_OFF_ALLOWED"):
        call_settings(source=source_at("https://127.0.0.1:9", verify="false"), source_config={})


# ---------------------------------------------------------------------------------------------
# Endpoints


@pytest.mark.parametrize(
    ("location", "endpoint", "expected"),
    [
        ("http://x/api/", "/animals", "http://x/api/animals"),
        ("http://x/api", "animals?a=1", "http://x/api/animals?a=1"),
        ("http://x/api?key=v", "/animals?a=1", "http://x/api/animals?key=v&a=1"),
        ("http://x/api", "", "http://x/api"),
        ("http://x/api", "https://other/animals", "https://other/animals"),
    ],
)
def test_the_endpoint_is_appended_to_the_location(location, endpoint, expected):
    assert endpoint_url(source=source_at(location), source_config={"endpoint": endpoint}) == expected


def test_an_endpoint_template_is_rendered_with_the_run_variables():
    url = endpoint_url(
        source=source_at("http://x"), source_config={"endpoint": "/runs/{{ run.id }}?since={{ lastSync or 'ever' }}"},
        variables={"run": {"id": 7}, "lastSync": ""},
    )

    assert url == "http://x/runs/7?since=ever"


def test_an_endpoint_template_that_fails_is_a_clear_error():
    with pytest.raises(SourceError, match="sourceConfig.endpoint: .*template error"):
        endpoint_url(source=source_at("http://x"), source_config={"endpoint": "/{{ run.id.nope.deeper }}"},
                     variables={})


@pytest.mark.django_db
def test_an_endpoint_template_with_bad_syntax_is_refused_at_import_with_its_path():
    bundle = zoo_bundle(location="http://127.0.0.1:8900")
    bundle["synchronizations"][0]["sourceConfig"]["endpoint"] = "/animals?since={{ lastSync "

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_validate(bundle)

    assert any(p.startswith("synchronizations[0].sourceConfig.endpoint: template syntax error")
               for p in caught.value.problems), caught.value.problems


@pytest.mark.django_db
def test_bad_call_settings_of_a_source_are_refused_at_import_with_their_path():
    bundle = zoo_bundle(location="http://127.0.0.1:8900")
    bundle["sources"][0]["configuration"]["timeout"] = "a while"

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_validate(bundle)

    assert caught.value.problems == ["sources[0].configuration.timeout: must be a number of seconds, got 'a while'"]


@pytest.mark.django_db
def test_a_timeout_beyond_the_bound_is_refused_at_import_naming_the_bound(settings):
    settings.SYNC_HTTP_MAX_TIMEOUT = 600
    bundle = zoo_bundle(location="http://127.0.0.1:8900")
    bundle["sources"][0]["configuration"]["timeout"] = 1e9
    bundle["synchronizations"][0]["sourceConfig"]["connectTimeout"] = 601

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_validate(bundle)

    assert caught.value.problems == [
        "sources[0].configuration.timeout: must be at most 600 seconds (SYNC_HTTP_MAX_TIMEOUT), got 1000000000.0",
        "synchronizations[0].sourceConfig.connectTimeout: must be at most 600 seconds (SYNC_HTTP_MAX_TIMEOUT), "
        "got 601",
    ]


def test_a_timeout_saved_beyond_the_bound_fails_the_call_naming_the_bound(settings):
    # Given a source saved before the bound was lowered
    settings.SYNC_HTTP_MAX_TIMEOUT = 30
    source = source_at("http://x", readTimeout=3600)

    bound = r"configuration.timeout must be at most 30 seconds \(SYNC_HTTP_MAX_TIMEOUT\)"
    with pytest.raises(SourceError, match=bound):
        call_settings(source=source, source_config={})
    assert call_settings(source=source_at("http://x", timeout=30), source_config={}).timeout[1] == 30.0


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_each_run_renders_its_endpoint_template_so_a_run_can_ask_for_what_changed_since_the_last():
    with LoopbackServer(lambda request: (200, {}, [])) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/animals?since={{ lastSync }}&run={{ run.id }}", "resultsPosition": "_root"}
        sync.save()
        first = sync_runs.run_start(synchronization=sync)
        second = sync_runs.run_start(synchronization=sync)

    first.refresh_from_db()
    assert first.status == "succeeded", first.error_message
    assert server.requests[0].query == {"since": "", "run": str(first.pk)}
    since = first.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert server.requests[1].query == {"since": since, "run": str(second.pk)}


# ---------------------------------------------------------------------------------------------
# Bodies and their errors


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, {"Content-Type": "application/json"}, "", "answered 200 (application/json) with an empty body"),
        (200, {"Content-Type": "text/html; charset=utf-8"}, "<!DOCTYPE html><html>Sign in</html>",
         "answered 200 with text/html; charset=utf-8, not JSON or XML (an HTML page)"),
        (200, {"Content-Type": "application/json"}, "{'single': 'quotes'}",
         "answered 200 with application/json, not JSON (Expecting property name"),
        (200, {"Content-Type": "application/xml"}, "<animals><animal></animals>",
         "answered 200 with application/xml, not valid XML (mismatched tag"),
        (404, {"Content-Type": "application/problem+json"}, '{"title": "Not Found"}',
         "answered 404 (application/problem+json)"),
        (401, {"Content-Type": "text/plain"}, "no", "answered 401 (text/plain): check the source's credentials"),
        (503, {"Content-Type": "text/html"}, "<html>down</html>", "answered 503 (text/html)"),
        (200, {}, "<html><body>plain</body></html>", "answered 200 with no content type, not JSON or XML"),
    ],
    ids=["empty", "html", "invalid json", "invalid xml", "404", "401", "503", "untyped html"],
)
def test_a_body_that_is_not_a_page_is_an_error_naming_the_url_the_status_and_the_content_type(
    status, headers, body, expected
):
    with LoopbackServer(lambda request: (status, headers, body)) as server, pytest.raises(SourceError) as caught:
        fetch(source_at(server.url), {"endpoint": "/animals"})

    assert expected in str(caught.value)
    assert f"GET {server.url}/animals" in str(caught.value)


def test_an_xml_body_with_entities_is_refused_instead_of_expanded():
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<animals><animal><name>&lol2;</name></animal></animals>"
    )
    server = LoopbackServer(lambda request: (200, {"Content-Type": "text/xml"}, bomb))
    with server, pytest.raises(SourceError, match="not valid XML"):
        fetch(source_at(server.url))


@pytest.mark.parametrize(
    ("content_type", "body", "kind"),
    [
        ("text/plain", '{"items": [{"id": 1}]}', "json"),
        ("application/vnd.api+json", '{"data": [{"id": 1}]}', "json"),
        ("application/atom+xml", "<feed><entry><id>1</id></entry></feed>", "xml"),
        ("application/octet-stream", "<feed><entry><id>1</id></entry></feed>", "xml"),
    ],
)
def test_json_and_xml_are_recognised_by_content_type_or_by_their_first_character(content_type, body, kind):
    with LoopbackServer(lambda request: (200, {"Content-Type": content_type}, body)) as server:
        page = fetch(source_at(server.url))

    assert page.format == kind
    assert extract_objects(body=page.body, results_position=None, url=page.url, xml=kind == "xml") in (
        [{"id": 1}], [{"id": {"#text": "1"}}]
    )


def test_xml_reads_as_openconnector_reads_it():
    from defusedxml.ElementTree import fromstring

    root = fromstring(
        '<r:list xmlns:r="urn:r" count="2"><r:item id="1" r:kind="a"><name>One</name><tag>x</tag><tag>y</tag>'
        '</r:item><r:item id="2"><name lang="en">Two</name><empty/></r:item></r:list>'
    )

    assert xml_to_data(root) == {
        "@attributes": {"count": "2"},
        "item": [
            {"@attributes": {"id": "1", "kind": "a"}, "name": {"#text": "One"},
             "tag": [{"#text": "x"}, {"#text": "y"}]},
            {"@attributes": {"id": "2"}, "name": {"@attributes": {"lang": "en"}, "#text": "Two"}, "empty": {}},
        ],
    }


# ---------------------------------------------------------------------------------------------
# Finding the objects


@pytest.mark.parametrize(
    ("body", "position", "expected"),
    [
        ([{"id": 1}], "_root", [{"id": 1}]),
        ({"id": 1}, "_object", [{"id": 1}]),
        ({"data": {"items": [{"id": 1}]}}, "data.items", [{"id": 1}]),
        ({"items": [1], "result": [2], "results": [3], "data": [4]}, None, [1]),
        ({"result": [2], "results": [3], "data": [4]}, None, [2]),
        ({"results": [3], "data": [4]}, None, [3]),
        ({"data": [4], "meta": {"total": 1}}, None, [4]),
        ({"value": [5], "@odata.count": 1}, None, [5]),
        ([6], None, [6]),
        ({"results": []}, None, []),
    ],
)
def test_objects_are_found_by_results_position_or_detected(body, position, expected):
    assert extract_objects(body=body, results_position=position, url="http://x/a") == expected


@pytest.mark.parametrize(
    ("body", "position", "message"),
    [
        ({"message": "maintenance"}, None, "http://x/a: no list of objects found in the body"),
        ({"a": [1], "b": [2]}, None, "http://x/a: no list of objects found in the body"),
        ({"data": {"items": "none"}}, "data.items", "http://x/a: resultsPosition 'data.items' holds a str"),
        ({"data": {}}, "data.items", "http://x/a: resultsPosition 'data.items' holds nothing"),
        ({"id": 1}, "_root", "http://x/a: resultsPosition is _root but the body is a dict"),
        ([{"id": 1}], "_object", "http://x/a: resultsPosition is _object but the body is not an object"),
    ],
)
def test_a_body_without_a_list_is_an_error_naming_the_url_never_an_empty_page(body, position, message):
    with pytest.raises(SourceError) as caught:
        extract_objects(body=body, results_position=position, url="http://x/a")

    assert str(caught.value).startswith(message)


def test_an_xml_element_that_occurs_once_is_a_list_of_one():
    body = {"@attributes": {"total": "1"}, "animal": {"@attributes": {"id": "1"}}}

    assert extract_objects(body=body, results_position="animal", url="u", xml=True) == [body["animal"]]
    assert extract_objects(body=body, results_position=None, url="u", xml=True) == [body["animal"]]
    with pytest.raises(SourceError):
        extract_objects(body=body, results_position="animal", url="u", xml=False)


# ---------------------------------------------------------------------------------------------
# Secrets in URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://x/a?api_key=s3cret&page=2", "http://x/a?api_key=***&page=2"),
        ("http://x/a?Token=s3cret", "http://x/a?Token=***"),
        ("http://user:s3cret@x/a", "http://user:***@x/a"),
        ("http://x/a?custom=s3cret", "http://x/a?custom=***"),
        ("http://x/a?page=2", "http://x/a?page=2"),
    ],
)
def test_secrets_in_a_url_are_masked(url, expected):
    assert mask_url(url, secret_params={"custom"}) == expected


def test_a_page_request_stored_for_the_next_page_is_json():
    request = first_page_request(config=pagination_from_source_config({}), url="http://x/a?b=1", params={})

    assert PageRequest.from_json(json.loads(json.dumps(request.to_json()))) == request
