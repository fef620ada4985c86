"""Two-way sync: objects changed in the register go back to the API source they came from.

A synchronization from an API source into the register with `sourceConfig.writeBack` (true, or an
object with the api target's `updateEndpoint` and `updateMethod`) and a `targetSourceMapping` sends
an object changed here (in the admin, through the API) back to its source, mapped with that mapping, to
`updateEndpoint` (default the synchronization's endpoint + `/{{ targetId }}`, where `targetId` is the
source's id). The contract's hashes tell who changed since the last sync: `target_hash` is what the
last sync wrote here, `origin_hash` what it read there. When both changed, `sourceConfig.conflictWinner`
decides on the next pull: `source` (the default) overwrites here, `target` keeps this version and sends
it back, `manual` changes nothing and marks the contract `conflict` for a person to resolve.
"""
from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from django.db import transaction
from django.utils import timezone

from contracts.logs import log_text, log_value
from contracts.models import ContractLog, SynchronizationContract
from syncapp.authentication import CredentialsError
from syncapp.bulk import transactions_lock_database
from syncapp.hashing import hash_value
from syncapp.mapping import MappingError, apply_mapping
from syncapp.mappings import mapping_spec, resolve_mapping
from syncapp.models import Object, Synchronization
from syncapp.targets import writer_kind
from syncapp.targets.api import ApiWriter
from syncapp.targets.base import Outcome, Write
from workers import dispatch

logger = logging.getLogger(__name__)

Contract = SynchronizationContract
WINNERS = ("source", "target", "manual")


def write_back_settings(source_config: dict[str, Any]) -> dict[str, Any] | None:
    """Return the write-back settings of a synchronization, or None when it does not write back."""
    value = (source_config or {}).get("writeBack")
    if value is True:
        return {}
    if isinstance(value, dict) and value:
        return dict(value)
    return None


def write_back_problems(item: dict[str, Any], *, path: str) -> list[str]:
    """Return the problems of a synchronization's two-way settings, each with its path."""
    config = item.get("sourceConfig") or {}
    if not isinstance(config, dict):
        return []
    problems = []
    value = config.get("writeBack")
    winner = config.get("conflictWinner")
    if winner is not None and winner not in WINNERS:
        problems.append(f"{path}.sourceConfig.conflictWinner: must be one of {', '.join(WINNERS)}, got {winner!r}")
    if value in (None, False):
        return problems
    if not (value is True or isinstance(value, dict)):
        problems.append(f"{path}.sourceConfig.writeBack: must be true or an object with updateEndpoint, updateMethod")
        return problems
    # Which sources take writeBack at all is their declaration's to say (ApiSourceConfig); the objects
    # go back from a target that holds them here.
    target = writer_kind(item.get("targetType", "register/schema"))
    if target is not None and not target.writes_schema:
        problems.append(f"{path}.sourceConfig.writeBack: only a synchronization into the register writes back")
    if not item.get("targetSourceMapping"):
        problems.append(f"{path}.targetSourceMapping: writeBack needs the mapping from the register to the source")
    return problems


def _writer(synchronization: Synchronization, settings: dict[str, Any]) -> ApiWriter:
    endpoint = str((synchronization.source_config or {}).get("endpoint") or "").split("?", 1)[0]
    return ApiWriter(SimpleNamespace(
        reference=f"{synchronization.reference}-write-back", target_source=synchronization.source,
        target_config={"endpoint": endpoint, **settings},
    ))


def write_back(*, synchronization_id: int, object_ids: list[str]) -> int:
    """Send the register objects changed here since the last sync back to the source; return how many.

    Each object is its own transaction, its contract locked; one unchanged here (its hash is what the
    last sync wrote) is skipped, so sending twice sends nothing twice.
    """
    synchronization = (
        Synchronization.objects.select_related("source", "target_source_mapping")
        .filter(pk=synchronization_id, is_enabled=True).first()
    )
    settings = write_back_settings(synchronization.source_config) if synchronization else None
    if settings is None or synchronization.source is None or synchronization.target_source_mapping is None:
        return 0
    try:
        writer = _writer(synchronization, settings)
    except CredentialsError as error:
        logger.warning("%s: nothing written back, the source's credentials are not usable: %s",
                       synchronization.reference, error)
        return 0
    spec = mapping_spec(synchronization.target_source_mapping)
    if transactions_lock_database():
        return _write_back_between_transactions(
            synchronization=synchronization, writer=writer, spec=spec, object_ids=object_ids
        )
    sent = 0
    for object_id in object_ids:
        with transaction.atomic():
            contract = Contract.objects.select_for_update().filter(
                synchronization=synchronization, target_id=str(object_id)
            ).first()
            obj = Object.objects.filter(pk=object_id).first()
            if contract is None or obj is None:
                continue  # made here or gone: only objects that came from the source go back
            current = hash_value(obj.data)
            if current == contract.target_hash:
                continue
            outcome = _send_back(writer=writer, spec=spec, obj=obj, contract=contract)
            _record(contract=contract, obj=obj, current=current, outcome=outcome)
            sent += outcome.kind == Outcome.UPDATED
    return sent


