"""One declared configuration: each kind says its settings once, and the admin, the API and imports refuse
the same things the same way (issue "One declared configuration")."""
from __future__ import annotations

import copy
import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from syncapp.configuration import ConfigurationInvalid, bundle_export, bundle_import
from syncapp.models import Source, Synchronization
from syncapp.reference import configuration_reference
from syncapp.sources import reader_kinds, source_config_schemas
from syncapp.targets import target_config_schemas, writer_kinds
from tests.conftest import ROOT, zoo_bundle

pytestmark = pytest.mark.django_db


@pytest.fixture
def zoo() -> dict[str, Any]:
    """The zoo bundle, imported: an api source, the register schema zoo/animal, a mapping and a synchronization."""
    bundle = zoo_bundle(location="http://127.0.0.1:8900")
    bundle_import(copy.deepcopy(bundle))
    return bundle


@pytest.fixture
def database_source(zoo) -> Source:
    return Source.objects.create(reference="warehouse", name="Warehouse", type="database",
                                 location="postgresql://reader@127.0.0.1:5432/warehouse")


def import_problems(bundle: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigurationInvalid) as refused:
        bundle_import(bundle)
    return refused.value.problems


def admin_form_data(**changes: Any) -> dict[str, Any]:
    """Return the admin's synchronization form as the zoo synchronization fills it, with changes."""
    sync = Synchronization.objects.get(reference="animals")
    data = {
        "reference": "animals-2", "name": "Animals again", "description": "", "source_type": sync.source_type,
        "source": sync.source_id or "", "source_schema": "", "source_config": json.dumps(sync.source_config),
        "source_hash_mapping": "", "source_target_mapping": sync.source_target_mapping_id or "",
        "conditions": json.dumps(sync.conditions), "target_type": sync.target_type,
        "target_schema": sync.target_schema_id or "", "target_source": "", "target_config": "{}",
        "target_source_mapping": "", "schedule": "", "is_enabled": "on",
    }
    return {**data, **changes}


def admin_errors(client, data: dict[str, Any]) -> dict[str, list[str]]:
    response = client.post(reverse("admin:syncapp_synchronization_add"), data)
    assert response.status_code == 200, "the form was saved, not refused"
    return {name: list(errors) for name, errors in response.context["adminform"].form.errors.items()}


# ---------------------------------------------------------------------------------------------
# What the issue found: each case is refused now, at its place, by every door


def test_an_api_target_without_its_target_source_is_refused_by_the_admin(zoo, admin_client):
    errors = admin_errors(admin_client, admin_form_data(target_type="api", target_schema=""))

    assert errors["target_source"] == ["no source with reference None"]
    assert not Synchronization.objects.filter(reference="animals-2").exists()


def test_what_the_admin_saves_exports_as_a_bundle_that_imports(zoo, admin_client):
    # Given an API-target synchronization saved in the admin, with its target source
    target = Source.objects.get(reference="zoo-api")
    response = admin_client.post(reverse("admin:syncapp_synchronization_add"), admin_form_data(
        target_type="api", target_schema="", target_source=target.pk, target_config='{"endpoint": "/animals"}',
    ))
    assert response.status_code == 302, response.context["adminform"].form.errors

    # When it is exported, everything deleted, and the export imported
    exported = bundle_export()
    Synchronization.objects.all().delete()
    bundle_import(exported)

    # Then it is back as it was
    assert bundle_export() == exported


def test_an_api_source_type_reading_a_database_source_is_refused_by_every_door(database_source, admin_client, api):
    message = ("source 'warehouse' is of type database; a synchronization of sourceType api reads a source "
               "of type api")
    errors = admin_errors(admin_client, admin_form_data(source=database_source.pk))
    assert errors["source"] == [message]

    body = {"reference": "animals-2", "name": "Animals", "sourceType": "api", "source": database_source.pk,
            "targetSchema": Synchronization.objects.get(reference="animals").target_schema_id}
    response = api.post("/api/synchronizations/", body, format="json")
    assert response.status_code == 400
    assert response.json()["source"] == [message]

    bundle = {"synchronizations": [{**zoo_bundle(location="")["synchronizations"][0], "sourceId": "warehouse"}]}
    assert import_problems(bundle) == [f"synchronizations[0].sourceId: {message}"]


