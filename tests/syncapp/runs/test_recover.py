"""Runs that never stay stuck: a cancel, a failure or a lost process lets the run waiting behind go on."""
from __future__ import annotations

import io
import socket
import subprocess
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from config.celery import app as celery_app
from contracts import runs
from contracts.models import SynchronizationRun
from syncapp import runs as sync_runs
from tests.conftest import TEST_QUEUE, purge_queue, zoo_bundle
from tests.helpers import active_ids, import_zoo, runner_take


def running(sync, **fields) -> SynchronizationRun:
    """Return a run that looks active, as one whose tasks are under way elsewhere."""
    return SynchronizationRun.objects.create(
        synchronization=sync, status="running", heartbeat_at=timezone.now(), **fields
    )


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
class TestInProcess:
    def test_cancelling_a_run_starts_the_run_queued_behind_it_which_runs_to_its_end(self, sample_source, animals):
        # Given a run under way and a second one queued behind it
        sync = import_zoo(zoo_bundle(location=sample_source.url))
        active = running(sync)
        waiting = sync_runs.run_start(synchronization=sync, queue=True)
        assert (waiting.status, waiting.waiting) == ("queued", True)

        # When the active run is cancelled
        assert sync_runs.run_cancel(run=active) is True

        # Then the queued run starts and runs to its end
        waiting.refresh_from_db()
        assert (waiting.status, waiting.waiting) == ("succeeded", False)
        assert waiting.created == len(active_ids(animals))

    def test_cancelling_through_the_api_starts_the_queued_run(self, sample_source, admin_user):
        sync = import_zoo(zoo_bundle(location=sample_source.url))
        active = running(sync)
        waiting = sync_runs.run_start(synchronization=sync, queue=True)
        client = APIClient()
        client.force_authenticate(admin_user)

        response = client.post(f"/api/runs/{active.pk}/cancel/")
        started = SynchronizationRun.objects.get(pk=waiting.pk)
        runner_take()  # what `sync serve` does with the run the API left to it

        assert response.status_code == 200, response.content
        assert (started.status, started.waiting, started.owner) == ("queued", False, "")
        waiting.refresh_from_db()
        assert waiting.status == "succeeded"

    def test_cancelling_on_the_command_line_starts_the_queued_run(self, sample_source):
        sync = import_zoo(zoo_bundle(location=sample_source.url))
        active = running(sync)
        waiting = sync_runs.run_start(synchronization=sync, queue=True)

        call_command("sync", "cancel", str(active.pk), stdout=io.StringIO())

        waiting.refresh_from_db()
        assert waiting.status == "succeeded"

    def test_a_queued_run_whose_predecessor_was_deleted_starts_at_the_next_start(self, sample_source):
        # Given a run queued behind a run that was then deleted (in the admin, say)
        sync = import_zoo(zoo_bundle(location=sample_source.url))
        active = running(sync)
        waiting = sync_runs.run_start(synchronization=sync, queue=True)
        active.delete()

        # When the synchronization is started again
        later = sync_runs.run_start(synchronization=sync, queue=True)

        # Then the queued run went first, and the new one after it
        waiting.refresh_from_db()
        later.refresh_from_db()
        assert (waiting.status, later.status) == ("succeeded", "succeeded")
        assert waiting.started_at <= later.started_at

    def test_the_recovery_sweep_starts_a_queued_run_whose_predecessor_is_gone(self, sample_source):
        sync = import_zoo(zoo_bundle(location=sample_source.url))
        active = running(sync)
        waiting = sync_runs.run_start(synchronization=sync, queue=True)
        SynchronizationRun.objects.filter(pk=active.pk).update(status="failed", finished_at=timezone.now())

        sync_runs.runs_recover()

        waiting.refresh_from_db()
        assert waiting.status == "succeeded"

    def test_queued_runs_that_cannot_start_fail_with_the_reason_and_none_stays_queued(self, sample_source):
        # Given two runs queued behind an active one, the first refusing to start once its turn comes
        sync = import_zoo(zoo_bundle(location=sample_source.url))
        active = running(sync)
        broken = sync_runs.run_start(synchronization=sync, queue=True)
        fine = sync_runs.run_start(synchronization=sync, queue=True)
        sync.source_config = {**sync.source_config, "endpoint": "/animals?since={{ lastSync | nonsense }}"}
        sync.save()
        SynchronizationRun.objects.filter(pk=broken.pk).update(created_at=timezone.now() - timedelta(seconds=1))

        # When the active run is cancelled
        sync_runs.run_cancel(run=active)

        # Then the first waiting run failed with the reason (the template of the endpoint) ...
        broken.refresh_from_db()
        assert broken.status == "failed"
        assert "could not start after the run before it" in broken.error_message
        assert "nonsense" in broken.error_message
        # ... and so did the next one in line, on the same endpoint: nothing stays queued for good
        fine.refresh_from_db()
        assert fine.status == "failed" and fine.waiting is False

    def test_a_run_whose_process_ended_is_failed_at_the_next_start(self, sample_source, animals):
        # Given a run left running by an in-process run whose process has ended
        sync = import_zoo(zoo_bundle(location=sample_source.url))
        ended = subprocess.Popen(["true"])
        ended.wait()
        lost = running(sync, owner=f"{socket.gethostname()}:{ended.pid}:12345")

        # When the synchronization is started again
        fresh = sync_runs.run_start(synchronization=sync)

        # Then the lost run is failed at once (not after SYNC_RUN_STALE_SECONDS), and the new run goes on
        lost.refresh_from_db()
        fresh.refresh_from_db()
        assert lost.status == "failed"
        assert f"the process running it (pid {ended.pid}) ended" in lost.error_message
        assert (fresh.status, fresh.created) == ("succeeded", len(active_ids(animals)))

    def test_a_run_of_a_living_process_or_of_another_host_is_not_failed(self, sample_source):
        sync = import_zoo(zoo_bundle(location=sample_source.url))
        ours = running(sync, owner=runs.process_identity())
        elsewhere = running(sync, owner="another-host:1:1")

        assert runs.runs_fail_stale() == []
        ours.refresh_from_db()
        elsewhere.refresh_from_db()
        assert (ours.status, elsewhere.status) == ("running", "running")

    def test_an_in_process_run_records_the_process_running_it(self, sample_source):
        sync = import_zoo(zoo_bundle(location=sample_source.url))

        run = sync_runs.run_start(synchronization=sync)

        run.refresh_from_db()
        assert run.owner == runs.process_identity()
        assert run.owner.split(":")[1].isdigit()


