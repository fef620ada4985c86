"""Schedules: each due time acted on once; a start skipped while a run is active is recorded."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from contracts.models import SynchronizationRun
from syncapp import schedules
from syncapp.models import Synchronization
from tests.conftest import zoo_bundle
from tests.helpers import import_zoo

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

DUE = datetime(2026, 11, 25, 10, 30, 5, tzinfo=UTC)


@pytest.fixture
def scheduled(sample_source) -> Synchronization:
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    sync.schedule = "*/15 * * * *"
    sync.save()
    return sync


def test_a_due_time_starts_one_run_however_many_beats_look(scheduled):
    started = schedules.schedules_start_due(now=DUE)
    again = schedules.schedules_start_due(now=DUE + timedelta(seconds=30))
    later = schedules.schedules_start_due(now=DUE + timedelta(minutes=5))

    assert [run.trigger for run in started] == ["schedule"]
    assert again == [] and later == []
    scheduled.refresh_from_db()
    assert scheduled.schedule_checked_at == DUE.replace(second=0)


def test_the_next_due_time_starts_the_next_run(scheduled):
    schedules.schedules_start_due(now=DUE)

    next_one = schedules.schedules_start_due(now=DUE + timedelta(minutes=15))

    assert len(next_one) == 1
    assert SynchronizationRun.objects.filter(trigger="schedule").count() == 2


def test_a_due_time_while_a_run_is_active_is_recorded_as_skipped_and_shown_in_the_admin(scheduled, admin_client):
    # Given a run of the synchronization still under way
    active = SynchronizationRun.objects.create(
        synchronization=scheduled, status="running", heartbeat_at=timezone.now()
    )

    # When its schedule comes due
    started = schedules.schedules_start_due(now=DUE)

    # Then no run starts, and the skip is recorded with its reason ...
    assert started == []
    scheduled.refresh_from_db()
    assert scheduled.schedule_skips == 1
    assert scheduled.schedule_skipped_at == DUE.replace(second=0)
    assert f"already has run {active.pk} running" in scheduled.schedule_skip_reason
    # ... where the admin shows it
    page = admin_client.get(reverse("admin:syncapp_synchronization_change", args=[scheduled.pk]))
    assert f"already has run {active.pk} running" in page.content.decode()

    # And once the run has ended, the next due time starts a run again
    SynchronizationRun.objects.filter(pk=active.pk).update(status="succeeded", finished_at=timezone.now())
    assert len(schedules.schedules_start_due(now=DUE + timedelta(minutes=15))) == 1


def test_a_new_schedule_does_not_start_for_a_time_long_past(scheduled):
    started = schedules.schedules_start_due(now=DUE + timedelta(minutes=10))

    assert started == []
    scheduled.refresh_from_db()
    assert scheduled.schedule_skips == 0


def test_a_due_time_missed_while_no_beat_ran_is_recorded_and_starts_nothing(scheduled):
    schedules.schedules_start_due(now=DUE)
    SynchronizationRun.objects.update(status="succeeded")

    # The beat comes back two hours later, long after the due times in between
    started = schedules.schedules_start_due(now=DUE + timedelta(hours=2, minutes=5))

    assert started == []
    scheduled.refresh_from_db()
    assert scheduled.schedule_skips == 1 and scheduled.schedule_skip_reason.startswith("missed")
    # The next due time starts a run as usual
    assert len(schedules.schedules_start_due(now=DUE + timedelta(hours=2, minutes=15))) == 1


def test_a_schedule_with_a_seconds_field_comes_due_within_the_minute(scheduled, settings):
    settings.SYNC_SCHEDULE_TICK_SECONDS = 1
    scheduled.schedule = "* * * * * */10"
    scheduled.save()
    start = datetime(2026, 11, 25, 10, 30, 0, tzinfo=UTC)

    first = schedules.schedules_start_due(now=start + timedelta(seconds=1))
    SynchronizationRun.objects.update(status="succeeded")
    same = schedules.schedules_start_due(now=start + timedelta(seconds=9))
    second = schedules.schedules_start_due(now=start + timedelta(seconds=10))

    assert (len(first), len(same), len(second)) == (1, 0, 1)


def test_a_disabled_synchronization_is_not_started_by_its_schedule(scheduled):
    scheduled.is_enabled = False
    scheduled.save()

    assert schedules.schedules_start_due(now=DUE) == []
