"""Permissions per model and action in the API and the admin, and the history of configuration changes."""
from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from contracts.models import SynchronizationRun
from syncapp.configuration import bundle_import
from syncapp.models import Object, Source, Synchronization
from tests.conftest import zoo_bundle
from tests.helpers import import_zoo, runner_take, staff, wait_for_run

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

SECRET = "tok-perm-5d1e-never-show"
API_LISTS = ["/api/sources/", "/api/mappings/", "/api/registers/", "/api/schemas/", "/api/objects/",
             "/api/synchronizations/", "/api/runs/", "/api/contracts/", "/api/contract-logs/"]


def api(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def zoo(sample_source) -> Synchronization:
    return import_zoo(zoo_bundle(location=sample_source.url))


@pytest.mark.parametrize("path", [*API_LISTS, "/api/", "/api/schema/", "/api/docs/"])
def test_anonymous_requests_are_refused_everywhere(path):
    assert api(None).get(path).status_code in (401, 403)


@pytest.mark.parametrize("path", [*API_LISTS, "/api/synchronizations/animals/", "/api/runs/1/pages/"])
def test_anonymous_requests_are_answered_401_asking_for_a_token(path):
    response = api(None).get(path)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_user_who_is_not_staff_cannot_change_configuration_even_with_every_permission(zoo):
    user = User.objects.create_user(username="outsider", password="pw")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label__in=["syncapp", "contracts"]))
    client = api(User.objects.get(pk=user.pk))

    assert client.patch(f"/api/sources/{zoo.source_id}/", {"location": "http://127.0.0.1:1"},
                        format="json").status_code == 403
    assert client.patch(f"/api/synchronizations/{zoo.reference}/", {"isEnabled": False},
                        format="json").status_code == 403
    assert client.delete(f"/api/synchronizations/{zoo.pk}/").status_code == 403
    assert client.post(f"/api/synchronizations/{zoo.pk}/run/", {}, format="json").status_code == 403
    zoo.refresh_from_db()
    assert zoo.is_enabled and Source.objects.get(pk=zoo.source_id).location != "http://127.0.0.1:1"
    assert not SynchronizationRun.objects.exists()


def test_anonymous_users_are_sent_to_the_admin_login(client):
    response = client.get(reverse("admin:syncapp_source_changelist"))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize("path", API_LISTS)
def test_users_who_are_not_staff_are_refused_everywhere(path):
    user = User.objects.create_user(username="someone", password="pw")
    for codename in ("view_source", "change_source"):
        user.user_permissions.add(Permission.objects.get(codename=codename))

    assert api(user).get(path).status_code == 403


def test_staff_without_permissions_can_neither_read_nor_change_nor_run(zoo):
    user = staff()
    client = api(user)

    assert client.get("/api/sources/").status_code == 403
    assert client.patch(f"/api/sources/{zoo.source_id}/", {"location": "http://127.0.0.1:1"},
                        format="json").status_code == 403
    assert client.post(f"/api/synchronizations/{zoo.pk}/run/", {}, format="json").status_code == 403
    assert not SynchronizationRun.objects.exists()


def test_staff_who_may_view_read_but_change_nothing_and_start_no_run(zoo, sample_source):
    user = staff("syncapp.view_source", "syncapp.view_synchronization", "syncapp.view_object")
    client = api(user)

    assert client.get("/api/sources/").status_code == 200
    assert client.get("/api/objects/").status_code == 200
    assert client.patch(f"/api/sources/{zoo.source_id}/", {"location": "http://127.0.0.1:1"},
                        format="json").status_code == 403
    assert client.post(f"/api/synchronizations/{zoo.pk}/run/", {"test": True}, format="json").status_code == 403
    assert not SynchronizationRun.objects.exists()
    assert sample_source.requests == []


def test_staff_with_the_run_permission_start_runs_through_the_api(zoo):
    user = staff("syncapp.run_synchronization")

    response = api(user).post(f"/api/synchronizations/{zoo.pk}/run/", {}, format="json")
    runner_take()

    assert response.status_code == 202, response.content
    assert SynchronizationRun.objects.get().status == "succeeded"


def test_deleting_objects_needs_the_delete_permission(zoo):
    api(staff("syncapp.run_synchronization", username="runner")).post(f"/api/synchronizations/{zoo.pk}/run/", {},
                                                                       format="json")
    runner_take()
    target = Object.objects.first()
    reader = staff("syncapp.view_object")

    assert api(reader).delete(f"/api/objects/{target.pk}/").status_code == 403
    assert Object.objects.filter(pk=target.pk).exists()
    assert api(staff("syncapp.delete_object", username="deleter")).delete(
        f"/api/objects/{target.pk}/").status_code == 204


def test_cancelling_needs_the_cancel_permission(zoo):
    active = SynchronizationRun.objects.create(synchronization=zoo, status="running", heartbeat_at=timezone.now())

    refused = api(staff("contracts.view_synchronizationrun")).post(f"/api/runs/{active.pk}/cancel/")
    allowed = api(staff("contracts.cancel_run", username="canceller")).post(f"/api/runs/{active.pk}/cancel/")

    assert (refused.status_code, allowed.status_code) == (403, 200)


