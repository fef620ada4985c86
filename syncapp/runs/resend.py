"""Send the work of runs without progress again: a broker that restarts without its data loses messages."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from contracts.models import SynchronizationRun
from syncapp.runs.deferred import run_work_send, runs_send_came_due
from syncapp.runs.finish import run_close_if_complete

logger = logging.getLogger(__name__)


def runs_resend_stalled(*, resend_after: float | None = None) -> list[int]:
    """Send the work of active runs without progress for `resend_after` seconds again, and the deferred
    work that came due; return the ids of the runs sent work.

    Sent again are the run's open pages and queued chunks that are due (a page or object deferred for a
    server's Retry-After waits for its `not_before`, syncapp.runs.deferred). Both tasks do their work
    once, so a message that was only slow costs a no-op. A run with nothing to send is closed if its work
    has ended (its last task may have died between its commit and the close). A run is re-sent at most
    once per interval, and re-sending is no progress: a run that still does not move is failed as stale.
    Sending deferred work that came due is: the run's heartbeat moves and its next due time is recorded.
    """
    resent = runs_send_came_due()
    seconds = settings.SYNC_RUN_RESEND_SECONDS if resend_after is None else resend_after
    now = timezone.now()
    cutoff = now - timedelta(seconds=seconds)
    due = Q(heartbeat_at__lt=cutoff) & (Q(resent_at__isnull=True) | Q(resent_at__lt=cutoff))
    stalled = SynchronizationRun.objects.filter(
        due, status__in=SynchronizationRun.ACTIVE_STATUSES, waiting=False, is_test=False
    )
    for run_id in stalled.values_list("pk", flat=True):
        with transaction.atomic():
            claimed = SynchronizationRun.objects.filter(
                due, pk=run_id, status__in=SynchronizationRun.ACTIVE_STATUSES
            ).update(resent_at=now)
            if not claimed:
                continue  # moved meanwhile, or claimed by another sweep
            pages, chunks = run_work_send(run_id=run_id, now=now)
        if pages or chunks:
            logger.warning(
                "run %s made no progress for %gs: sent %d page(s) and %d chunk(s) again", run_id, seconds,
                len(pages), len(chunks),
            )
            resent.append(run_id)
        else:
            run_close_if_complete(run_id=run_id)
    return resent
