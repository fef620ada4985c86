"""Secrets are credentials wherever they are written (issue 21, item 4).

A secret header or query parameter in a configuration is refused (or moved into the credentials by an
OpenConnector import); credentials are sent only to the origin they were confirmed for; a secret is
masked in the forms a server echoes it in; a refused value of the credentials is never echoed.
"""
from __future__ import annotations

import base64
import io
import json
import re
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from syncapp import runs as sync_runs
from syncapp.authentication import credential_problems, location_origin
from syncapp.configuration import ConfigurationInvalid, bundle_import, bundle_validate
from syncapp.errors import SourceError
from syncapp.models import Source, Synchronization
from syncapp.outbound.masking import redact
from syncapp.sample_source import generate_animals
from syncapp.sources.database import database_connect
from syncapp.targets.api import ApiWriter
from tests.conftest import zoo_bundle
from tests.factories import make_schema, make_source, make_synchronization
from tests.helpers import credentials_set, import_zoo, run
from tests.loopback import LoopbackServer

# A secret with what JSON and URLs escape: a quote, a slash, a non-ASCII letter, a space.
SECRET = 'tok/"é 5c0ffee1d2-never-show'


# ---------------------------------------------------------------------------------------------
# Masking finds a secret in the forms an answer echoes it in


def php_json(text: str) -> str:
    """Return the text as PHP's json_encode writes it inside a string: `\\/` and `\\u00e9`."""
    return json.dumps(text)[1:-1].replace("/", "\\/")


ECHOED = {
    "as written": SECRET,
    "JSON-escaped": json.dumps(SECRET, ensure_ascii=False)[1:-1],
    "JSON-escaped ASCII": json.dumps(SECRET)[1:-1],
    "PHP's JSON": php_json(SECRET),
    "PHP's JSON, upper-case hex": php_json(SECRET).replace("\\u00e9", "\\u00E9"),
    "percent-encoded": quote(SECRET, safe=""),
    "percent-encoded, lower-case hex": re.sub(r"%[0-9A-F]{2}", lambda match: match.group(0).lower(),
                                              quote(SECRET, safe="")),
    "form-encoded": quote(SECRET, safe="").replace("%20", "+"),
    "base64": base64.b64encode(SECRET.encode()).decode(),
    "URL-safe base64": base64.urlsafe_b64encode(SECRET.encode()).decode(),
    "base64 inside user:secret": base64.b64encode(f"zoo:{SECRET}".encode()).decode(),
    "base64 inside a JSON body": base64.b64encode(json.dumps({"key": SECRET}).encode()).decode(),
}


@pytest.mark.parametrize("form", list(ECHOED))
def test_a_secret_is_masked_in_every_form_an_answer_echoes_it_in(form):
    echoed = ECHOED[form]
    text = f'{{"error": "refused {echoed}"}}'

    masked = redact(text, [SECRET])

    assert echoed not in masked and "***" in masked


def test_masking_leaves_text_without_the_secret_as_it_is():
    text = 'a plain "answer" with /slashes/, %20 and YWJjZGVmZ2hpams= in it'

    assert redact(text, [SECRET, "abc"]) == text.replace("abc", "***")


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
@pytest.mark.parametrize("form", ["PHP's JSON", "percent-encoded", "base64"])
def test_a_secret_echoed_escaped_in_a_refusal_is_shown_nowhere(form, admin_client):
    # Given a source that refuses the call and echoes the token back escaped
    def refuse(seen):
        return 401, {"Content-Type": "application/json"}, f'{{"error": "token {ECHOED[form]} is revoked"}}'

    with LoopbackServer(refuse) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        credentials_set(sync.source, {"type": "bearer", "token": SECRET})

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    out = io.StringIO()
    call_command("sync", "status", str(run.pk), stdout=out)
    shown = [
        run.error_message, *run.pages.values_list("error_message", flat=True), out.getvalue(),
        admin_client.get(f"/admin/contracts/synchronizationrun/{run.pk}/change/").content.decode(),
        admin_client.get(f"/api/runs/{run.pk}/").content.decode(),
    ]
    assert run.status == "failed" and "answered 401" in run.error_message
    for text in shown:
        # A message quotes the answer with repr(), which doubles its backslashes: look for the secret's middle.
        assert ECHOED[form] not in text and "5c0ffee1d2" not in text


