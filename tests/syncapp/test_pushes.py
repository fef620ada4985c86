"""Pushes on change: a register object saved or deleted reaches the synchronizations that read its
schema, after commit, without echoing back to where it came from."""
from __future__ import annotations

import time

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from contracts.models import SynchronizationContract, SynchronizationRun
from syncapp import pushes
from syncapp.configuration import ConfigurationInvalid, bundle_import
from syncapp.models import Object, OutboxChange, Schema, Synchronization
from syncapp.sample_source import SampleSource, generate_animals
from syncapp.sources.register import push_events
from syncapp.targets.register import register_object_save, register_objects_delete
from tests.helpers import drain_held, mirrored_schemas, pushes_cut_after
from tests.syncapp.targets.test_api import TargetApi
from workers import dispatch

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")


def pushing(target: TargetApi, *, reference: str = "push", target_source: str = "crm", **source_config) -> None:
    bundle_import({
        "sources": [{"reference": target_source, "location": target.url}],
        "registers": [{"reference": "zoo", "schemas": [{"reference": "animal", "schema": {"type": "object"}}]}],
        "synchronizations": [{
            "reference": reference, "sourceType": "register/schema", "sourceId": "zoo/animal",
            "sourceConfig": source_config, "targetType": "api", "targetId": target_source,
            "targetConfig": {"endpoint": "/items"},
        }],
    })


def pull_and_pushes(*, zoo_url: str, crm_url: str) -> dict:
    """A bundle: a pull from the zoo API into the register, a push back to the zoo API, a push to a CRM."""
    return {
        "sources": [{"reference": "zoo-api", "location": zoo_url}, {"reference": "crm", "location": crm_url}],
        "registers": [{"reference": "zoo", "schemas": [{"reference": "animal", "schema": {"type": "object"}}]}],
        "synchronizations": [
            {"reference": "pull", "sourceType": "api", "sourceId": "zoo-api",
             "sourceConfig": {"endpoint": "/animals", "resultsPosition": "results",
                              "pagination": {"type": "next", "nextPath": "next"}},
             "targetType": "register/schema", "targetId": "zoo/animal"},
            {"reference": "back", "sourceType": "register/schema", "sourceId": "zoo/animal",
             "targetType": "api", "targetId": "zoo-api", "targetConfig": {"endpoint": "/animals"}},
            {"reference": "out", "sourceType": "register/schema", "sourceId": "zoo/animal",
             "targetType": "api", "targetId": "crm", "targetConfig": {"endpoint": "/items"}},
        ],
    }


def schema() -> Schema:
    return Schema.objects.get(reference="animal")


def test_an_object_saved_through_the_api_reaches_the_target_once_after_commit(admin_user):
    with TargetApi() as target:
        pushing(target)
        client = APIClient()
        client.force_authenticate(admin_user)

        answer = client.post("/api/objects/", {"schema": schema().pk, "data": {"name": "Lulu"}}, format="json")

    assert answer.status_code == 201, answer.content
    assert [body["name"] for _, body in target.of("POST")] == ["Lulu"]
    run = SynchronizationRun.objects.get()
    assert (run.trigger, run.status, run.created, run.scope) == ("event", "succeeded", 1, [answer.json()["uuid"]])


def test_a_rolled_back_save_pushes_nothing():
    with TargetApi() as target:
        pushing(target)

        with pytest.raises(RuntimeError), transaction.atomic():
            register_object_save(obj=Object(schema=schema(), data={"name": "Ghost"}))
            raise RuntimeError("the request failed after the save")

    assert target.calls == [] and not SynchronizationRun.objects.exists()
    assert not OutboxChange.objects.exists()


def test_a_change_whose_drain_was_lost_is_pushed_by_the_sweep_once(monkeypatch):
    with TargetApi() as target:
        pushing(target)
        # Given a committed change whose drain task was lost on the way
        monkeypatch.setattr(dispatch, "outbox_drain", lambda **_: None)
        register_object_save(obj=Object(schema=schema(), data={"name": "Lulu"}))
        assert target.calls == [] and OutboxChange.objects.count() == 1

        # When the sweep of left-over changes runs, twice
        swept = [pushes.changes_drain_left(older_than_seconds=0) for _ in range(2)]

    # Then the change is pushed once, and the outbox is empty
    assert swept == [1, 0]
    assert [body["name"] for _, body in target.of("POST")] == ["Lulu"]
    assert not OutboxChange.objects.exists()


def test_an_update_and_a_delete_reach_the_target_and_nothing_else_is_touched():
    with TargetApi() as target:
        pushing(target)
        lulu = register_object_save(obj=Object(schema=schema(), data={"name": "Lulu"}))
        register_object_save(obj=Object(schema=schema(), data={"name": "Momo"}))

        lulu.data = {"name": "Lulu II"}
        register_object_save(obj=lulu)
        register_objects_delete(objects=[lulu])

    assert [body["name"] for _, body in target.of("PUT")] == ["Lulu II"]
    assert len(target.of("DELETE")) == 1
    assert [item["name"] for item in target.items.values()] == ["Momo"]
    assert [run.status for run in SynchronizationRun.objects.order_by("pk")] == ["succeeded"] * 4


