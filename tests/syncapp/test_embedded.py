"""The embedded default: SQLite and tasks in process, with nothing configured, on the chunked path."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_the_demo_runs_on_sqlite_with_tasks_in_process_when_nothing_is_configured(tmp_path):
    env = {
        key: value for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "SYNC_REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(SYNC_DATA_DIR=str(tmp_path), SYNC_CHUNK_SIZE="40", PYTHONUNBUFFERED="1")

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)

    assert manage("migrate", "--no-input", "-v", "0").returncode == 0
    result = manage("demo", "--count", "300", "--show", "0")

    assert result.returncode == 0, result.stderr[-3000:]
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines() if line.endswith(("failed 0",))}
    first, second = lines["First run"], lines["Second run"]
    created = int(first.split("created ")[1].split(",")[0])
    assert "succeeded" in first and created > 100 and "invalid 0" in first
    assert "succeeded" in second and "updated 1," in second and f"unchanged {created - 1}," in second
    assert (tmp_path / "sync.sqlite3").exists()


BIG_PAGE = """
import json, os
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from syncapp import runs
from syncapp.configuration import bundle_import
from syncapp.models import Synchronization
from syncapp.sample_source import SampleSource, generate_animals
from tests.conftest import zoo_bundle

with SampleSource(records=generate_animals(count=COUNT, seed=3)) as source:
    bundle_import(zoo_bundle(location=source.url))
    sync = Synchronization.objects.get(reference="animals")
    sync.source_config = {"endpoint": "/animals.json", "resultsPosition": "_root", "pagination": {"type": "none"}}
    sync.conditions = {}
    sync.save()
    run = runs.run_start(synchronization=sync)
    run.refresh_from_db()
print(json.dumps({"status": run.status, "counts": run.counts, "error": run.error_message}))
"""


def test_a_page_with_more_objects_than_sqlite_takes_parameters_syncs_in_the_embedded_default(tmp_path):
    # Given SQLite, which takes at most 32,766 parameters in one statement, and a page of 33,000 objects
    env = {
        key: value for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "SYNC_REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(SYNC_DATA_DIR=str(tmp_path), SYNC_CHUNK_SIZE="5000")

    result = subprocess.run([sys.executable, "-c", BIG_PAGE.replace("COUNT", "33000")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)

    # Then the run reads, plans and writes them all
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "succeeded", outcome
    assert outcome["counts"]["created"] == 33000
