"""Runs and schedules that tell the truth, in a real browser (issue 23): the embedded service as a first try
runs it (`manage.py sync serve` on a SQLite file, no broker), whose processes are killed under it.

A schedule set in the admin fires and its next run time is shown; a run of `sync serve` killed mid-run is
queued again and finished by the next `sync serve`; a run of a `sync run` killed mid-run is shown failed,
naming its process, at the next look. The sources are slow in a way the test decides: every page after
the first waits for the test's gate, so a run is killed while it certainly runs, never by a timer.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.utils import timezone

from syncapp.cron import schedule_next_due
from tests import test_admin_browser
from tests.conftest import ROOT, TEST_NETWORKS
from tests.loopback import LoopbackServer, Request
from tests.test_admin_browser import ACTIVE, ANIMALS, PER_PAGE, WAIT_MS, ServerProcess, save, shoot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

# The machine's Chromium and a page of it: the fixtures of the first browser test, shared.
browser = test_admin_browser.browser
page = test_admin_browser.page

EVERY_MINUTE = "* * * * *"
# How long a lost run may be shown as running once the page is looked at again (issue 23).
LOST_SHOWN_WITHIN_MS = 10_000
# The slow synchronizations, each behind its own gate.
SLOW = ("resumed", "abandoned")


class EmbeddedService:
    """The service's data on SQLite in a temporary data directory: migrated, with an operator and the zoo bundle."""

    def __init__(self, *, data_dir: Path, source_url: str):
        self.data_dir = data_dir
        # No database, broker or secret key given: the embedded default, which makes its keys in the data directory.
        self.env = {
            name: value for name, value in os.environ.items()
            if name not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY")
        }
        # The tick every second: a schedule that came due is started within a second, not a minute. A page
        # waits for its gate as long as the gate waits for the test: the test decides when it answers, not a
        # read timeout on a loaded machine.
        self.env.update(
            SYNC_DATA_DIR=str(data_dir), DJANGO_DEBUG="false", SYNC_ALLOWED_NETWORKS=TEST_NETWORKS,
            PYTHONUNBUFFERED="1", SYNC_SCHEDULE_TICK_SECONDS="1", SYNC_HTTP_READ_TIMEOUT="300",
        )
        self.manage("migrate", "--noinput")
        self.manage("createsuperuser", "--noinput", "--username", "operator", "--email", "operator@zoo.example",
                    extra_env={"DJANGO_SUPERUSER_PASSWORD": "a-long-enough-password"})
        bundle = data_dir / "zoo.json"
        bundle.write_text(json.dumps(zoo_bundle(source_url=source_url)))
        self.manage("sync", "import", str(bundle))

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **(extra_env or {})},
            capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def serve(self, *, log_name: str) -> ServerProcess:
        return ServerProcess(log_path=self.data_dir / log_name, env=self.env)


def zoo_bundle(*, source_url: str) -> dict:
    """The zoo of examples/zoo.json with three synchronizations: one fast, two on the slow endpoints."""

    def synchronization(reference: str, endpoint: str) -> dict:
        return {
            "reference": reference, "name": f"Active animals ({reference})", "sourceType": "api", "sourceId": "zoo-api",
            "sourceConfig": {
                "endpoint": endpoint, "query": {"per_page": PER_PAGE}, "resultsPosition": "results",
                "idPosition": "id", "pagination": {"type": "next", "nextPath": "next"},
            },
            "sourceTargetMapping": "animal-in", "conditions": {"==": [{"var": "status"}, "active"]},
            "targetType": "register/schema", "targetId": "zoo/animal",
        }

    return {
        "sources": [{"reference": "zoo-api", "name": "Zoo API", "type": "api", "location": source_url,
                     "configuration": {"headers": {"Accept": "application/json"}}}],
        "registers": [{"reference": "zoo", "name": "Zoo", "schemas": [{
            "reference": "animal", "name": "Animal",
            "schema": {"type": "object", "required": ["name", "species", "legs"], "properties": {
                "name": {"type": "string", "minLength": 1}, "species": {"type": "string"},
                "legs": {"type": "integer", "minimum": 0}, "keeper": {"type": "string"},
            }},
        }]}],
        "mappings": [{"reference": "animal-in", "name": "Animal from the zoo API",
                      "mapping": {"name": "name", "species": "species", "legs": "legs", "keeper": "keeper.email"},
                      "cast": {"legs": "int"}}],
        "synchronizations": [
            synchronization("scheduled", "/animals"),
            *(synchronization(reference, f"/slow/{reference}/animals") for reference in SLOW),
        ],
    }


