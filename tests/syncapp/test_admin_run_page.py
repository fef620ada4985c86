"""A run's page made for people, a synchronization's last runs at a glance, and objects listed by content."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from contracts.models import ContractLog, RunPage, SynchronizationRun
from syncapp.summaries import object_summary
from tests.conftest import zoo_bundle
from tests.factories import make_object, make_run, make_schema, make_synchronization
from tests.helpers import import_zoo, runner_take, wait_for_run


def run_page(client, run: SynchronizationRun, query: str = "") -> str:
    return client.get(reverse("admin:contracts_synchronizationrun_change", args=[run.pk]) + query).content.decode()


def ended_run(**fields) -> SynchronizationRun:
    started = timezone.now() - timedelta(seconds=95)
    return make_run(**{"started_at": started, "finished_at": started + timedelta(seconds=95), **fields})


@pytest.mark.django_db
def test_the_page_of_a_run_of_600_pages_stays_small_and_shows_its_pages_a_screen_at_a_time(admin_client):
    # Given a run that read 600 pages, one of them failed
    run = ended_run(status="partial", found=60_000, created=59_900, failed=100, pages_fetched=600)
    RunPage.objects.bulk_create([
        RunPage(run=run, number=number, status="failed" if number == 555 else "done", object_count=100,
                request={"query": {"page": number}}, finished_at=timezone.now(),
                error_message="HTTP 502 from the source" if number == 555 else "")
        for number in range(1, 601)
    ])

    # When its page is shown, and its pages' last screen
    first = run_page(admin_client, run)
    last = run_page(admin_client, run, "?pages=12")

    # Then the page is under 100 KB, its pages collapsed, 50 of them a screen
    assert len(first.encode()) < 100_000, len(first.encode())
    assert '<details class="run-pages" id="run-pages">' in first  # collapsed: not "open"
    assert first.count('<tr class="run-page-') == 50
    assert "pages 1–50 of 600" in first and "?pages=2#run-pages" in first
    assert '<details class="run-pages" id="run-pages" open>' in last
    assert "pages 551–600 of 600" in last and "HTTP 502 from the source" in last
    assert "1 page failed" in first


@pytest.mark.django_db
def test_the_summary_shows_the_counts_the_duration_and_the_first_failing_objects(admin_client):
    # Given an ended run that failed to write two objects
    run = ended_run(status="partial", found=9, filtered=0, created=5, unchanged=2, failed=1, invalid=1)
    for origin_id, status, error in (("17", "failed", "HTTP 500 from the CRM: database locked"),
                                     ("23", "invalid", "legs: -1 is less than the minimum of 0")):
        ContractLog.objects.create(run=run, synchronization=run.synchronization, origin_id=origin_id,
                                   status=status, error=error)

    # When its page is shown
    page = run_page(admin_client, run)

    # Then the summary comes first, with its figures, before the raw fields (collapsed)
    assert page.index('id="run-summary"') < page.index("All fields")
    assert re.search(r'data-count="created" class="run-count-created">5<', page)
    assert re.search(r'data-live="done">9<', page)
    assert "1 min 35 s" in page and "objects/s" in page
    assert "First failing objects" in page
    assert "HTTP 500 from the CRM: database locked" in page and "legs: -1 is less than the minimum of 0" in page
    assert page.index("First failing objects") < page.index("All fields")
    # and a known total: a bar with its value
    assert 'id="run-progress" value="9" max="9"' in page


@pytest.mark.django_db
def test_an_active_run_whose_total_is_unknown_shows_an_indeterminate_bar_and_polls_its_figures(admin_client):
    run = make_run(status="running", started_at=timezone.now(), found=40, filtered=0, created=10, pages_fetched=4,
                   fetch_finished=False)

    page = run_page(admin_client, run)
    live = admin_client.get(reverse("admin:contracts_synchronizationrun_progress", args=[run.pk])).json()

    assert '<progress id="run-progress"></progress>' in page
    assert "syncapp/run-page.js" in page
    assert reverse("admin:contracts_synchronizationrun_progress", args=[run.pk]) in page
    assert live["totalKnown"] is False
    assert (live["found"], live["done"], live["fields"]["pages_fetched"], live["counts"]["created"]) == (40, 10, 4, 10)


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_retry_failed_objects_starts_a_run_scoped_to_the_objects_that_failed(admin_client, sample_source):
    # Given a run of the zoo, two of whose objects were not written
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    admin_client.post(reverse("admin:syncapp_synchronization_run", args=[sync.pk]))
    runner_take()  # what `sync serve` does with the run the admin queued
    first = wait_for_run(SynchronizationRun.objects.get(), timeout=60)
    for origin_id, status in (("3", "failed"), ("5", "invalid"), ("7", "synced")):
        ContractLog.objects.create(run=first, synchronization=sync, origin_id=origin_id, status=status,
                                   error="" if status == "synced" else "HTTP 503")
    page = run_page(admin_client, first)
    retry = reverse("admin:syncapp_synchronization_retry_failed", args=[sync.pk, first.pk])
    assert f'formaction="{retry}" formmethod="post"' in page and "Run again" in page

    # When "Retry failed objects" is pressed
    answer = admin_client.post(retry)

    # Then a run of just those objects starts, and its page is shown
    retried = SynchronizationRun.objects.exclude(pk=first.pk).get()
    assert answer.status_code == 302
    assert answer["Location"] == reverse("admin:contracts_synchronizationrun_change", args=[retried.pk])
    assert retried.scope == ["3", "5"]
    runner_take()
    retried = wait_for_run(retried, timeout=60)
    assert retried.status in ("succeeded", "partial"), retried.error_message
    assert retried.found == 2  # read whole, the source's other objects left aside
    assert {log.origin_id for log in ContractLog.objects.filter(run=retried)} <= {"3", "5"}
    assert admin_client.get(retry).status_code == 403  # a link cannot start a run


@pytest.mark.django_db
def test_an_active_run_cannot_be_deleted_and_the_deletion_of_an_ended_one_is_kept_in_its_synchronizations_history(
    admin_client,
):
    # Given an active run and an ended one
    sync = make_synchronization()
    active = make_run(synchronization=sync, status="running", started_at=timezone.now())
    ended = ended_run(synchronization=sync, status="succeeded")
    RunPage.objects.create(run=ended, number=1, status="done")

    # An active run offers no Delete, and is not deleted by its page nor by the list's action
    assert "deletelink" not in run_page(admin_client, active)
    assert admin_client.post(reverse("admin:contracts_synchronizationrun_delete", args=[active.pk]),
                             {"post": "yes"}).status_code == 403
    admin_client.post(reverse("admin:contracts_synchronizationrun_changelist"),
                      {"action": "delete_selected", "_selected_action": [active.pk], "post": "yes"})
    assert SynchronizationRun.objects.filter(pk=active.pk).exists()

    # An ended one is deleted (the confirmation counts its pages rather than listing them), and its
    # synchronization's history says so
    assert "deletelink" in run_page(admin_client, ended)
    RunPage.objects.bulk_create([RunPage(run=ended, number=number, status="done") for number in range(2, 301)])
    confirmation = admin_client.get(reverse("admin:contracts_synchronizationrun_delete", args=[ended.pk]))
    assert "Run pages: 300" in confirmation.content.decode() and "page 2 of run" not in confirmation.content.decode()
    admin_client.post(reverse("admin:contracts_synchronizationrun_delete", args=[ended.pk]), {"post": "yes"})
    assert not SynchronizationRun.objects.filter(pk=ended.pk).exists()
    history = admin_client.get(reverse("admin:syncapp_synchronization_history", args=[sync.pk])).content.decode()
    assert f"Deleted run {ended.pk} (succeeded, manual" in history and "300 pages" in history
    assert LogEntry.objects.filter(object_id=str(ended.pk), action_flag=3).exists()


@pytest.mark.django_db
def test_cancel_asks_for_confirmation_first(admin_client):
    run = make_run(status="running", started_at=timezone.now())
    cancel = reverse("admin:contracts_synchronizationrun_cancel", args=[run.pk])

    # The run's page links to a page that asks; asking cancels nothing
    assert f'href="{cancel}"' in run_page(admin_client, run)
    question = admin_client.get(cancel).content.decode()
    run.refresh_from_db()
    assert run.status == "running"
    assert f"Cancel run {run.pk} of" in question and 'value="Yes, cancel the run"' in question

    # Confirmed, it is cancelled
    answer = admin_client.post(cancel)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert answer["Location"] == reverse("admin:contracts_synchronizationrun_change", args=[run.pk])


@pytest.mark.django_db
def test_a_synchronizations_page_charts_its_last_runs_one_mark_each(admin_client):
    # Given four runs of a synchronization, and a test run
    sync = make_synchronization()
    runs = [ended_run(synchronization=sync, status=status, found=10, created=created, failed=10 - created)
            for status, created in (("succeeded", 10), ("partial", 7), ("failed", 0), ("succeeded", 9))]
    make_run(synchronization=sync, is_test=True)

    page = admin_client.get(reverse("admin:syncapp_synchronization_change", args=[sync.pk])).content.decode()

    chart = re.search(r'<svg [^>]*class="runs-chart".*?</svg>', page, re.S).group(0)
    marks = re.findall(r'<a class="run-mark" href="([^"]+)" data-run="(\d+)">', chart)
    assert [int(run_id) for _href, run_id in marks] == [run.pk for run in runs]  # oldest first
    assert marks[0][0] == reverse("admin:contracts_synchronizationrun_change", args=[runs[0].pk])
    assert f"run {runs[1].pk} partial" in chart and "created 7, updated 0, deleted 0, failed 3" in chart


@pytest.mark.django_db
def test_the_run_list_has_duration_and_error_columns_and_no_more_than_fits(admin_client):
    sync = make_synchronization()
    ended_run(synchronization=sync, status="failed",
              error_message="the source answered HTTP 401: the token was refused\nmore detail")
    ended_run(synchronization=sync, status="partial", failed=4, invalid=1)

    page = admin_client.get(reverse("admin:contracts_synchronizationrun_changelist")).content.decode()

    headers = re.findall(r'<th scope="col"\s+class="([^"]+)"', page)
    assert len(headers) <= 8, headers  # with the checkbox column
    assert "column-duration" in " ".join(headers) and "column-problem" in " ".join(headers)
    assert "1 min 35 s" in page
    assert "the source answered HTTP 401: the token was refused" in page and "more detail" not in page
    assert "5 object(s) not written" in page


@pytest.mark.django_db
def test_the_objects_list_shows_the_first_fields_of_each_object(admin_client):
    schema = make_schema(schema={"type": "object", "required": ["name", "species"], "properties": {
        "name": {"type": "string"}, "species": {"type": "string"}, "legs": {"type": "integer"},
        "keeper": {"type": "string"}}})
    make_object(schema=schema, data={"keeper": "ann@zoo.example", "legs": 4, "species": "lion", "name": "Nala"})

    page = admin_client.get(reverse("admin:syncapp_object_changelist")).content.decode()

    assert "name: Nala · species: lion · legs: 4" in page


def test_an_objects_summary_skips_empty_and_nested_values_and_cuts_long_ones():
    data = {"name": "x" * 50, "tags": ["a"], "note": "", "age": 3}

    assert object_summary(data=data, schema={"properties": {"name": {}, "tags": {}, "note": {}, "age": {}}},
                          width=10) == "name: xxxxxxxxx… · age: 3"
    assert object_summary(data={"a": {"b": 1}}, schema={}) == "(no plain values)"
