"""Enrichment per object (sourceConfig.extraDataConfigs): a detail request per object, against loopback servers."""
from __future__ import annotations

import copy
import re

import pytest
from django.core.management import call_command

from contracts.models import ContractLog, SynchronizationContract
from syncapp import runs as sync_runs
from syncapp.configuration import ConfigurationInvalid, bundle_import
from syncapp.models import Object, Synchronization
from tests.factories import import_api_synchronization
from tests.helpers import credentials_set
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

API_KEY = "detail-secret-key-0042"
ANIMALS = [
    {"id": 1, "name": "Fritz", "status": "active"},
    {"id": 2, "name": "Amara", "status": "active"},
    {"id": 3, "name": "Kito", "status": "retired"},
]
DETAILS = {
    "1": {"species": "Snow leopard", "diet": ["goat"], "keeperId": 7},
    "2": {"species": "Gorilla", "diet": ["fruit", "leaves"], "keeperId": 8},
    "3": {"species": "Okapi", "diet": ["leaves"], "keeperId": 7},
}


class Zoo:
    """A list endpoint and a detail endpoint per animal; what they answer can change between runs."""

    def __init__(self) -> None:
        self.animals = copy.deepcopy(ANIMALS)
        self.details = copy.deepcopy(DETAILS)
        self.detail_failures: dict[str, list[int]] = {}  # statuses a detail answers first, one per request
        self.server = LoopbackServer(self.handle)

    def handle(self, request: Request):
        if request.path == "/animals":
            return 200, {}, self.animals
        if request.path.startswith("/animals/"):
            key = request.path.rsplit("/", 1)[1]
            pending = self.detail_failures.get(key)
            if pending:
                return pending.pop(0), {}, {"error": "not now"}
            if key not in self.details:
                return 404, {}, {"error": f"no animal {key}"}
            return 200, {}, self.details[key]
        return 404, {}, {"error": "unknown path"}

    def detail_requests(self) -> list[str]:
        return [request.path for request in self.server.requests if request.path.startswith("/animals/")]


def zoo_sync(url: str, *, extra: list[dict], conditions: dict | None = None, **source_config) -> Synchronization:
    return import_api_synchronization(location=url, conditions=conditions, source_config={
        "endpoint": "/animals", "resultsPosition": "_root", "pagination": {"type": "none"}, "extraDataConfigs": extra,
        **source_config,
    })


def objects_by_id() -> dict[str, dict]:
    return {str(data["id"]): data for data in Object.objects.values_list("data", flat=True)}


def test_each_object_gets_its_detail_at_the_dot_path_and_the_requests_are_counted_on_the_run():
    zoo = Zoo()
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[
            {"staticEndpoint": "/animals/{{ originId }}", "keyToSetExtraData": "extra.detail"},
        ])

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert (run.created, run.enrichments, run.enrichments_failed) == (3, 3, 0)
    assert sorted(zoo.detail_requests()) == ["/animals/1", "/animals/2", "/animals/3"]
    stored = objects_by_id()
    assert stored["2"] == {**ANIMALS[1], "extra": {"detail": DETAILS["2"]}}


def test_a_changed_detail_updates_its_object_on_the_next_run_and_leaves_the_others_unchanged():
    zoo = Zoo()
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}",
                                                "keyToSetExtraData": "detail"}])
        sync_runs.run_start(synchronization=sync)
        zoo.details["2"]["diet"] = ["fruit"]  # the list entry of animal 2 stays exactly as it was

        second = sync_runs.run_start(synchronization=sync)

    second.refresh_from_db()
    assert second.status == "succeeded", second.error_message
    assert (second.updated, second.unchanged, second.enrichments) == (1, 2, 3)
    assert objects_by_id()["2"]["detail"]["diet"] == ["fruit"]


def test_a_missing_detail_fails_only_its_object_with_the_url_on_its_contract_and_no_secret():
    zoo = Zoo()
    del zoo.details["2"]
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}",
                                                "keyToSetExtraData": "detail"}])
        credentials_set(sync.source, {"type": "apiKey", "in": "query", "name": "key", "value": API_KEY})

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "partial"
    assert (run.created, run.failed, run.invalid, run.enrichments_failed) == (2, 1, 0, 1)
    contract = SynchronizationContract.objects.get(synchronization=sync, origin_id="2")
    log = ContractLog.objects.get(run=run, origin_id="2")
    for error in (contract.last_error, log.error):
        assert "/animals/2" in error and "404" in error and "extraDataConfigs[0]" in error
        assert API_KEY not in error
    assert contract.status == log.status == "failed"
    assert set(objects_by_id()) == {"1", "3"}


