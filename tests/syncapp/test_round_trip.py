"""Round trip: every configuration that import or the API accepts exports, imports into a fresh database and
exports again unchanged; and an export imported over the configuration it came from changes nothing."""
from __future__ import annotations

import copy
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from syncapp.configuration import CREDENTIALS_KEPT, bundle_export, bundle_import
from syncapp.models import Mapping, Register, Schema, Source, Synchronization
from tests.databases import pg, source_database

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))
NOTHING = {"sources": 0, "registers": 0, "mappings": 0, "rules": 0, "synchronizations": 0}


def canonical(bundle: dict) -> str:
    """Return the bundle as canonical JSON, so two exports compare as the documents they are."""
    return json.dumps(bundle, sort_keys=True, indent=1, ensure_ascii=False)


def configuration_delete() -> None:
    """Delete the whole configuration, as a fresh database has none."""
    Synchronization.objects.all().delete()
    Mapping.objects.all().delete()
    Schema.objects.all().delete()
    Register.objects.all().delete()
    Source.objects.all().delete()


def credentials_restored(exported: dict, *, credentials: dict[str, dict]) -> dict:
    """Return the export with each source's credentials set again, as an operator moving it to a fresh
    database does: an export never carries them, only the placeholder that keeps the stored ones."""
    bundle = copy.deepcopy(exported)
    for source in bundle["sources"]:
        if source.get("credentials") == CREDENTIALS_KEPT:
            source["credentials"] = credentials[source["reference"]]
    return bundle


def assert_round_trip(*, uploads_resupply: Callable[[], None] = lambda: None) -> None:
    """Assert that the stored configuration exports, imports over itself changing nothing, and imports into
    a fresh database exporting the same document.

    Credentials and uploaded files are not part of an export: they are given again in the fresh database, the
    credentials in the bundle and the uploads (`uploads_resupply`) before the import, as an operator does."""
    first = bundle_export()
    credentials = {source.reference: source.credentials for source in Source.objects.all()}

    again = bundle_import(json.loads(canonical(first)))
    assert (again.created, again.changes) == (NOTHING, []), again.changes
    assert canonical(bundle_export()) == canonical(first)

    configuration_delete()
    uploads_resupply()
    bundle_import(credentials_restored(json.loads(canonical(first)), credentials=credentials))
    assert canonical(bundle_export()) == canonical(first)


# -- the example bundles ----------------------------------------------------------------------------------


@pytest.fixture
def warehouse() -> Iterator[str]:
    """A PostgreSQL database with the tables and columns examples/warehouse-database.json reads."""
    with source_database() as location:
        with pg(location) as connection:
            connection.execute(
                "CREATE TABLE products (id bigint PRIMARY KEY, sku text UNIQUE NOT NULL, name text NOT NULL, "
                "price numeric(8, 2), stock integer NOT NULL, updated_at timestamp)"
            )
            connection.execute("CREATE TABLE customers (id integer PRIMARY KEY, email text NOT NULL)")
            connection.execute("CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, total numeric)")
        yield location


def example_bundle(path: Path, *, request: pytest.FixtureRequest) -> dict:
    """Return an example bundle; a database source points at a database of the test's own (the example's
    host is not on this machine, and saving a database synchronization asks the database)."""
    bundle = json.loads(path.read_text())
    for source in bundle.get("sources", []):
        if source.get("type") == "database":
            source["location"] = request.getfixturevalue("warehouse")
    return bundle


@pytest.mark.django_db
@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_an_example_bundle_exports_and_imports_again_unchanged(path, request):
    # Given an example bundle, imported
    bundle_import(example_bundle(path, request=request))

    # Then its export imports over it changing nothing, and into a fresh database giving the same export
    assert_round_trip()


