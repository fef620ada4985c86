"""The OpenAPI description is valid and the API answers as it says (schemathesis, in process).

The API is called through its WSGI application in this process, as a staff superuser with a token;
runs it starts are queued after a commit that never comes (each test is one transaction), so no
worker is needed. Examples are few and derandomized: the same requests on every run.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core import signals
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from syncapp.configuration import bundle_import
from syncapp.models import ApiToken
from syncapp.tokens import token_digest
from tests.conftest import zoo_bundle

TOKEN = "0123456789abcdef0123456789abcdef01234567"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def openapi_description() -> dict:
    """Return the API's OpenAPI description as served at /api/schema/, as plain JSON."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated, renderer_context={}))


schema = schemathesis.openapi.from_dict(
    openapi_description(),
    config=SchemathesisConfig.from_dict({
        "generation": {"mode": "all", "max-examples": 4, "deterministic": True, "database": "none"},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    }),
)
application = get_wsgi_application()


@pytest.fixture
def in_process_requests(db):
    """Let requests through the WSGI application use the test's transaction, as Django's test client does.

    Its handler closes the database connection after each request: that would end the transaction.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def staff_token(in_process_requests) -> str:
    """A staff superuser's token, and a synchronization to find."""
    user = get_user_model().objects.create_superuser("schemathesis", "st@example.com", "unused-password")
    ApiToken.objects.create(user=user, digest=token_digest(TOKEN))
    bundle_import(zoo_bundle(location="http://127.0.0.1:8900"))
    return TOKEN


def test_the_openapi_description_validates_without_warnings(tmp_path: Path):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    assert "/api/synchronizations/{id}/run/" in target.read_text()


@schema.parametrize()
@settings(derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_the_api_answers_as_its_openapi_description_says(case, staff_token):
    response = case.call(app=application, headers={"Authorization": f"Token {staff_token}"})

    case.validate_response(response, checks=CHECKS)
