"""Send the run's tasks: after the current transaction commits, to Celery or in this process.

Services call the named functions here and never import workers.tasks: a task is sent by name, so
the run steps and the tasks that call them do not import each other.

With no broker configured (the embedded default) tasks run in this process, one after another
from a queue drained by the outermost caller, so a run of a thousand pages does not recurse a
thousand frames deep. A task sent with a countdown waits its turn in that queue until it is due.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime
from threading import Timer
from typing import Any

from django import db
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from config.celery import app

logger = logging.getLogger(__name__)
_local = threading.local()

SYNC_PAGE = "workers.tasks.sync_page"
SYNC_CHUNK = "workers.tasks.sync_chunk"
SYNC_FOLLOW_UPS = "workers.tasks.sync_follow_ups"
SYNC_PUSH = "workers.tasks.sync_push"
SYNC_WRITE_BACK = "workers.tasks.sync_write_back"
SYNC_OUTBOX = "workers.tasks.sync_outbox"
SEND_DEFERRED = "workers.tasks.send_deferred_work"


# Transient errors of a task run in process (SQLite locked past its busy timeout, a dropped database
# connection) run it again later, as a worker's autoretry does: this many attempts in all, the waits
# between them doubling up to the maximum. The task is told which attempt is its last
# (`in_process_last_attempt`), so it records its failure then rather than leaving its work undone.
IN_PROCESS_ATTEMPTS = 8
IN_PROCESS_BACKOFF_SECONDS = 0.5
IN_PROCESS_BACKOFF_MAX_SECONDS = 30.0


def _task(name: str) -> Any:
    if name not in app.tasks:
        # A task is imported by its name, when it is first sent in this process: workers.tasks imports
        # the services that send through here, so importing it at the top would make a circle.
        importlib.import_module(name.rsplit(".", 1)[0])
    return app.tasks[name]


def in_process_retried() -> bool:
    """Return whether the task running in this process is run again after a transient error."""
    return getattr(_local, "attempt", 0) > 0


def in_process_last_attempt() -> bool:
    """Return whether the task running in this process may not be run again after a transient error."""
    return getattr(_local, "attempt", 0) + 1 >= IN_PROCESS_ATTEMPTS


class Background:
    """The threads a block of in_background started, to wait for what they run."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads (at most `timeout` seconds in all); return whether every one has ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self.threads)


@contextlib.contextmanager
def in_background() -> Iterator[Background]:
    """Run the tasks sent inside this block (tasks in process) in a thread of their own once it ends.

    The progress of a run started inside can then be watched, and the block's value waits for the thread
    (a run, its follow-ups and whatever they send in turn). With a broker this changes nothing.
    """
    background = Background()
    if not settings.TASKS_IN_PROCESS or getattr(_local, "deferred", None) is not None or (
        transaction.get_connection().in_atomic_block
    ):
        # Inside a transaction another thread would not see what it wrote: run them here, as usual.
        yield background
        return
    _local.deferred = []
    try:
        yield background
    finally:
        deferred, _local.deferred = _local.deferred, None
    if deferred:
        thread = threading.Thread(target=_run_deferred, args=(deferred,), name="sync-tasks", daemon=True)
        background.threads.append(thread)
        thread.start()


@contextlib.contextmanager
def for_the_runner() -> Iterator[None]:
    """Leave the runs started inside this block to the runner (`manage.py sync serve`), tasks in process.

    They are recorded as queued with no owner and their pages are not sent here: the runner takes them
    from the database (syncapp.runner), so a web process that ends loses nothing and never owns a run.
    Other tasks sent inside run in a thread of their own once the block ends. With a broker this
    changes nothing.
    """
    if not settings.TASKS_IN_PROCESS or getattr(_local, "handed_over", None) is not None:
        yield
        return
    _local.handed_over = set()
    try:
        with in_background():
            yield
    finally:
        _local.handed_over = None