@pytest.mark.django_db
@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_an_example_bundle_imported_twice_changes_nothing_the_second_time(path, request):
    # Given an example bundle, imported
    bundle = example_bundle(path, request=request)
    bundle_import(copy.deepcopy(bundle))

    # When it is imported again
    result = bundle_import(bundle)

    # Then nothing is added or changed
    assert (result.created, result.changes) == (NOTHING, [])


# -- relations a synchronization's types do not read ------------------------------------------------------


@pytest.fixture
def zoo(db) -> dict:
    """The zoo bundle's source, schema and synchronization, imported."""
    bundle_import(json.loads((Path(__file__).resolve().parents[2] / "examples" / "zoo.json").read_text()))
    return {"source": Source.objects.get(), "schema": Schema.objects.get(), "sync": Synchronization.objects.get()}


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "stray"), [
    ({}, {"source_schema": "schema"}),
    ({}, {"target_source": "source"}),
    ({"target_type": "api", "target_source": "source", "target_schema": None}, {"target_schema": "schema"}),
    ({"source_type": "register/schema", "source_schema": "schema", "source": None}, {"source": "source"}),
], ids=["api source, a schema", "register target, a source", "api target, a schema", "register source, a source"])
def test_a_relation_the_synchronization_type_does_not_read_is_left_out_of_the_export(zoo, kind, stray):
    def update(**fields) -> None:
        values = {field: zoo.get(value, value) for field, value in fields.items()}
        Synchronization.objects.filter(pk=zoo["sync"].pk).update(**values)

    # Given a synchronization of a kind, exported
    update(**kind)
    exported = bundle_export()

    # When it also holds a relation its source or target type does not read (the API saves one: it sets
    # the fields it is sent)
    update(**stray)

    # Then the export is the same: it names what the types read, and imports as the synchronization runs
    assert canonical(bundle_export()) == canonical(exported)


@pytest.mark.django_db
@pytest.mark.parametrize("rule", [False, 0, ""])
def test_conditions_that_no_object_passes_export_and_import_as_they_are(zoo, rule):
    # Given conditions that no object passes (JsonLogic: a false rule), as the API saves them
    Synchronization.objects.filter(pk=zoo["sync"].pk).update(conditions=rule)

    # Then they export, and import again as the same rule, not as no conditions (every object passes)
    assert bundle_export()["synchronizations"][0]["conditions"] == rule
    assert_round_trip()
    assert Synchronization.objects.get().conditions == rule


def test_no_conditions_written_as_an_empty_list_are_stored_as_no_conditions_by_the_api(api, zoo):
    # When the API is sent OpenConnector's spelling of an empty object, [], as the conditions
    response = api.patch(f"/api/synchronizations/{zoo['sync'].pk}/", {"conditions": []}, format="json")

    # Then it stores no conditions as an import does, so the export imports again unchanged
    assert response.status_code == 200, response.content.decode()
    assert Synchronization.objects.get().conditions == {}
    assert_round_trip()


def test_no_conditions_written_as_an_empty_list_are_stored_as_no_conditions_by_the_admin(admin_client, zoo):
    sync = zoo["sync"]
    form = {
        "reference": sync.reference, "name": sync.name, "description": "", "source_type": "api",
        "source": sync.source_id, "source_schema": "", "source_hash_mapping": "",
        "source_target_mapping": sync.source_target_mapping_id, "source_config": json.dumps(sync.source_config),
        "conditions": "[]", "target_type": "register/schema", "target_schema": sync.target_schema_id,
        "target_source": "", "target_config": "{}", "target_source_mapping": "", "schedule": "", "is_enabled": "on",
    }

    response = admin_client.post(f"/admin/syncapp/synchronization/{sync.pk}/change/", form)

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert Synchronization.objects.get().conditions == {}
    assert_round_trip()


# -- configurations made through the API --------------------------------------------------------------------
#
# A configuration is drawn as the requests that make it: registers, their schemas, mappings, sources of each
# type that can be saved without another system (an API on loopback, a file at an allowed path or uploaded, a
# SQLite database), and synchronizations between them with sourceConfig and targetConfig drawn from the keys
# the README documents for their types. Relations are drawn as references and sent as ids.

