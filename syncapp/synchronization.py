"""The steps of a run: fetch a page, extract, filter, match contracts, map, write, record.

Page tasks call `page_process`; object tasks call `object_process`. Both are idempotent: a
redelivered task finds its work recorded and does nothing twice.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from contracts import runs
from contracts.models import ContractLog, RunPage, SynchronizationContract, SynchronizationRun
from syncapp.conditions import ConditionError, evaluate_conditions
from syncapp.deletion import vanished_delete
from syncapp.dotpath import MISSING, get_path
from syncapp.follow_ups import follow_ups_due
from syncapp.hashing import hash_value
from syncapp.http import RateLimited, Wait
from syncapp.mapping import MappingError, MappingSpec, apply_mapping
from syncapp.models import Mapping, Synchronization
from syncapp.pagination import (
    PageRequest,
    PaginationConfig,
    PaginationError,
    first_page_request,
    next_page_request,
    page_repeats_previous,
    pagination_from_source_config,
)
from syncapp.sources import SourceError, endpoint_url, extract_objects, fetch_page
from syncapp.targets import (
    InvalidObject,
    TargetError,
    register_object_exists,
    validate_register_object,
    write_register_object,
)
from workers import dispatch

logger = logging.getLogger(__name__)

Contract = SynchronizationContract
Action = SynchronizationContract.Action


class ConfigurationError(ValueError):
    """The synchronization cannot run as configured."""


def mapping_spec(mapping: Mapping) -> MappingSpec:
    """Return the mapping language's view of a Mapping record."""
    return MappingSpec(
        mapping=dict(mapping.mapping or {}),
        unset=list(mapping.unset or []),
        cast=dict(mapping.cast or {}),
        pass_through=mapping.pass_through,
    )


def resolve_mapping(reference: str) -> MappingSpec:
    """Return the mapping with this reference, for mappings that map list elements with another."""
    mapping = Mapping.objects.filter(reference=reference).first()
    if mapping is None:
        raise MappingError(key=None, message=f"unknown mapping {reference!r}")
    return mapping_spec(mapping)


@dataclass
class SyncContext:
    """A synchronization loaded once per task, with what every object needs."""

    synchronization: Synchronization
    pagination: PaginationConfig
    target_mapping: MappingSpec | None
    hash_mapping: MappingSpec | None
    fingerprint: str
    id_position: str
    results_position: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def synchronization_fingerprint(synchronization: Synchronization) -> str:
    """Return a hash of everything that shapes the written objects: a change re-checks them all."""
    def mapping_json(mapping: Mapping | None) -> Any:
        if mapping is None:
            return None
        return [mapping.mapping, mapping.unset, mapping.cast, mapping.pass_through]

    config = synchronization.source_config or {}
    return hash_value(
        {
            "idPosition": config.get("idPosition"),
            "conditions": synchronization.conditions,
            "hashMapping": mapping_json(synchronization.source_hash_mapping),
            "targetMapping": mapping_json(synchronization.source_target_mapping),
            "targetType": synchronization.target_type,
            "targetSchema": synchronization.target_schema_id,
            "targetSource": synchronization.target_source_id,
            "targetConfig": synchronization.target_config,
        }
    )


def context_load(*, synchronization_id: int) -> SyncContext:
    """Load a synchronization with its source, mappings and target in one query."""
    synchronization = Synchronization.objects.select_related(
        "source", "source_hash_mapping", "source_target_mapping", "target_schema__register", "target_source"
    ).get(pk=synchronization_id)
    config = synchronization.source_config or {}
    try:
        pagination = pagination_from_source_config(config)
    except PaginationError as error:
        raise ConfigurationError(f"sourceConfig: {error}") from None
    return SyncContext(
        synchronization=synchronization,
        pagination=pagination,
        target_mapping=mapping_spec(synchronization.source_target_mapping)
        if synchronization.source_target_mapping
        else None,
        hash_mapping=mapping_spec(synchronization.source_hash_mapping)
        if synchronization.source_hash_mapping
        else None,
        fingerprint=synchronization_fingerprint(synchronization),
        id_position=str(config.get("idPosition") or "id"),
        results_position=config.get("resultsPosition") or None,
    )


