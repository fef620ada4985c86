"""Prometheus metrics: the pool's processes summed, and /metrics guarded like the API."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from config.celery import app as celery_app
from syncapp import health, metrics
from syncapp.tokens import token_create
from tests.conftest import purge_queue
from tests.helpers import closed_port, staff

ROOT = Path(__file__).resolve().parents[2]

# What one pool process does: count a chunk's outcomes and one call's answer, in multiprocess mode.
POOL_PROCESS = textwrap.dedent("""
    import sys
    from syncapp import metrics
    created = int(sys.argv[1])
    metrics.objects_record(synchronization="animals", counts={"created": created, "failed": 1}, retries=0)
    metrics.http_answer_record(source="zoo", status=200, seconds=0.2)
""")


def pool_process_count(*, directory: Path, created: int) -> None:
    subprocess.run(
        [sys.executable, "-c", POOL_PROCESS, str(created)], cwd=ROOT, check=True, timeout=60,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
    )


def samples(exposition: bytes) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
    }


def test_the_multiprocess_collector_sums_what_the_pools_processes_counted(tmp_path):
    # Given two processes of a pool that counted into the same directory
    pool_process_count(directory=tmp_path, created=3)
    pool_process_count(directory=tmp_path, created=4)

    # When the directory is collected
    found = samples(metrics.registry_collect(directory=tmp_path))

    # Then each count is the sum of both processes'
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
    assert found[("sync_objects_total", frozenset({("synchronization", "animals"), ("outcome", "created")}))] == 7
    assert found[("sync_objects_total", frozenset({("synchronization", "animals"), ("outcome", "failed")}))] == 2
    assert found[("sync_http_responses_total", frozenset({("source", "zoo"), ("status", "200")}))] == 2
    assert found[("sync_http_request_duration_seconds_count", frozenset({("source", "zoo")}))] == 2


def test_metrics_answers_an_anonymous_client_401(db):
    answer = APIClient().get("/metrics")

    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == "Token"


def test_metrics_refuses_a_user_who_is_not_staff(db, django_user_model):
    user = django_user_model.objects.create_user(username="someone", is_staff=False)
    _, key = token_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    assert client.get("/metrics").status_code == 403


def test_metrics_answers_a_staff_token_with_the_exposition_format(db):
    _, key = token_create(user=staff())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    answer = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text;version=1.0.0,*/*;q=0.1")

    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain; version=")
    assert b"# TYPE sync_run_duration_seconds histogram" in answer.content
    assert b"sync_runs_active{status=\"running\"} 0.0" in answer.content


def test_metrics_answers_a_client_of_an_allowed_network_without_a_token(db, settings):
    settings.SYNC_METRICS_ALLOWED_NETWORKS = (ipaddress.ip_network("10.1.0.0/16"),)

    assert APIClient(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert APIClient(REMOTE_ADDR="10.2.0.1").get("/metrics").status_code == 401


@pytest.fixture
def unwatched_queue(settings):
    """A queue of its own that no worker takes from, emptied afterwards."""
    settings.CELERY_TASK_DEFAULT_QUEUE = queue = f"metrics-{uuid.uuid4().hex}"
    yield queue
    purge_queue(queue)


def test_a_scrape_reads_the_queues_length_from_the_broker(db, settings, unwatched_queue):
    # Given two messages waiting in the queue
    settings.SYNC_METRICS_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.1/32"),)
    celery_app.send_task("workers.tasks.drain_outbox", queue=unwatched_queue)
    celery_app.send_task("workers.tasks.drain_outbox", queue=unwatched_queue)

    # When /metrics is scraped
    found = samples(APIClient(REMOTE_ADDR="127.0.0.1").get("/metrics").content)

    # Then it shows both, and how long the oldest has waited
    assert found[("sync_queue_length", frozenset())] == 2
    assert found[("sync_queue_oldest_age_seconds", frozenset())] >= 0


def test_the_oldest_messages_age_counts_from_when_it_was_sent(db, unwatched_queue):
    # Given a message sent, then another (stamped when each was sent)
    before = time.time()
    celery_app.send_task("workers.tasks.drain_outbox", queue=unwatched_queue)
    celery_app.send_task("workers.tasks.drain_outbox", queue=unwatched_queue)

    # When the queue is read two minutes after they were sent
    length, age = health.queue_readings(now=time.time() + 120)

    # Then the age is the first one's: at least two minutes, at most since before it was sent
    assert length == 2
    assert 120 <= age <= time.time() + 120 - before


def test_an_empty_queue_has_no_oldest_message(db, unwatched_queue):
    assert health.queue_readings() == (0, None)


def test_a_scrape_with_the_broker_unreachable_still_serves_the_counts_and_says_what_it_could_not_read(
    db, settings
):
    settings.SYNC_METRICS_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.1/32"),)
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"

    answer = APIClient(REMOTE_ADDR="127.0.0.1").get("/metrics")

    assert answer.status_code == 200
    found = samples(answer.content)
    assert found[("sync_scrape_errors", frozenset({("store", "broker")}))] == 1
    assert found[("sync_scrape_errors", frozenset({("store", "database")}))] == 0
    assert ("sync_queue_length", frozenset()) not in found
    assert ("sync_runs_active", frozenset({("status", "running")})) in found


def test_every_metric_the_sample_dashboard_queries_is_one_metrics_exposes(db, settings):
    # Given the sample Grafana dashboard, and the names a scrape declares (every family has a TYPE line)
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    expressions += [variable["definition"] for variable in dashboard["templating"]["list"] if "definition" in variable]
    settings.SYNC_METRICS_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.1/32"),)
    exposition = APIClient(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode()
    families = set(re.findall(r"^# TYPE (\S+) (\S+)", exposition, flags=re.MULTILINE))

    # Then each metric a query names is a family, or a histogram's or counter's series of one
    exposed = set()
    for name, kind in families:
        exposed |= {name, f"{name}_total"} if kind == "counter" else {name}
        if kind == "histogram":
            exposed |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    queried = {name for expression in expressions for name in re.findall(r"\bsync_[a-z_]+", expression)}
    assert queried, "the dashboard queries no metric of the service"
    assert queried <= exposed, f"the dashboard queries metrics /metrics does not expose: {sorted(queried - exposed)}"
