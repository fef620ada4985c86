"""Hostile sources contained (the security probe's findings): bodies bounded in size and time, credentials
kept to the source's host, and sources only at addresses the policy allows, at save and at request time."""
from __future__ import annotations

import functools
import gzip
import ipaddress
import json
import socket
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from syncapp import egress
from syncapp import runs as sync_runs
from syncapp.configuration import ConfigurationInvalid, bundle_import
from syncapp.egress import url_refusal
from syncapp.models import Object, Source, Synchronization
from syncapp.sample_source import generate_animals
from tests.conftest import zoo_bundle
from tests.helpers import credentials_set, import_zoo
from tests.loopback import LoopbackServer, Raw, Reply, Request
from tests.syncapp.test_authentication import AUTH_CASES, SECRETS, Api, with_url
from tests.test_settings import last_line, load_settings

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

RECORDS = [{**animal, "id": number, "status": "active"}
           for number, animal in enumerate(generate_animals(count=10, seed=9), start=1)]
MB = 2**20


# ---------------------------------------------------------------------------------------------
# Hostile answers


@functools.cache
def gzip_bomb() -> bytes:
    """Return 1 GiB of JSON-looking zeros, gzipped to about a megabyte."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"0" * MB
    parts = [packer.compress(b'{"results": [')] + [packer.compress(block) for _ in range(1024)]
    parts.append(packer.flush())
    return b"".join(parts)


def bomb(request: Request) -> Reply:
    return 200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, gzip_bomb()


def large_declared(request: Request) -> Reply:
    body = iter([b'{"results": [' + b" " * MB])  # a megabyte of the 200 it announces
    return 200, {"Content-Type": "application/json", "Content-Length": str(200 * MB)}, body


def large_undeclared(request: Request) -> Reply:
    def body() -> Iterator[bytes]:
        yield b'{"results": ['
        for _ in range(200):
            yield b" " * MB

    return 200, {"Content-Type": "application/json", "Connection": "close"}, body()


def endless(request: Request) -> Reply:
    def body() -> Iterator[bytes]:
        yield b'{"results": ['
        deadline = time.monotonic() + 120  # bounded: the client is expected to hang up long before
        while time.monotonic() < deadline:
            yield b"[" * 4096 + b"]" * 4096

    return 200, {"Content-Type": "application/json", "Connection": "close"}, body()


def dripping(request: Request) -> Reply:
    def body() -> Iterator[bytes]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            yield b" "
            time.sleep(0.2)

    return 200, {"Content-Type": "application/json", "Content-Length": "1000000"}, body()


def dripping_headers(request: Request) -> Raw:
    def answer() -> Iterator[bytes]:
        yield b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        deadline = time.monotonic() + 30  # bounded: the client is expected to hang up long before
        while time.monotonic() < deadline:
            for byte in b"X-Padding: more\r\n":
                yield bytes([byte])
                time.sleep(0.05)
        # No body: on its own, a body read would see the total time passed and say so.
        yield b"Content-Length: 0\r\n\r\n"

    return Raw(answer())


def billion_laughs(request: Request) -> Reply:
    entities = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    body = (f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{entities}]>'
            "<animals><animal><id>1</id><name>&lol9;</name></animal></animals>").encode()
    return 200, {"Content-Type": "application/xml"}, body


def too_many_objects(request: Request) -> Reply:
    body = ('{"results": [' + ",".join(f'{{"id": {n}}}' for n in range(5001)) + "]}").encode()
    return 200, {"Content-Type": "application/json"}, body


HOSTILE = {
    "a 1 GiB gzip bomb": (bomb, "larger than 10,485,760 bytes once decoded (SYNC_HTTP_MAX_RESPONSE_BYTES)"),
    "a 200 MB body it announces": (large_declared, "has 209,715,200 bytes, more than 10,485,760"),
    "a 200 MB body it does not announce": (large_undeclared, "larger than 10,485,760 bytes (SYNC_HTTP_MAX"),
    "a body that never ends": (endless, "larger than 10,485,760 bytes"),
    "a body sent a byte at a time": (dripping, "did not arrive whole within 2 s (SYNC_HTTP_TOTAL_TIMEOUT)"),
    "headers sent a byte at a time": (dripping_headers, "did not arrive whole within 2 s (SYNC_HTTP_TOTAL_TIMEOUT)"),
    "an XML billion laughs": (billion_laughs, "not valid XML"),
    "a page with too many objects": (too_many_objects, "holds 5,001 objects, more than 5,000 (SYNC_MAX_PAGE_OBJECTS)"),
}


@pytest.fixture
def hostile_limits(settings):
    settings.SYNC_HTTP_MAX_RESPONSE_BYTES = 10 * MB
    settings.SYNC_HTTP_TOTAL_TIMEOUT = 2
    settings.SYNC_MAX_PAGE_OBJECTS = 5000
    settings.SYNC_HTTP_MAX_ATTEMPTS = 1


@pytest.mark.usefixtures("hostile_limits")
@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_answer_fails_the_run_clearly_in_bounded_time_and_memory_and_the_register_stays(case):
    # Given objects synced from a well-behaved source
    answer, message = HOSTILE[case]
    gzip_bomb()  # made once, before any clock runs
    hostile = {"on": False}

    def serve(request: Request) -> Reply:
        if hostile["on"]:
            return answer(request)
        return 200, {}, {"results": [] if int(request.query.get("page", 1)) > 1 else RECORDS}

    with LoopbackServer(serve, keep_alive=True) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"}}
        sync.save()
        first = sync_runs.run_start(synchronization=sync)
        first.refresh_from_db()
        assert first.status == "succeeded", first.error_message
        stored = {str(obj.pk): obj.data for obj in Object.objects.all()}

        # When the source turns hostile
        hostile["on"] = True
        started = time.monotonic()
        tracemalloc.start()
        try:
            run = sync_runs.run_start(synchronization=sync)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        took = time.monotonic() - started

    # Then the run fails with an error that says what was wrong, within bounds of time and memory ...
    run.refresh_from_db()
    assert run.status == "failed"
    assert message in run.error_message, run.error_message
    assert took < 60
    assert peak < 100 * MB, f"{peak / MB:.0f} MB"
    # ... and what the register held is untouched: nothing deleted, nothing changed
    assert run.deleted == 0
    assert {str(obj.pk): obj.data for obj in Object.objects.all()} == stored


def test_a_gzip_bomb_is_cut_after_the_limit_not_after_decoding_it_whole(hostile_limits):
    # The bomb decodes to 1 GiB: reading stops at the limit, so far less than that is ever decoded
    assert len(gzip_bomb()) < 2 * MB
    assert len(zlib.decompressobj(31).decompress(gzip_bomb()[:100_000], 50 * MB)) == 50 * MB  # it is a bomb
    with LoopbackServer(bomb, keep_alive=True) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        tracemalloc.start()
        try:
            run = sync_runs.run_start(synchronization=sync)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    run.refresh_from_db()
    assert run.status == "failed" and "once decoded" in run.error_message
    assert peak < 60 * MB


def test_an_ordinary_gzipped_answer_is_still_read(hostile_limits):
    body = gzip.compress(json.dumps({"results": RECORDS}).encode())

    def serve(request: Request) -> Reply:
        payload = body if request.query.get("page", "1") == "1" else gzip.compress(b'{"results": []}')
        return 200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, payload

    with LoopbackServer(serve, keep_alive=True) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"}}
        sync.conditions = {}
        sync.save()
        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.status, run.created) == ("succeeded", len(RECORDS)), run.error_message


# ---------------------------------------------------------------------------------------------
# Credentials go to the source's own host only


CREDENTIAL_CASES = [case for case in AUTH_CASES if case != "none"]


def secrets_seen(seen: list[Request]) -> list[str]:
    """Return every secret (or credential header) that reached a server."""
    found = []
    for request in seen:
        text = repr(request.headers) + repr(request.query) + repr(request.form)
        found += [secret for secret in SECRETS if secret in text]
        found += [name for name in ("authorization", "x-api-key") if name in request.headers]
    return found


def foreign_server(body: Any = None) -> LoopbackServer:
    """Another host (another origin on loopback) that serves an empty last page and records what it got."""
    return LoopbackServer(lambda seen: (200, {}, {"results": [], "next": None} if body is None else body))


def linked_sync(api: Api, credentials: dict, *, next_url: str) -> Synchronization:
    """A synchronization whose source's first page links to `next_url` for the next one."""
    def handle(seen: Request):
        if seen.path == "/token":
            return api.token(seen)
        return 200, {}, {"results": RECORDS, "next": next_url}

    api.server.handler = handle
    sync = import_zoo(zoo_bundle(location=api.server.url))
    credentials_set(sync.source, with_url(credentials, api.server.url))
    sync.source_config = {"endpoint": "/animals", "pagination": {"type": "next"}}
    sync.conditions = {}
    sync.save()
    return sync


