"""The embedded default: SQLite and tasks in process, with nothing configured, on the chunked path."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

from syncapp.sample_source import generate_animals
from tests.conftest import ROOT, zoo_bundle
from tests.loopback import LoopbackServer, Request
from tests.syncapp.targets.test_api import TargetApi


def write_lock_try(path) -> str:
    """Take SQLite's write lock from a connection of our own (waiting up to 5 s) and give it back; return
    "written", or why it could not be taken."""
    with closing(sqlite3.connect(path, timeout=5, isolation_level=None)) as db:
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            return str(error)
    return "written"


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
    # It says how to run the synchronization again once its sample source has stopped, with the project's own
    # Python, and how to start the runner; it leaves nothing enabled that points at the port now closed
    python = str(Path(sys.executable).relative_to(ROOT))
    port = result.stdout.split("Sample source serving 300 animals at http://127.0.0.1:")[1].split("/")[0]
    assert f"{python} manage.py sample_source --port {port} --count 300" in result.stdout
    assert f"{python} manage.py sync serve" in result.stdout and " python manage.py" not in result.stdout
    with closing(sqlite3.connect(tmp_path / "sync.sqlite3")) as db:
        assert db.execute("SELECT reference, is_enabled FROM syncapp_synchronization").fetchall() == [("animals", 0)]


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


# ---------------------------------------------------------------------------------------------
# SQLite shared with other processes, and in-process runs whose process dies


def embedded_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Return the environment of the embedded default (SQLite in tmp_path, tasks in process)."""
    env = {
        key: value for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "SYNC_REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(SYNC_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING", **extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def paged_records(count: int) -> list[dict]:
    return [{**animal, "id": index + 1, "status": "active"}
            for index, animal in enumerate(generate_animals(count=count, seed=5))]


def paged_server(records: list[dict], *, size: int, before_page=None) -> LoopbackServer:
    """A source answering ?page=N with `size` records a page; `before_page(n)` runs before each answer."""
    def handler(request: Request):
        page = int(request.query.get("page", 1))
        if before_page is not None:
            before_page(page)
        return 200, {}, {"results": records[(page - 1) * size: page * size]}

    return LoopbackServer(handler)


def embedded_zoo(env: dict[str, str], tmp_path: Path, *, location: str) -> None:
    """Migrate the embedded database and import the zoo pointed at a paged source."""
    assert manage(env, "migrate", "--no-input", "-v", "0").returncode == 0
    bundle = zoo_bundle(location=location)
    bundle["synchronizations"][0]["sourceConfig"] = {
        "endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"},
    }
    path = tmp_path / "zoo.json"
    path.write_text(json.dumps(bundle))
    imported = manage(env, "sync", "import", str(path))
    assert imported.returncode == 0, imported.stderr


def database_rows(tmp_path: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(tmp_path / "sync.sqlite3", timeout=60)) as db:
        return db.execute(sql).fetchall()


HAMMER = """
import os, sqlite3, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.test import Client
from syncapp.models import Source

stop, ready, database = sys.argv[1], sys.argv[2], sys.argv[3]
admin = User.objects.get(username="admin")
rounds = 0
while not os.path.exists(stop):
    # An admin logging in and out (session rows, last_login) and saving a source, as the admin does
    client = Client()
    login = {"username": "admin", "password": "pw-for-tests-only"}
    assert client.post("/admin/login/?next=/admin/", login).status_code == 302
    source = Source.objects.get(reference="zoo-api")
    source.description = f"edited {rounds}"
    source.save()
    LogEntry.objects.log_actions(admin.pk, [source], CHANGE, change_message="edited")
    client.post("/admin/logout/")
    # And a writer of its own that reads, then writes and holds its lock a moment, as a deferred
    # transaction does (SQLite refuses it at once when the service wrote in between: it gives up)
    db = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.execute("SELECT count(*) FROM django_session").fetchone()
        db.execute("UPDATE syncapp_source SET description = description || '.' WHERE reference = 'zoo-api'")
        time.sleep(0.2)
        db.execute("COMMIT")
    except sqlite3.OperationalError:
        db.execute("ROLLBACK")
    db.close()
    rounds += 1
    if rounds == 1:
        open(ready, "w").close()
print(rounds)
"""


