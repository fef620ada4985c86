"""Source authentication (SYNC.md section 4): each type against a loopback server that rejects wrong
credentials, the OAuth2 token cache, validation with paths, and secrets that never show."""
from __future__ import annotations

import base64
import itertools
import json
import logging
from typing import Any

import pytest
from django.urls import reverse

from contracts.models import ContractLog, RunPage, SynchronizationContract, SynchronizationRun
from syncapp import runs as sync_runs
from syncapp.authentication import Credentials, credential_problems, credentials_parse
from syncapp.configuration import ConfigurationInvalid, bundle_export, bundle_validate
from syncapp.models import Object, Source, Synchronization
from syncapp.outbound.masking import redact
from syncapp.sample_source import generate_animals
from tests.conftest import zoo_bundle
from tests.helpers import credentials_set, import_zoo
from tests.loopback import LoopbackServer, Request

TOKEN = "tok-8e1f0c5a-never-show"
PASSWORD = "pw-51c2d7e9-never-show"
API_KEY = "key-0b7a44d1-never-show"
CLIENT_SECRET = "cs-93fe02aa-never-show"
SECRETS = (TOKEN, PASSWORD, API_KEY, CLIENT_SECRET)
ITEMS = generate_animals(count=12, seed=3)
PAGE = 5


# ---------------------------------------------------------------------------------------------
# Credential shapes


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, Credentials()),
        ({"type": "none"}, Credentials()),
        ({"type": "bearer", "token": "t"}, Credentials(type="bearer", token="t")),
        ({"token": "t"}, Credentials(type="bearer", token="t")),
        ({"type": "Bearer", "accessToken": "t"}, Credentials(type="bearer", token="t")),
        ({"type": "apiKey", "in": "query", "name": "key", "value": "v"},
         Credentials(type="apiKey", location="query", name="key", value="v")),
        ({"type": "api_key", "header": "X-API-Key", "key": "v"},
         Credentials(type="apiKey", location="header", name="X-API-Key", value="v")),
        ({"auth": "apikey", "apikey": "v", "authorizationHeader": "Authorization"},
         Credentials(type="apiKey", location="header", name="Authorization", value="v")),
        ({"type": "basic", "username": "u", "password": "p"}, Credentials(type="basic", username="u", password="p")),
        ({"user": "u", "pass": "p"}, Credentials(type="basic", username="u", password="p")),
        ({"type": "oauth2", "tokenUrl": "https://x/t", "clientId": "c", "clientSecret": "s", "scope": ["a", "b"]},
         Credentials(type="oauth2", token_url="https://x/t", client_id="c", client_secret="s", scope="a b")),
        ({"grant_type": "client_credentials", "token_url": "https://x/t", "client_id": "c", "client_secret": "s",
          "authentication": "body", "tokenLocation": "token"},
         Credentials(type="oauth2", token_url="https://x/t", client_id="c", client_secret="s",
                     client_authentication="body", token_path="token")),
    ],
)
def test_credentials_are_read_in_every_spelling(raw, expected):
    assert credentials_parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"type": "kerberos"}, "credentials.type: must be one of none, apiKey, basic, bearer, oauth2, got another"),
        ({"type": "bearer"}, "credentials.token: is required for bearer authentication"),
        ({"type": "apiKey", "in": "cookie", "name": "k", "value": "v"}, "credentials.in: must be header or query"),
        ({"type": "apiKey", "in": "query", "value": "v"}, "credentials.name: is required for apiKey authentication"),
        ({"type": "basic", "username": "u"}, "credentials.password: is required for basic authentication"),
        ({"type": "oauth2", "clientId": "c", "clientSecret": "s"}, "credentials.tokenUrl: is required"),
        ({"type": "oauth2", "tokenUrl": "ftp://x", "clientId": "c", "clientSecret": "s"},
         "credentials.tokenUrl: must be an http:// or https:// URL"),
        ({"type": "oauth2", "tokenUrl": "https://x", "clientId": "c", "clientSecret": "s", "grant_type": "password"},
         "credentials.grant_type: only client_credentials is supported"),
        ({"type": "bearer", "token": ["t"]}, "credentials.token: must be text"),
        (["bearer"], "credentials: must be an object"),
    ],
)
def test_bad_credentials_are_reported_with_their_path_and_without_their_values(raw, problem):
    problems = credential_problems(raw)

    assert len(problems) == 1 and problems[0].startswith(problem), problems