@functools.lru_cache(maxsize=16)
def context_for_run(*, synchronization_id: int, run_id: int) -> SyncContext:
    """Return the synchronization as loaded once per run and worker process, for its object tasks.

    A mapping changed during a run reaches the objects of the next run: their contracts keep the
    fingerprint they were written with, so that run re-checks them.
    """
    return context_load(synchronization_id=synchronization_id)


def context_check(context: SyncContext) -> None:
    """Raise ConfigurationError when the synchronization lacks what a run needs."""
    sync = context.synchronization
    if sync.source_type != Synchronization.SourceType.API or sync.source is None:
        raise ConfigurationError(f"synchronization {sync.reference!r} has no api source (sourceId)")
    if sync.target_type != Synchronization.TargetType.REGISTER or sync.target_schema is None:
        raise ConfigurationError(
            f"synchronization {sync.reference!r} has no register/schema target (targetId)"
        )


def endpoint_variables(context: SyncContext, *, run: SynchronizationRun | None) -> dict[str, Any]:
    """Return what an endpoint template may use: the run, and when the last successful run started."""
    sync = context.synchronization
    last = (
        SynchronizationRun.objects.filter(
            synchronization_id=sync.pk, is_test=False, status=SynchronizationRun.Status.SUCCEEDED
        )
        .exclude(pk=run.pk if run is not None else None)
        .order_by("-created_at")
        .first()
    )
    now = run.created_at if run is not None and run.created_at else timezone.now()

    def utc(moment) -> str:
        # "Z", not "+00:00": a "+" in a query string reads as a space.
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

    return {
        "run": {
            "id": run.pk if run is not None else None,
            "reference": str(run.reference) if run is not None else "",
            "trigger": run.trigger if run is not None else "",
            "test": bool(run.is_test) if run is not None else False,
            "force": bool(run.is_forced) if run is not None else False,
        },
        "now": utc(now),
        "lastSync": utc(last.started_at or last.created_at) if last is not None else "",
        "synchronization": {"reference": sync.reference, "name": sync.name},
    }


def first_request(context: SyncContext, *, run: SynchronizationRun | None = None) -> PageRequest:
    """Return the request of the run's first page; an endpoint template is rendered for this run."""
    sync = context.synchronization
    try:
        url = endpoint_url(
            source=sync.source, source_config=sync.source_config or {},
            variables=endpoint_variables(context, run=run),
        )
    except SourceError as error:
        raise ConfigurationError(str(error)) from None
    return first_page_request(config=context.pagination, url=url, params={})


# ---------------------------------------------------------------------------------------------
# Starting a run


def run_start(
    *,
    synchronization: Synchronization,
    trigger: str = SynchronizationRun.Trigger.MANUAL,
    force: bool = False,
    parent: SynchronizationRun | None = None,
    queue: bool = False,
) -> SynchronizationRun:
    """Create a run and queue its first page; when one is active, refuse, or wait behind it if `queue`."""
    from workers.tasks import sync_page

    context = context_load(synchronization_id=synchronization.pk)
    context_check(context)
    if not synchronization.is_enabled:
        raise runs.RunRefused(f"synchronization {synchronization.reference!r} is disabled")
    with transaction.atomic():
        run = runs.run_create(
            synchronization=synchronization, trigger=trigger, force=force, parent=parent, queue=queue
        )
        if not run.waiting:
            RunPage.objects.create(run=run, number=1, request=first_request(context, run=run).to_json())
            dispatch.enqueue(sync_page, run.pk, 1)
    return run


# ---------------------------------------------------------------------------------------------
# One page


@dataclass
class Candidate:
    """An object of a page that passed the conditions and has an origin id."""

    origin_id: str
    source_object: dict
    origin_hash: str


@dataclass
class Rejected:
    """An object of a page that cannot be taken up, and why."""

    origin_id: str
    source_object: Any
    error: str
    # Another object of the run has the same origin id: its contract belongs to that one.
    duplicate: bool = False


