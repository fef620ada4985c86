"""/metrics after a distributed run: the worker pool's counts, summed from PROMETHEUS_MULTIPROC_DIR."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from syncapp import runs as sync_runs
from syncapp.tokens import token_create
from tests.conftest import zoo_bundle
from tests.helpers import active_ids, import_zoo, staff, wait_for_run

pytestmark = pytest.mark.worker


def scrape(client: APIClient) -> dict[tuple[str, frozenset], float]:
    """Return every sample of /metrics by name and labels."""
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.content
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.content.decode())
        for sample in family.samples
    }


def grown(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_a_scrape_after_a_distributed_run_shows_its_objects_duration_and_http_statuses(
    worker, sample_source, animals, monkeypatch
):
    # Given the worker's pool counting into its multiprocess directory, and a token of a staff user
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(worker.metrics_dir))
    _, key = token_create(user=staff())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    source = sync.source.reference
    before = scrape(client)

    # When a run goes through the worker
    run = wait_for_run(sync_runs.run_start(synchronization=sync))

    # Then /metrics shows what that run did, counted in the worker's pool processes
    assert run.status == "succeeded", run.error_message
    after = scrape(client)
    created = len(active_ids(animals))
    assert grown(before, after, "sync_objects_total", synchronization=sync.reference, outcome="created") == created
    assert grown(before, after, "sync_runs_ended_total", synchronization=sync.reference, status="succeeded") == 1
    assert grown(before, after, "sync_run_duration_seconds_count", synchronization=sync.reference) == 1
    assert grown(before, after, "sync_run_duration_seconds_sum", synchronization=sync.reference) == pytest.approx(
        run.duration_seconds, abs=0.01
    )
    assert grown(before, after, "sync_http_responses_total", source=source, status="200") == run.pages_fetched
    assert grown(before, after, "sync_http_request_duration_seconds_count", source=source) == run.pages_fetched
    assert grown(before, after, "sync_chunk_write_duration_seconds_count", synchronization=sync.reference) >= 1
    assert after[("sync_runs_active", frozenset({("status", "running")}))] == 0
    assert ("sync_queue_length", frozenset()) in after
