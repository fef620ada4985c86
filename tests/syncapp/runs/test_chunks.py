"""Chunks of planned writes: bulk writes in one transaction, each object with its own outcome.

The page is planned with its chunk task held in a queue nobody reads, so each test writes the chunk
itself, once or more, and looks at what happened in between.
"""
from __future__ import annotations

import contextlib

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction

from config.celery import app as celery_app
from contracts.models import ContractLog, RunChunk, SynchronizationContract, SynchronizationRun
from syncapp import runs as sync_runs
from syncapp.models import Object, OutboxChange, Schema
from syncapp.runs import chunks, pages
from syncapp.sample_source import generate_animals
from syncapp.targets.base import ONE_BY_ONE
from tests.conftest import TEST_QUEUE, _worker_database_url, purge_queue, zoo_bundle
from tests.helpers import import_zoo
from tests.loopback import LoopbackServer

HELD_QUEUE = f"{TEST_QUEUE}-held"


@pytest.fixture
def held_tasks(transactional_db):
    """Send this test's tasks to a queue no worker reads; the test runs what it wants itself."""
    if settings.TASKS_IN_PROCESS or connection.vendor != "postgresql":
        pytest.fail("these tests need PostgreSQL and a broker: run the suite with scripts/test.sh")
    purge_queue(HELD_QUEUE)
    celery_app.conf.task_default_queue = HELD_QUEUE
    try:
        yield
    finally:
        purge_queue(HELD_QUEUE)
        celery_app.conf.task_default_queue = TEST_QUEUE


@contextlib.contextmanager
def sql(setup: str, teardown: str):
    with connection.cursor() as cursor:
        cursor.execute(setup)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(teardown)


def animals(*names: str) -> list[dict]:
    return [{**animal, "id": number, "name": name, "status": "active"}
            for number, (name, animal) in enumerate(zip(names, generate_animals(count=len(names)), strict=True), 1)]


@contextlib.contextmanager
def planned_run(records: list[dict]):
    """Start a run of a one-page source and plan its page; yield the run and its one chunk."""
    with LoopbackServer(lambda request: (200, {}, records)) as server:
        sync = import_zoo(zoo_bundle(location=server.url))
        sync.source_config = {"endpoint": "/a", "resultsPosition": "_root", "pagination": {"type": "none"}}
        sync.save()
        run = sync_runs.run_start(synchronization=sync)
        pages.page_process(run_id=run.pk, page_number=1)
        yield run, RunChunk.objects.get(run=run)


def contract(origin_id: str) -> SynchronizationContract:
    return SynchronizationContract.objects.get(origin_id=origin_id)


def test_a_chunk_with_an_invalid_and_a_constraint_violating_object_writes_the_rest_and_records_both(held_tasks):
    records = animals("Amara", "Bongo", "Maximilian", "Forbidden", "Chandra")
    constraint = sql(
        "ALTER TABLE syncapp_object ADD CONSTRAINT test_no_forbidden CHECK ((data->>'name') <> 'Forbidden')",
        "ALTER TABLE syncapp_object DROP CONSTRAINT test_no_forbidden",
    )
    with planned_run(records) as (run, chunk), constraint:
        # Given the schema tightened after the page was planned, and a constraint the database keeps
        schema = Schema.objects.get(reference="animal")
        schema.schema["properties"]["name"]["maxLength"] = 9
        schema.save()

        # When the chunk is written
        chunks.chunk_process(run_id=run.pk, chunk_id=chunk.pk)

    # Then the other three are written, and each of the two has its own outcome, error and log
    assert sorted(Object.objects.values_list("data__name", flat=True)) == ["Amara", "Bongo", "Chandra"]
    invalid, failed = contract("3"), contract("4")
    assert (invalid.status, invalid.target_id) == ("invalid", None)
    assert "name" in invalid.last_error and "zoo/animal" in invalid.last_error
    assert (failed.status, failed.target_id) == ("failed", None)
    assert "IntegrityError" in failed.last_error and "test_no_forbidden" in failed.last_error
    logs = {log.origin_id: log for log in ContractLog.objects.filter(run=run)}
    assert (logs["3"].status, logs["3"].error) == ("invalid", invalid.last_error)
    assert (logs["4"].status, logs["4"].error) == ("failed", failed.last_error)
    assert logs["4"].source_object["name"] == "Forbidden" and logs["1"].action == "create"
    run.refresh_from_db()
    assert (run.status, run.created, run.invalid, run.failed) == ("partial", 3, 1, 1)


