"""The `api` target: objects sent to a loopback API that stores what it receives, one call per object."""
from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import pytest

from contracts.models import ContractLog, SynchronizationContract
from syncapp import runs as sync_runs
from syncapp.configuration import ConfigurationInvalid, bundle_import
from syncapp.models import Synchronization
from syncapp.sample_source import SampleSource, generate_animals
from tests.helpers import credentials_set, run
from tests.loopback import LoopbackServer, Reply, Request

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

TOKEN = "tok-target-3f9a-never-show"


class TargetApi:
    """A loopback API storing items: POST /items, PUT|PATCH|DELETE /items/{id}; it records every call.

    `refuse(item)` returns a status to answer instead (422, say); every `limit_every`-th call answers
    429 with Retry-After: 1. It honours Idempotency-Key on POST, as many APIs do.
    """

    def __init__(self, *, refuse=None, limit_every: int = 0, oauth2: bool = False):
        self.oauth2 = oauth2  # POST /token hands out tokens; /items takes only a valid one
        self.tokens: list[str] = []
        self.revoked: set[str] = set()
        self.items: dict[str, dict] = {}
        self.calls: list[tuple[str, str, Any, dict[str, str]]] = []
        self.keys: dict[str, str] = {}
        self.numbers = itertools.count(1)
        self.counter = itertools.count(1)
        self.refuse = refuse or (lambda item: None)
        self.limit_every = limit_every
        self.lock = threading.Lock()
        self.server = LoopbackServer(self.serve)

    @property
    def url(self) -> str:
        return self.server.url

    def serve(self, request: Request) -> Reply:
        headers = {name: values[-1] for name, values in request.headers.items()}
        status, payload, reply_headers = self.handle(request.method, request.target, request.json(), headers)
        return status, {"Content-Type": "application/json", **reply_headers}, b"" if payload is None else payload

    def handle(self, method: str, path: str, body: Any, headers: dict[str, str]):
        """Answer a call: `body` is its JSON (None when it is none), `headers` are named in lower case."""
        with self.lock:
            self.calls.append((method, path, body, headers))
            if self.limit_every and next(self.counter) % self.limit_every == 0:
                return 429, {"error": "slow down"}, {"Retry-After": "1"}
            refused = self.refuse(body) if body is not None else None
            if refused:
                return refused, {"errors": {"name": "is not acceptable"}}, {}
            parts = path.split("?", 1)[0].strip("/").split("/")
            if self.oauth2 and parts == ["token"]:
                self.tokens.append(f"target-token-{len(self.tokens) + 1}")
                return 200, {"access_token": self.tokens[-1], "token_type": "Bearer", "expires_in": 3600}, {}
            if self.oauth2:
                token = headers.get("authorization", "").removeprefix("Bearer ")
                if token not in self.tokens or token in self.revoked:
                    return 401, {"error": "invalid_token"}, {"WWW-Authenticate": "Bearer"}
            if method == "GET" and parts == ["items"]:
                return 200, {"results": [{**item, "id": key} for key, item in self.items.items()]}, {}
            if method == "POST" and parts == ["items"]:
                key = headers.get("idempotency-key")
                if key and key in self.keys:
                    return 201, {**self.items[self.keys[key]], "id": self.keys[key]}, {}
                new_id = f"t{next(self.numbers)}"
                self.items[new_id] = body
                if key:
                    self.keys[key] = new_id
                return 201, {**body, "id": new_id}, {}
            if len(parts) == 2 and parts[0] == "items":
                if parts[1] not in self.items:
                    return 404, {"detail": "not found"}, {}
                if method == "DELETE":
                    del self.items[parts[1]]
                    return 204, None, {}
                self.items[parts[1]] = body if method == "PUT" else {**self.items[parts[1]], **body}
                return 200, {**self.items[parts[1]], "id": parts[1]}, {}
            return 400, {"detail": "no such route"}, {}

    def of(self, method: str) -> list[tuple[str, Any]]:
        return [(path, body) for m, path, body, _ in self.calls if m == method]

    def __enter__(self) -> TargetApi:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)


