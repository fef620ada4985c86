"""One page of a run: fetch it, judge it in page order, plan it and record the plan in bulk.

A page task that fetched its page reads on (syncapp.runs.reading): the requests of the pages after
it leave from threads of the task as soon as its answer has been read, up to the reader's
`concurrency` at once when they are known ahead (page numbers, offsets), and the task judges and
plans them in turn; after SYNC_READ_AHEAD_SECONDS it hands them to their own tasks. Pages are
*judged* strictly in page order, by whichever task finds the lowest unjudged page fetched
(`pages_judge`): is the page part of the run, and what is the next one. So the end of the source
and a repeated page are found exactly as reading one page after another finds them, and a page
fetched ahead past the end is skipped, not counted.

Judged pages are *planned* side by side, each in one transaction: the contracts of its objects are
read in one query, the planner decides, and the outcome is written in a fixed number of statements
(contracts seen, unchanged and invalid ones, contract logs, the chunks of changed objects,
counters) whatever the number of objects. Marking contracts seen is conditional, so of two pages
with the same origin id exactly one keeps it. Tasks are sent once their transaction has committed;
a task redelivered after a worker died between that commit and the sending sends them again.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import ExpressionWrapper, IntegerField, Subquery
from django.utils import timezone

from contracts import runs
from contracts.logs import log_text, log_value
from contracts.models import ContractLog, RunChunk, RunPage, SynchronizationContract, SynchronizationRun
from syncapp.budget import PageBudget, PageTooLarge, value_size
from syncapp.bulk import in_values, rows_update, value_batches
from syncapp.enrichment import Enrichment, objects_enrich
from syncapp.errors import PaginationError, SourceError
from syncapp.incremental import page_cursor
from syncapp.runs.context import SyncContext, context_for_run
from syncapp.runs.finish import run_close_if_complete
from syncapp.runs.planner import (
    ContractState,
    PagePlan,
    Planned,
    Rejected,
    enrichment_candidates,
    page_in_scope,
    page_origin_ids,
    page_plan,
)
from syncapp.runs.reading import Answer, ReadAhead, page_fetch, wait_count
from syncapp.sources.base import Fetched, ReadPage
from syncapp.structured_logs import work_context_add
from workers import dispatch

logger = logging.getLogger(__name__)

Contract = SynchronizationContract
OPEN = RunPage.OPEN_STATUSES


def page_process(*, run_id: int, page_number: int, again: bool = False) -> None:
    """Do what a page needs next: fetch it, judge the pages whose turn it is, or plan it.

    `again`: this task ran before (redelivered after its worker died, or retried after an error), and
    may have committed work and left its tasks unsent: they are sent again (work_resend). A task that
    was merely sent twice does its page's work once and sends nothing again.
    """
    page = (
        RunPage.objects.filter(run_id=run_id, number=page_number)
        .values("status", "request", "run__status", "run__synchronization_id").first()
    )
    if page is None or page["status"] in (RunPage.Status.SKIPPED, RunPage.Status.FAILED):
        return  # fetched ahead past the end, or cancelled
    run = {"status": page["run__status"], "synchronization_id": page["run__synchronization_id"]}
    work_context_add(synchronization=run["synchronization_id"])
    if page["status"] == RunPage.Status.QUEUED:
        if run["status"] != SynchronizationRun.Status.RUNNING and not runs.run_mark_running(run_id=run_id):
            return
        context = context_for_run(synchronization_id=run["synchronization_id"], run_id=run_id)
        answer: Answer | None = page_fetch(context=context, run_id=run_id, number=page_number,
                                           request=page["request"])
        # Read on: the pages after this one are fetched by this task while it judges and plans.
        reading = ReadAhead(context=context, run_id=run_id, seconds=None if context.reader.reads_ahead else 0)
        try:
            while answer is not None and pages_judge(run_id=run_id, context=context, in_hand=answer,
                                                     reading=reading):
                number = reading.next_number()
                answer = reading.take(number) if number is not None else None
        finally:
            reading.hand_over()
    elif run["status"] == SynchronizationRun.Status.RUNNING:
        context = context_for_run(synchronization_id=run["synchronization_id"], run_id=run_id)
        if page["status"] == RunPage.Status.JUDGED:
            page_plan_stored(run_id=run_id, context=context, number=page_number)
        elif page["status"] == RunPage.Status.FETCHED:
            # Fetched ahead (a task that read on left it here): judged in its turn, here if it is next.
            # Nothing was planned from it, so nothing is to be sent again.
            pages_judge(run_id=run_id, context=context)
        else:
            pages_judge(run_id=run_id, context=context)
            if again:
                # It may have stopped after a commit and before sending what it had judged or planned:
                # see that everything after it is under way. (Not for a task merely sent twice: each
                # would send the run's open work again, and their tasks in turn.)
                work_resend(run_id=run_id, from_page=page_number)
    run_close_if_complete(run_id=run_id)


def _head(run_id: int) -> dict[str, Any] | None:
    """Return the next page of the run to judge (the one after those judged), if it is still to judge."""
    # The page number as a subquery, so the page is found by its (run, number) key: a join on the run
    # row would walk every page of the run.
    judged = SynchronizationRun.objects.filter(pk=run_id).order_by().values("pages_judged")[:1]
    return (
        RunPage.objects.filter(
            run_id=run_id, number=ExpressionWrapper(Subquery(judged) + 1, output_field=IntegerField()),
            status__in=(RunPage.Status.QUEUED, RunPage.Status.FETCHED),
        )
        .values("pk", "number", "status", "request").first()
    )


def _answer_store(*, run_id: int, answer: Answer) -> None:
    """Keep the answer of a page fetched ahead until its turn."""
    RunPage.objects.filter(run_id=run_id, number=answer.number, status=RunPage.Status.QUEUED).update(
        status=RunPage.Status.FETCHED, error_message=answer.error[:5000],
        payload=answer.fetched.to_json() if answer.fetched is not None else None,
    )


def _answer_load(*, run_id: int, number: int, status: str) -> Answer | None:
    row = (
        RunPage.objects.filter(run_id=run_id, number=number, status=status)
        .values("payload", "error_message", "request").first()
    )
    if row is None:
        return None
    fetched = Fetched.from_json(row["payload"]) if row["payload"] is not None else None
    return Answer(number=number, fetched=fetched, error=row["error_message"] if fetched is None else "")


def pages_judge(
    *, run_id: int, context: SyncContext, in_hand: Answer | None = None, reading: ReadAhead | None = None
) -> bool:
    """Judge the run's pages in order, as long as the next one has been fetched; then plan this task's own.
    Return whether the page in hand was judged here (the task may read on).

    `in_hand` is the answer this task just fetched: judged at once if its page is next, else kept on
    the page for the task that judges the page before it. Each side writes before it looks, so a page
    is never left fetched with nobody to judge it. A page judged here is planned by this task if it
    fetched it, else by a task sent for it, so pages are planned side by side. `reading`: the pages
    this task fetches ahead, whose requests leave as soon as the page in hand has been read; when it
    plans slower than the source answers, it leaves some pages to tasks of their own to plan
    (ReadAhead.plan_elsewhere), on whichever worker is free.
    """
    head = _head(run_id)
    if in_hand is not None and (head is None or head["number"] != in_hand.number):
        _answer_store(run_id=run_id, answer=in_hand)
        in_hand = None
        head = _head(run_id)
    own: tuple[int, ReadPage] | None = None
    judged_in_hand = False
    while head is not None:
        mine = in_hand is not None and head["number"] == in_hand.number and head["status"] == RunPage.Status.QUEUED
        elsewhere = False
        if mine:
            answer, in_hand = in_hand, None
            elsewhere = reading is not None and reading.plan_elsewhere(number=head["number"])
        elif head["status"] == RunPage.Status.FETCHED:
            answer = _answer_load(run_id=run_id, number=head["number"], status=RunPage.Status.FETCHED)
            if answer is None:
                head = _head(run_id)
                continue
        else:
            break  # not fetched yet: its own task judges it
        judged = page_judge(run_id=run_id, context=context, head=head, answer=answer, keep=not mine or elsewhere,
                            reading=reading if mine else None)
        if judged is None:
            break
        judged_in_hand = judged_in_hand or mine
        if mine and not elsewhere:
            own = (head["number"], judged)
        else:
            dispatch.pages_fetch(run_id=run_id, numbers=[head["number"]])  # its task plans it
        head = _head(run_id)
    if own is not None:
        page_plan_record(run_id=run_id, context=context, number=own[0], read=own[1])
    return judged_in_hand


def page_judge(
    *, run_id: int, context: SyncContext, head: dict[str, Any], answer: Answer, keep: bool,
    reading: ReadAhead | None = None,
) -> ReadPage | None:
    """Judge the run's next page in order: is it part of the run, and what comes after it.

    Return the page read, or None when another task took it, the run has ended, or the page failed.
    `keep` keeps its answer on the page for the task that will plan it; `reading` sends the requests
    of the pages after it as soon as they are made, before it is planned.
    """
    reader = context.reader
    request = head["request"]
    if answer.fetched is not None and not reader.same_request(answer.fetched.request, request):
        # Fetched ahead on a guess that the page before proved wrong: ask what reading in order asks.
        answer = page_fetch(context=context, run_id=run_id, number=head["number"], request=request)
        keep = True
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
            RunPage.objects.select_for_update(of=("self",))
            .filter(pk=head["pk"], status=head["status"], run__status=SynchronizationRun.Status.RUNNING)
            .only("pk").first()
        )
        if locked is None:
            return None  # judged meanwhile by another task, which goes on from there; or the run ended
        if read is None:
            page_fail_record(run_id=run_id, number=head["number"], message=error, judged=False)
            return None
        RunPage.objects.filter(pk=head["pk"]).update(
            status=RunPage.Status.JUDGED, object_count=len(read.objects),
            payload=answer.fetched.to_json() if keep else None,
        )
        runs.run_add_counts(run_id=run_id, pages_judged=1)
        pages_follow(run_id=run_id, context=context, number=head["number"], following=read.next_request,
                     sends=sends, reading=reading)
        sends.dispatch(run_id=run_id)
    return read


def page_plan_stored(*, run_id: int, context: SyncContext, number: int) -> None:
    """Plan a page judged by another task, from the answer it kept (or asked again, if it kept none)."""
    row = RunPage.objects.filter(run_id=run_id, number=number, status=RunPage.Status.JUDGED).values(
        "payload", "request"
    ).first()
    if row is None:
        return
    if row["payload"] is not None:
        fetched = Fetched.from_json(row["payload"])
    else:
        # Its task died between judging and planning it: ask the source again.
        answer = page_fetch(context=context, run_id=run_id, number=number, request=row["request"])
        if answer.fetched is None:
            page_fail(run_id=run_id, number=number, message=answer.error)
            return
        fetched = answer.fetched
    try:
        read = context.reader.page(request=row["request"], fetched=fetched)
    except (SourceError, PaginationError) as problem:
        page_fail(run_id=run_id, number=number, message=str(problem))
        return
    page_plan_record(run_id=run_id, context=context, number=number, read=read)


def page_plan_record(*, run_id: int, context: SyncContext, number: int, read: ReadPage) -> None:
    """Plan a judged page's objects and record the plan in one transaction; pages are planned side by side.

    The details of its objects (sourceConfig.extraDataConfigs) are fetched first, outside the
    transaction: no row stays locked while the source answers.
    """
    sends = Sends()
    run = runs.run_facts(run_id=run_id)
    if run is not None and run.scope:
        read = page_in_scope(read, scope=run.scope, id_position=context.rules.id_position)
    try:
        enrichment = page_enrich(run_id=run_id, context=context, number=number, read=read)
    except PageTooLarge as error:
        page_fail(run_id=run_id, number=number, message=str(error))
        return
    cursor, cursor_missing = (
        page_cursor(read.objects, config=context.incremental) if context.incremental is not None else (None, 0)
    )
    with transaction.atomic():
        # Claimed by marking it done, which its transaction undoes if anything below fails; its contracts are
        # read with it.
        states = page_claim(
            run_id=run_id, number=number, cursor=cursor,
            synchronization_id=run.synchronization_id if run is not None else None,
            origin_ids=page_origin_ids(read.objects, id_position=context.rules.id_position),
        )
        if states is None or run is None:
            return  # planned already (a redelivered task), or the run ended
        if enrichment is not None:
            # Counted with the plan: a redelivered or retried task that fetched the details again, but
            # did not plan the page, adds nothing.
            runs.run_add_counts(run_id=run_id, enrichments=enrichment.requests,
                                enrichments_failed=len(enrichment.failures))
        page_record(run=run, context=context, number=number, read=read, sends=sends, enrichment=enrichment,
                    cursor_missing=cursor_missing, states=states)
        sends.dispatch(run_id=run_id)


_PAGES, _RUNS = RunPage._meta.db_table, SynchronizationRun._meta.db_table


def page_claim(
    *, run_id: int, number: int, cursor: Any, synchronization_id: int | None, origin_ids: list[str]
) -> dict[str, ContractState] | None:
    """Mark a judged page of a running run done, with its cursor value, and read the contracts of its origin
    ids; return them, or None when this call did not mark it (a redelivered task's page, a run that ended).

    One statement on PostgreSQL (the contracts are read only if the page was marked), two elsewhere.
    """
    field = RunPage._meta.get_field("cursor_value")
    value = None if cursor is None else field.get_db_prep_value(cursor, connection)
    postgresql = connection.vendor == "postgresql"
    claim = (
        f"UPDATE {_PAGES} SET status = %s, payload = NULL, finished_at = %s, "
        f"cursor_value = %s{'::jsonb' if postgresql else ''} WHERE run_id = %s AND number = %s AND status = %s "
        f"AND EXISTS (SELECT 1 FROM {_RUNS} WHERE id = %s AND status = %s)"
    )
    params = [RunPage.Status.DONE, connection.ops.adapt_datetimefield_value(timezone.now()), value, run_id, number,
              RunPage.Status.JUDGED, run_id, SynchronizationRun.Status.RUNNING]
    if postgresql and synchronization_id is not None:
        with connection.cursor() as db:
            db.execute(
                f"WITH claimed AS ({claim} RETURNING id) SELECT claimed.id, {_STATE_COLUMNS_OF_C} FROM claimed "
                f"LEFT JOIN {_CONTRACTS} AS c ON c.synchronization_id = %s AND c.origin_id = ANY(%s)",
                [*params, synchronization_id, origin_ids],
            )
            rows = db.fetchall()
        if not rows:
            return None
        return {row[2]: ContractState(row[1], *row[3:]) for row in rows if row[1] is not None}
    with connection.cursor() as db:
        db.execute(claim, params)
        if db.rowcount <= 0:
            return None
    if synchronization_id is None:
        return {}
    return contract_states(synchronization_id=synchronization_id, origin_ids=origin_ids)


def page_enrich(*, run_id: int, context: SyncContext, number: int, read: ReadPage) -> Enrichment | None:
    """Fetch the details of a judged page's objects that need them (counted on the run once planned)."""
    enricher = context.enricher
    if enricher is None or not read.objects:
        return None
    if not RunPage.objects.filter(run_id=run_id, number=number, status=RunPage.Status.JUDGED).exists():
        return None  # planned already by another task: its details are not needed again
    contracts, force = None, False
    if enricher.only_changed:
        # Read outside the page's transaction: the plan checks again that what it writes was enriched.
        facts = runs.run_facts(run_id=run_id)
        force = facts is not None and facts.is_forced
        contracts = contract_states(
            synchronization_id=context.synchronization.pk,
            origin_ids=page_origin_ids(read.objects, id_position=context.rules.id_position),
        )
    chosen = enrichment_candidates(objects=read.objects, rules=context.rules,
                                   before_conditions=enricher.before_conditions, hashes=read.hashes,
                                   contracts=contracts, force=force)
    # The page's objects and their details share the page's byte budget.
    budget = PageBudget(where=f"page {number}")
    budget.add(value_size(read.objects), what="its objects")
    enrichment = objects_enrich(enricher=enricher, objects=read.objects, chosen=chosen,
                                on_wait=lambda wait: wait_count(run_id=run_id, wait=wait), budget=budget)
    if enrichment.failures:
        logger.warning("run %s page %s: %s objects without their details, e.g. %s", run_id, number,
                       len(enrichment.failures), next(iter(enrichment.failures.values())))
    return enrichment


class Sends:
    """What a planned page sends once its transaction has committed."""

    def __init__(self) -> None:
        self.pages: list[int] = []
        self.chunks: list[int] = []

    def dispatch(self, *, run_id: int) -> None:
        dispatch.chunks_write(run_id=run_id, chunk_ids=self.chunks)
        dispatch.pages_fetch(run_id=run_id, numbers=self.pages)


def page_fail_record(*, run_id: int, number: int, message: str, judged: bool) -> None:
    """Record that a page could not be read: the run fetches no further, deletes nothing and ends failed.

    `judged`: the page was judged before it failed (its objects could not be planned): it ends here.
    """
    logger.warning("run %s page %s failed: %s", run_id, number, message)
    now = timezone.now()
    RunPage.objects.filter(run_id=run_id, number=number).update(
        status=RunPage.Status.FAILED, error_message=message[:5000], payload=None, finished_at=now
    )
    if judged:
        runs.run_add_counts(run_id=run_id, pages_ended=1)
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
_STATE_COLUMNS_OF_C = "c.id, c.origin_id, c.origin_hash, c.config_hash, c.status, c.target_id, c.target_hash, " \
    "c.last_seen_run_id"


def contract_states(*, synchronization_id: int, origin_ids: list[str]) -> dict[str, ContractState]:
    """Return the contracts of these origin ids, in one query."""
    rows = []
    for batch in value_batches(origin_ids) if origin_ids else []:
        where, params = in_values("origin_id", batch)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, origin_id, origin_hash, config_hash, status, target_id, target_hash, last_seen_run_id "
                f"FROM {_CONTRACTS} WHERE synchronization_id = %s AND {where}", [synchronization_id, *params]
            )
            rows += cursor.fetchall()
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


