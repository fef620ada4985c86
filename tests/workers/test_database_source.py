"""A database source on the real stack: a Celery worker process reads the table's pages and writes
its chunks, each task with its own connection to the source database."""
from __future__ import annotations

import pytest

from contracts.models import SynchronizationContract
from syncapp import runs as sync_runs
from syncapp.models import Object
from tests.databases import database_sync, pg, pg_items, source_database
from tests.helpers import wait_for_run

pytestmark = pytest.mark.worker


def test_a_worker_syncs_a_postgresql_table_and_then_only_its_changes(worker):
    with source_database() as location:
        pg_items(location, count=1200)
        sync = database_sync(location, table="items", pageSize=100)  # keyed on its primary key, looked up

        first = wait_for_run(sync_runs.run_start(synchronization=sync), timeout=300)
        with pg(location) as connection:
            connection.execute("UPDATE items SET name = 'renamed' WHERE id = 42")
            connection.execute("DELETE FROM items WHERE id = 1199")
        second = wait_for_run(sync_runs.run_start(synchronization=sync), timeout=300)

    assert (first.status, first.created, first.pages_fetched) == ("succeeded", 1200, 12), first.error_message
    assert (second.status, second.updated, second.deleted, second.unchanged) == ("succeeded", 1, 1, 1198), \
        second.error_message
    renamed = SynchronizationContract.objects.get(synchronization=sync, origin_id="42")
    assert Object.objects.get(uuid=renamed.target_id).data["name"] == "renamed"
    assert Object.objects.count() == 1199
