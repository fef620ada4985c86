"""Decide what happens to each object of a page: a pure function of the page, its contracts and the rules.

Nothing here touches the database or the network: the page step loads the page's contracts in one
query, calls `page_plan`, and records the plan in bulk. Per object the plan says one of:

- invalid: not an object, no origin id, a duplicate, a condition or mapping error, or against the
  target's schema; or failed: its detail (sourceConfig.extraDataConfigs) could not be fetched;
- filtered: the conditions say it does not belong;
- unchanged: its hash, the synchronization's fingerprint and its target say nothing changed;
- holds: it changed, but maps to exactly what the target already holds (the target is asked, once
  per page, whether those objects are still there);
- write: create or update, with the mapped object.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from syncapp.conditions import ConditionError
from syncapp.dotpath import MISSING, get_path
from syncapp.errors import InvalidObject
from syncapp.hashing import hash_value
from syncapp.mapping import MappingError
from syncapp.sources.base import ReadPage

SYNCED = "synced"


@dataclass(frozen=True)
class ContractState:
    """What the plan needs to know of an object's contract."""

    pk: int
    origin_hash: str
    config_hash: str
    status: str
    target_id: str | None
    target_hash: str
    last_seen_run_id: int | None

    FIELDS = ("pk", "origin_id", "origin_hash", "config_hash", "status", "target_id", "target_hash", "last_seen_run_id")


@dataclass(frozen=True)
class Rules:
    """How a synchronization judges and reshapes objects; built once per run and worker process."""

    id_position: str
    fingerprint: str
    passes: Callable[[Any], bool]  # the conditions; raises ConditionError
    origin_hash: Callable[[dict, str], str] | None  # (object, its plain hash) -> hash; None: the plain hash
    to_target: Callable[[dict], Any]  # the mapping; raises MappingError
    validate: Callable[[Any], None]  # the target's check; raises InvalidObject
    # The hash by which a mapped object is compared with what the target holds. A synchronization with rules
    # salts it with them, so that an object whose source changed always goes through its rules, never "holds".
    target_hash: Callable[[Any], str] = hash_value


@dataclass
class Rejected:
    """An object that cannot be taken up, and why."""

    origin_id: str
    source_object: Any
    error: str
    # Another object of the run has the same origin id: its contract belongs to that one.
    duplicate: bool = False
    # Not the object's fault but the source's (its detail could not be fetched): it counts as failed.
    failed: bool = False


@dataclass
class Planned:
    """An object of the page that passed the conditions and has an origin id."""

    origin_id: str
    origin_hash: str
    source_object: dict
    target_object: Any = None
    target_hash: str = ""


@dataclass
class PagePlan:
    found: int = 0
    filtered: int = 0
    invalid: list[Rejected] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # origin ids
    holds: list[Planned] = field(default_factory=list)
    writes: list[Planned] = field(default_factory=list)

    @property
    def seen(self) -> list[str]:
        """Return the origin ids this page shows the run (their targets must not be deleted as vanished)."""
        ids = [*self.unchanged, *(item.origin_id for item in self.holds), *(item.origin_id for item in self.writes)]
        ids += [rejected.origin_id for rejected in self.invalid if rejected.origin_id and not rejected.duplicate]
        return ids


class _DetailFailed(Exception):
    """The object's detail could not be fetched."""


def _enriched(enrichment: Any, *, index: int, obj: dict) -> dict:
    """Return the object with its details, or raise _DetailFailed."""
    if index in enrichment.failures:
        raise _DetailFailed(enrichment.failures[index])
    return enrichment.objects.get(index, obj)


