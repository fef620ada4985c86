"""The command line (SYNC.md section 11): `sync import|export|run|status|list` and `register export`."""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from contracts.models import ContractLog, RunPage, SynchronizationContract, SynchronizationRun
from contracts.runs import run_create
from syncapp.configuration import CREDENTIALS_KEPT, bundle_export, bundle_import
from syncapp.models import Mapping, Object, Register, Schema, Source, Synchronization
from tests.conftest import zoo_bundle
from tests.helpers import active_ids, import_zoo
from tests.loopback import LoopbackServer

COUNT_KEYS = {"found", "filtered", "unchanged", "created", "updated", "deleted", "invalid", "failed"}
SECRET = "s3cret-token-that-must-never-leave"


def run_command(*args: str) -> tuple[str, int]:
    """Run a management command; return what it printed and its exit code (0 when it just returned)."""
    out = io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=io.StringIO())
    except SystemExit as exit_:
        return out.getvalue(), exit_.code
    return out.getvalue(), 0


def canonical(document) -> str:
    return json.dumps(document, sort_keys=True)


def one_json_object(output: str) -> dict:
    """Return the single JSON object that `output` consists of."""
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    value = json.loads(lines[0])
    assert isinstance(value, dict), value
    return value


@pytest.fixture
def zoo_file(tmp_path, sample_source) -> Path:
    path = tmp_path / "zoo.json"
    path.write_text(json.dumps(zoo_bundle(location=sample_source.url)), encoding="utf-8")
    return path


@pytest.fixture
def zoo(in_process_tasks, transactional_db, sample_source) -> Synchronization:
    """The zoo imported and pointed at the sample source; runs execute in this process."""
    return import_zoo(zoo_bundle(location=sample_source.url))


BROKEN_SOURCES = {
    "answers 500": (500, "application/json", b'{"detail": "Server error."}'),
    "answers HTML": (200, "text/html", b"<html><body>Maintenance</body></html>"),
}


@pytest.fixture(params=list(BROKEN_SOURCES.values()), ids=list(BROKEN_SOURCES))
def broken_zoo(request, in_process_tasks, transactional_db) -> Iterator[Synchronization]:
    status, content_type, body = request.param
    with LoopbackServer(lambda answered: (status, {"Content-Type": content_type}, body)) as server:
        yield import_zoo(zoo_bundle(location=server.url))


# -- sync import ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sync_import_creates_the_bundle_and_says_what_it_did(zoo_file):
    output, code = run_command("sync", "import", str(zoo_file))

    assert code == 0
    assert "sources: 1 created, 0 updated" in output
    assert "synchronizations: 1 created, 0 updated" in output
    assert f"imported {zoo_file}" in output
    assert Synchronization.objects.get().reference == "animals"


@pytest.mark.django_db
def test_sync_import_twice_reports_everything_updated_as_json(zoo_file):
    run_command("sync", "import", str(zoo_file))

    output, code = run_command("sync", "import", str(zoo_file), "--json")

    assert code == 0
    answer = one_json_object(output)
    assert {key: answer[key] for key in ("created", "updated", "ignored", "moved", "notImported", "problems")} == {
        "created": {"sources": 0, "registers": 0, "mappings": 0, "rules": 0, "synchronizations": 0},
        "updated": {"sources": 1, "registers": 1, "mappings": 1, "rules": 0, "synchronizations": 1},
        "ignored": [], "moved": [], "notImported": [], "problems": [],
    }
    assert {(item["kind"], item["outcome"]) for item in answer["objects"]} == {
        ("source", "imported"), ("register", "imported"), ("mapping", "imported"), ("synchronization", "imported"),
    }
    assert Synchronization.objects.count() == 1


@pytest.mark.django_db
def test_sync_import_reads_a_yaml_file(tmp_path):
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump(zoo_bundle(location="http://127.0.0.1:8900")), encoding="utf-8")

    _output, code = run_command("sync", "import", str(path))

    assert code == 0
    assert Synchronization.objects.get().target_schema.path == "zoo/animal"


