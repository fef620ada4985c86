"""Celery tasks: thin adapters that take ids, call the services and classify errors."""
from __future__ import annotations

import logging
import math

from celery import Task, shared_task
from celery.exceptions import Retry
from django.conf import settings
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from contracts import runs
from syncapp import follow_ups, pushes, schedules, write_back
from syncapp.http import RateLimited, retry_after_bound
from syncapp.models import SchedulerHeartbeat
from syncapp.runs import chunks, deferred, pages, recover, resend
from syncapp.structured_logs import work_context
from workers import dispatch

logger = logging.getLogger(__name__)

# Database hiccups (a restarted server, a killed connection) and a broker that stays away longer than
# the publish retries pass: the task is retried whole, and it is idempotent (a retry the broker cannot
# take is dropped; the page stays queued and the resend sweep sends it again). Any other error is
# recorded on the page or the chunk's objects, so the run still ends.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, BrokerError)
TRANSIENT_RETRIES = 10
RETRY = {
    "autoretry_for": TRANSIENT_ERRORS, "retry_backoff": 2, "retry_backoff_max": 60, "max_retries": TRANSIENT_RETRIES,
}
# Times one task may be re-scheduled for rate limits before its page or objects fail: a source that
# keeps asking to wait is reported, not waited on forever.
RATE_LIMIT_MAX_RETRIES = 100


def retry_later(task: Task, *, limited: RateLimited, run_id: int) -> Retry | float | str:
    """Return the retry that brings the task back once the source's wait is over, the seconds to defer
    its work for instead, or why it may not wait.

    A wait beyond SYNC_MAX_RETRY_AFTER_SECONDS, or any wait left over in process (where the HTTP layer
    already slept what it may), is deferred: no worker holds it. A shorter one is a retry with a countdown
    of at most SYNC_TASK_COUNTDOWN_MAX, well below the visibility timeout; a longer wait takes several
    retries, each finding the wait stored on the source. Each is counted on the run, which moves its
    heartbeat: a run waiting for a rate limit is not taken for lost.
    """
    if limited.wait_seconds > settings.SYNC_MAX_RATE_LIMIT_WAIT:
        return f"{limited}: the source asks to wait {limited.wait_seconds:.0f} s, more than SYNC_MAX_RATE_LIMIT_WAIT"
    if task.request.called_directly or limited.wait_seconds > retry_after_bound():
        return max(1.0, limited.wait_seconds)
    if task.request.retries >= RATE_LIMIT_MAX_RETRIES:
        return f"{limited}: still rate limited after {RATE_LIMIT_MAX_RETRIES} retries of the task"
    countdown = max(1, math.ceil(min(limited.wait_seconds, settings.SYNC_TASK_COUNTDOWN_MAX)))
    runs.run_add_counts(run_id=run_id, retries=1, waited_seconds=countdown)
    logger.warning("run %s: %s; %s retried in %d s", run_id, limited, task.name, countdown)
    try:
        return task.retry(countdown=countdown, max_retries=RATE_LIMIT_MAX_RETRIES, throw=False)
    finally:
        # retry() leaves this limit on the task object, where autoretry would take it for a database error.
        task.__dict__.pop("override_max_retries", None)


def out_of_retries(task: Task) -> bool:
    """Return whether a transient error now would end the task for good (no retry left)."""
    if task.request.called_directly:
        return dispatch.in_process_last_attempt()
    return task.request.retries >= TRANSIENT_RETRIES


@shared_task(bind=True, acks_late=True, **RETRY)
def sync_page(self: Task, run_id: int, page_number: int) -> None:
    """Fetch one page of a run and plan the pages whose turn it is; a long rate limit retries it later."""
    with work_context(run=run_id, synchronization=None, page=page_number, chunk=None):
        _page_run(self, run_id=run_id, page_number=page_number)


def _page_run(self: Task, *, run_id: int, page_number: int) -> None:
    # Run before: handed out again by the broker (its worker died before acknowledging it; kombu's
    # transports say so), or retried after an error.
    again = (
        bool((self.request.delivery_info or {}).get("redelivered")) or bool(self.request.retries)
        or dispatch.in_process_retried()
    )
    try:
        pages.page_process(run_id=run_id, page_number=page_number, again=again)
    except TRANSIENT_ERRORS as error:
        if not out_of_retries(self):
            raise
        logger.exception("run %s page %s failed for good", run_id, page_number)
        pages.page_fail(run_id=run_id, number=page_number, message=f"{type(error).__name__}: {error}")
    except RateLimited as limited:
        later = retry_later(self, limited=limited, run_id=run_id)
        if isinstance(later, Retry):
            raise later from None
        if isinstance(later, float):
            pages.page_defer(run_id=run_id, number=page_number, seconds=later, message=str(limited))
            return
        pages.page_fail(run_id=run_id, number=page_number, message=later)
    except Exception as error:
        logger.exception("run %s page %s failed", run_id, page_number)
        pages.page_fail(run_id=run_id, number=page_number, message=f"{type(error).__name__}: {error}")


