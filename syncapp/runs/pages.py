"""One page of a run: fetch it, then plan it in page order and record the plan in bulk.

Pages are fetched by their own tasks, up to the reader's `concurrency` at once when the next
requests are known ahead (page numbers, offsets). They are planned strictly in page order, by
whichever task finds the lowest open page fetched (`pages_drain`), so the end of the source, a
repeated page and a duplicate origin id are judged exactly as reading one page after another would,
and a page fetched ahead past the end is skipped, not counted.

Planning a page is one transaction: the contracts of its objects are read in one query, the
planner decides, and the outcome is written in a fixed number of statements (contracts seen,
unchanged and invalid ones, contract logs, the chunks of changed objects, counters, the next pages)
whatever the number of objects. The chunk and page tasks are sent once it has committed; a task
redelivered after a worker died between that commit and the sending sends them again.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from contracts import runs
from contracts.logs import log_text, log_value
from contracts.models import ContractLog, RunChunk, RunPage, SynchronizationContract, SynchronizationRun
from syncapp.bulk import in_values, rows_update
from syncapp.http import Wait
from syncapp.pagination import PaginationError
from syncapp.runs.context import SyncContext, context_for_run
from syncapp.runs.finish import run_close_if_complete
from syncapp.runs.planner import ContractState, PagePlan, Planned, Rejected, page_origin_ids, page_plan
from syncapp.sources import Fetched, ReadPage, SourceError
from workers import dispatch

logger = logging.getLogger(__name__)

Contract = SynchronizationContract
OPEN = RunPage.OPEN_STATUSES


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


def page_process(*, run_id: int, page_number: int) -> None:
    """Fetch one page of a run, then plan every page whose turn it is."""
    page = RunPage.objects.filter(run_id=run_id, number=page_number).values("status", "request").first()
    run = SynchronizationRun.objects.filter(pk=run_id).values("status", "synchronization_id").first()
    if page is None or run is None:
        return
    if page["status"] in (RunPage.Status.SKIPPED, RunPage.Status.FAILED):
        return  # fetched ahead past the end, or cancelled
    if page["status"] != RunPage.Status.QUEUED:
        # A redelivered task, whose worker may have died after its commit and before sending what it
        # planned: see that everything after it is under way.
        if run["status"] == SynchronizationRun.Status.RUNNING:
            context = context_for_run(synchronization_id=run["synchronization_id"], run_id=run_id)
            pages_drain(run_id=run_id, context=context)
            work_resend(run_id=run_id, from_page=page_number, window=context.reader.concurrency)
        run_close_if_complete(run_id=run_id)
        return
    if run["status"] != SynchronizationRun.Status.RUNNING and not runs.run_mark_running(run_id=run_id):
        return
    context = context_for_run(synchronization_id=run["synchronization_id"], run_id=run_id)
    answer = page_fetch(context=context, run_id=run_id, number=page_number, request=page["request"])
    pages_drain(run_id=run_id, context=context, in_hand=answer)
    run_close_if_complete(run_id=run_id)


def _head(run_id: int) -> dict[str, Any] | None:
    """Return the lowest open page of the run: the next to plan."""
    return (
        RunPage.objects.filter(run_id=run_id, status__in=OPEN).order_by("number")
        .values("pk", "number", "status", "request").first()
    )


def _answer_store(*, run_id: int, answer: Answer) -> None:
    """Keep the answer of a page fetched ahead until its turn."""
    RunPage.objects.filter(run_id=run_id, number=answer.number, status=RunPage.Status.QUEUED).update(
        status=RunPage.Status.FETCHED, error_message=answer.error[:5000],
        payload=answer.fetched.to_json() if answer.fetched is not None else None,
    )


def _answer_load(*, page_pk: int, number: int) -> Answer | None:
    row = RunPage.objects.filter(pk=page_pk, status=RunPage.Status.FETCHED).values("payload", "error_message").first()
    if row is None:
        return None
    fetched = Fetched.from_json(row["payload"]) if row["payload"] is not None else None
    return Answer(number=number, fetched=fetched, error=row["error_message"] if fetched is None else "")


def pages_drain(*, run_id: int, context: SyncContext, in_hand: Answer | None = None) -> None:
    """Plan the run's pages in order, as long as the next one has been fetched.

    `in_hand` is the answer this task just fetched: planned at once if its page is next, else kept on
    the page for the task that plans the page before it. Each side writes before it looks, so a page
    is never left fetched with nobody to plan it.
    """
    head = _head(run_id)
    if in_hand is not None and (head is None or head["number"] != in_hand.number):
        _answer_store(run_id=run_id, answer=in_hand)
        in_hand = None
        head = _head(run_id)
    while head is not None:
        if in_hand is not None and head["number"] == in_hand.number and head["status"] == RunPage.Status.QUEUED:
            answer, in_hand = in_hand, None
        elif head["status"] == RunPage.Status.FETCHED:
            answer = _answer_load(page_pk=head["pk"], number=head["number"])
            if answer is None:
                head = _head(run_id)
                continue
        else:
            return  # not fetched yet: its own task plans it
        if not page_take(run_id=run_id, context=context, head=head, answer=answer):
            return
        head = _head(run_id)


def page_take(*, run_id: int, context: SyncContext, head: dict[str, Any], answer: Answer) -> bool:
    """Plan and record the run's next page; return False when another task holds it or the run has ended."""
    reader = context.reader
    request = head["request"]
    if answer.fetched is not None and not reader.same_request(answer.fetched.request, request):
        # Fetched ahead on a guess that the page before proved wrong: ask what reading in order asks.
        answer = page_fetch(context=context, run_id=run_id, number=head["number"], request=request)
    read: ReadPage | None = None
    error = answer.error
    if answer.fetched is not None:
        try:
            read = reader.page(request=request, fetched=answer.fetched)
        except (SourceError, PaginationError) as problem:
            error = str(problem)
    sends = Sends()
    with transaction.atomic():
        locked = (
            RunPage.objects.select_for_update(of=("self",)).select_related("run")
            .filter(pk=head["pk"], status=head["status"])
            .only("pk", "run__status", "run__is_forced", "run__synchronization_id").first()
        )
        if locked is None:
            return False  # planned meanwhile by another task, which goes on from there
        run = locked.run
        if run.status != SynchronizationRun.Status.RUNNING:
            return False
        if read is None:
            page_fail_record(run_id=run_id, number=head["number"], message=error)
        else:
            page_record(run=run, context=context, number=head["number"], request=request, read=read, sends=sends)
        sends.dispatch(run_id=run_id)
    return True


