"""Trying mappings and conditions before they are used, and validation where they are saved."""
from __future__ import annotations

import pytest
from django import forms
from django.urls import reverse

from syncapp.admin import SynchronizationForm
from syncapp.models import Mapping, Register, Schema, Source, Synchronization
from tests.helpers import staff

pytestmark = pytest.mark.django_db

ANIMAL = {"id": 7, "name": "Amara", "species": "African elephant", "legs": "4", "status": "active"}


@pytest.fixture
def mapping() -> Mapping:
    return Mapping.objects.create(
        reference="animal-in",
        mapping={"title": "name", "kind": "{{ species | upper }}", "legs": "legs"},
        cast={"legs": "int"},
    )


@pytest.fixture
def sync() -> Synchronization:
    source = Source.objects.create(reference="zoo", name="Zoo", location="http://127.0.0.1:9")
    schema = Schema.objects.create(register=Register.objects.create(reference="zoo"), reference="animal")
    return Synchronization.objects.create(
        reference="animals", name="Animals", source=source, target_schema=schema,
        conditions={"==": [{"var": "status"}, "active"]},
    )


def test_a_saved_mapping_can_be_tried_on_a_sample_through_the_api(api, mapping):
    response = api.post(f"/api/mappings/{mapping.pk}/try/", {"data": ANIMAL}, format="json")

    assert response.status_code == 200
    assert response.json() == {"ok": True, "result": {"title": "Amara", "kind": "AFRICAN ELEPHANT", "legs": 4}}


def test_a_mapping_try_still_takes_the_sample_under_its_former_name_input(api, mapping):
    response = api.post(f"/api/mappings/{mapping.pk}/try/", {"input": ANIMAL}, format="json")

    assert response.status_code == 200
    assert response.json()["result"]["title"] == "Amara"


def test_an_unsaved_mapping_can_be_tried_and_its_error_names_the_key(api):
    response = api.post(
        "/api/mappings/try/", {"mapping": {"legs": "legs"}, "cast": {"legs": "int"}, "data": {"legs": "many"}},
        format="json",
    )

    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False and body["key"] == "legs"
    assert body["errors"][0].startswith("legs:")


def test_trying_a_mapping_with_a_template_error_reports_it_before_running(api):
    response = api.post("/api/mappings/try/", {"mapping": {"kind": "{{ species "}, "data": ANIMAL}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0].startswith("mapping.kind: template syntax error")


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({"==": [{"var": "status"}, "active"]}, True),
        ({"==": [{"var": "status"}, "retired"]}, False),
        ({}, True),
    ],
)
def test_conditions_can_be_tried_on_a_sample_object(api, conditions, expected):
    response = api.post("/api/conditions/try/", {"conditions": conditions, "data": ANIMAL}, format="json")

    assert response.status_code == 200
    assert response.json()["passes"] is expected


