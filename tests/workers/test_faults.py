"""Faults on the real stack (SYNC.md sections 9 and 10): a source that rate-limits, fails and stalls, a
request budget kept by two workers together, a broker that restarts and database connections that are
killed during a run. Every run ends with every record synced exactly once."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.celery import app as celery_app
from contracts.models import ContractLog, SynchronizationContract, SynchronizationRun
from syncapp import runs as sync_runs
from syncapp.models import Object, Synchronization
from syncapp.runs import pages
from tests.conftest import TEST_QUEUE, WorkerProcess, purge_queue, zoo_bundle
from tests.helpers import deferred_work_make_due, import_zoo, records, wait_for_run
from tests.loopback import DROP, LoopbackServer, Request, Slow, gaps
from tests.test_settings import last_line, load_settings
from workers import tasks

pytestmark = pytest.mark.worker

FAULTS_QUEUE = f"{TEST_QUEUE}-faults"
# Waits up to a second happen inside the task, longer ones re-schedule it, and those beyond five seconds
# defer the page (no task waits for them); backoff is brief.
FAULT_WORKER_ENV = {
    "SYNC_MAX_INLINE_WAIT": "1", "SYNC_MAX_RETRY_AFTER_SECONDS": "5", "SYNC_HTTP_BACKOFF_SECONDS": "0.2",
}
READ_TIMEOUT = 0.5


def pages_of(items: list[dict], *, size: int, delay: float = 0.0):
    """Return a reply function serving `items` by page number, `size` a page, each after `delay` seconds."""
    def reply(arrival: Request):
        time.sleep(delay)
        page = int(arrival.query.get("page", 1))
        return 200, {}, {"results": items[(page - 1) * size: page * size]}

    return reply


def paged_sync(
    server: LoopbackServer, *, reference: str = "animals", concurrency: int = 4, chunk_size: int | None = None,
    **configuration,
) -> Synchronization:
    """Import the zoo bundle reading `server` by page number, with extra source configuration."""
    bundle = zoo_bundle(location=server.url)
    bundle["sources"][0]["configuration"].update(timeout=READ_TIMEOUT, **configuration)
    sync = import_zoo(bundle)
    sync.source_config = {
        "endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"}, "concurrency": concurrency,
        **({"chunkSize": chunk_size} if chunk_size else {}),
    }
    sync.save()
    return sync


def assert_synced_exactly_once(run: SynchronizationRun, *, count: int) -> None:
    assert run.status == "succeeded", run.error_message
    assert (run.found, run.created, run.updated, run.failed) == (count, count, 0, 0)
    contracts = SynchronizationContract.objects.filter(synchronization_id=run.synchronization_id)
    assert contracts.count() == count and contracts.filter(target_id__isnull=True).count() == 0
    assert len(set(contracts.values_list("target_id", flat=True))) == count
    assert Object.objects.filter(
        pk__in=list(contracts.values_list("target_id", flat=True))
    ).count() == count
    assert ContractLog.objects.filter(run=run, action="create").count() == count


@pytest.fixture(scope="module")
def fault_worker(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[WorkerProcess]:
    """A worker of this module's own, on its own queue, with the short inline wait of FAULT_WORKER_ENV."""
    if settings.TASKS_IN_PROCESS:
        pytest.fail("worker tests need a broker: run the suite with scripts/test.sh (it sets CELERY_BROKER_URL)")
    purge_queue(FAULTS_QUEUE)
    worker = WorkerProcess(
        queue=FAULTS_QUEUE, log_path=tmp_path_factory.mktemp("faults") / "worker.log", env=FAULT_WORKER_ENV
    )
    yield worker
    worker.stop()


@pytest.fixture
def on_fault_queue(fault_worker, transactional_db) -> Iterator[WorkerProcess]:
    """Send this test's tasks to the fault worker; the test's data is committed so the worker sees it."""
    celery_app.conf.task_default_queue = FAULTS_QUEUE
    try:
        yield fault_worker
    finally:
        celery_app.conf.task_default_queue = TEST_QUEUE


