"""Write a chunk of planned objects: one task, one transaction, bulk statements.

A chunk task takes its chunk and locks the contracts of its objects (one statement on PostgreSQL,
which also reads what the writer checks against: the register's schema version), hands the writes
to the target's writer, and records every outcome in bulk: contracts, contract logs, the chunk and
the run's counters. A redelivered chunk finds itself done and writes nothing twice. An object the
target refuses (invalid, a constraint) gets its own outcome and never fails the others: on
PostgreSQL the bulk write has no savepoint, and when one object spoils it the chunk's transaction
rolls back and the chunk is written again object by object. One that failed for a passing reason
is written again later as a chunk of its own, so it holds up nothing else: the object stays the unit
of isolation and retry, the chunk is the unit of throughput.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from contracts import runs
from contracts.logs import log_text, log_value
from contracts.models import ContractLog, RunChunk, SynchronizationContract, SynchronizationRun
from syncapp import metrics
from syncapp.bulk import rows_insert, rows_update, transactions_lock_database
from syncapp.http import retry_after_bound
from syncapp.ids import uuid7
from syncapp.runs.actions import chunk_prepare, planned_write
from syncapp.runs.context import SyncContext, context_for_run
from syncapp.runs.finish import run_close_if_complete
from syncapp.structured_logs import work_context_add
from syncapp.targets.base import BARE, GUARDED, ONE_BY_ONE, BulkWriteFailed, Outcome, Version, Write, Writer
from workers import dispatch

logger = logging.getLogger(__name__)

Contract = SynchronizationContract
# Attempts of an object whose write fails for a passing reason (a database hiccup, a target's 5xx or
# rate limit), the first included; then it counts as failed.
OBJECT_ATTEMPTS = 5
RETRY_BACKOFF_MAX_SECONDS = 60
CONTRACT_FIELDS = [
    "origin_hash", "config_hash", "target_id", "target_hash", "status", "last_error", "target_last_action",
    "target_last_changed", "target_last_synced", "source_last_synced", "source_last_changed",
    "source_last_checked", "last_processed_run", "updated_at",
]


@dataclass
class Item:
    """One planned write of a chunk, as the page stored it."""

    contract_id: int
    origin_id: str
    origin_hash: str
    target_hash: str
    source_object: Any
    target_object: Any

    def to_json(self) -> list[Any]:
        return [self.contract_id, self.origin_id, self.origin_hash, self.target_hash, self.source_object,
                self.target_object]


def chunk_items(chunk: RunChunk | Claimed) -> list[Item]:
    return [Item(*entry) for entry in orjson.loads(chunk.items or "[]")]


def retry_countdown(attempt: int) -> float:
    """Return how long an object waits before its next attempt: 1, 2, 4 ... seconds."""
    return float(min(RETRY_BACKOFF_MAX_SECONDS, 2 ** max(0, attempt - 1)))


class Tally:
    """The outcomes of a chunk, counted for the run."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(("created", "updated", "unchanged", "invalid", "failed"), 0)
        self.done = 0
        self.retries = 0

    def add(self, kind: str) -> None:
        self.counts[kind] += 1
        self.done += 1

    def record(self, *, run_id: int) -> runs.Completion | None:
        """Add the outcomes to the run's counters; return the run's completion as that statement left it."""
        return runs.run_add_counts_returning(run_id=run_id, objects_done=self.done, retries=self.retries,
                                             **self.counts)


def chunk_process(*, run_id: int, chunk_id: int) -> None:
    """Write the objects of one chunk of a run and record each one's outcome."""
    facts = runs.run_facts(run_id=run_id)
    if facts is None:
        return
    work_context_add(synchronization=facts.synchronization_id)
    retried: list[tuple[int, float]] = []
    completion: runs.Completion | None = None
    context = context_for_run(synchronization_id=facts.synchronization_id, run_id=run_id)
    if not context.writer.transactional:
        retried = chunk_write_one_by_one(facts=facts, run_id=run_id, context=context, chunk_id=chunk_id)
    else:
        # The rules' calls to other hosts are made before the transaction where it locks the database (SQLite).
        with chunk_prepare(context=context, facts=facts, run_id=run_id, chunk_id=chunk_id, items_of=chunk_items):
            retried, completion = chunk_write_in_transaction(facts=facts, run_id=run_id, context=context,
                                                             chunk_id=chunk_id)
    for retry_id, countdown in retried:
        dispatch.chunks_write(run_id=run_id, chunk_ids=[retry_id], countdown=countdown)
    # The chunk's counters were added under the run row's lock: if the run was not complete then, a
    # task that counted after it (and so sees it complete) closes it, and this one need not look again.
    if completion is None or completion.may_close:
        run_close_if_complete(run_id=run_id)