def contracts_mark_seen(*, pks: list[int], run_id: int, now, counts: dict[str, int] | None = None) -> set[int]:
    """Mark contracts seen by this run (their targets are not deleted as vanished); return those this
    call marked, not those another page of the run marked before.

    `counts`: add these to the run's counters too, in the same statement on PostgreSQL.
    """
    marked: set[int] = set()
    if connection.vendor == "postgresql" and pks:
        counted, counted_params = runs.run_counts_sql(run_id=run_id, **counts) if counts else ("", [])
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH marked AS (UPDATE {_CONTRACTS} SET last_seen_run_id = %s, source_last_checked = %s "
                f"WHERE id = ANY(%s::bigint[]) AND (last_seen_run_id IS NULL OR last_seen_run_id <> %s) RETURNING id)"
                + (f", counted AS ({counted})" if counted else "") + " SELECT id FROM marked",
                [run_id, now, pks, run_id, *counted_params],
            )
            return {row[0] for row in cursor.fetchall()}
    if counts:
        runs.run_add_counts(run_id=run_id, **counts)
    for batch in value_batches(pks) if pks else []:
        where, params = in_values("id", batch)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_CONTRACTS} SET last_seen_run_id = %s, source_last_checked = %s "
                f"WHERE {where} AND (last_seen_run_id IS NULL OR last_seen_run_id <> %s) RETURNING id",
                [run_id, now, *params, run_id],
            )
            marked.update(row[0] for row in cursor.fetchall())
    return marked


