"""The API takes what it documents and nothing else: a name no field has is refused, run options are typed.

Each body below is refused with 400 under the names it should not have had, each with the name meant
when the API can tell (snake_case, a typo), and nothing is stored or started.
"""
from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from contracts.models import SynchronizationRun
from contracts.runs import run_create
from syncapp.api_naming import unknown_field_problem
from syncapp.configuration import bundle_import
from syncapp.models import Mapping, Object, Register, Schema, Source, Synchronization
from tests.conftest import zoo_bundle


@pytest.fixture
def api(api) -> APIClient:
    """The API client of tests/conftest.py, with the zoo bundle imported (source, register, schema, mapping,
    synchronization `animals`)."""
    bundle_import(zoo_bundle(location="http://127.0.0.1:8900"))
    return api


def refused(response) -> dict:
    assert response.status_code == 400, response.content
    return response.json()


def synchronization_body(**changes: Any) -> dict[str, Any]:
    body = {
        "reference": "birds", "name": "Birds", "sourceType": "api", "source": Source.objects.get().pk,
        "sourceConfig": {"endpoint": "/animals"}, "targetType": "register/schema",
        "targetSchema": Schema.objects.get().pk,
    }
    return {**body, **changes}


# The body that creates one record of each collection, and the record's model.
def creation_bodies() -> dict[str, tuple[dict[str, Any], type]]:
    return {
        "sources": ({"reference": "birds-api", "name": "Birds", "location": "http://127.0.0.1:8900"}, Source),
        "mappings": ({"reference": "bird-in", "name": "Bird", "mapping": {"name": "name"}}, Mapping),
        "registers": ({"reference": "aviary", "name": "Aviary"}, Register),
        "schemas": ({"register": Register.objects.get().pk, "reference": "bird", "name": "Bird",
                     "schema": {"type": "object"}}, Schema),
        "objects": ({"schema": Schema.objects.get().pk,
                     "data": {"name": "Tweety", "species": "Canary", "legs": 2}}, Object),
        "synchronizations": (synchronization_body(), Synchronization),
    }


# ---------------------------------------------------------------------------------------------
# Records: names no field has


def test_a_synchronization_in_snake_case_is_refused_naming_each_field_and_its_name(api):
    body = refused(api.post("/api/synchronizations/", {
        "reference": "birds", "name": "Birds", "source_type": "api", "source": Source.objects.get().pk,
        "source_config": {"endpoint": "/animals"}, "target_type": "register/schema",
        "target_schema": Schema.objects.get().pk,
    }, format="json"))

    assert body["source_config"] == ["unknown field, use `sourceConfig`"]
    assert body["target_schema"] == ["unknown field, use `targetSchema`"]
    assert body["source_type"] == ["unknown field, use `sourceType`"]
    assert body["target_type"] == ["unknown field, use `targetType`"]
    assert not Synchronization.objects.filter(reference="birds").exists()


@pytest.mark.parametrize(("collection", "typo", "meant"), [
    ("sources", "lcoation", "location"),
    ("mappings", "pass_through", "passThrough"),
    ("registers", "descripton", "description"),
    ("schemas", "register_id", "register"),
    ("objects", "dat", "data"),
    ("synchronizations", "shedule", "schedule"),
])
def test_every_collection_refuses_a_name_no_field_has_with_the_name_meant(api, collection, typo, meant):
    creation, model = creation_bodies()[collection]
    before = model.objects.count()

    body = refused(api.post(f"/api/{collection}/", {**creation, typo: "x"}, format="json"))

    assert list(body) == [typo]
    assert f"`{meant}`" in body[typo][0]
    assert model.objects.count() == before


def test_an_update_refuses_a_name_no_field_has_and_changes_nothing(api):
    sync = Synchronization.objects.get()
    url = f"/api/synchronizations/{sync.pk}/"

    patched = refused(api.patch(url, {"name": "Renamed", "is_enabled": False}, format="json"))
    put = refused(api.put(url, {**api.get(url).json(), "targetSchemaa": 1}, format="json"))

    assert patched == {"is_enabled": ["unknown field, use `isEnabled`"]}
    assert put == {"targetSchemaa": ["unknown field, did you mean `targetSchema`?"]}
    sync.refresh_from_db()
    assert (sync.name, sync.is_enabled) == ("Active animals into the zoo register", True)


