"""Write a chunk's objects with the synchronization's rules (its `actions`), each object its own unit of work.

Per object, in a savepoint of its own: the rules timed `before` reshape the mapped object, the writer
writes the objects that passed them (in bulk, as without rules), then the rules timed `after` run on each
object written: what they return goes to the next rule, not to the target, as OpenConnector discards it
(the files they store belong to the object all the same).
A rule that fails rolls back what that object's rules did and fails the object, with the rule's name and
the reason; an object that failed after its write keeps its target id and is written again (its rules run
again) by the next run. The other objects of the chunk are written as usual.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from django.db import transaction

from contracts import runs
from syncapp.hashing import hash_value
from syncapp.http import RateLimited
from syncapp.models import Rule
from syncapp.rules import Actions, Applied, RuleFailed
from syncapp.runs.context import SyncContext
from syncapp.targets.base import Outcome, Write

logger = logging.getLogger(__name__)

WRITTEN = (Outcome.CREATED, Outcome.UPDATED)


def planned_write(*, context: SyncContext, facts: runs.RunFacts, run_id: int, planned: Any) -> list[Outcome]:
    """Send a planned chunk's writes to the target, with the rules around each object; return one outcome
    per write, in order. `planned` is a syncapp.runs.chunks.Planned: its items get what was written."""
    writes = planned.sent(run_id=run_id, push_origin=facts.push_origin)
    actions = context.actions
    if actions is None or not writes:
        return context.writer.write(writes, bulk=planned.bulk, version=planned.version)
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
        outcomes[index] = _after(context=context, facts=facts, run_id=run_id, item=item, write=write, outcome=outcome)
    return outcomes  # type: ignore[return-value]


def _after(*, context: SyncContext, facts: runs.RunFacts, run_id: int, item: Any, write: Write,
           outcome: Outcome) -> Outcome:
    """Run the rules timed after the write on one written object; return its outcome."""
    source_object = item.source_object
    applied = Applied(
        synchronization=context.synchronization, timing=Rule.Timing.AFTER,
        data={**write.data, "_objectBeforeMapping": source_object} if isinstance(write.data, dict) else write.data,
        object_id=_object_id(context, target_id=outcome.target_id, origin_id=item.origin_id),
        run_id=run_id, push_origin=facts.push_origin,
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