def invalid_record(
    *, run: runs.RunFacts, plan: PagePlan, states: dict[str, ContractState], now
) -> None:
    """Record what could not be taken up: a log each, and the error on their own contracts."""
    if not plan.invalid:
        return
    sync_id = run.synchronization_id

    def contract_of(rejected: Rejected) -> ContractState | None:
        return states.get(rejected.origin_id) if rejected.origin_id else None

    def status_of(rejected: Rejected) -> str:
        return Contract.Status.FAILED if rejected.failed else Contract.Status.INVALID

    ContractLog.objects.bulk_create([
        ContractLog(
            synchronization_id=sync_id, contract_id=getattr(contract_of(rejected), "pk", None), run_id=run.pk,
            origin_id=rejected.origin_id, status=status_of(rejected),
            source_object=log_value(rejected.source_object), error=log_text(rejected.error),
        )
        for rejected in plan.invalid
    ])
    own = [
        Contract(pk=contract.pk, status=status_of(rejected), last_error=log_text(rejected.error),
                 source_last_checked=now, updated_at=now)
        for rejected in plan.invalid
        if not rejected.duplicate and (contract := contract_of(rejected)) is not None
    ]
    if own:
        rows_update(Contract, own, ["status", "last_error", "source_last_checked", "updated_at"])