def chunk_write_in_transaction(
    *, facts: runs.RunFacts, run_id: int, context: SyncContext, chunk_id: int
) -> tuple[list[tuple[int, float]], runs.Completion | None]:
    """Take a chunk and write it in one transaction; return the chunks of objects to retry, with their
    countdowns, and the run's completion as the chunk's counters left it.

    On PostgreSQL the writer writes in bulk with no savepoint around it (BARE): if one object spoils the
    bulk statement, the whole transaction rolls back and the chunk is taken and written again, each
    object in a savepoint of its own, so the failing ones get their outcome and the others are written,
    as a savepoint around the bulk write would have it, two statements less a chunk. With rules around
    the writes the savepoint stays (GUARDED): a rule may call out, and runs once an object.
    """
    bulk = BARE if connection.vendor == "postgresql" and context.actions is None else GUARDED
    try:
        return _chunk_take_and_write(facts=facts, run_id=run_id, context=context, chunk_id=chunk_id, bulk=bulk)
    except BulkWriteFailed as failed:
        logger.info("run %s chunk %s: %s: writing it again object by object", run_id, chunk_id, failed)
    return _chunk_take_and_write(facts=facts, run_id=run_id, context=context, chunk_id=chunk_id, bulk=ONE_BY_ONE)


def _chunk_take_and_write(
    *, facts: runs.RunFacts, run_id: int, context: SyncContext, chunk_id: int, bulk: str
) -> tuple[list[tuple[int, float]], runs.Completion | None]:
    with transaction.atomic():
        chunk = chunk_claim(run_id=run_id, chunk_id=chunk_id, writer=context.writer)
        if chunk is None:
            return [], None  # done (a redelivered task), or the run ended
        return chunk_write(facts=facts, run_id=run_id, context=context, chunk=chunk, bulk=bulk)


@dataclass
class Claimed:
    """A chunk this task took: marked done in its transaction, so a redelivered task finds nothing."""

    pk: int
    page_number: int
    attempt: int
    items: str
    # Its objects' contracts by id, locked, when the claim read them (PostgreSQL); else chunk_plan reads them.
    contracts: dict[int, Contract] | None = None
    # What the writer checks against, as the claim read it (WriterKind.version_sql).
    version: Version | None = None


_CONTRACT_FIELDS_ALL = list(Contract._meta.concrete_fields)


def chunk_claim(*, run_id: int, chunk_id: int, writer: Writer | None = None) -> Claimed | None:
    """Take a queued chunk of a running run; None when it is done or the run ended.

    One statement on PostgreSQL, which also locks the contracts of its objects (in id order, as the
    pages and other chunks lock them) and reads the `writer`'s version (version_sql); two elsewhere.
    """
    now = timezone.now()
    if connection.vendor == "postgresql":
        return _chunk_claim_postgresql(run_id=run_id, chunk_id=chunk_id, writer=writer, now=now)
    row = (
        RunChunk.objects.select_for_update()
        .filter(pk=chunk_id, run_id=run_id, status=RunChunk.Status.QUEUED,
                run__status=SynchronizationRun.Status.RUNNING)
        .values_list("pk", "page_number", "attempt", "items").first()
    )
    if row is None:
        return None
    RunChunk.objects.filter(pk=chunk_id).update(status=RunChunk.Status.DONE, items=None, finished_at=now)
    return Claimed(*row)