@pytest.mark.django_db
def test_sync_import_of_an_invalid_bundle_fails_with_every_problem_and_writes_nothing(tmp_path):
    bundle = zoo_bundle(location="ftp://127.0.0.1/animals")
    bundle["synchronizations"][0]["conditions"] = {"=~": [{"var": "name"}, "^A"]}
    path = tmp_path / "zoo.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")

    with pytest.raises(CommandError) as caught:
        call_command("sync", "import", str(path), stdout=io.StringIO())

    message = str(caught.value)
    assert "2 problem(s)" in message
    assert "sources[0].location: an api source needs an http:// or https:// URL" in message
    assert 'synchronizations[0].conditions: unknown operator "=~"' in message
    assert caught.value.returncode == 1
    assert not Source.objects.exists()
    assert not Synchronization.objects.exists()


@pytest.mark.django_db
def test_sync_import_of_a_file_that_is_not_json_names_the_file(tmp_path):
    path = tmp_path / "zoo.json"
    path.write_text("sources:\n  - reference: zoo-api\n", encoding="utf-8")

    with pytest.raises(CommandError) as caught:
        call_command("sync", "import", str(path), stdout=io.StringIO())

    assert f"{path}: not valid json" in str(caught.value)


@pytest.mark.django_db
def test_sync_import_of_a_missing_file_is_a_clear_error(tmp_path):
    path = tmp_path / "nowhere.json"

    with pytest.raises(CommandError, match="no such file") as caught:
        call_command("sync", "import", str(path), stdout=io.StringIO())

    assert str(path) in str(caught.value)


# -- sync export ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sync_export_prints_the_bundle_without_credentials():
    bundle = zoo_bundle(location="http://127.0.0.1:8900")
    bundle["sources"][0]["credentials"] = {"token": SECRET}
    bundle_import(bundle)

    output, code = run_command("sync", "export")

    assert code == 0
    assert json.loads(output) == bundle_export()
    assert json.loads(output)["synchronizations"][0]["reference"] == "animals"
    assert SECRET not in output
    assert json.loads(output)["sources"][0]["credentials"] == CREDENTIALS_KEPT


@pytest.mark.django_db
def test_sync_export_to_a_file_imports_back_into_an_emptied_database(tmp_path):
    bundle_import(zoo_bundle(location="http://127.0.0.1:8900"))
    path = tmp_path / "export.json"

    output, code = run_command("sync", "export", "--output", str(path))
    exported = json.loads(path.read_text(encoding="utf-8"))
    for model in (Synchronization, Mapping, Schema, Register, Source):
        model.objects.all().delete()
    run_command("sync", "import", str(path))

    assert code == 0
    assert output == ""
    assert bundle_export() == exported


# -- sync list --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sync_list_without_synchronizations_says_how_to_add_them():
    output, code = run_command("sync", "list")

    assert code == 0
    assert "no synchronizations" in output


@pytest.mark.django_db
def test_sync_list_shows_every_synchronization():
    bundle_import(zoo_bundle(location="http://127.0.0.1:8900"))

    output, _code = run_command("sync", "list")
    rows = json.loads(run_command("sync", "list", "--json")[0])

    assert "animals" in output
    assert "never run" in output
    assert rows == [{
        "id": Synchronization.objects.get().pk, "reference": "animals", "name": "Active animals into the zoo register",
        "isEnabled": True, "schedule": "", "nextRunAt": None, "contracts": 0, "lastRun": None,
    }]


def test_sync_list_shows_the_last_run(zoo, animals):
    run_command("sync", "run", "animals", "--wait")

    output, _code = run_command("sync", "list")
    [row] = json.loads(run_command("sync", "list", "--json")[0])

    run = SynchronizationRun.objects.get()
    assert f"last run {run.pk} succeeded" in output
    assert row["contracts"] == len(active_ids(animals))
    assert (row["lastRun"]["id"], row["lastRun"]["status"]) == (run.pk, "succeeded")


