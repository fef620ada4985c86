"""Importing OpenConnector exports (SYNC.md section 2): its field names, PHP's empty arrays, booleans as text,
references that are URLs, numeric ids resolved by reference, by id or position in the bundle, or in the database;
source authentication moved into write-only credentials."""
from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from syncapp import runs as sync_runs
from syncapp.configuration import ConfigurationInvalid, bundle_export, bundle_import
from syncapp.documents import document_keys
from syncapp.models import Mapping, Object, Register, Rule, Schema, Source, Synchronization
from syncapp.openconnector import bundle_normalize, config_dot_applied, php_arrays_read
from syncapp.sample_source import generate_animals
from syncapp.sources.api import ApiReader
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
    assert source.configuration == {"headers": {"Accept": "application/json"}}  # dotted keys placed, as OpenConnector
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
    assert sync.source_config == {"endpoint": "/animals", "headers": {"Accept": "application/json"}}
    assert result.moved == [
        "synchronizations[0].sourceConfig.headers.X-Api-Key: not imported, a secret goes in the credentials of "
        "source 'zoo-api'"
    ]
    assert API_KEY not in str(bundle_export())


# ---------------------------------------------------------------------------------------------
# OpenConnector's own shipped configurations (../shared/conformance/openconnector/configurations/): each
# folder imported with `sync import DIR`, its sources pointed at a loopback fake and nothing else changed

CONFIGURATIONS = Path(os.environ.get(
    "SYNC_OPENCONNECTOR_CONFIGURATIONS",
    Path(__file__).resolve().parents[3] / "shared" / "conformance" / "openconnector" / "configurations",
))
needs_configurations = pytest.mark.skipif(
    not CONFIGURATIONS.is_dir(), reason=f"OpenConnector's configurations are not at {CONFIGURATIONS}"
)
TWIG = "its mappings are Twig (elseif, merge, json_encode, ??): read once mappings say their language"
FOLDERS = [
    "RX-woo", "sharepoint-woo", "xxllnc-zoekendpoint-woo",
    pytest.param("woo-elastic", marks=pytest.mark.xfail(strict=True, reason=TWIG)),
    pytest.param("xxllnc-suite-woo", marks=pytest.mark.xfail(strict=True, reason=TWIG)),
    # Also: a condition uses JSON Logic's `has`, which json-logic-php (OpenConnector's) does not know either.
    pytest.param("xxllnc-zgw", marks=pytest.mark.xfail(strict=True, reason=TWIG)),
]
ALL_FOLDERS = ["RX-woo", "sharepoint-woo", "xxllnc-zoekendpoint-woo", "woo-elastic", "xxllnc-suite-woo", "xxllnc-zgw"]


def shipped_objects(folder: Path) -> dict[str, dict[str, Any]]:
    """The objects of a shipped folder, by their path in it."""
    return {str(path.relative_to(folder)): json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(folder.rglob("*.json"))}


def folder_with_locations(tmp_path: Path, name: str, location: str) -> Path:
    """A copy of a shipped folder whose sources' `location` (and nothing else) is `location`."""
    folder = tmp_path / name
    shutil.copytree(CONFIGURATIONS / name, folder)
    for path in (folder / "sources").glob("*.json"):
        source = json.loads(path.read_text(encoding="utf-8"))
        source["location"] = location
        path.write_text(json.dumps(source), encoding="utf-8")
    return folder


@pytest.fixture
def openregister_publications(db) -> Schema:
    """The register and schema that the shipped synchronizations name "1/1": OpenRegister's ids 1 and 1."""
    register = Register.objects.create(pk=1, reference="publications", name="Publications")
    return Schema.objects.create(pk=1, register=register, reference="publication", name="Publication",
                                 schema={"type": "object"})


def sync_command(*args: str) -> tuple[str, str]:
    """Run `sync` and return what it printed, and the error it ended with ("" when none)."""
    out = io.StringIO()
    try:
        call_command("sync", *args, stdout=out, stderr=io.StringIO())
    except CommandError as error:
        return out.getvalue(), str(error)
    return out.getvalue(), ""