def _chunk_claim_postgresql(*, run_id: int, chunk_id: int, writer: Writer | None, now) -> Claimed | None:
    """Take the chunk, lock its contracts and read the writer's version: one statement whose first row is
    the chunk's (its contract columns empty) and the others its contracts' (its chunk columns empty)."""
    chunks, run_table, contracts = RunChunk._meta.db_table, SynchronizationRun._meta.db_table, Contract._meta.db_table
    version = writer.version_sql() if writer is not None else None
    version_sql, version_params = (f"({version[0]})", version[1]) if version is not None else ("NULL", [])
    columns = ", ".join(f"c.{field.column}" for field in _CONTRACT_FIELDS_ALL)
    nothing = ", ".join("NULL" for _ in _CONTRACT_FIELDS_ALL)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH old AS (SELECT id, page_number, attempt, items FROM {chunks} "
            f"WHERE id = %s AND run_id = %s AND status = %s FOR UPDATE), "
            f"claimed AS (UPDATE {chunks} AS c SET status = %s, items = NULL, finished_at = %s "
            f"FROM old, {run_table} AS r WHERE c.id = old.id AND r.id = c.run_id AND r.status = %s "
            f"RETURNING old.id, old.page_number, old.attempt, old.items), "
            # An item is [contract id, origin id, ...] (Item.to_json): the ids are read from the items' JSON.
            # PostgreSQL's JSON functions refuse the escape of a NUL character, which an object may hold (and
            # then fail alone at its write): each becomes U+FFFD here, which keeps the JSON valid also where
            # the backslash is itself escaped, and leaves the ids as they are.
            f"locked AS (SELECT {columns} FROM {contracts} AS c WHERE c.id IN (SELECT (item ->> 0)::bigint "
            f"FROM claimed, json_array_elements(replace(claimed.items, '\\u0000', '\\ufffd')::json) AS item) "
            f"ORDER BY c.id FOR UPDATE) "
            f"SELECT claimed.id, claimed.page_number, claimed.attempt, claimed.items, {version_sql}, {nothing} "
            f"FROM claimed UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, locked.* FROM locked",
            [chunk_id, run_id, RunChunk.Status.QUEUED, RunChunk.Status.DONE, now, SynchronizationRun.Status.RUNNING,
             *version_params],
        )
        rows = cursor.fetchall()
    head = next((row for row in rows if row[0] is not None), None)
    if head is None:
        return None
    names = [field.attname for field in _CONTRACT_FIELDS_ALL]
    locked = [Contract.from_db(connection.alias, names, row[5:]) for row in rows if row[0] is None]
    return Claimed(*head[:4], contracts={contract.pk: contract for contract in locked},
                   version=Version(head[4]) if version is not None else None)


@dataclass
class Planned:
    """What writing a claimed chunk needs: its objects with their contracts, and those the target gets."""

    chunk: Claimed
    now: Any
    tally: Tally
    todo: list[tuple[Item, Contract]]
    writes: list[tuple[Item, Contract]]
    # How the writer writes them (syncapp.targets.base: GUARDED, BARE, ONE_BY_ONE), and what it checks
    # them against as the chunk's claim read it.
    bulk: str = GUARDED
    version: Version | None = None

    def sent(self, *, run_id: int, push_origin: tuple[int, ...] = ()) -> list[Write]:
        """Return the writes to send to the target (`push_origin`: the run's, RunFacts.push_origin)."""
        return [Write(target_id=contract.target_id, data=item.target_object, origin_id=item.origin_id,
                      key=f"run-{run_id}/{item.origin_id}", known_hash=contract.target_hash, push_origin=push_origin)
                for item, contract in self.writes]


def chunk_write(
    *, facts: runs.RunFacts, run_id: int, context: SyncContext, chunk: Claimed, bulk: str = GUARDED
) -> tuple[list[tuple[int, float]], runs.Completion | None]:
    """Write a claimed chunk and record it; return the chunks of objects to retry, with their countdowns,
    and the run's completion as the chunk's counters left it. `bulk`: how the writer writes (Planned)."""
    started = time.monotonic()
    planned = chunk_plan(facts=facts, run_id=run_id, chunk=chunk)
    planned.bulk = bulk
    outcomes = planned_write(context=context, facts=facts, run_id=run_id, planned=planned)
    recorded = chunk_record(facts=facts, run_id=run_id, context=context, planned=planned, outcomes=outcomes)
    metrics.chunk_write_record(synchronization=context.synchronization.reference, seconds=time.monotonic() - started)
    return recorded


