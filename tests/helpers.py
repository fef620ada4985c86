"""Small helpers the tests share."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db import connection

from contracts.models import SynchronizationRun
from syncapp import runs as sync_runs
from syncapp.authentication import credentials_bind
from syncapp.configuration import bundle_import
from syncapp.models import Object, Source, Synchronization
from syncapp.sample_source import generate_animals


def run(synchronization: Synchronization, **options) -> SynchronizationRun:
    """Start a run (in this process, with tasks in process) and return it as the database holds it now."""
    started = sync_runs.run_start(synchronization=synchronization, **options)
    started.refresh_from_db()
    return started


def records(count: int, *, seed: int) -> list[dict]:
    """Return `count` active animals numbered 1, 2, ... (ids a page-number source can serve in order)."""
    return [{**animal, "id": number, "status": "active"}
            for number, animal in enumerate(generate_animals(count=count, seed=seed), start=1)]


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


def call_at_once(action: Callable[[], None], *, times: int = 2) -> None:
    """Call `action` in `times` threads released together, each on its own database connection; wait for all."""
    barrier = threading.Barrier(times)

    def call() -> None:
        barrier.wait()
        try:
            action()
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def credentials_set(source: Source, credentials: dict) -> None:
    """Give a source credentials as a user allowed to change them does: bound to its location's origin, saved."""
    source.credentials = credentials
    credentials_bind(source)
    source.save()
