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
    assert [(run["synchronizationReference"], run["status"]) for run in shown] == [("animals", "succeeded")] * 2


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

    # When it is interrupted (while the run is being made or while it waits: either is the same to it)
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


def test_progress_is_a_bar_redrawn_on_a_terminal_and_plain_lines_elsewhere(tmp_path):
    import pty

    from tests.syncapp.test_embedded import embedded_env, embedded_zoo, manage, paged_records, paged_server

    # Given a run of the embedded default that takes a few seconds (each page answers after 0.2 s)
    env = embedded_env(tmp_path)
    with paged_server(paged_records(200), size=20, before_page=lambda page: time.sleep(0.2)) as server:
        embedded_zoo(env, tmp_path, location=server.url)

        # When it runs with a terminal for its messages
        controller, terminal = pty.openpty()
        process = subprocess.Popen([sys.executable, "manage.py", "sync", "run", "animals"], cwd=ROOT, env=env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break  # the command ended and closed the terminal
            if not chunk:
                break
            shown += chunk
        os.close(controller)
        out, _ = process.communicate(timeout=120)

        # And again without one
        plain = manage(env, "sync", "run", "animals", "--force")

    # Then the terminal got one bar redrawn in place, with objects done of found and a rate
    assert process.returncode == 0, shown.decode(errors="replace")[-2000:]
    text = shown.decode(errors="replace")
    assert "\r" in text and "] " in text and "/200 objects" in text and "/s" in text
    assert "succeeded" in out.decode()
    # and elsewhere plain lines, no bar
    assert plain.returncode == 0, plain.stderr[-2000:]
    lines = [line for line in plain.stderr.splitlines() if "objects," in line]
    assert lines and "\r" not in plain.stderr and "[#" not in plain.stderr


@pytest.mark.parametrize("arguments", [
    ["sync", "export"], ["sync", "list"], ["sync", "list", "--json"], ["sync", "status", "animals"],
    ["register", "export", "zoo/animal"],
])
def test_a_reader_that_went_away_ends_the_command_quietly(tmp_path, arguments):
    from tests.syncapp.test_embedded import embedded_env, embedded_zoo

    # Given a configuration and an object to print
    env = embedded_env(tmp_path)
    embedded_zoo(env, tmp_path, location="http://127.0.0.1:9/")
    stored = subprocess.run([sys.executable, "manage.py", "shell", "-c", (
        "from syncapp.models import Object, Schema; "
        "Object.objects.create(schema=Schema.objects.get(reference='animal'), data={'name': 'Olga'})"
    )], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert stored.returncode == 0, stored.stderr

    # When the command writes into a pipe whose reader has gone (as `| head` does once it has its lines);
    # the reading end is closed before the command starts, so its first write meets the closed pipe
    reading, writing = os.pipe()
    os.close(reading)
    try:
        process = subprocess.run([sys.executable, "manage.py", *arguments], cwd=ROOT, env=env,
                                 stdout=writing, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(writing)

    # Then it ends with success and says nothing about the pipe: no traceback, no "Exception ignored"
    assert process.returncode == 0, process.stderr[-2000:]
    assert "Traceback" not in process.stderr and "BrokenPipe" not in process.stderr, process.stderr[-2000:]