def chunk_plan(*, facts: runs.RunFacts, run_id: int, chunk: Claimed) -> Planned:
    """Read the contracts of a claimed chunk (locked, inside a transaction) and pick what the target gets."""
    now = timezone.now()
    items = chunk_items(chunk)
    contracts = chunk.contracts
    if contracts is None:
        contracts = {
            contract.pk: contract
            for contract in Contract.objects.select_for_update().filter(pk__in=[item.contract_id for item in items])
            .order_by("pk")
        }
    tally = Tally()
    todo: list[tuple[Item, Contract]] = []
    for item in items:
        contract = contracts.get(item.contract_id)
        if contract is None or contract.last_processed_run_id == run_id:
            tally.done += 1  # deleted meanwhile, or already written by this run
        elif not facts.is_forced and contract.target_id and contract.target_hash == item.target_hash:
            # Another run wrote exactly this object since the page was planned.
            contract.last_processed_run_id = run_id
            contract.source_last_checked = now
            todo.append((item, contract))
        else:
            todo.append((item, contract))
    writes = [
        (item, contract) for item, contract in todo
        if facts.is_forced or not (contract.target_id and contract.target_hash == item.target_hash)
    ]
    return Planned(chunk=chunk, now=now, tally=tally, todo=todo, writes=writes, version=chunk.version)


def chunk_record(
    *, facts: runs.RunFacts, run_id: int, context: SyncContext, planned: Planned, outcomes: list[Outcome]
) -> list[tuple[int, float]]:
    """Record what the target answered for a planned chunk; return the chunks of objects to retry."""
    chunk, now, tally, todo, writes = planned.chunk, planned.now, planned.tally, planned.todo, planned.writes
    outcome_of = {id(contract): outcome for (_, contract), outcome in zip(writes, outcomes, strict=True)}
    logs: list[dict[str, Any]] = []
    written: list[tuple[Item, Contract]] = []
    retry_chunks: list[RunChunk] = []
    kept: list[str] = []  # changed at the target too, and the target wins: its version goes back
    for item, contract in todo:
        outcome = outcome_of.get(id(contract))
        if outcome is None:
            tally.add("unchanged")
            continue
        if outcome.kind == Outcome.RETRY and outcome.wait_seconds > settings.SYNC_MAX_RATE_LIMIT_WAIT:
            outcome = Outcome(Outcome.FAILED, error=f"{outcome.error}: the target asks to wait "
                              f"{outcome.wait_seconds:.0f} s, more than SYNC_MAX_RATE_LIMIT_WAIT")
        if outcome.kind == Outcome.RETRY and chunk.attempt + 1 < OBJECT_ATTEMPTS:
            # A wait no worker may hold defers the object: the resend sweep sends it once due.
            deferred = outcome.wait_seconds > retry_after_bound() or (
                outcome.wait_seconds > 0 and settings.TASKS_IN_PROCESS
            )
            retry_chunks.append(RunChunk(
                run_id=run_id, page_number=chunk.page_number, size=1, attempt=chunk.attempt + 1,
                items=orjson.dumps([item.to_json()], default=str).decode(),
                not_before=now + timedelta(seconds=outcome.wait_seconds) if deferred else None,
            ))
            tally.retries += 1
            logger.warning("run %s: object %s retried alone: %s", run_id, item.origin_id, outcome.error)
            continue
        if outcome.kind == Outcome.RETRY:
            outcome = Outcome(Outcome.FAILED, error=f"{outcome.error} (after {OBJECT_ATTEMPTS} attempts)")
        contract_apply(contract=contract, item=item, outcome=outcome, context=context, now=now, run_id=run_id)
        if outcome.kind == Outcome.KEPT:
            kept.append(contract.target_id)
        tally.add({Outcome.CONFLICT: "failed", Outcome.KEPT: "unchanged"}.get(outcome.kind, outcome.kind))
        logs.append(log_row(
            facts=facts, run_id=run_id, contract=contract, item=item, now=now,
            action=contract.target_last_action if not contract.last_error else "", response=outcome.response,
        ))
        if outcome.kind in (Outcome.CREATED, Outcome.UPDATED):
            written.append((item, contract))
    written_ids = {id(contract) for _, contract in written}
    others = [
        contract for item, contract in todo
        if contract.last_processed_run_id == run_id and id(contract) not in written_ids
    ]
    for contract in others:
        contract.updated_at = now
    rows_update(Contract, others, CONTRACT_FIELDS)
    created = RunChunk.objects.bulk_create(retry_chunks) if retry_chunks else []
    completion = outcomes_record(written=written, logs=logs, tally=tally, context=context, run_id=run_id,
                                 facts=facts, now=now)
    # Counted once the outcomes are committed: a chunk whose transaction rolls back is written again.
    counts, retries = dict(tally.counts), tally.retries
    transaction.on_commit(lambda: metrics.objects_record(
        synchronization=context.synchronization.reference, counts=counts, retries=retries,
    ))
    dues = {retry.not_before for retry in created if retry.not_before is not None}
    if dues:
        runs.run_deferral_record(run_id=run_id)
    for due in dues:
        dispatch.deferred_wake(at=due)
    if kept:
        dispatch.write_back(synchronization_id=facts.synchronization_id, object_ids=kept)
    return [(retry.pk, retry_countdown(retry.attempt)) for retry in created if retry.not_before is None], completion


