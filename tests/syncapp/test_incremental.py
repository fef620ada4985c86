"""Incremental reads (sourceConfig.incremental): a stored cursor, runs that ask only for what changed."""
from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from contracts.models import RunPage, SynchronizationRun
from syncapp import runs as sync_runs
from syncapp import schedules
from syncapp.configuration import ConfigurationInvalid, bundle_import
from syncapp.incremental import (
    CursorError,
    IncrementalConfig,
    cursor_greatest,
    cursor_order,
    incremental_config,
    incremental_problems,
    page_cursor,
)
from syncapp.models import Object, Synchronization
from tests.factories import import_api_synchronization
from tests.helpers import runner_take
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

RECORDS = [
    {"id": 1, "name": "Fritz", "updated_at": "2025-01-01T10:00:00Z"},
    {"id": 2, "name": "Amara", "updated_at": "2025-01-03T10:00:00Z"},
    {"id": 3, "name": "Kito", "updated_at": "2025-01-02T10:00:00Z"},
    {"id": 4, "name": "Zuri", "updated_at": "2025-01-05T10:00:00Z"},
    {"id": 5, "name": "Bao", "updated_at": "2025-01-04T10:00:00Z"},
]
PAGE_SIZE = 2


class Api:
    """A paged list that filters on `updated_since` (at or after), as sources usually do."""

    def __init__(self) -> None:
        self.records = copy.deepcopy(RECORDS)
        self.fail_page: int | None = None
        self.server = LoopbackServer(self.handle)

    def handle(self, request: Request):
        page = int(request.query.get("page", 1))
        if page == self.fail_page:
            return 400, {}, {"error": "bad page"}
        since = request.query.get("updated_since")
        chosen = [record for record in self.records if since is None or record["updated_at"] >= since]
        return 200, {}, {"results": chosen[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]}

    def queries(self) -> list[dict[str, str]]:
        return [request.query for request in self.server.requests]

    def forget(self) -> None:
        self.server.requests.clear()

    def touch(self, record_id: int, when: str) -> None:
        for record in self.records:
            if record["id"] == record_id:
                record.update(name=record["name"] + " the second", updated_at=when)


def sync_for(url: str, **incremental) -> Synchronization:
    return import_api_synchronization(location=url, source_config={
        "endpoint": "/animals", "resultsPosition": "results",
        "pagination": {"type": "page", "pageSizeParam": "per_page", "pageSize": PAGE_SIZE},
        "incremental": {"cursorPath": "updated_at", "param": "updated_since", **incremental},
    })


def names() -> dict[int, str]:
    return {data["id"]: data["name"] for data in Object.objects.values_list("data", flat=True)}


def ended(run: SynchronizationRun) -> SynchronizationRun:
    run.refresh_from_db()
    return run


def test_without_a_cursor_the_first_run_is_full_and_stores_the_greatest_cursor_it_saw():
    api = Api()
    with api.server:
        sync = sync_for(api.server.url)

        run = ended(sync_runs.run_start(synchronization=sync))

    sync.refresh_from_db()
    assert (run.status, run.mode, run.created, run.cursor_value) == ("succeeded", "full", 5, "2025-01-05T10:00:00Z")
    assert (sync.incremental_cursor, sync.incremental_cursor_path) == ("2025-01-05T10:00:00Z", "updated_at")
    assert all("updated_since" not in query for query in api.queries())


def test_the_next_run_asks_only_for_what_changed_after_the_stored_cursor_and_deletes_nothing():
    api = Api()
    with api.server:
        sync = sync_for(api.server.url)
        sync_runs.run_start(synchronization=sync)
        api.forget()
        api.touch(3, "2025-01-07T09:00:00Z")
        api.touch(1, "2025-01-06T09:00:00Z")
        api.records = [record for record in api.records if record["id"] != 5]  # gone from the source

        run = ended(sync_runs.run_start(synchronization=sync))

    assert (run.status, run.mode, run.cursor_sent) == ("succeeded", "incremental", "2025-01-05T10:00:00Z")
    # Every page of the run, the first and those after it, carries the cursor.
    assert [query.get("page") for query in api.queries()] == ["1", "2", "3"]  # the third is empty: the end
    assert all(query["updated_since"] == "2025-01-05T10:00:00Z" for query in api.queries())
    # Records 4 (at the cursor), 3 and 1 came; 5 vanished but an incremental run does not delete.
    assert (run.found, run.updated, run.unchanged, run.deleted) == (3, 2, 1, 0)
    assert names() == {1: "Fritz the second", 2: "Amara", 3: "Kito the second", 4: "Zuri", 5: "Bao"}
    sync.refresh_from_db()
    assert sync.incremental_cursor == "2025-01-07T09:00:00Z"


