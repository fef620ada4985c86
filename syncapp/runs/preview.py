"""A test run: what a run would do with the first page, writing nothing but the run record."""
from __future__ import annotations

from typing import Any

from django.utils import timezone

from contracts import runs
from contracts.models import SynchronizationRun
from syncapp.enrichment import objects_enrich
from syncapp.errors import ConfigurationError, PaginationError, SourceError
from syncapp.http import RateLimited
from syncapp.incremental import run_mode
from syncapp.models import Synchronization
from syncapp.runs.context import context_load, first_request
from syncapp.runs.pages import contract_states
from syncapp.runs.planner import enrichment_candidates, page_origin_ids, page_plan


def run_test(
    *, synchronization: Synchronization, trigger: str = SynchronizationRun.Trigger.MANUAL, full: bool = False
):
    """Show per object what a run would do with the first page: no target write, no contract change."""
    context = context_load(synchronization_id=synchronization.pk)
    run = runs.run_create(synchronization=synchronization, trigger=trigger, test=True,
                          mode=run_mode(context.synchronization, full=full))
    run.status = SynchronizationRun.Status.RUNNING
    run.started_at = timezone.now()
    reader = context.reader
    try:
        request = first_request(context, run=run)
        read = reader.page(request=request, fetched=reader.fetch(request=request))
    except (SourceError, PaginationError, ConfigurationError, RateLimited) as error:
        run.error_message = str(error)
        run.status = SynchronizationRun.Status.FAILED
        run.finished_at = timezone.now()
        run.save()
        return run
    rules = context.rules
    states = contract_states(
        synchronization_id=synchronization.pk, origin_ids=page_origin_ids(read.objects, id_position=rules.id_position)
    )
    enrichment = None
    if context.enricher is not None:
        chosen = enrichment_candidates(
            objects=read.objects, rules=rules, before_conditions=context.enricher.before_conditions,
            hashes=read.hashes, contracts=states if context.enricher.only_changed else None,
        )
        try:
            enrichment = objects_enrich(enricher=context.enricher, objects=read.objects, chosen=chosen)
        except RateLimited as error:
            run.error_message, run.status = str(error), SynchronizationRun.Status.FAILED
            run.finished_at = timezone.now()
            run.save()
            return run
        run.enrichments, run.enrichments_failed = enrichment.requests, len(enrichment.failures)
    plan = page_plan(objects=read.objects, hashes=read.hashes, contracts=states, rules=rules, run_id=None, force=False,
                     enrichment=enrichment)
    present = context.writer.existing([states[item.origin_id].target_id for item in plan.holds])
    counts = dict.fromkeys(SynchronizationRun.COUNT_FIELDS, 0)
    failed = sum(1 for rejected in plan.invalid if rejected.failed)
    counts.update(found=plan.found, filtered=plan.filtered, invalid=len(plan.invalid) - failed, failed=failed,
                  unchanged=len(plan.unchanged))
    report: list[dict[str, Any]] = [
        {"originId": rejected.origin_id or None, "action": "failed" if rejected.failed else "invalid",
         "error": rejected.error, "source": rejected.source_object}
        for rejected in plan.invalid
    ]
    report += [{"originId": origin_id, "action": "unchanged"} for origin_id in plan.unchanged]
    for item in plan.holds:
        if states[item.origin_id].target_id in present:
            counts["unchanged"] += 1
            report.append({"originId": item.origin_id, "action": "unchanged"})
    writes = [*plan.writes, *(item for item in plan.holds if states[item.origin_id].target_id not in present)]
    for item in writes:
        contract = states.get(item.origin_id)
        action = "update" if contract is not None and contract.target_id else "create"
        counts["created" if action == "create" else "updated"] += 1
        report.append({"originId": item.origin_id, "action": action, "result": item.target_object})
    if plan.filtered:
        report.append({"action": "filtered", "count": plan.filtered})
    for name, value in counts.items():
        setattr(run, name, value)
    run.pages_fetched = 1
    run.report = report
    problems = counts["invalid"] or counts["failed"]
    run.status = SynchronizationRun.Status.PARTIAL if problems else SynchronizationRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.save()
    return run