def outgoing(source_url: str, target: TargetApi, **target_config: Any) -> Synchronization:
    """Import a synchronization from the sample source to the target API."""
    bundle_import({
        "sources": [
            {"reference": "zoo-api", "location": source_url},
            {"reference": "crm", "location": target.url, "credentials": {"type": "bearer", "token": TOKEN}},
        ],
        "mappings": [{"reference": "to-crm", "mapping": {"name": "name", "kind": "species", "legs": "legs"}}],
        "synchronizations": [{
            "reference": "push", "sourceType": "api", "sourceId": "zoo-api",
            "sourceConfig": {"endpoint": "/animals", "query": {"per_page": 10}, "resultsPosition": "results",
                             "pagination": {"type": "next", "nextPath": "next"}},
            "sourceTargetMapping": "to-crm", "targetType": "api", "targetId": "crm",
            "targetConfig": {"endpoint": "/items", **target_config},
        }],
    })
    return Synchronization.objects.get(reference="push")


ANIMALS = generate_animals(count=25, seed=4)


def test_a_first_run_creates_every_object_once_and_keeps_the_ids_the_target_answered():
    with SampleSource(records=ANIMALS, page_size=10) as source, TargetApi() as target:
        sync = outgoing(source.url, target)

        first = run(sync)

    assert (first.status, first.created) == ("succeeded", 25), first.error_message
    assert len(target.of("POST")) == 25 and len(target.items) == 25
    contracts = SynchronizationContract.objects.filter(synchronization=sync)
    assert set(contracts.values_list("target_id", flat=True)) == set(target.items)
    by_origin = {str(animal["id"]): animal for animal in ANIMALS}
    for contract in contracts:
        assert target.items[contract.target_id]["name"] == by_origin[contract.origin_id]["name"]
    # The calls carried the target's credentials; the answers are kept in the contract logs
    assert all(headers.get("authorization") == f"Bearer {TOKEN}" for *_, headers in target.calls)
    assert ContractLog.objects.filter(run=first, response__id__isnull=False).count() == 25


def test_a_repeated_run_sends_nothing_and_a_test_run_sends_nothing():
    with SampleSource(records=ANIMALS, page_size=10) as source, TargetApi() as target:
        sync = outgoing(source.url, target)
        run(sync)
        calls = len(target.calls)

        again = run(sync)
        sync_runs.run_test(synchronization=sync)

    assert (again.status, again.unchanged, again.created, again.updated) == ("succeeded", 25, 0, 0)
    assert len(target.calls) == calls


def test_a_changed_object_is_sent_with_the_configured_method_to_its_url():
    with SampleSource(records=ANIMALS, page_size=10) as source, TargetApi() as target:
        sync = outgoing(source.url, target, updateMethod="PATCH")
        run(sync)
        changed = ANIMALS[3]
        source.update_record(changed["id"], name="Renamed")
        contract = SynchronizationContract.objects.get(synchronization=sync, origin_id=str(changed["id"]))

        second = run(sync)

    assert (second.status, second.updated, second.unchanged) == ("succeeded", 1, 24), second.error_message
    [(path, body)] = target.of("PATCH")
    assert path == f"/items/{contract.target_id}" and body["name"] == "Renamed"
    assert target.items[contract.target_id]["name"] == "Renamed"


def test_a_vanished_object_is_deleted_at_the_target():
    with SampleSource(records=ANIMALS, page_size=10) as source, TargetApi() as target:
        sync = outgoing(source.url, target)
        run(sync)
        gone = ANIMALS[0]
        contract = SynchronizationContract.objects.get(synchronization=sync, origin_id=str(gone["id"]))
        source.replace_records(ANIMALS[1:])

        second = run(sync)

    assert (second.status, second.deleted) == ("succeeded", 1), second.error_message
    assert target.of("DELETE") == [(f"/items/{contract.target_id}", None)]
    assert contract.target_id not in target.items and len(target.items) == 24


def test_a_422_fails_that_object_only_and_the_run_ends_partial():
    refused_name = ANIMALS[5]["name"]
    with SampleSource(records=ANIMALS, page_size=10) as source, \
            TargetApi(refuse=lambda item: 422 if item.get("name") == refused_name else None) as target:
        sync = outgoing(source.url, target)

        first = run(sync)

    assert (first.status, first.created, first.failed) == ("partial", 24, 1)
    failed = SynchronizationContract.objects.get(synchronization=sync, status="failed")
    assert "answered 422" in failed.last_error and "is not acceptable" in failed.last_error
    log = ContractLog.objects.get(run=first, contract=failed)
    assert "answered 422" in log.error
    assert TOKEN not in failed.last_error