# Derandomized (the same examples every run: a test that passed cannot fail by chance); ROUND_TRIP_EXAMPLES=500
# explores further, with fresh examples.
ROUND_TRIP = settings(
    max_examples=int(os.environ.get("ROUND_TRIP_EXAMPLES", "25")), deadline=None,
    derandomize=not os.environ.get("ROUND_TRIP_EXAMPLES"), phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# References as a slug may be: all digits too, which an API request may also mean as an id.
references = st.from_regex(r"[-a-zA-Z0-9_]{1,12}", fullmatch=True) | st.integers(1, 40).map(str)
words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=24,
).map(str.strip).filter(bool)
texts = st.one_of(st.just(""), words)
keys = st.from_regex(r"[a-z][a-zA-Z0-9_]{0,7}", fullmatch=True)
dot_paths = st.lists(keys, min_size=1, max_size=3).map(".".join)
endpoints = st.sampled_from(["", "/animals", "/api/v1/items?active=1", "/changes?since={{ lastSync }}", "items"])
schedules = st.sampled_from(["", "*/15 * * * *", "0 3 * * 0", "15 3 * * 1-5", "*/10 * * * * */30"])
conditions = st.sampled_from([
    {}, False, {"==": [{"var": "status"}, "active"]}, {"!=": [{"var": "name"}, ""]},
    {"and": [{">": [{"var": "legs"}, 0]}, {"in": [{"var": "species"}, ["cat", "dog"]]}]},
    {"or": [{"!": {"var": "deleted"}}, {"<=": [{"var": "age"}, 120]}]},
])
json_schemas = st.one_of(
    st.just({}), st.just({"type": "object"}),
    st.dictionaries(keys, st.sampled_from(["string", "integer", "number", "boolean"]), max_size=4).flatmap(
        lambda properties: st.fixed_dictionaries({
            "type": st.just("object"),
            "properties": st.just({key: {"type": kind} for key, kind in properties.items()}),
            "required": st.lists(st.sampled_from(sorted(properties) or ["id"]), unique=True, max_size=2),
        })
    ),
)
call_settings = st.fixed_dictionaries({}, optional={
    "headers": st.dictionaries(st.sampled_from(["Accept", "X-Tenant", "User-Agent"]), words, max_size=2),
    "query": st.dictionaries(keys, words | st.integers(0, 100).map(str) | st.sampled_from(["true", "false"]),
                             max_size=2),
    "headers.X-Api-Version": st.sampled_from(["1", "2024-01"]), "query.per_page": st.integers(1, 100),
    # verify false is refused unless SYNC_TLS_VERIFY_OFF_ALLOWED: a CA bundle stands for "not the default"
    "timeout": st.integers(1, 300), "connectTimeout": st.integers(1, 30),
    "verify": st.sampled_from([True, "/etc/ssl/certs/ca-certificates.crt"]),
})
source_configurations = call_settings.flatmap(lambda chosen: st.fixed_dictionaries(
    {key: st.just(value) for key, value in chosen.items()},
    optional={"rateLimit": st.fixed_dictionaries({"requests": st.integers(1, 100),
                                                  "per": st.sampled_from(["second", "minute", "hour"])})},
))
api_credentials = st.one_of(
    st.fixed_dictionaries({"type": st.just("bearer"), "token": words}),
    st.fixed_dictionaries({"type": st.just("apiKey"), "in": st.sampled_from(["header", "query"]),
                           "name": keys, "value": words}),
    st.fixed_dictionaries({"type": st.just("basic"), "username": words, "password": words}),
    st.fixed_dictionaries({"type": st.just("oauth2"), "tokenUrl": st.just("http://127.0.0.1:8901/token"),
                           "clientId": words, "clientSecret": words, "scope": words}),
)
paginations = st.one_of(
    st.fixed_dictionaries({"type": st.just("page")}, optional={
        "pageParam": keys, "startPage": st.integers(0, 2), "pageSizeParam": keys, "pageSize": st.integers(1, 500)}),
    st.fixed_dictionaries({"type": st.just("offset")}, optional={
        "offsetParam": keys, "limitParam": keys, "limit": st.integers(1, 500)}),
    st.fixed_dictionaries({"type": st.just("cursor")}, optional={"cursorPath": dot_paths, "cursorParam": keys}),
    st.fixed_dictionaries({"type": st.just("next")}, optional={"nextPath": dot_paths}),
    st.fixed_dictionaries({"type": st.sampled_from(["auto", "link_header", "none"])}, optional={
        "stopOnEmptyPage": st.booleans(), "totalPath": dot_paths, "hasMorePath": dot_paths}),
)
# What every source type's sourceConfig may hold: deletion and how a run goes.
run_settings = {
    "deleteMissing": st.booleans(), "deleteSafetyLimit": st.sampled_from(["20%", "50%", "100%", 5]),
    "followUpsOnPartial": st.booleans(), "chunkSize": st.integers(1, 10_000),
}
incrementals = st.fixed_dictionaries({"cursorPath": dot_paths, "param": keys}, optional={
    "type": st.just("datetime"), "format": st.sampled_from(["iso", "epoch", "epochMs", "%Y-%m-%d"]),
    "initialValue": st.just("2024-01-01T00:00:00Z"), "fullSchedule": schedules.filter(bool),
})