def test_a_run_on_sqlite_succeeds_while_another_process_writes_to_the_database_all_along(tmp_path):
    # Given the embedded default, and an admin logging in and saving in another process the whole time
    env = embedded_env(tmp_path, SYNC_CHUNK_SIZE="20", DJANGO_SUPERUSER_PASSWORD="pw-for-tests-only")
    records = paged_records(1500)
    with paged_server(records, size=50) as server:
        embedded_zoo(env, tmp_path, location=server.url)
        made = manage(env, "createsuperuser", "--no-input", "--username", "admin", "--email", "admin@example.org")
        assert made.returncode == 0, made.stderr
        stop, ready = tmp_path / "stop", tmp_path / "ready"
        hammer = subprocess.Popen(
            [sys.executable, "-c", HAMMER, str(stop), str(ready), str(tmp_path / "sync.sqlite3")], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not ready.exists():
                assert hammer.poll() is None, hammer.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "the other process never wrote"
                time.sleep(0.05)

            # When a run syncs 1,500 records in 75 chunks meanwhile
            result = manage(env, "sync", "run", "animals", "--json", timeout=600)
        finally:
            stop.touch()
            out, err = hammer.communicate(timeout=120)

    # Then the run succeeded with every object written once, and the other process wrote all along
    assert hammer.returncode == 0, err[-3000:]
    assert int(out.strip()) >= 1  # it wrote before the run began, and went on until it ended
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "succeeded", outcome
    assert outcome["counts"]["created"] == 1500
    assert database_rows(tmp_path, "SELECT count(*) FROM syncapp_object") == [(1500,)]
    assert database_rows(tmp_path, "SELECT status, count(*) FROM contracts_synchronizationcontract GROUP BY 1") == [
        ("synced", 1500)
    ]


def test_sqlite_locked_by_another_writer_longer_than_the_busy_timeout_delays_the_run_and_loses_nothing(tmp_path):
    # Given a busy timeout of one second, and another writer that takes the database's write lock for
    # four seconds as soon as page 3 is asked for, before page 3 is answered
    env = embedded_env(tmp_path, SYNC_CHUNK_SIZE="10", SYNC_SQLITE_BUSY_TIMEOUT="1", SYNC_PAGE_CONCURRENCY="1")
    records = paged_records(200)
    locked, released = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with closing(sqlite3.connect(tmp_path / "sync.sqlite3", isolation_level=None)) as db:
            db.execute("BEGIN EXCLUSIVE")
            locked.set()
            time.sleep(4)
            db.execute("COMMIT")
        released.set()

    def before_page(page: int) -> None:
        if page == 3 and not locked.is_set():
            threading.Thread(target=hold_the_lock, daemon=True).start()
            assert locked.wait(30)

    with paged_server(records, size=20, before_page=before_page) as server:
        embedded_zoo(env, tmp_path, location=server.url)

        # When a run reads the ten pages
        result = manage(env, "sync", "run", "animals", "--json", timeout=300)

    # Then the writes that met the lock were retried once it was gone, and every object is written once
    assert released.is_set()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "database is locked" in result.stderr and "run again in" in result.stderr
    outcome = json.loads(result.stdout)
    assert (outcome["status"], outcome["counts"]["created"], outcome["counts"]["failed"]) == ("succeeded", 200, 0)
    assert database_rows(tmp_path, "SELECT count(*) FROM syncapp_object") == [(200,)]
    assert database_rows(tmp_path, "SELECT count(*) FROM contracts_contractlog") == [(200,)]


def test_a_run_whose_process_was_killed_does_not_block_the_next_run(tmp_path):
    # Given an in-process run whose process is killed while it waits for page 2
    env = embedded_env(tmp_path)
    records = paged_records(60)
    asked, hold = threading.Event(), threading.Event()

    def before_page(page: int) -> None:
        if page == 2 and not hold.is_set():
            asked.set()
            hold.wait(60)

    with paged_server(records, size=20, before_page=before_page) as server:
        embedded_zoo(env, tmp_path, location=server.url)
        process = subprocess.Popen([sys.executable, "manage.py", "sync", "run", "animals"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert asked.wait(120), "the run never asked for page 2"
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            hold.set()
        [(lost_id, status)] = database_rows(tmp_path, "SELECT id, status FROM contracts_synchronizationrun")
        assert status == "running"

        # When the synchronization is run again
        result = manage(env, "sync", "run", "animals", "--json")

    # Then it is not refused: the lost run is failed, naming its process, and the new one syncs everything
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert (outcome["status"], outcome["counts"]["created"]) == ("succeeded", 60)
    [(status, error)] = database_rows(
        tmp_path, f"SELECT status, error_message FROM contracts_synchronizationrun WHERE id = {lost_id}"
    )
    assert status == "failed"
    assert f"the process running it (pid {process.pid}) ended" in error


def test_an_api_target_being_called_does_not_hold_sqlite_s_write_lock(tmp_path):
    # Given the embedded service pushing three objects to an API target, and another writer (an import,
    # the admin) that writes to the database while the target is being called, before it answers
    env = embedded_env(tmp_path, SYNC_PAGE_CONCURRENCY="1")
    meanwhile: list[str] = []

    def target(request: Request):
        if request.method != "POST":
            return 400, {}, {"detail": "no such route"}
        # Waits up to the busy timeout for the write lock: held through the call, it never comes.
        meanwhile.append(write_lock_try(tmp_path / "sync.sqlite3"))
        return 201, {}, {**request.json(), "id": f"t{len(meanwhile)}"}

    with paged_server(paged_records(3), size=20) as source, LoopbackServer(target) as api:
        assert manage(env, "migrate", "--no-input", "-v", "0").returncode == 0
        bundle = {
            "sources": [{"reference": "zoo-api", "location": source.url}, {"reference": "crm", "location": api.url}],
            "mappings": [{"reference": "to-crm", "mapping": {"name": "name", "kind": "species"}}],
            "synchronizations": [{
                "reference": "push", "sourceType": "api", "sourceId": "zoo-api",
                "sourceConfig": {"endpoint": "/a", "resultsPosition": "results", "pagination": {"type": "page"}},
                "sourceTargetMapping": "to-crm", "targetType": "api", "targetId": "crm",
                "targetConfig": {"endpoint": "/items"},
            }],
        }
        (tmp_path / "push.json").write_text(json.dumps(bundle))
        assert manage(env, "sync", "import", str(tmp_path / "push.json")).returncode == 0

        # When a run sends them
        result = manage(env, "sync", "run", "push", "--json")

    # Then the other writer wrote during every call, and every object was sent once and recorded
    assert result.returncode == 0, result.stderr[-3000:]
    assert meanwhile == ["written"] * 3
    outcome = json.loads(result.stdout)
    assert (outcome["status"], outcome["counts"]["created"]) == ("succeeded", 3)
    targets = database_rows(tmp_path, "SELECT target_id FROM contracts_synchronizationcontract")
    assert sorted(row[0] for row in targets) == ["t1", "t2", "t3"]


def test_a_fetch_file_rule_downloading_does_not_hold_sqlite_s_write_lock(tmp_path):
    # Given the embedded service syncing three cases with two attachments each, fetched by a fetch_file rule
    # (timed after the write, as OpenConnector ships it), and another writer (an import, the admin) that
    # writes to the database while each file is being downloaded, before it is answered
    env = embedded_env(tmp_path, SYNC_PAGE_CONCURRENCY="1")
    files = {f"/files/{case}-{name}": f"{name} of case {case}".encode() for case in (1, 2, 3) for name in ("a", "b")}
    meanwhile: list[str] = []

    def zaaksysteem(request: Request):
        if request.path == "/cases":
            return 200, {}, [{"id": case, "title": f"Case {case}", "attachments": [
                {"endpoint": f"/files/{case}-a", "filename": f"{case}-a.txt"}, {"endpoint": f"/files/{case}-b"},
            ]} for case in (1, 2, 3)]
        if request.path not in files:
            return 404, {}, {"error": "no such path"}
        # Waits up to five seconds for the write lock: held through the download, it never comes.
        meanwhile.append(write_lock_try(tmp_path / "sync.sqlite3"))
        etag = f'"{len(meanwhile)}"'
        if request.header("If-None-Match") and request.path != "/files/2-b":
            return 304, {"ETag": request.header("If-None-Match")}, b""
        return 200, {"Content-Type": "text/plain", "ETag": etag}, files[request.path]

    with LoopbackServer(zaaksysteem) as server:
        assert manage(env, "migrate", "--no-input", "-v", "0").returncode == 0
        bundle = {
            "sources": [{"reference": "zaaksysteem", "location": server.url}],
            "registers": [{"reference": "woo", "schemas": [{"reference": "publicatie", "schema": {"type": "object"}}]}],
            "rules": [{"reference": "fetch-files", "name": "Fetch files", "type": "fetch_file", "timing": "after",
                       "configuration": {"source": "zaaksysteem", "filePath": "attachments"}}],
            "synchronizations": [{
                "reference": "cases", "sourceType": "api", "sourceId": "zaaksysteem",
                "sourceConfig": {"endpoint": "/cases", "resultsPosition": "_root", "pagination": {"type": "none"}},
                "targetType": "register/schema", "targetId": "woo/publicatie", "actions": ["fetch-files"],
            }],
        }
        (tmp_path / "cases.json").write_text(json.dumps(bundle))
        assert manage(env, "sync", "import", str(tmp_path / "cases.json")).returncode == 0

        # When a run fetches the six files, and a second run asks for them again, conditionally (one changed)
        first = manage(env, "sync", "run", "cases", "--json")
        second = manage(env, "sync", "run", "cases", "--force", "--json")

    # Then the other writer wrote during every download, and every file is stored with its object
    assert first.returncode == 0 and second.returncode == 0, first.stderr[-3000:] + second.stderr[-3000:]
    assert meanwhile == ["written"] * 12
    assert [json.loads(run.stdout)["status"] for run in (first, second)] == ["succeeded", "succeeded"]
    stored = database_rows(tmp_path, "SELECT name, etag FROM syncapp_storedfile ORDER BY name")
    assert [name for name, _ in stored] == ["1-a.txt", "1-b.plain", "2-a.txt", "2-b.plain", "3-a.txt", "3-b.plain"]
    changed = dict(stored)["2-b.plain"]
    assert int(changed.strip('"')) > 6  # downloaded again by the second run; the others answered "not modified"


SAVES_THEN_EXIT = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from syncapp.configuration import bundle_import
from syncapp.models import Object, Schema
from syncapp.targets.register import register_object_save

bundle_import({
    "sources": [{"reference": "crm", "location": "LOCATION"}],
    "registers": [{"reference": "zoo", "schemas": [{"reference": "animal", "schema": {"type": "object"}}]}],
    "synchronizations": [{"reference": "push", "sourceType": "register/schema", "sourceId": "zoo/animal",
                          "targetType": "api", "targetId": "crm", "targetConfig": {"endpoint": "/items"}}],
})
animal = Schema.objects.get(reference="animal")
for n in range(30):
    register_object_save(obj=Object(schema=animal, data={"name": f"n{n}"}))
print("saved")
"""


def test_a_script_that_saves_and_ends_before_its_push_timer_fires_pushes_at_exit(tmp_path):
    # Given the embedded service, whose drains wait a minute after a save
    env = embedded_env(tmp_path, SYNC_PUSH_DELAY_SECONDS="60")
    assert manage(env, "migrate", "--no-input", "-v", "0").returncode == 0
    with TargetApi() as target:
        # When a script saves 30 objects of a pushed schema and ends at once
        script = SAVES_THEN_EXIT.replace("LOCATION", target.url)
        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=50)  # within the minute: it did not wait for the timer
        # Then it pushed them on its way out, by one run, and left nothing in the outbox
        assert result.returncode == 0, result.stderr[-3000:]
        assert sorted(item["name"] for item in target.items.values()) == sorted(f"n{n}" for n in range(30))
    runs = database_rows(tmp_path, "SELECT trigger, status FROM contracts_synchronizationrun")
    assert runs == [("event", "succeeded")]
    assert database_rows(tmp_path, "SELECT count(*) FROM syncapp_outboxchange") == [(0,)]
