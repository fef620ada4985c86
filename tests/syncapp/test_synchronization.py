"""The run pipeline in-process (the embedded default), against loopback sources of many shapes."""
from __future__ import annotations

import pytest
from django.db import connection

from contracts.models import ContractLog, SynchronizationContract
from syncapp import runs as sync_runs
from syncapp.models import Mapping, Object, Synchronization
from tests.conftest import zoo_bundle
from tests.helpers import active_ids, import_zoo, register_objects
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")


def configure(sync: Synchronization, **source_config) -> Synchronization:
    sync.source_config = source_config
    sync.save()
    return sync


def nested_pages(records: list[dict], *, size: int):
    """A page-number API with `{"data": {"items": [...]}, "meta": {...}}` and no next links."""

    def handler(request: Request):
        page = int(request.query.get("page", 1))
        items = records[(page - 1) * size: page * size]
        return 200, {}, {"data": {"items": items}, "meta": {"page": page}}

    return handler


@pytest.mark.parametrize("count", [100, 101])
def test_a_page_number_api_without_next_links_syncs_every_record_once(animals, count):
    records = (animals * 2)[:count]
    records = [{**record, "id": index + 1} for index, record in enumerate(records)]
    with LoopbackServer(nested_pages(records, size=20)) as server:
        sync = configure(
            import_zoo(zoo_bundle(location=server.url)), endpoint="/zoo", resultsPosition="data.items",
        )
        sync.conditions = {}
        sync.save()

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert run.created == count == Object.objects.count()
    # Pages until the first empty one: ceil(count / 20) pages of records, then one empty page.
    assert run.pages_fetched == -(-count // 20) + 1


def test_a_bare_list_that_ignores_paging_is_read_once_under_auto_pagination(animals):
    with LoopbackServer(lambda request: (200, {}, animals)) as server:
        sync = configure(import_zoo(zoo_bundle(location=server.url)), endpoint="/animals.json")

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert run.found == len(animals)
    assert run.created == len(active_ids(animals))
    assert len(server.requests) == 2  # the second page repeated the first: the source does not page


def test_explicit_page_pagination_on_a_source_that_ignores_it_fails_instead_of_looping(animals):
    with LoopbackServer(lambda request: (200, {}, animals[:10])) as server:
        sync = configure(
            import_zoo(zoo_bundle(location=server.url)), endpoint="/animals.json", pagination={"type": "page"},
        )

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert "repeats the page before it" in run.error_message
    assert len(server.requests) == 2


def test_max_pages_stops_the_run_as_partial(animals):
    records = [{**record, "id": index + 1} for index, record in enumerate(animals)]
    with LoopbackServer(nested_pages(records, size=10)) as server:
        sync = configure(
            import_zoo(zoo_bundle(location=server.url)),
            endpoint="/zoo", resultsPosition="data.items", maxPages=3,
        )

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "partial"
    assert run.pages_fetched == 3
    assert "maxPages" in run.error_message
    assert run.found == 30


def test_a_body_without_a_list_fails_the_run_naming_the_url_and_keeps_what_was_stored(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    sync_runs.run_start(synchronization=sync)
    stored = Object.objects.count()
    with LoopbackServer(lambda request: (200, {}, {"message": "maintenance"})) as server:
        sync.source.location = server.url
        sync.source.save()
        configure(sync, endpoint="/animals")

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert f"{server.url}/animals" in run.error_message
    assert "no list of objects" in run.error_message
    assert Object.objects.count() == stored


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (500, {}, {"error": "boom"}, "answered 500"),
        (200, {"Content-Type": "text/html"}, "<html>oops</html>", "text/html, not JSON"),
        (200, {"Content-Type": "application/json"}, "", "empty body"),
        (404, {"Content-Type": "application/json"}, {"detail": "Not found."}, "answered 404"),
    ],
)
def test_a_source_answering_garbage_fails_the_run_with_a_clear_error(animals, status, headers, body, expected):
    with LoopbackServer(lambda request: (status, headers, body)) as server:
        sync = configure(import_zoo(zoo_bundle(location=server.url)), endpoint="/animals")

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert expected in run.error_message
    assert server.url in run.error_message


def test_objects_without_an_origin_id_or_that_are_not_objects_are_invalid_and_the_rest_written(animals):
    body = [{"name": "no id", "status": "active"}, "just text", *animals[:5]]
    with LoopbackServer(lambda request: (200, {}, body)) as server:
        sync = configure(
            import_zoo(zoo_bundle(location=server.url)), endpoint="/x", resultsPosition="_root",
            pagination={"type": "none"},
        )

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "partial"
    assert run.invalid == 2
    assert run.created == len(active_ids(animals[:5]))
    errors = sorted(ContractLog.objects.filter(run=run, status="invalid").values_list("error", flat=True))
    assert errors == ["item 0 has no origin id at 'id'", "item 1 is a str, not an object"]