# ---------------------------------------------------------------------------------------------
# A refused value of the credentials is never echoed


@pytest.mark.parametrize("raw", [
    {"type": SECRET},
    {"type": "apiKey", "in": SECRET, "name": "k", "value": "v"},
    {"type": "oauth2", "tokenUrl": "https://x/t", "clientId": "c", "clientSecret": "s", "authentication": SECRET},
    {"type": "oauth2", "tokenUrl": "https://x/t", "clientId": "c", "clientSecret": "s", "grant_type": SECRET},
])
def test_a_refused_credentials_value_is_named_by_its_path_and_not_echoed(raw):
    problems = credential_problems(raw)

    assert len(problems) == 1 and "not shown" in problems[0]
    assert SECRET not in problems[0] and SECRET[:6] not in problems[0]


@pytest.mark.django_db
def test_a_secret_given_as_the_credentials_type_is_not_echoed_by_the_api(admin_client):
    response = admin_client.post("/api/sources/", {
        "reference": "zoo-api", "name": "Zoo", "location": "http://127.0.0.1:8900",
        "credentials": {"type": SECRET},
    }, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["credentials"][0].startswith("credentials.type: must be one of")
    assert SECRET[:6] not in response.content.decode()
    assert json.dumps(SECRET)[1:7] not in response.content.decode()


@pytest.mark.django_db
def test_a_secret_given_as_the_credentials_type_is_not_echoed_by_the_admin(admin_client):
    response = admin_client.post(reverse("admin:syncapp_source_add"), {
        "reference": "zoo-api", "name": "Zoo", "description": "", "type": "api",
        "location": "http://127.0.0.1:8900", "configuration": "{}", "is_enabled": "on",
        "new_credentials": json.dumps({"type": SECRET}),
    })

    page = response.content.decode()
    assert response.status_code == 200
    assert "credentials.type: must be one of" in str(response.context["adminform"].form.errors["new_credentials"])
    assert "5c0ffee1d2" not in page


# ---------------------------------------------------------------------------------------------
# A secret header or query parameter in a configuration is refused at save, pointing to credentials


SECRET_SETTINGS = {
    "Authorization header": ({"headers": {"Authorization": "Bearer abc"}}, "headers", "`Authorization`"),
    "Proxy-Authorization header": ({"headers": {"proxy-authorization": "Basic abc"}}, "headers",
                                   "`proxy-authorization`"),
    "Cookie header": ({"headers": {"Cookie": "session=abc"}}, "headers", "`Cookie`"),
    "X-Api-Key as a dotted key": ({"headers.X-Api-Key": "abc"}, "headers", "`X-Api-Key`"),
    "X-Auth-Token header": ({"headers": {"X-Auth-Token": "abc"}}, "headers", "`X-Auth-Token`"),
    "api_key query": ({"query": {"api_key": "abc"}}, "query", "`api_key`"),
    "accessToken as a dotted key": ({"query.accessToken": "abc"}, "query", "`accessToken`"),
    "client_secret query": ({"query": {"client_secret": "abc"}}, "query", "`client_secret`"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(SECRET_SETTINGS))
def test_a_source_configuration_with_a_secret_is_refused_by_the_api_pointing_to_credentials(case, admin_client):
    configuration, where, named = SECRET_SETTINGS[case]

    response = admin_client.post("/api/sources/", {
        "reference": "zoo-api", "name": "Zoo", "location": "http://127.0.0.1:8900", "configuration": configuration,
    }, content_type="application/json")

    assert response.status_code == 400
    problem = " ".join(response.json()["configuration"])
    assert problem.startswith(f"configuration.{where}: {named}") and "`credentials`" in problem
    assert "abc" not in response.content.decode()
    assert not Source.objects.exists()


@pytest.mark.django_db
def test_ordinary_headers_and_query_parameters_stay_allowed(admin_client):
    configuration = {"headers": {"Accept": "application/json", "X-Request-Id": "1"},
                     "query": {"author": "x", "keyword": "y", "sortKey": None, "per_page": 5}}

    response = admin_client.post("/api/sources/", {
        "reference": "zoo-api", "name": "Zoo", "location": "http://127.0.0.1:8900", "configuration": configuration,
    }, content_type="application/json")

    assert response.status_code == 201, response.json()


@pytest.mark.django_db
def test_a_source_configuration_with_a_secret_is_refused_by_the_admin_at_the_field(admin_client):
    response = admin_client.post(reverse("admin:syncapp_source_add"), {
        "reference": "zoo-api", "name": "Zoo", "description": "", "type": "api",
        "location": "http://127.0.0.1:8900", "configuration": json.dumps({"headers": {"X-Api-Key": "abc"}}),
        "is_enabled": "on",
    })

    assert response.status_code == 200
    assert "`X-Api-Key`: a header that carries a secret goes in the source's `credentials`" in " ".join(
        response.context["adminform"].form.errors["configuration"])
    assert not Source.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("source_config", [
    {"endpoint": "/animals", "headers": {"Authorization": "Bearer abc"}},
    {"endpoint": "/animals", "headers.X-Api-Key": "abc"},
    {"endpoint": "/animals", "query": {"token": "abc"}},
])
def test_a_synchronization_source_config_with_a_secret_is_refused_at_import(source_config):
    bundle = zoo_bundle(location="http://127.0.0.1:8900")
    bundle["synchronizations"][0]["sourceConfig"] = source_config

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_validate(bundle)

    assert any(problem.startswith("synchronizations[0].sourceConfig.") and "`credentials`" in problem
               for problem in caught.value.problems), caught.value.problems
    assert "abc" not in str(caught.value)


@pytest.mark.django_db
def test_a_synchronization_source_config_with_a_secret_is_refused_by_the_api(admin_client):
    source = make_source()
    schema = make_schema()

    response = admin_client.post("/api/synchronizations/", {
        "reference": "animals", "name": "Animals", "sourceType": "api", "source": source.pk,
        "sourceConfig": {"endpoint": "/animals", "headers": {"X-Api-Key": "abc"}},
        "targetType": "register/schema", "targetSchema": schema.pk,
    }, content_type="application/json")

    assert response.status_code == 400
    assert "`X-Api-Key`: a header that carries a secret" in response.content.decode()
    assert not Synchronization.objects.exists()


# ---------------------------------------------------------------------------------------------
# An OpenConnector import moves a secret header or query parameter into the source's credentials


def oc_source(**configuration) -> dict:
    """An exported OpenConnector source without authentication fields, with this configuration."""
    return {
        "@type": "source", "id": 1, "uuid": "7d6e3c1f-0000-4000-8000-000000000001", "name": "Zoo API",
        "reference": None, "location": "http://127.0.0.1:8900", "type": "api", "auth": "none",
        "headers": [], "configuration": configuration, "slug": "zoo-api",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("configuration", "credentials"), [
    ({"headers.Authorization": f"Bearer {SECRET}", "headers.Accept": "application/json"},
     {"type": "bearer", "token": SECRET}),
    ({"headers": {"Authorization": "Basic " + base64.b64encode(b"zoo:pw-1").decode()}},
     {"type": "basic", "username": "zoo", "password": "pw-1"}),
    ({"headers": {"X-Api-Key": SECRET}}, {"type": "apiKey", "in": "header", "name": "X-Api-Key", "value": SECRET}),
    ({"query.api_key": SECRET}, {"type": "apiKey", "in": "query", "name": "api_key", "value": SECRET}),
])
def test_an_openconnector_import_moves_a_secret_header_into_the_credentials_and_says_so(configuration, credentials):
    result = bundle_import({"sources": [oc_source(**configuration)]})

    source = Source.objects.get(reference="zoo-api")
    assert source.credentials == credentials
    assert SECRET not in json.dumps(source.configuration)
    assert "Accept" in json.dumps(source.configuration) or "headers.Accept" not in configuration
    assert len(result.moved) == 1
    assert result.moved[0].startswith("sources[0].configuration.") and "moved into sources[0].credentials" in \
        result.moved[0]
    assert SECRET not in " ".join(result.moved)


@pytest.mark.django_db
def test_an_openconnector_import_keeps_the_credentials_it_has_and_reports_a_second_secret_not_imported():
    item = {**oc_source(**{"headers.X-Api-Key": "other-secret-1"}), "auth": "apikey", "apikey": SECRET,
            "authorizationHeader": "X-Key"}

    result = bundle_import({"sources": [item]})

    source = Source.objects.get(reference="zoo-api")
    assert source.credentials == {"type": "apiKey", "in": "header", "name": "X-Key", "value": SECRET}
    assert "other-secret-1" not in json.dumps(source.configuration)
    assert result.moved == ["sources[0].configuration.headers.X-Api-Key: not imported, sources[0].credentials "
                            "already hold a secret; put this one there instead if the source needs it"]


@pytest.mark.django_db
def test_sync_import_says_which_secrets_it_moved(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"sources": [oc_source(headers={"Authorization": f"Bearer {SECRET}"})]}))
    out = io.StringIO()

    call_command("sync", "import", str(path), stdout=out)

    assert "sources[0].configuration.headers.Authorization: moved into sources[0].credentials (bearer)" in \
        out.getvalue()
    assert "5c0ffee1d2" not in out.getvalue()


