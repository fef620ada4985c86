"""The admin in a real browser, as an operator meets it: the service run by `manage.py sync serve` with DEBUG
off, Chromium driven by Playwright. It configures, tests and runs a synchronization through the forms, and
saves the screenshots the README shows (docs/screenshots/, or the folder in SYNC_SCREENSHOTS_DIR)."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django import db
from django.contrib.auth.models import User

from contracts.models import ContractLog, SynchronizationRun
from syncapp.models import Object
from syncapp.sample_source import generate_animals
from syncapp.sources import source_config_schemas
from tests.conftest import ROOT, TEST_NETWORKS, _worker_database_url, process_group_stop
from tests.loopback import LoopbackServer, Request

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

CHROMIUM = Path(os.environ.get("SYNC_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("SYNC_SCREENSHOTS_DIR") or ROOT / "docs" / "screenshots")
# Generous: CI runs on a loaded machine. Nothing waits for a fixed time, only for what the page shows.
WAIT_MS = 120_000

ANIMALS = generate_animals(count=60, seed=7)
ACTIVE = sum(animal["status"] == "active" for animal in ANIMALS)
PER_PAGE = 10


class ServerProcess:
    """`manage.py sync serve` on a free loopback port, DEBUG off, tasks in process, on the test database."""

    def __init__(self, *, log_path: Path, env: dict[str, str] | None = None):
        """Start it on the test database, or with `env` (the whole environment) when given."""
        self.log_path = log_path
        if env is None:
            env = {
                **os.environ, "DATABASE_URL": _worker_database_url(), "DJANGO_DEBUG": "false",
                "SYNC_ALLOWED_NETWORKS": TEST_NETWORKS, "PYTHONUNBUFFERED": "1",
            }
            # The embedded mode: "Run now" queues the run for the runner of the same process (`sync serve`), as
            # a first try of the service does; no worker, no broker, nothing else to wait for.
            env.pop("CELERY_BROKER_URL", None)
        for _attempt in range(5):  # another process may take the free port before the server binds it
            self.port = _free_port()
            self._log = open(log_path, "w")  # noqa: SIM115 - the server writes to it while it lives
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "sync", "serve", "--port", str(self.port)],
                cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            if self._wait_ready():
                return
            self.stop()
            if "already in use" not in self.log().lower():
                break
        pytest.fail(f"the server did not start:\n{self.log()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/admin/login/", timeout=10) as answer:
                return answer.status == 200
            time.sleep(0.2)
        return False

    def log(self) -> str:
        return self.log_path.read_text()[-5000:]

    def kill(self) -> None:
        """End it at once (SIGKILL), as a crash or an out-of-memory kill would, and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)
        self._log.close()

    def stop(self) -> None:
        process_group_stop(self.process)
        self._log.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(transactional_db, tmp_path) -> Iterator[ServerProcess]:
    """The service as README's `sync serve` serves it; it sees what the test commits."""
    process = ServerProcess(log_path=tmp_path / "server.log")
    yield process
    process.stop()
    print(f"server log (tail):\n{process.log()}")  # shown by pytest when the test failed