def test_only_the_events_asked_for_start_a_push():
    with TargetApi() as target:
        pushing(target, triggerOnlyOnEvents=["delete"])
        lulu = register_object_save(obj=Object(schema=schema(), data={"name": "Lulu"}))
        assert target.calls == []

        register_objects_delete(objects=[lulu])

    # Nothing was sent for the creation, so there is nothing at the target to delete either
    assert target.calls == []
    assert SynchronizationRun.objects.get().scope == [str(lulu.pk)]


def test_changes_while_a_run_is_active_gather_into_one_run_waiting_behind_it():
    with TargetApi() as target:
        pushing(target)
        sync = Synchronization.objects.get(reference="push")
        active = SynchronizationRun.objects.create(synchronization=sync, status="running", heartbeat_at=timezone.now())

        saved = [register_object_save(obj=Object(schema=schema(), data={"name": f"n{n}"})) for n in range(5)]

        waiting = SynchronizationRun.objects.get(waiting=True)
        assert waiting.scope == sorted(str(obj.pk) for obj in saved)
        assert target.calls == []

        from syncapp import runs as sync_runs

        sync_runs.run_cancel(run=active)

    waiting.refresh_from_db()
    assert (waiting.status, waiting.created) == ("succeeded", 5)
    assert len(target.items) == 5


def test_an_object_pulled_into_the_register_is_not_pushed_back_to_the_source_it_came_from():
    animals = generate_animals(count=6, seed=2)
    with SampleSource(records=animals, page_size=10) as source, TargetApi() as elsewhere:
        # Given a pull from the zoo API into the register, a push back to the zoo API, and a push elsewhere
        bundle_import(pull_and_pushes(zoo_url=source.url, crm_url=elsewhere.url))
        from syncapp import runs as sync_runs

        pull = sync_runs.run_start(synchronization=Synchronization.objects.get(reference="pull"))

    pull.refresh_from_db()
    assert (pull.status, pull.created) == ("succeeded", 6), pull.error_message
    assert not SynchronizationRun.objects.filter(synchronization__reference="back").exists()
    assert [source_path for source_path in source.requests if "POST" in source_path] == []
    pushed = SynchronizationRun.objects.get(synchronization__reference="out")
    assert (pushed.trigger, pushed.created) == ("event", 6)
    assert len(elsewhere.items) == 6


def test_trigger_events_are_checked_when_saved():
    with TargetApi() as target, pytest.raises(ConfigurationInvalid, match="triggerOnlyOnEvents: must be a list"):
        pushing(target, triggerOnlyOnEvents=["saved"])


def test_push_events_default_to_every_event():
    assert push_events({}) == ("create", "update", "delete")
    assert push_events({"triggerOnlyOnEvents": ["update"]}) == ("update",)


def runs_made() -> list[tuple[str, str, str, list[int]]]:
    return list(SynchronizationRun.objects.order_by("pk").values_list(
        "synchronization__reference", "trigger", "status", "push_origin"
    ))


def names_in(schema: Schema) -> list[str]:
    return sorted(data["name"] for data in Object.objects.filter(schema=schema).values_list("data", flat=True))


def test_two_schemas_pushed_to_each_other_get_one_object_each_and_stop(monkeypatch):
    pushes_cut_after(monkeypatch, limit=20)
    # Given schema a pushed to b, and b pushed to a
    a, b = mirrored_schemas("a", "b")

    # When a person creates an object in a, and then changes it
    lulu = register_object_save(obj=Object(schema=a, data={"name": "Lulu"}))
    lulu.data = {"name": "Lulu II"}
    register_object_save(obj=lulu)

    # Then it reached b once each time, and the copy in b was not pushed back into a
    assert pushes.changes_drain_left(older_than_seconds=0) == 0  # nothing left to push
    assert (names_in(a), names_in(b)) == (["Lulu II"], ["Lulu II"])
    a_to_b = Synchronization.objects.get(reference="a-to-b").pk
    assert runs_made() == [("a-to-b", "event", "succeeded", [])] * 2
    assert list(SynchronizationContract.objects.values_list("synchronization_id", flat=True)) == [a_to_b]


def test_a_cycle_of_three_pushed_schemas_ends_before_it_comes_round(monkeypatch):
    pushes_cut_after(monkeypatch, limit=20)
    a, b, c = mirrored_schemas("a", "b", "c")
    a_to_b = Synchronization.objects.get(reference="a-to-b").pk

    register_object_save(obj=Object(schema=a, data={"name": "Lulu"}))

    assert (names_in(a), names_in(b), names_in(c)) == (["Lulu"], ["Lulu"], ["Lulu"])
    assert runs_made() == [("a-to-b", "event", "succeeded", []), ("b-to-c", "event", "succeeded", [a_to_b])]
    assert not OutboxChange.objects.exists()