def test_a_target_that_answers_429_every_few_calls_gets_every_object_exactly_once(settings):
    settings.SYNC_HTTP_MAX_ATTEMPTS = 3
    with SampleSource(records=ANIMALS[:12], page_size=10) as source, TargetApi(limit_every=4) as target:
        sync = outgoing(source.url, target)

        first = run(sync)

    assert (first.status, first.created) == ("succeeded", 12), first.error_message
    assert len(target.items) == 12
    assert sorted(item["name"] for item in target.items.values()) == sorted(a["name"] for a in ANIMALS[:12])
    assert len(target.of("POST")) > 12  # some were answered 429 and sent again


def test_a_404_on_update_recreates_the_object_when_asked():
    with SampleSource(records=ANIMALS[:5], page_size=10) as source, TargetApi() as target:
        sync = outgoing(source.url, target, recreateOnNotFound=True)
        run(sync)
        target.items.clear()  # someone emptied the target
        source.update_record(ANIMALS[0]["id"], name="Back")

        second = run(sync)

    assert second.status == "succeeded", second.error_message
    assert [item["name"] for item in target.items.values()] == ["Back"]
    contract = SynchronizationContract.objects.get(synchronization=sync, origin_id=str(ANIMALS[0]["id"]))
    assert contract.target_id in target.items


def test_the_id_can_come_from_the_sent_object():
    with SampleSource(records=ANIMALS[:3], page_size=10) as source, TargetApi() as target:
        sync = outgoing(source.url, target, idInRequestBody="name")

        first = run(sync)

    assert first.status == "succeeded", first.error_message
    assert set(SynchronizationContract.objects.values_list("target_id", flat=True)) == {
        animal["name"] for animal in ANIMALS[:3]
    }


@pytest.mark.parametrize(("config", "problem"), [
    ({"endpoint": "/items", "updateMethod": "FETCH"}, "targetConfig.updateMethod: must be one of PUT, PATCH, POST"),
    ({"endpoint": "/items", "colour": "red"}, "targetConfig.colour: unknown key"),
    ({"endpoint": "/items/{{ targetId | nonsense }}"}, "targetConfig.endpoint"),
    ({"endpoint": "/items", "recreateOnNotFound": "yes"}, "targetConfig.recreateOnNotFound: must be true or false"),
])
def test_a_bad_target_configuration_is_refused_when_saved(config, problem):
    with TargetApi() as target, pytest.raises(ConfigurationInvalid) as caught:
        outgoing("http://127.0.0.1:9", target, **config)

    assert any(p.startswith(f"synchronizations[0].{problem}") for p in caught.value.problems), caught.value.problems


def test_an_update_mapping_shapes_the_update_body():
    with SampleSource(records=ANIMALS[:3], page_size=10) as source, TargetApi() as target:
        bundle_import({"mappings": [{"reference": "only-name", "mapping": {"name": "name"}}]})
        sync = outgoing(source.url, target, updateMethod="PATCH", updateMapping="only-name")
        run(sync)
        source.update_record(ANIMALS[0]["id"], name="Renamed")

        second = run(sync)

    assert second.updated == 1, second.error_message
    assert [body for _, body in target.of("PATCH")] == [{"name": "Renamed"}]


def test_an_update_mapping_that_does_not_exist_is_refused_when_saved():
    with TargetApi() as target, pytest.raises(ConfigurationInvalid, match="updateMapping: no mapping with reference"):
        outgoing("http://127.0.0.1:9", target, updateMapping="nowhere")


def test_an_oauth2_token_is_fetched_once_for_the_writes_and_replaced_once_when_revoked():
    # Given a target taking OAuth2 client-credential tokens
    with SampleSource(records=ANIMALS, page_size=10) as source, TargetApi(oauth2=True) as target:
        sync = outgoing(source.url, target)
        crm = sync.target_source
        credentials_set(crm, {"type": "oauth2", "tokenUrl": f"{target.url}/token", "clientId": "zoo",
                           "clientSecret": "target-secret-never-show"})

        # When a first run creates every object
        first = run(sync)
        # and the target drops its token before the next run changes every object
        target.revoked.add(target.tokens[-1])
        source.replace_records([{**animal, "name": f"{animal['name']} II"} for animal in ANIMALS])
        second = run(sync)

    # Then the first run used one token for all its calls, the second one a new one after a single 401
    assert (first.status, first.created) == ("succeeded", 25), first.error_message
    assert (second.status, second.updated) == ("succeeded", 25), second.error_message
    assert target.tokens == ["target-token-1", "target-token-2"]
    refused = [call for call in target.calls if call[3].get("authorization") == "Bearer target-token-1"
               and call[0] == "PUT"]
    assert len(refused) == 1
    assert len(target.items) == 25 and all(item["name"].endswith(" II") for item in target.items.values())


