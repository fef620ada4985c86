"""The register as a source: the objects of a schema go through conditions, contracts, mappings and
deletion like an API's, here to an API target."""
from __future__ import annotations

import pytest

from contracts.models import SynchronizationContract
from syncapp.configuration import ConfigurationInvalid, bundle_import
from syncapp.models import Object, Schema, Synchronization
from syncapp.targets.register import register_object_save, register_objects_delete
from tests.helpers import run
from tests.syncapp.targets.test_api import TargetApi

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")


def register_to(target: TargetApi, *, count: int, **source_config) -> Synchronization:
    """Fill a schema with `count` objects, then make the synchronization that reads it. These tests are
    about full runs: only creations are pushed, and none of those `count` objects is."""
    bundle_import({
        "registers": [{"reference": "zoo", "schemas": [{"reference": "animal", "schema": {"type": "object"}}]}],
    })
    schema = Schema.objects.get(reference="animal")
    for number in range(count):
        register_object_save(obj=Object(schema=schema, data={"name": f"animal {number}"}))
    bundle_import({
        "sources": [{"reference": "crm", "location": target.url}],
        "mappings": [{"reference": "out", "mapping": {"name": "name", "uuid": "id"}}],
        "synchronizations": [{
            "reference": "outgoing", "sourceType": "register/schema", "sourceId": "zoo/animal",
            "sourceConfig": {"pageSize": 7, "triggerOnlyOnEvents": ["create"], **source_config},
            "sourceTargetMapping": "out", "conditions": {"!=": [{"var": "name"}, "secret"]},
            "targetType": "api", "targetId": "crm", "targetConfig": {"endpoint": "/items"},
        }],
    })
    return Synchronization.objects.get(reference="outgoing")


def test_a_run_pushes_every_object_of_the_schema_once_in_keyset_pages():
    with TargetApi() as target:
        sync = register_to(target, count=20)
        register_object_save(obj=Object(schema=sync.source_schema, data={"name": "secret"}))

        first = run(sync)

    assert (first.status, first.found, first.filtered, first.created) == ("succeeded", 21, 1, 20), first.error_message
    assert first.pages_fetched == 4  # 21 objects, 7 a page
    assert sorted(item["name"] for item in target.items.values()) == sorted(f"animal {n}" for n in range(20))
    uuids = {str(uuid) for uuid in Object.objects.exclude(data__name="secret").values_list("uuid", flat=True)}
    assert {item["uuid"] for item in target.items.values()} == uuids
    assert set(SynchronizationContract.objects.filter(target_id__isnull=False).values_list("origin_id", flat=True)) \
        == uuids


def test_a_rerun_sends_nothing_and_a_changed_object_is_sent_again():
    with TargetApi() as target:
        sync = register_to(target, count=10)
        run(sync)
        calls = len(target.calls)

        again = run(sync)
        assert (again.unchanged, len(target.calls)) == (10, calls)

        changed = Object.objects.order_by("uuid").first()
        changed.data = {"name": "renamed"}
        register_object_save(obj=changed)
        third = run(sync)

    assert (third.updated, third.unchanged) == (1, 9), third.error_message
    assert [body["name"] for _, body in target.of("PUT")] == ["renamed"]


def test_deleting_a_register_object_deletes_it_at_the_target_on_the_next_run():
    with TargetApi() as target:
        sync = register_to(target, count=10)
        run(sync)
        gone = Object.objects.order_by("uuid").last()
        contract = SynchronizationContract.objects.get(origin_id=str(gone.uuid))

        register_objects_delete(objects=[gone])
        second = run(sync)

    assert (second.status, second.deleted) == ("succeeded", 1), second.error_message
    assert target.of("DELETE") == [(f"/items/{contract.target_id}", None)]
    assert len(target.items) == 9


def test_a_bad_page_size_is_refused_when_saved():
    with TargetApi() as target, pytest.raises(ConfigurationInvalid, match="sourceConfig.pageSize: must be a whole"):
        register_to(target, count=1, pageSize=0)