def holds_record(*, run: runs.RunFacts, context: SyncContext, holds: list[Planned],
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
    *, run: runs.RunFacts, context: SyncContext, number: int, writes: list[Planned],
    states: dict[str, ContractState], counts: dict[str, int] | None = None,
) -> list[int]:
    """Store the page's changed objects as chunks of planned writes; return their ids.

    `counts`: add these to the run's counters too, in the same statement on PostgreSQL.
    """
    size = context.chunk_size
    chunks = []
    for start in range(0, len(writes), size):
        part = writes[start:start + size]
        items = [
            [states[item.origin_id].pk, item.origin_id, item.origin_hash, item.target_hash, item.source_object,
             item.target_object]
            for item in part
        ]
        chunks.append(RunChunk(run_id=run.pk, page_number=number, size=len(part),
                               items=orjson.dumps(items, default=str).decode()))
    if chunks and connection.vendor == "postgresql":
        counted, counted_params = runs.run_counts_sql(run_id=run.pk, **counts) if counts else ("", [])
        # A row of values a chunk, not arrays: a text array quotes every double quote of the items' JSON.
        rows = ", ".join("(%s, %s, %s, %s, %s, 0, 0, %s)" for _ in chunks)
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH made AS (INSERT INTO {RunChunk._meta.db_table} "
                f"(run_id, page_number, size, items, status, attempt, progress, created_at) VALUES {rows} "
                "RETURNING id)" + (f", counted AS ({counted})" if counted else "") + " SELECT id FROM made",
                [*(value for chunk in chunks
                   for value in (run.pk, number, chunk.size, chunk.items, RunChunk.Status.QUEUED, now)),
                 *counted_params],
            )
            return [row[0] for row in cursor.fetchall()]
    if counts:
        runs.run_add_counts(run_id=run.pk, **counts)
    if not chunks:
        return []
    created = RunChunk.objects.bulk_create(chunks)
    if any(chunk.pk is None for chunk in created):  # a database that returns no ids from a bulk insert
        return list(RunChunk.objects.filter(run_id=run.pk, page_number=number, status=RunChunk.Status.QUEUED)
                    .values_list("pk", flat=True))
    return [chunk.pk for chunk in created]