def test_a_detail_that_comes_back_is_written_on_the_next_run():
    zoo = Zoo()
    detail = zoo.details.pop("2")
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}",
                                                "keyToSetExtraData": "detail"}])
        sync_runs.run_start(synchronization=sync)
        zoo.details["2"] = detail

        second = sync_runs.run_start(synchronization=sync)

    second.refresh_from_db()
    assert (second.status, second.created, second.unchanged) == ("succeeded", 1, 2)
    assert objects_by_id()["2"]["detail"] == detail


def test_a_transient_detail_error_is_retried_like_a_page(settings):
    settings.SYNC_HTTP_BACKOFF_SECONDS = 0
    zoo = Zoo()
    zoo.detail_failures["1"] = [503, 502]
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}",
                                                "keyToSetExtraData": "detail"}])

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.status, run.created, run.failed) == ("succeeded", 3, 0)
    assert run.retries >= 2
    assert zoo.detail_requests().count("/animals/1") == 3


def test_objects_filtered_out_by_the_conditions_cost_no_detail_request():
    zoo = Zoo()
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}",
                                                "keyToSetExtraData": "detail"}],
                        conditions={"==": [{"var": "status"}, "active"]})

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.created, run.filtered, run.enrichments) == (2, 1, 2)
    assert "/animals/3" not in zoo.detail_requests()


def test_enriched_before_the_conditions_the_conditions_can_use_the_detail():
    zoo = Zoo()
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}",
                                                "keyToSetExtraData": "detail"}],
                        conditions={"==": [{"var": "detail.keeperId"}, 7]}, fetchExtraDataBeforeConditions=True)

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.status, run.created, run.filtered, run.enrichments) == ("succeeded", 2, 1, 3)
    assert set(objects_by_id()) == {"1", "3"}


def test_a_detail_from_another_source_at_a_url_in_the_object_is_merged_into_it():
    zoo = Zoo()
    staff = LoopbackServer(lambda request: (200, {}, {"keeper": {"id": request.path.rsplit("/", 1)[1],
                                                                 "name": "Maya"}}))
    zoo.animals = [{**animal, "links": {"keeper": f"/keepers/{7 + index}"}} for index, animal in enumerate(ANIMALS)]
    with zoo.server, staff:
        bundle_import({"sources": [{"reference": "staff-api", "name": "Staff", "type": "api", "location": staff.url}]})
        sync = zoo_sync(zoo.server.url, extra=[
            {"dynamicEndpointLocation": "links.keeper", "source": "staff-api", "mergeExtraData": True},
        ])

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert objects_by_id()["2"]["keeper"] == {"id": "8", "name": "Maya"}
    assert sorted(request.path for request in staff.requests) == ["/keepers/7", "/keepers/8", "/keepers/9"]
    assert zoo.detail_requests() == []


def test_each_result_of_a_detail_list_is_enriched_in_turn():
    zoo = Zoo()
    keepers = {"7": {"name": "Maya"}, "8": {"name": "Hiro"}}

    def handle(request: Request):
        if request.path.startswith("/animals/") and request.path.endswith("/keepers"):
            return 200, {}, {"items": [{"keeperId": 7}, {"keeperId": 8}]}
        if request.path.startswith("/keepers/"):
            return 200, {}, keepers[request.path.rsplit("/", 1)[1]]
        return zoo.handle(request)

    zoo.server = LoopbackServer(handle)
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{
            "staticEndpoint": "/animals/{{ originId }}/keepers", "keyToSetExtraData": "keepers",
            "resultsLocation": "items",
            "extraDataConfigPerResult": {"staticEndpoint": "/keepers/{{ subObjectId }}", "subObjectId": "keeperId"},
        }])

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert objects_by_id()["1"]["keepers"] == [{"name": "Maya"}, {"name": "Hiro"}]
    assert run.enrichments == 3 * 3