class Sends:
    """What a planned page sends once its transaction has committed."""

    def __init__(self) -> None:
        self.pages: list[int] = []
        self.chunks: list[int] = []

    def dispatch(self, *, run_id: int) -> None:
        dispatch.chunks_write(run_id=run_id, chunk_ids=self.chunks)
        dispatch.pages_fetch(run_id=run_id, numbers=self.pages)


def page_fail_record(*, run_id: int, number: int, message: str) -> None:
    """Record that a page could not be read: the run fetches no further, deletes nothing and ends failed."""
    logger.warning("run %s page %s failed: %s", run_id, number, message)
    now = timezone.now()
    RunPage.objects.filter(run_id=run_id, number=number).update(
        status=RunPage.Status.FAILED, error_message=message[:5000], payload=None, finished_at=now
    )
    runs.run_fail(run_id=run_id, message=f"page {number}: {message}")
    pages_skip_after(run_id=run_id, number=number)


def pages_skip_after(*, run_id: int, number: int) -> None:
    """Drop the pages fetched ahead past the run's last page: reading in order would not have asked for them."""
    RunPage.objects.filter(run_id=run_id, number__gt=number, status__in=OPEN).update(
        status=RunPage.Status.SKIPPED, payload=None, finished_at=timezone.now()
    )


# ---------------------------------------------------------------------------------------------
# Recording a plan


_CONTRACTS = Contract._meta.db_table


def contract_states(*, synchronization_id: int, origin_ids: list[str]) -> dict[str, ContractState]:
    """Return the contracts of these origin ids, in one query."""
    if not origin_ids:
        return {}
    where, params = in_values("origin_id", origin_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, origin_id, origin_hash, config_hash, status, target_id, target_hash, last_seen_run_id "
            f"FROM {_CONTRACTS} WHERE synchronization_id = %s AND {where}", [synchronization_id, *params]
        )
        rows = cursor.fetchall()
    return {
        origin_id: ContractState(pk, origin_hash, config_hash, status, target_id, target_hash, last_seen)
        for pk, origin_id, origin_hash, config_hash, status, target_id, target_hash, last_seen in rows
    }


