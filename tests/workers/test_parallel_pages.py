"""Pages fetched ahead on a real worker: the same counts and deletions as reading one page at a time."""
from __future__ import annotations

import time

import pytest

from contracts.models import RunPage, SynchronizationContract, SynchronizationRun
from syncapp import runs as sync_runs
from syncapp.configuration import bundle_import
from syncapp.models import Object, Synchronization
from tests.conftest import zoo_bundle
from tests.helpers import records, wait_for_run
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.worker

PAGE_SIZE = 10


class Source:
    """A page-number (or offset) API over a list the test changes between runs."""

    def __init__(self, items: list[dict], *, total: bool = False, missing_past_end: bool = False,
                 cap: int | None = None, delay: float = 0.0):
        self.items = items
        self.total = total
        self.missing_past_end = missing_past_end
        self.cap = cap
        self.delay = delay

    def __call__(self, arrival: Request):
        time.sleep(self.delay)
        if "offset" in arrival.query:
            start = int(arrival.query["offset"])
            limit = min(int(arrival.query.get("limit", PAGE_SIZE)), self.cap or PAGE_SIZE)
        else:
            start, limit = (int(arrival.query.get("page", 1)) - 1) * PAGE_SIZE, PAGE_SIZE
        if self.missing_past_end and start >= len(self.items) + PAGE_SIZE:
            return 404, {}, {"detail": "no such page"}
        body = {"results": self.items[start:start + limit]}
        if self.total:
            body["count"] = len(self.items)
        return 200, {}, body


def synchronization(server: LoopbackServer, *, reference: str, concurrency: int, offset: bool = False,
                    **configuration) -> Synchronization:
    bundle = zoo_bundle(location=server.url)
    bundle["sources"][0].update(reference=f"{reference}-api")
    bundle["sources"][0]["configuration"].update(configuration)
    pagination = {"type": "offset", "limit": PAGE_SIZE} if offset else {"type": "page"}
    bundle["synchronizations"][0].update(
        reference=reference, sourceId=f"{reference}-api", conditions={},
        sourceConfig={"endpoint": "/a", "resultsPosition": "results", "pagination": pagination,
                      "concurrency": concurrency},
    )
    bundle_import(bundle)
    return Synchronization.objects.get(reference=reference)


def outcome(sync: Synchronization) -> dict:
    """Run the synchronization and return what a user sees of it: counts, status, objects."""
    run = wait_for_run(sync_runs.run_start(synchronization=sync), timeout=120)
    contracts = SynchronizationContract.objects.filter(synchronization=sync, target_id__isnull=False)
    data = sorted(Object.objects.filter(pk__in=list(contracts.values_list("target_id", flat=True)))
                  .values_list("data__name", flat=True))
    return {"status": run.status, "counts": run.counts, "error": run.error_message, "objects": data,
            "pages": RunPage.objects.filter(run=run, status="done").count()}


@pytest.mark.parametrize(
    "shape",
    [{}, {"total": True}, {"missing_past_end": True}, {"offset": True, "cap": 7, "total": True}],
    ids=["until an empty page", "with a total", "404 past the end", "offsets the server caps"],
)
def test_pages_fetched_ahead_give_the_counts_and_deletions_of_reading_one_page_at_a_time(worker, shape):
    offset = shape.pop("offset", False)
    total = shape.get("total", False)
    results, ahead = {}, {}
    for concurrency in (1, 4):
        items = records(95, seed=3)
        with LoopbackServer(Source(items, **shape)) as server:
            sync = synchronization(server, reference=f"animals-{concurrency}", concurrency=concurrency, offset=offset)
            first = outcome(sync)
            ahead[concurrency] = RunPage.objects.filter(run__synchronization=sync, status="skipped").count()
            # The source changes: three records removed, two renamed, one added.
            del items[40:43]
            items[5]["name"] = items[70]["name"] = "Renamed"
            items.append({**items[0], "id": 1000, "name": "Newcomer"})
            second = outcome(sync)
        results[concurrency] = (first, second)

    sequential, parallel = results[1], results[4]
    assert sequential == parallel
    # Reading ahead made pages past the end, which were skipped, not counted; none when the source says
    # how many it holds.
    assert ahead[1] == 0
    assert ahead[4] == 0 if total else ahead[4] > 0
    first, second = parallel
    assert (first["status"], first["counts"]["created"]) == ("succeeded", 95)
    assert (second["status"], second["counts"]["deleted"], second["counts"]["updated"]) == ("succeeded", 3, 2)
    assert second["counts"]["created"] == 1 and len(second["objects"]) == 93


def test_pages_fetched_ahead_keep_the_sources_request_budget(worker):
    budget = 5
    with LoopbackServer(Source(records(120, seed=3), total=True, delay=0.02)) as server:
        sync = synchronization(
            server, reference="animals", concurrency=4, rateLimit={"requests": budget, "per": "second"}
        )

        result = outcome(sync)

    assert (result["status"], result["counts"]["created"]) == ("succeeded", 120)
    per_second = server.per_second()
    assert max(per_second.values()) <= budget, dict(sorted(per_second.items()))
    assert SynchronizationRun.objects.get().pages_fetched == 12