def test_a_full_run_reads_everything_deletes_what_vanished_and_refreshes_the_cursor():
    api = Api()
    with api.server:
        sync = sync_for(api.server.url)
        sync_runs.run_start(synchronization=sync)
        api.records = [record for record in api.records if record["id"] not in (4, 5)]
        sync_runs.run_start(synchronization=sync)  # incremental: sees nothing new, deletes nothing
        assert len(names()) == 5
        api.forget()

        run = ended(sync_runs.run_start(synchronization=sync, full=True))

    assert (run.status, run.mode, run.deleted, run.cursor_sent) == ("succeeded", "full", 2, None)
    assert all("updated_since" not in query for query in api.queries())
    assert set(names()) == {1, 2, 3}
    sync.refresh_from_db()
    assert sync.incremental_cursor == "2025-01-03T10:00:00Z"  # lower than before: a full run replaces it


def test_a_failed_run_does_not_advance_the_cursor():
    api = Api()
    with api.server:
        sync = sync_for(api.server.url)
        sync_runs.run_start(synchronization=sync)
        api.touch(1, "2025-02-01T00:00:00Z")
        api.touch(2, "2025-02-02T00:00:00Z")
        api.touch(3, "2025-02-03T00:00:00Z")
        api.fail_page = 2

        failed = ended(sync_runs.run_start(synchronization=sync))

    sync.refresh_from_db()
    assert failed.status == "failed"
    # Page 1 was planned, with a greater cursor: it is not stored, the next run asks again from the old one.
    assert RunPage.objects.get(run=failed, number=1).cursor_value == "2025-02-02T00:00:00Z"
    assert sync.incremental_cursor == "2025-01-05T10:00:00Z"


def test_an_initial_value_makes_the_first_run_incremental_from_it():
    api = Api()
    with api.server:
        sync = sync_for(api.server.url, initialValue="2025-01-03T00:00:00Z")

        run = ended(sync_runs.run_start(synchronization=sync))

    assert (run.mode, run.cursor_sent, run.created) == ("incremental", "2025-01-03T00:00:00Z", 3)
    assert set(names()) == {2, 4, 5}


def test_the_cursor_is_sent_in_the_configured_format():
    api = Api()
    with api.server:
        sync = sync_for(api.server.url, initialValue="2025-01-03T01:00:00+01:00", format="epoch")

        sync_runs.run_start(synchronization=sync)

    assert api.queries()[0]["updated_since"] == str(int(datetime(2025, 1, 3, tzinfo=UTC).timestamp()))


def test_a_record_without_a_cursor_is_synced_and_counted_but_does_not_move_the_cursor():
    api = Api()
    api.records.append({"id": 6, "name": "Nala"})
    with api.server:
        sync = sync_for(api.server.url)

        run = ended(sync_runs.run_start(synchronization=sync))

    assert (run.status, run.created, run.cursor_missing, run.cursor_value) == (
        "succeeded", 6, 1, "2025-01-05T10:00:00Z"
    )


def test_numbers_compare_as_numbers_and_dates_as_moments():
    assert cursor_greatest([9, 10, 2.5], kind="auto") == 10
    assert cursor_greatest(["9", "10"], kind="number") == "10"
    # 10:00 at +02:00 is 08:00 UTC: earlier than 09:00Z, though it sorts after it as text.
    assert cursor_greatest(["2024-01-01T10:00:00+02:00", "2024-01-01T09:00:00Z"], kind="auto") == (
        "2024-01-01T09:00:00Z"
    )
    assert cursor_greatest(["b", "a", "c"], kind="string") == "c"
    with pytest.raises(CursorError):
        cursor_greatest([3, "2024-01-01T00:00:00Z"], kind="auto")
    with pytest.raises(CursorError):
        cursor_order("yesterday", kind="datetime")


def test_the_cursor_of_another_cursor_path_is_not_used():
    api = Api()
    with api.server:
        sync = sync_for(api.server.url)
        sync_runs.run_start(synchronization=sync)
        sync.source_config["incremental"]["cursorPath"] = "modified"
        sync.save()

        run = ended(sync_runs.run_start(synchronization=sync))

    assert run.mode == "full"


