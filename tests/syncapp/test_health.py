"""Health endpoints, heartbeats in `sync status`, and `sync doctor` on a broken setup."""
from __future__ import annotations

import io
import ipaddress
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from syncapp.schedules import scheduler_tick_record
from tests.helpers import closed_port

ROOT = Path(__file__).resolve().parents[2]

# Asks /health/ready in a process of its own, so its database can be one that is not there.
READY_REQUEST = textwrap.dedent("""
    import json, django
    django.setup()
    from django.test import Client
    answer = Client().get("/health/ready")
    print(json.dumps({"status": answer.status_code, "body": answer.json()}))
""")


def test_live_answers_without_asking_anything(client):
    answer = client.get("/health/live")

    assert answer.status_code == 200
    assert answer.json() == {"status": "alive"}


def test_ready_answers_200_with_each_store_and_the_time_it_took(db, client):
    answer = client.get("/health/ready")

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["status"] == "ready" and body["failed"] == []
    for name in ("database", "broker", "budget_store"):
        assert body["checks"][name]["ok"] is True
        assert body["checks"][name]["seconds"] >= 0


def test_ready_answers_503_naming_the_broker_when_it_is_unreachable(db, client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"

    answer = client.get("/health/ready")

    assert answer.status_code == 503
    body = answer.json()
    assert body["failed"] == ["broker"]
    assert "Connection refused" in body["checks"]["broker"]["detail"]
    assert "CELERY_BROKER_URL" in body["checks"]["broker"]["fix"]
    assert body["checks"]["database"]["ok"] is True


def test_ready_answers_503_naming_the_budget_store_when_it_is_unreachable(db, client, settings):
    settings.SYNC_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    answer = client.get("/health/ready")

    assert answer.status_code == 503
    assert answer.json()["failed"] == ["budget_store"]


def test_ready_answers_503_naming_the_database_when_it_is_unreachable():
    environment = {**os.environ, "DATABASE_URL": f"postgresql://root@127.0.0.1:{closed_port()}/nowhere"}

    done = subprocess.run([sys.executable, "-c", READY_REQUEST], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["body"]["failed"] == ["database"]
    assert answer["body"]["checks"]["database"]["ok"] is False
    assert "DATABASE_URL" in answer["body"]["checks"]["database"]["fix"]


def test_ready_and_sync_status_show_a_scheduler_that_ticks(db, client):
    scheduler_tick_record(kind="celery beat")

    checks = client.get("/health/ready").json()["checks"]
    out = io.StringIO()
    call_command("sync", "status", stdout=io.StringIO(), stderr=out)

    assert checks["scheduler"]["ok"] is True
    assert [beat["kind"] for beat in checks["scheduler"]["ticking"]] == ["celery beat"]
    assert "schedulers: 1 ticking (celery beat on " in out.getvalue()
    assert "workers: " in out.getvalue()


def test_sync_status_says_when_no_scheduler_ticked(db):
    out = io.StringIO()

    call_command("sync", "status", stdout=io.StringIO(), stderr=out)

    assert "schedulers: none ticked in the last" in out.getvalue()


def test_sync_doctor_names_what_is_wrong_and_how_to_fix_it(db, settings, tmp_path):
    # Given a media root that is a file, no credential keys, and no scheduler
    settings.MEDIA_ROOT = tmp_path / "not-a-directory"
    settings.MEDIA_ROOT.write_text("")
    settings.SYNC_CREDENTIAL_KEYS = ()
    out = io.StringIO()

    # When the doctor looks
    with pytest.raises(CommandError) as failed:
        call_command("sync", "doctor", stdout=out)

    # Then it exits non-zero naming each problem, with what to do
    text = out.getvalue()
    for name in ("media", "keys", "scheduler"):
        assert name in str(failed.value)
        assert f"FAIL {name}: " in text
    assert "ok   database: postgresql" in text
    assert "ok   migrations: all applied" in text
    assert "fix: make SYNC_MEDIA_ROOT a directory" in text
    assert "fix: set DJANGO_SECRET_KEY and SYNC_CREDENTIAL_KEYS" in text


def test_sync_doctor_refuses_a_metrics_allow_list_open_to_everyone(db, settings):
    settings.SYNC_METRICS_ALLOWED_NETWORKS = (ipaddress.ip_network("0.0.0.0/0"),)
    out = io.StringIO()

    with pytest.raises(CommandError, match="networks"):
        call_command("sync", "doctor", "--json", stdout=out)

    answer = json.loads(out.getvalue())
    assert answer["ok"] is False
    assert "SYNC_METRICS_ALLOWED_NETWORKS" in answer["checks"]["networks"]["fix"]


def test_sync_doctor_warns_without_failing_when_sources_may_call_private_networks(db, settings):
    settings.SYNC_ALLOWED_NETWORKS = ()
    settings.SYNC_DENY_PRIVATE_NETWORKS = False
    out = io.StringIO()

    with pytest.raises(CommandError) as failed:
        call_command("sync", "doctor", stdout=out)

    assert "WARN networks: sources may call any address but loopback" in out.getvalue()
    assert "fix: set SYNC_ALLOWED_NETWORKS" in out.getvalue()
    assert "networks" not in str(failed.value)