def _send_back(*, writer: ApiWriter, spec: Any, obj: Object, contract: Contract) -> Outcome:
    """Map a register object back to its source and send it there; return what became of it."""
    try:
        body = apply_mapping(spec=spec, data=obj.data, resolve_mapping=resolve_mapping)
    except MappingError as error:
        return Outcome(Outcome.INVALID, error=f"targetSourceMapping: {error}")
    [outcome] = writer.write([Write(target_id=contract.origin_id, data=body, origin_id=contract.origin_id)])
    return outcome


def _write_back_between_transactions(
    *, synchronization: Synchronization, writer: ApiWriter, spec: Any, object_ids: list[str]
) -> int:
    """Write back where a transaction locks the whole database (SQLite): the call outside any transaction.

    Each object is read, sent, then its outcome recorded in a short transaction of its own, unless its
    contract changed meanwhile (another write-back recorded it first, or it was removed).
    """
    sent = 0
    for object_id in object_ids:
        contract = Contract.objects.filter(synchronization=synchronization, target_id=str(object_id)).first()
        obj = Object.objects.filter(pk=object_id).first()
        if contract is None or obj is None:
            continue  # made here or gone: only objects that came from the source go back
        current = hash_value(obj.data)
        if current == contract.target_hash:
            continue
        outcome = _send_back(writer=writer, spec=spec, obj=obj, contract=contract)
        with transaction.atomic():
            still = Contract.objects.filter(pk=contract.pk, target_hash=contract.target_hash).first()
            if still is None:
                continue
            _record(contract=still, obj=obj, current=current, outcome=outcome)
        sent += outcome.kind == Outcome.UPDATED
    return sent


def _record(*, contract: Contract, obj: Object, current: str, outcome: Outcome) -> None:
    now = timezone.now()
    if outcome.kind == Outcome.UPDATED:
        # What is here went there: the next pull reads the source's new version, and finds it the same.
        contract.target_hash = current
        contract.origin_hash = ""
        contract.status = Contract.Status.SYNCED
        contract.last_error = ""
        contract.source_last_synced = now
    else:
        contract.status = Contract.Status.FAILED
        contract.last_error = log_text(f"writing back to the source: {outcome.error}")
    contract.save()
    ContractLog.objects.create(
        synchronization_id=contract.synchronization_id, contract=contract, origin_id=contract.origin_id,
        action="write-back" if outcome.kind == Outcome.UPDATED else "", status=contract.status,
        source_object=log_value(obj.data), response=log_value(outcome.response), error=contract.last_error,
    )


def changes_write_back(*, schema_id: int, object_ids: list[str], written_by_any: list[int]) -> None:
    """Send register objects changed here to the two-way synchronizations that brought them, after commit;
    `written_by_any`: the synchronizations whose runs led to the change (the origin chain), not sent to."""
    # Only a source whose declaration takes writeBack has it (an API source's).
    readers = Synchronization.objects.filter(target_schema_id=schema_id, is_enabled=True).values_list(
        "pk", "source_config"
    )
    for synchronization_id, source_config in readers:
        if synchronization_id in written_by_any:
            continue  # its own pull, or a push it caused: that came from the source
        if write_back_settings(source_config) is not None:
            dispatch.write_back(synchronization_id=synchronization_id, object_ids=object_ids)


def conflict_resolve(*, contract: Contract, keep: str) -> None:
    """Resolve a conflict: keep the source's version (the next run writes it here) or the register's
    (sent back to the source now)."""
    obj = Object.objects.filter(pk=contract.target_id).first() if contract.target_id else None
    if keep == "source":
        # Take what is here as known, and what is there as new: the next pull writes the source's version.
        contract.target_hash = hash_value(obj.data) if obj is not None else ""
        contract.origin_hash = ""
    else:
        contract.target_hash = ""  # what is here is new: it goes back
    contract.status = Contract.Status.SYNCED
    contract.last_error = ""
    contract.save()
    if keep != "source" and obj is not None:
        dispatch.write_back(synchronization_id=contract.synchronization_id, object_ids=[str(obj.pk)])