# ---------------------------------------------------------------------------------------------
# The source rate-limits, fails and stalls


def test_a_run_on_a_worker_through_every_kind_of_fault_syncs_every_record_exactly_once(on_fault_queue):
    items = records(30, seed=5)
    faults = {
        1: [(429, {"Retry-After": "1"}, {"error": "slow down"})],
        2: [(429, {"x-ratelimit-reset": "1"}, {})],
        3: [(503, {}, "busy"), (503, {}, "busy")],
        4: [Slow(READ_TIMEOUT * 2)],
        5: [DROP],
    }
    answer = pages_of(items, size=5)

    def script(arrival: Request):
        replies = faults.get(int(arrival.query.get("page", 1)), [])
        return replies[arrival.attempt - 1] if arrival.attempt <= len(replies) else answer(arrival)

    with LoopbackServer(script, late=answer) as server:
        sync = paged_sync(server)

        run = wait_for_run(sync_runs.run_start(synchronization=sync), timeout=60)

    assert_synced_exactly_once(run, count=30)
    for page in (1, 2):
        [gap] = gaps(server.of("/a", page=str(page)))
        assert 0.95 <= gap < 10, f"page {page} was asked again after {gap:.2f} s"
    assert [len(server.of("/a", page=str(page))) for page in range(1, 8)] == [2, 2, 3, 2, 2, 1, 1]
    assert run.retries == 6 and run.waited_seconds >= 2


def test_a_wait_longer_than_the_inline_bound_retries_the_page_task_later(on_fault_queue):
    items = records(10, seed=5)
    answer = pages_of(items, size=5)

    def script(arrival: Request):
        if arrival.query.get("page") == "2" and arrival.attempt == 1:
            return 429, {"Retry-After": "3"}, {"error": "come back in three seconds"}
        return answer(arrival)

    with LoopbackServer(script) as server:
        # One page at a time: with pages fetched ahead, each of them would wait for the limit too.
        sync = paged_sync(server, concurrency=1)

        run = wait_for_run(sync_runs.run_start(synchronization=sync), timeout=60)

    assert_synced_exactly_once(run, count=10)
    [gap] = gaps(server.of("/a", page="2"))
    assert 3.0 <= gap < 15
    assert (run.retries, run.waited_seconds) == (1, 3)
    assert "workers.tasks.sync_page retried in 3 s" in on_fault_queue.log()


def test_a_wait_beyond_the_retry_after_bound_frees_the_worker_and_the_sweep_sends_the_page_once_due(
    on_fault_queue,
):
    items = records(10, seed=5)
    answer = pages_of(items, size=5)

    def script(arrival: Request):
        if arrival.query.get("page") == "2" and arrival.attempt == 1:
            return 429, {"Retry-After": "3000"}, {"error": "come back in 50 minutes"}
        return answer(arrival)

    with LoopbackServer(script) as server:
        sync = paged_sync(server, concurrency=1)
        run = sync_runs.run_start(synchronization=sync)

        # When the source asks page 2 to come back in 3,000 s, the task ends and the run records the wait
        waiting = wait_for_deferral(run)
        assert waiting.deferred_until > timezone.now() + timedelta(seconds=2900)
        assert f"run {run.pk} page 2 deferred until" in on_fault_queue.log()
        assert f"run {run.pk}: GET" not in on_fault_queue.log()  # no task retried with a countdown

        # Then, once due, beat's resend sweep hands the page to the worker again
        deferred_work_make_due(waiting)
        tasks.resend_stalled_runs()
        run = wait_for_run(run, timeout=60)

    assert_synced_exactly_once(run, count=10)
    assert len(server.of("/a", page="2")) == 2 and run.deferred_until is None


