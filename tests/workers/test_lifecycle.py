"""Run lifecycle on the real stack: deletion guards, follow-ups, one run at a time, a killed worker."""
from __future__ import annotations

import threading
import time

import pytest

from contracts.models import SynchronizationContract, SynchronizationRun
from contracts.runs import RunRefused
from syncapp import runs as sync_runs
from syncapp.configuration import bundle_import
from syncapp.models import Object, Synchronization
from tests.conftest import TEST_QUEUE, WorkerProcess, on_queue, purge_queue, zoo_bundle
from tests.helpers import active_ids, call_at_once, import_zoo, wait_for_run
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.worker


def run_and_wait(sync: Synchronization, **options) -> SynchronizationRun:
    return wait_for_run(sync_runs.run_start(synchronization=sync, **options))


def test_removing_records_at_the_source_deletes_exactly_those_objects(worker, sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run_and_wait(sync)
    gone = [a for a in animals if a["status"] == "active"][:4]
    for record in gone:
        sample_source.remove_record(record["id"])

    run = run_and_wait(sync)

    assert (run.status, run.deleted) == ("succeeded", 4)
    kept = SynchronizationContract.objects.filter(target_id__isnull=False)
    assert set(kept.values_list("origin_id", flat=True)) == active_ids(animals) - {str(a["id"]) for a in gone}
    assert Object.objects.count() == kept.count()


@pytest.mark.parametrize(
    "broken_page", [(500, {}, {"error": "down"}), (200, {"Content-Type": "application/json"}, "{truncated")],
    ids=["500 after retries", "invalid JSON"],
)
def test_a_run_in_which_one_page_fails_deletes_nothing(worker, animals, broken_page):
    records = [{**a, "status": "active", "id": index + 1} for index, a in enumerate(animals[:30])]
    state = {"broken": False}

    def handler(request: Request):
        page = int(request.query.get("page", 1))
        if state["broken"] and page == 2:
            return broken_page
        return 200, {}, {"results": records[(page - 1) * 10: page * 10]}

    with LoopbackServer(handler) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/a", "pagination": {"type": "page"}}
        sync.save()
        run_and_wait(sync)
        del records[12:]
        state["broken"] = True

        run = run_and_wait(sync)

    assert run.status == "failed" and f"{server.url}/a" in run.error_message
    assert (run.deleted, Object.objects.count()) == (0, 30)


def test_a_source_that_suddenly_returns_an_empty_list_deletes_nothing(worker, sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run_and_wait(sync)
    sample_source.replace_records([])

    run = run_and_wait(sync)

    assert run.status == "partial" and "deleteSafetyLimit" in run.error_message
    assert Object.objects.count() == len(active_ids(animals))


def test_a_test_run_never_deletes(worker, sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run_and_wait(sync)
    sample_source.replace_records(animals[:2])

    test_run = sync_runs.run_test(synchronization=sync)

    assert test_run.deleted == 0 and Object.objects.count() == len(active_ids(animals))


def test_a_record_filtered_out_by_a_changed_condition_is_deleted(worker, sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run_and_wait(sync)
    excluded = next(a for a in animals if a["status"] == "active")
    sync.conditions = {"and": [{"==": [{"var": "status"}, "active"]}, {"!=": [{"var": "id"}, excluded["id"]]}]}
    sync.save()

    run = run_and_wait(sync)

    assert run.deleted == 1
    assert SynchronizationContract.objects.get(origin_id=str(excluded["id"])).target_last_action == "delete"


def test_follow_ups_run_after_success_and_not_after_failure_or_a_test_run(worker, sample_source):
    bundle = zoo_bundle(location=sample_source.url)
    bundle["synchronizations"].append({**bundle["synchronizations"][0], "reference": "again", "name": "Again"})
    bundle["synchronizations"][0]["followUps"] = ["again"]
    bundle_import(bundle)
    sync = Synchronization.objects.get(reference="animals")
    sync_runs.run_test(synchronization=sync)

    parent = run_and_wait(sync)

    deadline = time.monotonic() + 60
    while not SynchronizationRun.objects.filter(synchronization__reference="again").exists():
        assert time.monotonic() < deadline, "the follow-up did not start"
        time.sleep(0.1)
    child = wait_for_run(SynchronizationRun.objects.get(synchronization__reference="again"))
    assert (child.parent_id, child.status, child.trigger) == (parent.pk, "succeeded", "follow-up")

    sync.source_config = {**sync.source_config, "endpoint": "/missing"}
    sync.save()
    failed = run_and_wait(sync)
    time.sleep(1)
    assert failed.status == "failed"
    assert SynchronizationRun.objects.filter(synchronization__reference="again").count() == 1


def test_starting_the_same_synchronization_twice_at_once_yields_one_run_and_one_refusal(worker, sample_source):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    outcomes: list[object] = []

    def start() -> None:
        try:
            outcomes.append(sync_runs.run_start(synchronization=sync))
        except RunRefused as error:
            outcomes.append(error)

    call_at_once(start, times=2)

    started = [o for o in outcomes if isinstance(o, SynchronizationRun)]
    refused = [o for o in outcomes if isinstance(o, RunRefused)]
    assert (len(started), len(refused)) == (1, 1)
    assert f"already has run {started[0].pk}" in str(refused[0])
    assert wait_for_run(started[0]).status == "succeeded"
    assert SynchronizationRun.objects.count() == 1


def test_a_worker_killed_in_the_middle_of_a_run_leaves_every_object_exactly_once(
    celery_worker_process, transactional_db, animals, tmp_path
):
    # Given a slow source of 300 records in 30 pages, and a worker of our own on a queue of its own
    records = [{**a, "status": "active", "id": index + 1} for index, a in enumerate((animals * 3)[:300])]

    # Pages after the tenth wait for the gate: the worker is killed while the run is surely unfinished.
    gate = threading.Event()

    def handler(request: Request):
        time.sleep(0.15)
        page = int(request.query.get("page", 1))
        if page > 10:
            assert gate.wait(120)
        return 200, {}, {"results": records[(page - 1) * 10: page * 10]}

    queue = f"{TEST_QUEUE}-kill"
    purge_queue(queue)
    # A short visibility timeout, so the broker hands the killed worker's unacked tasks out again soon.
    env = {"CELERY_VISIBILITY_TIMEOUT": "8", "CELERY_TASK_TIME_LIMIT": "6"}
    with on_queue(queue), LoopbackServer(handler) as server:
        first = WorkerProcess(queue=queue, log_path=tmp_path / "first.log", env=env)
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/a", "pagination": {"type": "page"}}
        sync.save()
        run = sync_runs.run_start(synchronization=sync)

        # When the worker is killed once the run is under way
        deadline = time.monotonic() + 60
        while Object.objects.count() < 40:
            assert time.monotonic() < deadline, f"the run did not start:\n{first.log()}"
            time.sleep(0.05)
        first.kill()
        written_at_kill = Object.objects.count()
        gate.set()
        second = WorkerProcess(queue=queue, log_path=tmp_path / "second.log", env=env)
        try:
            # With beat's resend sweep, as in production: a message the killed worker had not sent yet
            # (between a commit and its publish) is sent only by the sweep.
            run = wait_for_run(run, timeout=120, resend_every=10)
            # Then the run ends, and after it (or a re-run, if it failed) every record is there once
            if run.status == "failed":
                run = wait_for_run(sync_runs.run_start(synchronization=sync), timeout=120)
        finally:
            second.stop()

    assert "workers.tasks.sync_chunk" in first.log() and "workers.tasks.sync_chunk" in second.log()
    assert written_at_kill < 300
    assert run.status == "succeeded", second.log()
    contracts = SynchronizationContract.objects.filter(synchronization=sync)
    assert contracts.count() == 300
    assert contracts.filter(target_id__isnull=True).count() == 0
    assert Object.objects.count() == 300
    assert len(set(contracts.values_list("target_id", flat=True))) == 300
