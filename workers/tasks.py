"""Celery tasks: thin adapters that take ids, call the services and classify errors."""
from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from contracts import runs
from contracts.models import RunPage, SynchronizationRun
from syncapp import follow_ups, schedules, synchronization

logger = logging.getLogger(__name__)

# Database hiccups (a restarted server, a killed connection) pass: the task is retried whole, and
# it is idempotent. Any other error is recorded on the page or the object, so the run still ends.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
RETRY = {"autoretry_for": TRANSIENT_ERRORS, "retry_backoff": 2, "retry_backoff_max": 60, "max_retries": 10}


@shared_task(acks_late=True, **RETRY)
def sync_page(run_id: int, page_number: int) -> None:
    """Fetch and process one page of a run."""
    try:
        synchronization.page_process(run_id=run_id, page_number=page_number)
    except TRANSIENT_ERRORS:
        raise
    except Exception as error:
        logger.exception("run %s page %s failed", run_id, page_number)
        page = RunPage.objects.filter(run_id=run_id, number=page_number).first()
        if page is not None:
            synchronization.page_fail(page=page, message=f"{type(error).__name__}: {error}")


@shared_task(acks_late=True, **RETRY)
def sync_object(run_id: int, contract_id: int, source_object: dict, origin_hash: str) -> None:
    """Map and write one changed object of a run."""
    try:
        synchronization.object_process(
            run_id=run_id, contract_id=contract_id, source_object=source_object, origin_hash=origin_hash
        )
    except TRANSIENT_ERRORS:
        raise
    except Exception as error:
        logger.exception("run %s contract %s failed", run_id, contract_id)
        synchronization.object_fail(
            run_id=run_id, contract_id=contract_id, source_object=source_object,
            message=f"{type(error).__name__}: {error}",
        )


@shared_task(acks_late=True, **RETRY)
def sync_follow_ups(run_id: int) -> None:
    """Start the follow-ups of an ended run, each as its own run."""
    run = SynchronizationRun.objects.select_related("synchronization").filter(pk=run_id).first()
    if run is not None:
        follow_ups.follow_ups_start(run=run)


@shared_task(acks_late=True, **RETRY)
def start_scheduled_runs() -> None:
    """Start the synchronizations whose schedule is due (Celery beat sends this every minute)."""
    schedules.schedules_start_due()


@shared_task(acks_late=True, **RETRY)
def fail_stale_runs() -> None:
    """Fail runs whose worker was lost, so they never stay running forever."""
    runs.runs_fail_stale()


@shared_task(acks_late=True, **RETRY)
def purge_old_logs() -> None:
    """Delete contract logs and runs past the retention."""
    runs.logs_purge()
