"""A Retry-After beyond SYNC_MAX_RETRY_AFTER_SECONDS defers the page or object: no worker sleeps on it, the
run records when it is due, and the resend sweep (or the next start) sends it again once due."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from contracts import runs as contract_runs
from contracts.api import RunSerializer
from contracts.models import RunChunk, RunPage, SynchronizationRun
from syncapp import runs as sync_runs
from tests.helpers import deferred_work_make_due, no_sleep_longer_than, run
from tests.syncapp.targets.test_api import TargetApi, outgoing
from tests.syncapp.test_http import RECORDS, assert_every_record_synced_once, faulty_source, faulty_sync
from workers import tasks

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

COME_BACK_LATER = (429, {"Retry-After": "3000"}, {"error": "come back in 50 minutes"})


@pytest.fixture
def short_bound(settings):
    """Waits over two seconds are never slept on."""
    settings.SYNC_MAX_RETRY_AFTER_SECONDS = 2


@pytest.mark.usefixtures("short_bound")
def test_a_page_asked_to_wait_3000_s_is_deferred_not_slept_on_and_the_run_finishes_once_it_is_due():
    with faulty_source({2: [COME_BACK_LATER]}) as server:
        sync = faulty_sync(server)

        # When the source asks page 2 to come back in 3,000 s
        with no_sleep_longer_than(5):
            waiting = run(sync)

        # Then no one slept on it: the run is active and records when the page is due
        assert waiting.status in SynchronizationRun.ACTIVE_STATUSES, waiting.error_message
        assert waiting.deferred_until > timezone.now() + timedelta(seconds=2900)
        # (the pages fetched ahead of it wait too: the source said nothing is left until then)
        deferred = RunPage.objects.filter(run=waiting, status=RunPage.Status.QUEUED, not_before__isnull=False)
        assert 2 in {page.number for page in deferred}
        assert waiting.deferred_until == min(page.not_before for page in deferred)
        assert contract_runs.run_summary(waiting)["deferredUntil"] is not None
        assert RunSerializer(waiting).data["deferredUntil"] is not None
        assert "waiting for a Retry-After until" in contract_runs.run_progress(waiting)["text"]
        # and it is neither lost nor sent again before it is due
        assert contract_runs.runs_fail_stale(stale_after=0) == []
        assert sync_runs.runs_resend_stalled(resend_after=0) == []
        assert len(server.of("/a", page="2")) == 1

        # When it comes due, the beat's resend sweep sends it again
        deferred_work_make_due(waiting)
        tasks.resend_stalled_runs()

    waiting.refresh_from_db()
    assert_every_record_synced_once(sync, waiting)
    assert waiting.deferred_until is None
    assert len(server.of("/a", page="2")) == 2


@pytest.mark.usefixtures("short_bound")
def test_a_deferred_page_that_came_due_is_sent_by_the_next_start_of_its_synchronization():
    with faulty_source({1: [COME_BACK_LATER]}) as server:
        sync = faulty_sync(server)
        with no_sleep_longer_than(5):
            waiting = run(sync)
        assert waiting.deferred_until is not None

        # Given no beat (the embedded mode): the next start sends what came due, then starts its own run
        deferred_work_make_due(waiting)
        following = sync_runs.run_start(synchronization=sync)

    waiting.refresh_from_db()
    assert_every_record_synced_once(sync, waiting)
    assert following.pk != waiting.pk


@pytest.mark.usefixtures("short_bound")
def test_in_the_embedded_mode_a_timer_of_the_process_sends_the_deferred_page_when_it_is_due(monkeypatch):
    timers: list[FakeTimer] = []

    class FakeTimer:
        """Keeps the timer the process starts, to fire it by hand."""

        def __init__(self, interval: float, function) -> None:
            self.interval, self.function, self.daemon = interval, function, False
            timers.append(self)

        def start(self) -> None:
            assert self.daemon

    monkeypatch.setattr("workers.dispatch.Timer", FakeTimer)
    with faulty_source({2: [COME_BACK_LATER]}) as server:
        sync = faulty_sync(server)
        with no_sleep_longer_than(5):
            waiting = run(sync)

        # Then a timer is set for when the page is due
        assert timers and 2900 < min(timer.interval for timer in timers) <= 3000

        # When it fires once the wait is over (a thread of its own, as the timer's would be)
        deferred_work_make_due(waiting)
        fired = threading.Thread(target=timers[0].function)
        fired.start()
        fired.join()

    waiting.refresh_from_db()
    assert_every_record_synced_once(sync, waiting)


def test_a_wait_beyond_the_longest_allowed_fails_the_page_with_the_reason(settings):
    settings.SYNC_MAX_RETRY_AFTER_SECONDS = 2
    settings.SYNC_MAX_RATE_LIMIT_WAIT = 60
    with faulty_source({1: [COME_BACK_LATER]}) as server:
        sync = faulty_sync(server)
        with no_sleep_longer_than(5):
            failed = run(sync)

    assert failed.status == "failed" and failed.deferred_until is None
    assert "3000 s, more than SYNC_MAX_RATE_LIMIT_WAIT" in failed.error_message
    assert RunPage.objects.get(run=failed, number=1).status == RunPage.Status.FAILED


@pytest.mark.usefixtures("short_bound")
def test_an_object_the_target_asks_to_wait_3000_s_is_deferred_and_written_once_it_is_due():
    calls = {"POST": 0}

    class SlowDownOnce(TargetApi):
        def handle(self, method, path, body, headers):
            if method == "POST" and calls["POST"] == 0:
                calls["POST"] += 1
                with self.lock:
                    self.calls.append((method, path, body, headers))
                return 429, {"error": "come back in 50 minutes"}, {"Retry-After": "3000"}
            return super().handle(method, path, body, headers)

    with faulty_source({}) as source, SlowDownOnce() as target:
        source_url = source.url
        sync = outgoing(source_url, target)
        sync.source_config = {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"}}
        sync.save()

        with no_sleep_longer_than(5):
            waiting = run(sync)

        assert waiting.status in SynchronizationRun.ACTIVE_STATUSES, waiting.error_message
        assert waiting.deferred_until > timezone.now() + timedelta(seconds=2900)
        # (the objects after it wait too: the target said nothing is left until then)
        deferred = RunChunk.objects.filter(run=waiting, status=RunChunk.Status.QUEUED)
        assert deferred and all(chunk.not_before is not None for chunk in deferred)
        assert waiting.deferred_until == min(chunk.not_before for chunk in deferred)
        assert len(target.items) < len(RECORDS)
        assert sync_runs.runs_send_came_due() == []

        deferred_work_make_due(waiting)
        assert sync_runs.runs_send_came_due() == [waiting.pk]

    waiting.refresh_from_db()
    assert (waiting.status, waiting.created, waiting.failed) == ("succeeded", len(RECORDS), 0), waiting.error_message
    assert len(target.items) == len(RECORDS)
