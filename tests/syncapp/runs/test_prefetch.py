"""Reading ahead: the next page's request leaves as soon as it is known, several at once when they can be.

Proved by the order of what happens (the source records each request as it arrives; a spy on the
planner waits for the request it expects), never by timing: a wait that runs out fails the test.
"""
from __future__ import annotations

import threading

import pytest
import redis
from django.conf import settings
from django.db import connection

from contracts.models import RunChunk, RunPage
from syncapp import runs as sync_runs
from syncapp.models import Source
from syncapp.runs import chunks, pages
from tests.conftest import zoo_bundle
from tests.helpers import import_zoo, records
from tests.loopback import LoopbackServer, Request
from tests.syncapp.runs.test_chunks import held_tasks  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("held_tasks")

# Long enough for any machine; a request that is not sent by then is not sent ahead at all.
PATIENCE = 20.0


def run_to_the_end(run) -> None:
    """Process a run's first page, then the pages it left to be planned and its chunks, as workers would."""
    pages.page_process(run_id=run.pk, page_number=1)
    for number in RunPage.objects.filter(run=run, status="judged").order_by("number").values_list("number", flat=True):
        pages.page_process(run_id=run.pk, page_number=number)
    for _ in range(5):
        queued = list(RunChunk.objects.filter(run=run, status="queued").values_list("pk", flat=True))
        if not queued:
            break
        for chunk_id in queued:
            chunks.chunk_process(run_id=run.pk, chunk_id=chunk_id)
    run.refresh_from_db()


def budget_used(source: Source) -> int:
    """Return how many slots of the source's request budget are taken (its window in Redis)."""
    key = f"sync:{connection.settings_dict['NAME']}:budget:{source.pk}"
    return redis.Redis.from_url(settings.SYNC_REDIS_URL).zcard(key)


def budget_reset(source: Source) -> None:
    key = f"sync:{connection.settings_dict['NAME']}:budget:{source.pk}"
    redis.Redis.from_url(settings.SYNC_REDIS_URL).delete(key)


def test_with_next_links_the_next_page_is_asked_for_before_the_page_before_it_is_planned(monkeypatch):
    # Given a source of three pages that link to the next, which records each request as it arrives
    items = records(30, seed=3)
    arrived: dict[int, threading.Event] = {number: threading.Event() for number in (1, 2, 3, 4)}
    events: list[str] = []

    def handler(request: Request):
        number = int(request.query.get("p", 1))
        events.append(f"asked {number}")
        arrived[number].set()
        body = {"results": items[(number - 1) * 10: number * 10]}
        if number < 3:
            body["next"] = f"/a?p={number + 1}"
        return 200, {}, body

    # and a planner that, before it plans a page, waits for the request of the page after it
    record = pages.page_record

    def planning(**kwargs):
        number = kwargs["number"]
        if number < 3 and not arrived[number + 1].wait(PATIENCE):
            events.append(f"page {number + 1} not asked for while page {number} waited to be planned")
        events.append(f"planned {number}")
        return record(**kwargs)

    monkeypatch.setattr(pages, "page_record", planning)

    with LoopbackServer(handler) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "next"}}
        sync.save()

        # When a run reads it
        run = sync_runs.run_start(synchronization=sync)
        run_to_the_end(run)

    # Then each page's successor was asked for before the page was planned, and each page once
    assert sorted(events) == ["asked 1", "asked 2", "asked 3", "planned 1", "planned 2", "planned 3"]
    assert events.index("asked 2") < events.index("planned 1")
    assert events.index("asked 3") < events.index("planned 2")
    assert (run.status, run.found, run.created, run.pages_fetched) == ("succeeded", 30, 30, 3)


def test_with_page_numbers_one_task_has_concurrency_requests_out_at_once_and_counts_as_reading_in_order():
    # Given a page-number source of 90 animals, ten a page, whose pages after the first each wait
    # until four requests are waiting together, within a request budget
    items = records(90, seed=4)
    together = threading.Barrier(4, timeout=PATIENCE)
    waiting = {"now": 0, "most": 0, "broken": 0, "hold": False}
    lock = threading.Lock()

    def handler(request: Request):
        number = int(request.query.get("page", 1))
        if waiting["hold"] and 2 <= number <= 9:
            with lock:
                waiting["now"] += 1
                waiting["most"] = max(waiting["most"], waiting["now"])
            try:
                together.wait()
            except threading.BrokenBarrierError:
                with lock:
                    waiting["broken"] += 1
                return 503, {}, {"error": "fewer than four requests were out at once"}
            finally:
                with lock:
                    waiting["now"] -= 1
        return 200, {}, {"results": items[(number - 1) * 10: number * 10]}

    with LoopbackServer(handler) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        Source.objects.filter(pk=sync.source_id).update(configuration={"rateLimit": {"requests": 1000, "per": "hour"}})
        budget_reset(sync.source)
        sync.source_config = {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"},
                              "concurrency": 1}
        sync.save()
        # and its register filled by a run that read one page after another
        first = sync_runs.run_start(synchronization=sync)
        run_to_the_end(first)
        assert (first.status, first.created) == ("succeeded", 90)
        sequential_requests = len(server.requests)

        # When five animals vanish (the last page half full) and a run reads four pages at a time
        del items[40:45]
        waiting["hold"] = True
        sync.source_config = {**sync.source_config, "concurrency": 4}
        sync.save()
        server.requests.clear()
        run = sync_runs.run_start(synchronization=sync)
        run_to_the_end(run)

        # Then four requests were out at once, in one task, never more
        assert (waiting["most"], waiting["broken"]) == (4, 0)
        # and it counts and deletes as reading one page after another does
        assert (run.status, run.found, run.unchanged, run.deleted, run.pages_fetched) == (
            "succeeded", 85, 85, 5, 10
        )
        # and every request took its slot of the source's budget: the ten pages, and the four asked
        # ahead past the empty one
        assert budget_used(sync.source) == sequential_requests + len(server.requests)
        assert sorted(int(request.query["page"]) for request in server.requests) == list(range(1, 14))
    assert dict(RunPage.objects.filter(run=run, number__gt=10).values_list("number", "status")) == {
        11: "skipped", 12: "skipped", 13: "skipped",
    }
