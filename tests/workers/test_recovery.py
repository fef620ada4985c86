"""Runs that never get stuck, on the real stack: a cancel lets the queued run go on, Celery beat starts
scheduled runs one at a time, and a worker killed in the middle of a chunk loses and repeats nothing."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection

from config.celery import app as celery_app
from contracts.models import ContractLog, RunChunk, SynchronizationContract, SynchronizationRun
from syncapp import runs as sync_runs
from syncapp.models import Object, Synchronization
from syncapp.sample_source import generate_animals
from tests.conftest import ROOT, TEST_QUEUE, WorkerProcess, _worker_database_url, purge_queue, zoo_bundle
from tests.helpers import import_zoo, records, wait_for_run
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.worker


class PagedSource(LoopbackServer):
    """Records by page number, `size` a page; `gate` (an Event) holds every answer until it is set."""

    def __init__(self, items: list[dict], *, size: int, delay: float = 0.0):
        self.items = items
        self.gate = threading.Event()
        self.gate.set()

        def handler(request: Request):
            assert self.gate.wait(120)
            time.sleep(delay)
            page = int(request.query.get("page", 1))
            return 200, {}, {"results": self.items[(page - 1) * size: page * size]}

        super().__init__(handler)


def paged(server: LoopbackServer, **source_config) -> Synchronization:
    sync = import_zoo(zoo_bundle(location=server.url))
    sync.source_config = {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"},
                          **source_config}
    sync.save()
    return sync


def assert_each_object_once(sync: Synchronization, *, count: int) -> None:
    contracts = SynchronizationContract.objects.filter(synchronization=sync)
    assert contracts.count() == count and contracts.filter(target_id__isnull=True).count() == 0
    assert Object.objects.count() == count
    assert len(set(contracts.values_list("target_id", flat=True))) == count


def test_a_cancelled_run_on_a_worker_lets_the_run_queued_behind_it_run_to_its_end(worker):
    # Given a run held at its first page, and a second run queued behind it
    items = records(60, seed=7)
    with PagedSource(items, size=20) as server:
        server.gate.clear()
        sync = paged(server)
        first = sync_runs.run_start(synchronization=sync)
        queued = sync_runs.run_start(synchronization=sync, queue=True)
        assert (queued.status, queued.waiting) == ("queued", True)

        # When the first run is cancelled, and the source answers again
        assert sync_runs.run_cancel(run=first) is True
        server.gate.set()

        # Then the queued run runs to its end and syncs every record
        queued = wait_for_run(queued, timeout=120)

    first.refresh_from_db()
    assert first.status == "cancelled"
    assert (queued.status, queued.created) == ("succeeded", 60), queued.error_message
    assert_each_object_once(sync, count=60)


def test_celery_beat_starts_scheduled_runs_one_at_a_time_and_records_the_skips(worker, tmp_path):
    # Given a synchronization due every second whose runs take more than two seconds
    items = records(40, seed=7)
    with PagedSource(items, size=20, delay=0.8) as server:
        sync = paged(server, concurrency=1)
        Synchronization.objects.filter(pk=sync.pk).update(schedule="* * * * * *")
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
             "--schedule", str(tmp_path / "beat-schedule")],
            cwd=ROOT, stdout=open(tmp_path / "beat.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
            env={**os.environ, "DATABASE_URL": _worker_database_url(), "CELERY_TASK_DEFAULT_QUEUE": TEST_QUEUE,
                 "SYNC_SCHEDULE_TICK_SECONDS": "1"},
        )
        try:
            # When real Celery beat runs beside a real worker until three scheduled runs have ended
            deadline = time.monotonic() + 150
            ended = SynchronizationRun.objects.filter(
                synchronization=sync, status__in=SynchronizationRun.ENDED_STATUSES
            )
            while ended.count() < 3 or Synchronization.objects.get(pk=sync.pk).schedule_skips < 1:
                assert beat.poll() is None, (tmp_path / "beat.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (tmp_path / "beat.log").read_text()[-3000:] + worker.log()
                time.sleep(0.2)
        finally:
            beat.terminate()
            beat.wait(timeout=30)
        Synchronization.objects.filter(pk=sync.pk).update(schedule="")
        for run in SynchronizationRun.objects.filter(synchronization=sync):
            wait_for_run(run, timeout=60)

    # Then every run was started by the schedule, succeeded, and none overlapped another
    runs = list(SynchronizationRun.objects.filter(synchronization=sync).order_by("started_at"))
    assert {run.trigger for run in runs} == {"schedule"}
    assert {run.status for run in runs} == {"succeeded"}, [run.error_message for run in runs]
    for before, after in zip(runs, runs[1:], strict=False):
        assert after.started_at >= before.finished_at, (before.pk, after.pk)
    # And the due times that came while a run was active were recorded as skipped, with the reason
    sync.refresh_from_db()
    assert sync.schedule_skips >= 1
    assert "already has run" in sync.schedule_skip_reason
    assert_each_object_once(sync, count=40)


@pytest.fixture
def own_worker(celery_worker_process, transactional_db, tmp_path) -> Iterator[dict]:
    """A queue of this test's own, whose workers the test starts (and kills) itself."""
    queue = f"{TEST_QUEUE}-midchunk"
    purge_queue(queue)
    celery_app.conf.task_default_queue = queue
    # A short visibility timeout, so the broker hands a killed worker's unacked tasks out again soon.
    env = {"CELERY_VISIBILITY_TIMEOUT": "8", "CELERY_TASK_TIME_LIMIT": "6"}
    try:
        yield {"queue": queue, "env": env, "logs": tmp_path}
    finally:
        celery_app.conf.task_default_queue = TEST_QUEUE
        purge_queue(queue)


