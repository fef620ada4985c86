"""Enrichment and incremental reads on the real stack: a Celery worker process, Redis, PostgreSQL, loopback."""
from __future__ import annotations

import pytest

from syncapp import runs as sync_runs
from syncapp.models import Object, Synchronization
from tests.factories import import_api_synchronization
from tests.helpers import wait_for_run
from tests.loopback import LoopbackServer, Request
from tests.workers.test_faults import fault_worker, on_fault_queue  # noqa: F401 - fixtures

pytestmark = pytest.mark.worker


def animals(count: int) -> list[dict]:
    return [{"id": number, "name": f"animal {number}", "updated_at": f"2025-01-{number:02d}T00:00:00Z"}
            for number in range(1, count + 1)]


def import_sync(url: str, **source_config) -> Synchronization:
    return import_api_synchronization(location=url, source_config={
        "endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"}, "concurrency": 3,
        **source_config,
    })


def test_an_incremental_enriched_run_on_a_worker_asks_for_and_enriches_only_what_changed(worker):
    records = animals(12)
    details = {str(record["id"]): {"weight": record["id"] * 10} for record in records}

    def script(arrival: Request):
        if arrival.path.startswith("/a/"):
            return 200, {}, details[arrival.path.rsplit("/", 1)[1]]
        since = arrival.query.get("since")
        chosen = [record for record in records if since is None or record["updated_at"] >= since]
        page = int(arrival.query.get("page", 1))
        return 200, {}, {"results": chosen[(page - 1) * 5: page * 5]}

    with LoopbackServer(script) as server:
        sync = import_sync(
            server.url, incremental={"cursorPath": "updated_at", "param": "since"},
            extraDataConfigs=[{"staticEndpoint": "/a/{{ originId }}", "keyToSetExtraData": "detail"}],
        )
        first = wait_for_run(sync_runs.run_start(synchronization=sync))
        records[2]["updated_at"] = "2025-02-01T00:00:00Z"
        details["3"]["weight"] = 31
        server.requests.clear()

        second = wait_for_run(sync_runs.run_start(synchronization=sync))
        asked = [arrival for arrival in server.requests]

    assert (first.status, first.mode, first.created, first.enrichments) == ("succeeded", "full", 12, 12)
    assert (second.status, second.mode, second.cursor_sent) == ("succeeded", "incremental", "2025-01-12T00:00:00Z")
    lists = [arrival for arrival in asked if arrival.path == "/a"]
    assert lists and all(arrival.query["since"] == "2025-01-12T00:00:00Z" for arrival in lists)
    # Record 12 (at the cursor) comes again unchanged; record 3 changed, its detail too.
    assert sorted(arrival.path for arrival in asked if arrival.path != "/a") == ["/a/12", "/a/3"]
    assert (second.updated, second.unchanged, second.deleted, second.enrichments) == (1, 1, 0, 2)
    weights = {data["id"]: data["detail"]["weight"] for data in Object.objects.values_list("data", flat=True)}
    assert weights[3] == 31 and len(weights) == 12
    sync.refresh_from_db()
    assert sync.incremental_cursor == "2025-02-01T00:00:00Z"


def test_a_detail_rate_limit_longer_than_the_inline_wait_retries_the_page_task_later(on_fault_queue):  # noqa: F811
    records = animals(6)

    def script(arrival: Request):
        if arrival.path == "/a/4" and arrival.attempt == 1:
            return 429, {"Retry-After": "3"}, {"error": "come back in three seconds"}
        if arrival.path.startswith("/a/"):
            return 200, {}, {"detail": arrival.path}
        page = int(arrival.query.get("page", 1))
        return 200, {}, {"results": records[(page - 1) * 5: page * 5]}

    with LoopbackServer(script) as server:
        sync = import_sync(server.url, extraDataConfigs=[{"staticEndpoint": "/a/{{ originId }}"}])

        run = wait_for_run(sync_runs.run_start(synchronization=sync), timeout=60)

    assert (run.status, run.created, run.failed) == ("succeeded", 6, 0), run.error_message
    assert run.retries >= 1 and run.waited_seconds >= 3
    assert Object.objects.count() == 6
    assert "workers.tasks.sync_page retried in 3 s" in on_fault_queue.log()