def extra_data(*, sources: list[str]) -> st.SearchStrategy[dict]:
    """An entry of extraDataConfigs (README: "Enrichment per object"), maybe calling another source."""
    other = {"source": st.sampled_from(sources)} if sources else {}
    return st.fixed_dictionaries(
        {"staticEndpoint": st.sampled_from(["/animals/{{ originId }}", "/detail/{{ subObjectId }}"])},
        optional={"keyToSetExtraData": dot_paths, "unsetConfigKey": st.just("query"), "subObjectId": dot_paths,
                  "mergeExtraData": st.booleans(), "endpointIdLocation": dot_paths, **other},
    ) | st.fixed_dictionaries({"dynamicEndpointLocation": dot_paths}, optional={
        "endpointTemplate": st.just("{{ endpoint }}?full=1"), **other,
        "extraDataConfigPerResult": st.fixed_dictionaries({"staticEndpoint": st.just("/part/{{ originId }}")}),
        "resultsLocation": dot_paths,
    })


def api_source_config(*, sources: list[str]) -> st.SearchStrategy[dict]:
    """An api synchronization's sourceConfig (README: "sourceConfig of a synchronization")."""
    return call_settings.flatmap(lambda chosen: st.fixed_dictionaries(
        {key: st.just(value) for key, value in chosen.items()},
        optional={
            "endpoint": endpoints, "resultsPosition": st.sampled_from(["_root", "_object", "results"]) | dot_paths,
            "idPosition": dot_paths, "pagination": paginations, "maxPages": st.integers(1, 1000),
            "extraDataConfigs": st.lists(extra_data(sources=sources), min_size=1, max_size=2),
            "extraDataConcurrency": st.integers(1, 32), "fetchExtraDataBeforeConditions": st.booleans(),
            "extraDataOnlyWhenChanged": st.booleans(),
            "incremental": incrementals, "concurrency": st.integers(1, 32), **run_settings,
        },
    )).filter(lambda config: not (
        # refused together: an object not enriched would be filtered out by conditions on its detail
        config.get("fetchExtraDataBeforeConditions") and config.get("extraDataOnlyWhenChanged")
    ))