# ---------------------------------------------------------------------------------------------
# Credentials are sent only to the origin they were set or confirmed for

TOKEN = "tok-origin-4be1c07d-never-show"


@pytest.mark.parametrize(("location", "origin"), [
    ("https://api.example.org/v1/", "https://api.example.org:443"),
    ("HTTPS://API.Example.org:443", "https://api.example.org:443"),
    ("http://api.example.org", "http://api.example.org:80"),
    ("http://api.example.org:8080/x?y=1", "http://api.example.org:8080"),
    ("http://user@[::1]:81/", "http://[::1]:81"),
    ("postgresql://root@127.0.0.1:5432/test", "postgresql://127.0.0.1:5432"),
    ("/srv/files/animals.csv", ""),
    ("", ""),
])
def test_the_origin_of_a_location_is_its_scheme_host_and_port(location, origin):
    assert location_origin(location) == origin


def staff(*codenames: str) -> User:
    """Return a staff user with these permissions (app_label.codename), fresh from the database."""
    user = User.objects.create_user(username="editor", password="pw", is_staff=True)
    for name in codenames:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return User.objects.get(pk=user.pk)


def api_as(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


class Zoo:
    """A source at one origin that serves two animals and records the Authorization of every call."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        self.server = LoopbackServer(self.handle)

    def handle(self, seen):
        self.authorizations.append(seen.header("Authorization"))
        return 200, {}, {"results": generate_animals(count=2, seed=5), "next": None}


@pytest.fixture
def two_origins():
    """The source's own origin and another one (another port of loopback: another origin)."""
    own, other = Zoo(), Zoo()
    with own.server, other.server:
        yield own, other


def zoo_with_token(url: str) -> Synchronization:
    bundle = zoo_bundle(location=url)
    bundle["sources"][0]["credentials"] = {"type": "bearer", "token": TOKEN}
    sync = import_zoo(bundle)
    sync.conditions = {}
    sync.save()
    return sync


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_user_with_only_change_source_moving_the_location_does_not_send_the_token_to_the_new_host(two_origins):
    own, other = two_origins
    sync = zoo_with_token(own.server.url)
    assert run(sync).status == "succeeded" and own.authorizations == [f"Bearer {TOKEN}"]

    # When a user allowed to change sources, but not their credentials, moves the location to another host
    editor = staff("syncapp.view_source", "syncapp.change_source")
    response = api_as(editor).patch(f"/api/sources/{sync.source_id}/", {"location": other.server.url}, format="json")
    assert response.status_code == 200, response.json()

    # Then the next run sends the token nowhere: it fails naming the source and what to do
    moved = run(sync)
    assert moved.status == "failed"
    assert f"the credentials of source {sync.source.reference!r} are not usable" in moved.error_message
    assert f"confirmed for {location_origin(own.server.url)}" in moved.error_message
    assert "confirmCredentials" in moved.error_message
    assert all(authorization is None for authorization in other.authorizations)
    assert TOKEN not in moved.error_message


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_user_with_only_change_source_cannot_set_or_confirm_credentials(two_origins):
    own, other = two_origins
    sync = zoo_with_token(own.server.url)
    client = api_as(staff("syncapp.view_source", "syncapp.change_source"))

    for body in ({"location": other.server.url, "confirmCredentials": True},
                 {"location": other.server.url, "credentials": {"type": "bearer", "token": "mine"}}):
        response = client.patch(f"/api/sources/{sync.source_id}/", body, format="json")
        assert response.status_code == 403, response.json()
        assert "change_source_credentials" in response.json()["detail"]

    sync.source.refresh_from_db()
    assert sync.source.location == own.server.url and sync.source.credentials == {"type": "bearer", "token": TOKEN}


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
@pytest.mark.parametrize("how", [{"confirmCredentials": True}, {"credentials": {"type": "bearer", "token": TOKEN}}])
def test_a_user_allowed_to_change_credentials_confirms_them_for_the_new_origin(two_origins, how):
    own, other = two_origins
    sync = zoo_with_token(own.server.url)
    api_as(staff("syncapp.view_source", "syncapp.change_source")).patch(
        f"/api/sources/{sync.source_id}/", {"location": other.server.url}, format="json")
    assert run(sync).status == "failed"

    keeper = User.objects.create_user(username="keeper", is_staff=True)
    keeper.user_permissions.add(*Permission.objects.filter(codename__in=["change_source", "change_source_credentials"]))
    response = api_as(User.objects.get(pk=keeper.pk)).patch(f"/api/sources/{sync.source_id}/", how, format="json")
    assert response.status_code == 200, response.json()

    assert run(sync).status == "succeeded"
    assert other.authorizations[-1] == f"Bearer {TOKEN}"


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_the_admin_moves_a_location_without_the_credentials_until_they_are_confirmed(two_origins, admin_client):
    own, other = two_origins
    sync = zoo_with_token(own.server.url)
    editor = staff("syncapp.view_source", "syncapp.change_source")
    page = reverse("admin:syncapp_source_change", args=[sync.source_id])
    form = {"reference": "zoo-api", "name": "Zoo", "description": "", "type": "api",
            "location": other.server.url, "configuration": "{}", "is_enabled": "on"}

    # A user without the permission moves the location: saved, and the form has no credentials fields
    client = Client()
    client.force_login(editor)
    assert "new_credentials" not in client.get(page).content.decode()
    refused = client.post(page, {**form, "confirm_credentials": "on"})
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.non_field_errors()
    assert "Confirm the credentials: needs the permission" in " ".join(errors)
    assert client.post(page, form).status_code == 302
    assert run(sync).status == "failed" and all(seen is None for seen in other.authorizations)
    assert "Not sent: confirmed for" in admin_client.get(page).content.decode()

    # An admin ticks "Confirm the credentials": the token goes to the new origin
    assert admin_client.post(page, {**form, "confirm_credentials": "on"}).status_code == 302
    assert run(sync).status == "succeeded" and other.authorizations[-1] == f"Bearer {TOKEN}"


@pytest.mark.django_db
def test_an_api_target_moved_to_another_origin_is_refused_before_any_write():
    # Given a synchronization writing to a CRM whose credentials were set for its location
    sync = make_synchronization(target_type="api")
    assert ApiWriter.problem(sync) is None

    # When the CRM's location is moved to another host without confirming its credentials
    Source.objects.filter(pk=sync.target_source_id).update(location="http://127.0.0.2:8901")
    sync.refresh_from_db()

    # Then the run's check names the target and what to do
    problem = ApiWriter.problem(sync)
    assert problem is not None and problem.startswith("the credentials of target 'crm': credentials: confirmed for "
                                                      "http://127.0.0.1:8901, but the location is now at "
                                                      "http://127.0.0.2:8901")


@pytest.mark.django_db
def test_a_database_source_moved_to_another_server_does_not_send_its_password():
    source = make_source(type="database", location="postgresql://root@127.0.0.1:5432/test",
                         credentials={"password": "pw-db-never-show"})
    Source.objects.filter(pk=source.pk).update(location="postgresql://root@127.0.0.2:5432/test")
    source.refresh_from_db()

    with pytest.raises(SourceError, match="the credentials of source 'warehouse' are not usable: credentials: "
                                          "confirmed for postgresql://127.0.0.1:5432"), database_connect(source=source):
        pass


@pytest.mark.django_db
def test_a_stored_credentials_type_that_is_no_known_type_is_not_shown_by_the_admin(admin_client):
    source = make_source(credentials={"type": SECRET, "token": "t"})

    page = admin_client.get(reverse("admin:syncapp_source_change", args=[source.pk])).content.decode()

    assert "Stored: set (set)." in page and "5c0ffee1d2" not in page
