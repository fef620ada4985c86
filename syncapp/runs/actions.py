"""Write a chunk's objects with the synchronization's rules (its `actions`), each object its own unit of work.

Per object, in a savepoint of its own: the rules timed `before` reshape the mapped object, the writer
writes the objects that passed them (in bulk, as without rules), then the rules timed `after` run on each
object written: what they return goes to the next rule, not to the target, as OpenConnector discards it
(the files they store belong to the object all the same).
A rule that fails rolls back what that object's rules did and fails the object, with the rule's name and
the reason; an object that failed after its write keeps its target id and is written again (its rules run
again) by the next run. The other objects of the chunk are written as usual.

Where a transaction locks the whole database (SQLite), the rules' calls to other hosts (the files a
fetch_file rule downloads) are made before the chunk's transaction, outside any (chunk_prepare, or here
between transactions), by each rule kind's step before the transaction (RuleKind.prepare); inside,
the rules store what was fetched. Elsewhere (PostgreSQL, which locks rows) a rule calls out as it goes.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from contracts import runs
from contracts.models import RunChunk, SynchronizationContract
from syncapp.bulk import transactions_lock_database
from syncapp.hashing import hash_value
from syncapp.http import RateLimited
from syncapp.models import Rule
from syncapp.rules import Actions, Applied, Prepared, RuleFailed
from syncapp.runs.context import SyncContext
from syncapp.targets.base import Outcome, Write

logger = logging.getLogger(__name__)

WRITTEN = (Outcome.CREATED, Outcome.UPDATED)


class ChunkPrepared:
    """What the rules' steps before the transaction had for the objects of a chunk, by contract and timing."""

    def __init__(self, *, chunk_id: int, folder: Path):
        self.chunk_id = chunk_id
        self.folder = folder
        self.objects: dict[tuple[int, str], Prepared] = {}

    def of(self, *, contract_id: int, timing: str) -> Prepared:
        """Return what was prepared for one object at one timing (nothing, for an object not foreseen)."""
        return self.objects.setdefault((contract_id, timing), Prepared(folder=self.folder))


# The chunk being written in this thread (or task), prepared before its transaction opened (chunk_prepare).
_chunk_prepared: ContextVar[ChunkPrepared | None] = ContextVar("sync_chunk_prepared", default=None)


def _preparing(context: SyncContext) -> bool:
    return context.actions is not None and context.actions.calls_out() and transactions_lock_database()


@contextmanager
def chunk_prepare(
    *, context: SyncContext, facts: runs.RunFacts, run_id: int, chunk_id: int, items_of: Callable[[Any], list[Any]]
) -> Iterator[None]:
    """Make the rules' calls to other hosts for the objects of a chunk before its transaction opens, where a
    transaction locks the whole database (SQLite); inside this block the chunk's writes (planned_write) find
    what they fetched, which is gone after it. Elsewhere this does nothing.

    The chunk is read as it is queued, unlocked (`items_of`: syncapp.runs.chunks.chunk_items), and the objects
    it will write foreseen as chunk_plan picks them once their contracts are locked; an object written that
    was not foreseen (the contract changed meanwhile) finds nothing prepared, and its fetching rule fails it.
    """
    if not _preparing(context):
        yield
        return
    chunk = RunChunk.objects.filter(pk=chunk_id, run_id=run_id, status=RunChunk.Status.QUEUED).only("items").first()
    items = items_of(chunk) if chunk is not None else []
    contracts = SynchronizationContract.objects.only("pk", "target_id", "target_hash", "last_processed_run").in_bulk(
        [item.contract_id for item in items]
    )
    foreseen = []
    for item in items:
        contract = contracts.get(item.contract_id)
        if contract is None or contract.last_processed_run_id == run_id:
            continue
        if facts.is_forced or not (contract.target_id and contract.target_hash == item.target_hash):
            foreseen.append((item, contract))
    with _writes_prepare(context=context, facts=facts, run_id=run_id, chunk_id=chunk_id, writes=foreseen) as prepared:
        token = _chunk_prepared.set(prepared)
        try:
            yield
        finally:
            _chunk_prepared.reset(token)


@contextmanager
def _writes_prepare(
    *, context: SyncContext, facts: runs.RunFacts, run_id: int, chunk_id: int, writes: list[tuple[Any, Any]]
) -> Iterator[ChunkPrepared]:
    """Run the rules' steps before the transaction for these (item, contract) writes, each object's rules timed
    after the write on it as the rules before the write will most likely leave it; remove what they
    downloaded when the block ends."""
    actions = context.actions
    assert actions is not None
    with tempfile.TemporaryDirectory(prefix="sync-rules-") as folder:
        prepared = ChunkPrepared(chunk_id=chunk_id, folder=Path(folder))
        for item, contract in writes:
            data = item.target_object
            object_id = _object_id(context, target_id=contract.target_id, origin_id=item.origin_id)
            if actions.timed(Rule.Timing.BEFORE):
                data = actions.prepare(Applied(
                    synchronization=context.synchronization, timing=Rule.Timing.BEFORE, data=data,
                    object_id=object_id, run_id=run_id, push_origin=facts.push_origin,
                    prepared=prepared.of(contract_id=contract.pk, timing=Rule.Timing.BEFORE),
                ))
            if actions.timed(Rule.Timing.AFTER) and isinstance(data, dict):
                actions.prepare(Applied(
                    synchronization=context.synchronization, timing=Rule.Timing.AFTER,
                    data={**data, "_objectBeforeMapping": item.source_object}, object_id=object_id,
                    run_id=run_id, push_origin=facts.push_origin,
                    prepared=prepared.of(contract_id=contract.pk, timing=Rule.Timing.AFTER),
                ))
        yield prepared