def test_a_test_run_shows_the_enriched_object():
    zoo = Zoo()
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}",
                                                "keyToSetExtraData": "detail"}])

        run = sync_runs.run_test(synchronization=sync)

    results = {entry["originId"]: entry.get("result") for entry in run.report}
    assert results["1"]["detail"] == DETAILS["1"]
    assert run.enrichments == 3 and Object.objects.count() == 0


@pytest.mark.parametrize(("extra", "problem"), [
    ([{"keyToSetExtraData": "detail"}], "extraDataConfigs[0]: needs staticEndpoint"),
    ([{"staticEndpoint": "/a/{{ originId"}], "extraDataConfigs[0].staticEndpoint"),
    ([{"staticEndpoint": "/a", "source": "nowhere"}], "extraDataConfigs[0].source: no source with reference 'nowhere'"),
    ([{"staticEndpoint": "/a", "extraDataConfigPerResult": {"subObjectId": 3}}],
     "extraDataConfigs[0].extraDataConfigPerResult: needs staticEndpoint"),
    ("/animals/1", "extraDataConfigs: must be a list"),
])
def test_a_broken_enrichment_is_refused_at_import_naming_where(extra, problem):
    with pytest.raises(ConfigurationInvalid) as refused:
        zoo_sync("http://127.0.0.1:9", extra=extra)

    assert any(problem in line and "synchronizations[0].sourceConfig" in line for line in refused.value.problems), (
        refused.value.problems
    )
    assert not Synchronization.objects.exists()


def test_a_broken_enrichment_is_refused_by_the_api_at_the_field(admin_client):
    zoo_sync("http://127.0.0.1:9", extra=[])
    sync = Synchronization.objects.get(reference="animals")

    answer = admin_client.patch(
        f"/api/synchronizations/{sync.pk}/",
        {"sourceConfig": {**sync.source_config, "extraDataConfigs": [{"mergeExtraData": True}]}},
        content_type="application/json",
    )

    assert answer.status_code == 400
    assert "extraDataConfigs[0]: needs staticEndpoint" in str(answer.json()["sourceConfig"])


def test_the_command_line_shows_the_detail_requests_of_a_run(capsys):
    zoo = Zoo()
    with zoo.server:
        zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}", "keyToSetExtraData": "d"}])

        call_command("sync", "run", "animals", "--wait")

    assert "detail requests 3 (0 failed)" in capsys.readouterr().out


def test_the_run_page_and_the_api_show_the_detail_requests(admin_client):
    from django.urls import reverse

    zoo = Zoo()
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}", "keyToSetExtraData": "d"}])
        run = sync_runs.run_start(synchronization=sync)

    page = admin_client.get(reverse("admin:contracts_synchronizationrun_change", args=[run.pk])).content.decode()
    listed = admin_client.get(f"/api/runs/{run.pk}/").json()
    assert re.search(r"Enrichments:</label>\s*<div class=\"readonly\">3</div>", page)
    assert (listed["enrichments"], listed["enrichmentsFailed"]) == (3, 0)


def test_a_detail_rate_limit_is_waited_out_and_counted_on_the_run():
    zoo = Zoo()
    zoo.detail_failures["2"] = [429]
    original = zoo.handle

    def handle(request: Request):
        status, headers, body = original(request)
        return (status, {"Retry-After": "1"} if status == 429 else headers, body)

    zoo.server = LoopbackServer(handle)
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}",
                                                "keyToSetExtraData": "detail"}])

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.status, run.created) == ("succeeded", 3)
    assert run.retries >= 1 and run.waited_seconds >= 1
    assert objects_by_id()["2"]["detail"] == DETAILS["2"]


def test_a_detail_url_outside_the_allowed_networks_fails_its_object_without_a_request():
    zoo = Zoo()
    zoo.animals = [{**ANIMALS[0], "links": {"self": "http://192.0.2.10/animals/1"}}, ANIMALS[1]]
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"dynamicEndpointLocation": "links.self", "keyToSetExtraData": "d"}])

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    contract = SynchronizationContract.objects.get(synchronization=sync, origin_id="1")
    assert (run.status, run.failed, contract.status) == ("partial", 2, "failed")
    assert "192.0.2.10" in contract.last_error
    # Animal 2 has no link at all: that, too, is its own failure, named.
    missing = SynchronizationContract.objects.get(synchronization=sync, origin_id="2").last_error
    assert "dynamicEndpointLocation 'links.self' holds no endpoint" in missing


