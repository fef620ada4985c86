"""File sources: CSV, NDJSON and JSON files, uploaded, at a URL or in an allowed directory, read a page
at a time through the whole pipeline (conditions, mapping, contracts, deletion), and garbage refused
with the file, line and record named."""
from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from contracts.models import RunPage, SynchronizationContract
from syncapp import runs as sync_runs
from syncapp.configuration import ConfigurationInvalid, bundle_import
from syncapp.errors import ConfigurationError, SourceError
from syncapp.models import Object, Source, Synchronization
from syncapp.sources import reader_for
from tests.helpers import run
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

KEY = "file-s3cret-key"
PEOPLE = [
    {"id": "1", "name": "Ada", "city": "London", "age": "36", "status": "active"},
    {"id": "2", "name": "Grace", "city": "New York", "age": "85", "status": "active"},
    {"id": "3", "name": "Alan", "city": "Wilmslow", "age": "41", "status": "retired"},
    {"id": "4", "name": "Edsger", "city": "Nuenen", "age": "72", "status": "active"},
    {"id": "5", "name": "Barbara", "city": "Boston", "age": "84", "status": "active"},
]
# The second version: 2 changed, 4 deleted, 6 added.
PEOPLE_CHANGED = [
    {**PEOPLE[0], "city": "Cambridge"}, PEOPLE[1], PEOPLE[2], PEOPLE[4],
    {"id": "6", "name": "Frances", "city": "Toronto", "age": "88", "status": "active"},
]
PEOPLE_CHANGED[1] = {**PEOPLE[1], "name": "Grace Hopper"}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SYNC_FILE_ALLOWED_DIRS = ()
    return settings.MEDIA_ROOT