def planned_write(*, context: SyncContext, facts: runs.RunFacts, run_id: int, planned: Any) -> list[Outcome]:
    """Send a planned chunk's writes to the target, with the rules around each object; return one outcome
    per write, in order. `planned` is a syncapp.runs.chunks.Planned: its items get what was written."""
    writes = planned.sent(run_id=run_id, push_origin=facts.push_origin)
    actions = context.actions
    if actions is None or not writes:
        return context.writer.write(writes, bulk=planned.bulk, version=planned.version)
    prepared = _chunk_prepared.get()
    if prepared is not None and prepared.chunk_id != planned.chunk.pk:
        prepared = None  # another chunk's, being written further up this thread (a run its commit started)
    if prepared is None and _preparing(context) and not connection.in_atomic_block:
        # Called between transactions (a target outside ours, chunk_write_between_transactions): prepared here.
        with _writes_prepare(context=context, facts=facts, run_id=run_id, chunk_id=planned.chunk.pk,
                             writes=planned.writes) as prepared:
            return _planned_write(context=context, facts=facts, run_id=run_id, planned=planned, writes=writes,
                                  prepared=prepared)
    return _planned_write(context=context, facts=facts, run_id=run_id, planned=planned, writes=writes,
                          prepared=prepared)


def _planned_write(*, context: SyncContext, facts: runs.RunFacts, run_id: int, planned: Any, writes: list[Write],
                   prepared: ChunkPrepared | None) -> list[Outcome]:
    actions = context.actions
    assert actions is not None
    outcomes: list[Outcome | None] = [None] * len(writes)
    ready: list[tuple[int, Write]] = []
    for index, ((item, contract), write) in enumerate(zip(planned.writes, writes, strict=True)):
        if not actions.timed(Rule.Timing.BEFORE):
            ready.append((index, write))
            continue
        applied = Applied(
            synchronization=context.synchronization, timing=Rule.Timing.BEFORE, data=write.data,
            object_id=_object_id(context, target_id=contract.target_id, origin_id=item.origin_id),
            run_id=run_id, push_origin=facts.push_origin,
            prepared=prepared.of(contract_id=contract.pk, timing=Rule.Timing.BEFORE) if prepared is not None else None,
        )
        try:
            failure = _apply(actions, applied)
        except RateLimited as limited:
            # Asked to wait: the object is written again later, alone, as a target's rate limit has it.
            outcomes[index] = Outcome(Outcome.RETRY, error=str(limited), wait_seconds=limited.wait_seconds)
            continue
        if failure is not None:
            outcomes[index] = Outcome(Outcome.FAILED, target_id=contract.target_id, error=failure)
            continue
        item.target_object = applied.data
        ready.append((index, replace(write, data=applied.data)))
    if ready:
        for (index, _), outcome in zip(ready, context.writer.write(
            [write for _, write in ready], bulk=planned.bulk, version=planned.version,
        ), strict=True):
            outcomes[index] = outcome
    for index, write in ready:
        item, contract = planned.writes[index]
        outcome = outcomes[index]
        if outcome is None or outcome.kind not in WRITTEN or not actions.timed(Rule.Timing.AFTER):
            _written_as(item, data=write.data)
            continue
        outcomes[index] = _after(
            context=context, facts=facts, run_id=run_id, item=item, write=write, outcome=outcome,
            prepared=prepared.of(contract_id=contract.pk, timing=Rule.Timing.AFTER) if prepared is not None else None,
        )
    return outcomes  # type: ignore[return-value]


def _after(*, context: SyncContext, facts: runs.RunFacts, run_id: int, item: Any, write: Write,
           outcome: Outcome, prepared: Prepared | None) -> Outcome:
    """Run the rules timed after the write on one written object; return its outcome."""
    source_object = item.source_object
    applied = Applied(
        synchronization=context.synchronization, timing=Rule.Timing.AFTER,
        data={**write.data, "_objectBeforeMapping": source_object} if isinstance(write.data, dict) else write.data,
        object_id=_object_id(context, target_id=outcome.target_id, origin_id=item.origin_id),
        run_id=run_id, push_origin=facts.push_origin, prepared=prepared,
    )
    try:
        failure = _apply(context.actions, applied)
    except RateLimited as limited:
        # Written already: it keeps its target and its rules run again with the next run.
        failure = f"{limited} (asked to wait {limited.wait_seconds:.0f} s)"
    if failure is not None:
        # Written, but its rules did not all pass: it keeps its target id and is written again next run.
        _written_as(item, data=write.data)
        return Outcome(Outcome.FAILED, target_id=outcome.target_id, error=failure, response=outcome.response)
    _written_as(item, data=write.data)
    return outcome


def _apply(actions: Actions, applied: Applied) -> str | None:
    """Apply the rules of one timing to one object in a savepoint; return why they failed, or None."""
    try:
        with transaction.atomic():
            actions.apply(applied)
    except RuleFailed as failure:
        logger.info("run of %s: object failed by its rules: %s", applied.synchronization.reference, failure)
        return str(failure)
    for call in applied.after_commit:
        call()
    return None


def _written_as(item: Any, *, data: Any) -> None:
    """Record on the chunk's item what the target holds now: its contract's hash and log are of that."""
    item.target_object = data
    item.target_hash = hash_value(data)


def _object_id(context: SyncContext, *, target_id: str | None, origin_id: str) -> str | None:
    """Return the register object a synchronized object is: its target (into the register), or its
    origin (from the register)."""
    if getattr(context.writer, "writes_schema", False):
        return target_id
    if context.synchronization.source_schema_id is not None:
        return origin_id
    return None