@needs_configurations
@pytest.mark.parametrize("name", FOLDERS)
def test_each_shipped_folder_imports_with_only_its_locations_pointed_at_a_loopback_fake(
    name, tmp_path, openregister_publications,
):
    with LoopbackServer(lambda request: (404, {}, {})) as fake:
        folder = folder_with_locations(tmp_path, name, fake.url)

        out, error = sync_command("import", str(folder))

    assert error == "", out + error
    shipped = shipped_objects(CONFIGURATIONS / name)
    counts = {kind: sum(1 for path in shipped if path.startswith(f"{kind}/")) for kind in ("sources", "mappings",
                                                                                            "synchronizations")}
    assert (Source.objects.count(), Mapping.objects.count(), Synchronization.objects.count()) == (
        counts["sources"], counts["mappings"], counts["synchronizations"])
    assert set(Source.objects.values_list("location", flat=True)) == {fake.url}
    for sync in Synchronization.objects.all():
        # Each names the folder's own objects, and the register/schema 1/1 is OpenRegister's ids 1 and 1.
        assert sync.source_target_mapping is not None
        assert {sync.source, sync.target_source} & set(Source.objects.all()) or sync.source_schema is not None
        assert openregister_publications in (sync.target_schema, sync.source_schema)
    assert fake.requests == []  # importing calls nothing


@needs_configurations
@pytest.mark.parametrize("name", ALL_FOLDERS)
def test_a_check_of_each_shipped_folder_as_shipped_reports_every_object_and_writes_nothing(name, db):
    out, error = sync_command("import", "--check", "--json", str(CONFIGURATIONS / name))

    report = json.loads(out)
    shipped = shipped_objects(CONFIGURATIONS / name)
    assert sorted(item["object"] for item in report["objects"]) == sorted(shipped)
    assert {item["outcome"] for item in report["objects"]} <= {"importable", "refused", "not imported"}
    for item in report["objects"]:
        if item["kind"] == "rule":
            assert item["outcome"] == "importable", item  # a rule names the folder's source, which it holds
        if item["kind"] == "source":
            # Every shipped source leaves its location to be filled in: "" or a placeholder.
            assert item["outcome"] == "refused"
            assert [problem.split(": ")[0] for problem in item["problems"]] == ["location"]
        assert_every_key_accounted_for(shipped[item["object"]], item)
    assert error.startswith(f"{len(report['problems'])} problem(s): importing")
    assert (Source.objects.count(), Mapping.objects.count(), Synchronization.objects.count()) == (0, 0, 0)


# What a report names for each top-level key of a shipped object that is not imported under its own name.
_READ_AS = {"auth", "apikey", "authorizationHeader", "username", "password", "headers", "reference", "slug"}


def assert_every_key_accounted_for(shipped: dict[str, Any], item: dict[str, Any]) -> None:
    """Assert that each key of a shipped object is imported, or named in the report: nothing goes without a word."""
    imported = set(document_keys(f"{item['kind']}s"))
    said = " ".join([*item["ignored"], *item["notes"], *item["problems"]])
    for key in shipped:
        assert key in imported or key in _READ_AS or re.search(rf"(^|[ ,.]){re.escape(key)}([ ,.\[:]|$)", said), (
            f"{item['object']}: {key} is neither imported nor named in the report"
        )


@needs_configurations
def test_the_check_names_the_placeholder_location_the_ignored_keys_and_the_actions_of_rx_fundament(db):
    out, _error = sync_command("import", "--check", "--json", str(CONFIGURATIONS / "RX-woo"))

    objects = {item["kind"]: item for item in json.loads(out)["objects"]}
    assert objects["source"]["problems"] == [
        "location: {location} is a placeholder: put the http:// or https:// URL of the API in its place"
    ]
    assert objects["source"]["ignored"] == ["authorizationPassthroughMethod", "oas"]
    assert [note for note in objects["source"]["notes"] if "placeholder" in note] == [
        "configuration.headers.Accept-Crs: {header-value} is a placeholder, sent as written until it is filled in",
        "configuration.headers.Authorization: {token} is a placeholder, sent as written until it is filled in",
    ]
    sync = objects["synchronization"]
    assert sync["ignored"] == ["sourceConfig.deleteInvalidObjects"]
    assert "actions[0]: 1 read as rule 'fetch-rx-fundament-files', the only one in the bundle" in sync["notes"]
    # The export names its source by the id it had where it came from (2); the folder holds one source.
    assert "sourceId: '2' read as source 'rx-fundament-tilburg', the only one in the bundle" in sync["notes"]


@needs_configurations
def test_a_folder_imported_places_dotted_keys_as_openconnector_does(tmp_path, openregister_publications):
    folder = folder_with_locations(tmp_path, "RX-woo", LOCATION)

    sync_command("import", str(folder))

    config = Synchronization.objects.get().source_config
    assert config["headers"] == {}
    assert [entry.get("keyToSetExtraData") for entry in config["extraDataConfigs"]] == [
        "zaaktype", "zaakinformatieobjecten", "eigenschappen"]
    assert config["extraDataConfigs"][1]["extraDataConfigPerResult"] == {
        "dynamicEndpointLocation": "informatieobject", "subObjectId": "identificatie"}
    source = Source.objects.get()
    assert source.configuration == {"headers": {"Accept-Crs": "{header-value}", "Accept": "application/json"}}
    assert source.credentials == {"type": "bearer", "token": "{token}"}


