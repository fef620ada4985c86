"""The runner of the embedded default (`manage.py sync serve`): the queued runs, run in this process, and
the schedule tick, beside the web server.

With tasks in process a run asked for from the web (admin "Run now", the API) or by a schedule is only
recorded, queued with no owner (workers.dispatch.for_the_runner): the runner takes it from the database
and runs it here. A web process that restarts loses nothing, and a run whose runner ended is queued again
for the next one (contracts.runs.runs_fail_stale). With a broker, Celery's workers and beat do all this.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from django import db
from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from contracts import runs
from contracts.models import SynchronizationRun
from syncapp import pushes, schedules
from syncapp.models import SchedulerHeartbeat
from syncapp.runs.deferred import run_work_send, runs_send_came_due
from syncapp.runs.finish import run_close_if_complete
from syncapp.runs.recover import runs_recover
from syncapp.structured_logs import work_context
from workers import dispatch

logger = logging.getLogger(__name__)

# How often the runner looks for queued runs (one query); a run its own tick queued wakes it at once.
TAKE_INTERVAL_SECONDS = 1.0
# How often old contract logs and runs are purged, as beat does.
PURGE_INTERVAL_SECONDS = 3600.0


def runner_tick(*, now: datetime | None = None, purge: bool = False) -> list[SynchronizationRun]:
    """Do what Celery beat does, once: record the tick, start the schedules that came due, push the
    register changes left in the outbox, send the deferred work that came due, fail lost runs (or queue a
    dead runner's runs again) and, with `purge`, delete logs past their retention. Return the runs the
    schedules started (with tasks in process, queued for the runner)."""
    schedules.scheduler_tick_record(kind=SchedulerHeartbeat.Kind.SERVE, now=now)
    with dispatch.for_the_runner():
        started = schedules.schedules_start_due(now=now)
        pushes.changes_drain_left()
        runs_send_came_due()
        runs_recover()
    if purge:
        runs.logs_purge()
    return started


def runs_queued_take() -> list[int]:
    """Take the runs queued for a runner (active, no owner) and run them in this thread, one after another;
    return their ids.

    A run is taken by one runner only (its owner set where it is still empty). A run queued again after its
    runner ended goes on where it stopped: it is running again, and its open pages and queued chunks are
    sent (a page done or a chunk written is not done twice); a run with nothing left open is closed.
    With a broker, runs without an owner are the workers': nothing is taken.
    """
    if not settings.TASKS_IN_PROCESS:
        return []
    taken = []
    queued = SynchronizationRun.objects.filter(
        status__in=SynchronizationRun.ACTIVE_STATUSES, waiting=False, is_test=False, owner=""
    ).order_by("created_at", "pk")
    for run_id in list(queued.values_list("pk", flat=True)):
        with work_context(run=run_id):
            if run_take(run_id=run_id):
                taken.append(run_id)
    return taken


def run_take(*, run_id: int) -> bool:
    """Take one queued run, unless another runner did, and run its open work here; return whether taken."""
    now = timezone.now()
    with transaction.atomic():
        claimed = SynchronizationRun.objects.filter(
            pk=run_id, owner="", waiting=False, status__in=SynchronizationRun.ACTIVE_STATUSES
        ).update(
            owner=runs.process_identity(), heartbeat_at=now,
            # A run that had started goes on running; its first page marks a new one running.
            status=Case(When(started_at__isnull=False, then=Value(SynchronizationRun.Status.RUNNING)),
                        default=F("status")),
        )
        if not claimed:
            return False  # another runner took it
        logger.info("run %s taken by the runner", run_id)
        # Sent once this transaction commits, and run here: the in-process queue is drained by this call.
        pages, chunks = run_work_send(run_id=run_id, now=now)
    if not pages and not chunks:
        run_close_if_complete(run_id=run_id)
    return True


def runner_release() -> list[int]:
    """Queue the active runs of this process again for the next runner (a runner that stops); return their ids."""
    me = runs.process_identity()
    owned = SynchronizationRun.objects.filter(
        owner=me, status__in=SynchronizationRun.ACTIVE_STATUSES
    ).values_list("pk", flat=True)
    return [run_id for run_id in owned
            if runs.run_hand_back(run_id=run_id, owner=me, reason="its runner stopped; queued for the next runner")]


class Runner:
    """The runner's two threads: one runs the queued runs, one ticks every `tick_seconds`."""

    def __init__(self, *, tick_seconds: float) -> None:
        self.tick_seconds = tick_seconds
        self.purged_at: float | None = None
        self.stopping = threading.Event()
        self.work_queued = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, args=(self._take, self.work_queued, TAKE_INTERVAL_SECONDS),
                             name="sync-runner", daemon=True),
            threading.Thread(target=self._loop, args=(self._tick, self.stopping, tick_seconds),
                             name="sync-tick", daemon=True),
        ]

    def start(self) -> None:
        # Known as a runner before it takes a run: a run it owned is then queued again, not failed, if it dies.
        schedules.scheduler_tick_record(kind=SchedulerHeartbeat.Kind.SERVE)
        for thread in self.threads:
            thread.start()

    def stop(self) -> list[int]:
        """Stop taking runs and ticking; queue the runs of this process again; return their ids."""
        self.stopping.set()
        self.work_queued.set()
        return runner_release()

    def _take(self) -> None:
        runs_queued_take()

    def _tick(self) -> None:
        purge = self.purged_at is None or time.monotonic() - self.purged_at >= PURGE_INTERVAL_SECONDS
        if runner_tick(purge=purge):
            self.work_queued.set()
        if purge:
            self.purged_at = time.monotonic()

    def _loop(self, step: Callable[[], None], wake: threading.Event, interval: float) -> None:
        while not self.stopping.is_set():
            try:
                step()
            except Exception:
                # A database that went away a moment: logged, and tried again at the next turn.
                logger.exception("%s failed", threading.current_thread().name)
            finally:
                db.connections.close_all()  # this thread's own connections
            wake.wait(interval)
            if wake is self.work_queued:
                wake.clear()