def chunk_write_one_by_one(
    *, facts: runs.RunFacts, run_id: int, context: SyncContext, chunk_id: int
) -> list[tuple[int, float]]:
    """Write a chunk to a target outside our transactions (an API), recording each object before the next.

    Each object is its own transaction: the chunk's row is locked (a redelivered task waits, then
    finds the object done), its progress read, the object written and its outcome, log, counters and
    the chunk's new progress recorded together. A chunk whose worker died goes on after the last object
    recorded, so no object is sent twice unless the worker died between the target's answer and that
    commit.
    """
    if transactions_lock_database():
        return chunk_write_between_transactions(facts=facts, run_id=run_id, context=context, chunk_id=chunk_id)
    retried: list[tuple[int, float]] = []
    while True:
        with transaction.atomic():
            # The chunk's row stays locked while its object is written: a redelivered task waits for it.
            following = _chunk_next_object(run_id=run_id, chunk_id=chunk_id, lock=True)
            if following is None:
                return retried  # done, or the run ended
            index, one = following
            retried += chunk_write(facts=facts, run_id=run_id, context=context, chunk=one)[0]
            RunChunk.objects.filter(pk=chunk_id).update(progress=index + 1)


def _chunk_next_object(*, run_id: int, chunk_id: int, lock: bool) -> tuple[int, Claimed] | None:
    """Return the index of a chunk's next object and that object as a claimed chunk of one; None when the
    chunk is done (marked so here when its last object was recorded) or the run ended. Call it inside a
    transaction; `lock`: hold the chunk's row until it ends."""
    chunks = RunChunk.objects.select_for_update() if lock else RunChunk.objects
    chunk = (
        chunks.filter(pk=chunk_id, run_id=run_id, status=RunChunk.Status.QUEUED,
                      run__status=SynchronizationRun.Status.RUNNING)
        .only("pk", "page_number", "attempt", "items", "progress").first()
    )
    if chunk is None:
        return None
    items = chunk_items(chunk)
    index = chunk.progress
    if index >= len(items):
        RunChunk.objects.filter(pk=chunk_id).update(status=RunChunk.Status.DONE, items=None, finished_at=timezone.now())
        return None
    return index, Claimed(pk=chunk.pk, page_number=chunk.page_number, attempt=chunk.attempt,
                          items=orjson.dumps([items[index].to_json()], default=str).decode())


def chunk_write_between_transactions(
    *, facts: runs.RunFacts, run_id: int, context: SyncContext, chunk_id: int
) -> list[tuple[int, float]]:
    """Write a chunk to a target object by object where a transaction locks the whole database (SQLite).

    The call to the target happens outside any transaction: one reads the object to send and its
    contract, the next records the outcome and the chunk's progress, if no other task recorded that
    object meanwhile (a redelivered chunk). As one by one, a worker that died between the target's answer
    and the record sends that object again.
    """
    retried: list[tuple[int, float]] = []
    while True:
        with transaction.atomic():
            following = _chunk_next_object(run_id=run_id, chunk_id=chunk_id, lock=False)
            if following is None:
                return retried  # done, or the run ended
            index, one = following
            planned = chunk_plan(facts=facts, run_id=run_id, chunk=one)
        outcomes = planned_write(context=context, facts=facts, run_id=run_id, planned=planned)
        with transaction.atomic():
            advanced = RunChunk.objects.filter(
                pk=chunk_id, status=RunChunk.Status.QUEUED, progress=index,
                run__status=SynchronizationRun.Status.RUNNING,
            ).update(progress=index + 1)
            # A contract deleted during the call (its synchronization's objects removed) has nothing to record.
            present = Contract.objects.filter(pk__in=[contract.pk for _, contract in planned.todo]).count()
            if advanced and present == len(planned.todo):
                retried += chunk_record(
                    facts=facts, run_id=run_id, context=context, planned=planned, outcomes=outcomes
                )[0]


