"""Work deferred for a server's Retry-After: sent again once due, never waited for inside a worker.

A page or object whose source or target asks to wait longer than SYNC_MAX_RETRY_AFTER_SECONDS keeps
its due time in `not_before`; the run keeps the earliest one in `deferred_until` (shown in the admin and
the API). Celery beat's resend sweep sends what came due (syncapp.runs.resend); without beat, a timer of
the process that deferred it (`dispatch.deferred_wake`), every start of the synchronization and `sync run`
while it waits do (`runs_send_came_due`).
"""
from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from contracts import runs
from contracts.models import RunChunk, RunPage, SynchronizationRun
from workers import dispatch

logger = logging.getLogger(__name__)


def run_work_send(*, run_id: int, now: datetime) -> tuple[list[int], list[int]]:
    """Send the run's open pages and queued chunks that are due (inside the caller's transaction); return
    their numbers and ids. Deferred work not due yet stays, and the run records when it is."""
    ready = Q(not_before__isnull=True) | Q(not_before__lte=now)
    # A page fetched ahead waits for the task that judges the page before it: only the next page to judge
    # needs its own task (syncapp.runs.pages.pages_judge).
    head = SynchronizationRun.objects.filter(pk=run_id).values_list("pages_judged", flat=True).first()
    waiting_its_turn = Q(status=RunPage.Status.FETCHED) & ~Q(number=(head or 0) + 1)
    pages = list(
        RunPage.objects.filter(ready, run_id=run_id, status__in=RunPage.OPEN_STATUSES).exclude(waiting_its_turn)
        .values_list("number", flat=True)
    )
    chunks = list(
        RunChunk.objects.filter(ready, run_id=run_id, status=RunChunk.Status.QUEUED).values_list("pk", flat=True)
    )
    if SynchronizationRun.objects.filter(pk=run_id, deferred_until__lte=now).exists():
        runs.run_deferral_record(run_id=run_id)
    dispatch.pages_fetch(run_id=run_id, numbers=pages)
    dispatch.chunks_write(run_id=run_id, chunk_ids=chunks)
    return pages, chunks


def runs_send_came_due(*, synchronization_id: int | None = None) -> list[int]:
    """Send the deferred work that came due of active runs (of one synchronization); return their ids."""
    now = timezone.now()
    came_due = SynchronizationRun.objects.filter(
        deferred_until__lte=now, status__in=SynchronizationRun.ACTIVE_STATUSES, waiting=False, is_test=False
    )
    if synchronization_id is not None:
        came_due = came_due.filter(synchronization_id=synchronization_id)
    sent = []
    for run_id in came_due.values_list("pk", flat=True):
        with transaction.atomic():
            # Claimed by recording the next due time: a second sweep finds nothing due any more.
            if not SynchronizationRun.objects.select_for_update().filter(pk=run_id, deferred_until__lte=now).exists():
                continue
            pages, chunks = run_work_send(run_id=run_id, now=now)
        logger.warning("run %s: deferred work came due: sent %d page(s) and %d chunk(s) again", run_id,
                       len(pages), len(chunks))
        sent.append(run_id)
    return sent
