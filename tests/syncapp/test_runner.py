"""The runner of the embedded default (`manage.py sync serve`), and runs that never show as running when
nothing runs them: a restarted web server, `sync run` ending with a follow-up, a closed pipe, a killed
process, schedules that fire and say when they fire next."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from contracts.models import SynchronizationRun
from contracts.runs import process_identity
from syncapp import schedules
from syncapp.models import SchedulerHeartbeat, Synchronization
from syncapp.runner import runner_release, runner_tick
from tests.conftest import ROOT, zoo_bundle
from tests.factories import make_synchronization
from tests.helpers import import_zoo, runner_take
from tests.syncapp.test_embedded import database_rows, embedded_env, embedded_zoo, manage, paged_records, paged_server

# -------------------------------------------------------------------------------------------------
# In subprocesses, on SQLite in a temporary folder: the embedded default as a person starts it


class Serve:
    """`manage.py sync serve` on a free loopback port, in a session of its own (killed whole)."""

    def __init__(self, env: dict[str, str], log: Path):
        for _attempt in range(5):  # another process may take the free port before the server binds it
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            self.log_file = open(log, "a")  # noqa: SIM115 - the server writes to it while it lives
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "sync", "serve", "--port", str(self.port)], cwd=ROOT, env=env,
                stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True,
            )
            self.log = log
            if self._ready():
                return
            self.kill()
            if "address already in use" not in log.read_text().lower():
                break
        raise AssertionError(f"sync serve did not start:\n{log.read_text()[-3000:]}")

    def _ready(self) -> bool:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(OSError), urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/admin/login/", timeout=10
            ) as answer:
                return answer.status == 200
            time.sleep(0.2)
        return False

    def post(self, path: str, *, token: str) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=b"{}", method="POST",
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log_file.close()


def run_row(tmp_path: Path, run_id: int) -> tuple:
    [row] = database_rows(tmp_path, f"SELECT status, owner, created, error_message FROM contracts_synchronizationrun "
                                    f"WHERE id = {run_id}")
    return row


def until(condition, *, what: str, timeout: float = 120):
    """Wait, bounded, for what the runner in another process does; fail naming what never came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:g}s")


def test_a_run_asked_for_through_the_api_finishes_when_sync_serve_is_killed_during_it_and_started_again(tmp_path):
    # Given the embedded default served by `sync serve`, and a source that holds page 2 until the test lets it go
    env = embedded_env(tmp_path, SYNC_PAGE_CONCURRENCY="1", DJANGO_SUPERUSER_PASSWORD="pw-for-tests-only")
    asked: list[int] = []
    page_two, hold = threading.Event(), threading.Event()

    def before_page(page: int) -> None:
        asked.append(page)
        if page == 2 and not hold.is_set():
            page_two.set()
            hold.wait(60)

    with paged_server(paged_records(60), size=20, before_page=before_page) as source:
        embedded_zoo(env, tmp_path, location=source.url)
        assert manage(env, "createsuperuser", "--no-input", "--username", "admin",
                      "--email", "admin@example.org").returncode == 0
        token = manage(env, "sync", "token", "admin").stdout.strip()
        server = Serve(env, tmp_path / "serve.log")
        try:
            # When a run is asked for through the API: queued, then taken by the runner of that process
            started = server.post("/api/synchronizations/animals/run/", token=token)
            assert started["status"] == "queued"
            until(page_two.is_set, what="the runner never asked for page 2")
            status, owner, _, _ = run_row(tmp_path, started["id"])
            assert status == "running"
            assert owner.split(":")[1] == str(server.process.pid)

            # And the server is killed in the middle of it, and started again
            server.kill()
            hold.set()
            server = Serve(env, tmp_path / "serve.log")
            final = until(lambda: (row := run_row(tmp_path, started["id"]))[0] not in ("queued", "running") and row,
                          what="the run never ended after the restart")
        finally:
            hold.set()
            server.kill()

    # Then the new runner took the run up where it stopped and finished it: nothing lost, nothing twice
    status, owner, created, error = final
    assert (status, created, error) == ("succeeded", 60, ""), (final, (tmp_path / "serve.log").read_text()[-3000:])
    assert asked.count(1) == 1
    assert database_rows(tmp_path, "SELECT count(*) FROM syncapp_object") == [(60,)]