def test_pages_fetched_ahead_are_enriched_once_each_object():
    animals = [{"id": number, "name": f"animal {number}", "status": "active"} for number in range(1, 24)]

    def handle(request: Request):
        if request.path == "/animals":
            page = int(request.query.get("page", 1))
            return 200, {}, {"results": animals[(page - 1) * 5: page * 5]}
        return 200, {}, {"detail": request.path.rsplit("/", 1)[1]}

    server = LoopbackServer(handle)
    with server:
        sync = zoo_sync(server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}"}],
                        resultsPosition="results", pagination={"type": "page"}, concurrency=4)

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.status, run.created, run.enrichments) == ("succeeded", 23, 23), run.error_message
    details = sorted(request.path for request in server.requests if request.path != "/animals")
    assert details == sorted(f"/animals/{number}" for number in range(1, 24))
    assert objects_by_id()["17"]["detail"] == "17"


def test_only_objects_whose_list_entry_changed_are_enriched_when_asked():
    zoo = Zoo()
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}",
                                                "keyToSetExtraData": "detail"}], extraDataOnlyWhenChanged=True)
        first = sync_runs.run_start(synchronization=sync)
        zoo.animals[0]["name"] = "Fritz the second"
        zoo.details["1"]["diet"] = ["hare"]
        zoo.details["2"]["diet"] = ["fruit"]  # a detail alone changed: not seen in this mode
        zoo.server.requests.clear()

        second = sync_runs.run_start(synchronization=sync)
        forced = sync_runs.run_start(synchronization=sync, force=True)

    for run in (first, second, forced):
        run.refresh_from_db()
    assert (first.created, first.enrichments) == (3, 3)
    assert (second.status, second.updated, second.unchanged, second.enrichments) == ("succeeded", 1, 2, 1)
    assert zoo.detail_requests()[:1] == ["/animals/1"]
    assert (forced.enrichments, forced.updated) == (3, 3)
    assert objects_by_id()["1"]["detail"]["diet"] == ["hare"] and objects_by_id()["2"]["detail"]["diet"] == ["fruit"]


def test_enriching_only_changed_objects_before_the_conditions_is_refused():
    with pytest.raises(ConfigurationInvalid) as refused:
        zoo_sync("http://127.0.0.1:9", extra=[{"staticEndpoint": "/a"}], extraDataOnlyWhenChanged=True,
                 fetchExtraDataBeforeConditions=True)

    assert any("cannot be combined with fetchExtraDataBeforeConditions" in line for line in refused.value.problems)


def test_the_objects_of_a_page_are_enriched_side_by_side():
    import threading

    # Given a detail endpoint that answers only once three requests wait at the same time
    arrived = threading.Barrier(3, timeout=30)
    zoo = Zoo()
    original = zoo.handle

    def handle(request: Request):
        if request.path.startswith("/animals/"):
            arrived.wait()
        return original(request)

    zoo.server = LoopbackServer(handle)
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}",
                                                "keyToSetExtraData": "detail"}], extraDataConcurrency=3)

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.status, run.created, run.enrichments) == ("succeeded", 3, 3), run.error_message


def test_details_fetched_again_by_a_retried_page_task_are_counted_once(monkeypatch):
    # Given a page whose first plan fails after its details were fetched (the database went away a moment)
    from django.db import OperationalError

    from syncapp.runs import pages

    real_record = pages.page_record
    failures = ["once"]

    def failing_once(**options):
        if failures:
            failures.pop()
            raise OperationalError("server closed the connection unexpectedly")
        return real_record(**options)

    monkeypatch.setattr(pages, "page_record", failing_once)
    zoo = Zoo()
    with zoo.server:
        sync = zoo_sync(zoo.server.url, extra=[{"staticEndpoint": "/animals/{{ originId }}", "keyToSetExtraData": "d"}])

        # When the run goes on with the page task tried again
        run = sync_runs.run_start(synchronization=sync)

    # Then the details were asked for twice, but the run counts the requests of the plan that counted
    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert len(zoo.detail_requests()) == 6
    assert run.enrichments == 3