# -- sync run ---------------------------------------------------------------------------------------------


def test_sync_run_wait_json_prints_the_finished_run_as_one_json_object(zoo, animals):
    output, code = run_command("sync", "run", "animals", "--wait", "--json")

    result = one_json_object(output)
    active = len(active_ids(animals))
    assert code == 0
    assert result["id"] == SynchronizationRun.objects.get().pk
    assert result["status"] == "succeeded"
    assert set(result["counts"]) == COUNT_KEYS
    assert result["counts"] == {
        "found": len(animals), "filtered": len(animals) - active, "unchanged": 0, "created": active,
        "updated": 0, "deleted": 0, "invalid": 0, "failed": 0,
    }
    assert Object.objects.count() == active


def test_a_second_sync_run_prints_every_object_unchanged(zoo, animals):
    run_command("sync", "run", "animals", "--wait", "--json")

    output, code = run_command("sync", "run", "animals", "--wait", "--json")

    result = one_json_object(output)
    active = len(active_ids(animals))
    assert code == 0
    assert result["status"] == "succeeded"
    assert result["counts"] == {
        "found": len(animals), "filtered": len(animals) - active, "unchanged": active, "created": 0,
        "updated": 0, "deleted": 0, "invalid": 0, "failed": 0,
    }
    assert Object.objects.count() == active


def test_sync_run_without_json_prints_the_status_and_counts(zoo, animals):
    output, code = run_command("sync", "run", "animals", "--wait")

    assert code == 0
    assert "of animals: succeeded" in output
    assert f"created {len(active_ids(animals))}" in output


def test_sync_run_force_writes_every_object_again(zoo, animals):
    run_command("sync", "run", "animals", "--wait")

    output, code = run_command("sync", "run", "animals", "--wait", "--force", "--json")

    result = one_json_object(output)
    assert code == 0
    assert result["isForced"] is True
    assert result["counts"]["updated"] == len(active_ids(animals))
    assert result["counts"]["unchanged"] == 0


def test_sync_run_test_json_reports_what_would_happen_and_writes_nothing(zoo, animals):
    output, code = run_command("sync", "run", "animals", "--test", "--json")

    result = one_json_object(output)
    first_page = animals[:50]
    would_create = [a for a in first_page if a["status"] == "active"]
    assert code == 0
    assert result["isTest"] is True
    assert result["status"] == "succeeded"
    assert set(result["counts"]) == COUNT_KEYS
    assert result["counts"]["found"] == len(first_page)
    assert result["counts"]["created"] == len(would_create)
    creates = [entry for entry in result["report"] if entry["action"] == "create"]
    assert [entry["originId"] for entry in creates] == [str(a["id"]) for a in would_create]
    assert creates[0]["result"]["name"] == would_create[0]["name"]
    assert creates[0]["result"]["label"] == f"{would_create[0]['name']} the {would_create[0]['species'].lower()}"
    assert {"action": "filtered", "count": len(first_page) - len(would_create)} in result["report"]
    # Nothing was written but the run record
    assert not Object.objects.exists()
    assert not SynchronizationContract.objects.exists()
    assert not ContractLog.objects.exists()
    assert not RunPage.objects.exists()


def test_sync_run_test_after_a_run_reports_unchanged_and_changes_nothing(zoo, sample_source, animals):
    run_command("sync", "run", "animals", "--wait")
    changed = next(a for a in animals if a["status"] == "active")
    sample_source.update_record(changed["id"], name="Renamed")
    objects = sorted(map(str, Object.objects.values_list("uuid", "updated_at")))

    output, code = run_command("sync", "run", "animals", "--test", "--json")

    result = one_json_object(output)
    assert code == 0
    assert {"originId": str(changed["id"]), "action": "update"}.items() <= next(
        entry for entry in result["report"] if entry.get("originId") == str(changed["id"])
    ).items()
    assert result["counts"]["updated"] == 1
    assert result["counts"]["unchanged"] == len([a for a in animals[:50] if a["status"] == "active"]) - 1
    assert sorted(map(str, Object.objects.values_list("uuid", "updated_at"))) == objects
    assert not Object.objects.filter(data__name="Renamed").exists()


