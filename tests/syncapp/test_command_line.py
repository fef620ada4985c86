"""The command line as scripts and people meet it: --json everywhere, a synchronization's status, Ctrl-C
without a traceback."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import call_command

from contracts.models import SynchronizationRun
from tests.conftest import ROOT, TEST_QUEUE, _worker_database_url, purge_queue, zoo_bundle
from tests.helpers import import_zoo


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
@pytest.mark.parametrize("arguments", [
    ["list"], ["status"], ["status", "animals"], ["status", "RUN"], ["export"], ["keygen"], ["rekey"],
    ["run", "animals"], ["run", "animals", "--test"], ["cancel", "ACTIVE"], ["import", "BUNDLE"],
])
def test_every_command_prints_json_that_parses_with_json(arguments, sample_source, tmp_path):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    call_command("sync", "run", "animals", stdout=io.StringIO(), stderr=io.StringIO())
    ended = SynchronizationRun.objects.get()
    active = SynchronizationRun.objects.create(synchronization=sync, status="running", is_test=True)
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(zoo_bundle(location=sample_source.url)))
    named = {"ACTIVE": str(active.pk), "RUN": str(ended.pk), "BUNDLE": str(bundle)}
    arguments = [named.get(value, value) for value in arguments]
    out = io.StringIO()

    try:
        call_command("sync", *arguments, "--json", stdout=out, stderr=io.StringIO())
    except SystemExit as exit_:
        assert exit_.code in (0, None, 3), out.getvalue()

    assert json.loads(out.getvalue()) is not None


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_status_of_a_synchronization_lists_its_last_runs(sample_source):
    import_zoo(zoo_bundle(location=sample_source.url))
    for _ in range(2):
        call_command("sync", "run", "animals", stdout=io.StringIO(), stderr=io.StringIO())
    out = io.StringIO()

    call_command("sync", "status", "animals", "--json", stdout=out)

    shown = json.loads(out.getvalue())
    assert [(run["synchronization"], run["status"]) for run in shown] == [("animals", "succeeded")] * 2


def environment() -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": _worker_database_url(), "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def unread_queue(transactional_db, settings):
    if settings.TASKS_IN_PROCESS:
        pytest.fail("this test needs a broker: run the suite with scripts/test.sh")
    queue = f"{TEST_QUEUE}-cli"
    purge_queue(queue)
    yield queue
    purge_queue(queue)


@pytest.mark.parametrize("cancel", [False, True])
def test_ctrl_c_while_waiting_stops_the_wait_cleanly_and_cancels_only_when_asked(unread_queue, sample_source, cancel):
    # Given a run waiting for a worker that never comes (its queue is read by nobody)
    import_zoo(zoo_bundle(location=sample_source.url))
    command = [sys.executable, "manage.py", "sync", "run", "animals", "--wait"]
    process = subprocess.Popen(
        command + (["--cancel-on-interrupt"] if cancel else []), cwd=ROOT, text=True,
        env={**environment(), "CELERY_TASK_DEFAULT_QUEUE": unread_queue}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not SynchronizationRun.objects.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    time.sleep(0.5)  # into the waiting loop

    # When it is interrupted
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)

    # Then it exits 130 with a word on the run, and no traceback
    assert process.returncode == 130, err
    assert "Traceback" not in err
    run = SynchronizationRun.objects.get()
    if cancel:
        assert "cancelled" in err and run.status == "cancelled"
    else:
        assert "goes on" in err and run.status == "queued"
