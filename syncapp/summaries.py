"""What a person reads first about stored records: an object's first fields, a run's live figures and its
first failing objects, a synchronization's last runs."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.paginator import Page, Paginator
from django.utils import timezone

from contracts.models import ContractLog, RunPage, SynchronizationRun
from contracts.runs import run_progress
from syncapp.charts import ChartRun
from syncapp.models import Synchronization
from syncapp.progress import duration_text

# The statuses of a contract log whose object was not written: what "Retry failed objects" runs again.
FAILING_STATUSES = ("failed", "invalid")
PAGES_PER_SCREEN = 50
# The fields of the run the page shows live: in its summary and in its "All fields" section (the moments
# are shown live as duration and rate, in the summary).
LIVE_FIELDS = (
    *SynchronizationRun.COUNT_FIELDS, "status", "pages_fetched", "pages_judged", "pages_ended", "objects_queued",
    "objects_done", "retries", "waited_seconds", "enrichments", "enrichments_failed", "error_message",
)


def object_summary(*, data: Any, schema: dict, fields: int = 3, width: int = 40) -> str:
    """Return the first `fields` values of an object as `name: value`, in the schema's order of fields
    (its required ones first, then its other properties), each cut to `width` characters."""
    if not isinstance(data, dict):
        return json.dumps(data, ensure_ascii=False)[:width]
    schema = schema if isinstance(schema, dict) else {}
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = [name for name in schema.get("required") or [] if isinstance(name, str)]
    order = list(dict.fromkeys([*required, *properties, *data]))
    shown = []
    for name in order:
        value = data.get(name)
        if value is None or value == "" or isinstance(value, dict | list):
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        shown.append(f"{name}: {text if len(text) <= width else text[:width - 1] + '…'}")
        if len(shown) == fields:
            break
    return " · ".join(shown) or "(no plain values)"


def run_seconds(run: SynchronizationRun) -> float | None:
    """Return how long the run has run: until it finished, or until now while it is active."""
    if run.started_at is None:
        return None
    return max(((run.finished_at or timezone.now()) - run.started_at).total_seconds(), 0.0)


def run_rate(run: SynchronizationRun, *, done: int) -> float | None:
    """Return the run's objects done per second over its whole time, None before it has started."""
    seconds = run_seconds(run)
    return done / seconds if seconds else None


def run_live(run: SynchronizationRun) -> dict:
    """Return the figures of a run its page shows and refreshes while it is active: the progress (its
    bar, whose total is known once the source has been read), the duration and rate, and its fields."""
    facts = run_progress(run)
    seconds = run_seconds(run)
    rate = run_rate(run, done=facts["done"])
    fields = {name: getattr(run, name) for name in LIVE_FIELDS}
    return {
        **facts,
        "totalKnown": run.fetch_finished or not facts["active"],
        "duration": duration_text(seconds),
        "rate": f"{rate:,.1f} objects/s" if rate is not None else "-",
        "fields": fields,
    }


def run_failures(*, run: SynchronizationRun, limit: int = 10) -> list[ContractLog]:
    """Return the first objects of the run that were not written (failed or invalid), with their messages."""
    return list(
        ContractLog.objects.filter(run=run, status__in=FAILING_STATUSES)
        .only("pk", "origin_id", "status", "error", "contract_id", "created_at").order_by("created_at", "pk")[:limit]
    )


def run_failed_origin_ids(*, run: SynchronizationRun) -> list[str]:
    """Return the origin ids of the objects the run did not write (failed or invalid), sorted."""
    ids = (
        ContractLog.objects.filter(run=run, status__in=FAILING_STATUSES).exclude(origin_id="")
        .values_list("origin_id", flat=True).distinct()
    )
    return sorted(ids)


def run_pages_screen(*, run: SynchronizationRun, number: Any) -> Page:
    """Return one screen of the run's pages (PAGES_PER_SCREEN of them); a number out of range gives the last."""
    pages = RunPage.objects.filter(run=run).order_by("number").only(
        "number", "status", "object_count", "error_message", "not_before", "finished_at"
    )
    return Paginator(pages, PAGES_PER_SCREEN).get_page(number)


def runs_chart_data(*, synchronization: Synchronization, url_of: Callable[[int], str], limit: int = 30
                    ) -> list[ChartRun]:
    """Return the synchronization's last `limit` runs (not test runs), oldest first, as the chart shows them."""
    runs = list(SynchronizationRun.objects.filter(synchronization=synchronization, is_test=False)
                .order_by("-created_at", "-id")[:limit])
    chart = []
    for run in reversed(runs):
        done = run_progress(run)["done"]
        chart.append(ChartRun(
            id=run.pk, url=url_of(run.pk), status=run.status,
            started=timezone.localtime(run.started_at or run.created_at).strftime("%Y-%m-%d %H:%M"),
            seconds=run_seconds(run), rate=run_rate(run, done=done),
            created=run.created, updated=run.updated, deleted=run.deleted, failed=run.failed + run.invalid,
        ))
    return chart