def test_sync_run_exits_3_when_an_object_is_invalid_against_the_schema(zoo, sample_source, animals):
    # Given one active record whose name the schema refuses (minLength 1)
    broken = next(a for a in animals if a["status"] == "active")
    sample_source.update_record(broken["id"], name="")

    output, code = run_command("sync", "run", "animals", "--wait", "--json")

    result = one_json_object(output)
    assert code == 3
    assert result["status"] == "partial"
    assert result["counts"]["invalid"] == 1
    assert result["counts"]["created"] == len(active_ids(animals)) - 1
    contract = SynchronizationContract.objects.get(origin_id=str(broken["id"]))
    assert contract.status == "invalid"
    assert "name" in contract.last_error


def test_sync_run_exits_1_when_the_source_cannot_be_read(broken_zoo):
    output, code = run_command("sync", "run", "animals", "--wait", "--json")

    result = one_json_object(output)
    assert code == 1
    assert result["status"] == "failed"
    assert "/animals" in result["errorMessage"]
    assert set(result["counts"]) == COUNT_KEYS
    assert not Object.objects.exists()


def test_sync_run_test_exits_1_when_the_source_cannot_be_read(broken_zoo):
    output, code = run_command("sync", "run", "animals", "--test", "--json")

    result = one_json_object(output)
    assert code == 1
    assert result["status"] == "failed"
    assert result["errorMessage"]


@pytest.mark.django_db
def test_sync_run_without_wait_prints_the_queued_run_and_returns(settings):
    # Given tasks that go to a broker, and a test transaction that never commits: nothing is sent
    settings.TASKS_IN_PROCESS = False
    bundle_import(zoo_bundle(location="http://127.0.0.1:8900"))

    output, code = run_command("sync", "run", "animals", "--json")

    result = one_json_object(output)
    assert code == 0
    assert result["status"] == "queued"
    assert result["id"] == SynchronizationRun.objects.get().pk
    assert set(result["counts"]) == COUNT_KEYS


@pytest.mark.django_db
def test_sync_run_wait_gives_up_after_its_timeout_with_exit_6(settings):
    settings.TASKS_IN_PROCESS = False
    bundle_import(zoo_bundle(location="http://127.0.0.1:8900"))
    out = io.StringIO()

    with pytest.raises(CommandError, match="still queued after 0.2s") as caught:
        call_command("sync", "run", "animals", "--wait", "--timeout", "0.2", "--json", stdout=out)

    assert caught.value.returncode == 6
    assert one_json_object(out.getvalue())["status"] == "queued"


def test_sync_run_of_an_unknown_reference_is_a_command_error(zoo):
    with pytest.raises(CommandError, match="no synchronization with reference 'giraffes'"):
        call_command("sync", "run", "giraffes", "--wait", stdout=io.StringIO())

    assert not SynchronizationRun.objects.exists()


def test_sync_run_is_refused_while_another_run_is_active(zoo):
    active = run_create(synchronization=zoo)

    with pytest.raises(CommandError, match=f"already has run {active.pk}") as caught:
        call_command("sync", "run", "animals", "--wait", stdout=io.StringIO())

    assert caught.value.returncode == 5
    assert SynchronizationRun.objects.count() == 1


def test_sync_run_of_a_disabled_synchronization_is_refused(zoo):
    Synchronization.objects.filter(pk=zoo.pk).update(is_enabled=False)

    with pytest.raises(CommandError, match="disabled") as caught:
        call_command("sync", "run", "animals", "--wait", stdout=io.StringIO())

    assert caught.value.returncode == 5
    assert not SynchronizationRun.objects.exists()


# -- sync status ------------------------------------------------------------------------------------------