# ---------------------------------------------------------------------------------------------
# One object as OpenConnector's API takes it


def test_one_object_without_type_imports_as_the_kind_given(tmp_path, db):
    mapping = exported_mapping()
    del mapping["@type"]
    path = tmp_path / "animal-in.json"
    path.write_text(json.dumps(mapping))

    out, error = sync_command("import", "--kind", "mapping", str(path))

    assert error == "", out
    assert Mapping.objects.get().reference == "animal-in"


def test_one_object_without_type_takes_its_kind_from_its_folder(tmp_path, db):
    (tmp_path / "sources").mkdir()
    source = exported_source(auth="none", apikey=None)
    del source["@type"]
    path = tmp_path / "sources" / "zoo.json"
    path.write_text(json.dumps(source))

    _out, error = sync_command("import", str(path))

    assert error == ""
    assert Source.objects.get().reference == "zoo-api"


def test_one_object_whose_kind_nothing_tells_is_refused_saying_how_to_tell_it(tmp_path, db):
    path = tmp_path / "something.json"
    path.write_text(json.dumps({"name": "Zoo", "location": LOCATION}))

    _out, error = sync_command("import", str(path))

    assert error == (f"{path}: cannot tell what kind of object this is: it has no @type and sits in no folder named "
                     "sources/, mappings/, rules/, synchronizations/; give --kind source|mapping|rule|synchronization")


def test_a_type_and_a_different_kind_given_are_refused(tmp_path, db):
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(exported_mapping()))

    _out, error = sync_command("import", "--kind", "source", str(path))

    assert error == f"{path}: its @type is 'mapping', not the 'source' given (--kind)"


def test_a_rule_alone_is_read_as_a_rule_with_its_types_settings(tmp_path, db):
    path = tmp_path / "rule.json"
    path.write_text(json.dumps({"@type": "rule", "name": "Refuse closed", "type": "error", "action": "post",
                                "configuration": {"error": {"code": 422, "message": "closed"}}}))

    out, error = sync_command("import", "--check", "--json", str(path))

    assert error == ""
    assert json.loads(out)["objects"] == [{
        "object": str(path), "kind": "rule", "reference": "refuse-closed", "outcome": "importable", "problems": [],
        "ignored": ["action"], "notes": ["OpenConnector's bookkeeping, not imported: @type"],
    }]


# ---------------------------------------------------------------------------------------------
# A components document and a folder: links by uuid, slug or reference, and PHP's arrays


def test_a_components_document_links_by_uuid_slug_and_original_reference(zoo_in_place):
    source = exported_source(reference="https://cloud.example/sources/zoo.json")
    mapping = exported_mapping()
    bundle = {"components": {
        "sources": {"zoo-api": source}, "mappings": [mapping],
        "synchronizations": [
            exported_synchronization(sourceId=source["uuid"], sourceTargetMapping="animal-in", targetId="zoo/animal"),
            exported_synchronization(slug="by-reference", sourceId="https://cloud.example/sources/zoo.json",
                                     sourceTargetMapping=mapping["uuid"], targetId="zoo/animal"),
        ],
        "rules": {"refuse": {"name": "Refuse", "type": "error", "configuration": {"error": {"code": 422}}}},
    }}

    bundle_import(bundle)

    linked = {sync.reference: (sync.source.reference, sync.source_target_mapping.reference)
              for sync in Synchronization.objects.all()}
    assert linked == {"animals": ("zoo-api", "animal-in"), "by-reference": ("zoo-api", "animal-in")}
    assert Rule.objects.get(reference="refuse").configuration == {"code": 422}


def test_php_empty_arrays_are_objects_wherever_the_declarations_say_an_object_stands(zoo_in_place):
    source_config = {"endpoint": "/animals", "headers": [], "query": [], "pagination": [],
                     "extraDataConfigs": [{"staticEndpoint": "/animals/{{ originId }}"}],
                     "extraDataConfigs.0.unsetConfigKey": []}

    bundle_import(exported_synchronization(sourceId="zoo-api", sourceTargetMapping="animal-in", targetId="zoo/animal",
                                           sourceConfig=source_config))

    config = Synchronization.objects.get(reference="animals").source_config
    assert (config["headers"], config["query"], config["pagination"]) == ({}, {}, {})
    # An object where one stands; where text or a list may, the list stays.
    assert config["extraDataConfigs"] == [{"staticEndpoint": "/animals/{{ originId }}", "unsetConfigKey": []}]


