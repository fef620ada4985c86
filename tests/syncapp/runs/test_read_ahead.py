"""A page task reads on: the next page's request leaves before the page in hand is planned, and with page
numbers `concurrency` requests are in flight inside one task, with the counts, deletions and request budget
of reading one page after another."""
from __future__ import annotations

import threading
from collections import defaultdict

import pytest

from contracts.models import RunPage, SynchronizationRun
from syncapp.configuration import bundle_import
from syncapp.models import Synchronization
from syncapp.runs import chunks, pages, reading
from tests.conftest import zoo_bundle
from tests.helpers import records, run
from tests.loopback import LoopbackServer, Request
from tests.workers.test_parallel_pages import PAGE_SIZE, Source, outcome, synchronization

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

# Long enough never to run out on a loaded machine; only an implementation that does not read ahead waits it out.
PATIENCE = 20


class NextLinks:
    """A next-link API over a list the test changes between runs; tells who waits when a page was asked for."""

    def __init__(self, items: list[dict]):
        self.items = items
        self.url = ""
        self.asked = defaultdict(threading.Event)

    def __call__(self, arrival: Request):
        start = int(arrival.query.get("from", 0))
        self.asked[start // PAGE_SIZE + 1].set()
        end = start + PAGE_SIZE
        following = f"{self.url}/a?from={end}" if end < len(self.items) else None
        return 200, {}, {"results": self.items[start:end], "next": following}


def next_link_synchronization(server: LoopbackServer, *, reference: str) -> Synchronization:
    bundle = zoo_bundle(location=server.url)
    bundle["sources"][0].update(reference=f"{reference}-api")
    bundle["synchronizations"][0].update(
        reference=reference, sourceId=f"{reference}-api", conditions={},
        sourceConfig={"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "next"}},
    )
    bundle_import(bundle)
    return Synchronization.objects.get(reference=reference)


def source_changes(items: list[dict]) -> None:
    """Three records removed, two renamed, one added."""
    del items[20:23]
    items[5]["name"] = items[30]["name"] = "Renamed"
    items.append({**items[0], "id": 1000, "name": "Newcomer"})


def test_with_next_links_the_next_pages_request_leaves_before_the_page_is_planned(monkeypatch, settings):
    # Given a next-link source of five pages, read once by a task that reads on and once a page a task
    results, next_asked_before_planning = {}, {}
    for read_ahead in (60, 0):
        settings.SYNC_READ_AHEAD_SECONDS = read_ahead
        items = records(45, seed=4)
        source = NextLinks(items)
        with LoopbackServer(source) as server:
            source.url = server.url
            sync = next_link_synchronization(server, reference=f"links-{read_ahead}")
            if read_ahead:
                last_page = -(-len(items) // PAGE_SIZE)
                plan = pages.page_plan_record

                def watched(*, _source=source, _last=last_page, _plan=plan, **kwargs):
                    number = kwargs["number"]
                    if number < _last:
                        # The next page's request has reached the source before this page is planned.
                        next_asked_before_planning[number] = _source.asked[number + 1].wait(PATIENCE)
                    _plan(**kwargs)

                monkeypatch.setattr(pages, "page_plan_record", watched)

            # When it runs, and again after the source changed
            first = outcome(sync)
            monkeypatch.undo()
            source_changes(items)
            second = outcome(sync)
        results[read_ahead] = (first, second)

    # Then every page's successor was asked for before the page was planned
    assert next_asked_before_planning == {1: True, 2: True, 3: True, 4: True}
    # and the runs counted, wrote and deleted exactly what reading one page after another did
    assert results[60] == results[0]
    first, second = results[60]
    assert (first["status"], first["counts"]["created"], first["pages"]) == ("succeeded", 45, 5)
    assert (second["status"], second["counts"]["deleted"], second["counts"]["updated"]) == ("succeeded", 3, 2)


class InFlight:
    """Wrap a source: count the requests it answers at once; those from page four on wait (once, at most
    PATIENCE seconds) until `expected` are in flight together."""

    def __init__(self, inner: Source, *, expected: int):
        self.inner = inner
        self.expected = expected
        self.now = self.most = 0
        self.opened = False
        self.changed = threading.Condition()

    def __call__(self, arrival: Request):
        with self.changed:
            self.now += 1
            self.most = max(self.most, self.now)
            self.changed.notify_all()
            if int(arrival.query.get("page", 1)) >= 4 and not self.opened:
                self.changed.wait_for(lambda: self.now >= self.expected or self.opened, timeout=PATIENCE)
                self.opened = True
        try:
            return self.inner(arrival)
        finally:
            with self.changed:
                self.now -= 1


@pytest.mark.parametrize("shape", [{"total": True}, {}], ids=["with a total", "until an empty page"])
def test_with_page_numbers_concurrency_requests_are_in_flight_at_once_inside_one_task(monkeypatch, shape):
    # Given a page-number source of ten pages, read with concurrency 4 and with concurrency 1
    tasks = []
    process = pages.page_process

    def counted(**kwargs):
        tasks.append(kwargs["page_number"])
        process(**kwargs)

    monkeypatch.setattr(pages, "page_process", counted)
    results, most = {}, {}
    for concurrency in (4, 1):
        items = records(95, seed=3)
        source = InFlight(Source(items, **shape), expected=concurrency)
        with LoopbackServer(source) as server:
            sync = synchronization(server, reference=f"animals-{concurrency}", concurrency=concurrency)
            tasks.clear()

            # When it runs, and again after the source changed
            first = outcome(sync)
            read_by = list(tasks)
            source_changes(items)
            second = outcome(sync)
        results[concurrency], most[concurrency] = (first, second), source.most
        if concurrency == 4:
            asked_past_the_end = len(server.requests) - first["pages"] - second["pages"]

    # Then four requests were in flight at once, never more, all sent by the task of the first page
    assert most == {4: 4, 1: 1}
    assert read_by == [1]
    # and the runs counted, wrote and deleted exactly what reading one page at a time did
    assert results[4] == results[1]
    first, second = results[4]
    assert (first["status"], first["counts"]["created"]) == ("succeeded", 95)
    assert first["pages"] == (10 if shape else 11)  # the empty page after the last ends a source without a total
    assert (second["status"], second["counts"]["deleted"], second["counts"]["updated"]) == ("succeeded", 3, 2)
    # A source that says how many it holds is never asked past its last page; one that does not, at most
    # three pages past its end a run (fetched ahead, skipped, not counted).
    if shape:
        assert asked_past_the_end == 0
    else:
        assert 0 < asked_past_the_end <= 2 * 3


class Unfired:
    """A timer that never fires: the deferred pages stay deferred for the test to look at."""

    def __init__(self, seconds: float, function) -> None:
        self.daemon = True

    def start(self) -> None:
        pass


def test_pages_read_ahead_stay_within_the_sources_request_budget(monkeypatch, settings):
    # Given a source of twelve pages that allows three requests an hour, read four pages at a time (and a
    # wait of an hour is one to defer, not to fail on)
    monkeypatch.setattr("workers.dispatch.Timer", Unfired)
    settings.SYNC_MAX_RATE_LIMIT_WAIT = 7200
    with LoopbackServer(Source(records(120, seed=3), total=True)) as server:
        sync = synchronization(server, reference="animals", concurrency=4,
                               rateLimit={"requests": 3, "per": "hour"})

        # When it runs
        waiting = run(sync)

    # Then three requests reached the source, and the pages after them wait for the budget: deferred, not
    # failed, and not asked for
    assert len(server.requests) == 3
    assert waiting.status in SynchronizationRun.ACTIVE_STATUSES, waiting.error_message
    assert waiting.deferred_until is not None and waiting.pages_fetched <= 3
    assert RunPage.objects.filter(run=waiting, status="queued", not_before__isnull=False).exists()


class Killed(BaseException):
    """The worker dies here: nothing after it runs in its task, not even the hand-over."""


def test_a_task_that_read_on_and_died_before_planning_a_page_has_it_planned_when_redelivered(monkeypatch):
    # Given a task reading on through a page-number source of six pages, which dies after judging the third
    sent: list[int] = []
    monkeypatch.setattr(pages.dispatch, "pages_fetch", lambda *, run_id, numbers: sent.extend(numbers))
    plan = pages.page_plan_record

    def dies_at_the_third(**kwargs):
        if kwargs["number"] == 3:
            raise Killed
        plan(**kwargs)

    with LoopbackServer(Source(records(55, seed=5))) as server:
        sync = synchronization(server, reference="animals", concurrency=2)
        started = run(sync)
        with monkeypatch.context() as dying:
            dying.setattr(pages, "page_plan_record", dies_at_the_third)
            dying.setattr(reading.ReadAhead, "hand_over", lambda self: [])
            with pytest.raises(Killed):
                pages.page_process(run_id=started.pk, page_number=1)
        assert RunPage.objects.get(run=started, number=3).status == "judged"

        # When the task is redelivered
        sent.clear()
        pages.page_process(run_id=started.pk, page_number=1, again=True)

        # Then it sends the judged page to be planned, and the pages after it, and the run ends complete
        assert 3 in sent
        while sent:
            pages.page_process(run_id=started.pk, page_number=sent.pop(0))
    started.refresh_from_db()
    assert (started.status, started.created, started.found) == ("succeeded", 55, 55)


class Workers:
    """Tasks sent to workers, recorded instead of sent (the test runs them), and the read-aheads made."""

    def __init__(self) -> None:
        self.pages: list[int] = []
        self.chunks: list[int] = []
        self.every_chunk: list[int] = []
        self.readers: list[reading.ReadAhead] = []

    def chunks_write(self, *, run_id, chunk_ids, countdown=None) -> None:
        self.chunks.extend(chunk_ids)
        self.every_chunk.extend(chunk_ids)

    def run_all(self, *, run_id: int) -> None:
        """Run what was sent, pages first, until nothing is left."""
        while self.pages or self.chunks:
            if self.pages:
                pages.page_process(run_id=run_id, page_number=self.pages.pop(0))
            else:
                chunks.chunk_process(run_id=run_id, chunk_id=self.chunks.pop(0))


@pytest.fixture
def workers(monkeypatch, settings) -> Workers:
    """Tasks go to workers (no tasks in process), recorded here for the test to run."""
    settings.TASKS_IN_PROCESS = False
    recorded = Workers()
    monkeypatch.setattr(pages.dispatch, "pages_fetch", lambda *, run_id, numbers: recorded.pages.extend(numbers))
    monkeypatch.setattr(pages.dispatch, "chunks_write", recorded.chunks_write)
    start = reading.ReadAhead.__init__

    def kept(self, **kwargs):
        start(self, **kwargs)
        recorded.readers.append(self)

    monkeypatch.setattr(reading.ReadAhead, "__init__", kept)
    return recorded


def test_a_task_that_reads_faster_than_it_plans_leaves_pages_to_other_workers_to_plan(monkeypatch, workers):
    # Given tasks sent to workers (recorded here, run by the test), and a task reading four pages at a time
    # that is slow to plan its second page: by then the fourth has come back
    plan = pages.page_plan_record

    def slow_second(**kwargs):
        if kwargs["number"] == 2:
            workers.readers[-1].futures[4].exception(timeout=PATIENCE)  # the fourth came back, either way
        plan(**kwargs)

    monkeypatch.setattr(pages, "page_plan_record", slow_second)
    with LoopbackServer(Source(records(95, seed=6), total=True)) as server:
        sync = synchronization(server, reference="animals", concurrency=4)
        started = run(sync)

        # When its task reads
        pages.page_process(run_id=started.pk, page_number=workers.pages.pop(0))

        # Then the third page, judged while the fourth waited, was left with its answer to a task of its own;
        # the pages after it were planned by the reading task, as nobody had planned the third yet
        assert workers.pages == [3]
        assert RunPage.objects.get(run=started, number=3).status == "judged"
        assert RunPage.objects.filter(run=started, status="done").count() == 9
        # and the run ends as reading one page after another ends it
        workers.run_all(run_id=started.pk)
    started.refresh_from_db()
    assert (started.status, started.created, started.found, started.pages_fetched) == ("succeeded", 95, 95, 10)


def test_pages_a_task_hands_over_when_its_time_is_up_are_judged_in_turn_and_send_nothing_twice(
    monkeypatch, workers
):
    # Given tasks sent to workers (recorded here, run by the test), and a task reading four pages at a time
    # whose time to read on is up after it planned its second page
    plan = pages.page_plan_record

    def time_up_after_the_second(**kwargs):
        plan(**kwargs)
        if kwargs["number"] == 2 and len(workers.readers) == 1:
            workers.readers[0].deadline = 0.0

    monkeypatch.setattr(pages, "page_plan_record", time_up_after_the_second)
    resent: list[int] = []
    resend = pages.work_resend

    def work_resend(*, run_id, from_page):
        resent.append(from_page)
        resend(run_id=run_id, from_page=from_page)

    monkeypatch.setattr(pages, "work_resend", work_resend)
    with LoopbackServer(Source(records(95, seed=8), total=True)) as server:
        sync = synchronization(server, reference="animals", concurrency=4)
        started = run(sync)

        # When its task reads, and hands the pages it fetched ahead to their own tasks
        pages.page_process(run_id=started.pk, page_number=workers.pages.pop(0))
        handed = [number for number in workers.pages if number > 2]
        assert handed == [3, 4]
        assert set(RunPage.objects.filter(run=started, number__in=handed).values_list(
            "status", flat=True)) <= {"fetched", "queued"}

        # Then those tasks judge them in turn, and the run ends as reading one page after another ends it,
        # with nothing sent again (a hand-over is no redelivery) and no object task sent twice
        workers.run_all(run_id=started.pk)
    assert resent == []
    assert len(workers.every_chunk) == len(set(workers.every_chunk)) == 10, workers.every_chunk
    started.refresh_from_db()
    assert (started.status, started.created, started.found, started.pages_fetched) == ("succeeded", 95, 95, 10)