@pytest.mark.django_db
def test_bad_credentials_are_refused_at_import_with_their_path():
    bundle = zoo_bundle(location="http://127.0.0.1:8900")
    bundle["sources"][0]["credentials"] = {"type": "oauth2", "clientId": "c", "clientSecret": CLIENT_SECRET}

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_validate(bundle)

    assert caught.value.problems == ["sources[0].credentials.tokenUrl: is required for oauth2 authentication"]
    assert CLIENT_SECRET not in str(caught.value)


@pytest.mark.django_db
def test_bad_credentials_are_refused_by_the_api_naming_them_without_echoing_them(admin_client):
    response = admin_client.post("/api/sources/", {
        "reference": "zoo-api", "name": "Zoo", "location": "http://127.0.0.1:8900",
        "credentials": {"type": "basic-ish", "username": "zoo", "password": PASSWORD},
    }, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["credentials"] == [
        "credentials.type: must be one of none, apiKey, basic, bearer, oauth2, "
        "got another value (not shown: credentials are never echoed)"
    ]
    assert PASSWORD not in response.content.decode()
    assert not Source.objects.exists()


@pytest.mark.django_db
def test_bad_credentials_are_refused_by_the_admin_at_the_field(admin_client):
    response = admin_client.post(reverse("admin:syncapp_source_add"), {
        "reference": "zoo-api", "name": "Zoo", "description": "", "type": "api",
        "location": "http://127.0.0.1:8900", "configuration": "{}", "is_enabled": "on",
        "new_credentials": json.dumps({"type": "bearer", "tokn": TOKEN}),
    })

    assert response.status_code == 200
    assert "credentials.token: is required" in str(response.context["adminform"].form.errors["new_credentials"])
    assert TOKEN not in response.content.decode()
    assert not Source.objects.exists()


def test_redaction_replaces_every_secret_longest_first():
    assert redact(f"a {TOKEN} b {TOKEN[:10]} c", [TOKEN[:10], TOKEN]) == "a *** b *** c"


# ---------------------------------------------------------------------------------------------
# Each type against a server that rejects wrong credentials


class Api:
    """A paged zoo API (DRF-shaped, next links echo the query) behind one kind of authentication, with an
    OAuth2 token URL at /token."""

    def __init__(self, *, accepts, client_auth: str = "basic", lifetime: int = 3600):
        self.accepts = accepts  # Request -> bool: does this request carry the right credentials?
        self.client_auth = client_auth
        self.lifetime = lifetime
        self.tokens: list[str] = []
        self.revoked: set[str] = set()
        self.numbers = itertools.count(1)
        self.server = LoopbackServer(self.handle)

    def token_requests(self) -> list[Request]:
        return [seen for seen in self.server.requests if seen.path == "/token"]

    def api_requests(self) -> list[Request]:
        return [seen for seen in self.server.requests if seen.path != "/token"]

    def handle(self, seen: Request):
        if seen.path == "/token":
            return self.token(seen)
        if not self.accepts(seen, self):
            # Like many APIs, the refusal echoes what it refused: it must still never reach a log.
            return 401, {"WWW-Authenticate": "Bearer"}, {
                "detail": "Invalid credentials", "got": seen.header("Authorization"), "query": seen.query,
            }
        page = int(seen.query.get("page", 1))
        rest = {k: v for k, v in seen.query.items() if k != "page"}
        more = page * PAGE < len(ITEMS)
        query = "&".join(f"{k}={v}" for k, v in {**rest, "page": page + 1}.items())
        return 200, {}, {
            "count": len(ITEMS), "next": f"{self.server.url}{seen.path}?{query}" if more else None,
            "results": ITEMS[(page - 1) * PAGE: page * PAGE],
        }

    def token(self, seen: Request):
        if seen.method != "POST" or seen.form.get("grant_type") != "client_credentials":
            return 400, {}, {"error": "unsupported_grant_type"}
        if self.client_auth == "basic":
            expected = "Basic " + base64.b64encode(f"zoo-client:{CLIENT_SECRET}".encode()).decode()
            ok = seen.header("Authorization") == expected
        else:
            ok = seen.form.get("client_id") == "zoo-client" and seen.form.get("client_secret") == CLIENT_SECRET
        if not ok:
            return 401, {}, {"error": "invalid_client", "error_description": f"bad secret {seen.form}"}
        token = f"{TOKEN}-{next(self.numbers)}"
        self.tokens.append(token)
        return 200, {"Cache-Control": "no-store"}, {
            "access_token": token, "token_type": "Bearer", "expires_in": self.lifetime, "scope": seen.form.get("scope"),
        }

    def valid_token(self, seen: Request) -> bool:
        header = seen.header("Authorization") or ""
        token = header.removeprefix("Bearer ")
        return header.startswith("Bearer ") and token in self.tokens and token not in self.revoked


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AUTH_CASES = {
    "none": (
        lambda seen, api: seen.header("Authorization") is None and "api_key" not in seen.query,
        {}, None,
    ),
    "api key in a header": (
        lambda seen, api: seen.header("X-API-Key") == API_KEY,
        {"type": "apiKey", "in": "header", "name": "X-API-Key", "value": API_KEY},
        {"type": "apiKey", "in": "header", "name": "X-API-Key", "value": API_KEY + "x"},
    ),
    "api key in the query": (
        lambda seen, api: seen.query.get("api_key") == API_KEY,
        {"type": "apiKey", "in": "query", "name": "api_key", "value": API_KEY},
        {"type": "apiKey", "in": "query", "name": "api_key", "value": "x" + API_KEY},
    ),
    "basic": (
        lambda seen, api: seen.header("Authorization") == basic("zoo", PASSWORD),
        {"type": "basic", "username": "zoo", "password": PASSWORD},
        {"type": "basic", "username": "zoo", "password": PASSWORD[::-1]},
    ),
    "bearer": (
        lambda seen, api: seen.header("Authorization") == f"Bearer {TOKEN}",
        {"type": "bearer", "token": TOKEN},
        {"type": "bearer", "token": TOKEN.upper()},
    ),
    "oauth2": (
        lambda seen, api: api.valid_token(seen),
        {"type": "oauth2", "tokenUrl": "{url}/token", "clientId": "zoo-client", "clientSecret": CLIENT_SECRET},
        {"type": "oauth2", "tokenUrl": "{url}/token", "clientId": "zoo-client", "clientSecret": "wrong"},
    ),
}


def with_url(credentials: dict | None, url: str) -> dict:
    return {key: value.replace("{url}", url) if isinstance(value, str) else value
            for key, value in (credentials or {}).items()}


def prepared(url: str, credentials: dict) -> Synchronization:
    sync = import_zoo(zoo_bundle(location=url))
    credentials_set(sync.source, credentials)
    sync.source_config = {"endpoint": "/animals", "query": {"per_page": PAGE}, "pagination": {"type": "next"}}
    sync.conditions = {}
    sync.save()
    return sync


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
@pytest.mark.parametrize("case", list(AUTH_CASES))
def test_the_right_credentials_read_every_page(case):
    accepts, right, _wrong = AUTH_CASES[case]
    api = Api(accepts=accepts)
    with api.server:
        sync = prepared(api.server.url, with_url(right, api.server.url))

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert run.created == Object.objects.count() == len(ITEMS)
    assert len(api.api_requests()) == run.pages_fetched == 3
    assert all(accepts(seen, api) for seen in api.api_requests())


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
@pytest.mark.parametrize("case", [case for case, (_, _, wrong) in AUTH_CASES.items() if wrong is not None])
def test_wrong_credentials_fail_the_run_with_a_clear_error_that_shows_no_secret(case):
    accepts, _right, wrong = AUTH_CASES[case]
    api = Api(accepts=accepts)
    with api.server:
        sync = prepared(api.server.url, with_url(wrong, api.server.url))

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert "answered 401" in run.error_message
    assert Object.objects.count() == 0
    for secret in [*SECRETS, *credentials_parse(with_url(wrong, api.server.url)).secrets]:
        assert secret not in run.error_message


# ---------------------------------------------------------------------------------------------
# OAuth2 client credentials: the token is fetched once, cached until it expires, renewed once on a 401


def oauth2(url: str, **extra: Any) -> dict:
    return {"type": "oauth2", "tokenUrl": f"{url}/token", "clientId": "zoo-client", "clientSecret": CLIENT_SECRET,
            **extra}


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
@pytest.mark.parametrize("client_auth", ["basic", "body"])
def test_an_oauth2_token_is_fetched_once_and_serves_every_page_of_every_run_until_it_expires(client_auth):
    api = Api(accepts=lambda seen, api: api.valid_token(seen), client_auth=client_auth)
    with api.server:
        sync = prepared(api.server.url, oauth2(api.server.url, clientAuthentication=client_auth, scope="read"))

        runs = [sync_runs.run_start(synchronization=sync) for _ in range(2)]

    assert [SynchronizationRun.objects.get(pk=run.pk).status for run in runs] == ["succeeded", "succeeded"]
    assert len(api.token_requests()) == 1
    assert api.token_requests()[0].form["scope"] == "read"
    assert len(api.api_requests()) == 6
    cache = Source.objects.get().auth_token_cache
    assert cache["token"] == api.tokens[0]


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_an_oauth2_token_about_to_expire_is_not_used():
    api = Api(accepts=lambda seen, api: api.valid_token(seen), lifetime=10)  # within the 30 s safety margin
    with api.server:
        sync = prepared(api.server.url, oauth2(api.server.url))

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert len(api.token_requests()) == 3  # one per page


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_revoked_oauth2_token_is_replaced_once_and_the_page_read():
    def accepts(seen: Request, api: Api) -> bool:
        if seen.query.get("page") == "2" and len(api.tokens) == 1:
            api.revoked.add(api.tokens[0])  # the server drops the token between two pages
        return api.valid_token(seen)

    api = Api(accepts=accepts)
    with api.server:
        sync = prepared(api.server.url, oauth2(api.server.url))

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert len(api.token_requests()) == 2
    assert Source.objects.get().auth_token_cache["token"] == api.tokens[1]
    assert run.created == len(ITEMS)


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_source_that_refuses_every_oauth2_token_gets_one_new_token_and_then_fails_the_run():
    api = Api(accepts=lambda seen, api: False)
    with api.server:
        sync = prepared(api.server.url, oauth2(api.server.url))

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert "answered 401" in run.error_message
    assert (len(api.token_requests()), len(api.api_requests())) == (2, 2)
    assert all(token not in run.error_message for token in api.tokens)


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_token_url_that_refuses_the_client_fails_the_run_naming_the_token_url_without_the_secret():
    api = Api(accepts=lambda seen, api: api.valid_token(seen), client_auth="body")
    with api.server:
        sync = prepared(api.server.url, oauth2(api.server.url, clientAuthentication="basic"))

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert f"OAuth2 token request to {api.server.url}/token answered 401" in run.error_message
    assert CLIENT_SECRET not in run.error_message
    assert api.api_requests() == []


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_new_oauth2_credentials_never_reuse_the_token_of_the_old_ones():
    api = Api(accepts=lambda seen, api: api.valid_token(seen), client_auth="body")
    with api.server:
        sync = prepared(api.server.url, oauth2(api.server.url, clientAuthentication="body"))
        sync_runs.run_start(synchronization=sync)
        credentials_set(sync.source, oauth2(api.server.url, clientAuthentication="body", scope="write"))

        sync_runs.run_start(synchronization=sync)

    assert [seen.form.get("scope") for seen in api.token_requests()] == [None, "write"]


# ---------------------------------------------------------------------------------------------
# Secrets appear in no log, admin page or API answer


SECRET_CASES = {
    "bearer": {"type": "bearer", "token": TOKEN},
    "basic": {"type": "basic", "username": "zoo", "password": PASSWORD},
    "api key in the query": {"type": "apiKey", "in": "query", "name": "api_key", "value": API_KEY},
    "oauth2": {"type": "oauth2", "tokenUrl": "{url}/token", "clientId": "zoo-client", "clientSecret": CLIENT_SECRET},
}


def everything_shown(admin_client, source: Source, sync: Synchronization) -> dict[str, str]:
    """Every place a secret could show: admin pages, API answers, the export and the run records."""
    pages = {
        "admin change": reverse("admin:syncapp_source_change", args=[source.pk]),
        "admin list": reverse("admin:syncapp_source_changelist"),
        "admin history": reverse("admin:syncapp_source_history", args=[source.pk]),
        "admin runs": reverse("admin:contracts_synchronizationrun_changelist"),
        "api sources": "/api/sources/",
        "api source": f"/api/sources/{source.pk}/",
        "api runs": "/api/runs/",
        "api contract logs": "/api/contract-logs/",
    }
    shown = {}
    for name, url in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        shown[name] = response.content.decode()
    shown["export"] = json.dumps(bundle_export())
    shown["runs"] = json.dumps(list(SynchronizationRun.objects.values("error_message", "report")), default=str)
    shown["pages"] = json.dumps(list(RunPage.objects.values("request", "error_message")), default=str)
    shown["contract logs"] = json.dumps(
        list(ContractLog.objects.values("source_object", "target_object", "error")), default=str
    )
    shown["contracts"] = json.dumps(list(SynchronizationContract.objects.values("last_error")), default=str)
    return shown


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
@pytest.mark.parametrize("case", list(SECRET_CASES))
def test_a_secret_set_on_a_source_appears_in_no_log_admin_page_or_api_answer(case, admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    credentials_holder: dict[str, bool] = {}

    def accepts(seen: Request, api: Api) -> bool:
        # The first run passes; the second is refused after its first page (with the secret echoed).
        refused = credentials_holder.get("refuse", False) and seen.query.get("page") == "2"
        right = {
            "bearer": seen.header("Authorization") == f"Bearer {TOKEN}",
            "basic": seen.header("Authorization") == basic("zoo", PASSWORD),
            "api key in the query": seen.query.get("api_key") == API_KEY,
            "oauth2": api.valid_token(seen),
        }[case]
        return right and not refused

    api = Api(accepts=accepts)
    with api.server:
        credentials = with_url(SECRET_CASES[case], api.server.url)
        sync = prepared(api.server.url, credentials)
        # Through the admin, as a user would set it.
        response = admin_client.post(reverse("admin:syncapp_source_change", args=[sync.source.pk]), {
            "reference": "zoo-api", "name": "Zoo", "description": "", "type": "api", "location": api.server.url,
            "configuration": "{}", "is_enabled": "on", "new_credentials": json.dumps(credentials),
        })
        assert response.status_code == 302
        runs = [sync_runs.run_start(synchronization=sync)]
        credentials_holder["refuse"] = True
        runs.append(sync_runs.run_start(synchronization=sync))
        sync_runs.run_test(synchronization=sync)

    first, second = (SynchronizationRun.objects.get(pk=run.pk) for run in runs)
    assert (first.status, second.status) == ("succeeded", "failed"), (first.error_message, second.error_message)
    assert "answered 401" in second.error_message
    shown = everything_shown(admin_client, Source.objects.get(), sync)
    shown["log"] = caplog.text
    secrets = [*credentials_parse(credentials).secrets, *api.tokens]
    assert secrets
    for where, text in shown.items():
        for secret in secrets:
            assert secret not in text, f"a secret shows in {where}"
