"""End to end on the real stack: a Celery worker process, Redis, PostgreSQL and a loopback source."""
from __future__ import annotations

import pytest

from contracts.models import ContractLog, SynchronizationContract, SynchronizationRun
from syncapp import runs as sync_runs
from syncapp.models import Object
from syncapp.runs.context import context_load, first_request
from tests.conftest import zoo_bundle
from tests.helpers import active_ids, call_at_once, import_zoo, register_objects, wait_for_run

pytestmark = pytest.mark.worker


def run_and_wait(sync, *, force: bool = False) -> SynchronizationRun:
    run = sync_runs.run_start(synchronization=sync, force=force)
    return wait_for_run(run)


def test_first_run_creates_one_object_per_record_that_passes_the_conditions(worker, sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))

    run = run_and_wait(sync)

    expected = active_ids(animals)
    assert run.status == "succeeded", run.error_message
    assert run.counts == {
        "found": len(animals), "filtered": len(animals) - len(expected), "unchanged": 0,
        "created": len(expected), "updated": 0, "deleted": 0, "invalid": 0, "failed": 0,
    }
    assert run.pages_fetched == 3  # 120 records at per_page=50
    objects = register_objects(sync)
    assert len(objects) == len(expected)
    assert {obj["name"] for obj in objects} == {a["name"] for a in animals if a["status"] == "active"}
    assert all(isinstance(obj["legs"], int) for obj in objects)
    contracts = SynchronizationContract.objects.filter(synchronization=sync)
    assert set(contracts.values_list("origin_id", flat=True)) == expected
    assert set(contracts.values_list("target_last_action", flat=True)) == {"create"}
    assert ContractLog.objects.filter(run=run, action="create").count() == len(expected)


def test_second_run_with_unchanged_data_writes_nothing(worker, sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run_and_wait(sync)
    before = {str(obj.pk): obj.updated_at for obj in Object.objects.all()}

    run = run_and_wait(sync)

    assert run.status == "succeeded"
    assert run.unchanged == len(active_ids(animals))
    assert run.created == run.updated == run.objects_queued == 0
    assert {str(obj.pk): obj.updated_at for obj in Object.objects.all()} == before
    assert not ContractLog.objects.filter(run=run).exists()


def test_changing_one_record_at_the_source_updates_exactly_that_object(worker, sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run_and_wait(sync)
    changed = next(a for a in animals if a["status"] == "active")
    sample_source.update_record(changed["id"], name="Renamed")

    run = run_and_wait(sync)

    assert (run.updated, run.created, run.unchanged) == (1, 0, len(active_ids(animals)) - 1)
    contract = SynchronizationContract.objects.get(synchronization=sync, origin_id=str(changed["id"]))
    assert Object.objects.get(pk=contract.target_id).data["name"] == "Renamed"
    assert contract.target_last_action == "update"
    assert Object.objects.count() == len(active_ids(animals))


def test_a_forced_run_writes_every_object(worker, sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    run_and_wait(sync)

    run = run_and_wait(sync, force=True)

    assert run.status == "succeeded"
    assert (run.updated, run.unchanged, run.created) == (len(active_ids(animals)), 0, 0)
    assert Object.objects.count() == len(active_ids(animals))


def test_a_test_run_writes_nothing_at_all(worker, sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))

    run = sync_runs.run_test(synchronization=sync)

    assert run.status == "succeeded"
    assert not Object.objects.exists()
    assert not SynchronizationContract.objects.exists()
    assert not ContractLog.objects.exists()
    first_page = animals[:50]
    assert run.found == len(first_page)
    actions = [entry["action"] for entry in run.report if entry.get("originId")]
    assert actions.count("create") == len(active_ids(first_page))
    creates = [entry for entry in run.report if entry["action"] == "create"]
    assert all(isinstance(entry["result"]["legs"], int) for entry in creates)


def test_an_object_invalid_against_the_schema_is_invalid_while_the_rest_are_written(
    worker, sample_source, animals
):
    broken = next(a for a in animals if a["status"] == "active")
    sample_source.update_record(broken["id"], name="")  # the schema asks for minLength 1
    sync = import_zoo(zoo_bundle(location=sample_source.url))

    run = run_and_wait(sync)

    assert run.status == "partial"
    assert run.invalid == 1
    assert run.created == len(active_ids(animals)) - 1
    contract = SynchronizationContract.objects.get(synchronization=sync, origin_id=str(broken["id"]))
    assert contract.status == "invalid"
    assert contract.target_id is None
    assert "name" in contract.last_error and "zoo/animal" in contract.last_error
    log = ContractLog.objects.get(run=run, origin_id=str(broken["id"]))
    assert log.error == contract.last_error and log.source_object["name"] == ""


def test_two_runs_at_once_never_create_two_contracts_or_objects_for_one_origin_id(
    worker, sample_source, animals
):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    # Bypass the one-active-run guard on purpose: the pipeline itself must be safe. Runs side by side
    # cannot tell what vanished (each sees the other's marks), so deletion is off here.
    sync.source_config = {**sync.source_config, "deleteMissing": False}
    sync.save()
    runs = []

    def start() -> None:
        run = SynchronizationRun.objects.create(synchronization=sync)
        from contracts.models import RunPage

        RunPage.objects.create(run=run, number=1, request=first_request(context_load(synchronization_id=sync.pk)))
        from workers.tasks import sync_page

        sync_page.delay(run.pk, 1)
        runs.append(run)

    call_at_once(start, times=2)
    finished = [wait_for_run(run) for run in runs]

    expected = active_ids(animals)
    assert all(run.status == "succeeded" for run in finished)
    assert sum(run.created for run in finished) == len(expected)
    assert SynchronizationContract.objects.filter(synchronization=sync).count() == len(expected)
    assert Object.objects.count() == len(expected)
    target_ids = list(SynchronizationContract.objects.values_list("target_id", flat=True))
    assert len(set(target_ids)) == len(expected)
    assert Object.objects.filter(pk__in=target_ids).count() == len(expected)