def test_an_unknown_name_is_refused_beside_the_problems_of_the_fields(api):
    body = refused(api.post("/api/registers/", {"nmae": "Aviary"}, format="json"))

    assert body == {"nmae": ["unknown field, did you mean `name`?"], "reference": ["This field is required."]}


def test_a_bundles_source_and_target_names_are_refused_saying_what_the_api_takes(api):
    body = refused(api.post("/api/synchronizations/",
                            synchronization_body(sourceId="zoo-api", targetId="zoo/animal"), format="json"))

    assert "`source`" in body["sourceId"][0] and "`sourceSchema`" in body["sourceId"][0]
    assert "`targetSchema`" in body["targetId"][0] and "`targetSource`" in body["targetId"][0]


def test_a_name_far_from_every_field_is_refused_listing_the_fields_a_body_sets(api):
    body = refused(api.post("/api/registers/", {"reference": "aviary", "name": "Aviary", "zzzz": 1}, format="json"))

    assert body == {"zzzz": ["unknown field; this takes `reference`, `name`, `description`"]}


def test_a_record_got_from_the_api_changed_and_put_back_is_taken_with_its_read_only_fields(api):
    # Read-only fields the API answers (id, createdAt, incrementalCursor, …) are ignored in a body, so that
    # GET, modify, PUT works; a read-only name the API does not answer is refused like any other.
    sync = Synchronization.objects.get()
    url = f"/api/synchronizations/{sync.pk}/"
    answered = api.get(url).json()

    put = api.put(url, {**answered, "name": "Renamed", "id": 999, "createdAt": "2000-01-01T00:00:00Z"},
                  format="json")
    snake = refused(api.patch(url, {"created_at": "2000-01-01T00:00:00Z"}, format="json"))

    assert put.status_code == 200, put.content
    sync.refresh_from_db()
    assert (sync.pk, sync.name, sync.created_at.year) == (answered["id"], "Renamed", sync.created_at.year)
    assert sync.created_at.year != 2000
    assert snake == {"created_at": ["unknown field; the API answers `createdAt`, a body cannot set it"]}


def test_a_file_source_uploaded_as_multipart_is_taken_and_a_misspelt_name_in_it_refused(api, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    upload = {"reference": "people-file", "name": "People", "type": "file"}

    misspelt = refused(api.post("/api/sources/", {**upload, "fiel": ContentFile(b"id\n1\n", name="people.csv")},
                                format="multipart"))
    created = api.post("/api/sources/", {**upload, "file": ContentFile(b"id\n1\n", name="people.csv"),
                                         "csrfmiddlewaretoken": "a browser form's"}, format="multipart")

    assert misspelt["fiel"] == ["unknown field, did you mean `file`?"]
    assert created.status_code == 201, created.content
    assert Source.objects.get(reference="people-file").file.read() == b"id\n1\n"


# ---------------------------------------------------------------------------------------------
# Actions: run, cancel, try


def test_a_run_request_with_a_misspelt_option_and_a_text_boolean_is_refused_and_starts_nothing(api):
    sync = Synchronization.objects.get()

    body = refused(api.post(f"/api/synchronizations/{sync.pk}/run/", {"tset": True, "force": "yes"},
                            format="json"))

    assert body["tset"] == ["unknown field, did you mean `test`?"]
    assert body["force"] == ['must be true or false (a JSON boolean), got "yes"']
    assert not SynchronizationRun.objects.exists()


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, "false", None, [], {}])
def test_a_run_option_is_a_json_boolean_and_nothing_else(api, value):
    sync = Synchronization.objects.get()

    body = refused(api.post(f"/api/synchronizations/{sync.pk}/run/", {"full": value}, format="json"))

    assert list(body) == ["full"]
    assert not SynchronizationRun.objects.exists()


def test_a_run_request_with_json_booleans_starts_the_run_asked_for(api):
    sync = Synchronization.objects.get()

    response = api.post(f"/api/synchronizations/{sync.pk}/run/", {"force": True, "full": False}, format="json")

    assert response.status_code == 202, response.content
    run = SynchronizationRun.objects.get()
    assert (run.is_forced, run.is_test) == (True, False)