def contracts_ensure(
    *, synchronization_id: int, origin_ids: list[str], states: dict[str, ContractState], run_id: int, now
) -> tuple[dict[str, ContractState], set[int]]:
    """Create the contracts these origin ids lack, seen by this run; never two for one id, also when
    workers race. Return every contract, and those created here (already marked seen)."""
    missing = [origin_id for origin_id in origin_ids if origin_id not in states]
    if not missing:
        return states, set()
    states = dict(states)
    created: set[int] = set()
    if connection.vendor == "postgresql":
        # ON CONFLICT DO NOTHING: another worker or run may create the same contracts at this moment.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_CONTRACTS} (reference, synchronization_id, origin_id, origin_hash, config_hash, "
                "target_hash, status, last_error, target_last_action, last_seen_run_id, source_last_checked, "
                "created_at, updated_at) "
                "SELECT gen_random_uuid(), %s, origin, '', '', '', %s, '', '', %s, %s, %s, %s FROM unnest(%s::text[]) "
                "AS origin ON CONFLICT (synchronization_id, origin_id) DO NOTHING RETURNING id, origin_id",
                [synchronization_id, Contract.Status.NEW, run_id, now, now, now, missing],
            )
            for pk, origin_id in cursor.fetchall():
                states[origin_id] = ContractState(pk, "", "", Contract.Status.NEW, None, "", run_id)
                created.add(pk)
    else:
        Contract.objects.bulk_create(
            [Contract(synchronization_id=synchronization_id, origin_id=origin_id) for origin_id in missing],
            ignore_conflicts=True,
        )
    raced = [origin_id for origin_id in missing if origin_id not in states]
    if raced:
        states.update(contract_states(synchronization_id=synchronization_id, origin_ids=raced))
    return states, created


def contracts_mark_seen(*, pks: list[int], run_id: int, now) -> None:
    """Mark contracts seen by this run: their targets are not deleted as vanished."""
    if not pks:
        return
    where, params = in_values("id", pks)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_CONTRACTS} SET last_seen_run_id = %s, source_last_checked = %s WHERE {where}",
            [run_id, now, *params],
        )


def invalid_record(
    *, run: SynchronizationRun, plan: PagePlan, states: dict[str, ContractState], now
) -> None:
    """Record what could not be taken up: a log each, and the error on their own contracts."""
    if not plan.invalid:
        return
    sync_id = run.synchronization_id

    def contract_of(rejected: Rejected) -> ContractState | None:
        return states.get(rejected.origin_id) if rejected.origin_id else None

    ContractLog.objects.bulk_create([
        ContractLog(
            synchronization_id=sync_id, contract_id=getattr(contract_of(rejected), "pk", None), run=run,
            origin_id=rejected.origin_id, status=Contract.Status.INVALID,
            source_object=log_value(rejected.source_object), error=log_text(rejected.error),
        )
        for rejected in plan.invalid
    ])
    own = [
        Contract(pk=contract.pk, status=Contract.Status.INVALID, last_error=log_text(rejected.error),
                 source_last_checked=now, updated_at=now)
        for rejected in plan.invalid
        if not rejected.duplicate and (contract := contract_of(rejected)) is not None
    ]
    if own:
        rows_update(Contract, own, ["status", "last_error", "source_last_checked", "updated_at"])


def holds_record(*, run: SynchronizationRun, context: SyncContext, holds: list[Planned],
                 states: dict[str, ContractState], now) -> None:
    """Record objects whose new hash maps to what the target holds: nothing is written but the contract."""
    if not holds:
        return
    rows = []
    for item in holds:
        state = states[item.origin_id]
        row = Contract(
            pk=state.pk, origin_hash=item.origin_hash, config_hash=context.fingerprint,
            status=Contract.Status.SYNCED, last_error="", target_last_action=Contract.Action.SKIP,
            source_last_synced=now, target_last_synced=now, source_last_checked=now, last_processed_run_id=run.pk,
            updated_at=now, source_last_changed=now if state.origin_hash != item.origin_hash else None,
        )
        rows.append(row)
    changed = [row for row in rows if row.source_last_changed is not None]
    fields = ["origin_hash", "config_hash", "status", "last_error", "target_last_action", "source_last_synced",
              "target_last_synced", "source_last_checked", "last_processed_run", "updated_at"]
    unchanged_source = [row for row in rows if row.source_last_changed is None]
    if changed:
        rows_update(Contract, changed, [*fields, "source_last_changed"])
    if unchanged_source:
        rows_update(Contract, unchanged_source, fields)


def chunks_create(
    *, run: SynchronizationRun, context: SyncContext, number: int, writes: list[Planned],
    states: dict[str, ContractState],
) -> list[int]:
    """Store the page's changed objects as chunks of planned writes; return their ids."""
    size = context.chunk_size
    chunks = []
    for start in range(0, len(writes), size):
        part = writes[start:start + size]
        items = [
            [states[item.origin_id].pk, item.origin_id, item.origin_hash, item.target_hash, item.source_object,
             item.target_object]
            for item in part
        ]
        chunks.append(RunChunk(run=run, page_number=number, size=len(part),
                               items=orjson.dumps(items, default=str).decode()))
    if not chunks:
        return []
    created = RunChunk.objects.bulk_create(chunks)
    if any(chunk.pk is None for chunk in created):  # a database that returns no ids from a bulk insert
        return list(RunChunk.objects.filter(run=run, page_number=number, status=RunChunk.Status.QUEUED)
                    .values_list("pk", flat=True))
    return [chunk.pk for chunk in created]