@pytest.mark.parametrize("case", CREDENTIAL_CASES)
def test_a_next_link_to_another_host_never_receives_the_sources_credentials(case):
    accepts, right, _ = AUTH_CASES[case]
    api = Api(accepts=accepts)
    with api.server, foreign_server() as other:
        sync = linked_sync(api, right, next_url=f"{other.url}/steal?page=2")

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert len(other.requests) == 1  # followed, without the credentials
    assert secrets_seen(other.requests) == []


@pytest.mark.parametrize("case", CREDENTIAL_CASES)
def test_a_link_header_to_another_host_never_receives_the_sources_credentials(case):
    accepts, right, _ = AUTH_CASES[case]
    api = Api(accepts=accepts)
    with api.server, foreign_server(body=[]) as other:
        sync = linked_sync(api, right, next_url="")

        def handle(seen: Request):
            if seen.path == "/token":
                return api.token(seen)
            return 200, {"Link": f'<{other.url}/steal?page=2>; rel="next"'}, RECORDS

        api.server.handler = handle
        sync.source_config = {"endpoint": "/animals", "resultsPosition": "_root", "pagination": {"type": "link_header"}}
        sync.save()

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert len(other.requests) == 1
    assert secrets_seen(other.requests) == []


@pytest.mark.parametrize("case", CREDENTIAL_CASES)
def test_a_redirect_to_another_host_never_receives_the_sources_credentials(case):
    accepts, right, _ = AUTH_CASES[case]
    api = Api(accepts=accepts)
    with api.server, LoopbackServer(lambda seen: (200, {}, {"results": RECORDS})) as other:
        def handle(seen: Request):
            if seen.path == "/token":
                return api.token(seen)
            return 302, {"Location": f"{other.url}/moved?page=1"}, ""

        sync = linked_sync(api, right, next_url="")
        api.server.handler = handle
        sync.source_config = {"endpoint": "/animals", "pagination": {"type": "none"}}
        sync.save()

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert len(other.requests) == 1
    assert secrets_seen(other.requests) == []