def test_a_run_request_as_a_form_is_refused_because_its_options_cannot_be_booleans(api):
    sync = Synchronization.objects.get()

    response = api.post(f"/api/synchronizations/{sync.pk}/run/", {"force": "true"}, format="multipart")

    assert response.status_code == 415, response.content
    assert not SynchronizationRun.objects.exists()


def test_cancelling_a_run_takes_no_body_and_a_name_in_one_is_refused(api):
    run = run_create(synchronization=Synchronization.objects.get())

    body = refused(api.post(f"/api/runs/{run.pk}/cancel/", {"force": True}, format="json"))
    run.refresh_from_db()
    still_active = run.status
    cancelled = api.post(f"/api/runs/{run.pk}/cancel/", {}, format="json")

    assert body == {"force": ["unknown field; this takes no fields"]}
    assert still_active == SynchronizationRun.Status.QUEUED
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == SynchronizationRun.Status.CANCELLED


@pytest.mark.parametrize(("path", "sent", "typo", "meant"), [
    ("/api/mappings/try/", {"data": {"name": "Leo"}, "mapping": {"n": "name"}, "unsett": []}, "unsett", "unset"),
    ("/api/mappings/try/", {"data": {}, "pass_through": True}, "pass_through", "passThrough"),
    ("/api/conditions/try/", {"data": {}, "condition": {"==": [1, 1]}}, "condition", "conditions"),
    ("/api/mappings/{mapping}/try/", {"data": {}, "dta": {}}, "dta", "data"),
    ("/api/synchronizations/{sync}/try-conditions/", {"data": {}, "conditions": {}}, "conditions", "data"),
])
def test_a_try_refuses_a_name_it_does_not_take(api, path, sent, typo, meant):
    url = path.format(mapping=Mapping.objects.get().pk, sync=Synchronization.objects.get().pk)

    body = refused(api.post(url, sent, format="json"))

    assert list(body) == [typo]
    assert f"`{meant}`" in body[typo][0]


def test_a_mapping_try_still_takes_the_sample_under_its_former_name(api):
    response = api.post("/api/mappings/try/", {"input": {"name": "Leo"}, "mapping": {"n": "name"}}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["result"] == {"n": "Leo"}


def test_the_closest_known_name_is_found_for_a_typo():
    known = ["endpoint", "headers", "query", "pagination"]

    assert unknown_field_problem(name="endpiont", known=known, writable=known) == (
        "unknown field, did you mean `endpoint`?"
    )


# ---------------------------------------------------------------------------------------------
# One name for one field: the command line and the OpenAPI description


def test_sync_list_json_names_the_fields_the_api_answers_as_the_api_does(api):
    sync = Synchronization.objects.get()
    run = run_create(synchronization=sync)
    out = io.StringIO()
    call_command("sync", "list", "--json", stdout=out)

    [row] = json.loads(out.getvalue())
    answered = api.get(f"/api/synchronizations/{sync.pk}/").json()
    run_answered = api.get(f"/api/runs/{run.pk}/").json()

    own = {"contracts", "lastRun", "nextRunAt"}  # the list's own: how many contracts, the last run, the next
    assert set(row) - own <= set(answered)
    assert {name: row[name] for name in set(row) - own} == {name: answered[name] for name in set(row) - own}
    assert set(row["lastRun"]) <= set(run_answered)
    assert row["lastRun"] == {name: run_answered[name] for name in row["lastRun"]}


def test_the_openapi_description_closes_every_request_body_to_names_it_does_not_document():
    description = SchemaGenerator().get_schema(request=None, public=True)
    components = description["components"]["schemas"]
    bodies = {
        operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for path in description["paths"].values() for operation in path.values()
        if isinstance(operation, dict) and "requestBody" in operation
    }

    assert {"Source", "Mapping", "Register", "Schema", "Object", "Synchronization", "RunStart", "Sample",
            "MappingDraftTry", "ConditionsTry"} <= bodies
    assert {name for name in bodies if components[name].get("additionalProperties") is not False} == set()
    run_options = components["RunStart"]["properties"]
    assert {name: option["type"] for name, option in run_options.items()} == {
        "test": "boolean", "force": "boolean", "full": "boolean",
    }
    run_body = description["paths"]["/api/synchronizations/{id}/run/"]["post"]["requestBody"]["content"]
    assert set(run_body) == {"application/json"}