def test_trying_conditions_with_an_unknown_operator_names_where_it_is(api):
    response = api.post(
        "/api/conditions/try/", {"conditions": {"and": [true_rule(), {"=~": [1, 1]}]}, "data": ANIMAL}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"] == ['conditions.and[1]: unknown operator "=~"']


def true_rule() -> dict:
    return {"==": [1, 1]}


def test_a_synchronizations_conditions_can_be_tried_through_the_api(api, sync):
    response = api.post(
        f"/api/synchronizations/{sync.pk}/try-conditions/", {"data": {**ANIMAL, "status": "retired"}}, format="json"
    )

    assert response.json()["passes"] is False


def test_the_admin_try_page_shows_the_mapped_result(admin_client, mapping):
    url = reverse("admin:syncapp_mapping_try", args=[mapping.pk])

    response = admin_client.post(url, {"sample": '{"name": "Obi", "species": "Orangutan", "legs": 2}'})

    assert response.status_code == 200
    html = response.content.decode()
    assert "ORANGUTAN" in html and "&quot;title&quot;: &quot;Obi&quot;" in html


def test_the_admin_try_page_shows_a_mapping_error(admin_client, mapping):
    url = reverse("admin:syncapp_mapping_try", args=[mapping.pk])

    response = admin_client.post(url, {"sample": '{"name": "Obi", "legs": "many"}'})

    assert "legs: cast" in response.content.decode()


def test_the_admin_try_conditions_page_says_whether_the_sample_passes(admin_client, sync):
    url = reverse("admin:syncapp_synchronization_try_conditions", args=[sync.pk])

    passing = admin_client.post(url, {"sample": '{"status": "active"}'}).content.decode()
    failing = admin_client.post(url, {"sample": '{"status": "retired"}'}).content.decode()

    assert "The object passes the conditions" in passing
    assert "does not pass" in failing


def test_the_admin_refuses_a_mapping_with_an_unknown_cast_at_the_cast_field(admin_client, mapping):
    url = reverse("admin:syncapp_mapping_change", args=[mapping.pk])

    response = admin_client.post(url, {
        "reference": "animal-in", "name": "", "description": "", "mapping": '{"legs": "legs"}', "unset": "[]",
        "cast": '{"legs": "integr"}',
    })

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["cast"] == ['cast.legs: unknown cast "integr"']
    mapping.refresh_from_db()
    assert mapping.cast == {"legs": "int"}


def test_the_admin_refuses_a_mapping_that_maps_lists_with_an_unknown_mapping(admin_client, mapping):
    url = reverse("admin:syncapp_mapping_change", args=[mapping.pk])

    response = admin_client.post(url, {
        "reference": "animal-in", "mapping": '{"kids": "{{ children | map_each(\'nope\') }}"}', "unset": "[]",
        "cast": "{}",
    })

    errors = response.context["adminform"].form.errors["mapping"]
    assert len(errors) == 1 and errors[0].startswith("mapping.kids:") and "nope" in errors[0]


def test_the_admin_refuses_conditions_with_an_unknown_operator_at_the_conditions_field(admin_client, sync):
    url = reverse("admin:syncapp_synchronization_change", args=[sync.pk])

    response = admin_client.post(url, {
        "reference": "animals", "name": "Animals", "source_type": "api", "source": sync.source_id,
        "source_config": "{}", "conditions": '{"=~": [1, 2]}', "target_type": "register/schema",
        "target_schema": sync.target_schema_id, "target_config": "{}",
    })

    assert response.context["adminform"].form.errors["conditions"] == ['unknown operator "=~"']


def test_the_admin_test_sync_page_reports_a_source_it_cannot_reach(admin_client, sync):
    response = admin_client.post(reverse("admin:syncapp_synchronization_test", args=[sync.pk]))

    assert response.status_code == 200
    assert "failed" in response.content.decode()


def test_the_openapi_description_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))

    assert "/api/mappings/{id}/try/" in (tmp_path / "schema.yml").read_text()


@pytest.mark.parametrize("page", ["mapping", "conditions"])
def test_the_admin_try_pages_answer_only_who_may_view_what_they_try(client, mapping, sync, page):
    url = (reverse("admin:syncapp_mapping_try", args=[mapping.pk]) if page == "mapping"
           else reverse("admin:syncapp_synchronization_try_conditions", args=[sync.pk]))
    allowed = "syncapp.view_mapping" if page == "mapping" else "syncapp.view_synchronization"
    # Given a staff user who may view only the other model
    other = "syncapp.view_synchronization" if page == "mapping" else "syncapp.view_mapping"
    client.force_login(staff(other, username="outsider"))

    refused = client.post(url, {"sample": '{"status": "active"}'})

    client.force_login(staff(allowed, username="reader"))
    answered = client.post(url, {"sample": '{"status": "active"}'})
    assert (refused.status_code, answered.status_code) == (403, 200)


def test_the_synchronization_form_checks_fields_it_shows_read_only_against_their_saved_values(sync):
    # Given a form that edits only the name (the others shown read-only, as the admin does for some users)
    form_class = forms.modelform_factory(Synchronization, form=SynchronizationForm, fields=["reference", "name"])

    renamed = form_class({"reference": "animals", "name": "Animals again"}, instance=sync)
    broken_sync = Synchronization.objects.get(pk=sync.pk)
    broken_sync.conditions = {"bogus-operator": [1]}
    broken = form_class({"reference": "animals", "name": "Broken"}, instance=broken_sync)

    assert renamed.is_valid(), renamed.errors
    assert not broken.is_valid() and "bogus-operator" in str(broken.non_field_errors())


@pytest.mark.parametrize("model", ["source", "mapping", "register", "schema", "synchronization"])
def test_a_user_who_may_only_view_sees_each_configuration_page(client, sync, mapping, model):
    record = {"source": sync.source, "mapping": mapping, "register": sync.target_schema.register,
              "schema": sync.target_schema, "synchronization": sync}[model]
    client.force_login(staff(f"syncapp.view_{model}"))

    response = client.get(reverse(f"admin:syncapp_{model}_change", args=[record.pk]))

    assert response.status_code == 200
    assert record.reference in response.content.decode()
