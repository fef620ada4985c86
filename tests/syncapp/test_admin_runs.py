"""Runs in the admin: started from the synchronization's page without holding the request, watched live,
cancelled from their page."""
from __future__ import annotations

import re
import threading

import pytest
from django.urls import reverse
from django.utils import timezone

from contracts.models import SynchronizationRun
from syncapp.sample_source import generate_animals
from tests.conftest import zoo_bundle
from tests.helpers import import_zoo, runner_take, wait_for_run
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

RECORDS = [{**animal, "id": number, "status": "active"}
           for number, animal in enumerate(generate_animals(count=30, seed=3), start=1)]


def test_run_now_queues_the_run_for_the_runner_and_answers_before_it_ends_also_with_tasks_in_process(admin_client):
    # Given a source that holds its answers until the test lets them go
    gate = threading.Event()

    def handler(request: Request):
        assert gate.wait(60)
        page = int(request.query.get("page", 1))
        return 200, {}, {"results": RECORDS[(page - 1) * 10: page * 10]}

    with LoopbackServer(handler) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"}}
        sync.save()

        # When "Run now" is pressed on the synchronization's page
        answer = admin_client.post(reverse("admin:syncapp_synchronization_run", args=[sync.pk]))

        # Then the page answers at once, on the run's page: the run is queued for the runner, owned by no
        # process, and the source was not asked anything yet
        run = SynchronizationRun.objects.get()
        assert answer.status_code == 302
        assert answer["Location"] == reverse("admin:contracts_synchronizationrun_change", args=[run.pk])
        assert (run.status, run.owner) == ("queued", "")
        gate.set()
        # And the runner (`sync serve`) takes it and runs it to its end
        assert runner_take() == [run.pk]
        run = wait_for_run(run, timeout=60)

    assert (run.status, run.created) == ("succeeded", 30), run.error_message
    progress = admin_client.get(reverse("admin:contracts_synchronizationrun_progress", args=[run.pk])).json()
    assert (progress["status"], progress["done"], progress["found"], progress["active"]) == ("succeeded", 30, 30, False)


def test_a_runs_page_shows_its_progress_its_logs_and_a_cancel_button_while_active(admin_client, sample_source):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    active = SynchronizationRun.objects.create(
        synchronization=sync, status="running", heartbeat_at=timezone.now(), started_at=timezone.now(), found=40,
        created=10, unchanged=5, fetch_finished=True,
    )

    page = admin_client.get(reverse("admin:contracts_synchronizationrun_change", args=[active.pk])).content.decode()
    progress = admin_client.get(reverse("admin:contracts_synchronizationrun_progress", args=[active.pk])).json()

    assert 'id="run-progress" value="15" max="40"' in page
    assert reverse("admin:contracts_synchronizationrun_progress", args=[active.pk]) in page  # it polls
    assert f"?run__id__exact={active.pk}" in page and "Cancel run" in page
    assert (progress["active"], progress["done"], progress["found"]) == (True, 15, 40)

    admin_client.post(reverse("admin:contracts_synchronizationrun_cancel", args=[active.pk]))
    active.refresh_from_db()
    assert active.status == "cancelled"
    assert "Cancel run" not in admin_client.get(
        reverse("admin:contracts_synchronizationrun_change", args=[active.pk])
    ).content.decode()


def test_the_synchronization_page_has_run_now_and_its_last_runs(admin_client, sample_source):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    admin_client.post(reverse("admin:syncapp_synchronization_run", args=[sync.pk]))
    runner_take()
    run = wait_for_run(SynchronizationRun.objects.get(), timeout=60)

    page = admin_client.get(reverse("admin:syncapp_synchronization_change", args=[sync.pk])).content.decode()

    assert reverse("admin:syncapp_synchronization_run", args=[sync.pk]) in page and "Run now" in page
    # Test sync is a button posting the form, not a link a crawler or a prefetch could follow
    test_url = reverse("admin:syncapp_synchronization_test", args=[sync.pk])
    assert f'formaction="{test_url}" formmethod="post"' in page and f'href="{test_url}"' not in page
    assert reverse("admin:contracts_synchronizationrun_change", args=[run.pk]) in page
    assert f"created {run.created}" in page


def test_an_active_run_is_cancelled_from_the_synchronization_page(admin_client, sample_source):
    # Given a synchronization with an active run and an ended one
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    ended = SynchronizationRun.objects.create(synchronization=sync, status="succeeded", finished_at=timezone.now())
    active = SynchronizationRun.objects.create(
        synchronization=sync, status="running", heartbeat_at=timezone.now(), started_at=timezone.now(),
    )
    change = reverse("admin:syncapp_synchronization_change", args=[sync.pk])

    # Then its page offers Cancel for the active run only
    page = admin_client.get(change).content.decode()
    assert reverse("admin:contracts_synchronizationrun_cancel", args=[active.pk]) in page
    assert reverse("admin:contracts_synchronizationrun_cancel", args=[ended.pk]) not in page

    # When it is pressed, the run is cancelled and the synchronization's page shown again
    answer = admin_client.post(
        reverse("admin:contracts_synchronizationrun_cancel", args=[active.pk]), {"_from_synchronization": ""}
    )
    assert (answer.status_code, answer["Location"]) == (302, change)
    active.refresh_from_db()
    assert active.status == "cancelled"