def test_sync_status_of_a_run_prints_it_as_json(zoo):
    printed = one_json_object(run_command("sync", "run", "animals", "--wait", "--json")[0])

    by_id, code = run_command("sync", "status", str(printed["id"]), "--json")
    by_reference, _code = run_command("sync", "status", printed["reference"], "--json")

    assert code == 0
    status = one_json_object(by_id)
    assert (status["id"], status["status"], status["counts"]) == (printed["id"], "succeeded", printed["counts"])
    assert one_json_object(by_reference) == status


def test_sync_status_of_a_run_prints_its_status_and_counts(zoo):
    run_command("sync", "run", "animals", "--wait")
    run = SynchronizationRun.objects.get()

    output, _code = run_command("sync", "status", str(run.pk))

    assert f"run {run.pk} of animals: succeeded" in output
    assert f"found {run.found}" in output


def test_sync_status_without_a_run_lists_the_latest_runs(zoo):
    run_command("sync", "run", "animals", "--wait")
    run_command("sync", "run", "animals", "--test")
    first, test = SynchronizationRun.objects.order_by("pk")

    output, code = run_command("sync", "status")
    listed = json.loads(run_command("sync", "status", "--json")[0])

    assert code == 0
    lines = output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].split()[:3] == [str(test.pk), "animals", "succeeded"]
    assert "test" in lines[0]
    assert "test" not in lines[1]
    assert lines[1].split()[:3] == [str(first.pk), "animals", "succeeded"]
    assert [(run["id"], run["isTest"]) for run in listed] == [(test.pk, True), (first.pk, False)]
    assert all(set(run["counts"]) == COUNT_KEYS for run in listed)


@pytest.mark.django_db
def test_sync_status_without_any_run_prints_an_empty_list():
    output, code = run_command("sync", "status", "--json")

    assert code == 0
    assert json.loads(output) == []


@pytest.mark.django_db
@pytest.mark.parametrize("run", ["4711", "8d3e5f6a-0000-4000-8000-000000000000"])
def test_sync_status_of_an_unknown_run_is_a_command_error(run):
    with pytest.raises(CommandError, match="no run"):
        call_command("sync", "status", run, stdout=io.StringIO())


@pytest.mark.django_db
def test_sync_status_of_a_run_that_is_neither_an_id_nor_a_reference_is_a_command_error():
    with pytest.raises(CommandError, match="no run"):
        call_command("sync", "status", "yesterday", stdout=io.StringIO())


# -- register export --------------------------------------------------------------------------------------


def test_register_export_prints_one_json_document_per_line_per_object(zoo, animals):
    run_command("sync", "run", "animals", "--wait")

    output, code = run_command("register", "export", "zoo/animal")

    lines = output.strip().splitlines()
    documents = [json.loads(line) for line in lines]
    assert code == 0
    assert len(lines) == Object.objects.count() == len(active_ids(animals))
    assert all(isinstance(document, dict) for document in documents)
    assert sorted(documents, key=canonical) == sorted(Object.objects.values_list("data", flat=True), key=canonical)
    assert {document["name"] for document in documents} == {a["name"] for a in animals if a["status"] == "active"}


def test_register_export_with_id_adds_each_objects_uuid(zoo):
    run_command("sync", "run", "animals", "--wait")

    output, _code = run_command("register", "export", "zoo/animal", "--with-id")

    exported = {document.pop("_id"): document for document in map(json.loads, output.strip().splitlines())}
    assert exported == {str(uuid): data for uuid, data in Object.objects.values_list("uuid", "data")}


@pytest.mark.django_db
def test_register_export_of_an_empty_schema_prints_nothing():
    bundle_import(zoo_bundle(location="http://127.0.0.1:8900"))

    output, code = run_command("register", "export", "zoo/animal")

    assert code == 0
    assert output == ""


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["zoo/giraffe", "safari/animal", "zoo"])
def test_register_export_of_an_unknown_schema_is_a_clear_error(path):
    bundle_import(zoo_bundle(location="http://127.0.0.1:8900"))

    with pytest.raises(CommandError, match=f"no schema '{path}'"):
        call_command("register", "export", path, stdout=io.StringIO())
