"""Importing OpenConnector exports (SYNC.md section 2): its field names, PHP's empty arrays, booleans as text,
references that are URLs, numeric ids resolved by reference, by id or position in the bundle, or in the database;
source authentication moved into write-only credentials."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from syncapp import runs as sync_runs
from syncapp.configuration import ConfigurationInvalid, bundle_export, bundle_import
from syncapp.models import Mapping, Object, Schema, Source, Synchronization
from syncapp.openconnector import bundle_normalize
from syncapp.sample_source import generate_animals
from tests.conftest import zoo_bundle
from tests.loopback import LoopbackServer

LOCATION = "http://127.0.0.1:8900"
API_KEY = "oc-apikey-3f9d-never-show"
CLIENT_SECRET = "oc-secret-77aa-never-show"


def exported_synchronization(**changes: Any) -> dict[str, Any]:
    """A synchronization as OpenConnector's export writes it."""
    url = "https://cloud.example/index.php/apps/openconnector/api/synchronizations/7"
    return {
        "@context": {"schema": "http://schema.org", "register": "Not Implemented"},
        "@type": "synchronization", "@id": url,
        "id": 7, "uuid": "0f7a1e2c-5b1d-4c52-9d2e-3f1a6c0b9e11", "name": "Animals from the zoo",
        "description": None, "reference": url, "version": "0.0.3",
        "sourceId": "1", "sourceType": "api", "sourceHash": None, "sourceHashMapping": None,
        "sourceTargetMapping": "1",
        "sourceConfig": {"endpoint": "/animals", "idPosition": "id", "resultsPosition": "results",
                         "usesPagination": "false", "headers.Accept": "application/json"},
        "sourceLastChanged": None, "sourceLastChecked": None, "sourceLastSynced": None, "currentPage": 1,
        "targetId": "1/1", "targetType": "register/schema", "targetHash": None, "targetSourceMapping": None,
        "targetConfig": [], "targetLastChanged": None, "targetLastChecked": None, "targetLastSynced": None,
        "created": "2024-11-02T10:11:12+00:00", "updated": "2024-11-03T10:11:12+00:00",
        "conditions": [], "followUps": [], "actions": [], "configurations": [], "status": None, "slug": "animals",
        **changes,
    }


def exported_source(**changes: Any) -> dict[str, Any]:
    """A source as OpenConnector's export writes it, with an API key in its auth fields."""
    return {
        "@type": "source", "id": 1, "uuid": "7d6e3c1f-0000-4000-8000-000000000001", "name": "Zoo API",
        "description": None, "version": "0.0.1", "reference": None, "location": LOCATION, "isEnabled": True,
        "type": "api", "authorizationHeader": "X-Api-Key", "auth": "apikey", "authenticationConfig": [],
        "apikey": API_KEY, "username": None, "password": None, "headers": [], "configuration": [],
        "rateLimitLimit": None, "dateCreated": "2024-11-01T09:00:00+00:00", "slug": "zoo-api",
        **changes,
    }


def exported_mapping(**changes: Any) -> dict[str, Any]:
    return {
        "@type": "mapping", "id": 1, "uuid": "9a9a9a9a-0000-4000-8000-000000000002", "name": "Animal in",
        "description": None, "version": "0.0.1", "reference": None, "slug": "animal-in",
        "mapping": {"name": "name", "species": "species", "legs": "legs"}, "unset": [], "cast": {"legs": "int"},
        "passThrough": None, "dateCreated": None, "dateModified": None,
        **changes,
    }


def zoo_register(**schema_changes: Any) -> dict[str, Any]:
    schema = copy.deepcopy(zoo_bundle(location=LOCATION)["registers"][0]["schemas"][0])
    schema["schema"]["required"] = ["name", "species", "legs"]
    return {"reference": "zoo", "name": "Zoo", "schemas": [{**schema, **schema_changes}]}


@pytest.fixture
def zoo_in_place(db) -> tuple[Source, Mapping, Schema]:
    """The zoo's source, mapping and schema, imported from this service's own bundle."""
    bundle_import(zoo_bundle(location=LOCATION))
    return Source.objects.get(), Mapping.objects.get(), Schema.objects.get()


# ---------------------------------------------------------------------------------------------
# One exported synchronization, linked to what exists


def test_an_exported_synchronization_imports_linked_by_database_ids(zoo_in_place):
    source, mapping, schema = zoo_in_place

    bundle_import(exported_synchronization(
        sourceId=str(source.pk), sourceTargetMapping=mapping.pk, targetId=f"{schema.register.pk}/{schema.pk}",
    ))

    sync = Synchronization.objects.get(reference="animals")
    assert (sync.source, sync.source_target_mapping, sync.target_schema) == (source, mapping, schema)
    assert (sync.name, sync.description, sync.conditions, sync.target_config) == ("Animals from the zoo", "", {}, {})
    assert sync.source_config["usesPagination"] == "false"


