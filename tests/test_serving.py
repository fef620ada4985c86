"""Served as documented: the admin styled with DEBUG off, the API docs offline, token authentication."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from syncapp.tokens import token_create

pytestmark = pytest.mark.django_db


def test_the_admins_css_is_served_with_debug_off(client, settings):
    settings.DEBUG = False

    answer = client.get("/static/admin/css/base.css")

    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/css")


def test_the_api_docs_load_their_scripts_from_this_server_not_a_cdn(admin_client):
    page = admin_client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    scripts = re.findall(r'src="(/static/[^"]+\.js)"', html)
    assert scripts, html[:2000]
    for script in scripts:
        assert admin_client.get(script).status_code == 200, script


def test_an_anonymous_api_request_is_answered_401_saying_how_to_authenticate():
    answer = APIClient().get("/api/synchronizations/")

    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == "Token"


def test_a_token_authenticates_api_requests():
    user = User.objects.create_user(username="robot", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_synchronization"))
    _, key = token_create(user=user)
    client = APIClient()

    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/synchronizations/").status_code == 200

    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get("/api/synchronizations/").status_code == 401