def origin_id_of(obj: Any, *, id_position: str) -> str | None:
    """Return the object's origin id as text; numbers become strings."""
    value = get_path(obj, id_position)
    if value is MISSING or value is None or value == "" or isinstance(value, (dict, list, bool)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def contract_is_unchanged(contract: ContractState | Any, *, origin_hash: str, fingerprint: str) -> bool:
    """Return whether the last write of this contract still stands for this source object."""
    return (
        contract.status == SYNCED
        and bool(contract.target_id)
        and contract.origin_hash == origin_hash
        and contract.config_hash == fingerprint
    )


def page_origin_ids(objects: list[Any], *, id_position: str) -> list[str]:
    """Return the origin ids of a page's objects, to load their contracts before planning."""
    ids = []
    for obj in objects:
        if isinstance(obj, dict):
            origin_id = origin_id_of(obj, id_position=id_position)
            if origin_id is not None:
                ids.append(origin_id)
    return list(dict.fromkeys(ids))


def page_in_scope(read: ReadPage, *, scope: frozenset[str], id_position: str) -> ReadPage:
    """Return the page with only the objects whose origin id is in `scope`: a run limited to some objects
    (retrying those that failed) from a source that cannot be asked for them alone reads them all."""
    kept = [
        index for index, obj in enumerate(read.objects)
        if isinstance(obj, dict) and origin_id_of(obj, id_position=id_position) in scope
    ]
    return ReadPage(objects=[read.objects[index] for index in kept], hashes=[read.hashes[index] for index in kept],
                    next_request=read.next_request)


def enrichment_candidates(
    *, objects: list[Any], rules: Rules, before_conditions: bool, hashes: list[str] | None = None,
    contracts: dict[str, ContractState] | None = None, force: bool = False,
) -> list[tuple[int, str]]:
    """Return the (index, origin id) of the page's objects to enrich: those with an origin id, once per id,
    that pass the conditions unless enrichment comes before them. An object the conditions cannot judge
    is left to the plan, which reports it.

    With `contracts` (extraDataOnlyWhenChanged), an object whose list entry is unchanged since its last
    write is not enriched, unless the run is forced.
    """
    chosen = []
    seen: set[str] = set()
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            continue
        origin_id = origin_id_of(obj, id_position=rules.id_position)
        if origin_id is None or origin_id in seen:
            continue
        seen.add(origin_id)
        try:
            if not before_conditions and not rules.passes(obj):
                continue
            contract = contracts.get(origin_id) if contracts is not None else None
            if contract is not None and not force and contract_is_unchanged(
                contract, origin_hash=_origin_hash(obj, index=index, hashes=hashes, rules=rules),
                fingerprint=rules.fingerprint,
            ):
                continue
        except (ConditionError, MappingError):
            continue
        chosen.append((index, origin_id))
    return chosen


def _origin_hash(obj: dict, *, index: int, hashes: list[str] | None, rules: Rules, plain_ok: bool = True) -> str:
    """Return the hash by which an object's change is told (sourceHashMapping applied, if any)."""
    plain = hashes[index] if hashes is not None and plain_ok else hash_value(obj)
    return plain if rules.origin_hash is None else rules.origin_hash(obj, plain)


def page_plan(
    *,
    objects: list[Any],
    hashes: list[str] | None,
    contracts: dict[str, ContractState],
    rules: Rules,
    run_id: int | None,
    force: bool,
    enrichment: Any = None,
) -> PagePlan:
    """Return what happens to each object of a page.

    `hashes` are the objects' plain hashes, as the reader computed them for the page's fingerprint
    (None: computed here). A contract already seen by this run means the object came on an earlier
    page too: the first one counts, this one is a duplicate. `enrichment` (syncapp.enrichment.Enrichment)
    holds the objects with their details, by index, and the objects whose detail failed: the
    conditions see the enriched object if it was enriched before them, the hash and mapping always.
    """
    plan = PagePlan(found=len(objects))
    seen: set[str] = set()
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            plan.invalid.append(Rejected("", obj, f"item {index} is a {type(obj).__name__}, not an object"))
            continue
        origin_id = origin_id_of(obj, id_position=rules.id_position)
        if origin_id is None:
            plan.invalid.append(Rejected("", obj, f"item {index} has no origin id at {rules.id_position!r}"))
            continue
        if origin_id in seen:
            plan.invalid.append(
                Rejected(origin_id, obj, f"origin id {origin_id!r} appears twice on one page", duplicate=True)
            )
            continue
        seen.add(origin_id)
        contract = contracts.get(origin_id)
        raw = obj
        try:
            if enrichment is not None and enrichment.before_conditions:
                obj = _enriched(enrichment, index=index, obj=obj)
            if not rules.passes(obj):
                plan.filtered += 1
                continue
            if enrichment is not None and not enrichment.before_conditions:
                obj = _enriched(enrichment, index=index, obj=obj)
            if enrichment is not None and enrichment.only_changed:
                # The list entry tells whether the object changed; its detail is fetched only then.
                origin_hash = _origin_hash(raw, index=index, hashes=hashes, rules=rules)
                if index not in enrichment.objects and not (
                    not force and contract is not None
                    and contract_is_unchanged(contract, origin_hash=origin_hash, fingerprint=rules.fingerprint)
                ):
                    raise _DetailFailed("its detail was not fetched (its contract changed meanwhile); the next "
                                        "run writes it")
            else:
                origin_hash = _origin_hash(obj, index=index, hashes=hashes, rules=rules, plain_ok=obj is raw)
        except _DetailFailed as failure:
            plan.invalid.append(Rejected(origin_id, raw, str(failure), failed=True))
            continue
        except (ConditionError, MappingError) as error:
            plan.invalid.append(Rejected(origin_id, obj, str(error)))
            continue
        if contract is not None and run_id is not None and contract.last_seen_run_id == run_id:
            plan.invalid.append(
                Rejected(origin_id, obj, f"origin id {origin_id!r} appears more than once in this run", duplicate=True)
            )
            continue
        if not force and contract is not None and contract_is_unchanged(
            contract, origin_hash=origin_hash, fingerprint=rules.fingerprint
        ):
            plan.unchanged.append(origin_id)
            continue
        try:
            target_object = rules.to_target(obj)
            rules.validate(target_object)
        except (MappingError, InvalidObject) as error:
            plan.invalid.append(Rejected(origin_id, obj, str(error)))
            continue
        planned = Planned(
            origin_id=origin_id, origin_hash=origin_hash, source_object=obj, target_object=target_object,
            target_hash=rules.target_hash(target_object),
        )
        if not force and contract is not None and contract.target_id and contract.target_hash == planned.target_hash:
            plan.holds.append(planned)  # a new source hash or mapping that maps to the same object
        else:
            plan.writes.append(planned)
    return plan