def page_record(
    *, run: runs.RunFacts, context: SyncContext, number: int, read: ReadPage, sends: Sends,
    enrichment: Enrichment | None = None, cursor_missing: int = 0, states: dict[str, ContractState] | None = None,
) -> None:
    """Plan a page's objects and record the plan. Runs in the page's transaction.

    `states`: the contracts of the page's origin ids, if read already (page_claim); else read here.
    """
    now = timezone.now()
    sync_id = run.synchronization_id
    rules = context.rules
    if states is None:
        states = contract_states(
            synchronization_id=sync_id, origin_ids=page_origin_ids(read.objects, id_position=rules.id_position)
        )
    plan = page_plan(objects=read.objects, hashes=read.hashes, contracts=states, rules=rules, run_id=run.pk,
                     force=run.is_forced, enrichment=enrichment)
    states, created = contracts_ensure(synchronization_id=sync_id, origin_ids=plan.seen, states=states,
                                       run_id=run.pk, now=now)
    # A page with nothing to write ends with its seen marks: the run's counters go with them, as if every
    # mark held; a page that lost a contract to another page of the run corrects them below.
    folded = (
        page_counts(plan=plan, holds=[], writes=[], cursor_missing=cursor_missing)
        if not plan.writes and not plan.holds else None
    )
    # Pages are planned side by side: of two pages with one origin id, the one that marks its contract
    # first keeps it, the other reports a duplicate, as the later page does when reading in order.
    marked = contracts_mark_seen(
        pks=[states[origin_id].pk for origin_id in plan.seen if states[origin_id].pk not in created],
        run_id=run.pk, now=now, counts=folded,
    )
    duplicates_set_aside(plan=plan, kept={*created, *marked}, states=states)
    writes = plan.writes
    holds: list[Planned] = []
    if plan.holds:
        present = context.writer.existing([states[item.origin_id].target_id for item in plan.holds])
        holds = [item for item in plan.holds if states[item.origin_id].target_id in present]
        writes = [*writes, *(item for item in plan.holds if states[item.origin_id].target_id not in present)]
    holds_record(run=run, context=context, holds=holds, states=states, now=now)
    invalid_record(run=run, plan=plan, states=states, now=now)
    counts = page_counts(plan=plan, holds=holds, writes=writes, cursor_missing=cursor_missing)
    if folded is not None:
        # Counted with the seen marks: add what the duplicates set aside changed, if anything.
        correction = {name: counts[name] - folded[name] for name in counts if counts[name] != folded[name]}
        if correction:
            runs.run_add_counts(run_id=run.pk, **correction)
        counts = None
    sends.chunks += chunks_create(run=run, context=context, number=number, writes=writes, states=states,
                                  counts=counts)