@dataclass
class PageOutcome:
    found: int = 0
    filtered: int = 0
    candidates: list[Candidate] = field(default_factory=list)
    invalid: list[Rejected] = field(default_factory=list)


def origin_id_of(obj: Any, *, id_position: str) -> str | None:
    """Return the object's origin id as text; numbers become strings."""
    value = get_path(obj, id_position)
    if value is MISSING or value is None or value == "" or isinstance(value, (dict, list, bool)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def origin_hash_of(obj: dict, *, context: SyncContext) -> str:
    """Return the hash of the source object, or of what its hash mapping makes of it."""
    if context.hash_mapping is None:
        return hash_value(obj)
    return hash_value(apply_mapping(spec=context.hash_mapping, data=obj, resolve_mapping=resolve_mapping))


def objects_classify(objects: list[Any], *, context: SyncContext) -> PageOutcome:
    """Sort a page's objects into filtered, invalid and candidates for writing."""
    outcome = PageOutcome(found=len(objects))
    conditions = context.synchronization.conditions
    seen: set[str] = set()
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            outcome.invalid.append(Rejected("", obj, f"item {index} is a {type(obj).__name__}, not an object"))
            continue
        origin_id = origin_id_of(obj, id_position=context.id_position)
        if origin_id is None:
            outcome.invalid.append(Rejected("", obj, f"item {index} has no origin id at {context.id_position!r}"))
            continue
        if origin_id in seen:
            outcome.invalid.append(
                Rejected(origin_id, obj, f"origin id {origin_id!r} appears twice on one page", duplicate=True)
            )
            continue
        seen.add(origin_id)
        try:
            if not evaluate_conditions(conditions=conditions, data=obj):
                outcome.filtered += 1
                continue
            origin_hash = origin_hash_of(obj, context=context)
        except (ConditionError, MappingError) as error:
            outcome.invalid.append(Rejected(origin_id, obj, str(error)))
            continue
        outcome.candidates.append(Candidate(origin_id=origin_id, source_object=obj, origin_hash=origin_hash))
    return outcome


def contracts_ensure(*, synchronization_id: int, origin_ids: list[str]) -> dict[str, Contract]:
    """Return the contract of every origin id, creating the missing ones; never two for one id."""
    if not origin_ids:
        return {}
    existing = {
        contract.origin_id: contract
        for contract in Contract.objects.filter(synchronization_id=synchronization_id, origin_id__in=origin_ids)
    }
    missing = [origin_id for origin_id in origin_ids if origin_id not in existing]
    if missing:
        # ignore_conflicts: another worker or run may create the same contracts at this moment.
        Contract.objects.bulk_create(
            [Contract(synchronization_id=synchronization_id, origin_id=origin_id) for origin_id in missing],
            ignore_conflicts=True,
        )
        existing.update(
            {
                contract.origin_id: contract
                for contract in Contract.objects.filter(
                    synchronization_id=synchronization_id, origin_id__in=missing
                )
            }
        )
    return existing


def contract_is_unchanged(contract: Contract, *, origin_hash: str, fingerprint: str) -> bool:
    """Return whether the last write of this contract still stands for this source object."""
    return (
        contract.status == Contract.Status.SYNCED
        and bool(contract.target_id)
        and contract.origin_hash == origin_hash
        and contract.config_hash == fingerprint
    )


def page_fingerprint(objects: list[Any]) -> str:
    """Return a hash identifying a page's content, to notice a page served twice."""
    return hash_value(objects)


def next_page_send(*, run_id: int, number: int) -> None:
    """Send the task of a run's page if that page is still to be done."""
    from workers.tasks import sync_page

    if RunPage.objects.filter(run_id=run_id, number=number, status=RunPage.Status.QUEUED).exists():
        dispatch.enqueue(sync_page, run_id, number)


def page_process(*, run_id: int, page_number: int) -> None:
    """Fetch one page, queue the next, and queue a write for each changed object on it."""
    from workers.tasks import sync_object

    page = RunPage.objects.select_related("run").filter(run_id=run_id, number=page_number).first()
    if page is None:
        return
    if page.status != RunPage.Status.QUEUED:
        # A redelivered task: its worker may have died after committing and before sending the next page,
        # or before closing the run.
        next_page_send(run_id=run_id, number=page_number + 1)
        run_close_if_complete(run_id=run_id)
        return
    if not runs.run_mark_running(run_id=run_id):
        return
    run = page.run
    try:
        context = context_load(synchronization_id=run.synchronization_id)
        context_check(context)
        sync = context.synchronization
        request = PageRequest.from_json(page.request)
        fetched = fetch_page(
            source=sync.source, source_config=sync.source_config or {}, request=request,
            on_wait=lambda wait: wait_count(run_id=run_id, wait=wait),
        )
        objects = extract_objects(
            body=fetched.body, results_position=context.results_position, url=fetched.url,
            xml=fetched.format == "xml",
        )
        fingerprint = page_fingerprint(objects)
        if page_repeats_previous(config=context.pagination, current=request, fingerprint=fingerprint):
            objects, next_request = [], None
        else:
            next_request = next_page_request(
                config=context.pagination, current=request, body=fetched.body, headers=fetched.headers,
                object_count=len(objects), fingerprint=fingerprint, drop_params=fetched.secret_params,
            )
    except (SourceError, PaginationError, ConfigurationError) as error:
        page_fail(page=page, message=str(error))
        return

    max_pages = context.pagination.max_pages
    with transaction.atomic():
        if next_request is not None and max_pages is not None and page_number >= max_pages:
            runs.run_fail(run_id=run_id, message=f"stopped at maxPages ({max_pages}): the source has more pages")
            SynchronizationRun.objects.filter(pk=run_id).update(max_pages_reached=True)
        elif next_request is not None:
            RunPage.objects.get_or_create(
                run_id=run_id, number=page_number + 1, defaults={"request": next_request.to_json()}
            )
            # Sent even when an earlier delivery of this task created the page: that one may have died
            # before sending. A page task delivered twice does its work once.
            next_page_send(run_id=run_id, number=page_number + 1)
        else:
            SynchronizationRun.objects.filter(pk=run_id).update(fetch_finished=True)

    outcome = objects_classify(objects, context=context)
    # Invalid objects with an origin id get a contract too: it holds their error, and being seen
    # keeps their earlier target object from being deleted as vanished.
    origin_ids = [candidate.origin_id for candidate in outcome.candidates]
    origin_ids += [rejected.origin_id for rejected in outcome.invalid if rejected.origin_id]
    contracts = contracts_ensure(synchronization_id=sync.pk, origin_ids=list(dict.fromkeys(origin_ids)))
    force = run.is_forced
    now = timezone.now()
    with transaction.atomic():
        locked = RunPage.objects.select_for_update().get(pk=page.pk)
        if locked.status != RunPage.Status.QUEUED:
            return
        # Mark what this run has seen; an id already seen on an earlier page is a duplicate.
        ids = [contract.pk for contract in contracts.values()]
        fresh = set(
            Contract.objects.select_for_update()
            .filter(pk__in=ids)
            .exclude(last_seen_run_id=run_id)
            .values_list("pk", flat=True)
        )
        Contract.objects.filter(pk__in=fresh).update(last_seen_run_id=run_id, source_last_checked=now)
        to_write: list[Candidate] = []
        unchanged = 0
        for candidate in outcome.candidates:
            contract = contracts[candidate.origin_id]
            if contract.pk not in fresh:
                outcome.invalid.append(
                    Rejected(
                        candidate.origin_id, candidate.source_object,
                        f"origin id {candidate.origin_id!r} appears more than once in this run", duplicate=True,
                    )
                )
            elif not force and contract_is_unchanged(
                contract, origin_hash=candidate.origin_hash, fingerprint=context.fingerprint
            ):
                unchanged += 1
            else:
                to_write.append(candidate)
        invalid_logs_record(run=run, context=context, contracts=contracts, invalid=outcome.invalid, now=now)
        runs.run_add_counts(
            run_id=run_id,
            found=outcome.found,
            filtered=outcome.filtered,
            unchanged=unchanged,
            invalid=len(outcome.invalid),
            objects_queued=len(to_write),
            pages_fetched=1,
        )
        object_tasks = [
            (run_id, contracts[candidate.origin_id].pk, candidate.source_object, candidate.origin_hash, page_number)
            for candidate in to_write
        ]
        locked.status = RunPage.Status.DONE
        locked.object_count = len(objects)
        locked.finished_at = now
        # Kept with the page, so a message a restarted broker lost can be sent again (runs_resend_stalled).
        locked.queued_objects = [list(args[1:4]) for args in object_tasks] or None
        locked.save(update_fields=["status", "object_count", "finished_at", "queued_objects"])
        # Sent before the commit: each object task first locks its contract, which this transaction
        # holds, so it waits for the commit; a worker dying after the commit cannot lose them.
        dispatch.enqueue_many(sync_object, object_tasks, before_commit=True)
    run_close_if_complete(run_id=run_id)


def invalid_logs_record(
    *,
    run: SynchronizationRun,
    context: SyncContext,
    contracts: dict[str, Contract],
    invalid: list[Rejected],
    now,
) -> None:
    """Record objects that could not be taken up: a log each, and the error on their contract."""
    if not invalid:
        return
    sync_id = context.synchronization.pk
    ContractLog.objects.bulk_create(
        [
            ContractLog(
                synchronization_id=sync_id,
                contract=contracts.get(rejected.origin_id) if rejected.origin_id else None,
                run=run,
                origin_id=rejected.origin_id,
                status=Contract.Status.INVALID,
                source_object=rejected.source_object
                if isinstance(rejected.source_object, (dict, list))
                else {"value": rejected.source_object},
                error=rejected.error,
            )
            for rejected in invalid
        ]
    )
    for rejected in invalid:
        contract = contracts.get(rejected.origin_id) if rejected.origin_id else None
        if contract is not None and not rejected.duplicate:
            Contract.objects.filter(pk=contract.pk).update(
                status=Contract.Status.INVALID, last_error=rejected.error, source_last_checked=now
            )


def wait_count(*, run_id: int, wait: Wait) -> None:
    """Count a wait of a call on the run; it moves the heartbeat, so a waiting run is not taken for lost."""
    runs.run_add_counts(run_id=run_id, retries=int(wait.retry), waited_seconds=wait.seconds)


def page_fail(*, page: RunPage, message: str) -> None:
    """Record that a page could not be read; the run fetches no further and ends failed."""
    logger.warning("run %s page %s failed: %s", page.run_id, page.number, message)
    with transaction.atomic():
        updated = RunPage.objects.filter(pk=page.pk, status=RunPage.Status.QUEUED).update(
            status=RunPage.Status.FAILED, error_message=message[:5000], finished_at=timezone.now()
        )
        if updated:
            runs.run_fail(run_id=page.run_id, message=f"page {page.number}: {message}")
    run_close_if_complete(run_id=page.run_id)


# ---------------------------------------------------------------------------------------------
# One object


def object_map(*, context: SyncContext, source_object: dict) -> Any:
    """Return the target object made from a source object."""
    if context.target_mapping is None:
        return source_object
    return apply_mapping(spec=context.target_mapping, data=source_object, resolve_mapping=resolve_mapping)


def target_holds(contract: Contract, *, target_hash: str, schema) -> bool:
    """Return whether the target object is still there and already equals what would be written."""
    return (
        bool(contract.target_id)
        and contract.target_hash == target_hash
        and register_object_exists(schema=schema, target_id=contract.target_id)
    )


def object_process(
    *, run_id: int, contract_id: int, source_object: dict, origin_hash: str, page_number: int | None = None
) -> None:
    """Map and write one object, then record the contract, a log and the run's counts.

    `page_number` names the page that sent the task (None in messages from before it was sent along).
    """
    run = SynchronizationRun.objects.filter(pk=run_id).only("status", "is_forced", "synchronization_id").first()
    if run is None or run.status != SynchronizationRun.Status.RUNNING:
        return
    context = context_for_run(synchronization_id=run.synchronization_id, run_id=run_id)
    schema = context.synchronization.target_schema
    now = timezone.now()
    with transaction.atomic():
        contract = Contract.objects.select_for_update().filter(pk=contract_id).first()
        if contract is None or contract.last_processed_run_id == run_id:
            # Deleted meanwhile, or a redelivered task whose work is already recorded: its first delivery
            # may have lost its database connection after the commit, before it closed the run.
            transaction.on_commit(lambda: run_close_if_complete(run_id=run_id))
            return
        if page_number is not None and not RunPage.objects.filter(
            run_id=run_id, number=page_number, status=RunPage.Status.DONE
        ).exists():
            # Sent by a page whose transaction then rolled back (a lost database connection), which held
            # this contract's lock until then: the page is processed again and sends it again, counted once.
            return
        outcome = "unchanged"
        action = Action.SKIP
        target_object = None
        error = ""
        if run.is_forced or not contract_is_unchanged(
            contract, origin_hash=origin_hash, fingerprint=context.fingerprint
        ):
            try:
                target_object = object_map(context=context, source_object=source_object)
                target_hash = hash_value(target_object)
                if not run.is_forced and target_holds(contract, target_hash=target_hash, schema=schema):
                    action = Action.SKIP  # a new source hash or mapping that maps to the same object
                else:
                    with transaction.atomic():
                        result = write_register_object(schema=schema, target_id=contract.target_id, data=target_object)
                    action = result.action
                    outcome = "created" if action == Action.CREATE else "updated"
                    contract.target_id = result.target_id
                    contract.target_hash = target_hash
                    contract.target_last_changed = now
                contract.target_last_synced = now
                contract.source_last_synced = now
                if contract.origin_hash != origin_hash:
                    contract.source_last_changed = now
                contract.origin_hash = origin_hash
                contract.config_hash = context.fingerprint
                contract.status = Contract.Status.SYNCED
                contract.last_error = ""
            except (MappingError, InvalidObject) as problem:
                outcome, error = "invalid", str(problem)
                contract.status = Contract.Status.INVALID
            except (TargetError, IntegrityError) as problem:
                outcome, error = "failed", f"{type(problem).__name__}: {problem}"
                contract.status = Contract.Status.FAILED
            if error:
                action = ""
                contract.last_error = error
        contract.target_last_action = action or contract.target_last_action
        contract.source_last_checked = now
        contract.last_processed_run_id = run_id
        contract.save()
        if outcome != "unchanged":
            ContractLog.objects.create(
                synchronization_id=run.synchronization_id,
                contract=contract,
                run_id=run_id,
                origin_id=contract.origin_id,
                action=action,
                status=contract.status,
                source_object=source_object,
                target_object=target_object,
                error=error,
            )
        runs.run_add_counts(run_id=run_id, objects_done=1, **{outcome: 1})
        progress = SynchronizationRun.objects.filter(pk=run_id).values(
            "objects_done", "objects_queued", "fetch_finished"
        )[0]
    if progress["fetch_finished"] and progress["objects_done"] >= progress["objects_queued"]:
        run_close_if_complete(run_id=run_id)


def object_fail(*, run_id: int, contract_id: int, source_object: dict, message: str) -> None:
    """Record an object whose task failed unexpectedly, so the run still ends."""
    with transaction.atomic():
        contract = Contract.objects.select_for_update().filter(pk=contract_id).first()
        if contract is None or contract.last_processed_run_id == run_id:
            return
        contract.status = Contract.Status.FAILED
        contract.last_error = message[:5000]
        contract.last_processed_run_id = run_id
        contract.save(update_fields=["status", "last_error", "last_processed_run", "updated_at"])
        ContractLog.objects.create(
            synchronization_id=contract.synchronization_id, contract=contract, run_id=run_id,
            origin_id=contract.origin_id, status=contract.status, source_object=source_object, error=message,
        )
        runs.run_add_counts(run_id=run_id, objects_done=1, failed=1)
    run_close_if_complete(run_id=run_id)


def run_close_if_complete(*, run_id: int) -> None:
    """Close the run if all its work has ended: delete what vanished, then act on its end."""
    finished = runs.run_try_finish(run_id=run_id, before_close=vanished_delete)
    if finished is not None:
        run_finished(run=finished)


def run_finished(*, run: SynchronizationRun) -> None:
    """Start the follow-ups of a run that has just ended, and the run waiting behind it."""
    from workers.tasks import sync_follow_ups

    with transaction.atomic():
        if follow_ups_due(run) and run.synchronization.follow_ups.exists():
            dispatch.enqueue(sync_follow_ups, run.pk)
        run_start_waiting(synchronization_id=run.synchronization_id)


def run_start_waiting(*, synchronization_id: int) -> SynchronizationRun | None:
    """Start the oldest run queued behind another run of the synchronization, if none is active now."""
    from workers.tasks import sync_page

    with transaction.atomic():
        Synchronization.objects.select_for_update().filter(pk=synchronization_id).first()
        active = SynchronizationRun.objects.filter(
            synchronization_id=synchronization_id, status__in=SynchronizationRun.ACTIVE_STATUSES,
            waiting=False, is_test=False,
        )
        if active.exists():
            return None
        run = (
            SynchronizationRun.objects.filter(
                synchronization_id=synchronization_id, status=SynchronizationRun.Status.QUEUED, waiting=True
            )
            .order_by("created_at", "pk")
            .first()
        )
        if run is None:
            return None
        try:
            context = context_load(synchronization_id=synchronization_id)
            context_check(context)
            request = first_request(context, run=run)  # an endpoint template can fail too
        except ConfigurationError as error:
            SynchronizationRun.objects.filter(pk=run.pk).update(
                status=SynchronizationRun.Status.FAILED, waiting=False, error_message=str(error),
                finished_at=timezone.now(),
            )
            return None
        SynchronizationRun.objects.filter(pk=run.pk).update(waiting=False, heartbeat_at=timezone.now())
        RunPage.objects.get_or_create(run=run, number=1, defaults={"request": request.to_json()})
        dispatch.enqueue(sync_page, run.pk, 1)
    return run


def runs_resend_stalled(*, resend_after: float | None = None) -> list[int]:
    """Send the work of active runs without progress for `resend_after` seconds again; return their ids.

    A broker that restarts without its data loses the messages it held. Sent again are the run's
    queued pages, and the object tasks its done pages sent (RunPage.queued_objects) whose contracts
    this run has not processed. Both tasks do their work once, so a message that was only slow costs a
    no-op. A run with nothing to send is closed if its work has ended (its last task may have died
    between its commit and the close). A run is re-sent at most once per interval, and re-sending is no
    progress: a run that still does not move is failed as stale (runs_fail_stale).
    """
    from workers.tasks import sync_object, sync_page

    seconds = settings.SYNC_RUN_RESEND_SECONDS if resend_after is None else resend_after
    now = timezone.now()
    cutoff = now - timedelta(seconds=seconds)
    due = Q(heartbeat_at__lt=cutoff) & (Q(resent_at__isnull=True) | Q(resent_at__lt=cutoff))
    stalled = SynchronizationRun.objects.filter(
        due, status__in=SynchronizationRun.ACTIVE_STATUSES, waiting=False, is_test=False
    )
    resent = []
    for run_id in stalled.values_list("pk", flat=True):
        with transaction.atomic():
            claimed = SynchronizationRun.objects.filter(
                due, pk=run_id, status__in=SynchronizationRun.ACTIVE_STATUSES
            ).update(resent_at=now)
            if not claimed:
                continue  # moved meanwhile, or claimed by another sweep
            pages = list(
                RunPage.objects.filter(run_id=run_id, status=RunPage.Status.QUEUED).values_list("number", flat=True)
            )
            queued = [
                (*entry, number)
                for number, entries in RunPage.objects.filter(
                    run_id=run_id, status=RunPage.Status.DONE, queued_objects__isnull=False
                ).values_list("number", "queued_objects")
                for entry in entries
            ]
            processed = set(
                Contract.objects.filter(
                    pk__in=[contract_id for contract_id, *_ in queued], last_processed_run_id=run_id
                ).values_list("pk", flat=True)
            )
            objects = [(run_id, *entry) for entry in queued if entry[0] not in processed]
            dispatch.enqueue_many(sync_page, [(run_id, number) for number in pages])
            dispatch.enqueue_many(sync_object, objects)
        if pages or objects:
            logger.warning(
                "run %s made no progress for %gs: sent %d page(s) and %d object(s) again", run_id, seconds,
                len(pages), len(objects),
            )
            resent.append(run_id)
        else:
            run_close_if_complete(run_id=run_id)
    return resent


# ---------------------------------------------------------------------------------------------
# A test run: the first page, nothing written


def run_test(*, synchronization: Synchronization, trigger: str = SynchronizationRun.Trigger.MANUAL):
    """Show per object what a run would do with the first page, writing nothing but the run record."""
    context = context_load(synchronization_id=synchronization.pk)
    context_check(context)
    run = runs.run_create(synchronization=synchronization, trigger=trigger, test=True)
    run.status = SynchronizationRun.Status.RUNNING
    run.started_at = timezone.now()
    report: list[dict[str, Any]] = []
    try:
        sync = context.synchronization
        fetched = fetch_page(
            source=sync.source, source_config=sync.source_config or {}, request=first_request(context, run=run)
        )
        objects = extract_objects(
            body=fetched.body, results_position=context.results_position, url=fetched.url,
            xml=fetched.format == "xml",
        )
    except (SourceError, PaginationError, ConfigurationError, RateLimited) as error:
        run.error_message = str(error)
        run.status = SynchronizationRun.Status.FAILED
        run.finished_at = timezone.now()
        run.save()
        return run
    outcome = objects_classify(objects, context=context)
    existing = {
        contract.origin_id: contract
        for contract in Contract.objects.filter(
            synchronization=sync, origin_id__in=[candidate.origin_id for candidate in outcome.candidates]
        )
    }
    counts = dict.fromkeys(SynchronizationRun.COUNT_FIELDS, 0)
    counts["found"] = outcome.found
    counts["filtered"] = outcome.filtered
    counts["invalid"] = len(outcome.invalid)
    for rejected in outcome.invalid:
        report.append({
            "originId": rejected.origin_id or None, "action": "invalid", "error": rejected.error,
            "source": rejected.source_object,
        })
    for candidate in outcome.candidates:
        contract = existing.get(candidate.origin_id)
        entry: dict[str, Any] = {"originId": candidate.origin_id}
        if contract is not None and contract_is_unchanged(
            contract, origin_hash=candidate.origin_hash, fingerprint=context.fingerprint
        ):
            entry["action"] = "unchanged"
            counts["unchanged"] += 1
            report.append(entry)
            continue
        try:
            mapped = object_map(context=context, source_object=candidate.source_object)
            validate_register_object(schema=sync.target_schema, data=mapped)
        except (MappingError, InvalidObject) as problem:
            entry.update(action="invalid", error=str(problem), source=candidate.source_object)
            counts["invalid"] += 1
        else:
            action = "update" if contract is not None and contract.target_id else "create"
            entry.update(action=action, result=mapped)
            counts["created" if action == "create" else "updated"] += 1
        report.append(entry)
    filtered_note = outcome.filtered
    if filtered_note:
        report.append({"action": "filtered", "count": filtered_note})
    for name, value in counts.items():
        setattr(run, name, value)
    run.pages_fetched = 1
    run.report = report
    run.status = SynchronizationRun.Status.PARTIAL if counts["invalid"] else SynchronizationRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.save()
    return run