file_source_config = st.fixed_dictionaries({}, optional={
    "format": st.sampled_from(["csv", "ndjson"]), "delimiter": st.sampled_from([",", ";", "\t", "|"]),
    "encoding": st.sampled_from(["utf-8", "latin-1", "cp1252"]), "header": st.just(True),
    "columns": st.lists(keys, min_size=1, max_size=4, unique=True), "idPath": dot_paths,
    "pageSize": st.integers(1, 10_000), **run_settings,
})
# The SQLite table every database source of these tests reads (made by the `files` fixture).
SQLITE_TABLE = "CREATE TABLE items (id INTEGER PRIMARY KEY NOT NULL, sku TEXT UNIQUE NOT NULL, name TEXT, changed TEXT)"
database_source_config = st.one_of(
    st.fixed_dictionaries({"table": st.just("items")}, optional={
        "keyColumn": st.sampled_from(["id", "sku"]), "idColumn": st.sampled_from(["id", "sku"]),
        "columns": st.lists(st.sampled_from(["id", "sku", "name", "changed"]), min_size=1, unique=True),
    }),
    st.fixed_dictionaries({"query": st.just("SELECT id, sku, name FROM items WHERE name IS NOT NULL"),
                           "keyColumn": st.sampled_from(["id", "sku"])}),
).flatmap(lambda read: st.fixed_dictionaries({key: st.just(value) for key, value in read.items()}, optional={
    "pageSize": st.integers(1, 10_000), "decimals": st.sampled_from(["string", "number"]),
    "incremental": st.just({"cursorPath": "changed"}), **run_settings,
}))
register_source_config = st.fixed_dictionaries({}, optional={
    "pageSize": st.integers(1, 10_000),
    "triggerOnlyOnEvents": st.lists(st.sampled_from(["create", "update", "delete"]), unique=True),
    **run_settings,
})


def target_config(*, mappings: list[str]) -> st.SearchStrategy[dict]:
    """An api target's targetConfig (README: "targetConfig, with OpenConnector's names")."""
    mapping = st.sampled_from(mappings) if mappings else st.nothing()
    return st.fixed_dictionaries({}, optional={
        "endpoint": endpoints, "idPosition": dot_paths, "idInRequestBody": dot_paths,
        "updateEndpoint": st.just("/animals/{{ targetId }}"), "updateMethod": st.sampled_from(["PUT", "PATCH", "POST"]),
        "deleteEndpoint": st.just("/animals/{{ targetId }}/delete"),
        "deleteMethod": st.sampled_from(["DELETE", "POST", "PUT", "PATCH"]),
        "recreateOnNotFound": st.booleans(), "updateMapping": mapping, "deleteMapping": mapping,
    })


