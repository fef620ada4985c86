"""Ask the source for a run's pages, and read ahead inside one page task.

A page task that fetched its page goes on reading (`ReadAhead`): as soon as a page's answer has been
read, the requests after it (the next link or cursor, or up to `concurrency` page numbers or offsets)
leave from threads of the task, while the page is judged and planned in the task itself; the task then
takes the next page's answer, judges and plans it, and so on. So the source's latency is not added to
the service's own work between pages, and worker concurrency does not cap the requests in flight.

Only the requests run in the threads: judging stays in page order and happens in the task
(syncapp.runs.pages), so the end of the source, a repeated page and the deletion decision are found
exactly as reading one page after another finds them. Every request goes through the one HTTP layer,
so the source's request budget, its rate limits and the egress checks hold for all of them together.
The task reads on for at most SYNC_READ_AHEAD_SECONDS, then leaves what it fetched on its pages and
sends their tasks, so no task runs near its time limit and a run of many pages moves between workers.
"""
from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections

from contracts import runs
from contracts.models import RunPage
from syncapp.errors import SourceError
from syncapp.http import Wait
from syncapp.runs.context import SyncContext
from syncapp.sources.base import Fetched
from workers import dispatch

logger = logging.getLogger(__name__)


@dataclass
class Answer:
    """What one page's fetch brought: the answer, or the error that is the page's outcome."""

    number: int
    fetched: Fetched | None
    error: str = ""


def wait_count(*, run_id: int, wait: Wait) -> None:
    """Count a wait of a call on the run; it moves the heartbeat, so a waiting run is not taken for lost."""
    runs.run_add_counts(run_id=run_id, retries=int(wait.retry), waited_seconds=wait.seconds)


def page_fetch(*, context: SyncContext, run_id: int, number: int, request: dict[str, Any]) -> Answer:
    """Ask the source for a page; a source error is the page's answer (RateLimited is raised)."""
    try:
        fetched = context.reader.fetch(request=request, on_wait=lambda wait: wait_count(run_id=run_id, wait=wait))
    except SourceError as error:
        return Answer(number=number, fetched=None, error=str(error))
    return Answer(number=number, fetched=fetched)


class ReadAhead:
    """The pages one task fetches ahead, in threads of its own, and their answers in page order."""

    def __init__(self, *, context: SyncContext, run_id: int, seconds: float | None = None) -> None:
        self.context = context
        self.run_id = run_id
        self.deadline = time.monotonic() + (settings.SYNC_READ_AHEAD_SECONDS if seconds is None else seconds)
        self.requests: dict[int, dict[str, Any]] = {}
        self.futures: dict[int, Future] = {}
        # Filled by the threads, emptied by the task: a queue, so no wait is lost between the two.
        self.waits: queue.SimpleQueue[Wait] = queue.SimpleQueue()
        self.stopped = False
        self.left: int | None = None  # the last page left to another task to plan
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    # -- sending

    def open(self) -> bool:
        """Return whether requests may still be started: the task has time left and nothing went wrong."""
        return not self.stopped and time.monotonic() < self.deadline

    def start(self, *, wanted: dict[int, dict[str, Any]]) -> None:
        """Send the requests of these pages (number: request) that are not under way yet."""
        if not self.open():
            return
        for number, request in sorted(wanted.items()):
            if number in self.futures:
                continue
            future: Future = Future()
            self.requests[number], self.futures[number] = request, future
            self._jobs.put((number, request, future))
            if len(self._threads) < min(self.context.reader.concurrency, len(self.futures)):
                self._thread_start()

    def owns(self, number: int) -> bool:
        """Return whether this task fetches the page (its own task is not sent)."""
        return number in self.futures

    def _thread_start(self) -> None:
        # In a copy of this one's context: its log lines name the run and page it works for.
        thread = threading.Thread(target=contextvars.copy_context().run, args=(self._work,), name="read-ahead",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                number, request, future = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    # The waits are counted by the task, which owns the run's row.
                    fetched = self.context.reader.fetch(request=request, on_wait=self.waits.put)
                except SourceError as error:
                    future.set_result(Answer(number=number, fetched=None, error=str(error)))
                except BaseException as error:  # RateLimited, or a bug: the page's own task meets it
                    future.set_exception(error)
                else:
                    future.set_result(Answer(number=number, fetched=fetched))
        finally:
            connections.close_all()  # this thread's own connections (the source's rate-limit state)

    # -- taking

    def plan_elsewhere(self, *, number: int) -> bool:
        """Return whether to leave this page to a task of its own to plan, on whichever worker is free.

        Yes when a page after it has come back already (the task plans slower than the source answers)
        and the page it left to others last has been planned (they have time). So the task plans every
        other page or so beside one other worker, fewer with more, all of them when the source is slow.
        In process there is no other worker: the task plans every page itself.
        """
        if settings.TASKS_IN_PROCESS:
            return False
        if not any(later > number and future.done() for later, future in self.futures.items()):
            return False
        if self.left is not None and RunPage.objects.filter(
            run_id=self.run_id, number=self.left, status=RunPage.Status.JUDGED
        ).exists():
            return False
        self.left = number
        return True

    def next_number(self) -> int | None:
        """Return the lowest page under way here, if reading on is still allowed."""
        return min(self.futures) if self.futures and self.open() else None

    def take(self, number: int) -> Answer | None:
        """Wait for a page's answer and give it to the task; None hands the page to its own task instead."""
        future = self.futures.get(number)
        if future is None:
            return None
        try:
            answer = future.result()
        except BaseException as error:
            # Met again by the page's own task, which classifies it (a rate limit deferred, a bug failed).
            logger.info("run %s page %s: %s; its own task fetches it", self.run_id, number, error)
            self.stopped = True
            return None
        finally:
            self._waits_count()
        del self.futures[number], self.requests[number]
        return answer

    def _waits_count(self) -> None:
        while True:
            try:
                wait = self.waits.get_nowait()
            except queue.Empty:
                return
            wait_count(run_id=self.run_id, wait=wait)

    # -- handing over

    def hand_over(self) -> list[int]:
        """Stop, keep what came back on its pages and send their tasks; return the pages handed over.

        Only pages still open are handed over (a page fetched ahead past the end was skipped meanwhile,
        and a page's row exists once the page before it was judged); an answer is kept on a page still
        queued, and a page without one, or whose fetch met a rate limit, is fetched by its own task.
        """
        self.stopped = True
        for future in self.futures.values():
            future.cancel()  # not sent yet: its own task asks for it
        for _ in self._threads:
            self._jobs.put(None)
        answers: dict[int, Answer] = {}
        for number, future in sorted(self.futures.items()):
            try:
                answers[number] = future.result()
            except BaseException:
                continue
        self.futures.clear()
        numbers = list(
            RunPage.objects.filter(run_id=self.run_id, number__in=sorted(self.requests), status__in=(
                RunPage.Status.QUEUED, RunPage.Status.FETCHED,
            )).values_list("number", flat=True)
        ) if self.requests else []
        for number in numbers:
            if (answer := answers.get(number)) is not None:
                RunPage.objects.filter(run_id=self.run_id, number=number, status=RunPage.Status.QUEUED).update(
                    status=RunPage.Status.FETCHED, error_message=answer.error[:5000],
                    payload=answer.fetched.to_json() if answer.fetched is not None else None,
                )
        self._waits_count()
        for thread in self._threads:
            thread.join()
        self.requests.clear()
        dispatch.pages_fetch(run_id=self.run_id, numbers=numbers)
        return numbers
