"""Follow-up synchronizations: refuse cycles when they are saved, start them after a run."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from contracts.models import SynchronizationRun
from contracts.runs import RunRefused
from syncapp.errors import ConfigurationError
from syncapp.models import Synchronization
from syncapp.runs.start import run_start

logger = logging.getLogger(__name__)


def follow_up_graph() -> dict[str, list[str]]:
    """Return every synchronization's follow-ups by reference, as stored."""
    graph: dict[str, list[str]] = {}
    through = Synchronization.follow_ups.through
    rows = through.objects.values_list("from_synchronization__reference", "to_synchronization__reference")
    for reference in Synchronization.objects.values_list("reference", flat=True):
        graph.setdefault(reference, [])
    for source, target in rows:
        graph.setdefault(source, []).append(target)
    return graph


def follow_up_cycle(*, graph: Mapping[str, Iterable[str]], start: str) -> list[str] | None:
    """Return a chain that leads from `start` back to itself (["a", "b", "a"]), or None."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    visited: set[str] = set()
    while stack:
        node, chain = stack.pop()
        for follower in graph.get(node, ()):
            if follower == start:
                return [*chain, start]
            if follower not in visited:
                visited.add(follower)
                stack.append((follower, [*chain, follower]))
    return None


def follow_up_cycle_message(*, reference: str, follow_ups: Iterable[str], graph=None) -> str | None:
    """Return why saving these follow-ups would make a cycle, naming the chain; None when it would not."""
    graph = dict(follow_up_graph() if graph is None else graph)
    graph[reference] = list(follow_ups)
    chain = follow_up_cycle(graph=graph, start=reference)
    if chain is None:
        return None
    return "follow-ups make a cycle: " + " → ".join(chain)


def ancestry(run: SynchronizationRun) -> set[int]:
    """Return the synchronization ids of this run and of the runs that led to it."""
    seen: set[int] = set()
    current: SynchronizationRun | None = run
    while current is not None and current.synchronization_id not in seen:
        seen.add(current.synchronization_id)
        current = current.parent
    return seen


def follow_ups_start(*, run: SynchronizationRun) -> list[SynchronizationRun]:
    """Start each follow-up of a run as its own run linked to it; never one already in the chain."""
    started = []
    in_chain = ancestry(run)
    for follow_up in run.synchronization.follow_ups.filter(is_enabled=True).order_by("reference"):
        if follow_up.pk in in_chain:
            logger.warning("run %s: follow-up %s skipped, it is already in the chain", run.pk, follow_up.reference)
            continue
        if SynchronizationRun.objects.filter(parent=run, synchronization=follow_up).exists():
            continue  # a redelivered task: this follow-up was started already
        try:
            started.append(
                run_start(
                    synchronization=follow_up, trigger=SynchronizationRun.Trigger.FOLLOW_UP, parent=run, queue=True
                )
            )
        except (RunRefused, ConfigurationError) as error:
            logger.warning("run %s: follow-up %s not started: %s", run.pk, follow_up.reference, error)
    return started


def follow_ups_start_of(*, run_id: int) -> list[SynchronizationRun]:
    """Start the follow-ups of the run with this id, if it is still there."""
    run = SynchronizationRun.objects.select_related("synchronization").filter(pk=run_id).first()
    return follow_ups_start(run=run) if run is not None else []