def test_a_worker_killed_in_the_middle_of_writing_a_chunk_loses_and_repeats_nothing(own_worker):
    queue, env, logs = own_worker["queue"], own_worker["env"], own_worker["logs"]
    items = records(100, seed=7)
    first = WorkerProcess(queue=queue, log_path=logs / "first.log", env=env)
    second = None
    try:
        with PagedSource(items, size=20) as server:
            # Given 100 objects synced once, then every record renamed at the source
            sync = paged(server, chunkSize=20)
            assert wait_for_run(sync_runs.run_start(synchronization=sync), timeout=120).created == 100
            server.items = [{**item, "name": f"{item['name']} II"} for item in items]

            # And the target row of record 50 locked by another transaction, so the chunk that writes
            # it stops in the middle: chunk claimed, contracts locked, some objects written, none committed
            contract = SynchronizationContract.objects.get(synchronization=sync, origin_id="50")
            blocker = psycopg.connect(_worker_database_url())
            blocker.execute(f"SELECT 1 FROM {Object._meta.db_table} WHERE uuid = %s FOR UPDATE",
                            [contract.target_id])
            run = sync_runs.run_start(synchronization=sync)
            deadline = time.monotonic() + 90
            while not chunk_waits_on_the_lock():
                assert time.monotonic() < deadline, f"no chunk met the lock:\n{first.log()}"
                time.sleep(0.1)

            # When the worker is killed there, and the lock released
            first.kill()
            blocker.rollback()
            blocker.close()
            run.refresh_from_db()
            assert run.status == "running"
            assert RunChunk.objects.filter(run=run, status="queued").exists()

            # Then a new worker takes the chunk again, once the broker hands it out, and the run ends
            second = WorkerProcess(queue=queue, log_path=logs / "second.log", env=env)
            run = wait_for_run(run, timeout=120)
    finally:
        if second is not None:
            second.stop()
        if first.process.poll() is None:
            first.stop()

    # With every object updated exactly once
    assert run.status == "succeeded", run.error_message + second.log()
    assert (run.updated, run.unchanged, run.failed) == (100, 0, 0)
    logs_of_run = ContractLog.objects.filter(run=run)
    assert logs_of_run.count() == 100
    assert len(set(logs_of_run.values_list("origin_id", flat=True))) == 100
    assert_each_object_once(sync, count=100)
    assert all(data["name"].endswith(" II") for data in Object.objects.values_list("data", flat=True))


