"""A healthy deployment (a worker answering, a scheduler ticking, keys set) as the doctor and probes see it."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from syncapp import sealing
from syncapp.schedules import scheduler_tick_record

pytestmark = pytest.mark.worker


@pytest.fixture
def healthy(worker, settings, tmp_path):
    """Credential keys, a writable media root, a scheduler that ticked and a worker that answers."""
    settings.SYNC_CREDENTIAL_KEYS = (sealing.key_generate(),)
    settings.MEDIA_ROOT = tmp_path / "media"
    scheduler_tick_record(kind="celery beat")
    return worker


def test_sync_doctor_passes_a_deployment_with_everything_in_place(healthy):
    out = io.StringIO()

    call_command("sync", "doctor", stdout=out)

    assert [line.split(":")[0] for line in out.getvalue().splitlines()] == [
        "ok   database", "ok   migrations", "ok   keys", "ok   networks", "ok   broker", "ok   budget_store",
        "ok   workers", "ok   scheduler", "ok   media",
    ]


def test_sync_doctor_names_the_workers_that_answered(healthy):
    out = io.StringIO()

    call_command("sync", "doctor", "--json", stdout=out)

    answer = json.loads(out.getvalue())
    assert answer["ok"] is True
    assert healthy.name in answer["checks"]["workers"]["answering"]


def test_ready_names_a_worker_that_answers(healthy, client):
    checks = client.get("/health/ready").json()["checks"]

    assert checks["workers"]["ok"] is True
    # Every worker on the broker answers a ping: those of the other test processes too.
    assert healthy.name in checks["workers"]["answering"]
