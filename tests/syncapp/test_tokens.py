"""API tokens are stored as digests: a token read from the database does not authenticate, the key is shown
once when made (admin or `manage.py sync token USER`), and tokens made before keep working (the migration)."""
from __future__ import annotations

import importlib
import io

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from syncapp.models import ApiToken
from syncapp.tokens import token_create, token_digest

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module("syncapp.migrations.0012_api_tokens_hashed")


def api_status(key: str) -> int:
    """Return the status of a list of synchronizations asked with a token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/synchronizations/").status_code


@pytest.fixture
def robot() -> User:
    user = User.objects.create_user(username="robot", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_synchronization"))
    return user


def test_a_token_authenticates_but_what_the_database_holds_of_it_does_not(robot):
    token, key = token_create(user=robot, name="nightly export")

    assert api_status(key) == 200
    stored = ApiToken.objects.values_list("digest", flat=True).get(pk=token.pk)
    assert key not in stored
    assert api_status(stored) == 401


def test_sync_token_prints_a_new_key_once_and_stores_only_its_digest(robot):
    out = io.StringIO()

    call_command("sync", "token", "robot", "--name", "ci", stdout=out, stderr=io.StringIO())

    key = out.getvalue().strip()
    assert api_status(key) == 200
    assert ApiToken.objects.get(user=robot).digest == token_digest(key)


def test_the_admin_shows_a_new_key_once_and_never_again(admin_client, robot):
    made = admin_client.post("/admin/syncapp/apitoken/add/", {"user": robot.pk, "name": "backup"})

    assert made.status_code == 200
    key = made.context["key"]
    assert key in made.content.decode()
    assert api_status(key) == 200
    token = ApiToken.objects.get(user=robot)
    for page in ("/admin/syncapp/apitoken/", f"/admin/syncapp/apitoken/{token.pk}/change/"):
        shown = admin_client.get(page).content.decode()
        assert key not in shown and token.digest not in shown


def test_a_staff_user_may_make_tokens_only_for_themselves(client, robot):
    boss = User.objects.create_superuser("boss", "boss@example.com", "unused")
    robot.user_permissions.add(*Permission.objects.filter(codename__in=["add_apitoken", "view_apitoken"]))
    token_create(user=boss, name="the boss's")
    client.force_login(robot)

    refused = client.post("/admin/syncapp/apitoken/add/", {"user": boss.pk, "name": "mine now"})

    assert refused.status_code == 200 and "user" in refused.context["adminform"].form.errors
    assert not ApiToken.objects.filter(user=boss, name="mine now").exists()
    assert "the boss&#x27;s" not in client.get("/admin/syncapp/apitoken/").content.decode()


def test_tokens_of_rest_framework_authtoken_keep_working_after_the_migration(robot):
    # Given a token as rest_framework.authtoken kept it, its key in the clear
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp with time zone "
                       "NOT NULL, user_id integer NOT NULL)")
        cursor.execute("INSERT INTO authtoken_token VALUES ('0123456789abcdef0123456789abcdef01234567', now(), %s)",
                       [robot.pk])

    with connection.schema_editor() as editor:
        MIGRATION.tokens_copy_as_digests(apps, editor)

    assert api_status("0123456789abcdef0123456789abcdef01234567") == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)