def test_an_origin_id_twice_on_one_page_is_written_once(animals):
    first = {**animals[0], "status": "active"}
    body = [first, {**first, "name": "Twin"}]
    with LoopbackServer(lambda request: (200, {}, body)) as server:
        sync = configure(
            import_zoo(zoo_bundle(location=server.url)), endpoint="/x", pagination={"type": "none"},
        )

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.created, run.invalid) == (1, 1)
    assert SynchronizationContract.objects.count() == Object.objects.count() == 1
    assert register_objects(sync)[0]["name"] == first["name"]


def test_a_mapping_error_makes_that_object_invalid_naming_the_key(animals):
    body = [{**animal, "status": "active"} for animal in animals[:3]]
    body[1]["legs"] = "many"
    with LoopbackServer(lambda request: (200, {}, body)) as server:
        sync = configure(
            import_zoo(zoo_bundle(location=server.url)), endpoint="/x", pagination={"type": "none"},
        )

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.status, run.created, run.invalid) == ("partial", 2, 1)
    contract = SynchronizationContract.objects.get(origin_id=str(body[1]["id"]))
    assert contract.last_error.startswith("legs:")
    assert contract.status == "invalid"


def test_an_invalid_object_fixed_at_the_source_is_written_on_the_next_run(animals):
    body = [{**animals[0], "status": "active", "legs": "many"}]
    with LoopbackServer(lambda request: (200, {}, body)) as server:
        sync = configure(
            import_zoo(zoo_bundle(location=server.url)), endpoint="/x", pagination={"type": "none"},
        )
        sync_runs.run_start(synchronization=sync)
        body[0]["legs"] = 4

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.status, run.created, run.invalid) == ("succeeded", 1, 0)
    assert SynchronizationContract.objects.get().status == "synced"


def test_a_changed_mapping_updates_every_object_whose_result_changed_without_forcing(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    sync_runs.run_start(synchronization=sync)
    mapping = Mapping.objects.get(reference="animal-in")
    mapping.mapping = {**mapping.mapping, "label": "{{ name | upper }}"}
    mapping.save()

    run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.updated == len(active_ids(animals))
    assert all(obj["label"] == obj["name"].upper() for obj in register_objects(sync))


def test_a_run_of_a_synchronization_with_a_test_run_active_is_not_refused(sample_source):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    sync_runs.run_test(synchronization=sync)

    run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded"


def test_a_changed_mapping_rewrites_only_the_objects_whose_result_changed(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    sync_runs.run_start(synchronization=sync)
    species = next(a["species"] for a in animals if a["status"] == "active")
    affected = [a for a in animals if a["status"] == "active" and a["species"] == species]
    mapping = Mapping.objects.get(reference="animal-in")
    mapping.mapping = {
        **mapping.mapping,
        "label": "{{ name }} the {{ species | lower | replace('" + species.lower() + "', 'star') }}",
    }
    mapping.save()

    run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.updated, run.unchanged) == (len(affected), len(active_ids(animals)) - len(affected))
    assert sum(obj["label"].endswith("the star") for obj in register_objects(sync)) == len(affected)


def test_a_source_hash_mapping_ignores_fields_that_change_on_every_request(sample_source, animals):
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    sync.source_hash_mapping = Mapping.objects.create(
        reference="animal-hash", mapping={}, unset=["updatedAt"], pass_through=True
    )
    sync.save()
    sync_runs.run_start(synchronization=sync)
    active = [a for a in animals if a["status"] == "active"]
    sample_source.update_record(active[0]["id"], updatedAt="2030-01-01T00:00:00Z")
    sample_source.update_record(active[1]["id"], name="Changed")

    run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.updated, run.unchanged) == (1, len(active) - 1)
    assert ContractLog.objects.get(run=run).origin_id == str(active[1]["id"])


def test_a_mapping_nested_with_map_each_is_read_once_per_run_not_once_per_object(animals):
    body = [{**animal, "status": "active", "feeding": [{"food": "fish"}, {"food": "hay"}]} for animal in animals[:30]]
    Mapping.objects.create(reference="meal", mapping={"what": "food"})
    mapping_reads: list[str] = []

    def count_mapping_reads(execute, sql, params, many, context):
        if sql.startswith("SELECT") and f'FROM "{Mapping._meta.db_table}"' in sql and "meal" in (params or ()):
            mapping_reads.append(sql)
        return execute(sql, params, many, context)

    with LoopbackServer(lambda request: (200, {}, body)) as server:
        sync = configure(
            import_zoo(zoo_bundle(location=server.url)), endpoint="/x", pagination={"type": "none"},
        )
        mapping = sync.source_target_mapping
        mapping.mapping = {**mapping.mapping, "meals": "{{ feeding | map_each('meal') }}"}
        mapping.save()

        with connection.execute_wrapper(count_mapping_reads):
            run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.status, run.created) == ("succeeded", 30)
    assert all(obj["meals"] == [{"what": "fish"}, {"what": "hay"}] for obj in register_objects(sync))
    assert len(mapping_reads) == 1