def test_a_deletion_goes_round_a_cycle_of_three_pushed_schemas_once_and_ends_before_it_comes_round(monkeypatch):
    pushes_cut_after(monkeypatch, limit=20)
    a, b, c = mirrored_schemas("a", "b", "c")
    lulu = register_object_save(obj=Object(schema=a, data={"name": "Lulu"}))

    # When a person deletes the object in a
    register_objects_delete(objects=[lulu])

    # Then its copies in b and c are deleted, and the deletion in c is not pushed on into a
    assert (names_in(a), names_in(b), names_in(c)) == ([], [], [])
    assert [(reference, trigger) for reference, trigger, *_ in runs_made()] == [
        ("a-to-b", "event"), ("b-to-c", "event"), ("a-to-b", "event"), ("b-to-c", "event"),
    ]
    assert not OutboxChange.objects.exists()


def test_a_burst_of_1200_saves_while_the_schema_is_drained_is_pushed_by_a_handful_of_runs(monkeypatch):
    with TargetApi() as target:
        pushing(target)
        # Given the first save, whose drain is under way (held at its push)
        monkeypatch.setattr(dispatch, "outbox_drain", lambda **_: None)
        saved = [register_object_save(obj=Object(schema=schema(), data={"name": "n0", "version": 0}))]
        monkeypatch.undo()
        with drain_held(schema_id=schema().pk):
            # When 199 more objects are created and each is updated 5 times, every save in its own transaction
            saved += [register_object_save(obj=Object(schema=schema(), data={"name": f"n{n}", "version": 0}))
                      for n in range(1, 200)]
            for version in range(1, 6):
                for obj in saved:
                    obj.data = {**obj.data, "version": version}
                    register_object_save(obj=obj)
            # (no run started inside a save)
            assert not SynchronizationRun.objects.exists()
            assert OutboxChange.objects.count() == 1200

    # Then the drain under way pushed them all together once it went on: a handful of runs, not 1,200
    runs = SynchronizationRun.objects.order_by("pk")
    assert 1 <= runs.count() <= 10
    assert {(run.trigger, run.status) for run in runs} == {("event", "succeeded")}
    assert sorted((item["name"], item["version"]) for item in target.items.values()) == sorted(
        (f"n{n}", 5) for n in range(200)
    )
    assert not OutboxChange.objects.exists()


def test_a_burst_of_1200_saves_in_the_embedded_service_is_pushed_after_it_by_one_run(settings):
    # Given the embedded service, whose drain of a schema waits on a timer of the saving process (a
    # minute here, so that the test, not the clock, says when it fires)
    settings.SYNC_PUSH_DELAY_SECONDS = 60
    with TargetApi() as target:
        pushing(target)
        # When 200 objects are created and each is updated 5 times, every save in its own transaction
        saved = [register_object_save(obj=Object(schema=schema(), data={"name": f"n{n}", "version": 0}))
                 for n in range(200)]
        for version in range(1, 6):
            for obj in saved:
                obj.data = {**obj.data, "version": version}
                register_object_save(obj=obj)
        # Then no run started inside a save, and one drain waits for the schema
        assert not SynchronizationRun.objects.exists()
        assert OutboxChange.objects.count() == 1200
        assert list(dispatch._drains_waiting) == [schema().pk]

        # And when its timer fires, one run pushes every object in its last version
        dispatch.outbox_drains_finish()
    assert list(SynchronizationRun.objects.values_list("trigger", "status")) == [("event", "succeeded")]
    assert sorted((item["name"], item["version"]) for item in target.items.values()) == sorted(
        (f"n{n}", 5) for n in range(200)
    )
    assert not OutboxChange.objects.exists()
    assert not dispatch._drains_waiting


def test_a_save_in_the_embedded_service_is_pushed_by_its_timer_without_anyone_asking(settings):
    settings.SYNC_PUSH_DELAY_SECONDS = 0.05
    with TargetApi() as target:
        pushing(target)
        # When an object is saved and nothing else happens
        register_object_save(obj=Object(schema=schema(), data={"name": "Lulu"}))
        # Then the timer's thread pushes it (waited for here, for as long as a loaded machine needs)
        deadline = time.monotonic() + 60
        while (dispatch._drains_waiting or dispatch._drains_running) and time.monotonic() < deadline:
            time.sleep(0.05)
        dispatch.outbox_drains_finish()  # the drain under way, if the deadline passed: nothing more
    assert [item["name"] for item in target.items.values()] == ["Lulu"]
    assert list(SynchronizationRun.objects.values_list("trigger", "status")) == [("event", "succeeded")]
    assert not OutboxChange.objects.exists()