def test_php_arrays_are_read_by_the_declaration_at_any_depth():
    config = {"extraDataConfigs": {"1": {"staticEndpoint": "/a", "extraDataConfigPerResult": []}},
              "headers": [], "unsetConfigKey": []}

    read = php_arrays_read(config, ApiReader.declaration)

    # An object keyed 1 where a list stands is the list PHP iterates; [] where only an object may stand is one.
    assert read == {"extraDataConfigs": [{"staticEndpoint": "/a", "extraDataConfigPerResult": {}}], "headers": {},
                    "unsetConfigKey": []}


@pytest.mark.parametrize(("config", "placed"), [
    ({"headers.API-KEY": "", "headers.API-Interface-ID": ""}, {"headers": {"API-KEY": "", "API-Interface-ID": ""}}),
    ({"auth.0": "username", "auth.1": "password"}, {"auth": ["username", "password"]}),
    ({"headers": [], "query.zql": "select {}"}, {"headers": [], "query": {"zql": "select {}"}}),
    ({"headers": [], "headers.Accept": "application/json"}, {"headers": {"Accept": "application/json"}}),
    ({"a": "text", "a.b": 1}, {"a": {"b": 1}}),  # what is not an array on the way becomes one
    ({"a.b": 1, "a.b.c": 2}, {"a": {"b": {"c": 2}}}),
    ({"x.1.y": 1}, {"x": {"1": {"y": 1}}}),  # keys that are not 0, 1, … stay an object, as PHP encodes it
    ({"0.0": None}, {"0": [None]}),  # the configuration itself stays an object
    ({"extraDataConfigs.0.staticEndpoint": "/a", "extraDataConfigs.1.extraDataConfigPerResult.subObjectId": "id"},
     {"extraDataConfigs": [{"staticEndpoint": "/a"}, {"extraDataConfigPerResult": {"subObjectId": "id"}}]}),
])
def test_dotted_keys_are_placed_as_openconnectors_apply_config_dot_places_them(config, placed):
    assert config_dot_applied(config) == placed


@needs_configurations
def test_a_folder_of_several_configurations_is_refused_as_their_ids_would_link_across_them(db):
    _out, error = sync_command("import", "--check", str(CONFIGURATIONS))

    assert error.startswith(f"{CONFIGURATIONS}: holds 6 configurations (RX-woo, sharepoint-woo, woo-elastic, ")
    assert error.endswith("import each on its own, as OpenConnector's numeric ids name the objects of one "
                          "configuration")


def test_files_of_a_folder_that_are_not_objects_are_named_as_not_read(tmp_path, db):
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "animal-in.json").write_text(json.dumps(exported_mapping()))
    (tmp_path / "README.md").write_text("# Zoo")

    out, error = sync_command("import", "--check", "--json", str(tmp_path))

    assert error == ""
    report = json.loads(out)
    assert report["notes"] == ["README.md: not read (not a JSON or YAML file)"]
    assert [(item["object"], item["outcome"]) for item in report["objects"]] == [("mappings/animal-in.json",
                                                                                  "importable")]


@needs_configurations
@pytest.mark.parametrize("name", ["woo-elastic", "xxllnc-suite-woo", "xxllnc-zgw"])
def test_the_folders_waiting_for_twig_are_refused_for_their_templates_and_what_openconnector_refuses_only(
    name, tmp_path, openregister_publications,
):
    folder = folder_with_locations(tmp_path, name, LOCATION)

    out, _error = sync_command("import", "--check", "--json", str(folder))

    # `has` is no JSON Logic operator of json-logic-php either: OpenConnector fails that synchronization at every run.
    problems = json.loads(out)["problems"]
    assert all(": template syntax error: " in problem or 'unknown operator "has"' in problem
               for problem in problems), problems


@needs_configurations
def test_a_shipped_folder_imported_twice_changes_nothing(tmp_path, openregister_publications):
    folder = folder_with_locations(tmp_path, "xxllnc-zoekendpoint-woo", LOCATION)
    sync_command("import", str(folder))
    stored = canonical_export()

    out, error = sync_command("import", "--json", str(folder))

    assert error == ""
    assert json.loads(out)["created"] == {"sources": 0, "registers": 0, "mappings": 0, "rules": 0,
                                          "synchronizations": 0}
    assert canonical_export() == stored


def canonical_export() -> str:
    return json.dumps(bundle_export(), sort_keys=True)