def page_counts(*, plan: PagePlan, holds: list[Planned], writes: list[Planned], cursor_missing: int) -> dict[str, int]:
    """Return what a planned page adds to the run's counters."""
    failed = sum(1 for rejected in plan.invalid if rejected.failed)
    return {
        "found": plan.found, "filtered": plan.filtered, "unchanged": len(plan.unchanged) + len(holds),
        "invalid": len(plan.invalid) - failed, "failed": failed, "objects_queued": len(writes), "pages_fetched": 1,
        "pages_ended": 1, "cursor_missing": cursor_missing,
    }


def duplicates_set_aside(*, plan: PagePlan, kept: set[int], states: dict[str, ContractState]) -> None:
    """Move the objects whose contract another page of this run marked first to the plan's duplicates."""
    def lost(origin_id: str) -> bool:
        return states[origin_id].pk not in kept

    if all(not lost(origin_id) for origin_id in plan.seen):
        return
    taken: list[tuple[str, Any]] = []
    for item in [*plan.writes, *plan.holds]:
        if lost(item.origin_id):
            taken.append((item.origin_id, item.source_object))
    plan.writes = [item for item in plan.writes if not lost(item.origin_id)]
    plan.holds = [item for item in plan.holds if not lost(item.origin_id)]
    for origin_id in [origin_id for origin_id in plan.unchanged if lost(origin_id)]:
        taken.append((origin_id, None))
    plan.unchanged = [origin_id for origin_id in plan.unchanged if not lost(origin_id)]
    for rejected in plan.invalid:
        if rejected.origin_id and not rejected.duplicate and lost(rejected.origin_id):
            rejected.duplicate = True
    plan.invalid += [
        Rejected(origin_id, source, f"origin id {origin_id!r} appears more than once in this run", duplicate=True)
        for origin_id, source in taken
    ]