def wait_for_deferral(run: SynchronizationRun, *, timeout: float = 60) -> SynchronizationRun:
    """Poll the database until the run records deferred work; fail loudly when it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.deferred_until is not None or run.status not in SynchronizationRun.ACTIVE_STATUSES:
            assert run.deferred_until is not None, f"run {run.pk} ended {run.status}: {run.error_message}"
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run.pk} recorded no deferred work after {timeout}s")


# ---------------------------------------------------------------------------------------------
# A request budget kept by all workers together


def test_two_workers_keep_a_source_budget_together(on_fault_queue, tmp_path):
    budget = 4
    items = records(20, seed=5)
    second = WorkerProcess(queue=FAULTS_QUEUE, log_path=tmp_path / "second.log", env=FAULT_WORKER_ENV)
    try:
        with LoopbackServer(pages_of(items, size=5)) as server:
            original = paged_sync(server, rateLimit={"requests": budget, "per": "second"})
            # Three synchronizations of the one source run at once, so requests come in parallel.
            for number in (2, 3):
                copy = Synchronization.objects.get(pk=original.pk)
                copy.pk, copy.reference = None, f"animals-{number}"
                copy._state.adding = True
                copy.save()
            syncs = list(Synchronization.objects.order_by("pk"))
            started = [sync_runs.run_start(synchronization=sync) for sync in syncs]

            ended = [wait_for_run(run, timeout=60) for run in started]
    finally:
        second.stop()

    for run in ended:
        assert_synced_exactly_once(run, count=20)
    per_second = server.per_second()
    # Four pages of records and an empty one each, and the pages fetched ahead past the end.
    assert sum(per_second.values()) >= 3 * 5
    assert max(per_second.values()) <= budget, dict(sorted(per_second.items()))


# ---------------------------------------------------------------------------------------------
# Killed database connections


def test_database_connections_killed_during_a_run_lose_and_duplicate_nothing(on_fault_queue):
    items = records(200, seed=5)
    # Pages after the fifth wait for the gate: the first kills come while the run is surely unfinished.
    gate = threading.Event()
    serve = pages_of(items, size=20, delay=0.1)

    def reply(arrival: Request):
        if int(arrival.query.get("page", 1)) > 5:
            assert gate.wait(120)
        return serve(arrival)

    def kill_connections() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                [connection.settings_dict["NAME"]],
            )
            return cursor.fetchone()[0]

    try:
        with LoopbackServer(reply) as server:
            sync = paged_sync(server)
            run = sync_runs.run_start(synchronization=sync)

            deadline = time.monotonic() + 60
            while Object.objects.count() < 20:
                assert time.monotonic() < deadline, f"the run did not start:\n{on_fault_queue.log()}"
                time.sleep(0.05)
            killed = kill_connections()
            written_at_kills = Object.objects.count()
            # Then kill them again while the rest of the run writes (wherever the workers then are).
            gate.set()
            for _ in range(3):
                time.sleep(0.3)
                killed += kill_connections()

            run = wait_for_run(run, timeout=120)
    finally:
        gate.set()

    assert killed >= 1 and written_at_kills < 200
    assert_synced_exactly_once(run, count=200)


# ---------------------------------------------------------------------------------------------
# A broker that restarts without its data


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A Redis server of the test's own on a spare port, keeping nothing on disk: a restart loses all."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@contextlib.contextmanager
def broker(url: str) -> Iterator[None]:
    """Point this process's Celery app at another broker, and back afterwards.

    Celery reads CELERY_BROKER_URL from the environment before its configuration, so that is what is
    changed; the app's pools are dropped so that its next message opens a connection to the new broker
    (kombu keeps the old pool, open, for when the old URL comes back).
    """
    previous = os.environ.get("CELERY_BROKER_URL")

    def switch(to: str | None) -> None:
        if to is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = to
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    switch(url)
    try:
        with celery_app.connection_for_write() as connection_:
            assert connection_.port == int(url.rsplit(":", 1)[1].split("/")[0])
        yield
    finally:
        switch(previous)


def test_a_broker_restart_during_a_run_loses_and_duplicates_nothing(transactional_db, tmp_path):
    if settings.TASKS_IN_PROCESS:
        pytest.fail("worker tests need a broker: run the suite with scripts/test.sh (it sets CELERY_BROKER_URL)")
    items = records(240, seed=5)
    queue = f"{TEST_QUEUE}-broker"
    server_redis = RedisServer()
    server_redis.start()
    lost = 0
    try:
        with broker(server_redis.url), LoopbackServer(pages_of(items, size=40, delay=0.2)) as server:
            celery_app.conf.task_default_queue = queue
            worker = WorkerProcess(
                queue=queue, log_path=tmp_path / "worker.log", env={"CELERY_BROKER_URL": server_redis.url}
            )
            try:
                # Small chunks: one task reads the pages, so it is the object tasks that queue up.
                sync = paged_sync(server, chunk_size=5)
                run = sync_runs.run_start(synchronization=sync)
                # Restart the broker while object tasks wait in it: they are lost with it.
                client = redis.Redis.from_url(server_redis.url)
                deadline = time.monotonic() + 60
                while Object.objects.count() < 40 or (lost := client.llen(queue)) < 5:
                    assert time.monotonic() < deadline, f"the run did not start:\n{worker.log()}"
                    time.sleep(0.002)
                server_redis.stop()
                written_at_restart = Object.objects.count()
                time.sleep(1)
                server_redis.start()

                # The resend sweep, as beat runs it every minute, with a short interval for the test.
                deadline = time.monotonic() + 90
                while run.status in SynchronizationRun.ACTIVE_STATUSES:
                    assert time.monotonic() < deadline, f"the run did not end:\n{worker.log()}"
                    if worker.process.poll() is not None:
                        # Celery's worker sometimes dies of the lost connection itself ("Unrecoverable
                        # error: AttributeError ... 'hostname'" while restoring its unacknowledged
                        # messages): restarted, as its supervisor would. Nothing may be lost or doubled.
                        worker = WorkerProcess(queue=queue, log_path=tmp_path / f"worker-{time.monotonic_ns()}.log",
                                               env={"CELERY_BROKER_URL": server_redis.url})
                    sync_runs.runs_resend_stalled(resend_after=3)
                    time.sleep(0.5)
                    run.refresh_from_db()
            finally:
                worker.stop()
                celery_app.conf.task_default_queue = TEST_QUEUE
    finally:
        server_redis.stop()

    # What the restart lost is sent again by the sweep, or by a page task retried after the broker error
    # (a task that ran before sends its open work again): whichever comes first, nothing lost or doubled.
    assert lost >= 5 and written_at_restart < 240
    assert_synced_exactly_once(run, count=240)


# ---------------------------------------------------------------------------------------------
# Lost messages and the resend sweep, without a worker


def test_a_run_whose_messages_were_lost_is_completed_by_the_resend_sweep(transactional_db, settings):
    items = records(15, seed=5)
    queue = f"{TEST_QUEUE}-lost"
    purge_queue(queue)
    celery_app.conf.task_default_queue = queue
    try:
        with LoopbackServer(pages_of(items, size=5)) as server:
            sync = paged_sync(server)
            run = sync_runs.run_start(synchronization=sync)
            # A worker processes the first page, then the broker loses every message it held: the second
            # page's and the first page's object tasks.
            pages.page_process(run_id=run.pk, page_number=1)
            purge_queue(queue)
            SynchronizationRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=10))
            settings.TASKS_IN_PROCESS = True  # what the sweep sends is run here

            resent = sync_runs.runs_resend_stalled(resend_after=5)
    finally:
        celery_app.conf.task_default_queue = TEST_QUEUE

    run.refresh_from_db()
    assert resent == [run.pk]
    assert_synced_exactly_once(run, count=15)
    assert sync_runs.runs_resend_stalled(resend_after=5) == []


def test_a_page_task_redelivered_after_its_commit_sends_its_chunks_again_and_they_write_once(
    transactional_db, settings,
):
    items = records(10, seed=5)
    queue = f"{TEST_QUEUE}-lost"
    purge_queue(queue)
    celery_app.conf.task_default_queue = queue
    try:
        with LoopbackServer(pages_of(items, size=10)) as server:
            sync = paged_sync(server)
            run = sync_runs.run_start(synchronization=sync)
            # Given a worker that committed the first page and died before its messages left
            pages.page_process(run_id=run.pk, page_number=1)
            purge_queue(queue)
            assert Object.objects.count() == 0
            settings.TASKS_IN_PROCESS = True

            # When the broker hands the page's task out again, twice
            pages.page_process(run_id=run.pk, page_number=1, again=True)
            pages.page_process(run_id=run.pk, page_number=1, again=True)
    finally:
        purge_queue(queue)
        celery_app.conf.task_default_queue = TEST_QUEUE

    # Then its chunk is sent again and every object is written exactly once
    run.refresh_from_db()
    assert_synced_exactly_once(run, count=10)


def test_a_run_that_moves_is_not_resent(transactional_db, settings):
    settings.TASKS_IN_PROCESS = True
    items = records(5, seed=5)
    with LoopbackServer(pages_of(items, size=5)) as server:
        sync = paged_sync(server)
        run = sync_runs.run_start(synchronization=sync)
    SynchronizationRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=timezone.now())

    assert sync_runs.runs_resend_stalled(resend_after=5) == []
    assert SynchronizationRun.objects.get(pk=run.pk).resent_at is None


# ---------------------------------------------------------------------------------------------
# Celery settings


def test_celery_settings_make_tasks_late_acknowledged_one_at_a_time_and_within_the_visibility_timeout():
    conf = celery_app.conf
    visibility = conf.broker_transport_options["visibility_timeout"]
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost, conf.worker_prefetch_multiplier) == (True, True, 1)
    assert conf.task_soft_time_limit < conf.task_time_limit < visibility
    # A task re-scheduled for a rate limit waits in its worker, unacknowledged: it must run and end in time.
    assert settings.SYNC_TASK_COUNTDOWN_MAX + conf.task_time_limit < visibility
    assert settings.SYNC_TASK_COUNTDOWN_MAX < settings.SYNC_RUN_RESEND_SECONDS < settings.SYNC_RUN_STALE_SECONDS
    assert conf.task_soft_time_limit > settings.SYNC_MAX_INLINE_WAIT
    assert conf.task_publish_retry_policy["max_retries"] >= 5
    for task in (tasks.sync_page, tasks.sync_chunk, tasks.sync_follow_ups, tasks.resend_stalled_runs):
        assert task.acks_late


@pytest.mark.parametrize(
    ("env", "variable"),
    [({"SYNC_RUN_RESEND_SECONDS": "900"}, "SYNC_RUN_RESEND_SECONDS"),
     ({"SYNC_HTTP_MAX_ATTEMPTS": "0"}, "SYNC_HTTP_MAX_ATTEMPTS"),
     ({"SYNC_REDIS_URL": "memcached://cache:11211"}, "SYNC_REDIS_URL"),
     ({"SYNC_MAX_RETRY_AFTER_SECONDS": "0"}, "SYNC_MAX_RETRY_AFTER_SECONDS")],
    ids=["resend not below stale", "no attempts", "not redis", "no retry-after bound"],
)
def test_a_bad_fault_setting_stops_the_settings_naming_the_variable(tmp_path, env, variable):
    result = load_settings(tmp_path, **env)

    assert result.returncode != 0
    assert variable in last_line(result.stderr)