def test_a_typo_in_source_config_is_refused_with_the_closest_key_by_every_door(zoo, admin_client, api):
    typo = {"endpiont": "/animals", "resultsPosition": "results"}
    expected = "sourceConfig.endpiont: unknown key, did you mean `endpoint`?"

    errors = admin_errors(admin_client, admin_form_data(source_config=json.dumps(typo)))
    assert errors["source_config"] == [expected]

    sync = Synchronization.objects.get(reference="animals")
    response = api.patch(f"/api/synchronizations/{sync.pk}/", {"sourceConfig": typo}, format="json")
    assert response.status_code == 400
    assert response.json()["sourceConfig"] == [expected]
    sync.refresh_from_db()
    assert "endpiont" not in sync.source_config

    bundle = copy.deepcopy(zoo)
    bundle["synchronizations"][0]["sourceConfig"] = typo
    assert import_problems(bundle) == [f"synchronizations[0].{expected}"]


def test_a_key_of_another_kind_is_unknown_to_this_one(zoo, api):
    # keyColumn is a database source's; an api source does not read it
    sync = Synchronization.objects.get(reference="animals")
    response = api.patch(f"/api/synchronizations/{sync.pk}/",
                         {"sourceConfig": {**sync.source_config, "keyColumn": "id"}}, format="json")

    assert response.status_code == 400
    assert response.json()["sourceConfig"][0].startswith("sourceConfig.keyColumn: unknown key")


def test_snake_case_keys_inside_a_configuration_are_refused_naming_the_camel_case_key(zoo):
    bundle = copy.deepcopy(zoo)
    bundle["synchronizations"][0]["sourceConfig"]["chunk_size"] = 100

    assert import_problems(bundle) == [
        "synchronizations[0].sourceConfig.chunk_size: unknown key, did you mean `chunkSize`? (keys are camelCase)"
    ]


def test_a_wrong_json_type_in_a_target_config_is_refused_with_its_path(zoo):
    bundle = copy.deepcopy(zoo)
    bundle["synchronizations"][0].update(targetType="api", targetId="zoo-api",
                                         targetConfig={"endpoint": "/x", "recreateOnNotFound": "sometimes"})

    assert import_problems(bundle) == [
        "synchronizations[0].targetConfig.recreateOnNotFound: must be true or false"
    ]


def test_an_unknown_key_of_a_record_of_the_bundle_is_refused_with_the_closest_name(zoo):
    bundle = copy.deepcopy(zoo)
    bundle["synchronizations"][0]["schedul"] = "*/5 * * * *"
    bundle["sources"][0]["configuration"] = {"header": {"Accept": "application/json"}}

    assert sorted(import_problems(bundle)) == [
        "sources[0].configuration.header: unknown key, did you mean `headers`?",
        "synchronizations[0].schedul: unknown key, did you mean `schedule`?",
    ]


def test_a_source_configuration_the_api_cannot_read_is_refused(zoo, api):
    source = Source.objects.get(reference="zoo-api")
    response = api.patch(f"/api/sources/{source.pk}/", {"configuration": {"timout": 5}}, format="json")

    assert response.status_code == 400
    assert response.json()["configuration"] == ["configuration.timout: unknown key, did you mean `timeout`?"]


# ---------------------------------------------------------------------------------------------
# OpenConnector's exports: what this service reads is imported, what it does not do is named


OPENCONNECTOR_EXPORT = {
    "components": {
        "sources": [{
            "@type": "source", "id": 1, "uuid": "12f23206-a455-42b2-a717-15dbad24ff5e", "name": "Zaken API",
            "version": "0.0.1", "location": "http://127.0.0.1:8900", "type": "api", "auth": "none",
            "configuration": {"headers.Accept": "application/json", "auth.0": "something", "authentication": []},
            "documentation": "https://example.org/docs", "logRetention": 3600,
        }],
        "registers": [{"@type": "register", "id": 1, "name": "Zaken", "slug": "zaken",
                       "schemas": [{"id": 1, "slug": "zaak", "name": "Zaak", "schema": {"type": "object"}}]}],
        "synchronizations": [{
            "@type": "synchronization", "id": 1, "name": "Zaken", "version": "0.0.1", "sourceId": "1",
            "sourceType": "api", "currentPage": 1, "targetId": "1/1", "targetType": "register/schema",
            "sourceConfig": {
                "endpoint": "/zaken", "idPosition": "uuid", "deleteInvalidObjects": "false", "headers": [],
                "extraDataConfigs.0.staticEndpoint": "/zaken/{{ originId }}/status",
                "extraDataConfigs.0.keyToSetExtraData": "status",
                "extraDataConfigs.0.mergeExtraData": "true",
            },
            "actions": ["refuse-closed"],
            "targetConfig": [],
        }],
        "rules": [{
            "@type": "rule", "@id": "https://example.org/rules/1", "name": "Refuse closed", "slug": "refuse-closed",
            "version": "0.0.1", "action": "post", "timing": "before", "type": "error", "conditions": [], "order": 0,
            "configuration": {"error": {"code": 422, "name": "Closed", "message": "a closed case is not published"}},
        }],
    },
}