def as_csv(rows: list[dict], *, delimiter: str = ",") -> bytes:
    columns = list(rows[0])
    lines = [delimiter.join(columns)] + [delimiter.join(row[column] for column in columns) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def as_ndjson(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def as_json(rows: list[dict], *, at: str | None = None) -> bytes:
    if at is None:
        return json.dumps(rows, indent=2).encode()
    return json.dumps({"meta": {"note": "[not the list]", "count": len(rows)}, at: {"items": rows}}).encode()


def file_sync(*, source: dict, upload: tuple[str, bytes] | None = None, **source_config) -> Synchronization:
    """Make a file source and a synchronization of its active people into the register (age cast to a number)."""
    if upload is not None:
        Source.objects.create(reference="people-file", name="People file", type="file",
                              file=ContentFile(upload[1], name=upload[0]), **source)
    bundle_import({
        **({"sources": [{"reference": "people-file", "type": "file", **source}]} if upload is None else {}),
        "registers": [{"reference": "crm", "schemas": [{"reference": "person", "schema": {
            "type": "object", "required": ["name", "age"], "properties": {"age": {"type": "integer"}},
        }}]}],
        "mappings": [{"reference": "person-in", "mapping": {"name": "name", "city": "city", "age": "age"},
                      "cast": {"age": "int"}}],
        "synchronizations": [{
            "reference": "people", "sourceType": "file", "sourceId": "people-file",
            "sourceConfig": {"pageSize": 2, **source_config}, "conditions": {"==": [{"var": "status"}, "active"]},
            "sourceTargetMapping": "person-in", "targetType": "register/schema", "targetId": "crm/person",
        }],
    })
    return Synchronization.objects.get(reference="people")


def people_in_register() -> dict[str, dict]:
    by_origin = dict(SynchronizationContract.objects.filter(target_id__isnull=False).values_list("target_id",
                                                                                                 "origin_id"))
    return {by_origin[str(obj.uuid)]: obj.data for obj in Object.objects.all()}


def replace_upload(name: str, content: bytes) -> None:
    source = Source.objects.get(reference="people-file")
    source.file.save(name, ContentFile(content))


class FileServer(LoopbackServer):
    """Serve one file at /files/<name> to requests carrying the key; count the downloads."""

    def __init__(self, name: str, content: bytes):
        self.files = {f"/files/{name}": content}
        super().__init__(self.answer)

    def answer(self, request: Request) -> tuple[int, dict, bytes]:
        if request.query.get("key") != KEY:
            return 403, {"Content-Type": "text/plain"}, b"no key"
        if request.path not in self.files:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        return 200, {"Content-Type": "application/octet-stream"}, self.files[request.path]


def url_source(server: FileServer, name: str) -> dict:
    return {"location": f"{server.url}/files/{name}",
            "credentials": {"type": "apiKey", "in": "query", "name": "key", "value": KEY}}


# ---------------------------------------------------------------------------------------------
# The three formats, uploaded and at a URL, through two runs


EXPECTED_FIRST = {"1": {"name": "Ada", "city": "London", "age": 36},
                  "2": {"name": "Grace", "city": "New York", "age": 85},
                  "4": {"name": "Edsger", "city": "Nuenen", "age": 72},
                  "5": {"name": "Barbara", "city": "Boston", "age": 84}}
EXPECTED_SECOND = {"1": {"name": "Ada", "city": "Cambridge", "age": 36},
                   "2": {"name": "Grace Hopper", "city": "New York", "age": 85},
                   "5": {"name": "Barbara", "city": "Boston", "age": 84},
                   "6": {"name": "Frances", "city": "Toronto", "age": 88}}
FORMATS = {
    "csv": ("people.csv", as_csv),
    "ndjson": ("people.ndjson", as_ndjson),
    "json": ("people.json", as_json),
}


def assert_two_runs(first, second) -> None:
    assert (first.status, first.found, first.filtered, first.created) == ("succeeded", 5, 1, 4), first.error_message
    assert first.pages_fetched == 3  # 5 records, 2 a page
    assert (second.status, second.created, second.updated, second.unchanged, second.deleted) == (
        "succeeded", 1, 2, 1, 1), second.error_message
    assert people_in_register() == EXPECTED_SECOND


@pytest.mark.parametrize("kind", FORMATS)
def test_an_uploaded_file_syncs_into_the_register_and_a_changed_upload_updates_adds_and_deletes(kind):
    name, write = FORMATS[kind]
    sync = file_sync(source={}, upload=(name, write(PEOPLE)))

    first = run(sync)
    assert people_in_register() == EXPECTED_FIRST
    replace_upload(name, write(PEOPLE_CHANGED))
    second = run(sync)

    assert_two_runs(first, second)


@pytest.mark.parametrize("kind", FORMATS)
def test_a_file_at_a_url_syncs_with_the_sources_credentials_downloaded_once_per_run(kind):
    name, write = FORMATS[kind]
    with FileServer(name, write(PEOPLE)) as server:
        sync = file_sync(source=url_source(server, name))

        first = run(sync)
        assert people_in_register() == EXPECTED_FIRST
        server.files[f"/files/{name}"] = write(PEOPLE_CHANGED)
        second = run(sync)

    assert_two_runs(first, second)
    assert [request.path for request in server.requests] == [f"/files/{name}"] * 2  # three pages a run, one download
    assert not any((Path(sync_settings_media()) / "file-sources" / "downloads").iterdir())  # copies removed


def sync_settings_media() -> Path:
    from django.conf import settings

    return Path(settings.MEDIA_ROOT)


def test_a_json_file_with_its_objects_at_a_dot_path_syncs():
    sync = file_sync(source={}, upload=("export.json", as_json(PEOPLE, at="data")), objectsPath="data.items")

    first = run(sync)

    assert (first.status, first.created) == ("succeeded", 4), first.error_message
    assert people_in_register() == EXPECTED_FIRST


def test_a_csv_with_its_own_delimiter_quotes_newlines_and_encoding_is_read_across_pages():
    content = (
        "id;name;city;age;status\r\n"
        '1;"Lovelace; Ada";"London\r\nUK";36;active\r\n'
        "\r\n"
        '2;"Grace ""Amazing"" Hopper";Arlington;85;active\r\n'
        "3;Zoë;Zürich;30;active\r\n"
    ).encode("latin-1")
    sync = file_sync(source={}, upload=("people.txt", content), format="csv", delimiter=";", encoding="latin-1",
                     pageSize=1)

    first = run(sync)

    assert (first.status, first.created, first.pages_fetched) == ("succeeded", 3, 3), first.error_message
    assert people_in_register() == {
        "1": {"name": "Lovelace; Ada", "city": "London\r\nUK", "age": 36},
        "2": {"name": 'Grace "Amazing" Hopper', "city": "Arlington", "age": 85},
        "3": {"name": "Zoë", "city": "Zürich", "age": 30},
    }


def test_a_csv_without_a_header_takes_the_configured_columns_and_a_byte_order_mark_is_skipped():
    content = "\ufeff" + "".join(f"{p['id']},{p['name']},{p['city']},{p['age']},{p['status']}\n" for p in PEOPLE)
    sync = file_sync(source={}, upload=("people.csv", content.encode()), header=False,
                     columns=["id", "name", "city", "age", "status"])

    assert run(sync).created == 4
    assert people_in_register() == EXPECTED_FIRST


def test_an_id_column_by_another_name_is_given_with_id_path():
    rows = [{"code": row["id"], **{k: v for k, v in row.items() if k != "id"}} for row in PEOPLE]
    sync = file_sync(source={}, upload=("people.csv", as_csv(rows)), idPath="code")

    first = run(sync)

    assert (first.status, first.created) == ("succeeded", 4), first.error_message
    assert set(SynchronizationContract.objects.values_list("origin_id", flat=True)) == {"1", "2", "4", "5"}


# ---------------------------------------------------------------------------------------------
# Pages and the copy of a URL's file


def test_each_page_request_holds_a_byte_offset_and_the_csv_header_and_stores_only_its_rows():
    sync = file_sync(source={}, upload=("people.csv", as_csv(PEOPLE)))
    reader = reader_for(sync)

    first = reader.first_request(variables={"run": {"id": 1}})
    page = reader.fetch(request=first)
    following = reader.page(request=first, fetched=page).next_request

    header = as_csv(PEOPLE).split(b"\n")[0]
    assert page.body == PEOPLE[:2]
    assert following["offset"] == len(b"\n".join(as_csv(PEOPLE).split(b"\n")[:3])) + 1
    assert following["columns"] == header.decode().split(",")
    assert (following["line"], following["row"]) == (4, 2)
    assert reader.fetch(request=following).body == PEOPLE[2:4]


def random_json(rng: random.Random, depth: int = 0):
    """A JSON value with what a scanner can trip on: escaped quotes and backslashes, brackets in strings,
    nesting, non-ASCII text, numbers of every shape."""
    if depth > 3 or rng.random() < 0.3:
        return rng.choice([1, -2.5e-3, 'a"b\\c', "é\n", True, None, "", "]}[{,", 12345678901, '\\"', "\\"])
    if rng.random() < 0.5:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = [rng.choice(["k", 'k"', "ü", "x y", "]"]) + str(i) for i in range(rng.randint(0, 3))]
    return {key: random_json(rng, depth + 1) for key in keys}


def test_the_json_scanner_pages_any_list_exactly_across_buffer_boundaries(monkeypatch):
    from syncapp.sources import file as file_source

    monkeypatch.setattr(file_source, "READ_SIZE", 7)  # every boundary falls inside something
    rng = random.Random(20261203)
    for _ in range(400):
        items = [random_json(rng) for _ in range(rng.randint(0, 9))]
        wrapped = rng.random() < 0.5
        document = {"before": [random_json(rng), "]"], "data": {"items": items}, "after": 1} if wrapped else items
        raw = json.dumps(document, indent=rng.choice([None, 1]), ensure_ascii=rng.random() < 0.5).encode()
        options = file_source.file_options({"format": "json", "pageSize": rng.randint(1, 4),
                                            **({"objectsPath": "data.items"} if wrapped else {})})
        request, read = {"offset": 0, "line": 1, "row": 0}, []
        while True:
            page = file_source.json_page(io.BytesIO(raw), request=request, options=options, name="t.json")
            read += page.rows
            if page.done:
                break
            request = {"offset": page.offset, "line": page.line, "row": page.row}
        assert read == items, raw


def test_a_file_that_changes_at_its_url_during_a_run_fails_the_page_read_from_a_new_download():
    with FileServer("people.ndjson", as_ndjson(PEOPLE)) as server:
        sync = file_sync(source=url_source(server, "people.ndjson"))
        reader = reader_for(sync)
        first = reader.first_request(variables={"run": {"id": 7}})
        following = reader.page(request=first, fetched=reader.fetch(request=first)).next_request
        copy = sync_settings_media() / "file-sources" / "downloads" / "run-7"
        assert copy.is_file()

        # Another worker without the copy downloads the file again, and reads on when it is the same.
        copy.unlink()
        assert reader.fetch(request=following).body == PEOPLE[2:4]
        copy.unlink()
        server.files["/files/people.ndjson"] = as_ndjson(PEOPLE_CHANGED)
        with pytest.raises(SourceError, match="changed during the run"):
            reader.fetch(request=following)


def test_a_run_reads_on_in_the_upload_it_began_with_when_a_new_one_is_stored():
    sync = file_sync(source={}, upload=("people.csv", as_csv(PEOPLE)))
    reader = reader_for(sync)
    first = reader.first_request(variables={"run": {"id": 1}})
    following = reader.page(request=first, fetched=reader.fetch(request=first)).next_request

    replace_upload("people.csv", as_csv(PEOPLE_CHANGED))

    assert reader.fetch(request=following).body == PEOPLE[2:4]


def test_a_local_file_that_changes_during_a_run_fails_the_next_page(settings, tmp_path):
    settings.SYNC_FILE_ALLOWED_DIRS = (str(tmp_path),)
    path = tmp_path / "people.csv"
    path.write_bytes(as_csv(PEOPLE))
    reader = reader_for(file_sync(source={"location": str(path)}))
    first = reader.first_request(variables={"run": {"id": 1}})
    following = reader.page(request=first, fetched=reader.fetch(request=first)).next_request

    path.write_bytes(as_csv(PEOPLE_CHANGED) + b"7,Extra,Oslo,20,active\n")

    with pytest.raises(SourceError, match="people.csv changed during the run"):
        reader.fetch(request=following)


def test_an_error_answer_of_the_files_url_fails_the_run_without_the_key():
    with FileServer("people.csv", as_csv(PEOPLE)) as server:
        sync = file_sync(source={**url_source(server, "people.csv"), "location": f"{server.url}/files/gone.csv"})
        failed = run(sync)

    assert failed.status == "failed"
    assert "answered 404" in failed.error_message and "gone.csv" in failed.error_message
    assert KEY not in failed.error_message


def test_a_download_larger_than_the_limit_is_refused(settings):
    settings.SYNC_FILE_MAX_BYTES = 1024
    rows = PEOPLE * 40
    with FileServer("people.csv", as_csv(rows)) as server:
        failed = run(file_sync(source=url_source(server, "people.csv")))

    assert failed.status == "failed"
    assert "SYNC_FILE_MAX_BYTES" in failed.error_message


# ---------------------------------------------------------------------------------------------
# Garbage: the file, line and record named; nothing stored is lost


GARBAGE = {
    "a line that is not JSON": (
        "people.ndjson", as_ndjson(PEOPLE[:3]) + b'{"id": "9", "name": \n' + as_ndjson(PEOPLE[3:]),
        "people.ndjson, line 4 (record 4): not valid JSON",
    ),
    "a CSV record with a field too many": (
        "people.csv", as_csv(PEOPLE)[:-1] + b",surplus\n",
        "people.csv, line 6 (record 5): 6 fields, the header has 5",
    ),
    "a CSV record with a field too few": (
        "people.csv", as_csv(PEOPLE).replace(b"3,Alan,Wilmslow,41,retired", b"3,Alan,Wilmslow"),
        "people.csv, line 4 (record 3): 3 fields, the header has 5",
    ),
    "bytes that are not UTF-8": (
        "people.csv", as_csv(PEOPLE).replace(b"Nuenen", "Nünen".encode("latin-1")),
        "people.csv, line 5: not valid utf-8 text",
    ),
    "an unclosed CSV quote": (
        "people.csv", as_csv(PEOPLE) + b'6,"Frances,Toronto,88,active\n',
        "people.csv, line 7: not valid CSV",
    ),
    "a JSON list element that is not JSON": (
        "people.json", b'[\n{"id": "1", "name": "Ada", "age": "3"},\n{"id": "2", "name": nope}\n]',
        "people.json, line 3 (element 2): not valid JSON",
    ),
    "a JSON list that is cut off": (
        "people.json", as_json(PEOPLE)[:-40], "people.json, line",
    ),
    "a JSON file holding an object": (
        "people.json", b'{"items": []}',
        "people.json: the file holds an object, not a list: set sourceConfig.objectsPath",
    ),
    "a UTF-16 file": (
        "people.csv", as_csv(PEOPLE).decode().encode("utf-16"), "holds a NUL byte",
    ),
}


@pytest.mark.parametrize("case", GARBAGE)
def test_garbage_in_a_file_fails_the_run_naming_the_line_and_keeps_what_was_stored(case):
    name, garbage, message = GARBAGE[case]
    write = FORMATS[name.rsplit(".", 1)[1]][1]
    sync = file_sync(source={}, upload=(name, write(PEOPLE)))
    assert run(sync).status == "succeeded"
    stored = people_in_register()

    replace_upload(name, garbage)
    failed = run(sync)

    assert failed.status == "failed"
    assert message in failed.error_message, failed.error_message
    assert failed.deleted == 0
    assert people_in_register() == stored
    assert RunPage.objects.filter(run=failed, status="failed").count() == 1


# ---------------------------------------------------------------------------------------------
# Local paths: only inside allowed directories


def test_a_local_file_in_an_allowed_directory_is_read(settings, tmp_path):
    allowed = tmp_path / "drop"
    allowed.mkdir()
    (allowed / "people.csv").write_bytes(as_csv(PEOPLE))
    settings.SYNC_FILE_ALLOWED_DIRS = (str(allowed),)

    first = run(file_sync(source={"location": str(allowed / "people.csv")}))

    assert (first.status, first.created) == ("succeeded", 4), first.error_message


@pytest.mark.parametrize("where", ["outside", "dot-dot", "link", "relative", "none allowed"])
def test_a_path_outside_the_allowed_directories_is_refused_at_save(settings, tmp_path, where):
    allowed = tmp_path / "drop"
    allowed.mkdir()
    secret = tmp_path / "secret.csv"
    secret.write_bytes(as_csv(PEOPLE))
    os.symlink(secret, allowed / "link.csv")
    settings.SYNC_FILE_ALLOWED_DIRS = () if where == "none allowed" else (str(allowed),)
    location = {
        "outside": str(secret), "dot-dot": f"{allowed}/../secret.csv", "link": str(allowed / "link.csv"),
        "relative": "drop/people.csv", "none allowed": str(allowed / "people.csv"),
    }[where]

    with pytest.raises(ConfigurationInvalid, match="sources\\[0\\].location"):
        bundle_import({"sources": [{"reference": "people-file", "type": "file", "location": location}]})
    response = api_client().post("/api/sources/", {"reference": "p", "name": "P", "type": "file", "location": location},
                                 format="json")
    assert response.status_code == 400 and "location" in response.json(), response.content
    assert not Source.objects.exists()


def test_a_path_allowed_when_saved_is_refused_at_run_time_once_no_longer_allowed(settings, tmp_path):
    settings.SYNC_FILE_ALLOWED_DIRS = (str(tmp_path),)
    (tmp_path / "people.csv").write_bytes(as_csv(PEOPLE))
    sync = file_sync(source={"location": str(tmp_path / "people.csv")})

    settings.SYNC_FILE_ALLOWED_DIRS = ()
    with pytest.raises(ConfigurationError, match="SYNC_FILE_ALLOWED_DIRS"):
        sync_runs.run_start(synchronization=sync)


# ---------------------------------------------------------------------------------------------
# Settings checked at save


def api_client() -> APIClient:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_superuser("filer", "filer@example.com", "pw")
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize(("config", "message"), [
    ({"format": "xlsx"}, "sourceConfig.format: must be one of json, ndjson, csv"),
    ({"delimiter": ";;"}, "sourceConfig.delimiter: must be one character"),
    ({"encoding": "utf-16"}, "sourceConfig.encoding: 'utf-16' does not write line ends"),
    ({"encoding": "klingon"}, "sourceConfig.encoding: 'klingon' is not an encoding"),
    ({"columns": ["id", "id"]}, "sourceConfig.columns: 'id' named more than once"),
    ({"pageSize": 0}, "sourceConfig.pageSize: must be a whole number from 1 to 10000"),
    ({"incremental": {"cursorPath": "updated"}}, "sourceConfig.incremental: a file source reads the whole file"),
])
def test_bad_file_settings_are_refused_at_save(config, message):
    with pytest.raises(ConfigurationInvalid) as refused:
        file_sync(source={}, upload=("people.csv", as_csv(PEOPLE)), **config)

    assert any(message in problem for problem in refused.value.problems), refused.value.problems


def test_a_file_source_is_uploaded_through_the_api_and_a_blank_location_needs_an_upload():
    client = api_client()
    refused = client.post("/api/sources/", {"reference": "p", "name": "P", "type": "file"}, format="multipart")
    created = client.post("/api/sources/", {
        "reference": "people-file", "name": "People", "type": "file",
        "file": ContentFile(as_csv(PEOPLE), name="people.csv"),
    }, format="multipart")

    assert refused.status_code == 400 and "location" in refused.json()
    assert created.status_code == 201, created.content
    assert created.json()["file"].endswith("/people.csv")
    source = Source.objects.get(reference="people-file")
    assert source.file.read() == as_csv(PEOPLE)


def test_a_file_source_is_uploaded_through_the_admin(admin_client):
    upload = ContentFile(as_csv(PEOPLE), name="people.csv")
    response = admin_client.post("/admin/syncapp/source/add/", {
        "reference": "people-file", "name": "People", "description": "", "type": "file", "location": "",
        "configuration": "{}", "is_enabled": "on", "file": upload,
    })

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert Source.objects.get(reference="people-file").file.read() == as_csv(PEOPLE)


def test_only_a_file_source_takes_an_upload(admin_client):
    response = admin_client.post("/admin/syncapp/source/add/", {
        "reference": "api", "name": "Api", "description": "", "type": "api", "location": "http://127.0.0.1:9",
        "configuration": "{}", "is_enabled": "on", "file": ContentFile(b"x", name="x.csv"),
    })

    assert response.status_code == 200
    assert "only a source of type file takes an uploaded file" in response.content.decode()


def test_the_bundled_file_source_example_is_valid():
    from syncapp.configuration import bundle_validate

    bundle_validate(json.loads((Path(__file__).parents[2] / "examples" / "people-csv.json").read_text()))