@st.composite
def configurations(draw) -> dict[str, list]:
    """Draw a configuration as the bodies of the requests that make it, in the order they are sent."""
    plan: dict[str, list] = {"registers": [], "schemas": [], "mappings": [], "sources": [], "synchronizations": []}
    # Each example holds at least a schema, a source and a synchronization: 25 examples cover more so.
    for index, reference in enumerate(draw(st.lists(references, unique=True, min_size=1, max_size=2))):
        plan["registers"].append({"reference": reference, "name": draw(texts), "description": draw(texts)})
        for schema in draw(st.lists(references, unique=True, min_size=1 if index == 0 else 0, max_size=2)):
            plan["schemas"].append({"register": reference, "reference": schema, "name": draw(texts),
                                    "description": draw(texts), "schema": draw(json_schemas)})
    for reference in draw(st.lists(references, unique=True, max_size=3)):
        plan["mappings"].append({
            "reference": reference, "name": draw(texts), "description": draw(texts),
            "mapping": draw(st.dictionaries(dot_paths, dot_paths | st.sampled_from(
                ["{{ name | upper }}", "{{ first }} {{ last }}", "id"]), max_size=3)),
            "unset": draw(st.lists(dot_paths, unique=True, max_size=2)),
            "cast": draw(st.dictionaries(keys, st.sampled_from(["int", "bool", "string", "float", "datetime"]),
                                         max_size=2)),
            "passThrough": draw(st.booleans()),
        })
    for index, reference in enumerate(draw(st.lists(references, unique=True, min_size=1, max_size=4))):
        kind = draw(st.sampled_from(["api", "file", "upload", "database"]))
        body = {"reference": reference, "name": draw(words), "description": draw(texts),
                "isEnabled": draw(st.booleans())}
        if kind == "api":
            body.update(type="api", location=f"http://127.0.0.1:{8900 + index}/{draw(keys)}",
                        configuration=draw(source_configurations))
            if draw(st.booleans()):
                body["credentials"] = draw(api_credentials)
        elif kind == "file":
            body.update(type="file", location="FILES/" + draw(st.sampled_from(["people.csv", "people.ndjson"])),
                        configuration=draw(st.fixed_dictionaries({}, optional={"timeout": st.integers(1, 300)})))
        elif kind == "upload":
            body.update(type="file", upload=draw(st.sampled_from(["people.csv", "export.ndjson"])))
        else:
            body.update(type="database", location="sqlite:///FILES/warehouse.db",
                        configuration=draw(st.fixed_dictionaries({}, optional={
                            "connectTimeout": st.integers(1, 30), "timeout": st.integers(1, 300)})))
        plan["sources"].append(body)

    sources = {body["reference"]: body["type"] for body in plan["sources"]}
    api_sources = sorted(reference for reference, kind in sources.items() if kind == "api")
    schemas = [f"{body['register']}/{body['reference']}" for body in plan["schemas"]]
    mappings = [body["reference"] for body in plan["mappings"]]
    mapping = st.none() | st.sampled_from(mappings) if mappings else st.none()
    for reference in draw(st.lists(references, unique=True, min_size=1, max_size=4)):
        source_type = draw(st.sampled_from(sorted({*sources.values(), "register/schema"})))
        target_type = draw(st.sampled_from(["register/schema", "api"] if api_sources else ["register/schema"]))
        body = {
            "reference": reference, "name": draw(words), "description": draw(texts), "sourceType": source_type,
            "sourceHashMapping": draw(mapping), "sourceTargetMapping": draw(mapping),
            "targetSourceMapping": draw(mapping), "conditions": draw(conditions), "targetType": target_type,
            "schedule": draw(schedules), "isEnabled": draw(st.booleans()),
            "followUps": draw(st.lists(st.sampled_from([sync["reference"] for sync in plan["synchronizations"]]),
                                       unique=True, max_size=2)) if plan["synchronizations"] else [],
        }
        if source_type == "register/schema":
            body["sourceSchema"] = draw(st.sampled_from(schemas))
            body["sourceConfig"] = draw(register_source_config)
        else:
            body["source"] = draw(st.sampled_from(sorted(ref for ref, kind in sources.items() if kind == source_type)))
            body["sourceConfig"] = draw({
                "api": api_source_config(sources=api_sources), "file": file_source_config,
                "database": database_source_config,
            }[source_type])
        if target_type == "register/schema":
            body["targetSchema"] = draw(st.sampled_from(schemas))
        else:
            body["targetSource"] = draw(st.sampled_from(api_sources))
            body["targetConfig"] = draw(target_config(mappings=mappings))
        if source_type == "api" and target_type == "register/schema" and body["targetSourceMapping"]:
            # Two-way sync: only an api source synced into the register writes back, with its mapping back.
            body["sourceConfig"].update(draw(st.fixed_dictionaries({}, optional={
                "writeBack": st.just(True) | st.fixed_dictionaries({}, optional={
                    "updateEndpoint": st.just("/animals/{{ targetId }}"),
                    "updateMethod": st.sampled_from(["PUT", "PATCH"]),
                }),
                "conflictWinner": st.sampled_from(["source", "target", "manual"]),
            })))
        plan["synchronizations"].append(body)
    return plan