def chunk_waits_on_the_lock() -> bool:
    """Return whether a database session is waiting for a row lock while writing register objects."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
            "AND query ILIKE %s",
            [connection.settings_dict["NAME"], f"%{Object._meta.db_table}%"],
        )
        return cursor.fetchone()[0] > 0


def test_a_worker_killed_while_an_api_target_answers_a_chunk_creates_no_duplicate(own_worker):
    from syncapp.sample_source import SampleSource
    from tests.syncapp.targets.test_api import TargetApi, outgoing

    queue, env, logs = own_worker["queue"], own_worker["env"], own_worker["logs"]
    animals = generate_animals(count=20, seed=6)
    held, release = threading.Event(), threading.Event()

    class HoldingTarget(TargetApi):
        """Holds the answer to the sixth creation until released: the worker waits in mid-chunk."""

        def handle(self, method, path, body, headers):
            if method == "POST" and len(self.of("POST")) == 5 and not held.is_set():
                held.set()
                assert release.wait(120)
            return super().handle(method, path, body, headers)

    first = WorkerProcess(queue=queue, log_path=logs / "first.log", env=env)
    second = None
    try:
        with SampleSource(records=animals, page_size=10) as source, HoldingTarget() as target:
            sync = outgoing(source.url, target)
            sync.source_config = {**sync.source_config, "chunkSize": 10}
            sync.save()
            run = sync_runs.run_start(synchronization=sync)
            assert held.wait(90), first.log()

            # When the worker dies while the target holds its answer, and the target then answers
            first.kill()
            release.set()

            # Then a new worker goes on from the object after the last one recorded
            # (with beat's resend sweep, for a message the killed worker committed but never sent)
            second = WorkerProcess(queue=queue, log_path=logs / "second.log", env=env)
            run = wait_for_run(run, timeout=120, resend_every=10)
    finally:
        release.set()
        if second is not None:
            second.stop()
        if first.process.poll() is None:
            first.stop()

    assert (run.status, run.created) == ("succeeded", 20), run.error_message
    # Every animal is at the target once: the held call was sent again with its idempotency key
    assert sorted(item["name"] for item in target.items.values()) == sorted(animal["name"] for animal in animals)
    contracts = SynchronizationContract.objects.filter(synchronization=sync)
    assert set(contracts.values_list("target_id", flat=True)) == set(target.items)
    # and only the held one was sent twice
    assert len(target.of("POST")) == 21


def test_a_register_object_saved_through_the_api_is_pushed_by_a_worker_once_and_a_pull_is_not_pushed_back(
    worker, admin_user
):
    from rest_framework.test import APIClient

    from syncapp.configuration import bundle_import
    from syncapp.models import Schema
    from syncapp.sample_source import SampleSource
    from tests.syncapp.targets.test_api import TargetApi
    from tests.syncapp.test_pushes import pull_and_pushes

    animals = generate_animals(count=4, seed=8)
    with SampleSource(records=animals, page_size=10) as source, TargetApi() as crm:
        # Given a pull from the zoo API into the register, and pushes of the register to the CRM and back
        bundle_import(pull_and_pushes(zoo_url=source.url, crm_url=crm.url))
        client = APIClient()
        client.force_authenticate(admin_user)

        # When a save is rolled back, and then an object is saved through the REST API
        from django.db import transaction

        from syncapp.models import Object
        from syncapp.targets.register import register_object_save

        with contextlib.suppress(RuntimeError), transaction.atomic():
            ghost = register_object_save(obj=Object(schema=Schema.objects.get(), data={"name": "Ghost"}))
            raise RuntimeError("the request failed after the save")
        answer = client.post("/api/objects/", {"schema": Schema.objects.get().pk, "data": {"name": "Lulu"}},
                             format="json")
        assert answer.status_code == 201, answer.content

        # Then the worker pushes it to both targets, once
        def pushed() -> list[SynchronizationRun]:
            return list(SynchronizationRun.objects.filter(trigger="event"))

        deadline = time.monotonic() + 90
        while len(pushed()) < 2 or any(run.status in SynchronizationRun.ACTIVE_STATUSES for run in pushed()):
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.2)
        assert [body["name"] for _, body in crm.of("POST")] == ["Lulu"]

        # And when the pull writes the zoo's animals into the register
        pull = wait_for_run(
            sync_runs.run_start(synchronization=Synchronization.objects.get(reference="pull")), timeout=90
        )
        deadline = time.monotonic() + 90
        while len(crm.items) < 5 or any(run.status in SynchronizationRun.ACTIVE_STATUSES for run in pushed()):
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.2)

    # They reach the CRM, and none goes back to the zoo API they came from
    assert pull.created == 4
    assert sorted(item["name"] for item in crm.items.values()) == sorted(["Lulu", *(a["name"] for a in animals)])
    # (the rolled-back save pushed nothing anywhere)
    assert all(str(ghost.pk) not in run.scope for run in SynchronizationRun.objects.all())
    # (the push back ran for Lulu only, the object saved here; the sample source takes no writes)
    back = SynchronizationRun.objects.filter(synchronization__reference="back")
    assert [run.scope for run in back] == [[answer.json()["uuid"]]]