@pytest.fixture
def unread_queue(transactional_db, settings):
    """Send tasks to a queue no worker reads, as when no worker runs at all."""
    if settings.TASKS_IN_PROCESS:
        pytest.fail("this test needs a broker: run the suite with scripts/test.sh")
    queue = f"{TEST_QUEUE}-unread"
    purge_queue(queue)
    celery_app.conf.task_default_queue = queue
    try:
        yield queue
    finally:
        purge_queue(queue)
        celery_app.conf.task_default_queue = TEST_QUEUE


def test_sync_run_wait_says_when_a_run_makes_no_progress_and_fails_it_once_stale(unread_queue, settings,
                                                                                 sample_source):
    # Given a broker that nobody takes the run's tasks from
    settings.SYNC_RUN_RESEND_SECONDS = 0.5
    settings.SYNC_RUN_STALE_SECONDS = 2
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    err = io.StringIO()

    # When `sync run --wait` waits for a run
    with pytest.raises(SystemExit) as exited:
        call_command("sync", "run", sync.reference, "--wait", "--timeout", "120", stdout=io.StringIO(), stderr=err)

    # Then it said the run made no progress, and ended it failed instead of waiting out its timeout
    assert exited.value.code == 1
    assert "has made no progress for" in err.getvalue()
    assert f"on queue {unread_queue!r}" in err.getvalue()
    run = SynchronizationRun.objects.get(synchronization=sync)
    assert run.status == "failed" and "no progress for 2s" in run.error_message
    assert sample_source.requests == []