FORBIDDEN = (
    "ALTER TABLE syncapp_object ADD CONSTRAINT test_no_forbidden CHECK ((data->>'name') <> 'Forbidden')",
    "ALTER TABLE syncapp_object DROP CONSTRAINT test_no_forbidden",
)


def test_a_chunk_taken_by_another_task_between_its_failed_bulk_write_and_its_retry_writes_nothing_twice(
    held_tasks, monkeypatch
):
    # Given a chunk whose bulk write a constraint spoils, so that its transaction rolls back and it is
    # taken again to be written object by object; and a redelivered task that takes it first, then
    take = chunks._chunk_take_and_write
    redelivered = []

    def another_task_first(**kwargs):
        if kwargs["bulk"] == ONE_BY_ONE and not redelivered:
            redelivered.append(take(**kwargs))
        return take(**kwargs)

    monkeypatch.setattr(chunks, "_chunk_take_and_write", another_task_first)
    with planned_run(animals("Amara", "Forbidden", "Bongo")) as (run, chunk), sql(*FORBIDDEN):
        # When the chunk is written
        chunks.chunk_process(run_id=run.pk, chunk_id=chunk.pk)

    # Then the other task wrote it, the retry found it done, and each object has one outcome and one log
    assert redelivered
    assert sorted(Object.objects.values_list("data__name", flat=True)) == ["Amara", "Bongo"]
    assert OutboxChange.objects.count() == 2  # one row an object written one by one, none of the rolled back bulk
    assert ContractLog.objects.filter(run=run).count() == 3
    run.refresh_from_db()
    assert (run.status, run.created, run.failed, run.objects_done) == ("partial", 2, 1, 3)


def test_a_chunks_claim_locks_the_contracts_of_its_objects_until_its_transaction_ends(held_tasks):
    with planned_run(animals("Amara", "Bongo")) as (run, chunk):
        ids = list(SynchronizationContract.objects.values_list("pk", flat=True))
        with psycopg.connect(_worker_database_url()) as other:
            # Given the chunk taken in a transaction still open
            with transaction.atomic():
                claimed = chunks.chunk_claim(run_id=run.pk, chunk_id=chunk.pk)

                # Then its contracts come with it, and no other transaction can lock them
                assert claimed is not None and sorted(claimed.contracts) == sorted(ids)
                for pk in ids:
                    with pytest.raises(psycopg.errors.LockNotAvailable):
                        other.execute(f"SELECT 1 FROM {SynchronizationContract._meta.db_table} "
                                      "WHERE id = %s FOR UPDATE NOWAIT", [pk])
                    other.rollback()
                transaction.set_rollback(True)

            # And once it ended, they can
            assert len(other.execute(f"SELECT 1 FROM {SynchronizationContract._meta.db_table} "
                                     "WHERE id = ANY(%s) FOR UPDATE NOWAIT", [ids]).fetchall()) == 2


def test_a_redelivered_chunk_writes_nothing_twice(held_tasks):
    with planned_run(animals("Amara", "Bongo", "Chandra")) as (run, chunk):
        chunks.chunk_process(run_id=run.pk, chunk_id=chunk.pk)
        written = {str(obj.pk): obj.updated_at for obj in Object.objects.all()}

        chunks.chunk_process(run_id=run.pk, chunk_id=chunk.pk)
        chunks.chunk_fail(run_id=run.pk, chunk_id=chunk.pk, message="a late failure report")

    run.refresh_from_db()
    assert {str(obj.pk): obj.updated_at for obj in Object.objects.all()} == written
    assert (run.status, run.created, run.failed, run.objects_done) == ("succeeded", 3, 0, 3)
    assert ContractLog.objects.filter(run=run).count() == 3