class PaddedTarget(TargetApi):
    """A target that answers every create with the item and a megabyte more."""

    def handle(self, method: str, path: str, body: Any, headers: dict[str, str]):
        status, payload, reply_headers = super().handle(method, path, body, headers)
        if method == "POST" and status == 201:
            payload = {**payload, "padding": "p" * 2**20}
        return status, payload, reply_headers


def test_a_huge_answer_is_kept_cut_in_its_contract_log_and_the_id_it_holds_is_still_read(settings):
    settings.SYNC_LOG_VALUE_MAX_BYTES = 64 * 1024
    with SampleSource(records=ANIMALS[:5], page_size=10) as source, PaddedTarget() as target:
        first = run(outgoing(source.url, target))

    assert (first.status, first.created) == ("succeeded", 5), first.error_message
    responses = list(ContractLog.objects.filter(run=first, response__isnull=False).values_list("response", flat=True))
    assert len(responses) == 5
    for response in responses:
        assert len(json.dumps(response)) < 70 * 1024
        assert response["truncated"].endswith("bytes as JSON, cut to the first 65,536 (SYNC_LOG_VALUE_MAX_BYTES)")
    contracts = SynchronizationContract.objects.filter(synchronization__reference="push")
    assert set(contracts.values_list("target_id", flat=True)) == set(target.items)


class CaseApi:
    """An API that wraps what it wrote, as xxllnc's v1 API does: POST /case/create and POST /case/{ref}/update
    answer {"result": {"type": "case", "reference": ...}}."""

    def __init__(self) -> None:
        self.cases: dict[str, dict] = {}
        self.server = LoopbackServer(self.serve)

    def serve(self, request: Request) -> Reply:
        if request.method == "POST" and request.path == "/case/create":
            reference = f"case-{len(self.cases) + 1}"
            self.cases[reference] = request.json()
            return 201, {}, {"status_code": 201, "result": {"type": "case", "reference": reference}}
        parts = request.path.strip("/").split("/")
        if request.method == "POST" and len(parts) == 3 and parts[2] == "update" and parts[1] in self.cases:
            self.cases[parts[1]] = request.json()
            return 200, {}, {"status_code": 200, "result": {"type": "case", "reference": parts[1]}}
        return 404, {}, {"error": "no such case"}

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> CaseApi:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)


def test_an_api_target_sends_its_headers_and_query_on_every_call_and_reads_the_id_at_its_results_position():
    with SampleSource(records=ANIMALS[:3], page_size=10) as source, CaseApi() as cases:
        # given a target configuration shaped like OpenConnector's zgw-zaak-to-xxllnc-case, with Guzzle's options
        sync = outgoing(source.url, cases, endpoint="/case/create", updateEndpoint="/case/{{ targetId }}/update",
                        updateMethod="POST", idPosition="reference", resultsPosition="result",
                        headers={"API-Interface-ID": "42", "Accept": "application/json"}, query={"lang": "nl"})
        run(sync)
        source.update_record(ANIMALS[1]["id"], name="Renamed")

        # when a changed object is written again
        second = run(sync)

    assert second.status == "succeeded" and second.updated == 1, second.error_message
    # then the ids are those at resultsPosition, and the contract logs keep the object found there
    assert set(SynchronizationContract.objects.values_list("target_id", flat=True)) == set(cases.cases)
    assert ContractLog.objects.filter(response__type="case").count() == 4
    # and every call, creates and the update, carried the target's headers and query and its credentials
    calls = [request for request in cases.server.requests]
    assert [request.path for request in calls].count("/case/create") == 3 and len(calls) == 4
    for request in calls:
        assert request.header("API-Interface-ID") == "42" and request.header("Accept") == "application/json"
        assert request.query == {"lang": "nl"} and request.header("Authorization") == f"Bearer {TOKEN}"


def test_a_secret_header_in_a_target_configuration_is_refused_pointing_to_the_credentials():
    with CaseApi() as cases, pytest.raises(ConfigurationInvalid) as caught:
        outgoing("http://127.0.0.1:9", cases, headers={"API-KEY": "key-never-shown-7781"})

    [problem] = [p for p in caught.value.problems if "targetConfig.headers" in p]
    assert "`API-KEY`: a header that carries a secret goes in the source's `credentials`" in problem
    assert "key-never-shown-7781" not in str(caught.value.problems)