@pytest.fixture
def zoo_sources() -> Iterator[tuple[LoopbackServer, dict[str, threading.Event]]]:
    """The zoo API on loopback: /animals answers at once; /slow/NAME/animals answers its pages after the first
    only once the gate NAME is open, so a run of it stays running, page 1 done, until the test opens it."""
    gates = {name: threading.Event() for name in SLOW}
    base = {}

    def handler(request: Request):
        found = re.fullmatch(r"(?:/slow/(\w+))?/animals", request.path)
        if found is None or (found[1] and found[1] not in gates):
            return 404, {}, {"detail": "Not found."}
        number, size = int(request.query.get("page", 1)), int(request.query.get("per_page", PER_PAGE))
        if found[1] and number > 1 and not gates[found[1]].wait(timeout=300):
            return 503, {}, {"detail": "the test never opened the gate"}
        results = ANIMALS[(number - 1) * size: number * size]
        more = number * size < len(ANIMALS)
        following = f"{base['url']}{request.path}?page={number + 1}&per_page={size}" if more else None
        return 200, {}, {"count": len(ANIMALS), "next": following, "previous": None, "results": results}

    with LoopbackServer(handler) as server:
        base["url"] = server.url
        try:
            yield server, gates
        finally:
            for gate in gates.values():
                gate.set()  # no request left hanging when the test failed early


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    """Let each `expect` wait as long as the first browser test's page does: the runner, on a loaded machine,
    takes its time; what a test waits for less long says so."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    yield
    expect.set_options(timeout=5_000)  # Playwright's own


@pytest.fixture
def service(tmp_path, zoo_sources) -> EmbeddedService:
    return EmbeddedService(data_dir=tmp_path / "data", source_url=zoo_sources[0].url)


@pytest.fixture
def servers(service) -> Iterator[list[ServerProcess]]:
    """The `sync serve` processes the test starts, stopped (those still alive) at its end."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()
        print(f"{server.log_path.name} (tail):\n{server.log()}")  # shown by pytest when the test failed


def log_in(page, *, url: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "a-long-enough-password")
    page.click("input[type='submit']")
    expect(page.locator("#user-tools")).to_contain_text("operator")


def open_synchronization(page, *, url: str, reference: str) -> None:
    page.goto(f"{url}/admin/syncapp/synchronization/")
    page.locator("#result_list a", has_text=re.compile(rf"^{reference}$")).click()
    page.wait_for_load_state()


def reload_until(page, locator, *, seconds: float = 120) -> None:
    """Reload the page until `locator` is on it; fail after `seconds`. (The runner acts in its own time.)"""
    deadline = time.monotonic() + seconds
    while not locator.count():
        if time.monotonic() > deadline:
            pytest.fail(f"not shown within {seconds:g} s: {locator}\n{page.locator('#content').inner_text()}")
        page.wait_for_timeout(250)
        page.reload()


def shown_time(moment: datetime) -> str:
    """Write a time as the admin shows it (the service's time zone)."""
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}"


