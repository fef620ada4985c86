"""Run lifecycle, in-process: deletion of vanished objects, follow-ups, one run at a time, cancel,
stale runs, retention and schedules."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from contracts import runs
from contracts.models import ContractLog, RunPage, SynchronizationContract, SynchronizationRun
from syncapp import runs as sync_runs
from syncapp.configuration import ConfigurationInvalid, bundle_import
from syncapp.models import Object, Synchronization
from syncapp.runs.context import context_load, first_request
from syncapp.runs.finish import run_close_if_complete
from tests.conftest import zoo_bundle
from tests.helpers import active_ids, import_zoo, run, runner_take, wait_for_run
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")


# -- deletion of vanished objects -------------------------------------------------------------------


def test_records_removed_at_the_source_delete_exactly_their_objects(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run(sync)
    gone = [a for a in animals if a["status"] == "active"][:3]
    for record in gone:
        sample_source.remove_record(record["id"])

    second = run(sync)

    assert (second.status, second.deleted) == ("succeeded", 3)
    remaining = {str(a["id"]) for a in animals if a["status"] == "active"} - {str(a["id"]) for a in gone}
    targets = SynchronizationContract.objects.filter(origin_id__in=remaining).values_list("target_id", flat=True)
    assert set(map(str, Object.objects.values_list("pk", flat=True))) == set(targets)
    for record in gone:
        contract = SynchronizationContract.objects.get(origin_id=str(record["id"]))
        assert (contract.target_id, contract.target_last_action, contract.status) == (None, "delete", "deleted")
    assert ContractLog.objects.filter(run=second, action="delete").count() == 3


def test_a_record_that_comes_back_is_created_again(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run(sync)
    record = next(a for a in animals if a["status"] == "active")
    sample_source.remove_record(record["id"])
    run(sync)
    sample_source.add_record(record)

    third = run(sync)

    assert (third.created, third.deleted) == (1, 0)
    contract = SynchronizationContract.objects.get(origin_id=str(record["id"]))
    assert contract.target_last_action == "create" and Object.objects.filter(pk=contract.target_id).exists()


def test_a_record_filtered_out_by_a_changed_condition_is_deleted(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run(sync)
    excluded = next(a for a in animals if a["status"] == "active")
    sync.conditions = {"and": [{"==": [{"var": "status"}, "active"]}, {"!=": [{"var": "id"}, excluded["id"]]}]}
    sync.save()

    second = run(sync)

    assert (second.deleted, second.filtered) == (1, len(animals) - len(active_ids(animals)) + 1)
    contract = SynchronizationContract.objects.get(origin_id=str(excluded["id"]))
    assert (contract.target_id, contract.target_last_action) == (None, "delete")
    assert Object.objects.count() == len(active_ids(animals)) - 1


def test_a_run_in_which_a_page_fails_deletes_nothing(animals):
    records = [{**a, "status": "active", "id": i + 1} for i, a in enumerate(animals[:40])]
    fail = {"on": False}

    def handler(request: Request):
        page = int(request.query.get("page", 1))
        if fail["on"] and page == 2:
            return 200, {"Content-Type": "application/json"}, "{not json"
        return 200, {}, {"results": records[(page - 1) * 10: page * 10]}

    with LoopbackServer(handler) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/a", "pagination": {"type": "page"}}
        sync.save()
        run(sync)
        del records[0:35]  # most records vanish, and the page that would tell is broken
        fail["on"] = True

        second = run(sync)

    assert second.status == "failed" and "not JSON" in second.error_message
    assert (second.deleted, Object.objects.count()) == (0, 40)


def test_a_source_that_suddenly_returns_nothing_deletes_nothing_and_ends_partial(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run(sync)
    sample_source.replace_records([])

    second = run(sync)

    assert second.status == "partial"
    assert "more than deleteSafetyLimit 50%" in second.error_message
    assert second.deleted == 0 and Object.objects.count() == len(active_ids(animals))


def test_a_forced_run_deletes_past_the_safety_limit(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run(sync)
    sample_source.replace_records([])

    second = run(sync, force=True)

    assert (second.status, second.deleted, Object.objects.count()) == ("succeeded", len(active_ids(animals)), 0)


def test_a_higher_safety_limit_lets_a_large_deletion_through(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    sync.source_config = {**sync.source_config, "deleteSafetyLimit": "100%"}
    sync.save()
    run(sync)
    sample_source.replace_records([])

    assert run(sync).deleted == len(active_ids(animals))


def test_with_delete_missing_off_nothing_is_ever_deleted(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    sync.source_config = {**sync.source_config, "deleteMissing": False}
    sync.save()
    run(sync)
    sample_source.remove_record(next(a for a in animals if a["status"] == "active")["id"])

    second = run(sync)

    assert (second.status, second.deleted, Object.objects.count()) == ("succeeded", 0, len(active_ids(animals)))


def test_a_test_run_never_deletes(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run(sync)
    sample_source.replace_records(animals[:1])

    test_run = sync_runs.run_test(synchronization=sync)

    assert test_run.deleted == 0 and Object.objects.count() == len(active_ids(animals))


def test_a_run_that_hits_max_pages_deletes_nothing(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run(sync)
    sync.source_config = {**sync.source_config, "maxPages": 1}
    sync.save()

    second = run(sync)

    assert (second.status, second.deleted) == ("partial", 0)
    assert Object.objects.count() == len(active_ids(animals))


def test_an_invalid_object_is_not_deleted_as_vanished(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run(sync)
    broken = next(a for a in animals if a["status"] == "active")
    sample_source.update_record(broken["id"], legs="many")

    second = run(sync)

    assert (second.status, second.invalid, second.deleted) == ("partial", 1, 0)
    contract = SynchronizationContract.objects.get(origin_id=str(broken["id"]))
    assert contract.status == "invalid" and Object.objects.filter(pk=contract.target_id).exists()


# -- follow-ups ---------------------------------------------------------------------------------------


@pytest.fixture
def chained(sample_source) -> tuple[Synchronization, Synchronization]:
    bundle = zoo_bundle(location=sample_source.url)
    follow_up = {**bundle["synchronizations"][0], "reference": "retired", "name": "Retired",
                 "conditions": {"==": [{"var": "status"}, "retired"]}}
    bundle["registers"][0]["schemas"].append({**bundle["registers"][0]["schemas"][0], "reference": "retired"})
    follow_up["targetId"] = "zoo/retired"
    bundle["synchronizations"][0]["followUps"] = ["retired"]
    bundle["synchronizations"].append(follow_up)
    bundle_import(bundle)
    return Synchronization.objects.get(reference="animals"), Synchronization.objects.get(reference="retired")


def test_follow_ups_run_after_success_as_their_own_run_linked_to_the_parent(chained):
    parent_sync, follow_up = chained

    parent = run(parent_sync)

    child = SynchronizationRun.objects.get(synchronization=follow_up)
    assert (child.parent_id, child.trigger, child.status) == (parent.pk, "follow-up", "succeeded")
    assert child.created > 0


def test_follow_ups_do_not_run_after_a_failed_run_or_a_test_run(chained, sample_source):
    parent_sync, follow_up = chained
    sync_runs.run_test(synchronization=parent_sync)
    parent_sync.source_config = {**parent_sync.source_config, "endpoint": "/nothing-here"}
    parent_sync.save()

    failed = run(parent_sync)

    assert failed.status == "failed"
    assert not SynchronizationRun.objects.filter(synchronization=follow_up).exists()


def test_follow_ups_run_after_a_partial_run_only_when_asked(chained, sample_source, animals):
    parent_sync, follow_up = chained
    sample_source.update_record(next(a for a in animals if a["status"] == "active")["id"], legs="many")
    assert run(parent_sync).status == "partial"
    assert not SynchronizationRun.objects.filter(synchronization=follow_up).exists()
    parent_sync.source_config = {**parent_sync.source_config, "followUpsOnPartial": True}
    parent_sync.save()

    run(parent_sync)

    assert SynchronizationRun.objects.filter(synchronization=follow_up).count() == 1


def test_a_follow_up_cycle_stored_behind_the_validation_never_loops(chained):
    parent_sync, follow_up = chained
    follow_up.follow_ups.add(parent_sync)  # straight into the database, past every check

    run(parent_sync)

    assert SynchronizationRun.objects.filter(synchronization=parent_sync).count() == 1
    assert SynchronizationRun.objects.filter(synchronization=follow_up).count() == 1


def test_a_follow_up_cycle_is_refused_at_import_naming_the_chain(chained, sample_source):
    bundle = {"synchronizations": [
        {**zoo_bundle(location=sample_source.url)["synchronizations"][0], "reference": "retired",
         "targetId": "zoo/retired", "followUps": ["animals"]},
    ]}

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_import(bundle)

    assert caught.value.problems == [
        "synchronizations[0].followUps: follow-ups make a cycle: retired → animals → retired"
    ]


def test_a_follow_up_cycle_is_refused_by_the_api(chained, admin_user):
    parent_sync, follow_up = chained
    client = APIClient()
    client.force_authenticate(admin_user)

    response = client.patch(
        f"/api/synchronizations/{follow_up.pk}/", {"followUps": [parent_sync.reference]}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["followUps"] == ["follow-ups make a cycle: retired → animals → retired"]


def test_a_follow_up_cycle_is_refused_by_the_admin(chained, admin_client):
    parent_sync, follow_up = chained
    data = {
        "reference": "retired", "name": "Retired", "source_type": "api", "source": follow_up.source_id,
        "source_config": "{}", "conditions": "{}", "target_type": "register/schema",
        "target_schema": follow_up.target_schema_id, "target_config": "{}", "follow_ups": [parent_sync.pk],
    }

    response = admin_client.post(reverse("admin:syncapp_synchronization_change", args=[follow_up.pk]), data)

    assert response.context["adminform"].form.errors["follow_ups"] == [
        "follow-ups make a cycle: retired → animals → retired"
    ]


# -- one run at a time, cancel, stale runs ---------------------------------------------------------------


def test_a_second_start_while_a_run_is_active_is_refused_clearly(sample_source):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    active = SynchronizationRun.objects.create(synchronization=sync, status="running", heartbeat_at=timezone.now())

    with pytest.raises(runs.RunRefused, match=f"already has run {active.pk} running"):
        sync_runs.run_start(synchronization=sync)


def test_a_start_asked_to_queue_waits_behind_the_active_run_and_starts_when_it_ends(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    active = SynchronizationRun.objects.create(synchronization=sync, status="running", heartbeat_at=timezone.now())

    waiting = sync_runs.run_start(synchronization=sync, queue=True)

    assert (waiting.status, waiting.waiting) == ("queued", True)
    SynchronizationRun.objects.filter(pk=active.pk).update(fetch_finished=True)
    run_close_if_complete(run_id=active.pk)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.created) == ("succeeded", len(active_ids(animals)))


def test_a_cancelled_run_ends_cancelled_its_tasks_do_nothing_and_nothing_is_deleted(sample_source):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run(sync)
    stored = Object.objects.count()
    sample_source.replace_records([])
    # A run as run_start makes it, its first page task not yet delivered.
    queued = runs.run_create(synchronization=sync, force=True)
    context = context_load(synchronization_id=sync.pk)
    RunPage.objects.create(run=queued, number=1, request=first_request(context))

    assert runs.run_cancel(run=queued) is True
    from workers.tasks import sync_page

    sync_page(queued.pk, 1)  # a task delivered after the cancel

    queued.refresh_from_db()
    assert (queued.status, queued.deleted, queued.pages_fetched) == ("cancelled", 0, 0)
    assert Object.objects.count() == stored
    assert RunPage.objects.get(run=queued).status == "failed"


def test_sync_cancel_on_the_command_line_cancels_an_active_run(sample_source):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    active = SynchronizationRun.objects.create(synchronization=sync, status="running", heartbeat_at=timezone.now())

    call_command("sync", "cancel", str(active.pk), stdout=io.StringIO())

    active.refresh_from_db()
    assert active.status == "cancelled"


def test_a_run_whose_worker_was_lost_is_failed_and_no_longer_blocks_the_synchronization(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    lost = SynchronizationRun.objects.create(
        synchronization=sync, status="running", heartbeat_at=timezone.now() - timedelta(hours=1)
    )

    fresh = run(sync)

    lost.refresh_from_db()
    assert lost.status == "failed" and "worker" in lost.error_message
    assert (fresh.status, fresh.created) == ("succeeded", len(active_ids(animals)))


def test_only_runs_without_recent_progress_are_failed_as_stale(sample_source):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    moving = SynchronizationRun.objects.create(synchronization=sync, status="running", heartbeat_at=timezone.now())
    stuck = SynchronizationRun.objects.create(
        synchronization=sync, status="running", heartbeat_at=timezone.now() - timedelta(minutes=20)
    )

    assert runs.runs_fail_stale(stale_after=600) == [stuck.pk]
    moving.refresh_from_db()
    assert moving.status == "running"


# -- retention and schedules ------------------------------------------------------------------------------


def test_old_logs_and_runs_are_purged_but_each_synchronization_keeps_its_last_run(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    first, second = run(sync), run(sync, force=True)
    old = timezone.now() - timedelta(days=40)
    SynchronizationRun.objects.update(created_at=old)
    ContractLog.objects.filter(run=first).update(created_at=old)
    recent_logs = ContractLog.objects.filter(run=second).count()

    purged = runs.logs_purge(older_than_days=30)

    assert purged == {"contractLogs": len(active_ids(animals)), "runs": 1}
    assert list(SynchronizationRun.objects.values_list("pk", flat=True)) == [second.pk]
    assert ContractLog.objects.count() == recent_logs


def test_a_schedule_that_is_not_cron_is_refused_at_import(sample_source):
    bundle = zoo_bundle(location=sample_source.url)
    bundle["synchronizations"][0]["schedule"] = "every day"

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_import(bundle)

    assert caught.value.problems == [
        "synchronizations[0].schedule: 'every day' is not a cron expression like \"*/15 * * * *\""
    ]


def test_a_run_can_be_cancelled_through_the_api_once(sample_source, admin_user):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    active = SynchronizationRun.objects.create(synchronization=sync, status="running", heartbeat_at=timezone.now())
    client = APIClient()
    client.force_authenticate(admin_user)

    first = client.post(f"/api/runs/{active.pk}/cancel/")
    second = client.post(f"/api/runs/{active.pk}/cancel/")

    assert (first.status_code, first.json()["status"]) == (200, "cancelled")
    assert second.status_code == 409 and "already ended" in second.json()["detail"]


def test_the_admin_cancels_the_selected_runs(sample_source, admin_client):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    active = SynchronizationRun.objects.create(synchronization=sync, status="queued", heartbeat_at=timezone.now())

    admin_client.post(
        reverse("admin:contracts_synchronizationrun_changelist"),
        {"action": "cancel", "_selected_action": [active.pk]},
    )

    active.refresh_from_db()
    assert active.status == "cancelled"


def test_the_admin_run_now_action_starts_a_run(sample_source, admin_client, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))

    admin_client.post(
        reverse("admin:syncapp_synchronization_changelist"), {"action": "run_now", "_selected_action": [sync.pk]}
    )

    # Queued from the request for the runner (tasks in process), which runs it to its end
    runner_take()
    run = wait_for_run(SynchronizationRun.objects.get(synchronization=sync), timeout=60)
    assert (run.status, run.created) == ("succeeded", len(active_ids(animals)))


def test_starting_the_follow_ups_of_a_run_twice_starts_each_once(chained):
    from syncapp.follow_ups import follow_ups_start

    parent_sync, follow_up = chained
    parent = run(parent_sync)

    again = follow_ups_start(run=parent)

    assert again == []
    assert SynchronizationRun.objects.filter(synchronization=follow_up, parent=parent).count() == 1