def test_run_now_is_a_post_only(admin_client, sample_source):
    sync = import_zoo(zoo_bundle(location=sample_source.url))

    assert admin_client.get(reverse("admin:syncapp_synchronization_run", args=[sync.pk])).status_code == 403
    assert not SynchronizationRun.objects.exists()


def test_the_lists_show_the_last_run_and_find_objects_and_logs_by_content(admin_client, sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    admin_client.post(reverse("admin:syncapp_synchronization_run", args=[sync.pk]))
    runner_take()
    run = wait_for_run(SynchronizationRun.objects.get(), timeout=60)
    name = next(animal["name"] for animal in animals if animal["status"] == "active")

    syncs = admin_client.get(reverse("admin:syncapp_synchronization_changelist")).content.decode()
    objects = admin_client.get(reverse("admin:syncapp_object_changelist") + f"?q={name}").content.decode()
    logs = admin_client.get(reverse("admin:contracts_contractlog_changelist") + f"?q={name}").content.decode()
    nothing = admin_client.get(reverse("admin:syncapp_object_changelist") + "?q=no-such-animal-anywhere")

    def found(page: str) -> int:
        return int(re.search(r"(\d+) results?", page).group(1))

    assert f"{run.pk} succeeded" in syncs
    assert found(objects) >= 1 and found(logs) >= 1
    assert found(nothing.content.decode()) == 0


def test_a_contract_links_to_its_object_and_its_logs(admin_client, sample_source):
    from contracts.models import SynchronizationContract

    sync = import_zoo(zoo_bundle(location=sample_source.url))
    admin_client.post(reverse("admin:syncapp_synchronization_run", args=[sync.pk]))
    runner_take()
    wait_for_run(SynchronizationRun.objects.get(), timeout=60)
    contract = SynchronizationContract.objects.exclude(target_id=None).first()

    page = admin_client.get(reverse("admin:contracts_synchronizationcontract_change", args=[contract.pk]))
    listing = admin_client.get(reverse("admin:contracts_synchronizationcontract_changelist"))

    html = page.content.decode()
    assert reverse("admin:syncapp_object_change", args=[contract.target_id]) in html
    assert f"?contract__id__exact={contract.pk}" in html
    assert reverse("admin:syncapp_object_change", args=[contract.target_id]) in listing.content.decode()
    logs = admin_client.get(reverse("admin:contracts_contractlog_changelist") + f"?contract__id__exact={contract.pk}")
    assert logs.status_code == 200 and "1 contract log" in logs.content.decode().lower()


def test_contracts_sort_by_origin_id_as_numbers_where_they_are_numbers(admin_client, sample_source):
    from contracts.models import SynchronizationContract

    # Given contracts whose origin ids are numbers, stored as text
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    for origin_id in ["10", "2", "1", "33"]:
        SynchronizationContract.objects.create(synchronization=sync, origin_id=origin_id)

    # When the list is sorted by origin id
    page = admin_client.get(reverse("admin:contracts_synchronizationcontract_changelist") + "?o=1").content.decode()

    # Then 2 comes before 10, as a person reads them
    shown = re.findall(r'class="field-origin">(?:<a [^>]*>)?(\d+)<', page)
    assert shown == ["1", "2", "10", "33"], shown


def test_the_list_of_synchronizations_shows_each_schedule_with_its_next_run_or_that_it_is_disabled(admin_client):
    from syncapp.cron import schedule_next_due
    from syncapp.models import Synchronization

    sync = import_zoo(zoo_bundle(location="http://127.0.0.1:9"))
    Synchronization.objects.filter(pk=sync.pk).update(schedule="0 3 * * *")
    before = timezone.now()
    listing = admin_client.get(reverse("admin:syncapp_synchronization_changelist")).content.decode()
    after = timezone.now()
    Synchronization.objects.filter(pk=sync.pk).update(is_enabled=False)
    disabled = admin_client.get(reverse("admin:syncapp_synchronization_changelist")).content.decode()

    # The next due time as of the request, which the clock may have passed in between: either is right.
    dues = [timezone.localtime(schedule_next_due("0 3 * * *", now=moment)) for moment in (before, after)]
    assert any(re.search(rf"0 3 \* \* \*</span><br><small>next <span[^>]*>{due:%Y-%m-%d}</span> "
                         rf"<span[^>]*>{due:%H:%M:%S %Z}</span></small>", listing) for due in dues), listing
    assert "0 3 * * *</span><br><small>disabled</small>" in disabled
    assert "<small>next" not in disabled


def test_a_stored_time_is_shown_as_the_admin_s_own_pages_write_times(admin_client):
    from datetime import UTC, datetime

    from syncapp.models import Synchronization

    sync = import_zoo(zoo_bundle(location="http://127.0.0.1:9"))
    Synchronization.objects.filter(pk=sync.pk).update(schedule_checked_at=datetime(2026, 12, 6, 21, 49, tzinfo=UTC))

    page = admin_client.get(reverse("admin:syncapp_synchronization_change", args=[sync.pk])).content.decode()

    checked = re.search(r'field-schedule_checked_at.*?<div class="readonly">([^<]*)</div>', page, re.S)
    assert checked and checked.group(1) == "2026-12-06 21:49:00 UTC", checked and checked.group(1)
