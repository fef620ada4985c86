"""Adding a source type is a new module and its registration: the README's "Adding a source type", checked.

The kind here lives in this test module, as it would in `syncapp/sources/<kind>.py`: a declaration, a
reader registered with `reader_type`, a kind of Source record registered with `source_record_check`.
Nothing else in the service is told about it, yet the models' choices, the admin, the API, imports, the
reference page, the OpenAPI description and a run all take it.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from syncapp import kinds
from syncapp.configuration import ConfigurationInvalid, bundle_export, bundle_import
from syncapp.declared import Declared
from syncapp.hashing import hash_value
from syncapp.models import Object, Synchronization
from syncapp.reference import configuration_reference
from syncapp.sources import source_config_schemas
from syncapp.sources.base import (
    READERS,
    RECORD_CHECKS,
    RECORD_CONFIGURATIONS,
    Fetched,
    ReaderKind,
    ReadPage,
    reader_type,
    source_record_check,
)
from syncapp.sources.declarations import RunSettings
from tests.helpers import run

pytestmark = pytest.mark.django_db


class InlineConfiguration(Declared):
    """An inline source's `configuration`: nothing to call, so nothing to set."""


class InlineSourceConfig(RunSettings):
    """sourceConfig of a synchronization that reads the objects written in it."""

    objects: list[dict[str, Any]]
    """The objects, each with its id."""
    page_size: int | None = None
    """Objects a page (default 2)."""


def register_inline_kind() -> None:
    @source_record_check("inline", label="Inline", configuration=InlineConfiguration)
    def inline_source_problems(*, location: Any, credentials: Any, has_upload: bool, path: str) -> list[str]:
        return [] if not location else [f"{path}location: an inline source has no location"]

    @reader_type("inline", label="Inline")
    class InlineReader(ReaderKind):
        declaration = InlineSourceConfig
        concurrency = 1

        def __init__(self, synchronization: Synchronization):
            self.config = InlineSourceConfig.read(synchronization.source_config)
            self.max_pages = None

        def first_request(self, *, variables: dict[str, Any]) -> dict[str, Any]:
            return {"start": 0}

        def fetch(self, *, request: dict[str, Any], on_wait: Any = None) -> Fetched:
            size = self.config.page_size or 2
            body = self.config.objects[request["start"]:request["start"] + size]
            return Fetched(request=request, body=body, url="inline")

        def page(self, *, request: dict[str, Any], fetched: Fetched) -> ReadPage:
            size = self.config.page_size or 2
            following = {"start": request["start"] + size} if len(fetched.body) == size else None
            return ReadPage(objects=fetched.body, hashes=[hash_value(obj) for obj in fetched.body],
                            next_request=following)

        def ahead(self, *, request: dict[str, Any], steps: int) -> dict[str, Any] | None:
            return None

        def same_request(self, first: dict[str, Any], second: dict[str, Any]) -> bool:
            return first == second


@pytest.fixture
def inline_kind() -> Iterator[None]:
    """The inline kind, registered as its module would be on import; gone again after the test."""
    register_inline_kind()
    yield
    for registry in (READERS, RECORD_CHECKS, RECORD_CONFIGURATIONS, kinds.READER_KINDS, kinds.SOURCE_RECORD_KINDS):
        registry.pop("inline", None)


BUNDLE = {
    "sources": [{"reference": "inline", "name": "Inline", "type": "inline"}],
    "registers": [{"reference": "zoo", "schemas": [{"reference": "animal", "schema": {"type": "object"}}]}],
    "synchronizations": [{
        "reference": "inline-animals", "name": "Inline animals", "sourceType": "inline", "sourceId": "inline",
        "sourceConfig": {"objects": [{"id": "1", "name": "Nala"}, {"id": "2", "name": "Simba"},
                                     {"id": "3", "name": "Zazu"}]},
        "targetType": "register/schema", "targetId": "zoo/animal",
    }],
}


def test_a_new_kind_is_read_from_the_registries_by_every_door(inline_kind):
    # The models' choices
    assert ("inline", "Inline") in Synchronization._meta.get_field("source_type").choices
    # An import checks its declaration: an unknown key is refused with the closest name
    typo = {**BUNDLE, "synchronizations": [{**BUNDLE["synchronizations"][0], "sourceConfig": {"objets": []}}]}
    with pytest.raises(ConfigurationInvalid) as refused:
        bundle_import(typo)
    assert "synchronizations[0].sourceConfig.objets: unknown key, did you mean `objects`?" in refused.value.problems
    # The editors' schemas, the reference page and the OpenAPI description list its keys
    assert "pageSize" in source_config_schemas()["inline"]["properties"]
    assert "### `sourceType: inline`" in configuration_reference()
    user = get_user_model().objects.create(username="kind-admin", is_staff=True, is_superuser=True)
    client = APIClient()
    client.force_authenticate(user)
    description = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "InlineSourceConfig" in description["components"]["schemas"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("in_process_tasks")
def test_a_new_kind_runs_exports_and_imports_again(inline_kind):
    bundle_import(BUNDLE)
    sync = Synchronization.objects.get(reference="inline-animals")

    finished = run(sync)

    assert (finished.status, finished.created) == ("succeeded", 3)
    assert sorted(Object.objects.values_list("data__name", flat=True)) == ["Nala", "Simba", "Zazu"]
    exported = bundle_export()
    bundle_import(exported)
    assert bundle_export() == exported