@shared_task(bind=True, acks_late=True, **RETRY)
def sync_chunk(self: Task, run_id: int, chunk_id: int) -> None:
    """Write one chunk of a run's changed objects; whatever happens, each of its objects ends counted."""
    with work_context(run=run_id, synchronization=None, page=None, chunk=chunk_id):
        _chunk_run(self, run_id=run_id, chunk_id=chunk_id)


def _chunk_run(self: Task, *, run_id: int, chunk_id: int) -> None:
    try:
        chunks.chunk_process(run_id=run_id, chunk_id=chunk_id)
    except TRANSIENT_ERRORS as error:
        if not out_of_retries(self):
            raise
        logger.exception("run %s chunk %s failed for good", run_id, chunk_id)
        chunks.chunk_fail(run_id=run_id, chunk_id=chunk_id, message=f"{type(error).__name__}: {error}")
    except Exception as error:
        logger.exception("run %s chunk %s failed", run_id, chunk_id)
        chunks.chunk_fail(run_id=run_id, chunk_id=chunk_id, message=f"{type(error).__name__}: {error}")


# Re-run when its worker dies, like every task here: at worst a follow-up runs twice, and a second run
# writes nothing twice, while a lost message would leave the follow-ups unsynced.
@shared_task(acks_late=True, **RETRY)
def sync_follow_ups(run_id: int) -> None:
    """Start the follow-ups of an ended run, each as its own run."""
    with work_context(run=run_id):
        follow_ups.follow_ups_start_of(run_id=run_id)


# Safe to run twice: the rows taken are removed in the transaction that pushes them.
@shared_task(acks_late=True, **RETRY)
def sync_outbox(schema_id: int) -> None:
    """Push the pending register changes of a schema to the synchronizations that read them."""
    pushes.changes_drain(schema_id=schema_id)


# Safe to run twice: a second push of the same objects finds them unchanged and writes nothing.
@shared_task(acks_late=True, **RETRY)
def sync_push(synchronization_id: int, object_ids: list[str], push_origin: list[int] | None = None) -> None:
    """Start a run of a synchronization for the register objects that changed."""
    with work_context(synchronization=synchronization_id):
        pushes.push_start(synchronization_id=synchronization_id, object_ids=object_ids, push_origin=push_origin or [])


# Safe to run twice: an object whose version went back already is found unchanged here.
@shared_task(acks_late=True, **RETRY)
def sync_write_back(synchronization_id: int, object_ids: list[str]) -> None:
    """Send register objects changed here back to the source of a two-way synchronization."""
    with work_context(synchronization=synchronization_id):
        write_back.write_back(synchronization_id=synchronization_id, object_ids=object_ids)


@shared_task(acks_late=True, **RETRY)
def drain_outbox() -> None:
    """Push the register changes whose drain was lost (Celery beat sends this every minute)."""
    pushes.changes_drain_left()


@shared_task(acks_late=True, **RETRY)
def start_scheduled_runs() -> None:
    """Start the synchronizations whose schedule is due (Celery beat sends this every tick), and record the tick."""
    schedules.scheduler_tick_record(kind=SchedulerHeartbeat.Kind.BEAT)
    schedules.schedules_start_due()


@shared_task(acks_late=True, **RETRY)
def resend_stalled_runs() -> None:
    """Send the work of runs without progress again: a restarted broker may have lost its messages."""
    resend.runs_resend_stalled()


@shared_task(acks_late=True, **RETRY)
def send_deferred_work() -> None:
    """Send the deferred pages and objects that came due (the embedded mode's timer sends this)."""
    deferred.runs_send_came_due()


@shared_task(acks_late=True, **RETRY)
def fail_stale_runs() -> None:
    """Fail runs whose worker was lost and start the runs waiting behind them, so none stays stuck."""
    recover.runs_recover()


@shared_task(acks_late=True, **RETRY)
def purge_old_logs() -> None:
    """Delete contract logs and runs past the retention."""
    runs.logs_purge()