def log_row(
    *, facts: runs.RunFacts, run_id: int, contract: Contract, item: Item, now, action: str, response: Any = None
) -> dict[str, Any]:
    """Return the contract log of one written or failed object, as a row to insert."""
    return {
        "reference": uuid7(), "synchronization_id": facts.synchronization_id, "contract_id": contract.pk,
        "run_id": run_id, "origin_id": contract.origin_id, "action": action, "status": contract.status,
        "source_object": log_value(item.source_object), "target_object": log_value(item.target_object),
        "response": log_value(response) if response is not None else None,
        "error": contract.last_error, "created_at": now,
    }


def outcomes_record(
    *, written: list[tuple[Item, Contract]], logs: list[dict[str, Any]], tally: Tally, context: SyncContext,
    run_id: int, facts: runs.RunFacts, now,
) -> runs.Completion | None:
    """Record the contracts of objects the target took, the chunk's logs and the run's counters; return the
    run's completion as the counters left it. One statement on PostgreSQL, three elsewhere."""
    if connection.vendor != "postgresql":
        for _, contract in written:
            contract.updated_at = now
        rows_update(Contract, [contract for _, contract in written], CONTRACT_FIELDS)
        rows_insert(ContractLog, logs)
        return tally.record(run_id=run_id)
    parts, params = [], []
    if written:
        sql, values = contracts_written_sql(written=written, context=context, run_id=run_id, now=now)
        parts.append(f"written AS ({sql})")
        params += values
    if logs:
        sql, values = logs_insert_sql(logs=logs, facts=facts, run_id=run_id, now=now)
        parts.append(f"logged AS ({sql})")
        params += values
    counted, values = runs.run_counts_sql(run_id=run_id, returning=True, objects_done=tally.done,
                                          retries=tally.retries, **tally.counts)
    statement = f"WITH {', '.join(parts)} {counted}" if parts else counted
    with connection.cursor() as cursor:
        cursor.execute(statement, [*params, *values])
        row = cursor.fetchone()
    return runs.Completion(*row) if row is not None else None


def contracts_written_sql(
    *, written: list[tuple[Item, Contract]], context: SyncContext, run_id: int, now
) -> tuple[str, list[Any]]:
    """Return the UPDATE of the contracts of objects the target took (PostgreSQL): what differs per object
    travels as arrays, the rest (the run, the time, the fingerprint) once."""
    return (
        f"UPDATE {Contract._meta.db_table} AS c SET target_id = v.target_id, target_hash = v.target_hash, "
        "source_last_changed = CASE WHEN c.origin_hash = v.origin_hash THEN c.source_last_changed ELSE %s END, "
        "origin_hash = v.origin_hash, target_last_action = v.action, config_hash = %s, status = %s, "
        "last_error = '', target_last_changed = %s, target_last_synced = %s, source_last_synced = %s, "
        "source_last_checked = %s, last_processed_run_id = %s, updated_at = %s "
        "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[]) "
        "AS v(id, target_id, target_hash, origin_hash, action) WHERE c.id = v.id",
        [now, context.fingerprint, Contract.Status.SYNCED, now, now, now, now, run_id, now,
         [contract.pk for _, contract in written], [contract.target_id for _, contract in written],
         [item.target_hash for item, _ in written], [item.origin_hash for item, _ in written],
         [contract.target_last_action for _, contract in written]],
    )


# The columns of a contract log that differ per log (log_row), and their types.
_LOG_COLUMNS = (
    ("reference", "uuid"), ("contract_id", "bigint"), ("origin_id", "text"), ("action", "text"),
    ("status", "text"), ("source_object", "jsonb"), ("target_object", "jsonb"), ("response", "jsonb"),
    ("error", "text"),
)