def test_the_admin_offers_run_now_and_test_sync_only_with_the_run_permission(zoo, client, sample_source):
    viewer = staff("syncapp.view_synchronization", "syncapp.change_synchronization")
    client.force_login(viewer)
    changelist = reverse("admin:syncapp_synchronization_changelist")

    page = client.get(changelist)
    action = client.post(changelist, {"action": "run_now", "_selected_action": [zoo.pk]})
    test = client.post(reverse("admin:syncapp_synchronization_test", args=[zoo.pk]))

    assert page.status_code == 200 and "run_now" not in page.content.decode()
    assert action.status_code in (200, 302)
    assert test.status_code == 403
    assert not SynchronizationRun.objects.exists() and sample_source.requests == []

    runner = staff("syncapp.view_synchronization", "syncapp.run_synchronization", username="runner")
    client.force_login(runner)
    client.post(changelist, {"action": "run_now", "_selected_action": [zoo.pk]})
    runner_take()
    assert wait_for_run(SynchronizationRun.objects.get(is_test=False), timeout=60).status == "succeeded"


def test_a_test_sync_opened_by_a_link_asks_before_it_calls_the_source(zoo, admin_client, sample_source):
    url = reverse("admin:syncapp_synchronization_test", args=[zoo.pk])

    opened = admin_client.get(url)
    assert opened.status_code == 200 and "Run the test" in opened.content.decode()
    assert not SynchronizationRun.objects.exists() and sample_source.requests == []

    confirmed = admin_client.post(url)
    assert confirmed.status_code == 200
    assert SynchronizationRun.objects.filter(is_test=True).count() == 1


def test_the_admin_cancel_action_needs_the_cancel_permission(zoo, client):
    active = SynchronizationRun.objects.create(synchronization=zoo, status="running", heartbeat_at=timezone.now())
    client.force_login(staff("contracts.view_synchronizationrun"))

    client.post(reverse("admin:contracts_synchronizationrun_changelist"),
                {"action": "cancel", "_selected_action": [active.pk]})

    active.refresh_from_db()
    assert active.status == "running"


# ---------------------------------------------------------------------------------------------
# History of configuration changes


def test_an_api_change_is_recorded_with_who_and_which_fields_and_no_secret(zoo, admin_client):
    editor = staff("syncapp.change_source", "syncapp.change_source_credentials", "syncapp.view_source")

    response = api(editor).patch(
        f"/api/sources/{zoo.source_id}/",
        {"description": "moved", "credentials": {"type": "bearer", "token": SECRET}}, format="json",
    )

    assert response.status_code == 200, response.content
    entry = LogEntry.objects.get(object_id=str(zoo.source_id), content_type__model="source", user=editor)
    assert entry.user == editor
    assert entry.change_message == "Changed description, credentials, credentials_origin (API)"
    history = admin_client.get(reverse("admin:syncapp_source_history", args=[zoo.source_id])).content.decode()
    assert "Changed description, credentials, credentials_origin (API)" in history
    assert SECRET not in history and SECRET not in entry.change_message


def test_api_creations_and_deletions_are_recorded():
    user = staff("syncapp.add_mapping", "syncapp.delete_mapping")
    client = api(user)

    created = client.post("/api/mappings/", {"reference": "m", "name": "m", "mapping": {"a": "b"}}, format="json")
    client.delete(f"/api/mappings/{created.json()['id']}/")

    messages = list(LogEntry.objects.filter(content_type__model="mapping").order_by("pk")
                    .values_list("change_message", "action_flag"))
    assert messages == [("Added (API)", 1), ("Deleted (API)", 3)]


def test_an_import_records_what_it_added_and_changed_for_the_command_line():
    bundle = zoo_bundle(location="http://127.0.0.1:8900")
    bundle_import(bundle)
    bundle["sources"][0]["location"] = "http://127.0.0.1:8901"
    bundle["sources"][0]["credentials"] = {"type": "bearer", "token": SECRET}

    bundle_import(bundle)

    source = Source.objects.get(reference="zoo-api")
    entries = list(LogEntry.objects.filter(object_id=str(source.pk), content_type__model="source").order_by("pk"))
    assert [entry.change_message.split(" (")[0] for entry in entries] == [
        "Added", "Changed location, credentials, credentials_origin"
    ]
    assert all(entry.user.username == "command-line" and not entry.user.is_active for entry in entries)
    assert all("import by" in entry.change_message and SECRET not in entry.change_message for entry in entries)


def test_an_import_through_the_api_user_is_recorded_for_that_user():
    user = staff(username="importer")

    bundle_import(zoo_bundle(location="http://127.0.0.1:8900"), actor=user)

    assert set(LogEntry.objects.values_list("user__username", flat=True)) == {"importer"}