def runner_leaves_to() -> bool:
    """Return whether a run started now is left to the runner (inside for_the_runner, tasks in process)."""
    return getattr(_local, "handed_over", None) is not None


def runner_hand_over(*, run_id: int) -> None:
    """Mark a run started inside for_the_runner: its pages and chunks are not sent from here."""
    handed_over = getattr(_local, "handed_over", None)
    if handed_over is not None:
        handed_over.add(run_id)


def _run_deferred(calls: list[tuple[str, tuple, float]]) -> None:
    try:
        for name, args, countdown in calls:
            _run_in_process(name, args, countdown=countdown)
    finally:
        db.connections.close_all()  # this thread's own connections


def _run_in_process(name: str, args: tuple, *, countdown: float = 0) -> None:
    deferred = getattr(_local, "deferred", None)
    if deferred is not None:
        deferred.append((name, args, countdown))
        return
    due = time.monotonic() + countdown
    queue = getattr(_local, "queue", None)
    if queue is not None:
        queue.append((due, name, args, 0))
        return
    _local.queue = deque([(due, name, args, 0)])
    try:
        while _local.queue:
            due, next_name, next_args, attempt = _local.queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                if any(entry[0] <= time.monotonic() for entry in _local.queue):
                    _local.queue.append((due, next_name, next_args, attempt))  # not due yet: others first
                    continue
                time.sleep(wait)
            _local.attempt = attempt
            try:
                _task(next_name)(*next_args)
            except (OperationalError, InterfaceError) as error:
                # The transaction was rolled back whole and every task is idempotent: run it again.
                db.close_old_connections()
                if attempt + 1 >= IN_PROCESS_ATTEMPTS:
                    logger.exception("task %s%r failed %d times", next_name, next_args, IN_PROCESS_ATTEMPTS)
                    continue
                backoff = min(IN_PROCESS_BACKOFF_MAX_SECONDS, IN_PROCESS_BACKOFF_SECONDS * 2**attempt)
                logger.warning("task %s%r: %s; run again in %gs", next_name, next_args, error, backoff)
                _local.queue.append((time.monotonic() + backoff, next_name, next_args, attempt + 1))
            except Exception:
                # A worker would log and go on with the next message; so does the in-process queue.
                logger.exception("task %s%r failed", next_name, next_args)
            finally:
                _local.attempt = 0
    finally:
        _local.queue = None


def _send(name: str, calls: Iterable[tuple], *, countdown: float | None = None) -> None:
    calls = list(calls)
    handed_over = getattr(_local, "handed_over", None)
    if handed_over and name in (SYNC_PAGE, SYNC_CHUNK):
        # The run is the runner's: it sends the run's open pages and chunks when it takes the run.
        calls = [args for args in calls if args[0] not in handed_over]
    if not calls:
        return
    if settings.TASKS_IN_PROCESS:
        def send() -> None:
            for args in calls:
                _run_in_process(name, args, countdown=countdown or 0)
    else:
        def send() -> None:
            with app.producer_or_acquire() as producer:
                for args in calls:
                    app.send_task(name, args=args, producer=producer, countdown=countdown)
    transaction.on_commit(send)


def pages_fetch(*, run_id: int, numbers: Iterable[int]) -> None:
    """Send the fetch of these pages of a run."""
    _send(SYNC_PAGE, [(run_id, number) for number in numbers])


def chunks_write(*, run_id: int, chunk_ids: Iterable[int], countdown: float | None = None) -> None:
    """Send the write of these chunks of a run (a countdown holds a retried object back that long)."""
    _send(SYNC_CHUNK, [(run_id, chunk_id) for chunk_id in chunk_ids], countdown=countdown)


def follow_ups_start(*, run_id: int) -> None:
    """Send the start of a run's follow-ups."""
    _send(SYNC_FOLLOW_UPS, [(run_id,)])