# What the files of file sources hold (the location's files at FILES, and the uploads).
FILE_CONTENTS = {
    "people.csv": b"id,name\n1,Ada\n", "people.ndjson": b'{"id": 1, "name": "Ada"}\n',
    "export.ndjson": b'{"id": 2, "name": "Grace"}\n',
}


@pytest.fixture
def files(tmp_path, settings) -> Path:
    """A directory file and SQLite sources may read, with the files the drawn configurations name."""
    settings.SYNC_FILE_ALLOWED_DIRS = (str(tmp_path),)
    settings.SYNC_DATABASE_SOURCE_SQLITE_DIRS = (str(tmp_path),)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    for name, content in FILE_CONTENTS.items():
        (tmp_path / name).write_bytes(content)
    with sqlite3.connect(tmp_path / "warehouse.db") as connection:
        connection.execute(SQLITE_TABLE)
    return tmp_path


def accepted(response) -> dict:
    assert response.status_code == 201, response.content.decode()
    return response.json()


def upload_post(api: APIClient, *, upload: str, **fields) -> dict:
    """Create a file source with an uploaded file (multipart, the other fields as form fields)."""
    body = {"type": "file", "file": SimpleUploadedFile(upload, FILE_CONTENTS[upload]), **fields}
    return accepted(api.post("/api/sources/", body, format="multipart"))


# The relations of a synchronization, with the kind of record each names.
RELATIONS = {
    "source": "source", "sourceSchema": "schema", "targetSchema": "schema", "targetSource": "source",
    "sourceHashMapping": "mapping", "sourceTargetMapping": "mapping", "targetSourceMapping": "mapping",
}


def configuration_post(api: APIClient, plan: dict[str, list], *, files: Path) -> None:
    """Send the requests of a drawn configuration, each relation by the id the API answered (follow-ups and
    the sources of extra data by reference, as they are documented)."""
    ids: dict[tuple[str, str], int] = {}
    for body in plan["registers"]:
        ids["register", body["reference"]] = accepted(api.post("/api/registers/", body, format="json"))["id"]
    for body in plan["schemas"]:
        answer = accepted(api.post("/api/schemas/", {**body, "register": ids["register", body["register"]]},
                                   format="json"))
        ids["schema", f"{body['register']}/{body['reference']}"] = answer["id"]
    for body in plan["mappings"]:
        ids["mapping", body["reference"]] = accepted(api.post("/api/mappings/", body, format="json"))["id"]
    for body in plan["sources"]:
        if "upload" in body:
            answer = upload_post(api, **body)
        else:
            located = {**body, "location": body["location"].replace("FILES", str(files))}
            answer = accepted(api.post("/api/sources/", located, format="json"))
        ids["source", body["reference"]] = answer["id"]
    for body in plan["synchronizations"]:
        sent = {key: ids[RELATIONS[key], value] if key in RELATIONS and value is not None else value
                for key, value in body.items()}
        accepted(api.post("/api/synchronizations/", sent, format="json"))


@pytest.mark.django_db
@ROUND_TRIP
@given(plan=configurations())
def test_every_configuration_the_api_accepts_exports_and_imports_again_unchanged(api, files, plan):
    # Given a fresh database and a configuration made through the API
    note(json.dumps(plan, indent=1))
    for body in plan["synchronizations"]:  # what the examples cover: --hypothesis-show-statistics
        event(f"a synchronization from {body['sourceType']} to {body['targetType']}")
    for body in plan["sources"]:
        event(f"a source of type {body['type']}" + (" with an upload" if "upload" in body else ""))
    configuration_delete()
    configuration_post(api, plan, files=files)

    def uploads_resupply() -> None:
        for body in plan["sources"]:
            if "upload" in body:
                upload_post(api, reference=body["reference"], name=body["name"], upload=body["upload"])

    # Then it exports, imports over itself changing nothing, and imports into a fresh database unchanged
    assert_round_trip(uploads_resupply=uploads_resupply)
