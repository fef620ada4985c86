"""The steps of a run: fetch a page, extract, filter, match contracts, map, write, record.

Page tasks call `page_process`; object tasks call `object_process`. Both are idempotent: a
redelivered task finds its work recorded and does nothing twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from contracts import runs
from contracts.models import ContractLog, RunPage, SynchronizationContract, SynchronizationRun
from syncapp.conditions import ConditionError, evaluate_conditions
from syncapp.dotpath import MISSING, get_path
from syncapp.hashing import hash_value
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


def context_check(context: SyncContext) -> None:
    """Raise ConfigurationError when the synchronization lacks what a run needs."""
    sync = context.synchronization
    if sync.source_type != Synchronization.SourceType.API or sync.source is None:
        raise ConfigurationError(f"synchronization {sync.reference!r} has no api source (sourceId)")
    if sync.target_type != Synchronization.TargetType.REGISTER or sync.target_schema is None:
        raise ConfigurationError(
            f"synchronization {sync.reference!r} has no register/schema target (targetId)"
        )


def first_request(context: SyncContext) -> PageRequest:
    """Return the request of the run's first page."""
    sync = context.synchronization
    return first_page_request(
        config=context.pagination,
        url=endpoint_url(source=sync.source, source_config=sync.source_config or {}),
        params={},
    )


# ---------------------------------------------------------------------------------------------
# Starting a run


def run_start(
    *,
    synchronization: Synchronization,
    trigger: str = SynchronizationRun.Trigger.MANUAL,
    force: bool = False,
    parent: SynchronizationRun | None = None,
) -> SynchronizationRun:
    """Create a run and queue its first page; refuse when one is already active."""
    from workers.tasks import sync_page

    context = context_load(synchronization_id=synchronization.pk)
    context_check(context)
    if not synchronization.is_enabled:
        raise runs.RunRefused(f"synchronization {synchronization.reference!r} is disabled")
    with transaction.atomic():
        run = runs.run_create(synchronization=synchronization, trigger=trigger, force=force, parent=parent)
        RunPage.objects.create(run=run, number=1, request=first_request(context).to_json())
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
class PageOutcome:
    found: int = 0
    filtered: int = 0
    candidates: list[Candidate] = field(default_factory=list)
    invalid: list[tuple[str, Any, str]] = field(default_factory=list)  # (origin id, object, error)


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
            outcome.invalid.append(("", obj, f"item {index} is a {type(obj).__name__}, not an object"))
            continue
        origin_id = origin_id_of(obj, id_position=context.id_position)
        if origin_id is None:
            outcome.invalid.append(("", obj, f"item {index} has no origin id at {context.id_position!r}"))
            continue
        if origin_id in seen:
            outcome.invalid.append((origin_id, obj, f"origin id {origin_id!r} appears twice on one page"))
            continue
        seen.add(origin_id)
        try:
            if not evaluate_conditions(conditions=conditions, data=obj):
                outcome.filtered += 1
                continue
            origin_hash = origin_hash_of(obj, context=context)
        except (ConditionError, MappingError) as error:
            outcome.invalid.append((origin_id, obj, str(error)))
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


