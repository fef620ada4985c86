"""The Django admin: every model's pages open, the configuration models save, credentials stay hidden."""
from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from contracts.models import ContractLog, SynchronizationContract, SynchronizationRun
from syncapp.models import Mapping, Object, Register, Schema, Source, Synchronization
from tests.factories import (
    ANIMAL_SCHEMA,
    FACTORIES,
    SECRET,
    SYNCHRONIZATION_KINDS,
    make_contract,
    make_mapping,
    make_register,
    make_run,
    make_schema,
    make_source,
    make_synchronization,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The admin user's password is hashed for every test; the slow default hasher is not under test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def admin_url(label: str, view: str, *args: Any) -> str:
    app, model = label.split(".")
    return reverse(f"admin:{app}_{model}_{view}", args=args)


# ---------------------------------------------------------------------------------------------
# Every page opens


def test_every_model_the_spec_names_is_registered_in_the_admin():
    from django.contrib import admin

    registered = {model._meta.label_lower for model in admin.site._registry}

    assert set(FACTORIES) <= registered


@pytest.mark.parametrize("label", sorted(FACTORIES))
def test_the_changelist_opens_and_lists_the_instance(admin_client, label):
    instance = FACTORIES[label]()

    response = admin_client.get(admin_url(label, "changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    assert admin_url(label, "change", instance.pk) in response.content.decode()


@pytest.mark.parametrize("label", sorted(FACTORIES))
def test_the_change_page_opens_for_the_instance(admin_client, label):
    instance = FACTORIES[label]()

    response = admin_client.get(admin_url(label, "change", instance.pk))

    assert response.status_code == 200
    assert response.context["original"] == instance


@pytest.mark.parametrize(("source_type", "target_type"), SYNCHRONIZATION_KINDS)
def test_the_change_page_opens_for_a_synchronization_of_each_kind(admin_client, source_type, target_type):
    sync = make_synchronization(source_type=source_type, target_type=target_type)

    response = admin_client.get(admin_url("syncapp.synchronization", "change", sync.pk))

    assert response.status_code == 200
    assert response.context["original"] == sync


@pytest.mark.parametrize("label", ["syncapp.source", "syncapp.mapping", "syncapp.register", "syncapp.schema",
                                   "syncapp.synchronization"])
def test_the_add_page_opens(admin_client, label):
    response = admin_client.get(admin_url(label, "add"))

    assert response.status_code == 200
    assert "adminform" in response.context


def test_a_run_page_shows_its_counts(admin_client):
    run = make_run(found=41, created=29)

    html = admin_client.get(admin_url("contracts.synchronizationrun", "change", run.pk)).content.decode()

    assert "41" in html
    assert "29" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [("status__exact=synced", {"17"}), ("status__exact=failed", {"18"}), ("", {"17", "18"})],
)
def test_contracts_are_filterable_by_status_in_the_admin(admin_client, query, expected):
    sync = make_synchronization()
    make_contract(synchronization=sync, origin_id="17", status="synced")
    make_contract(synchronization=sync, origin_id="18", status="failed")

    response = admin_client.get(admin_url("contracts.synchronizationcontract", "changelist") + "?" + query)

    assert response.status_code == 200
    assert {contract.origin_id for contract in response.context["cl"].result_list} == expected


def test_contracts_are_filterable_by_synchronization_in_the_admin(admin_client):
    first = make_synchronization()
    second = make_synchronization(
        reference="others", source=first.source, target_schema=first.target_schema,
        source_target_mapping=first.source_target_mapping,
    )
    make_contract(synchronization=first, origin_id="1")
    make_contract(synchronization=second, origin_id="2")

    url = admin_url("contracts.synchronizationcontract", "changelist") + f"?synchronization__id__exact={second.pk}"
    response = admin_client.get(url)

    assert [contract.origin_id for contract in response.context["cl"].result_list] == ["2"]


# ---------------------------------------------------------------------------------------------
# Adding through the add form


def post_add(client, label: str, data: dict[str, Any]):
    """POST the add form; fail with the form's errors when the admin did not accept it."""
    response = client.post(admin_url(label, "add"), data)
    if response.status_code != 302:
        errors = response.context["adminform"].form.errors if response.context else response.content[:2000]
        pytest.fail(f"the add form was refused ({response.status_code}): {errors}")
    return response


def test_a_source_is_added_through_the_admin_with_its_credentials(admin_client):
    post_add(admin_client, "syncapp.source", {
        "reference": "zoo-api", "name": "Zoo API", "description": "", "type": "api",
        "location": "http://127.0.0.1:8900", "configuration": json.dumps({"headers": {"Accept": "application/json"}}),
        "is_enabled": "on", "new_credentials": json.dumps({"token": SECRET}),
    })

    source = Source.objects.get(reference="zoo-api")
    assert (source.name, source.type, source.location) == ("Zoo API", "api", "http://127.0.0.1:8900")
    assert source.configuration == {"headers": {"Accept": "application/json"}}
    assert source.is_enabled is True
    assert source.credentials == {"token": SECRET}


def test_a_mapping_is_added_through_the_admin(admin_client):
    post_add(admin_client, "syncapp.mapping", {
        "reference": "animal-in", "name": "Animal in", "description": "",
        "mapping": json.dumps({"name": "title", "kind": "{{ species | upper }}"}),
        "unset": json.dumps(["secret"]), "cast": json.dumps({"legs": "int"}), "pass_through": "on",
    })

    mapping = Mapping.objects.get(reference="animal-in")
    assert mapping.mapping == {"name": "title", "kind": "{{ species | upper }}"}
    assert mapping.unset == ["secret"]
    assert mapping.cast == {"legs": "int"}
    assert mapping.pass_through is True


def test_a_register_is_added_through_the_admin_with_an_inline_schema(admin_client):
    post_add(admin_client, "syncapp.register", {
        "reference": "zoo", "name": "Zoo", "description": "",
        "schemas-TOTAL_FORMS": "1", "schemas-INITIAL_FORMS": "0",
        "schemas-MIN_NUM_FORMS": "0", "schemas-MAX_NUM_FORMS": "1000",
        "schemas-0-reference": "animal", "schemas-0-name": "Animal", "schemas-0-description": "",
        "schemas-0-schema": json.dumps(ANIMAL_SCHEMA),
    })

    register = Register.objects.get(reference="zoo")
    assert register.name == "Zoo"
    assert [(schema.reference, schema.schema) for schema in register.schemas.all()] == [("animal", ANIMAL_SCHEMA)]


def test_a_schema_is_added_through_the_admin(admin_client):
    register = make_register()

    post_add(admin_client, "syncapp.schema", {
        "register": register.pk, "reference": "animal", "name": "Animal", "description": "",
        "schema": json.dumps(ANIMAL_SCHEMA),
    })

    schema = Schema.objects.get(register=register, reference="animal")
    assert schema.schema == ANIMAL_SCHEMA
    assert schema.path == "zoo/animal"


def synchronization_form(*, source: Source, schema: Schema, mapping: Mapping, **changes: Any) -> dict[str, Any]:
    form = {
        "reference": "animals", "name": "Animals", "description": "", "source_type": "api",
        "source": source.pk, "source_schema": "", "source_hash_mapping": "", "source_target_mapping": mapping.pk,
        "source_config": json.dumps({"endpoint": "/animals", "resultsPosition": "results"}),
        "conditions": json.dumps({"==": [{"var": "status"}, "active"]}),
        "target_type": "register/schema", "target_schema": schema.pk, "target_source": "",
        "target_config": json.dumps({}), "target_source_mapping": "", "schedule": "*/15 * * * *", "is_enabled": "on",
    }
    return {**form, **changes}


def test_a_synchronization_is_added_through_the_admin(admin_client):
    source, schema, mapping = make_source(), make_schema(), make_mapping()
    followed = make_synchronization(reference="keepers", source=source, target_schema=schema,
                                    source_target_mapping=mapping)

    post_add(admin_client, "syncapp.synchronization",
             synchronization_form(source=source, schema=schema, mapping=mapping, follow_ups=[followed.pk]))

    sync = Synchronization.objects.get(reference="animals")
    assert (sync.source, sync.target_schema, sync.source_target_mapping) == (source, schema, mapping)
    assert sync.source_config == {"endpoint": "/animals", "resultsPosition": "results"}
    assert sync.conditions == {"==": [{"var": "status"}, "active"]}
    assert sync.schedule == "*/15 * * * *"
    assert list(sync.follow_ups.all()) == [followed]


def test_an_existing_synchronization_is_saved_through_its_change_form(admin_client):
    sync = make_synchronization()
    data = synchronization_form(source=sync.source, schema=sync.target_schema, mapping=sync.source_target_mapping,
                                name="Renamed", is_enabled="")

    response = admin_client.post(admin_url("syncapp.synchronization", "change", sync.pk), data)

    assert response.status_code == 302
    sync.refresh_from_db()
    assert (sync.name, sync.is_enabled) == ("Renamed", False)


# ---------------------------------------------------------------------------------------------
# Credentials are write-only


def source_change_form(source: Source, **changes: Any) -> dict[str, Any]:
    form = {
        "reference": source.reference, "name": source.name, "description": source.description,
        "type": source.type, "location": source.location, "configuration": json.dumps(source.configuration),
        "is_enabled": "on" if source.is_enabled else "", "new_credentials": "",
    }
    return {**form, **changes}


def test_credentials_never_appear_on_the_source_change_page(admin_client):
    source = make_source()

    response = admin_client.get(admin_url("syncapp.source", "change", source.pk))

    assert response.status_code == 200
    assert SECRET not in response.content.decode()
    assert "new_credentials" in response.context["adminform"].form.fields


def test_credentials_never_appear_on_the_source_changelist(admin_client):
    make_source()

    response = admin_client.get(admin_url("syncapp.source", "changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    assert SECRET not in response.content.decode()


def test_searching_the_source_changelist_for_a_credential_finds_nothing(admin_client):
    make_source()

    response = admin_client.get(admin_url("syncapp.source", "changelist"), {"q": SECRET[:10]})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 0


def test_credentials_never_appear_in_the_source_history_after_a_change(admin_client):
    source = make_source(credentials={})
    data = source_change_form(source, new_credentials=json.dumps({"token": SECRET}))
    admin_client.post(admin_url("syncapp.source", "change", source.pk), data)

    response = admin_client.get(admin_url("syncapp.source", "history", source.pk))

    assert response.status_code == 200
    assert "Changed" in response.content.decode()
    assert SECRET not in response.content.decode()


def test_saving_a_source_with_the_credentials_field_blank_keeps_the_stored_credentials(admin_client):
    source = make_source()

    response = admin_client.post(admin_url("syncapp.source", "change", source.pk),
                                 source_change_form(source, name="Renamed"))

    assert response.status_code == 302
    source.refresh_from_db()
    assert source.name == "Renamed"
    assert source.credentials == {"token": SECRET}


def test_saving_a_source_with_the_credentials_field_filled_replaces_them(admin_client):
    source = make_source()

    response = admin_client.post(
        admin_url("syncapp.source", "change", source.pk),
        source_change_form(source, new_credentials=json.dumps({"username": "zoo", "password": "other"})),
    )

    assert response.status_code == 302
    source.refresh_from_db()
    assert source.credentials == {"username": "zoo", "password": "other"}


def test_credentials_that_are_not_json_are_refused_at_the_field_and_the_stored_ones_kept(admin_client):
    source = make_source()

    response = admin_client.post(admin_url("syncapp.source", "change", source.pk),
                                 source_change_form(source, new_credentials="{not json"))

    assert response.status_code == 200
    assert "new_credentials" in response.context["adminform"].form.errors
    source.refresh_from_db()
    assert source.credentials == {"token": SECRET}


def test_credentials_typed_into_a_form_that_is_refused_are_not_shown_back(admin_client):
    source = make_source(credentials={})

    response = admin_client.post(
        admin_url("syncapp.source", "change", source.pk),
        source_change_form(source, location="", new_credentials=json.dumps({"token": SECRET})),
    )

    assert response.status_code == 200
    assert "location" in response.context["adminform"].form.errors
    assert SECRET not in response.content.decode()


# ---------------------------------------------------------------------------------------------
# Spec section 11: admin forms validate what they save, with the error at the field.


def test_a_mapping_with_an_unknown_cast_is_refused_by_the_admin_at_the_field(admin_client):
    response = admin_client.post(admin_url("syncapp.mapping", "add"), {
        "reference": "bad", "name": "", "description": "", "mapping": json.dumps({"legs": "legs"}),
        "unset": "[]", "cast": json.dumps({"legs": "integr"}),
    })

    assert not Mapping.objects.filter(reference="bad").exists()
    assert response.status_code == 200
    assert "integr" in str(response.context["adminform"].form.errors["cast"])


def test_a_schema_that_is_not_a_json_schema_is_refused_by_the_admin_at_the_field(admin_client):
    register = make_register()

    response = admin_client.post(admin_url("syncapp.schema", "add"), {
        "register": register.pk, "reference": "bad", "name": "", "description": "",
        "schema": json.dumps({"type": "objekt"}),
    })

    assert not Schema.objects.filter(reference="bad").exists()
    assert response.status_code == 200
    assert "schema" in response.context["adminform"].form.errors


def test_a_synchronization_with_an_unknown_condition_operator_is_refused_by_the_admin_at_the_field(admin_client):
    source, schema, mapping = make_source(), make_schema(), make_mapping()
    data = synchronization_form(source=source, schema=schema, mapping=mapping, reference="bad",
                                conditions=json.dumps({"equals": [{"var": "status"}, "active"]}))

    response = admin_client.post(admin_url("syncapp.synchronization", "add"), data)

    assert not Synchronization.objects.filter(reference="bad").exists()
    assert response.status_code == 200
    assert "conditions" in response.context["adminform"].form.errors


def test_a_synchronization_with_bad_pagination_settings_is_refused_by_the_admin_at_the_field(admin_client):
    source, schema, mapping = make_source(), make_schema(), make_mapping()
    data = synchronization_form(source=source, schema=schema, mapping=mapping, reference="bad",
                                source_config=json.dumps({"pagination": {"type": "bogus"}}))

    response = admin_client.post(admin_url("syncapp.synchronization", "add"), data)

    assert not Synchronization.objects.filter(reference="bad").exists()
    assert response.status_code == 200
    assert "pagination.type" in str(response.context["adminform"].form.errors["source_config"])


@pytest.mark.parametrize(("source_type", "config", "problem"), [
    ("api", {"rateLimit": {"requests": 5}}, "sourceConfig.rateLimit: a request budget belongs in the source's"),
    ("register/schema", {"pageSize": 0}, "sourceConfig.pageSize: must be a whole number from 1 to"),
])
def test_a_synchronization_is_refused_by_the_admin_for_what_an_import_refuses_in_its_source_settings(
    admin_client, source_type, config, problem
):
    # Given settings that only the source type's reader knows to be wrong
    source, schema, mapping = make_source(), make_schema(), make_mapping()
    data = synchronization_form(source=source, schema=schema, mapping=mapping, reference="bad",
                                source_config=json.dumps(config))
    data.update(source_type=source_type, source_schema=schema.pk if source_type != "api" else "")

    response = admin_client.post(admin_url("syncapp.synchronization", "add"), data)

    # Then the form names the problem at sourceConfig, as an import would
    assert not Synchronization.objects.filter(reference="bad").exists()
    assert any(problem in message for message in response.context["adminform"].form.errors["source_config"])


def test_an_object_invalid_against_its_schema_is_refused_by_the_admin(admin_client):
    schema = make_schema()

    response = admin_client.post(admin_url("syncapp.object", "add"),
                                 {"schema": schema.pk, "data": json.dumps({"name": 7})})

    assert not Object.objects.exists()
    assert response.status_code == 200
    assert "name" in str(response.context["adminform"].form.errors["data"])


# ---------------------------------------------------------------------------------------------
# Clearing an optional JSON field: refused at the field or saved empty, never a server error.

def change_form(label: str, instance: Any) -> dict[str, Any]:
    """Return the change form of the instance as the admin would post it unchanged."""
    if label == "syncapp.source":
        return source_change_form(instance)
    if label == "syncapp.synchronization":
        return synchronization_form(source=instance.source, schema=instance.target_schema,
                                    mapping=instance.source_target_mapping)
    if label == "syncapp.mapping":
        return {"reference": instance.reference, "name": instance.name, "description": "",
                "mapping": json.dumps(instance.mapping), "unset": json.dumps(instance.unset),
                "cast": json.dumps(instance.cast)}
    return {"register": instance.register_id, "reference": instance.reference, "name": instance.name,
            "description": "", "schema": json.dumps(instance.schema)}


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ("syncapp.source", "configuration"),
        ("syncapp.mapping", "mapping"),
        ("syncapp.mapping", "unset"),
        ("syncapp.mapping", "cast"),
        ("syncapp.schema", "schema"),
        ("syncapp.synchronization", "conditions"),
        ("syncapp.synchronization", "source_config"),
        ("syncapp.synchronization", "target_config"),
    ],
)
def test_clearing_an_optional_json_field_is_refused_at_the_field_or_saved_empty(admin_client, label, field):
    instance = FACTORIES[label]()

    response = admin_client.post(admin_url(label, "change", instance.pk), {**change_form(label, instance), field: ""})

    if response.status_code == 200:
        assert field in response.context["adminform"].form.errors
    else:
        assert response.status_code == 302
        instance.refresh_from_db()
        assert getattr(instance, field) in ({}, [])


@pytest.mark.parametrize("model", ["synchronizationrun", "synchronizationcontract", "contractlog"])
@pytest.mark.usefixtures("transactional_db")
def test_records_the_service_keeps_cannot_be_added_or_edited_in_the_admin(admin_client, model, sample_source,
                                                                         settings):
    from syncapp import runs as sync_runs
    from tests.conftest import zoo_bundle
    from tests.helpers import import_zoo

    sync = import_zoo(zoo_bundle(location=sample_source.url))
    settings.TASKS_IN_PROCESS = True
    sync_runs.run_start(synchronization=sync)
    record = {"synchronizationrun": SynchronizationRun, "synchronizationcontract": SynchronizationContract,
              "contractlog": ContractLog}[model].objects.first()

    add = admin_client.get(reverse(f"admin:contracts_{model}_add"))
    page = admin_client.get(reverse(f"admin:contracts_{model}_change", args=[record.pk]))
    post = admin_client.post(reverse(f"admin:contracts_{model}_change", args=[record.pk]), {})

    assert add.status_code == 403
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    if model == "synchronizationrun":  # its pages are shown as a table, not as a form
        assert 'id="run-pages"' in html and 'name="pages-' not in html
    assert post.status_code == 403


def test_the_source_form_says_whether_credentials_are_set_and_can_clear_them(admin_client):
    source = Source.objects.create(reference="s", name="s", location="http://127.0.0.1:1",
                                   credentials={"type": "bearer", "token": "tok-admin-77aa-never-show"},
                                   auth_token_cache={"token": "cached-never-show"})
    url = reverse("admin:syncapp_source_change", args=[source.pk])

    page = admin_client.get(url).content.decode()
    assert "Stored: set (bearer)." in page and "tok-admin-77aa-never-show" not in page

    answer = admin_client.post(url, {
        "reference": "s", "name": "s", "type": "api", "location": "http://127.0.0.1:1", "configuration": "{}",
        "is_enabled": "on", "new_credentials": "", "clear_credentials": "on",
    })

    assert answer.status_code == 302, answer.content.decode()[:2000]
    source.refresh_from_db()
    assert source.credentials == {} and source.auth_token_cache == {}
    assert "Stored: not set." in admin_client.get(url).content.decode()


def test_json_fields_are_shown_indented_and_invalid_input_is_shown_back_as_typed(admin_client):
    source = Source.objects.create(reference="s", name="s", location="http://127.0.0.1:1",
                                   configuration={"headers": {"Accept": "application/json"}, "timeout": 5})
    url = reverse("admin:syncapp_source_change", args=[source.pk])

    page = admin_client.get(url).content.decode()
    refused = admin_client.post(url, {
        "reference": "s", "name": "s", "type": "api", "location": "http://127.0.0.1:1",
        "configuration": '{"headers": {oops', "is_enabled": "on",
    }).content.decode()

    assert "{\n  &quot;headers&quot;: {\n    &quot;Accept&quot;: &quot;application/json&quot;\n  }," in page
    assert "font-family: monospace" in page
    assert "{&quot;headers&quot;: {oops" in refused and "errorlist" in refused


def test_the_synchronization_form_names_the_keys_of_its_configurations(admin_client):
    page = admin_client.get(reverse("admin:syncapp_synchronization_add")).content.decode()

    assert "resultsPosition" in page and "deleteSafetyLimit" in page and "updateMethod" in page


@pytest.mark.parametrize(("source_config", "problem"), [
    ({"incremental": {"param": "since"}}, "incremental.cursorPath: required"),
    ({"extraDataConfigs": [{"staticEndpoint": "/a", "source": "nowhere"}]},
     "extraDataConfigs[0].source: no source with reference 'nowhere'"),
])
def test_bad_incremental_or_enrichment_settings_are_refused_by_the_admin_at_the_field(
    admin_client, source_config, problem
):
    source, schema, mapping = make_source(), make_schema(), make_mapping()
    data = synchronization_form(source=source, schema=schema, mapping=mapping, reference="bad",
                                source_config=json.dumps(source_config))

    response = admin_client.post(admin_url("syncapp.synchronization", "add"), data)

    assert not Synchronization.objects.filter(reference="bad").exists()
    errors = response.context["adminform"].form.errors.as_data()["source_config"]
    assert any(problem in message for error in errors for message in error.messages), errors
