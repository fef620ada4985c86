"""Pushes with a real Celery worker: a cycle of pushed schemas stops, and a burst of saves is pushed by
a handful of runs."""
from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from contracts.models import SynchronizationRun
from syncapp import pushes
from syncapp.configuration import bundle_import
from syncapp.models import Object, OutboxChange, Schema, Synchronization
from syncapp.targets.register import register_object_save
from tests.conftest import WorkerProcess
from tests.helpers import drain_held, mirrored_schemas
from tests.syncapp.targets.test_api import TargetApi

pytestmark = pytest.mark.worker


def wait_until(done: Callable[[], bool], *, worker: WorkerProcess, timeout: float = 120) -> None:
    """Poll the database until `done` holds: the pushes ended and nothing is left to push."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.2)


def settled(worker: WorkerProcess) -> bool:
    """Return whether the pushes ended: nothing left to push, no run active, and no task sent but not done
    (asked twice, so a task between the queue and the worker is seen the second time)."""
    return all(
        not OutboxChange.objects.exists()
        and not SynchronizationRun.objects.filter(status__in=SynchronizationRun.ACTIVE_STATUSES).exists()
        and worker.idle()
        for _ in range(2)
    )


def test_two_schemas_pushed_to_each_other_get_one_object_each_on_a_worker_and_stop(worker):
    # Given schema a pushed to b, and b pushed to a
    a, b = mirrored_schemas("a", "b")

    # When a person creates an object in a
    register_object_save(obj=Object(schema=a, data={"name": "Lulu"}))

    # Then the worker copies it into b, and the copy is not pushed back
    wait_until(lambda: SynchronizationRun.objects.exists() and settled(worker), worker=worker)
    assert pushes.changes_drain_left(older_than_seconds=0) == 0
    assert [Object.objects.filter(schema=schema).count() for schema in (a, b)] == [1, 1]
    runs = SynchronizationRun.objects.values_list("synchronization__reference", "trigger", "status")
    assert list(runs) == [("a-to-b", "event", "succeeded")]


def test_a_burst_of_1200_saves_is_pushed_by_a_worker_in_a_handful_of_runs(worker):
    with TargetApi() as target:
        bundle_import({
            "sources": [{"reference": "crm", "location": target.url}],
            "registers": [{"reference": "zoo", "schemas": [{"reference": "animal", "schema": {"type": "object"}}]}],
            "synchronizations": [{
                "reference": "push", "sourceType": "register/schema", "sourceId": "zoo/animal",
                "targetType": "api", "targetId": "crm", "targetConfig": {"endpoint": "/items"},
            }],
        })
        animal = Schema.objects.get(reference="animal")
        # Given a first save, whose drain is under way (held at its push)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("workers.dispatch.outbox_drain", lambda **_: None)
            saved = [register_object_save(obj=Object(schema=animal, data={"name": "n0", "version": 0}))]
        with drain_held(schema_id=animal.pk):
            # When 199 more objects are created and each is updated 5 times, every save in its own
            # transaction, each sending its drain to the worker
            saved += [register_object_save(obj=Object(schema=animal, data={"name": f"n{n}", "version": 0}))
                      for n in range(1, 200)]
            for version in range(1, 6):
                for obj in saved:
                    obj.data = {**obj.data, "version": version}
                    register_object_save(obj=obj)

        # Then every object reaches the target in its last version, by a handful of runs
        wait_until(lambda: len(target.items) == 200 and settled(worker), worker=worker)
        assert sorted((item["name"], item["version"]) for item in target.items.values()) == sorted(
            (f"n{n}", 5) for n in range(200)
        )
    runs = SynchronizationRun.objects.filter(synchronization=Synchronization.objects.get(reference="push"))
    assert 1 <= runs.count() <= 10
    assert {(run.trigger, run.status) for run in runs} == {("event", "succeeded")}
