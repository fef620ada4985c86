"""The end of a run: statistics refreshed after a run that changed many contracts."""
from __future__ import annotations

import pytest
from django.db import connection

from syncapp import runs as sync_runs
from syncapp.runs import finish
from tests.conftest import zoo_bundle
from tests.helpers import import_zoo

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")


def last_analyze() -> object:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'contracts_synchronizationcontract'"
        )
        return cursor.fetchone()[0]


def test_a_run_that_created_many_contracts_refreshes_the_planners_statistics(sample_source, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL: run the suite with scripts/test.sh")
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    monkeypatch.setattr(finish, "STATISTICS_CHANGED_ROWS", 10**9)
    sync_runs.run_start(synchronization=sync)
    before = last_analyze()

    monkeypatch.setattr(finish, "STATISTICS_CHANGED_ROWS", 1)
    sync.contracts.all().delete()
    run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.created > 1
    after = last_analyze()
    assert after is not None and (before is None or after > before)