def test_a_full_run_can_be_asked_for_on_the_command_line_and_the_api(admin_client, capsys):
    api = Api()
    with api.server:
        sync = sync_for(api.server.url)
        sync_runs.run_start(synchronization=sync)

        call_command("sync", "run", "animals", "--full", "--wait")
        printed = capsys.readouterr().out
        answer = admin_client.post(f"/api/synchronizations/{sync.pk}/run/", {"full": True},
                                   content_type="application/json")
        runner_take()  # what `sync serve` does with the run the API queued
        incremental = admin_client.post(f"/api/synchronizations/{sync.pk}/run/", {}, content_type="application/json")

    assert "(full)" in printed
    assert answer.status_code == 202 and answer.json()["mode"] == "full"
    assert incremental.json()["mode"] == "incremental"
    assert incremental.json()["cursorSent"] == "2025-01-05T10:00:00Z"


def test_the_full_run_schedule_starts_full_runs_apart_from_the_schedule():
    api = Api()
    due = datetime(2026, 11, 25, 3, 0, 5, tzinfo=UTC)
    with api.server:
        sync = sync_for(api.server.url, fullSchedule="0 3 * * *")
        sync.schedule = "*/15 * * * *"
        sync.save()
        sync_runs.run_start(synchronization=sync)

        at_three = schedules.schedules_start_due(now=due)
        quarter_past = schedules.schedules_start_due(now=due + timedelta(minutes=15))

    assert [(run.trigger, run.mode) for run in at_three] == [("schedule", "full")]
    assert [(run.trigger, run.mode) for run in quarter_past] == [("schedule", "incremental")]
    sync.refresh_from_db()
    assert sync.full_schedule_checked_at == due.replace(second=0)


@pytest.mark.parametrize(("incremental", "problem"), [
    ({"param": "since"}, "incremental.cursorPath: required"),
    ({"cursorPath": "updated_at", "type": "date"}, "incremental.type: must be one of"),
    ({"cursorPath": "updated_at", "type": "datetime", "initialValue": "soon"}, "incremental.initialValue"),
    ({"cursorPath": "updated_at", "fullSchedule": "every night"}, "incremental.fullSchedule"),
    ({"cursorPath": "updated_at", "cursorParam": "x"}, "incremental: unknown keys cursorParam"),
    ({"cursorPath": "version", "type": "number", "format": "epoch"}, "incremental.format: 'epoch' sends a date"),
    ({"cursorPath": "updated_at", "initialValue": "first", "format": "iso"}, "incremental.initialValue"),
])
def test_a_broken_incremental_setting_is_refused_at_import_naming_it(incremental, problem):
    with pytest.raises(ConfigurationInvalid) as refused:
        bundle_import({
            "sources": [{"reference": "zoo-api", "name": "Zoo", "type": "api", "location": "http://127.0.0.1:9"}],
            "registers": [{"reference": "zoo", "name": "Zoo", "schemas": [{"reference": "animal", "name": "A"}]}],
            "synchronizations": [{
                "reference": "animals", "name": "Animals", "sourceId": "zoo-api", "targetId": "zoo/animal",
                "sourceConfig": {"endpoint": "/animals", "incremental": incremental},
            }],
        })

    assert any(problem in line for line in refused.value.problems), refused.value.problems
    assert incremental_config({"incremental": incremental}) is None


@pytest.mark.parametrize(("source_type", "source_id", "config", "problem"), [
    ("api", "zoo-api", {"endpoint": "/animals", "incremental": {"cursorPath": "updated_at"}},
     "sourceConfig.incremental.param: name the query parameter"),
    ("register/schema", "zoo/animal", {"incremental": {"cursorPath": "updated_at"}},
     "sourceConfig.incremental: the register is read whole"),
])
def test_an_incremental_setting_a_source_would_never_send_is_refused(source_type, source_id, config, problem):
    # An incremental run whose cursor changes nothing read would only stop deletions, silently
    with pytest.raises(ConfigurationInvalid) as refused:
        bundle_import({
            "sources": [{"reference": "zoo-api", "name": "Zoo", "type": "api", "location": "http://127.0.0.1:9"}],
            "registers": [{"reference": "zoo", "name": "Zoo", "schemas": [{"reference": "animal", "name": "A"}]}],
            "synchronizations": [{
                "reference": "animals", "name": "Animals", "sourceType": source_type, "sourceId": source_id,
                "targetId": "zoo/animal", "sourceConfig": config,
            }],
        })

    assert any(problem in line for line in refused.value.problems), refused.value.problems


def test_cursors_that_cannot_be_compared_move_nothing():
    dated = IncrementalConfig(cursor_path="t", param="since", initial_value=None, type="auto", format="raw",
                              full_schedule="")
    # An empty text among dates is a record without a cursor, not a cursor of kind text
    assert page_cursor([{"t": ""}, {"t": "2025-01-02T00:00:00Z"}, {"t": "2025-01-01T00:00:00Z"}], config=dated) == (
        "2025-01-02T00:00:00Z", 1
    )
    # Milliseconds read as seconds are no date: refused when saved, not a crash
    problems = incremental_problems({"incremental": {"cursorPath": "t", "type": "datetime",
                                                     "initialValue": 1_700_000_000_000}})
    assert problems and "milliseconds" in problems[0]