def test_schedules_fire_lost_runs_are_told_and_a_killed_runner_s_run_is_finished(
    service, servers, zoo_sources, page, tmp_path,
):
    from playwright.sync_api import expect

    _, gates = zoo_sources
    servers.append(service.serve(log_name="serve-1.log"))
    first = servers[0]
    log_in(page, url=first.url)

    # A schedule given in the admin: no next run before, the next minute after
    open_synchronization(page, url=first.url, reference="scheduled")
    expect(page.locator(".field-next_run .readonly")).to_have_text("-")
    page.fill("#id_schedule", EVERY_MINUTE)
    save(page, button="_continue")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    # It fires at the runner's next tick. Cron has no seconds: `* * * * *` came due at the start of this
    # minute, less than the grace of two ticks ago, and no due time of the synchronization was acted on
    # yet, so the first tick after the save starts it (syncapp.schedules.schedules_start_due), whatever
    # the second it is. The page, reloaded, lists the run.
    reload_until(page, page.locator(".field-tools tbody tr"))
    before = datetime.now(UTC)
    page.reload()
    after = datetime.now(UTC)
    next_run = page.locator(".field-next_run .readonly").inner_text()
    assert next_run in {shown_time(schedule_next_due(EVERY_MINUTE, now=moment)) for moment in (before, after)}, next_run
    expect(page.locator(".field-scheduler_last_tick .readonly")).to_contain_text(
        re.compile(rf"by sync serve on .+ \(pid {first.process.pid}\)$"))
    shoot(page, "synchronization-schedule", element=".field-next_run")

    # The list of synchronizations shows it too, with its schedule and its last run
    page.goto(f"{first.url}/admin/syncapp/synchronization/")
    row = page.locator("#result_list tbody tr", has=page.locator("a", has_text=re.compile(r"^scheduled$")))
    expect(row.locator(".field-schedule_shown")).to_have_text(
        re.compile(rf"^{re.escape(EVERY_MINUTE)}\s*next \d{{4}}-\d\d-\d\d \d\d:\d\d:00 \w+$"))
    expect(row.locator(".field-last_run")).to_contain_text(re.compile(r"^\d+ \w+$"))  # another may have begun
    shoot(page, "synchronization-list")
    last_column, shown = page.locator("#result_list thead th").last, page.locator("#changelist .results")
    expect(last_column).to_contain_text("Last run")
    box, room = last_column.bounding_box(), shown.bounding_box()
    assert box["x"] + box["width"] <= room["x"] + room["width"] + 1, (box, room)  # no column scrolled out of view
    page.go_back()

    # The scheduled run (the first, should the next minute have started another) runs to its end
    run_links = page.locator(".field-tools tbody tr td:first-child a")
    first_run = min(run_links.all_inner_texts(), key=int)
    page.locator(".field-tools tbody tr td:first-child a", has_text=re.compile(rf"^{first_run}$")).click()
    expect(page.locator("#run-summary")).to_contain_text("schedule · full")
    expect(page.locator("#run-progress-text")).to_contain_text(
        f"succeeded: {len(ANIMALS)} of {len(ANIMALS)} objects done, {len(ANIMALS) // PER_PAGE} pages")
    expect(page.locator("#run-summary [data-count=created]")).to_have_text(str(ACTIVE))
    shoot(page, "run-scheduled")

    # The schedule taken away, nothing is next
    open_synchronization(page, url=first.url, reference="scheduled")
    page.fill("#id_schedule", "")
    save(page, button="_continue")
    expect(page.locator(".field-next_run .readonly")).to_have_text("-")

    # "Run now" on a slow source: the run's page shows page 1 done, page 2 waiting for the source
    open_synchronization(page, url=first.url, reference="resumed")
    page.get_by_role("button", name="Run now").click()
    # (Page 1's objects may be written yet or not: the runner may be waiting for page 2 first.)
    running = re.compile(rf"running: \d+ of {PER_PAGE} objects done, 1 pages")
    expect(page.locator("#run-progress-text")).to_contain_text(running)
    run_path = re.sub(r"^https?://[^/]+", "", page.url)
    # Its owner, a raw field the page does not refresh: the runner of this `sync serve`
    reload_until(page, page.locator(".field-owner .readonly", has_text=f":{first.process.pid}:"))

    # `sync serve` killed mid-run, and started again: the run is queued for the new runner, which takes it
    first.kill()
    servers.append(service.serve(log_name="serve-2.log"))
    second = servers[1]
    page.goto(f"{second.url}{run_path}")
    if page.locator("#id_username").count():  # another port: the browser may not send the session again
        log_in(page, url=second.url)
        page.goto(f"{second.url}{run_path}")
    reload_until(page, page.locator(".field-owner .readonly", has_text=f":{second.process.pid}:"))
    expect(page.locator(".run-status")).to_have_text("running")

    # The source answers again: the run finishes where it stopped, every object counted once
    gates["resumed"].set()
    expect(page.locator("#run-progress-text")).to_contain_text(
        f"succeeded: {len(ANIMALS)} of {len(ANIMALS)} objects done, {len(ANIMALS) // PER_PAGE} pages")
    expect(page.locator("#run-summary [data-count=created]")).to_have_text(str(ACTIVE))
    expect(page.locator("#run-summary [data-count=filtered]")).to_have_text(str(len(ANIMALS) - ACTIVE))
    expect(page.locator("#run-summary [data-live=found]")).to_have_text(str(len(ANIMALS)))
    expect(page.locator("#run-summary [data-count=failed]")).to_have_text("0")

    # A run of `sync run` in a terminal, on the slow source: its page shows it running
    cli_log = open(tmp_path / "sync-run.log", "w")  # noqa: SIM115 - the command writes to it while it lives
    cli = subprocess.Popen(
        [sys.executable, "manage.py", "sync", "run", "abandoned"], cwd=ROOT, env=service.env,
        stdout=cli_log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        open_synchronization(page, url=second.url, reference="abandoned")
        reload_until(page, page.locator(".field-tools tbody tr"))
        page.locator(".field-tools tbody tr td:first-child a").first.click()
        expect(page.locator("#run-progress-text")).to_contain_text(running)
        expect(page.locator(".field-owner .readonly")).to_contain_text(f":{cli.pid}:")

        # The command killed: at the next look the run is failed, its process named
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait(timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cli.pid, signal.SIGKILL)
        cli.wait(timeout=20)
        cli_log.close()
    page.reload()
    expect(page.locator(".run-status")).to_have_text("failed", timeout=LOST_SHOWN_WITHIN_MS)
    expect(page.locator(".run-error pre")).to_contain_text(
        f"the process running it (pid {cli.pid}) ended before the run did", timeout=LOST_SHOWN_WITHIN_MS)
    expect(page.locator("#run-summary [data-live=found]")).to_have_text(str(PER_PAGE))
    shoot(page, "run-lost")