def test_an_exported_synchronization_may_name_what_it_links_to_by_reference(zoo_in_place):
    bundle_import(exported_synchronization(sourceId="zoo-api", sourceTargetMapping="animal-in", targetId="zoo/animal"))

    assert Synchronization.objects.get(reference="animals").source.reference == "zoo-api"


def test_importing_the_same_export_twice_changes_nothing(zoo_in_place):
    source, mapping, schema = zoo_in_place
    exported = exported_synchronization(
        sourceId=source.pk, sourceTargetMapping=mapping.pk, targetId=f"{schema.register.pk}/{schema.pk}",
    )
    bundle_import(copy.deepcopy(exported))

    result = bundle_import(copy.deepcopy(exported))

    assert (result.created["synchronizations"], result.updated["synchronizations"]) == (0, 1)
    assert Synchronization.objects.filter(name="Animals from the zoo").count() == 1


def test_an_id_that_names_nothing_is_reported_with_its_path(zoo_in_place):
    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_import(exported_synchronization(sourceId="4242", sourceTargetMapping="animal-in", targetId="zoo/animal"))

    assert caught.value.problems == ["synchronizations[0].sourceId: no source with reference '4242'"]


def test_an_exported_synchronization_runs_with_its_text_booleans(transactional_db, in_process_tasks):
    animals = generate_animals(count=30, seed=9)
    pages = {"count": len(animals), "next": "/animals?page=2", "results": animals[:10]}
    with LoopbackServer(lambda request: (200, {}, pages)) as server:
        bundle_import({
            "sources": [exported_source(location=server.url, auth="none", apikey=None)],
            "registers": [zoo_register()],
            "mappings": [exported_mapping()],
            "synchronizations": [exported_synchronization(targetId="zoo/animal")],
        })

        run = sync_runs.run_start(synchronization=Synchronization.objects.get(reference="animals"))

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert (len(server.requests), run.found, Object.objects.count()) == (1, 10, 10)  # usesPagination "false"


# ---------------------------------------------------------------------------------------------
# A whole export: ids resolved inside the bundle


def test_numeric_ids_resolve_to_the_items_of_the_bundle_with_those_ids(db):
    bundle = {
        "sources": [exported_source(id=4, slug="other", location="http://127.0.0.1:1"), exported_source(id=9)],
        "registers": [{"id": 3, **zoo_register(id=5)}],
        "mappings": [exported_mapping(id=2, slug="unused"), exported_mapping(id=6)],
        "synchronizations": [exported_synchronization(sourceId="9", sourceTargetMapping="6", targetId="3/5")],
    }

    bundle_import(bundle)

    sync = Synchronization.objects.get(reference="animals")
    assert (sync.source.reference, sync.source_target_mapping.reference) == ("zoo-api", "animal-in")
    assert sync.target_schema.path == "zoo/animal"


def test_numeric_ids_resolve_by_position_in_a_bundle_whose_items_carry_no_ids(db):
    sources = [exported_source(slug="first", location="http://127.0.0.1:1"), exported_source()]
    mappings = [exported_mapping(slug="first-mapping"), exported_mapping()]
    for item in (*sources, *mappings):
        del item["id"]
    bundle = {
        "sources": sources, "registers": [zoo_register()], "mappings": mappings,
        "synchronizations": [exported_synchronization(sourceId="2", sourceTargetMapping="2", targetId="1/1")],
    }

    bundle_import(bundle)

    sync = Synchronization.objects.get(reference="animals")
    assert (sync.source.reference, sync.source_target_mapping.reference) == ("zoo-api", "animal-in")
    assert sync.target_schema.path == "zoo/animal"


def test_follow_ups_given_by_id_resolve_to_the_synchronizations_of_the_bundle(db):
    bundle = {
        "sources": [exported_source()], "registers": [zoo_register()], "mappings": [exported_mapping()],
        "synchronizations": [
            exported_synchronization(id=7, followUps=[8], sourceId="1", targetId="zoo/animal"),
            exported_synchronization(id=8, slug="keepers", name="Keepers", targetId="zoo/animal",
                                     reference="https://cloud.example/synchronizations/8"),
        ],
    }

    bundle_import(bundle)

    animals = Synchronization.objects.get(reference="animals")
    assert [follow_up.reference for follow_up in animals.follow_ups.all()] == ["keepers"]


