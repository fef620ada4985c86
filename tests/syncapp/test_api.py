"""The REST API: authentication, the configuration models, write-only credentials, validation and runs."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from contracts.models import ContractLog, SynchronizationContract, SynchronizationRun
from syncapp.configuration import bundle_import
from syncapp.models import Mapping, Object, Register, Schema, Source, Synchronization
from tests.conftest import zoo_bundle
from tests.factories import ANIMAL_SCHEMA, SECRET, make_schema, make_source, make_synchronization
from tests.helpers import runner_take

COLLECTIONS = ["sources", "mappings", "registers", "schemas", "objects", "synchronizations", "runs", "contracts",
               "contract-logs"]


def created(response) -> dict:
    assert response.status_code == 201, response.content
    return response.json()


def refused(response) -> dict:
    assert response.status_code == 400, response.content
    return response.json()


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


# ---------------------------------------------------------------------------------------------
# Authentication


@pytest.mark.django_db
@pytest.mark.parametrize("collection", COLLECTIONS)
def test_every_collection_refuses_anonymous_requests(collection):
    response = APIClient().get(f"/api/{collection}/")

    assert response.status_code in (401, 403)


@pytest.mark.django_db
def test_anonymous_requests_cannot_create_a_source():
    response = APIClient().post("/api/sources/", {"reference": "x", "name": "X", "location": "http://x"},
                                format="json")

    assert response.status_code in (401, 403)
    assert not Source.objects.exists()


@pytest.mark.django_db
def test_a_user_who_is_not_staff_is_refused():
    user = get_user_model().objects.create(username="visitor")
    client = APIClient()
    client.force_authenticate(user)

    assert client.get("/api/sources/").status_code == 403


@pytest.mark.django_db
def test_basic_authentication_of_an_admin_is_accepted():
    get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-password")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic YWRtaW46YWRtaW4tcGFzc3dvcmQ=")  # admin:admin-password

    assert client.get("/api/sources/").status_code == 200


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_every_collection_answers_an_admin_with_an_empty_page(api, collection):
    assert results(api.get(f"/api/{collection}/")) == []


# ---------------------------------------------------------------------------------------------
# Sources and their write-only credentials


def test_a_source_is_created_listed_and_retrieved(api):
    body = created(api.post("/api/sources/", {
        "reference": "zoo-api", "name": "Zoo API", "type": "api", "location": "http://127.0.0.1:8900",
        "configuration": {"headers": {"Accept": "application/json"}},
    }, format="json"))

    source = Source.objects.get(reference="zoo-api")
    assert source.configuration == {"headers": {"Accept": "application/json"}}
    assert [item["reference"] for item in results(api.get("/api/sources/"))] == ["zoo-api"]
    retrieved = api.get(f"/api/sources/{body['id']}/").json()
    assert (retrieved["name"], retrieved["location"], retrieved["isEnabled"]) == (
        "Zoo API", "http://127.0.0.1:8900", True
    )


def test_credentials_are_accepted_on_create_and_stored(api):
    response = api.post("/api/sources/", {
        "reference": "zoo-api", "name": "Zoo API", "location": "http://127.0.0.1:8900",
        "credentials": {"token": SECRET},
    }, format="json")

    created(response)
    assert Source.objects.get(reference="zoo-api").credentials == {"token": SECRET}


def test_credentials_never_appear_in_any_source_response(api):
    create = api.post("/api/sources/", {
        "reference": "zoo-api", "name": "Zoo API", "location": "http://127.0.0.1:8900",
        "credentials": {"token": SECRET},
    }, format="json")
    source_id = create.json()["id"]
    responses = [
        create,
        api.get("/api/sources/"),
        api.get(f"/api/sources/{source_id}/"),
        api.patch(f"/api/sources/{source_id}/", {"name": "Renamed"}, format="json"),
        api.put(f"/api/sources/{source_id}/", {"reference": "zoo-api", "name": "Zoo", "location": "http://x.test",
                                                "credentials": {"token": SECRET}}, format="json"),
        api.get(f"/api/sources/{source_id}/", HTTP_ACCEPT="text/html"),  # the browsable API, with its forms
    ]

    for response in responses:
        assert response.status_code in (200, 201), response.content
        assert SECRET not in response.content.decode()
    assert "credentials" not in create.json()
    assert responses[-1]["Content-Type"].startswith("text/html")


def test_a_refused_source_does_not_echo_its_credentials(api):
    response = api.post("/api/sources/", {
        "reference": "not a slug", "name": "Zoo API", "location": "http://127.0.0.1:8900", "type": "ftp",
        "credentials": {"token": SECRET},
    }, format="json")

    assert set(refused(response)) >= {"reference", "type"}
    assert SECRET not in response.content.decode()


def test_updating_a_source_without_credentials_keeps_the_stored_ones(api):
    source = make_source()

    response = api.patch(f"/api/sources/{source.pk}/", {"name": "Renamed"}, format="json")

    assert response.status_code == 200
    source.refresh_from_db()
    assert (source.name, source.credentials) == ("Renamed", {"token": SECRET})


def test_updating_a_source_with_credentials_replaces_them(api):
    source = make_source()

    response = api.patch(f"/api/sources/{source.pk}/", {"credentials": {"token": "new"}}, format="json")

    assert response.status_code == 200
    source.refresh_from_db()
    assert source.credentials == {"token": "new"}


def test_rate_limit_state_cannot_be_written_through_the_api(api):
    source = make_source()

    api.patch(f"/api/sources/{source.pk}/", {"rateLimitRemaining": 0}, format="json")

    source.refresh_from_db()
    assert source.rate_limit_remaining is None


# ---------------------------------------------------------------------------------------------
# Mappings


def test_a_mapping_is_created_listed_and_retrieved(api):
    body = created(api.post("/api/mappings/", {
        "reference": "animal-in", "mapping": {"name": "title", "kind": "{{ species | upper }}"},
        "cast": {"legs": "int"}, "unset": ["secret"], "passThrough": True,
    }, format="json"))

    mapping = Mapping.objects.get(reference="animal-in")
    assert (mapping.cast, mapping.unset, mapping.pass_through) == ({"legs": "int"}, ["secret"], True)
    assert [item["reference"] for item in results(api.get("/api/mappings/"))] == ["animal-in"]
    assert api.get(f"/api/mappings/{body['id']}/").json()["mapping"] == {
        "name": "title", "kind": "{{ species | upper }}"
    }


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"mapping": {"legs": "legs"}, "cast": {"legs": "integr"}}, "legs"),
        ({"mapping": {"label": "{{ name "}}, "label"),
        ({"mapping": {"label": "{{ name | nosuchfilter }}"}}, "label"),
    ],
    ids=["unknown cast", "unclosed template", "unknown filter"],
)
def test_a_mapping_with_a_bad_cast_or_template_is_refused_naming_the_key(api, fields, key):
    body = refused(api.post("/api/mappings/", {"reference": "bad", **fields}, format="json"))

    assert key in json.dumps(body)
    assert not Mapping.objects.exists()


def test_changing_a_mapping_to_an_unknown_cast_is_refused_and_the_stored_one_kept(api):
    mapping = Mapping.objects.create(reference="animal-in", mapping={"legs": "legs"}, cast={"legs": "int"})

    body = refused(api.patch(f"/api/mappings/{mapping.pk}/", {"cast": {"legs": "integr"}}, format="json"))

    assert "legs" in json.dumps(body)
    mapping.refresh_from_db()
    assert mapping.cast == {"legs": "int"}


# ---------------------------------------------------------------------------------------------
# Registers, schemas and objects


def test_a_register_is_created_listed_and_retrieved(api):
    body = created(api.post("/api/registers/", {"reference": "zoo", "name": "Zoo"}, format="json"))

    assert Register.objects.get(reference="zoo").name == "Zoo"
    assert [item["reference"] for item in results(api.get("/api/registers/"))] == ["zoo"]
    assert api.get(f"/api/registers/{body['id']}/").json()["name"] == "Zoo"


def test_a_schema_is_created_listed_and_retrieved(api):
    register = Register.objects.create(reference="zoo")

    body = created(api.post("/api/schemas/", {"register": register.pk, "reference": "animal",
                                              "schema": ANIMAL_SCHEMA}, format="json"))

    assert Schema.objects.get(register=register, reference="animal").schema == ANIMAL_SCHEMA
    assert [item["reference"] for item in results(api.get("/api/schemas/"))] == ["animal"]
    assert api.get(f"/api/schemas/{body['id']}/").json()["schema"] == ANIMAL_SCHEMA


@pytest.mark.parametrize(
    "schema", [{"type": "objekt"}, {"required": "name"}, {"properties": {"name": {"minLength": -1}}}, ["type"]],
    ids=["unknown type", "required not a list", "negative minLength", "not an object"],
)
def test_a_schema_that_is_not_a_valid_json_schema_is_refused(api, schema):
    register = Register.objects.create(reference="zoo")

    body = refused(api.post("/api/schemas/", {"register": register.pk, "reference": "bad", "schema": schema},
                            format="json"))

    assert "schema" in body
    assert not Schema.objects.exists()


def test_an_object_valid_against_its_schema_is_created_listed_and_retrieved(api):
    schema = make_schema()

    body = created(api.post("/api/objects/", {"schema": schema.pk, "data": {"name": "Nala", "legs": 4}},
                            format="json"))

    stored = Object.objects.get()
    assert uuid.UUID(body["uuid"]) == stored.pk
    assert stored.data == {"name": "Nala", "legs": 4}
    assert [item["uuid"] for item in results(api.get("/api/objects/"))] == [body["uuid"]]
    assert api.get(f"/api/objects/{body['uuid']}/").json()["data"] == {"name": "Nala", "legs": 4}


@pytest.mark.parametrize(
    ("data", "place"),
    [({"legs": 4}, "name"), ({"name": "Nala", "legs": "four"}, "legs"), ({"name": "", "legs": 4}, "name")],
    ids=["missing required", "wrong type", "too short"],
)
def test_an_object_invalid_against_its_schema_is_refused_naming_the_place(api, data, place):
    schema = make_schema()

    body = refused(api.post("/api/objects/", {"schema": schema.pk, "data": data}, format="json"))

    assert place in json.dumps(body["data"])
    assert not Object.objects.exists()


def test_changing_an_object_to_invalid_data_is_refused(api):
    stored = Object.objects.create(schema=make_schema(), data={"name": "Nala"})

    refused(api.patch(f"/api/objects/{stored.pk}/", {"data": {"name": 7}}, format="json"))

    stored.refresh_from_db()
    assert stored.data == {"name": "Nala"}


def test_objects_are_filtered_by_schema(api):
    animal = make_schema()
    keeper = make_schema(register=animal.register, reference="keeper")
    Object.objects.create(schema=animal, data={"name": "Nala"})
    Object.objects.create(schema=keeper, data={"name": "Anna"})

    listed = results(api.get("/api/objects/", {"schema": keeper.pk}))

    assert [item["data"]["name"] for item in listed] == ["Anna"]


# ---------------------------------------------------------------------------------------------
# Synchronizations


def synchronization_body(**changes: Any) -> dict[str, Any]:
    source = Source.objects.first() or make_source()
    schema = Schema.objects.first() or make_schema()
    body = {
        "reference": "animals", "name": "Animals", "sourceType": "api", "source": source.pk,
        "sourceConfig": {"endpoint": "/animals", "resultsPosition": "results"},
        "conditions": {"==": [{"var": "status"}, "active"]},
        "targetType": "register/schema", "targetSchema": schema.pk, "schedule": "*/15 * * * *",
    }
    return {**body, **changes}


def test_a_synchronization_is_created_listed_and_retrieved(api):
    body = created(api.post("/api/synchronizations/", synchronization_body(), format="json"))

    sync = Synchronization.objects.get(reference="animals")
    assert sync.conditions == {"==": [{"var": "status"}, "active"]}
    assert sync.source_config == {"endpoint": "/animals", "resultsPosition": "results"}
    assert [item["reference"] for item in results(api.get("/api/synchronizations/"))] == ["animals"]
    retrieved = api.get(f"/api/synchronizations/{body['id']}/").json()
    assert (retrieved["source"], retrieved["targetSchema"]) == (sync.source_id, sync.target_schema_id)


@pytest.mark.parametrize(
    "conditions",
    [{"equals": [{"var": "status"}, "active"]}, {"and": [{"==": [1, 1]}, {"nope": [1]}]}],
    ids=["top level", "nested"],
)
def test_conditions_with_an_unknown_operator_are_refused_naming_it(api, conditions):
    body = refused(api.post("/api/synchronizations/", synchronization_body(conditions=conditions), format="json"))

    unknown = next(iter(conditions)) if "and" not in conditions else "nope"
    assert unknown in json.dumps(body["conditions"])
    assert not Synchronization.objects.exists()


def test_changing_conditions_to_an_unknown_operator_is_refused_and_the_stored_ones_kept(api):
    sync = make_synchronization(conditions={"==": [{"var": "status"}, "active"]})

    refused(api.patch(f"/api/synchronizations/{sync.pk}/", {"conditions": {"is": [1, 1]}}, format="json"))

    sync.refresh_from_db()
    assert sync.conditions == {"==": [{"var": "status"}, "active"]}


@pytest.mark.parametrize(
    ("source_config", "named"),
    [({"pagination": {"type": "bogus"}}, "pagination.type"), ({"maxPages": 0}, "maxPages")],
)
def test_a_synchronization_with_bad_pagination_settings_is_refused_naming_them(api, source_config, named):
    body = refused(api.post("/api/synchronizations/", synchronization_body(sourceConfig=source_config),
                            format="json"))

    assert named in json.dumps(body["sourceConfig"])
    assert not Synchronization.objects.exists()


def test_the_openapi_schema_answers_and_describes_the_collections(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert {"/api/sources/", "/api/synchronizations/{id}/run/", "/api/runs/"} <= set(paths)


# ---------------------------------------------------------------------------------------------
# Runs through the API


def test_a_test_run_through_the_api_returns_the_report_and_writes_nothing(api, sample_source, animals):
    bundle_import(zoo_bundle(location=sample_source.url))
    sync = Synchronization.objects.get(reference="animals")
    sample_source.reset_requests()

    response = api.post(f"/api/synchronizations/{sync.pk}/run/", {"test": True}, format="json")

    assert response.status_code in (200, 202), response.content
    body = response.json()
    assert body["isTest"] is True
    assert body["status"] == "succeeded", body
    first_page = animals[:50]  # the zoo bundle asks for 50 per page
    active = [animal for animal in first_page if animal["status"] == "active"]
    assert body["counts"]["found"] == len(first_page)
    assert body["counts"]["filtered"] == len(first_page) - len(active)
    assert body["counts"]["created"] == len(active)
    written = [entry for entry in body["report"] if entry["action"] == "create"]
    assert {entry["originId"] for entry in written} == {str(animal["id"]) for animal in active}
    assert all(isinstance(entry["result"]["legs"], int) for entry in written)
    assert len(sample_source.requests) == 1
    assert not Object.objects.exists()
    assert not SynchronizationContract.objects.exists()
    assert not ContractLog.objects.exists()
    assert list(SynchronizationRun.objects.values_list("is_test", flat=True)) == [True]


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_run_started_through_the_api_can_be_followed_to_its_end(api, sample_source, animals):
    bundle_import(zoo_bundle(location=sample_source.url))
    sync = Synchronization.objects.get(reference="animals")

    response = api.post(f"/api/synchronizations/{sync.pk}/run/", {}, format="json")
    queued = api.get(f"/api/runs/{response.json()['id']}/").json()
    runner_take()  # what `sync serve` does with it

    assert response.status_code == 202, response.content
    assert queued["status"] == "queued"
    run = api.get(f"/api/runs/{response.json()['id']}/").json()
    active = [animal for animal in animals if animal["status"] == "active"]
    assert (run["status"], run["trigger"], run["isTest"]) == ("succeeded", "api", False)
    assert run["counts"]["created"] == len(active)
    assert Object.objects.count() == len(active)


def test_running_a_synchronization_without_a_source_is_refused_with_a_message(api):
    sync = make_synchronization(reference="no-source")
    Synchronization.objects.filter(pk=sync.pk).update(source=None)

    response = api.post(f"/api/synchronizations/{sync.pk}/run/", {"test": True}, format="json")

    assert response.status_code == 400
    assert "no-source" in response.json()["detail"]
    assert not SynchronizationRun.objects.exists()


def test_running_a_disabled_synchronization_is_refused_with_a_conflict(api):
    sync = make_synchronization(is_enabled=False)

    response = api.post(f"/api/synchronizations/{sync.pk}/run/", {}, format="json")

    assert response.status_code == 409
    assert "disabled" in response.json()["detail"]
    assert not SynchronizationRun.objects.exists()


def test_starting_a_second_run_while_one_is_active_is_refused_with_a_conflict(api):
    sync = make_synchronization()
    active = SynchronizationRun.objects.create(synchronization=sync, status="running")

    response = api.post(f"/api/synchronizations/{sync.pk}/run/", {"force": True}, format="json")

    assert response.status_code == 409
    assert str(active.pk) in response.json()["detail"]
    assert list(SynchronizationRun.objects.all()) == [active]


# ---------------------------------------------------------------------------------------------
# Runs, contracts and contract logs, filtered by synchronization


@pytest.fixture
def two_synchronizations(db) -> tuple[Synchronization, Synchronization]:
    """Two synchronizations, each with a run, a contract and a contract log."""
    first = make_synchronization()
    second = make_synchronization(reference="keepers", source=first.source, target_schema=first.target_schema)
    for sync in (first, second):
        run = SynchronizationRun.objects.create(synchronization=sync, status="succeeded", found=1, created=1)
        contract = SynchronizationContract.objects.create(
            synchronization=sync, origin_id=f"{sync.reference}-1", status="synced", target_last_action="create"
        )
        ContractLog.objects.create(synchronization=sync, contract=contract, run=run, origin_id=contract.origin_id,
                                   action="create", status="synced")
    return first, second


@pytest.mark.parametrize("collection", ["runs", "contracts", "contract-logs"])
def test_runs_contracts_and_logs_are_listed_for_every_synchronization(api, two_synchronizations, collection):
    listed = results(api.get(f"/api/{collection}/"))

    assert {item["synchronization"] for item in listed} == {sync.pk for sync in two_synchronizations}


@pytest.mark.parametrize("collection", ["runs", "contracts", "contract-logs"])
def test_runs_contracts_and_logs_are_filtered_by_synchronization_reference(api, two_synchronizations, collection):
    first, second = two_synchronizations

    listed = results(api.get(f"/api/{collection}/", {"synchronization": "keepers"}))

    assert [item["synchronization"] for item in listed] == [second.pk]
    assert results(api.get(f"/api/{collection}/", {"synchronization": "unknown"})) == []


def test_a_run_is_retrieved_with_its_counts(api, two_synchronizations):
    run = SynchronizationRun.objects.get(synchronization=two_synchronizations[0])

    body = api.get(f"/api/runs/{run.pk}/").json()

    assert body["counts"] == {"found": 1, "filtered": 0, "unchanged": 0, "created": 1, "updated": 0, "deleted": 0,
                              "invalid": 0, "failed": 0}
    assert body["reference"] == str(run.reference)


def test_contracts_are_filtered_by_status_and_action(api, two_synchronizations):
    SynchronizationContract.objects.filter(origin_id="keepers-1").update(status="failed", target_last_action="skip")

    assert [c["originId"] for c in results(api.get("/api/contracts/", {"status": "failed"}))] == ["keepers-1"]
    assert [c["originId"] for c in results(api.get("/api/contracts/", {"targetLastAction": "create"}))] == [
        "animals-1"
    ]


def test_runs_contracts_and_logs_cannot_be_written_through_the_api(api, two_synchronizations):
    run = SynchronizationRun.objects.first()

    assert api.post("/api/runs/", {"synchronization": run.synchronization_id}, format="json").status_code == 405
    assert api.delete(f"/api/runs/{run.pk}/").status_code == 405
    assert SynchronizationRun.objects.count() == 2


@pytest.mark.parametrize("path", ["/api/runs/", "/api/contracts/", "/api/contract-logs/"])
def test_lists_take_a_synchronization_by_id_or_reference_and_refuse_unknown_filters(api, path):
    bundle_import(zoo_bundle(location="http://127.0.0.1:8900"))
    sync = Synchronization.objects.get(reference="animals")
    run = SynchronizationRun.objects.create(synchronization=sync, status="succeeded")
    contract = SynchronizationContract.objects.create(synchronization=sync, origin_id="1", status="synced")
    ContractLog.objects.create(synchronization=sync, contract=contract, run=run, origin_id="1", status="synced")

    by_id = api.get(f"{path}?synchronization={sync.pk}")
    by_reference = api.get(f"{path}?synchronization={sync.reference}")
    other = api.get(f"{path}?synchronization=nothing-like-it")
    misspelt = api.get(f"{path}?synchronisation={sync.pk}")

    assert by_id.json()["count"] == by_reference.json()["count"] == 1
    assert other.json()["count"] == 0
    assert misspelt.status_code == 400 and "synchronisation" in misspelt.json()


# ---------------------------------------------------------------------------------------------
# One naming style, filters that say what they take, a synchronization by id or reference


def test_every_collection_answers_camel_case_field_names_with_an_id_and_a_reference(api, two_synchronizations):
    for collection in ["sources", "schemas", "synchronizations", "runs", "contracts", "contract-logs"]:
        item = results(api.get(f"/api/{collection}/"))[0]

        assert all("_" not in name for name in item), (collection, sorted(item))
        assert {"id", "reference"} <= set(item), (collection, sorted(item))


def test_starting_a_run_answers_the_run_as_the_runs_collection_shows_it(api):
    sync = make_synchronization()

    started = api.post(f"/api/synchronizations/{sync.reference}/run/", {}, format="json")

    assert started.status_code == 202, started.content
    shown = api.get(f"/api/runs/{started.json()['id']}/").json()
    assert set(started.json()) == set(shown)
    assert (started.json()["reference"], started.json()["synchronizationReference"]) == (
        shown["reference"], "animals"
    )


def test_a_synchronization_is_named_in_a_path_by_its_id_or_its_reference(api):
    sync = make_synchronization()

    by_id = api.get(f"/api/synchronizations/{sync.pk}/")
    by_reference = api.get(f"/api/synchronizations/{sync.reference}/")
    renamed = api.patch(f"/api/synchronizations/{sync.reference}/", {"name": "Renamed"}, format="json")

    assert by_id.json()["id"] == by_reference.json()["id"] == sync.pk
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
    assert api.get("/api/synchronizations/no-such-one/").status_code == 404


def test_a_reference_of_digits_names_its_synchronization_and_unicode_digits_name_nothing(api):
    # Given a synchronization whose reference is all digits, and another whose id is that number
    sync = make_synchronization()
    digits = make_synchronization(reference=str(sync.pk), source=sync.source, target_schema=sync.target_schema)
    SynchronizationRun.objects.create(synchronization=digits)

    # Then the reference wins over the id it looks like, in a path and in a filter
    assert api.get(f"/api/synchronizations/{sync.pk}/").json()["id"] == digits.pk
    assert [run["synchronization"] for run in api.get(f"/api/runs/?synchronization={sync.pk}").json()["results"]] == [
        digits.pk
    ]
    # and digits that are not ASCII are a reference no one has, not a server error
    assert api.get("/api/synchronizations/\u00b2/").status_code == 404
    assert api.get("/api/runs/?synchronization=\u00b2").json()["results"] == []
    assert api.patch(f"/api/synchronizations/{sync.pk}/", {"followUps": ["\u00b2"]}, format="json").status_code == 400


def test_follow_ups_are_taken_by_id_or_reference_and_answered_by_id(api):
    first = make_synchronization()
    second = make_synchronization(reference="keepers", source=first.source, target_schema=first.target_schema)
    third = make_synchronization(reference="feeding", source=first.source, target_schema=first.target_schema)

    response = api.patch(f"/api/synchronizations/{first.pk}/", {"followUps": ["keepers", third.pk]}, format="json")
    unknown = api.patch(f"/api/synchronizations/{first.pk}/", {"followUps": ["nothing-like-it"]}, format="json")

    assert response.status_code == 200, response.content
    assert sorted(response.json()["followUps"]) == sorted([second.pk, third.pk])
    assert "nothing-like-it" in json.dumps(refused(unknown)["followUps"])


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("/api/runs/", {"status": "finished"}, "status"),
        ("/api/runs/", {"createdAfter": "yesterday"}, "createdAfter"),
        ("/api/runs/", {"isTest": "maybe"}, "isTest"),
        ("/api/contracts/", {"targetLastAction": "erase"}, "targetLastAction"),
        ("/api/contract-logs/", {"run": "first"}, "run"),
        ("/api/objects/", {"schema": "animal"}, "schema"),
    ],
)
def test_a_filter_given_a_value_it_cannot_take_is_refused_naming_it(api, path, query, named):
    body = refused(api.get(path, query))

    assert named in body


def test_an_unknown_query_parameter_is_refused_naming_the_filters_the_list_takes(api):
    body = refused(api.get("/api/runs/", {"state": "failed"}))

    assert "state" in body
    assert "status" in body["state"][0] and "createdAfter" in body["state"][0]


def test_runs_are_filtered_by_trigger_and_by_when_they_were_created(api, two_synchronizations):
    run = SynchronizationRun.objects.get(synchronization__reference="keepers")
    SynchronizationRun.objects.filter(pk=run.pk).update(trigger="schedule")

    scheduled = results(api.get("/api/runs/", {"trigger": "schedule"}))
    recent = results(api.get("/api/runs/", {"createdAfter": run.created_at.isoformat()}))
    future = results(api.get("/api/runs/", {"createdAfter": "2999-01-01T00:00:00Z"}))

    assert [item["id"] for item in scheduled] == [run.pk]
    assert run.pk in {item["id"] for item in recent}
    assert future == []


def test_a_runs_pages_are_listed_in_order(api, two_synchronizations):
    from contracts.models import RunPage

    run = SynchronizationRun.objects.get(synchronization__reference="animals")
    RunPage.objects.create(run=run, number=2, request={"url": "http://127.0.0.1:8900/animals", "params": {"page": 2}})
    RunPage.objects.create(run=run, number=1, request={"url": "http://127.0.0.1:8900/animals"}, object_count=50,
                           status="done")

    pages = api.get(f"/api/runs/{run.pk}/pages/").json()

    assert [(page["number"], page["objectCount"], page["status"]) for page in pages] == [
        (1, 50, "done"), (2, 0, "queued")
    ]


def test_a_json_field_sent_as_null_in_a_form_is_refused_not_stored(api):
    response = api.post("/api/mappings/", {"reference": "m", "name": "M", "mapping": "null"}, format="multipart")

    assert "mapping" in refused(response)
    assert not Mapping.objects.exists()


def test_deleting_a_source_a_synchronization_uses_is_refused_naming_it(api):
    sync = make_synchronization()

    response = api.delete(f"/api/sources/{sync.source_id}/")

    assert response.status_code == 409
    assert "animals" in response.json()["detail"]
    assert Source.objects.filter(pk=sync.source_id).exists()


def test_a_path_nothing_serves_under_the_api_is_answered_in_json(api):
    response = api.get("/api/sources/1.5/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_limit_or_offset_past_what_the_database_counts_is_bounded_not_an_error(api):
    make_source()

    huge_limit = api.get("/api/sources/", {"limit": 2**80})
    huge_offset = api.get("/api/sources/", {"offset": 2**80})

    assert [item["reference"] for item in results(huge_limit)] == ["zoo-api"]
    assert results(huge_offset) == []