def logs_insert_sql(*, logs: list[dict[str, Any]], facts: runs.RunFacts, run_id: int, now) -> tuple[str, list[Any]]:
    """Return the INSERT of a chunk's contract logs (PostgreSQL), the logs travelling as one JSON document:
    one parameter, parsed once, where arrays of JSON texts would be quoted element by element."""
    names = [name for name, _ in _LOG_COLUMNS]
    document = orjson.dumps([{name: log[name] for name in names} for log in logs], default=str).decode()
    return (
        f"INSERT INTO {ContractLog._meta.db_table} (synchronization_id, run_id, created_at, {', '.join(names)}) "
        f"SELECT %s, %s, %s, {', '.join(f'l.{name}' for name in names)} FROM jsonb_to_recordset(%s::jsonb) "
        f"AS l({', '.join(f'{name} {kind}' for name, kind in _LOG_COLUMNS)})",
        [facts.synchronization_id, run_id, now, document],
    )


def contract_apply(*, contract: Contract, item: Item, outcome: Outcome, context: SyncContext, now, run_id: int) -> None:
    """Set a contract from the outcome of its write."""
    contract.source_last_checked = now
    contract.last_processed_run_id = run_id
    if outcome.kind in (Outcome.CREATED, Outcome.UPDATED):
        contract.target_id = outcome.target_id
        contract.target_hash = item.target_hash
        contract.target_last_changed = now
        contract.target_last_synced = now
        contract.source_last_synced = now
        if contract.origin_hash != item.origin_hash:
            contract.source_last_changed = now
        contract.origin_hash = item.origin_hash
        contract.config_hash = context.fingerprint
        contract.status = Contract.Status.SYNCED
        created = outcome.kind == Outcome.CREATED
        contract.target_last_action = Contract.Action.CREATE if created else Contract.Action.UPDATE
        contract.last_error = ""
        return
    if outcome.kind == Outcome.KEPT:
        # The source's version is not written: the next run sees it as known, the target's goes back.
        contract.origin_hash = item.origin_hash
        contract.status = Contract.Status.SYNCED
        contract.last_error = ""
        return
    contract.status = {
        Outcome.INVALID: Contract.Status.INVALID, Outcome.CONFLICT: Contract.Status.CONFLICT,
    }.get(outcome.kind, Contract.Status.FAILED)
    contract.last_error = log_text(outcome.error)
    if outcome.kind == Outcome.FAILED and outcome.target_id:
        # Failed by a rule (syncapp.runs.actions), after the write maybe: the contract keeps the object it
        # made, and no hash, so the next run writes it again (its rules run again) rather than creating another.
        contract.target_id = outcome.target_id
        contract.target_hash = ""


def chunk_fail(*, run_id: int, chunk_id: int, message: str) -> None:
    """Record every object of a chunk whose task failed for good, so the run still ends."""
    now = timezone.now()
    with transaction.atomic():
        chunk = RunChunk.objects.select_for_update().filter(pk=chunk_id, run_id=run_id).first()
        if chunk is None or chunk.status != RunChunk.Status.QUEUED:
            return
        items = chunk_items(chunk)
        contracts = {
            contract.pk: contract
            for contract in Contract.objects.select_for_update().filter(pk__in=[item.contract_id for item in items])
            .order_by("pk")
        }
        logs = []
        failed = []
        for item in items:
            contract = contracts.get(item.contract_id)
            if contract is None or contract.last_processed_run_id == run_id:
                continue
            contract.status = Contract.Status.FAILED
            contract.last_error = message[:5000]
            contract.last_processed_run_id = run_id
            contract.updated_at = now
            failed.append(contract)
            logs.append(ContractLog(
                synchronization_id=contract.synchronization_id, contract=contract, run_id=run_id,
                origin_id=contract.origin_id, status=contract.status, source_object=log_value(item.source_object),
                target_object=log_value(item.target_object), error=log_text(message),
            ))
        if failed:
            rows_update(Contract, failed, ["status", "last_error", "last_processed_run", "updated_at"])
            ContractLog.objects.bulk_create(logs)
        RunChunk.objects.filter(pk=chunk.pk).update(status=RunChunk.Status.DONE, items=None, finished_at=now)
        runs.run_add_counts(run_id=run_id, objects_done=len(items), failed=len(failed))
    run_close_if_complete(run_id=run_id)