@pytest.fixture
def browser(monkeypatch):
    """Headless Chromium of the machine (Playwright's own browser download is not used)."""
    # Playwright's sync API keeps an event loop in this thread, and Django then refuses ORM calls; the
    # test's own calls (a user, checks of what was stored) are plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs Playwright: pip install -e '.[dev]' (scripts/setup.sh does)")
    if not CHROMIUM.exists():
        pytest.fail(f"the browser test needs Chromium at {CHROMIUM}: apt-get install chromium (scripts/test.sh does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            # As root (CI containers) Chromium refuses to start without --no-sandbox; /dev/shm may be small.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        yield chromium
        chromium.close()
        # Connections the test opened while that loop ran are kept apart from the thread's (asgiref's
        # Local): closed here, or the test database could not be dropped at the end of the session.
        db.connections.close_all()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("dialog", lambda dialog: dialog.accept())  # a confirmation before a run or a test run
    yield page
    context.close()


@pytest.fixture
def zoo_source() -> Iterator[tuple[LoopbackServer, threading.Event]]:
    """A zoo API on loopback, DRF style with next links, whose pages after the first wait for a gate.

    The run then stays active, page 1 done, until the test has seen its page showing that; opening the
    gate lets it finish while the page is watched.
    """
    gate = threading.Event()
    base = {}  # the server's URL, for the next links, once it listens

    def handler(request: Request):
        if request.path != "/animals":
            return 404, {}, {"detail": "Not found."}
        number, size = int(request.query.get("page", 1)), int(request.query.get("per_page", PER_PAGE))
        if number > 1 and not gate.wait(timeout=300):
            return 503, {}, {"detail": "the test never opened the gate"}
        results = ANIMALS[(number - 1) * size: number * size]
        more = number * size < len(ANIMALS)
        following = f"{base['url']}/animals?page={number + 1}&per_page={size}" if more else None
        return 200, {}, {"count": len(ANIMALS), "next": following, "previous": None, "results": results}

    with LoopbackServer(handler) as server:
        base["url"] = server.url
        try:
            yield server, gate
        finally:
            gate.set()  # no request left hanging when the test failed early


def fill_json(page, field_id: str, value) -> None:
    """Put JSON into a JSON field: through its editor when the page made one, else into its textarea."""
    text = value if isinstance(value, str) else json.dumps(value, indent=2)
    through_editor = page.evaluate(
        """([id, text]) => {
            const field = document.getElementById(id);
            if (field && field.jsonEditor) { field.jsonEditor.setValue(text); return true; }
            return false;
        }""",
        [field_id, text],
    )
    if not through_editor:
        page.fill(f"#{field_id}", text)


def put_cursor(page, field_id: str, *, line: int, ch: int) -> None:
    """Focus a JSON field's editor with the cursor at `line` and `ch` (from 0), as a click there would."""
    page.evaluate("([id, line, ch]) => { const cm = document.getElementById(id).jsonEditor; cm.focus(); "
                  "cm.setCursor({line, ch}); }", [field_id, line, ch])


def offered_keys(page) -> list[str]:
    """The keys the open completion list offers, in its order."""
    page.locator(".CodeMirror-hints").wait_for()
    return page.locator(".CodeMirror-hints .json-editor-hint-key").all_inner_texts()


def hover_key(page, field_id: str, key: str):
    """Move the mouse onto `key` where it is written in a JSON field's editor; return the tooltip shown."""
    written = page.locator(f".field-{field_id.removeprefix('id_')} .CodeMirror .cm-property", has_text=f'"{key}"')
    box = written.first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    return page.locator(".json-editor-key-doc")


def shoot(page, name: str, *, element: str | None = None) -> None:
    """Save a screenshot of the window for the README, scrolled to `element` when given."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if element:
        page.locator(element).evaluate("element => element.scrollIntoView({block: 'center'})")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def save(page, *, button: str = "_save") -> None:
    page.click(f"input[name='{button}']")
    page.wait_for_load_state()


def test_an_operator_configures_tests_and_runs_a_synchronization_in_the_admin(server, page, zoo_source):
    from playwright.sync_api import expect

    source_server, gate = zoo_source
    User.objects.create_superuser("operator", "operator@zoo.example", "a-long-enough-password")
    css = []
    page.on("response", lambda answer: css.append((answer.url, answer.status)) if answer.url.endswith(".css") else None)

    # Served with DEBUG off: a missing page is the plain 404, not Django's debug page
    missing = page.goto(f"{server.url}/no-such-page/")
    assert missing.status == 404 and "DEBUG = True" not in page.content()

    # Log in, and the admin is styled: its stylesheet loads and applies
    page.goto(f"{server.url}/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "a-long-enough-password")
    page.click("input[type='submit']")
    expect(page.locator("#user-tools")).to_contain_text("operator")
    assert any(re.fullmatch(rf"{server.url}/static/admin/css/base(\.\w+)?\.css", url) and status == 200
               for url, status in css), css
    header = page.eval_on_selector("#header", "element => getComputedStyle(element).backgroundColor")
    assert header not in ("rgba(0, 0, 0, 0)", "transparent"), header  # unstyled, the header has no background
    shoot(page, "admin-home")

    # A source: the zoo API on loopback
    page.goto(f"{server.url}/admin/syncapp/source/add/")
    page.fill("#id_reference", "zoo-api")
    page.fill("#id_name", "Zoo API")
    page.fill("#id_location", source_server.url)
    fill_json(page, "id_configuration", {"headers": {"Accept": "application/json"}})
    save(page)
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    # A register, and a schema in it
    page.goto(f"{server.url}/admin/syncapp/register/add/")
    page.fill("#id_reference", "zoo")
    page.fill("#id_name", "Zoo")
    save(page)
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    page.goto(f"{server.url}/admin/syncapp/schema/add/")
    page.select_option("#id_register", label="Zoo")
    page.fill("#id_reference", "animal")
    page.fill("#id_name", "Animal")
    fill_json(page, "id_schema", {
        "type": "object", "required": ["name", "species", "legs"],
        "properties": {
            "name": {"type": "string", "minLength": 1}, "species": {"type": "string"},
            "legs": {"type": "integer", "minimum": 0}, "keeper": {"type": "string"}, "label": {"type": "string"},
        },
    })
    save(page)
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    # A mapping
    page.goto(f"{server.url}/admin/syncapp/mapping/add/")
    page.fill("#id_reference", "animal-in")
    page.fill("#id_name", "Animal from the zoo API")
    fill_json(page, "id_mapping", {
        "name": "name", "species": "species", "legs": "legs", "keeper": "keeper.email",
        "label": "{{ name }} the {{ species | lower }}",
    })
    fill_json(page, "id_cast", {"legs": "int"})
    save(page)
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    # The sourceConfig editor knows the keys of the source type chosen: a database source's, offered on Ctrl-Space
    # (not those already there), each with its description
    page.goto(f"{server.url}/admin/syncapp/synchronization/add/")
    declared = source_config_schemas()
    page.select_option("#id_source_type", "database")
    page.locator(".field-source_config").evaluate("element => element.scrollIntoView({block: 'center'})")
    fill_json(page, "id_source_config", '{\n  "table": "animals",\n  "idColumn": "animal_id"\n}')
    put_cursor(page, "id_source_config", line=1, ch=len('  "table": "animals",'))
    page.keyboard.press("Enter")
    page.keyboard.press("Control+Space")
    offered = offered_keys(page)
    assert offered == sorted(set(declared["database"]["properties"]) - {"table", "idColumn"}, key=str.lower), offered
    assert "keyColumn" in offered and "endpoint" not in offered
    described = page.locator(".CodeMirror-hint").filter(
        has=page.locator(".json-editor-hint-key", has_text=re.compile(r"^keyColumn$")))
    expect(described).to_contain_text(declared["database"]["properties"]["keyColumn"]["description"])
    shoot(page, "sourceconfig-completion")

    # As you type, the list narrows to what fits; the key chosen is written quoted, with its colon
    page.keyboard.press("Escape")
    page.keyboard.type('"ke')
    expect(page.locator(".CodeMirror-hints .json-editor-hint-key")).to_have_text(["keyColumn"])
    page.keyboard.press("Enter")
    page.keyboard.type('"animal_id",')
    assert json.loads(page.input_value("#id_source_config")) == {
        "table": "animals", "keyColumn": "animal_id", "idColumn": "animal_id",
    }

    # A key's description and type show when the mouse is on it
    tooltip = hover_key(page, "id_source_config", "table")
    expect(tooltip).to_contain_text(declared["database"]["properties"]["table"]["description"])
    expect(tooltip).to_contain_text("string")

    # A key the type does not take is marked at its line, with the name meant; so are a value of the wrong JSON
    # type and one outside its choices
    config = {
        "keyColumn": "animal_id", "tabel": "animals", "pageSize": "ten",
        "incremental": {"cursorPath": "updated_at", "type": "sometimes"},
    }
    fill_json(page, "id_source_config", config)
    marks = page.locator(".field-source_config .CodeMirror-lint-mark-error")
    expect(marks).to_have_text(['"tabel"', '"pageSize"', '"type"'])
    expect(page.locator("#id_source_config_json_status")).to_have_text(
        "Line 3, column 3: `tabel`: unknown key, did you mean `table`?")
    marked_lines = page.evaluate("""() => {
        const cm = document.getElementById("id_source_config").jsonEditor;
        return [...Array(cm.lineCount()).keys()].filter(
            line => (cm.lineInfo(line).gutterMarkers || {})["CodeMirror-lint-markers"]);
    }""")
    offending = ('"tabel"', '"pageSize"', '"type"')
    lines = json.dumps(config, indent=2).splitlines()
    assert marked_lines == [n for n, line in enumerate(lines) if line.lstrip().startswith(offending)], marked_lines

    # Another type chosen, its keys apply: an api source has an endpoint and no keyColumn
    page.select_option("#id_source_type", "api")
    expect(marks).to_have_text(['"keyColumn"', '"tabel"', '"pageSize"', '"type"'])
    fill_json(page, "id_source_config", "{\n  \n}")
    put_cursor(page, "id_source_config", line=1, ch=2)
    page.keyboard.press("Control+Space")
    offered = offered_keys(page)
    assert "endpoint" in offered and "keyColumn" not in offered, offered
    page.keyboard.press("Escape")

    # A synchronization whose conditions use an operator JSON Logic does not have
    page.fill("#id_reference", "animals")
    page.fill("#id_name", "Active animals into the zoo register")
    page.select_option("#id_source", label="Zoo API")
    fill_json(page, "id_source_config", {
        "endpoint": "/animals", "query": {"per_page": PER_PAGE}, "resultsPosition": "results", "idPosition": "id",
        "pagination": {"type": "next", "nextPath": "next"},
    })
    page.select_option("#id_source_target_mapping", label="Animal from the zoo API")
    fill_json(page, "id_conditions", {"is": [{"var": "status"}, "active"]})
    page.select_option("#id_target_schema", label="zoo/animal")
    save(page, button="_continue")

    # The form is refused, and the error is shown at the conditions field, the rest kept as typed
    errors = page.locator(".field-conditions .errorlist")
    expect(errors).to_contain_text('"is"')
    expect(page.locator(".errornote")).to_be_visible()
    assert page.input_value("#id_reference") == "animals"
    assert page.locator(".errorlist").count() == 1, page.locator(".errorlist").all_inner_texts()
    shoot(page, "synchronization-conditions-error", element=".field-conditions")

    # Fixed, it is saved
    fill_json(page, "id_conditions", {"==": [{"var": "status"}, "active"]})
    save(page, button="_continue")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    change_url = page.url

    # "Test sync": a preview of the first page, nothing written
    page.get_by_role("button", name="Test sync", exact=True).click()
    page.wait_for_load_state()
    expect(page.locator("#content")).to_contain_text("The first page was read")
    actives_on_page_one = sum(animal["status"] == "active" for animal in ANIMALS[:PER_PAGE])
    expect(page.locator("#content")).to_contain_text(f"created {actives_on_page_one}")
    expect(page.locator("#content td", has_text=re.compile(r"^create$"))).to_have_count(actives_on_page_one)
    assert not Object.objects.exists()
    shoot(page, "test-sync-preview")

    # "Run now": the run's page, which follows the run by itself while it is active: its summary first, the bar
    # indeterminate while the source is still being read (its total unknown)
    page.goto(change_url)
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#run-progress-text")).to_contain_text(re.compile(r"(queued|running): "))
    run = SynchronizationRun.objects.get(is_test=False)
    assert page.url.endswith(f"/admin/contracts/synchronizationrun/{run.pk}/change/")
    expect(page.locator("#run-progress-text")).to_contain_text(re.compile(r"running: \d+ of 10 objects done, 1 pages"))
    expect(page.locator("#run-summary [data-live=found]")).to_have_text("10")
    assert page.eval_on_selector("#run-progress", "bar => bar.hasAttribute('value')") is False
    expect(page.get_by_role("link", name="Cancel run")).to_be_visible()
    expect(page.locator("fieldset", has_text="All fields").locator("details")).not_to_have_attribute("open", "")
    shoot(page, "run-in-progress")

    # Cancel asks first; "No" leaves the run running
    page.get_by_role("link", name="Cancel run").click()
    expect(page.locator("#content")).to_contain_text(f"Cancel run {run.pk} of animals?")
    page.get_by_role("link", name="No, keep it running").click()
    expect(page.locator("#run-summary")).to_be_visible()
    run.refresh_from_db()
    assert run.status == "running"

    gate.set()  # the source answers its other pages: the page, never reloaded by the test, reaches the end
    expect(page.locator("#run-progress-text")).to_contain_text(
        f"succeeded: {len(ANIMALS)} of {len(ANIMALS)} objects done, {len(ANIMALS) // PER_PAGE} pages",
        timeout=WAIT_MS,
    )
    expect(page.locator("#run-summary [data-count=created]")).to_have_text(str(ACTIVE))
    expect(page.locator("#run-summary [data-count=filtered]")).to_have_text(str(len(ANIMALS) - ACTIVE))
    expect(page.locator("#run-summary [data-live=found]")).to_have_text(str(len(ANIMALS)))
    expect(page.locator("#run-progress")).to_have_attribute("value", str(len(ANIMALS)))
    expect(page.locator(".run-status")).to_have_text("succeeded")
    run.refresh_from_db()
    assert (run.status, run.created, run.filtered) == ("succeeded", ACTIVE, len(ANIMALS) - ACTIVE)
    assert Object.objects.count() == ACTIVE
    # Its pages, collapsed, open on a click; the raw fields too
    expect(page.locator("#run-pages tbody tr").first).to_be_hidden()
    page.locator("#run-pages > summary").click()
    expect(page.locator("#run-pages tbody tr")).to_have_count(len(ANIMALS) // PER_PAGE)
    page.locator("fieldset", has_text="All fields").locator("summary").click()
    expect(page.locator(".field-created .readonly")).to_have_text(str(ACTIVE))
    page.locator("fieldset", has_text="All fields").locator("summary").click()
    page.locator("#run-pages > summary").click()
    shoot(page, "run-finished")

    # Its logs: one per object it created
    page.get_by_role("link", name="Contract logs of this run").click()
    expect(page.locator("#changelist")).to_be_visible()
    assert f"run__id__exact={run.pk}" in page.url
    logs = ContractLog.objects.filter(run=run)
    expect(page.locator(".paginator")).to_contain_text(f"{logs.count()} contract log")
    assert logs.filter(action="create").count() == ACTIVE
    expect(page.locator("#result_list tbody tr").first).to_contain_text("create")
    shoot(page, "run-logs")

    # "Run again" from the run's page: a second run, nothing changed at the source
    page.go_back()
    page.get_by_role("button", name="Run again").click()
    expect(page.locator("#run-progress-text")).to_contain_text(f"succeeded: {len(ANIMALS)} of {len(ANIMALS)}")
    again = SynchronizationRun.objects.filter(is_test=False).exclude(pk=run.pk).get()
    assert page.url.endswith(f"/admin/contracts/synchronizationrun/{again.pk}/change/")
    expect(page.locator("#run-summary [data-count=unchanged]")).to_have_text(str(ACTIVE))

    # The synchronization's page charts its runs, one mark each, linked to their pages
    page.goto(change_url)
    marks = page.locator(".field-history svg.runs-chart a.run-mark")
    expect(marks).to_have_count(2)
    assert [marks.nth(index).get_attribute("data-run") for index in range(2)] == [str(run.pk), str(again.pk)]
    shoot(page, "synchronization-history", element=".field-history")
    marks.first.click()
    expect(page.locator("#run-summary")).to_contain_text("Summary")
    assert page.url.endswith(f"/admin/contracts/synchronizationrun/{run.pk}/change/")

    # The run list fits the window, with duration and error columns
    page.goto(f"{server.url}/admin/contracts/synchronizationrun/")
    last_column = page.locator("#result_list thead th").last
    expect(last_column).to_contain_text("Error")
    expect(page.locator("#result_list thead th", has_text="Duration")).to_be_visible()
    box, shown = last_column.bounding_box(), page.locator("#changelist .results").bounding_box()
    assert box["x"] + box["width"] <= shown["x"] + shown["width"] + 1, (box, shown)  # no column scrolled out of view
    shoot(page, "run-list")

    # The objects list shows what each object is
    page.goto(f"{server.url}/admin/syncapp/object/")
    summary = re.compile(r"name: .+ · species: .+ · legs: \d")
    expect(page.locator("#result_list tbody tr").first).to_contain_text(summary)
    shoot(page, "objects-list")