FLAKY = """
CREATE SEQUENCE test_flaky_seq;
CREATE FUNCTION test_flaky() RETURNS trigger AS $$
BEGIN
  IF NEW.data->>'name' = 'Flaky' AND nextval('test_flaky_seq') <= {failures} THEN
    RAISE EXCEPTION 'deadlock detected (a test trigger)' USING ERRCODE = '40P01';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER test_flaky BEFORE INSERT ON syncapp_object FOR EACH ROW EXECUTE FUNCTION test_flaky();
"""
FLAKY_TEARDOWN = """
DROP TRIGGER test_flaky ON syncapp_object; DROP FUNCTION test_flaky(); DROP SEQUENCE test_flaky_seq;
"""


def test_a_transient_failure_of_one_object_retries_that_object_alone(held_tasks):
    # Given a database that refuses one object twice, as a deadlock would: once in the bulk insert,
    # once when the chunk writes its objects one by one to find the one that spoils it
    with planned_run(animals("Amara", "Flaky", "Bongo", "Chandra")) as (run, chunk), sql(
        FLAKY.format(failures=2), FLAKY_TEARDOWN
    ):
        # When the chunk is written
        chunks.chunk_process(run_id=run.pk, chunk_id=chunk.pk)

        # Then the others are written at once, and the flaky one waits in a chunk of its own
        assert sorted(Object.objects.values_list("data__name", flat=True)) == ["Amara", "Bongo", "Chandra"]
        [retry] = RunChunk.objects.filter(run=run, status="queued")
        assert (retry.size, retry.attempt) == (1, 1)
        assert contract("2").target_id is None
        run.refresh_from_db()
        assert (run.status, run.objects_done, run.objects_queued, run.retries) == ("running", 3, 4, 1)

        # And its retry writes it
        chunks.chunk_process(run_id=run.pk, chunk_id=retry.pk)

    run.refresh_from_db()
    assert (run.status, run.created, run.failed, run.objects_done) == ("succeeded", 4, 0, 4)
    assert Object.objects.get(pk=contract("2").target_id).data["name"] == "Flaky"
    assert ContractLog.objects.filter(run=run, origin_id="2").count() == 1


def test_an_object_that_keeps_failing_for_a_passing_reason_ends_failed_after_its_attempts(held_tasks):
    with planned_run(animals("Amara", "Flaky")) as (run, chunk), sql(FLAKY.format(failures=1000), FLAKY_TEARDOWN):
        chunks.chunk_process(run_id=run.pk, chunk_id=chunk.pk)
        for _ in range(chunks.OBJECT_ATTEMPTS):
            for retry in RunChunk.objects.filter(run=run, status="queued"):
                chunks.chunk_process(run_id=run.pk, chunk_id=retry.pk)

    run.refresh_from_db()
    assert (run.status, run.created, run.failed, run.retries) == ("partial", 1, 1, chunks.OBJECT_ATTEMPTS - 1)
    flaky = contract("2")
    assert flaky.status == "failed" and f"after {chunks.OBJECT_ATTEMPTS} attempts" in flaky.last_error


def test_a_chunk_whose_task_fails_for_good_counts_its_objects_failed_so_the_run_ends(held_tasks):
    with planned_run(animals("Amara", "Bongo")) as (run, chunk):
        chunks.chunk_fail(run_id=run.pk, chunk_id=chunk.pk, message="RuntimeError: the worker gave up")

    run.refresh_from_db()
    assert (run.status, run.failed, run.objects_done) == ("partial", 2, 2)
    assert set(SynchronizationContract.objects.values_list("status", flat=True)) == {"failed"}
    assert SynchronizationRun.objects.get(pk=run.pk).status == "partial"


def test_a_nul_character_the_database_cannot_store_fails_that_object_and_its_log_keeps_it_readable(held_tasks):
    with planned_run(animals("Amara", "Bo\x00ngo", "Chandra")) as (run, chunk):
        chunks.chunk_process(run_id=run.pk, chunk_id=chunk.pk)

    run.refresh_from_db()
    assert (run.status, run.created, run.failed) == ("partial", 2, 1)
    log = ContractLog.objects.get(run=run, origin_id="2")
    assert log.status == "failed" and log.source_object["name"] == "Bo\ufffdngo"
