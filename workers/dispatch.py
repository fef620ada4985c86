"""Enqueue tasks after the current transaction commits, on Celery or in this process.

With no broker configured (the embedded default) tasks run in this process, one after another
from a queue drained by the outermost caller, so a run of a thousand pages does not recurse a
thousand frames deep.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)
_local = threading.local()


def _run_in_process(task: Any, args: tuple) -> None:
    queue = getattr(_local, "queue", None)
    if queue is not None:
        queue.append((task, args))
        return
    _local.queue = deque([(task, args)])
    try:
        while _local.queue:
            next_task, next_args = _local.queue.popleft()
            try:
                next_task(*next_args)
            except Exception:
                # A worker would log and go on with the next message; so does the in-process queue.
                logger.exception("task %s%r failed", next_task.name, next_args)
    finally:
        _local.queue = None


def enqueue(task: Any, *args: Any) -> None:
    """Send the task once the current transaction has committed."""
    enqueue_many(task, [args])


def enqueue_many(task: Any, calls: Iterable[tuple], *, before_commit: bool = False) -> None:
    """Send one task message per argument tuple once the current transaction has committed.

    `before_commit` sends them at once instead, so a worker that dies right after the commit cannot
    lose them. Only for tasks that wait on a row lock this transaction holds (so they see its data)
    and that do nothing twice (so a rollback, and the retry that follows, is harmless).
    """
    calls = list(calls)
    if not calls:
        return
    if settings.TASKS_IN_PROCESS:
        def send() -> None:
            for args in calls:
                _run_in_process(task, args)
    else:
        def send() -> None:
            with task.app.producer_or_acquire() as producer:
                for args in calls:
                    task.apply_async(args=args, producer=producer)
        if before_commit:
            send()
            return
    transaction.on_commit(send)
