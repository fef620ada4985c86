"""Shared fixtures: the sample source, a configured zoo synchronization, and a real Celery worker."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app as celery_app
from syncapp.sample_source import SampleSource, generate_animals

ROOT = Path(__file__).resolve().parent.parent
ZOO_BUNDLE = ROOT / "examples" / "zoo.json"

# Each test session gets its own queue, so a developer's session and CI never take each other's tasks.
TEST_QUEUE = f"test-{os.getpid()}"
celery_app.conf.task_default_queue = TEST_QUEUE


def zoo_bundle(*, location: str) -> dict:
    """Return the bundled zoo configuration pointing at a sample source."""
    bundle = json.loads(ZOO_BUNDLE.read_text())
    bundle["sources"][0]["location"] = location
    return copy.deepcopy(bundle)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Give each test session its own test database, so sessions side by side never drop each other's."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = f"test_{db['NAME']}_{os.getpid()}"


@pytest.fixture
def animals() -> list[dict]:
    return generate_animals(count=120, seed=11)


@pytest.fixture
def sample_source(animals):
    with SampleSource(records=animals, page_size=25) as source:
        yield source


@pytest.fixture
def in_process_tasks(settings):
    """Run tasks in this process, as the embedded default does."""
    settings.TASKS_IN_PROCESS = True


def _worker_database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("worker tests need PostgreSQL: run the suite with scripts/test.sh (it sets DATABASE_URL)")
    user = db.get("USER") or "root"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgresql://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """Start a real Celery worker process on the machine's Redis, pointed at the test database."""
    if settings.TASKS_IN_PROCESS:
        pytest.fail("worker tests need a broker: run the suite with scripts/test.sh (it sets CELERY_BROKER_URL)")
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": _worker_database_url(),
        "CELERY_TASK_DEFAULT_QUEUE": TEST_QUEUE,
        "PYTHONUNBUFFERED": "1",
    }
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(TEST_QUEUE)
    log = open(log_path, "w")  # noqa: SIM115 - the worker writes to it until the session ends
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", TEST_QUEUE,
            "--concurrency", "2", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
            "--hostname", f"{TEST_QUEUE}@%h",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the Celery worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    process.log_path = log_path
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture
def worker(celery_worker_process, transactional_db):
    """A running worker; the test's data is committed so the worker sees it."""
    return celery_worker_process