def pages_wanted(*, reader: Any, number: int, following: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    """Return the pages after this one that may be fetched now, with their requests: the next page, and
    those known ahead without reading (page numbers, offsets), up to the reader's concurrency and maxPages.

    The pages ahead grow from one after the first page to `concurrency` (1, 2, 4, …), so a source of a
    few pages is not asked for many past its end.
    """
    max_pages = reader.max_pages
    if following is None or (max_pages is not None and number >= max_pages):
        return {}
    wanted = {number + 1: following}
    for step in range(1, min(reader.concurrency, 2 ** min(number - 1, 5))):
        if max_pages is not None and number + 1 + step > max_pages:
            break
        ahead = reader.ahead(request=following, steps=step)
        if ahead is None:
            break
        wanted[number + 1 + step] = ahead
    return wanted


def pages_follow(
    *, run_id: int, context: SyncContext, number: int, following: dict[str, Any] | None, sends: Sends,
    reading: ReadAhead | None = None,
) -> None:
    """Create the page after this one with its request, and the pages that may be fetched ahead of it;
    send their tasks, but for the pages `reading` fetches."""
    reader = context.reader
    max_pages = reader.max_pages
    if following is None:
        SynchronizationRun.objects.filter(pk=run_id).update(fetch_finished=True)
        pages_skip_after(run_id=run_id, number=number)
        return
    if max_pages is not None and number >= max_pages:
        runs.run_fail(run_id=run_id, message=f"stopped at maxPages ({max_pages}): the source has more pages")
        SynchronizationRun.objects.filter(pk=run_id).update(max_pages_reached=True)
        pages_skip_after(run_id=run_id, number=number)
        return
    wanted = pages_wanted(reader=reader, number=number, following=following)
    existing = set(
        RunPage.objects.filter(run_id=run_id, number__in=list(wanted)).values_list("number", flat=True)
    )
    if number + 1 in existing:
        # Fetched ahead on a guess: from now on it holds the request reading in order makes.
        RunPage.objects.filter(run_id=run_id, number=number + 1).update(request=following)
    new = [
        RunPage(run_id=run_id, number=page, request=request) for page, request in wanted.items() if page not in existing
    ]
    if reading is not None:
        # Their requests leave now, before this page is planned; a page made before (and sent to its own
        # task, or fetched by this one already) is not asked for again.
        reading.start(wanted={page.number: page.request for page in new})
    RunPage.objects.bulk_create(new, ignore_conflicts=True)
    sends.pages += [page.number for page in new if reading is None or not reading.owns(page.number)]


def work_resend(*, run_id: int, from_page: int) -> None:
    """Send again what planning from this page on may have left unsent: its open chunks and next pages.

    Every page after it still to fetch or to plan: a task that read on may have judged pages past its
    own, and created pages past those, and died before planning or sending them (such pages are never
    more than `concurrency` past the last judged one). A page fetched ahead waits for its turn.
    """
    chunks = RunChunk.objects.filter(run_id=run_id, page_number__gte=from_page, status=RunChunk.Status.QUEUED)
    dispatch.chunks_write(run_id=run_id, chunk_ids=list(chunks.values_list("pk", flat=True)))
    pages = RunPage.objects.filter(
        run_id=run_id, status__in=(RunPage.Status.QUEUED, RunPage.Status.JUDGED), number__gt=from_page
    )
    dispatch.pages_fetch(run_id=run_id, numbers=list(pages.values_list("number", flat=True)))


def page_fail(*, run_id: int, number: int, message: str) -> None:
    """Record that a page's task failed outside its answer (a rate limit not waited out, a bug)."""
    with transaction.atomic():
        page = (
            RunPage.objects.select_for_update().filter(run_id=run_id, number=number, status__in=OPEN)
            .only("pk", "status").first()
        )
        if page is not None:
            page_fail_record(run_id=run_id, number=number, message=message,
                             judged=page.status == RunPage.Status.JUDGED)
    run_close_if_complete(run_id=run_id)


def page_defer(*, run_id: int, number: int, seconds: float, message: str) -> None:
    """Hold a page back `seconds` from now, recorded on it and on the run, instead of waiting in a worker.

    The resend sweep (syncapp.runs.resend) sends it again once due.
    """
    until = timezone.now() + timedelta(seconds=seconds)
    with transaction.atomic():
        deferred = RunPage.objects.filter(run_id=run_id, number=number, status__in=OPEN).update(not_before=until)
        if deferred:
            runs.run_add_counts(run_id=run_id, retries=1)
            runs.run_deferral_record(run_id=run_id)
            dispatch.deferred_wake(at=until)
    if deferred:
        logger.warning("run %s page %s deferred until %s: %s", run_id, number, until.isoformat(), message)