def test_a_redirect_on_the_same_host_keeps_the_credentials():
    accepts, right, _ = AUTH_CASES["api key in a header"]
    api = Api(accepts=accepts)
    with api.server:
        def handle(seen: Request):
            if seen.path == "/animals":
                return 302, {"Location": "/moved"}, ""
            if not accepts(seen, api):
                return 401, {}, {"detail": "no key"}
            return 200, {}, {"results": RECORDS}

        sync = linked_sync(api, right, next_url="")
        api.server.handler = handle
        sync.source_config = {"endpoint": "/animals", "pagination": {"type": "none"}}
        sync.save()

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.status, run.created) == ("succeeded", len(RECORDS)), run.error_message


def test_with_cross_host_requests_refused_a_next_link_to_another_host_fails_the_run_unsent(settings):
    settings.SYNC_CROSS_HOST_REQUESTS = "refuse"
    accepts, right, _ = AUTH_CASES["bearer"]
    api = Api(accepts=accepts)
    with api.server, foreign_server() as other:
        sync = linked_sync(api, right, next_url=f"{other.url}/steal?page=2")

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert "is on another host than source" in run.error_message and "SYNC_CROSS_HOST_REQUESTS" in run.error_message
    assert other.requests == [] and run.deleted == 0


# ---------------------------------------------------------------------------------------------
# Sources only at allowed addresses


