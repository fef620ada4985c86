"""Delete from the target what vanished from the source, with the guards of SYNC.md section 7."""
from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from contracts.models import ContractLog, SynchronizationContract, SynchronizationRun
from syncapp.errors import SyncError
from syncapp.targets import writer_for

logger = logging.getLogger(__name__)

Contract = SynchronizationContract
DEFAULT_SAFETY_LIMIT = 0.5


class DeletionConfigError(SyncError, ValueError):
    """deleteSafetyLimit or deleteMissing hold a value that cannot be used."""


def delete_safety_limit(source_config: dict[str, Any]) -> float:
    """Return deleteSafetyLimit as a fraction: "50%", 50 and 0.5 all mean half."""
    raw = source_config.get("deleteSafetyLimit", DEFAULT_SAFETY_LIMIT)
    try:
        if isinstance(raw, str):
            text = raw.strip()
            value = float(text.rstrip("%")) / 100 if text.endswith("%") else float(text)
        elif isinstance(raw, bool):
            raise ValueError
        else:
            value = float(raw)
    except ValueError:
        raise DeletionConfigError(f"deleteSafetyLimit must be a percentage like \"50%\", got {raw!r}") from None
    if value > 1:
        value /= 100
    if not 0 <= value <= 1:
        raise DeletionConfigError(f"deleteSafetyLimit must be between 0% and 100%, got {raw!r}")
    return value


def delete_missing(source_config: dict[str, Any]) -> bool:
    """Return whether vanished objects are deleted at all (deleteMissing, default true)."""
    raw = source_config.get("deleteMissing", True)
    if isinstance(raw, str):
        if raw.lower() not in {"true", "false", "1", "0"}:
            raise DeletionConfigError(f"deleteMissing must be true or false, got {raw!r}")
        return raw.lower() in {"true", "1"}
    return bool(raw)


def deletion_config_problems(source_config: dict[str, Any]) -> list[str]:
    """Return the problems of the deletion settings of a sourceConfig."""
    problems = []
    for check in (delete_safety_limit, delete_missing):
        try:
            check(source_config)
        except DeletionConfigError as error:
            problems.append(str(error))
    return problems


def deletion_allowed(run: SynchronizationRun) -> bool:
    """Return whether the run saw the whole source: only then can absence mean deletion.

    An incremental run asked only for what changed: what it did not see did not vanish.
    """
    return not (
        run.is_test or run.error_message or run.max_pages_reached or run.waiting
        or run.mode == SynchronizationRun.Mode.INCREMENTAL
    )


def vanished_delete(run: SynchronizationRun) -> None:
    """Delete the target objects whose contracts this complete run did not see; count them on the run.

    Runs under the run's lock in its closing transaction. A run that would delete more than
    deleteSafetyLimit of the synchronization's objects deletes nothing, unless it is forced.
    """
    if not deletion_allowed(run):
        return
    sync = run.synchronization
    config = sync.source_config or {}
    try:
        if not delete_missing(config):
            return
        limit = delete_safety_limit(config)
    except DeletionConfigError as error:
        run.error_message = f"nothing deleted: sourceConfig.{error}"
        run.deletion_refused = True
        return
    with_target = Contract.objects.filter(synchronization=sync, target_id__isnull=False)
    vanished = with_target.exclude(last_seen_run_id=run.pk)
    if run.scope:
        vanished = vanished.filter(origin_id__in=run.scope)  # a push judges only what it was about
    doomed = list(vanished.values_list("pk", "origin_id", "target_id"))
    if not doomed:
        return
    total = with_target.count()
    if not run.is_forced and len(doomed) > limit * total:
        run.error_message = (
            f"nothing deleted: {len(doomed)} of {total} objects ({len(doomed) / total:.0%}) vanished from the "
            f"source, more than deleteSafetyLimit {limit:.0%}; a forced run deletes them"
        )
        run.deletion_refused = True
        return
    now = timezone.now()
    writer_for(sync).delete([target for _, _, target in doomed], push_origin=tuple(run.push_origin or ()))
    Contract.objects.filter(pk__in=[pk for pk, _, _ in doomed]).update(
        target_id=None, target_hash="", origin_hash="", target_last_action=Contract.Action.DELETE,
        status=Contract.Status.DELETED, target_last_changed=now, target_last_synced=now, last_error="",
    )
    ContractLog.objects.bulk_create(
        [
            ContractLog(
                synchronization=sync, contract_id=pk, run=run, origin_id=origin_id,
                action=Contract.Action.DELETE, status=Contract.Status.DELETED,
                target_object={"id": target_id},
            )
            for pk, origin_id, target_id in doomed
        ]
    )
    run.deleted = len(doomed)
    logger.info("run %s deleted %s vanished objects", run.pk, len(doomed))