def test_an_openconnector_export_imports_its_dotted_settings_as_what_they_stand_for():
    bundle_import(copy.deepcopy(OPENCONNECTOR_EXPORT))

    sync = Synchronization.objects.get(reference="zaken")
    assert sync.source_config == {
        "endpoint": "/zaken", "idPosition": "uuid", "headers": {},
        "extraDataConfigs": [
            {"staticEndpoint": "/zaken/{{ originId }}/status", "keyToSetExtraData": "status", "mergeExtraData": "true"},
        ],
    }
    assert Source.objects.get(reference="zaken-api").configuration == {"headers": {"Accept": "application/json"}}


def test_an_openconnector_export_names_every_setting_it_holds_that_this_service_does_not_do():
    result = bundle_import(copy.deepcopy(OPENCONNECTOR_EXPORT))

    assert result.ignored == [
        "sources[0].configuration.auth",
        "sources[0].documentation",
        "rules[0].action",
        "synchronizations[0].sourceConfig.deleteInvalidObjects",
    ]
    assert result.not_imported == []


def test_sync_import_says_what_it_ignored(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(OPENCONNECTOR_EXPORT))
    out = StringIO()

    call_command("sync", "import", str(path), stdout=out)

    assert "ignored 4 setting(s) of OpenConnector that this service does not do:" in out.getvalue()
    assert "  rules[0].action" in out.getvalue()


def test_a_bundle_of_this_service_is_not_trimmed_but_refused(zoo):
    # Only an export's records are trimmed: in a bundle of this service an unknown key is a mistake
    bundle = copy.deepcopy(zoo)
    bundle["synchronizations"][0]["retries"] = 3

    assert import_problems(bundle) == ["synchronizations[0].retries: unknown key (known: reference, name, "
                                       "description, sourceType, sourceId, sourceConfig, sourceHashMapping, "
                                       "sourceTargetMapping, conditions, targetType, targetId, targetConfig, "
                                       "targetSourceMapping, followUps, actions, schedule, isEnabled)"]


# ---------------------------------------------------------------------------------------------
# The registries are where a kind plugs in


def test_the_models_choices_are_the_registered_kinds():
    assert [value for value, _ in Synchronization._meta.get_field("source_type").choices] == [
        kind.kind for kind in reader_kinds()
    ]
    assert [value for value, _ in Synchronization._meta.get_field("target_type").choices] == [
        kind.kind for kind in writer_kinds()
    ]
    assert {value for value, _ in Source._meta.get_field("type").choices} == {"api", "database", "file"}


def test_every_kind_declares_its_configuration_with_documented_keys():
    for kind, schema in {**source_config_schemas(), **target_config_schemas()}.items():
        assert schema["type"] == "object" and schema.get("additionalProperties") is False, kind
        for key, declared in schema.get("properties", {}).items():
            assert declared.get("description"), f"{kind}: {key} has no description"
    assert "keyColumn" in source_config_schemas()["database"]["properties"]
    assert "keyColumn" not in source_config_schemas()["api"]["properties"]


# ---------------------------------------------------------------------------------------------
# What is derived from the declarations: the reference page and the OpenAPI description


def test_the_committed_configuration_reference_is_what_the_declarations_say():
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")

    assert committed == configuration_reference(), "run `manage.py configuration_reference` and commit the page"


def test_the_configuration_reference_lists_every_key_of_every_kind():
    page = configuration_reference()

    for kind in reader_kinds():
        assert f"### `sourceType: {kind.kind}`" in page
        for key in source_config_schemas()[kind.kind]["properties"]:
            assert f"| `{key}`" in page


def test_the_openapi_description_documents_source_config_keys_of_every_source_type(api):
    description = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = description["components"]["schemas"]

    source_config = components["Synchronization"]["properties"]["sourceConfig"]
    documented = [option["$ref"].rsplit("/", 1)[-1] for option in source_config["anyOf"]]
    assert documented == [kind.declaration.__name__ for kind in reader_kinds()]
    for kind in reader_kinds():
        properties = components[kind.declaration.__name__]["properties"]
        assert set(properties) == set(source_config_schemas()[kind.kind]["properties"])
        assert all(declared.get("description") for declared in properties.values())
    assert components["DatabaseSourceConfig"]["properties"]["keyColumn"]["description"].startswith("The unique")