DENIED_LOCATIONS = [
    "http://127.0.0.1:5432", "http://169.254.169.254/latest/meta-data", "http://[::1]:6379", "http://0.0.0.0:80",
    "http://[::ffff:127.0.0.1]/", "http://localhost:8000",
]


@pytest.mark.usefixtures("default_egress_policy")
@pytest.mark.parametrize("location", DENIED_LOCATIONS)
def test_a_source_at_a_denied_address_is_refused_at_import(location):
    bundle = zoo_bundle(location=location)

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_import(bundle)

    [problem] = [p for p in caught.value.problems if p.startswith("sources[0].location")]
    assert "sources may not call" in problem and "SYNC_ALLOWED_NETWORKS" in problem


@pytest.mark.usefixtures("default_egress_policy")
@pytest.mark.parametrize("location", ["http://127.0.0.1:5432", "http://169.254.169.254/", "file:///etc/passwd",
                                      "gopher://example.org/"])
def test_a_source_at_a_denied_address_or_scheme_is_refused_by_the_api_and_the_admin(location, admin_user, admin_client):
    client = APIClient()
    client.force_authenticate(admin_user)
    answer = client.post("/api/sources/", {"reference": "s", "name": "s", "type": "api", "location": location},
                         format="json")
    page = admin_client.post(reverse("admin:syncapp_source_add"), {
        "reference": "s", "name": "s", "type": "api", "location": location, "configuration": "{}",
        "is_enabled": "on",
    })

    assert answer.status_code == 400 and "location" in answer.json(), answer.content
    assert page.status_code == 200 and "errorlist" in page.content.decode()
    assert not Source.objects.filter(reference="s").exists()


@pytest.mark.usefixtures("default_egress_policy")
def test_private_networks_are_denied_when_asked(settings):
    settings.SYNC_DENY_PRIVATE_NETWORKS = True
    assert "a private network" in url_refusal("http://10.1.2.3/")
    assert "a private network" in url_refusal("http://192.168.1.1:8080/")


# IPv6 forms that carry an IPv4 address, each carrying a denied one: 169.254.169.254 (the metadata
# service) or 127.0.0.1.
CARRIED_DENIED = {
    "NAT64": "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
    "NAT64 in IPv4 notation": "http://[64:ff9b::169.254.169.254]/",
    "NAT64 local-use /96": "http://[64:ff9b:1::a9fe:a9fe]/",
    "NAT64 local-use /48": "http://[64:ff9b:1:a9fe:a9:fe00::]/",
    "6to4": "http://[2002:a9fe:a9fe::1]/",
    "Teredo (client 127.0.0.1, obfuscated)": "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
    "Teredo (server 169.254.169.254)": "http://[2001:0:a9fe:a9fe::1]/",
}


@pytest.mark.usefixtures("default_egress_policy")
@pytest.mark.parametrize("location", CARRIED_DENIED.values(), ids=CARRIED_DENIED.keys())
def test_an_ipv6_address_carrying_a_denied_ipv4_address_is_refused_as_the_address_inside(location):
    refusal = url_refusal(location)

    assert refusal is not None and "carries" in refusal and "sources may not call" in refusal
    assert egress.location_problems(location) != []