def test_the_admin_starts_a_full_run_and_the_run_page_shows_its_mode_and_cursor(admin_client):
    from django.urls import reverse

    from tests.helpers import wait_for_run

    api = Api()
    with api.server:
        sync = sync_for(api.server.url)
        sync_runs.run_start(synchronization=sync)
        page = admin_client.get(reverse("admin:syncapp_synchronization_change", args=[sync.pk])).content.decode()

        answer = admin_client.post(reverse("admin:syncapp_synchronization_run_full", args=[sync.pk]))
        runner_take()
        run = wait_for_run(SynchronizationRun.objects.order_by("-pk").first(), timeout=60)

    assert "Full run</button>" in page and "2025-01-05T10:00:00Z" in page
    assert answer.status_code == 302 and run.mode == "full"
    shown = admin_client.get(reverse("admin:contracts_synchronizationrun_change", args=[run.pk])).content.decode()
    assert "Mode" in shown and "full" in shown and "Cursor value" in shown


def test_the_example_bundle_reads_the_sample_source_incrementally_with_details(sample_source, animals):
    import json
    from pathlib import Path

    bundle = json.loads((Path(__file__).resolve().parents[2] / "examples" / "zoo-incremental.json").read_text())
    bundle["sources"][0]["location"] = sample_source.url
    bundle_import(bundle)
    sync = Synchronization.objects.get(reference="animals-incremental")
    first = ended(sync_runs.run_start(synchronization=sync))
    newest = max(animal["updatedAt"] for animal in animals)
    changed = next(animal for animal in animals if animal["status"] == "active" and animal["updatedAt"] != newest)
    sample_source.update_record(changed["id"], name="Renamed", updatedAt="2030-01-01T00:00:00Z")
    sample_source.reset_requests()

    second = ended(sync_runs.run_start(synchronization=sync))

    active = sum(1 for animal in animals if animal["status"] == "active")
    assert (first.status, first.created, first.enrichments) == ("succeeded", active, active), first.error_message
    assert (second.status, second.mode, second.updated, second.deleted) == ("succeeded", "incremental", 1, 0)
    listed = [path for path in sample_source.requests if path.startswith("/animals?")]
    assert listed and all("updated_since=" in path for path in listed)
    keepers = {data["name"]: data["keeper"] for data in Object.objects.values_list("data", flat=True)}
    assert keepers["Renamed"] == changed["keeper"]["email"]


def test_a_stored_cursor_that_cannot_be_sent_in_the_configured_format_refuses_to_start():
    sync = sync_for("http://127.0.0.1:9", format="iso")
    Synchronization.objects.filter(pk=sync.pk).update(incremental_cursor="v42", incremental_cursor_path="updated_at")
    sync.refresh_from_db()

    with pytest.raises(sync_runs.ConfigurationError, match="the stored cursor cannot be sent"):
        sync_runs.run_start(synchronization=sync)


def test_a_broken_incremental_setting_stored_behind_the_checks_refuses_to_start_rather_than_read_everything():
    sync = sync_for("http://127.0.0.1:9")
    Synchronization.objects.filter(pk=sync.pk).update(
        source_config={**sync.source_config, "incremental": {"param": "since"}}
    )
    sync.refresh_from_db()

    with pytest.raises(sync_runs.ConfigurationError, match="incremental.cursorPath"):
        sync_runs.run_start(synchronization=sync)

    assert not SynchronizationRun.objects.exists()


def test_a_full_run_due_while_a_run_is_active_waits_behind_it():
    # Given an incremental synchronization with a run still active when its full run comes due
    api = Api()
    due = datetime(2026, 11, 25, 3, 0, 5, tzinfo=UTC)
    with api.server:
        sync = sync_for(api.server.url, fullSchedule="0 3 * * *")
        sync_runs.run_start(synchronization=sync)
        active = SynchronizationRun.objects.create(synchronization=sync, status="running",
                                                   started_at=timezone.now(), heartbeat_at=timezone.now())

        # When the schedule comes due
        schedules.schedules_start_due(now=due)

    # Then the full run is queued behind the active one (only a full run deletes), not skipped
    waiting = SynchronizationRun.objects.exclude(pk=active.pk).order_by("-id").first()
    assert (waiting.trigger, waiting.mode, waiting.status, waiting.waiting) == ("schedule", "full", "queued", True)
    sync.refresh_from_db()
    assert sync.schedule_skips == 0