def page_process(*, run_id: int, page_number: int) -> None:
    """Fetch one page, queue the next, and queue a write for each changed object on it."""
    from workers.tasks import sync_object, sync_page

    page = RunPage.objects.select_related("run").filter(run_id=run_id, number=page_number).first()
    if page is None or page.status != RunPage.Status.QUEUED:
        return
    if not runs.run_mark_running(run_id=run_id):
        return
    run = page.run
    try:
        context = context_load(synchronization_id=run.synchronization_id)
        context_check(context)
        sync = context.synchronization
        request = PageRequest.from_json(page.request)
        fetched = fetch_page(source=sync.source, source_config=sync.source_config or {}, request=request)
        objects = extract_objects(body=fetched.body, results_position=context.results_position, url=fetched.url)
        fingerprint = page_fingerprint(objects)
        if page_repeats_previous(config=context.pagination, current=request, fingerprint=fingerprint):
            objects, next_request = [], None
        else:
            next_request = next_page_request(
                config=context.pagination, current=request, body=fetched.body,
                object_count=len(objects), fingerprint=fingerprint,
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
            _, created = RunPage.objects.get_or_create(
                run_id=run_id, number=page_number + 1, defaults={"request": next_request.to_json()}
            )
            if created:
                dispatch.enqueue(sync_page, run_id, page_number + 1)
        else:
            SynchronizationRun.objects.filter(pk=run_id).update(fetch_finished=True)

    outcome = objects_classify(objects, context=context)
    contracts = contracts_ensure(
        synchronization_id=sync.pk, origin_ids=[candidate.origin_id for candidate in outcome.candidates]
    )
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
                    (candidate.origin_id, candidate.source_object,
                     f"origin id {candidate.origin_id!r} appears more than once in this run")
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
        locked.status = RunPage.Status.DONE
        locked.object_count = len(objects)
        locked.finished_at = now
        locked.save(update_fields=["status", "object_count", "finished_at"])
        dispatch.enqueue_many(
            sync_object,
            [
                (run_id, contracts[candidate.origin_id].pk, candidate.source_object, candidate.origin_hash)
                for candidate in to_write
            ],
        )
    finished = runs.run_try_finish(run_id=run_id)
    if finished is not None:
        run_finished(run=finished)


def invalid_logs_record(
    *,
    run: SynchronizationRun,
    context: SyncContext,
    contracts: dict[str, Contract],
    invalid: list[tuple[str, Any, str]],
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
                contract=contracts.get(origin_id) if origin_id else None,
                run=run,
                origin_id=origin_id,
                status=Contract.Status.INVALID,
                source_object=obj if isinstance(obj, (dict, list)) else {"value": obj},
                error=error,
            )
            for origin_id, obj, error in invalid
        ]
    )
    for origin_id, _obj, error in invalid:
        contract = contracts.get(origin_id) if origin_id else None
        if contract is not None and "appears more than once" not in error:
            Contract.objects.filter(pk=contract.pk).update(
                status=Contract.Status.INVALID, last_error=error, source_last_checked=now
            )


def page_fail(*, page: RunPage, message: str) -> None:
    """Record that a page could not be read; the run fetches no further and ends failed."""
    logger.warning("run %s page %s failed: %s", page.run_id, page.number, message)
    with transaction.atomic():
        updated = RunPage.objects.filter(pk=page.pk, status=RunPage.Status.QUEUED).update(
            status=RunPage.Status.FAILED, error_message=message[:5000], finished_at=timezone.now()
        )
        if updated:
            runs.run_fail(run_id=page.run_id, message=f"page {page.number}: {message}")
    finished = runs.run_try_finish(run_id=page.run_id)
    if finished is not None:
        run_finished(run=finished)


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


def object_process(*, run_id: int, contract_id: int, source_object: dict, origin_hash: str) -> None:
    """Map and write one object, then record the contract, a log and the run's counts."""
    run = SynchronizationRun.objects.filter(pk=run_id).first()
    if run is None or run.status != SynchronizationRun.Status.RUNNING:
        return
    context = context_load(synchronization_id=run.synchronization_id)
    schema = context.synchronization.target_schema
    now = timezone.now()
    with transaction.atomic():
        contract = Contract.objects.select_for_update().filter(pk=contract_id).first()
        if contract is None or contract.last_processed_run_id == run_id:
            return  # deleted meanwhile, or a redelivered task whose work is already recorded
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
        contract.last_seen_run_id = run_id
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
        finished = runs.run_try_finish(run_id=run_id)
        if finished is not None:
            run_finished(run=finished)


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
    finished = runs.run_try_finish(run_id=run_id)
    if finished is not None:
        run_finished(run=finished)


def run_finished(*, run: SynchronizationRun) -> None:
    """Act on a run that has just ended."""
    logger.info("run %s finished: %s", run.pk, run.status)


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
            source=sync.source, source_config=sync.source_config or {}, request=first_request(context)
        )
        objects = extract_objects(body=fetched.body, results_position=context.results_position, url=fetched.url)
    except (SourceError, PaginationError) as error:
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
    for origin_id, obj, error in outcome.invalid:
        report.append({"originId": origin_id or None, "action": "invalid", "error": error, "source": obj})
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