@pytest.mark.usefixtures("default_egress_policy")
def test_an_ipv6_address_carrying_an_allowed_ipv4_address_is_allowed():
    # 93.184.216.34 is a public address: its NAT64 and 6to4 forms are as callable as it is.
    assert url_refusal("http://[64:ff9b::5db8:d822]/", resolve=False) is None
    assert url_refusal("http://[2002:5db8:d822::1]/", resolve=False) is None


def test_an_allow_list_lets_only_its_networks_be_called(settings):
    settings.SYNC_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.1/32"),)
    assert url_refusal("http://127.0.0.1:8000/") is None
    assert "is not in SYNC_ALLOWED_NETWORKS" in url_refusal("http://127.0.0.2:8000/")
    assert "is not in SYNC_ALLOWED_NETWORKS" in url_refusal("http://192.0.2.10/")


def test_a_source_whose_address_became_denied_is_refused_at_request_time(settings):
    # Given a source saved while its address was allowed (or whose name now resolves elsewhere)
    with LoopbackServer(lambda seen: (200, {}, {"results": RECORDS})) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        # When the policy no longer allows it
        settings.SYNC_ALLOWED_NETWORKS = (ipaddress.ip_network("192.0.2.0/24"),)

        run = sync_runs.run_start(synchronization=sync)

    # Then no request is sent, and the run fails saying why
    run.refresh_from_db()
    assert run.status == "failed"
    assert "refused: 127.0.0.1 is not in SYNC_ALLOWED_NETWORKS" in run.error_message
    assert server.requests == []


def test_a_redirect_to_a_denied_address_is_not_followed(settings):
    settings.SYNC_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.1/32"),)
    with LoopbackServer(lambda seen: (302, {"Location": "http://127.0.0.2:9/secret"}, "")) as server:
        sync = import_zoo(zoo_bundle(location=server.url))

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert "refused: 127.0.0.2 is not in SYNC_ALLOWED_NETWORKS" in run.error_message


def test_a_name_is_judged_by_every_address_it_resolves_to(settings, monkeypatch):
    settings.SYNC_ALLOWED_NETWORKS = ()
    # A name that resolves to a public and a metadata address (DNS answers are not ours to trust)
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 80))
               for address in ("192.0.2.1", "169.254.169.254")]
    monkeypatch.setattr(egress.socket, "getaddrinfo", lambda *args, **kwargs: answers)

    assert "169.254.169.254 is in a loopback, link-local or reserved network" in egress.url_refusal("http://sneaky.test/")


def test_a_name_that_resolves_elsewhere_once_checked_is_refused_at_the_connection(settings, monkeypatch):
    # Given a name whose first answer is a public address and every later one loopback (DNS rebinding)
    settings.SYNC_ALLOWED_NETWORKS = ()
    real = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = "192.0.2.1" if len(asked) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with LoopbackServer(lambda seen: (200, {}, {"results": RECORDS})) as server:
        port = server.url.rsplit(":", 1)[1]
        sync = import_zoo(zoo_bundle(location=f"http://rebind.test:{port}"))

        # When it runs: the URL is checked against the first answer, the connection made to a later one
        run = sync_runs.run_start(synchronization=sync)

    # Then the connection to loopback is closed unused, and the run fails saying why
    run.refresh_from_db()
    assert len(asked) >= 2
    assert run.status == "failed"
    assert "rebind.test connected to 127.0.0.1 is in a loopback, link-local or reserved network" in run.error_message
    assert server.requests == []


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("SYNC_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-network", "SYNC_ALLOWED_NETWORKS: 'not-a-network' is not a network"),
    ("SYNC_CROSS_HOST_REQUESTS", "sometimes", "SYNC_CROSS_HOST_REQUESTS must be one of strip, refuse"),
])
def test_a_bad_egress_setting_stops_the_settings_naming_it(tmp_path, variable, value, message):
    result = load_settings(tmp_path, **{variable: value})

    assert result.returncode != 0
    assert message in last_line(result.stderr)