def page_record(
    *, run: SynchronizationRun, context: SyncContext, number: int, request: dict[str, Any], read: ReadPage,
    sends: Sends,
) -> None:
    """Plan a page's objects and record the plan; create the next pages. Runs in the page's transaction."""
    now = timezone.now()
    sync_id = run.synchronization_id
    rules = context.rules
    states = contract_states(
        synchronization_id=sync_id, origin_ids=page_origin_ids(read.objects, id_position=rules.id_position)
    )
    plan = page_plan(objects=read.objects, hashes=read.hashes, contracts=states, rules=rules, run_id=run.pk,
                     force=run.is_forced)
    seen = plan.seen
    states, created = contracts_ensure(synchronization_id=sync_id, origin_ids=seen, states=states, run_id=run.pk,
                                       now=now)
    writes = plan.writes
    holds: list[Planned] = []
    if plan.holds:
        present = context.writer.existing([states[item.origin_id].target_id for item in plan.holds])
        holds = [item for item in plan.holds if states[item.origin_id].target_id in present]
        writes = [*writes, *(item for item in plan.holds if states[item.origin_id].target_id not in present)]
    contracts_mark_seen(
        pks=[states[origin_id].pk for origin_id in seen if states[origin_id].pk not in created], run_id=run.pk, now=now
    )
    holds_record(run=run, context=context, holds=holds, states=states, now=now)
    invalid_record(run=run, plan=plan, states=states, now=now)
    sends.chunks += chunks_create(run=run, context=context, number=number, writes=writes, states=states)
    runs.run_add_counts(
        run_id=run.pk, found=plan.found, filtered=plan.filtered, unchanged=len(plan.unchanged) + len(holds),
        invalid=len(plan.invalid), objects_queued=len(writes), pages_fetched=1,
    )
    RunPage.objects.filter(run_id=run.pk, number=number).update(
        status=RunPage.Status.DONE, object_count=len(read.objects), payload=None, finished_at=now
    )
    pages_follow(run=run, context=context, number=number, following=read.next_request, sends=sends)


def pages_follow(
    *, run: SynchronizationRun, context: SyncContext, number: int, following: dict[str, Any] | None, sends: Sends
) -> None:
    """Create the page after this one with its request, and the pages that may be fetched ahead of it."""
    reader = context.reader
    max_pages = reader.max_pages
    if following is None:
        SynchronizationRun.objects.filter(pk=run.pk).update(fetch_finished=True)
        pages_skip_after(run_id=run.pk, number=number)
        return
    if max_pages is not None and number >= max_pages:
        runs.run_fail(run_id=run.pk, message=f"stopped at maxPages ({max_pages}): the source has more pages")
        SynchronizationRun.objects.filter(pk=run.pk).update(max_pages_reached=True)
        pages_skip_after(run_id=run.pk, number=number)
        return
    wanted = {number + 1: following}
    for step in range(1, reader.concurrency):
        if max_pages is not None and number + 1 + step > max_pages:
            break
        ahead = reader.ahead(request=following, steps=step)
        if ahead is None:
            break
        wanted[number + 1 + step] = ahead
    existing = set(
        RunPage.objects.filter(run_id=run.pk, number__in=list(wanted)).values_list("number", flat=True)
    )
    if number + 1 in existing:
        # Fetched ahead on a guess: from now on it holds the request reading in order makes.
        RunPage.objects.filter(run_id=run.pk, number=number + 1).update(request=following)
    new = [RunPage(run=run, number=page, request=request) for page, request in wanted.items() if page not in existing]
    RunPage.objects.bulk_create(new, ignore_conflicts=True)
    sends.pages += [page.number for page in new]


def work_resend(*, run_id: int, from_page: int, window: int) -> None:
    """Send again what planning from this page on may have left unsent: its open chunks and next pages."""
    chunks = RunChunk.objects.filter(run_id=run_id, page_number__gte=from_page, status=RunChunk.Status.QUEUED)
    dispatch.chunks_write(run_id=run_id, chunk_ids=list(chunks.values_list("pk", flat=True)))
    pages = RunPage.objects.filter(
        run_id=run_id, status=RunPage.Status.QUEUED, number__gt=from_page, number__lte=from_page + window
    )
    dispatch.pages_fetch(run_id=run_id, numbers=list(pages.values_list("number", flat=True)))


def page_fail(*, run_id: int, number: int, message: str) -> None:
    """Record that a page's task failed outside its answer (a rate limit not waited out, a bug)."""
    with transaction.atomic():
        page = (
            RunPage.objects.select_for_update().filter(run_id=run_id, number=number, status__in=OPEN)
            .only("pk").first()
        )
        if page is not None:
            page_fail_record(run_id=run_id, number=number, message=message)
    run_close_if_complete(run_id=run_id)