def follow_up_bundle(location: str) -> dict:
    bundle = zoo_bundle(location=location)
    first = bundle["synchronizations"][0]
    first["sourceConfig"] = {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"}}
    first["followUps"] = ["animals-again"]
    bundle["synchronizations"].append({**first, "reference": "animals-again", "name": "Again", "followUps": [],
                                       "sourceConfig": {**first["sourceConfig"], "endpoint": "/slow"}})
    return bundle


def test_sync_run_waits_for_the_follow_up_it_started_and_shows_how_it_ended(tmp_path):
    # Given a synchronization with a follow-up whose source takes two seconds to answer
    env = embedded_env(tmp_path)
    records = paged_records(10)

    def handler(request):
        if request.path == "/slow":
            time.sleep(2)  # longer than `sync run` takes to see its own run end
        page = int(request.query.get("page", 1))
        return 200, {}, {"results": records[(page - 1) * 10: page * 10]}

    from tests.loopback import LoopbackServer

    with LoopbackServer(handler) as source:
        assert manage(env, "migrate", "--no-input", "-v", "0").returncode == 0
        (tmp_path / "bundle.json").write_text(json.dumps(follow_up_bundle(source.url)))
        assert manage(env, "sync", "import", str(tmp_path / "bundle.json")).returncode == 0

        # When `sync run` runs the first one (in its own process: tasks in process)
        result = manage(env, "sync", "run", "animals", "--json")

    # Then it ended only once its follow-up had ended, and said how the follow-up went
    assert result.returncode == 0, result.stderr[-3000:]
    assert database_rows(tmp_path, "SELECT status, count(*) FROM contracts_synchronizationrun GROUP BY 1") == [
        ("succeeded", 2)
    ]
    printed = json.loads(result.stdout)
    assert [(run["synchronizationReference"], run["status"]) for run in printed["followUps"]] == [
        ("animals-again", "succeeded")
    ]


def test_sync_run_wait_whose_output_is_closed_by_head_leaves_no_run_running(tmp_path):
    # Given a run that lasts longer than the ten seconds between two progress lines written to a pipe
    env = embedded_env(tmp_path)

    def before_page(page: int) -> None:
        if page == 2:
            time.sleep(11)

    with paged_server(paged_records(40), size=20, before_page=before_page) as source:
        embedded_zoo(env, tmp_path, location=source.url)

        # When its progress is read by `head -1`, which reads the first line and goes away
        result = subprocess.run(
            ["bash", "-c", f"'{sys.executable}' manage.py sync run animals --wait 2>&1 | head -1"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )

    # Then `sync run` went on quietly to the end of its run, which nothing else would have run
    assert result.stdout.startswith("run 1 "), result.stdout + result.stderr
    assert database_rows(tmp_path, "SELECT status, created FROM contracts_synchronizationrun") == [("succeeded", 40)]


# -------------------------------------------------------------------------------------------------
# In this process: whoever looks at a run sees it failed when its process is gone


def dead_process_owner() -> tuple[str, int]:
    """Return the owner string of a process of this host that has ended, and its pid."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return f"{socket.gethostname()}:{ended.pid}:1", ended.pid


def show_by_api(api, run: SynchronizationRun) -> str:
    shown = api.get(f"/api/runs/{run.pk}/").json()
    return f"{shown['status']}: {shown['errorMessage']}"


def show_by_admin(admin_client, run: SynchronizationRun) -> str:
    return admin_client.get(reverse("admin:contracts_synchronizationrun_change", args=[run.pk])).content.decode()


def show_by_status(_client, run: SynchronizationRun) -> str:
    out = io.StringIO()
    call_command("sync", "status", str(run.pk), stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.parametrize("look", [show_by_api, show_by_admin, show_by_status], ids=["api", "admin", "sync status"])
def test_a_run_whose_process_was_killed_is_shown_failed_with_the_reason_by_the_next_look(look, api, admin_client,
                                                                                            sample_source):
    # Given a run owned by a `sync run` process of this host that was killed: it says "running" still
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    owner, pid = dead_process_owner()
    run = SynchronizationRun.objects.create(synchronization=sync, status="running", owner=owner,
                                            heartbeat_at=timezone.now(), started_at=timezone.now())

    # When anyone looks at it: the API, the admin, `sync status`
    shown = look(api if look is show_by_api else admin_client, run)

    # Then it is failed, with the reason, at once
    run.refresh_from_db()
    assert run.status == "failed"
    assert f"the process running it (pid {pid}) ended before the run did" in run.error_message
    assert "failed" in shown and f"pid {pid}" in shown


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_run_of_a_runner_that_died_is_queued_again_at_the_next_look_and_the_next_runner_finishes_it(
    api, sample_source, animals
):
    # Given a run the API queued, taken by a `sync serve` whose process then died
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    started = api.post(f"/api/synchronizations/{sync.pk}/run/", {}, format="json").json()
    owner, pid = dead_process_owner()
    SchedulerHeartbeat.objects.create(kind="sync serve", identity=owner, host=socket.gethostname(), pid=pid,
                                      ticked_at=timezone.now())
    SynchronizationRun.objects.filter(pk=started["id"]).update(owner=owner, status="running",
                                                               started_at=timezone.now())

    # When it is looked at, and a runner runs again
    shown = api.get(f"/api/runs/{started['id']}/").json()
    taken = runner_take()

    # Then it was shown queued for the next runner, not running and not failed, and that runner finished it
    assert (shown["status"], shown["errorMessage"]) == ("queued", "")
    assert taken == [started["id"]]
    run = SynchronizationRun.objects.get(pk=started["id"])
    assert (run.status, run.created, run.owner) == (
        "succeeded", sum(animal["status"] == "active" for animal in animals), process_identity()
    )


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_schedule_fires_under_the_runner_and_the_admin_shows_its_next_run_and_the_last_tick(
    admin_client, sample_source, animals
):
    # Given a synchronization due every minute, and no scheduler yet: the admin and `sync status` say so
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    Synchronization.objects.filter(pk=sync.pk).update(schedule="* * * * *")
    changelist = reverse("admin:syncapp_synchronization_changelist")
    before = admin_client.get(changelist).content.decode()
    status_before = io.StringIO()
    call_command("sync", "status", stdout=io.StringIO(), stderr=status_before)
    assert "No scheduler is running (never ticked)" in before and "manage.py sync serve" in before
    assert "No scheduler is running" in status_before.getvalue()

    # When the runner ticks (as `sync serve` does every SYNC_SCHEDULE_TICK_SECONDS) and takes what it queued
    [run] = runner_tick()
    assert (run.trigger, run.owner) == ("schedule", "")
    runner_take()

    # Then the scheduled run ran, the warning is gone, and the next run time and the last tick are shown
    run.refresh_from_db()
    assert (run.status, run.created) == ("succeeded", sum(animal["status"] == "active" for animal in animals))
    sync.refresh_from_db()
    due_before = schedules.synchronization_next_run(sync)
    page = admin_client.get(changelist).content.decode()
    change = admin_client.get(reverse("admin:syncapp_synchronization_change", args=[sync.pk])).content.decode()
    due_after = schedules.synchronization_next_run(sync)
    shown = {f"{timezone.localtime(due):%Y-%m-%d %H:%M:%S %Z}" for due in (due_before, due_after)}
    assert "No scheduler is running" not in page
    # (the list shows it as "next <day> <time>" under the schedule, the page whole beside "Next run")
    assert any(f"{day}</span> <span" in page and time_of_day in page
               for day, _, time_of_day in (text.partition(" ") for text in shown))
    assert "Next run" in change and any(text in change for text in shown)
    assert "Schedules last ticked" in change and f"sync serve on {socket.gethostname()}" in change
    status_after = io.StringIO()
    call_command("sync", "status", stdout=io.StringIO(), stderr=status_after)
    assert "No scheduler is running" not in status_after.getvalue()


def test_a_scheduler_silent_for_three_ticks_is_warned_about_again(db, settings):
    settings.SYNC_SCHEDULE_TICK_SECONDS = 60
    make_synchronization(schedule="* * * * *")
    schedules.scheduler_tick_record(kind="celery beat", now=timezone.now() - timedelta(seconds=181))

    assert "No scheduler is running (last tick" in schedules.scheduler_warning()
    schedules.scheduler_tick_record(kind="celery beat")
    assert schedules.scheduler_warning() is None


def test_with_a_broker_the_runner_takes_no_run_the_workers_are_to_run(db, settings):
    # Given a broker (Celery's workers run the runs) and a run queued for them, owned by no process
    settings.TASKS_IN_PROCESS = False
    queued = SynchronizationRun.objects.create(synchronization=make_synchronization(), status="queued",
                                               heartbeat_at=timezone.now())

    # When `sync serve`'s runner looks for queued runs, then nothing is taken from the workers
    assert runner_take() == []
    queued.refresh_from_db()
    assert (queued.status, queued.owner) == ("queued", "")


def test_a_runner_that_stops_queues_its_active_runs_again_for_the_next_one(db, settings):
    # Given a run this process (a `sync serve` being stopped) runs, and one of another process
    settings.TASKS_IN_PROCESS = True
    sync = make_synchronization()
    mine = SynchronizationRun.objects.create(synchronization=sync, status="running", owner=process_identity(),
                                             started_at=timezone.now(), heartbeat_at=timezone.now())
    theirs = SynchronizationRun.objects.create(synchronization=sync, status="running", owner="elsewhere:1:1",
                                               started_at=timezone.now(), heartbeat_at=timezone.now())

    # When it stops (SIGTERM, Ctrl-C)
    released = runner_release()

    # Then its run is queued for the next runner, with no owner; the other process's run is not touched
    assert released == [mine.pk]
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, mine.owner) == ("queued", "")
    assert (theirs.status, theirs.owner) == ("running", "elsewhere:1:1")
