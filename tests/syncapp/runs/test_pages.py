"""Pages: judged in order, planned side by side, at a fixed number of statements whatever their size."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contracts.models import ContractLog, RunChunk, RunPage, SynchronizationContract
from syncapp import runs as sync_runs
from syncapp.configuration import bundle_import
from syncapp.models import Object, Synchronization
from syncapp.runs import chunks, pages
from syncapp.runs.context import context_for_run
from syncapp.sample_source import generate_animals
from tests.conftest import zoo_bundle
from tests.helpers import import_zoo
from tests.loopback import LoopbackServer, Request
from tests.syncapp.runs.test_chunks import held_tasks  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("held_tasks")


def queries(function, **kwargs) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        function(**kwargs)
    return [query["sql"] for query in captured.captured_queries]


def costs(count: int, *, reference: str) -> dict[str, int]:
    """Return the queries of a first sync's page and chunk, and of a re-run's page with a tenth changed."""
    records = [{**animal, "status": "active"} for animal in generate_animals(count=count, seed=count)]
    with LoopbackServer(lambda request: (200, {}, records)) as server:
        bundle = zoo_bundle(location=server.url)
        bundle["sources"][0]["reference"] = f"{reference}-api"
        bundle["synchronizations"][0].update(reference=reference, sourceId=f"{reference}-api")
        bundle_import(bundle)
        sync = Synchronization.objects.get(reference=reference)
        sync.source_config = {"endpoint": "/a", "resultsPosition": "_root", "pagination": {"type": "none"},
                              "chunkSize": 1000}
        sync.save()
        run = sync_runs.run_start(synchronization=sync)
        first_page = queries(pages.page_process, run_id=run.pk, page_number=1)
        first_chunk = queries(chunks.chunk_process, run_id=run.pk, chunk_id=RunChunk.objects.get(run=run).pk)
        for record in records[: count // 10]:
            record["name"] += " the second"
        rerun = sync_runs.run_start(synchronization=sync)
        rerun_page = queries(pages.page_process, run_id=rerun.pk, page_number=1)
        rerun_chunk = queries(chunks.chunk_process, run_id=rerun.pk, chunk_id=RunChunk.objects.get(run=rerun).pk)
    run.refresh_from_db()
    rerun.refresh_from_db()
    assert (run.status, run.created, rerun.status, rerun.updated, rerun.unchanged) == (
        "succeeded", count, "succeeded", count // 10, count - count // 10
    )
    return {"first page": len(first_page), "first chunk": len(first_chunk), "re-run page": len(rerun_page),
            "re-run chunk": len(rerun_chunk)}


def test_a_page_and_a_chunk_issue_the_same_queries_for_10_and_for_100_objects():
    few, many = costs(10, reference="animals"), costs(100, reference="many")

    assert few == many
    # The last chunk of a run also closes it (deletion, follow-ups, the run queued behind it).
    assert few["first page"] < 30 and few["first chunk"] < 40 and few["re-run page"] < 30


@pytest.fixture
def one_task_a_page(settings):
    """Every page is fetched by its own task (no task reads on), so the test runs them in the order it wants."""
    settings.SYNC_READ_AHEAD_SECONDS = 0


@pytest.mark.usefixtures("one_task_a_page")
def test_pages_fetched_out_of_order_are_planned_in_order(held_tasks):  # noqa: F811
    # Given a page-number source of six full pages and an empty one, read four pages at a time
    items = [{**animal, "status": "active"} for animal in generate_animals(count=60, seed=1)]

    def handler(request: Request):
        page = int(request.query.get("page", 1))
        return 200, {}, {"results": items[(page - 1) * 10: page * 10]}

    with LoopbackServer(handler) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"},
                              "concurrency": 4}
        sync.save()
        run = sync_runs.run_start(synchronization=sync)
        # (the pages asked for ahead grow from one to four: 2 after the first, 3 and 4 after the second)
        for number in (1, 2, 3):
            pages.page_process(run_id=run.pk, page_number=number)
        assert set(RunPage.objects.filter(run=run).values_list("number", "status")) == {
            (1, "done"), (2, "done"), (3, "done"), (4, "queued"), (5, "queued"), (6, "queued"), (7, "queued"),
        }

        # When the pages after the fourth come back last first
        for number in (7, 6, 5):
            pages.page_process(run_id=run.pk, page_number=number)
        assert set(RunPage.objects.filter(run=run, number__gt=4).values_list("status", flat=True)) == {"fetched"}
        pages.page_process(run_id=run.pk, page_number=4)

        # Then the fourth judged them in order, and the empty seventh ended the run's reading: the pages
        # made ahead of it are skipped, and the fifth to seventh wait for their own tasks to plan them
        assert dict(RunPage.objects.filter(run=run).values_list("number", "status")) == {
            1: "done", 2: "done", 3: "done", 4: "done", 5: "judged", 6: "judged", 7: "judged", 8: "skipped",
            9: "skipped", 10: "skipped",
        }
        for number in (7, 5, 6):
            pages.page_process(run_id=run.pk, page_number=number)

    run.refresh_from_db()
    assert (run.found, run.pages_fetched, run.fetch_finished) == (60, 7, True)
    assert dict(RunPage.objects.filter(run=run).values_list("number", "status")) == {
        1: "done", 2: "done", 3: "done", 4: "done", 5: "done", 6: "done", 7: "done", 8: "skipped", 9: "skipped",
        10: "skipped",
    }
    for chunk in RunChunk.objects.filter(run=run, status="queued"):
        chunks.chunk_process(run_id=run.pk, chunk_id=chunk.pk)
    run.refresh_from_db()
    assert (run.status, run.created) == ("succeeded", 60)


@pytest.mark.usefixtures("one_task_a_page")
def test_of_two_pages_planned_side_by_side_with_one_origin_id_the_first_planned_keeps_it(held_tasks):  # noqa: F811
    # Given pages two and three that both hold record 15, page three's copy renamed
    items = [{**animal, "status": "active"} for animal in generate_animals(count=25, seed=2)]
    twin = {**items[14], "name": "Copy"}
    pages_of = {1: items[0:10], 2: items[10:20], 3: [twin, *items[20:25]], 4: []}

    def handler(request: Request):
        return 200, {}, {"results": pages_of.get(int(request.query.get("page", 1)), [])}

    with LoopbackServer(handler) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"},
                              "concurrency": 4}
        sync.save()
        run = sync_runs.run_start(synchronization=sync)
        pages.page_process(run_id=run.pk, page_number=1)
        # judged in order, by tasks that then died before planning them
        context = context_for_run(synchronization_id=sync.pk, run_id=run.pk)
        for number in (2, 3, 4):
            head = RunPage.objects.filter(run=run, number=number).values("pk", "number", "status", "request")[0]
            answer = pages.page_fetch(context=context, run_id=run.pk, number=number, request=head["request"])
            assert pages.page_judge(run_id=run.pk, context=context, head=head, answer=answer, keep=True)

        # When page three is planned before page two, then page two, then page two again (redelivered)
        for number in (3, 2, 2, 4):
            pages.page_process(run_id=run.pk, page_number=number)
        for chunk in RunChunk.objects.filter(run=run, status="queued"):
            chunks.chunk_process(run_id=run.pk, chunk_id=chunk.pk)

    # Then the copy planned first is written, the other is the duplicate, and every count is as in order
    run.refresh_from_db()
    assert (run.status, run.found, run.created, run.invalid, run.pages_fetched) == ("partial", 26, 25, 1, 4)
    duplicate = ContractLog.objects.get(run=run, status="invalid")
    assert "appears more than once in this run" in duplicate.error
    assert duplicate.source_object["name"] == items[14]["name"]
    contract = SynchronizationContract.objects.get(origin_id=str(items[14]["id"]))
    assert Object.objects.get(pk=contract.target_id).data["name"] == "Copy"
