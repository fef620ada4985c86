"""Small helpers the tests share."""
from __future__ import annotations

import time

from contracts.models import SynchronizationRun
from syncapp.configuration import bundle_import
from syncapp.models import Object, Synchronization


def wait_for_run(run: SynchronizationRun, *, timeout: float = 90) -> SynchronizationRun:
    """Poll the database until the run has ended; fail loudly when it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status not in SynchronizationRun.ACTIVE_STATUSES:
            return run
        time.sleep(0.1)
    raise AssertionError(
        f"run {run.pk} still {run.status} after {timeout}s: counts {run.counts}, "
        f"{run.objects_done}/{run.objects_queued} object tasks done, fetch finished {run.fetch_finished}"
    )


def import_zoo(bundle: dict) -> Synchronization:
    """Import the zoo bundle and return its synchronization."""
    bundle_import(bundle)
    return Synchronization.objects.get(reference="animals")


def register_objects(synchronization: Synchronization) -> list[dict]:
    """Return the data of every object in the synchronization's target schema."""
    return list(Object.objects.filter(schema=synchronization.target_schema).values_list("data", flat=True))


def active_ids(records: list[dict]) -> set[str]:
    return {str(record["id"]) for record in records if record["status"] == "active"}
