"""Small helpers the tests share."""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.utils import timezone

from contracts.models import RunChunk, RunPage, SynchronizationRun
from syncapp import pushes
from syncapp import runs as sync_runs
from syncapp.authentication import credentials_bind
from syncapp.configuration import bundle_import
from syncapp.models import Object, Source, Synchronization
from syncapp.runner import runs_queued_take
from syncapp.runs.resend import runs_resend_stalled
from syncapp.sample_source import generate_animals


def run(synchronization: Synchronization, **options) -> SynchronizationRun:
    """Start a run (in this process, with tasks in process) and return it as the database holds it now."""
    started = sync_runs.run_start(synchronization=synchronization, **options)
    started.refresh_from_db()
    return started


def runner_take() -> list[int]:
    """Do what the runner (`sync serve`) does with the runs the web queued for it: take and run them here."""
    return runs_queued_take()


def records(count: int, *, seed: int) -> list[dict]:
    """Return `count` active animals numbered 1, 2, ... (ids a page-number source can serve in order)."""
    return [{**animal, "id": number, "status": "active"}
            for number, animal in enumerate(generate_animals(count=count, seed=seed), start=1)]


def wait_for_run(run: SynchronizationRun, *, timeout: float = 90, resend_every: float = 0) -> SynchronizationRun:
    """Poll the database until the run has ended; fail loudly when it does not.

    `resend_every`: send the work of the run again when it made no progress for that long, as beat's
    resend sweep does in production (a worker killed between its commit and sending the next task loses
    that message: only the sweep sends it again).
    """
    deadline = time.monotonic() + timeout
    next_sweep = time.monotonic() + resend_every
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status not in SynchronizationRun.ACTIVE_STATUSES:
            return run
        if resend_every and time.monotonic() >= next_sweep:
            runs_resend_stalled(resend_after=resend_every)
            next_sweep = time.monotonic() + resend_every
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


def staff(*codenames: str, username: str = "editor") -> User:
    """Return a staff user with these permissions (app_label.codename)."""
    user = User.objects.create_user(username=username, password="pw", is_staff=True)
    for name in codenames:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return User.objects.get(pk=user.pk)  # fresh: no cached permissions


def mirrored_schemas(*schemas: str) -> list:
    """Import register schemas pushed round in a cycle (a → b → a for two, a → b → c → a for three), each
    synchronization named "<from>-to-<to>" and deleting what vanished whatever its share, and return the
    schemas in order."""
    from syncapp.models import Schema

    bundle_import({
        "registers": [{"reference": "zoo", "schemas": [
            {"reference": name, "schema": {"type": "object"}} for name in schemas
        ]}],
        "synchronizations": [
            {"reference": f"{source}-to-{target}", "sourceType": "register/schema", "sourceId": f"zoo/{source}",
             "sourceConfig": {"deleteSafetyLimit": "100%"},
             "targetType": "register/schema", "targetId": f"zoo/{target}"}
            for source, target in zip(schemas, [*schemas[1:], schemas[0]], strict=True)
        ],
    })
    return [Schema.objects.get(reference=name) for name in schemas]


@contextlib.contextmanager
def drain_held(*, schema_id: int) -> Iterator[None]:
    """Run a drain of the schema's outbox in a thread of its own, held at its first push while the block
    runs (it holds the schema, as a drain does); the drain goes on when the block ends, and is waited for.

    A row of the schema must be in the outbox already, for the drain to have something to push.
    """
    if connection.vendor != "postgresql":
        pytest.fail("a drain held in another thread needs PostgreSQL's row locks: run the suite with scripts/test.sh")
    holding, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    original = pushes.changes_push_rows

    def held(**kwargs) -> None:
        if not holding.is_set():
            holding.set()
            release.wait()
        original(**kwargs)

    def drain() -> None:
        try:
            pushes.changes_drain(schema_id=schema_id)
        except BaseException as error:  # noqa: BLE001 - reported by the test's own thread
            failures.append(error)
        finally:
            holding.set()
            connection.close()

    pushes.changes_push_rows = held
    thread = threading.Thread(target=drain, name="held-drain")
    try:
        thread.start()
        holding.wait()
        assert not failures, failures
        yield
    finally:
        release.set()
        thread.join()
        pushes.changes_push_rows = original
    assert not failures, failures


def pushes_cut_after(monkeypatch, *, limit: int) -> list[int]:
    """Cut pushes after `limit` starts, so that a cycle of pushes fails its test instead of running for
    ever; return the synchronizations started, in order."""
    started: list[int] = []
    original = pushes.push_start

    def counted(**kwargs):
        started.append(kwargs["synchronization_id"])
        if len(started) > limit:
            raise RuntimeError(f"more than {limit} pushes: a cycle of pushes that does not stop")
        return original(**kwargs)

    monkeypatch.setattr(pushes, "push_start", counted)
    return started


def credentials_set(source: Source, credentials: dict) -> None:
    """Give a source credentials as a user allowed to change them does: bound to its location's origin, saved."""
    source.credentials = credentials
    credentials_bind(source)
    source.save()


def deferred_work_make_due(run: SynchronizationRun) -> None:
    """Let the time pass that the run's deferred pages and objects wait for: their due time, the run's record
    of it and the rate limit the sources stored all move into the past."""
    past = timezone.now() - timedelta(seconds=1)
    Source.objects.filter(rate_limit_reset__gt=past).update(rate_limit_reset=past)
    RunPage.objects.filter(run=run, not_before__isnull=False).update(not_before=past)
    RunChunk.objects.filter(run=run, not_before__isnull=False).update(not_before=past)
    SynchronizationRun.objects.filter(pk=run.pk, deferred_until__isnull=False).update(deferred_until=past)


@contextlib.contextmanager
def no_sleep_longer_than(seconds: float) -> Iterator[None]:
    """Fail any sleep of this process longer than `seconds`: a long wait must be deferred, not slept on."""
    real = time.sleep

    def sleep(wanted: float) -> None:
        if wanted > seconds:
            raise AssertionError(f"slept {wanted:g} s, longer than {seconds:g} s")
        real(wanted)

    time.sleep = sleep
    try:
        yield
    finally:
        time.sleep = real


def closed_port() -> int:
    """Return a port of this machine that nothing listens on (a store that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
