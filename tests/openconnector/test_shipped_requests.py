"""The calls OpenConnector's shipped synchronizations make, before their mappings: each folder's source and
synchronization (its mappings and rules left out, so that it runs before Twig mappings and rules are in),
imported as OpenConnector exports them and run against the folder's fake, asks for exactly the details
OpenConnector asks for (expected/<folder>.json, derived from OpenConnector's PHP), with the same credentials,
keeps the objects OpenConnector's conditions keep, and enriches them as OpenConnector's
fetchExtraDataForObject does (regenerate_expected.py's rendering of it, run against the same fake).

test_shipped_configurations.py covers all of it, mapped objects and files included, once those are in.
"""
from __future__ import annotations

from collections import Counter
from urllib.parse import unquote

import pytest

from syncapp import runs as sync_runs
from syncapp.configuration import bundle_import
from syncapp.models import Object, Synchronization
from tests.loopback import Request
from tests.openconnector.fakes import FAKES
from tests.openconnector.regenerate_expected import (
    Calls,
    apply_config_dot,
    dot_get,
    encode_keys,
    extra_data,
    json_logic,
    objects_listed,
    truthy,
)
from tests.openconnector.shipped import FOLDERS, configurations_dir, documents, expected_of, folder_copied

pytestmark = [
    pytest.mark.usefixtures("transactional_db", "in_process_tasks"),
    pytest.mark.skipif(not configurations_dir().is_dir(), reason="OpenConnector's shipped configurations are absent"),
]


def asked(requests: list[Request]) -> Counter:
    return Counter((r.method, unquote(r.path), tuple(sorted(r.query.items())), r.header("Authorization"))
                   for r in requests)


def asked_expected(entries: list[dict], *, location: str) -> Counter:
    return Counter((e["method"], e["path"], tuple(sorted((k, str(v).replace("{location}", location))
                                                         for k, v in e["query"].items())),
                    e["headers"].get("Authorization")) for e in entries)


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_shipped_synchronization_asks_keeps_and_enriches_as_openconnector_does(
    folder, tmp_path
):
    with FAKES[folder]() as fake:
        # given the folder's source and synchronization as shipped, the source pointed at the fake
        copied = folder_copied(folder, into=tmp_path, location=fake.url)
        (source,) = documents(copied, "sources").values()
        (synchronization,) = documents(copied, "synchronizations").values()
        for key in ("sourceTargetMapping", "sourceHashMapping", "actions"):
            synchronization.pop(key, None)  # Twig mappings and rules: not what this test is about
        bundle_import({
            "sources": [{**source, "id": 1, "version": source.get("version") or "0.0.1"}],
            "registers": [{"reference": "1", "name": "Publications", "schemas": [
                {"reference": "1", "name": "Publication", "schema": {"type": "object"}}]}],
            "synchronizations": [{**synchronization, "sourceId": "1"}],
        })

        # when it runs
        run = sync_runs.run_start(synchronization=Synchronization.objects.get())
        made = list(fake.requests_of("data"))
        enriched = openconnector_enriched(fake, source=source, synchronization=synchronization)

    run.refresh_from_db()
    (expected,) = expected_of(folder)["synchronizations"].values()
    assert run.status == "succeeded", run.error_message
    # then it keeps what OpenConnector's conditions keep
    assert (run.found, run.filtered) == (expected["listed"], len(expected["filtered"]))
    # and asks for the details OpenConnector asks for, with the credentials OpenConnector sends
    listed = expected["requests"]["list"][0]["path"]
    details = [request for request in made if unquote(request.path) != listed]
    assert asked(details) == asked_expected(expected["requests"]["detail"], location=fake.url)
    # and each object kept is enriched as OpenConnector enriches it
    id_position = apply_config_dot(synchronization["sourceConfig"]).get("idPosition") or "id"
    stored = {str(dot_get(data, id_position)): data for data in Object.objects.values_list("data", flat=True)}
    assert stored == enriched


def openconnector_enriched(fake, *, source: dict, synchronization: dict) -> dict[str, dict]:
    """Return the objects OpenConnector keeps, enriched as its fetchExtraDataForObject enriches them, by origin id."""
    calls = Calls(fake, source)
    config = apply_config_dot(synchronization.get("sourceConfig"))
    kept = {}
    for obj in objects_listed(calls, config):
        conditions = synchronization.get("conditions") or []
        if conditions and not truthy(json_logic(conditions, encode_keys(obj))):
            continue
        extras = config.get("extraDataConfigs") or []
        for extra in extras.values() if isinstance(extras, dict) else extras:
            obj = {**obj, **extra_data(calls, config, extra, obj, None)}
        kept[str(dot_get(obj, config.get("idPosition") or "id"))] = obj
    return kept