def test_an_openapi_style_export_with_components_keyed_by_slug_imports(db):
    source = exported_source()
    source.pop("slug")
    bundle = {
        "openapi": "3.0.0", "info": {"title": "Zoo", "version": "1.0.0"},
        "components": {
            "sources": {"zoo-api": source},
            "registers": [zoo_register()],
            "mappings": {"animal-in": exported_mapping()},
            "synchronizations": {"animals": exported_synchronization(targetId="zoo/animal")},
        },
    }

    result = bundle_import(bundle)

    assert result.created == {"sources": 1, "registers": 1, "mappings": 1, "rules": 0, "synchronizations": 1}
    assert Synchronization.objects.get().source.reference == "zoo-api"


# ---------------------------------------------------------------------------------------------
# Source authentication becomes write-only credentials


def test_an_openconnector_api_key_becomes_credentials_and_is_never_exported(db):
    bundle_import({"sources": [exported_source()]})

    source = Source.objects.get(reference="zoo-api")
    assert source.credentials == {"type": "apiKey", "in": "header", "name": "X-Api-Key", "value": API_KEY}
    assert source.configuration == {}
    assert API_KEY not in str(bundle_export())


def test_openconnector_oauth_settings_in_the_configuration_become_credentials(db):
    configuration = {
        "headers.Authorization": "{{ oauthToken(source) }}", "headers.Accept": "application/json",
        "authentication.grant_type": "client_credentials", "authentication.tokenUrl": "https://login.example/token",
        "authentication.client_id": "zoo", "authentication.client_secret": CLIENT_SECRET,
        "authentication.scope": "api", "authentication.authentication": "body",
    }

    bundle_import({"sources": [exported_source(auth="oauth", apikey=None, configuration=configuration)]})

    source = Source.objects.get()
    assert source.credentials == {
        "type": "oauth2", "grant_type": "client_credentials", "tokenUrl": "https://login.example/token",
        "clientId": "zoo", "clientSecret": CLIENT_SECRET, "scope": "api", "clientAuthentication": "body",
    }
    assert source.configuration == {"headers.Accept": "application/json"}
    assert CLIENT_SECRET not in str(bundle_export())


def test_an_authentication_this_service_does_not_speak_is_reported_with_its_path(db):
    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_import({"sources": [exported_source(auth="jwt-HS256", apikey=None)]})

    assert caught.value.problems == [
        "sources[0].credentials.type: must be one of none, apiKey, basic, bearer, oauth2, "
        "got another value (not shown: credentials are never echoed)"
    ]


def test_a_bundle_of_this_service_reads_as_it_is(db):
    bundle = zoo_bundle(location=LOCATION)

    assert bundle_normalize(copy.deepcopy(bundle)) == bundle


def test_extra_data_configs_of_an_export_keep_their_keys_and_name_another_source_by_reference(db):
    extra = [{"staticEndpoint": "/animals/{{ originId }}", "keyToSetExtraData": "detail", "source": 4,
              "unsetConfigKey": "query",
              "extraDataConfigPerResult": {"dynamicEndpointLocation": "href", "sourceId": "9"}}]
    bundle = {
        "sources": [exported_source(id=4, slug="staff-api", location="http://127.0.0.1:1"), exported_source(id=9)],
        "registers": [{"id": 3, **zoo_register(id=5)}],
        "mappings": [exported_mapping(id=6)],
        "synchronizations": [exported_synchronization(
            sourceId="9", sourceTargetMapping="6", targetId="3/5",
            sourceConfig={"endpoint": "/animals", "extraDataConfigs": extra, "fetchExtraDataBeforeConditions": "true"},
        )],
    }

    bundle_import(bundle)

    config = Synchronization.objects.get(reference="animals").source_config
    assert config["extraDataConfigs"][0]["source"] == "staff-api"
    assert config["extraDataConfigs"][0]["extraDataConfigPerResult"]["sourceId"] == "zoo-api"
    assert config["extraDataConfigs"][0]["keyToSetExtraData"] == "detail"


def test_a_secret_header_of_an_exported_synchronization_is_not_imported_and_the_report_says_where_it_goes(
    zoo_in_place,
):
    source_config = {"endpoint": "/animals", "headers.X-Api-Key": API_KEY, "headers.Accept": "application/json"}

    result = bundle_import(exported_synchronization(
        sourceId="zoo-api", sourceTargetMapping="animal-in", targetId="zoo/animal", sourceConfig=source_config,
    ))

    sync = Synchronization.objects.get(reference="animals")
    assert sync.source_config == {"endpoint": "/animals", "headers.Accept": "application/json"}
    assert result.moved == [
        "synchronizations[0].sourceConfig.headers.X-Api-Key: not imported, a secret goes in the credentials of "
        "source 'zoo-api'"
    ]
    assert API_KEY not in str(bundle_export())