def outbox_drain(*, schema_id: int) -> None:
    """Send the drain of a schema's outbox of register changes (their pushes and write-backs), to run
    SYNC_PUSH_DELAY_SECONDS after the commit, so that a burst of saves is drained, and pushed, at once.

    With a broker the drain task waits that long; in process a timer of this process does, one per
    schema, and the saves never wait for the pushes they cause. With no delay, in process, the drain runs
    right after the commit, as every task does.
    """
    delay = settings.SYNC_PUSH_DELAY_SECONDS
    if not settings.TASKS_IN_PROCESS:
        _send(SYNC_OUTBOX, [(schema_id,)], countdown=delay or None)
    elif delay:
        transaction.on_commit(lambda: _drain_later(schema_id=schema_id, delay=delay))
    else:
        _send(SYNC_OUTBOX, [(schema_id,)])


# The drains waiting on their timer, by schema, and those running, in this process (tasks in process).
_drains_lock = threading.Lock()
_drains_waiting: dict[int, Timer] = {}
_drains_running: set[threading.Thread] = set()


def _drain_later(*, schema_id: int, delay: float) -> None:
    with _drains_lock:
        if schema_id in _drains_waiting:
            return  # the drain waiting takes this change too
        if not _drains_waiting and not _drains_running:
            atexit.register(outbox_drains_finish)  # once per burst: unregistered again when it is done
        timer = Timer(delay, _drain_due, kwargs={"schema_id": schema_id})
        timer.daemon = True  # a process ending meanwhile drains at exit (outbox_drains_finish)
        _drains_waiting[schema_id] = timer
        timer.start()


def _drain_due(*, schema_id: int) -> None:
    me = threading.current_thread()
    with _drains_lock:
        if _drains_waiting.get(schema_id) is not me:
            return  # finished already by outbox_drains_finish
        del _drains_waiting[schema_id]
        _drains_running.add(me)
    try:
        _run_deferred([(SYNC_OUTBOX, (schema_id,), 0)])
    finally:
        with _drains_lock:
            _drains_running.discard(me)
            if not _drains_waiting and not _drains_running:
                atexit.unregister(outbox_drains_finish)


def outbox_drains_finish() -> None:
    """Run the drains waiting on their timer now, in this thread, and wait for those running (tasks in
    process); a process that ends with changes not pushed does this at exit."""
    with _drains_lock:
        waiting, running = sorted(_drains_waiting.items()), list(_drains_running)
        _drains_waiting.clear()
        atexit.unregister(outbox_drains_finish)
    for _, timer in waiting:
        timer.cancel()
    for schema_id, _ in waiting:
        _run_in_process(SYNC_OUTBOX, (schema_id,))
    for thread in running:
        thread.join()


def push_start(*, synchronization_id: int, object_ids: list[str], push_origin: list[int]) -> None:
    """Send the push of changed register objects to a synchronization that reads them; `push_origin`: the
    synchronizations whose writes changed them, first to last."""
    _send(SYNC_PUSH, [(synchronization_id, list(object_ids), list(push_origin))])


def write_back(*, synchronization_id: int, object_ids: list[str]) -> None:
    """Send the write-back of register objects changed here to the source of a two-way synchronization."""
    _send(SYNC_WRITE_BACK, [(synchronization_id, list(object_ids))])


def deferred_wake(*, at: datetime) -> None:
    """Send the deferred work that is due `at` then, in process: the embedded mode has no beat to do it.

    A daemon timer of this process runs the sweep then, in a thread of its own; with a broker, beat's
    resend sweep does it every minute and this does nothing. A process that ends first loses the timer:
    the next start of the synchronization, or `sync run` while it waits, sends the work instead.
    """
    if not settings.TASKS_IN_PROCESS:
        return
    seconds = max(0.0, (at - timezone.now()).total_seconds())

    def wake() -> None:
        _run_deferred([(SEND_DEFERRED, (), 0)])

    def start() -> None:
        timer = Timer(seconds, wake)
        timer.daemon = True
        timer.start()

    transaction.on_commit(start)
