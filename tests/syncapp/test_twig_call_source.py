"""OpenConnector's callSource in Twig mappings: a run's mapping calls another source through the one HTTP
layer (its credentials, egress policy and request budget) and gets the answer's body as text."""
from __future__ import annotations

import pytest

from syncapp import runs as sync_runs
from syncapp.configuration import bundle_import
from syncapp.mapping import MappingError, MappingSpec, apply_mapping
from syncapp.models import Object, Synchronization
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

ANIMALS = [{"id": 1, "name": "Lion", "keeper": "k7"}, {"id": 2, "name": "Bear", "keeper": "k8"}]


def keepers(request: Request):
    keeper = request.path.rsplit("/", 1)[1]
    return 200, {}, {"id": keeper, "name": {"k7": "Maya", "k8": "Ravi"}[keeper], "token": request.query.get("key")}


def import_zoo(*, zoo_url: str, staff_url: str, template: str) -> Synchronization:
    bundle_import({
        "sources": [
            {"reference": "zoo-api", "name": "Zoo", "type": "api", "location": zoo_url},
            {"reference": "staff-api", "name": "Staff", "type": "api", "location": staff_url},
        ],
        "registers": [{"reference": "zoo", "name": "Zoo",
                       "schemas": [{"reference": "animal", "name": "Animal", "schema": {"type": "object"}}]}],
        "mappings": [{"reference": "animal-in", "language": "twig", "passThrough": True,
                      "mapping": {"keeperJson": template}, "cast": {"keeperJson": "jsonToArray"}}],
        "synchronizations": [{
            "reference": "animals", "name": "Animals", "sourceType": "api", "sourceId": "zoo-api",
            "sourceConfig": {"endpoint": "/animals", "resultsPosition": "_root", "pagination": {"type": "none"}},
            "sourceTargetMapping": "animal-in", "targetType": "register/schema", "targetId": "zoo/animal",
        }],
    })
    return Synchronization.objects.get(reference="animals")


def test_a_run_mapping_calls_another_source_and_uses_its_answer():
    zoo = LoopbackServer(lambda request: (200, {}, ANIMALS))
    staff = LoopbackServer(keepers)
    with zoo, staff:
        sync = import_zoo(
            zoo_url=zoo.url, staff_url=staff.url,
            template="{{ callSource('staff-api', '/keepers/' ~ keeper, 'GET', {'query': {'key': 'k'}}) }}",
        )

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    stored = {data["id"]: data for data in Object.objects.values_list("data", flat=True)}
    assert stored[1]["keeperJson"] == {"id": "k7", "name": "Maya", "token": "k"}
    assert sorted(request.path for request in staff.requests) == ["/keepers/k7", "/keepers/k8"]


def test_an_endpoint_that_holds_the_source_location_is_cut_after_it_as_openconnector_does():
    zoo = LoopbackServer(lambda request: (200, {}, ANIMALS[:1]))
    staff = LoopbackServer(keepers)
    with zoo, staff:
        sync = import_zoo(zoo_url=zoo.url, staff_url=staff.url,
                          template=f"{{{{ callSource('staff-api', '{staff.url}/keepers/k7') }}}}")

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert [request.path for request in staff.requests] == ["/keepers/k7"]


def test_outside_a_run_a_template_cannot_call_a_source():
    spec = MappingSpec(mapping={"x": "{{ callSource('staff-api', '/keepers/k7') }}"}, language="twig")

    with pytest.raises(MappingError, match="only in a run"):
        apply_mapping(spec=spec, data={})


def test_an_unknown_source_fails_the_object_naming_it():
    calls = []
    spec = MappingSpec(mapping={"x": "{{ callSource('nowhere', '/x') }}"}, language="twig")

    def call_source(**arguments):
        calls.append(arguments)
        from syncapp.outbound.calls import call_source_by_reference

        return call_source_by_reference(**arguments)

    with pytest.raises(MappingError, match="there is no source 'nowhere'"):
        apply_mapping(spec=spec, data={}, call_source=call_source)
    assert calls == [{"source_id": "nowhere", "endpoint": "/x", "method": "GET", "configuration": {}}]
