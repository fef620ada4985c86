"""The planner is a pure function: pages and contracts in, decisions out, no database."""
from __future__ import annotations

from syncapp.conditions import conditions_compile
from syncapp.errors import InvalidObject
from syncapp.hashing import hash_value
from syncapp.mapping import MappingError
from syncapp.runs.planner import ContractState, Rules, page_in_scope, page_plan
from syncapp.sources.base import ReadPage


def rules(**changes) -> Rules:
    def to_target(obj: dict) -> dict:
        if obj.get("name") == "unmappable":
            raise MappingError(key="name", message="cannot map")
        return {"name": obj.get("name"), "legs": obj.get("legs")}

    def validate(data: dict) -> None:
        if not data.get("name"):
            raise InvalidObject("name: is required")

    defaults = {
        "id_position": "id", "fingerprint": "f1",
        "passes": conditions_compile({"==": [{"var": "status"}, "active"]}),
        "origin_hash": None, "to_target": to_target, "validate": validate,
    }
    return Rules(**{**defaults, **changes})


def synced(obj: dict, *, pk: int = 1, fingerprint: str = "f1", target: dict | None = None, seen: int | None = None):
    target = target if target is not None else {"name": obj["name"], "legs": obj.get("legs")}
    return ContractState(
        pk=pk, origin_hash=hash_value(obj), config_hash=fingerprint, status="synced", target_id="t1",
        target_hash=hash_value(target), last_seen_run_id=seen,
    )


def plan(objects, contracts=None, **options):
    options = {"rules": rules(), "run_id": 7, "force": False, **options}
    return page_plan(objects=objects, hashes=None, contracts=contracts or {}, **options)


def test_new_objects_that_pass_the_conditions_are_planned_as_writes_with_their_mapped_result():
    result = plan([{"id": 1, "name": "Ada", "status": "active"}, {"id": 2, "name": "Bo", "status": "gone"}])

    assert (result.found, result.filtered) == (2, 1)
    [write] = result.writes
    assert (write.origin_id, write.target_object) == ("1", {"name": "Ada", "legs": None})
    assert write.target_hash == hash_value(write.target_object)


def test_an_object_whose_hash_and_fingerprint_match_its_contract_is_unchanged_and_not_mapped():
    obj = {"id": 1, "name": "unmappable", "status": "active"}  # mapping it would fail

    result = plan([obj], {"1": synced({"id": 1, "name": "unmappable", "status": "active"})})

    assert result.unchanged == ["1"] and not result.writes and not result.invalid


def test_a_changed_fingerprint_maps_again_and_a_result_the_target_holds_is_not_written():
    obj = {"id": 1, "name": "Ada", "status": "active"}

    result = plan([obj], {"1": synced(obj, fingerprint="old")})

    assert [item.origin_id for item in result.holds] == ["1"] and not result.writes


def test_a_changed_object_that_maps_differently_is_an_update():
    before = {"id": 1, "name": "Ada", "status": "active"}
    after = {**before, "name": "Adaline"}

    result = plan([after], {"1": synced(before)})

    assert [item.target_object["name"] for item in result.writes] == ["Adaline"]


def test_a_forced_run_writes_what_is_unchanged():
    obj = {"id": 1, "name": "Ada", "status": "active"}

    result = plan([obj], {"1": synced(obj)}, force=True)

    assert [item.origin_id for item in result.writes] == ["1"] and not result.unchanged and not result.holds


def test_objects_that_cannot_be_taken_up_are_invalid_each_with_its_reason():
    objects = [
        "text", {"name": "no id", "status": "active"}, {"id": 3, "name": "unmappable", "status": "active"},
        {"id": 4, "name": "", "status": "active"}, {"id": 5, "name": "Twin", "status": "active"},
        {"id": 5, "name": "Twin again", "status": "active"},
    ]

    result = plan(objects)

    assert [(rejected.origin_id, rejected.duplicate) for rejected in result.invalid] == [
        ("", False), ("", False), ("3", False), ("4", False), ("5", True),
    ]
    assert "name: is required" in result.invalid[3].error
    assert [item.origin_id for item in result.writes] == ["5"]


def test_an_origin_id_this_run_saw_on_an_earlier_page_is_a_duplicate_that_keeps_the_first():
    obj = {"id": 1, "name": "Ada", "status": "active"}

    result = plan([obj], {"1": synced(obj, seen=7)})

    [rejected] = result.invalid
    assert rejected.duplicate and "more than once in this run" in rejected.error
    assert "1" not in result.seen


def test_seen_names_every_object_the_page_shows_but_the_filtered_and_duplicates():
    objects = [{"id": n, "name": f"A{n}", "status": "active"} for n in range(1, 4)]
    objects += [{"id": 4, "name": "", "status": "active"}, {"id": 5, "name": "x", "status": "gone"}]

    result = plan(objects, {"2": synced(objects[1])})

    assert sorted(result.seen) == ["1", "2", "3", "4"]


def test_a_hash_mapping_decides_what_counts_as_a_change():
    def origin_hash(obj: dict, plain: str) -> str:
        return hash_value({"name": obj["name"]})

    obj = {"id": 1, "name": "Ada", "status": "active", "fetchedAt": "now"}
    contract = ContractState(1, hash_value({"name": "Ada"}), "f1", "synced", "t1", "h", None)

    result = plan([{**obj, "fetchedAt": "later"}], {"1": contract}, rules=rules(origin_hash=origin_hash))

    assert result.unchanged == ["1"]


def test_a_page_in_a_scoped_run_keeps_only_the_objects_of_its_scope_with_their_hashes():
    # Given a page read whole from a source that cannot be asked for some objects alone
    objects = [{"id": 1, "name": "a"}, {"id": "2", "name": "b"}, {"name": "no id"}, "not an object", {"id": 3}]
    read = ReadPage(objects=objects, hashes=["h1", "h2", "h-", "hx", "h3"], next_request={"page": 2})

    # When a run scoped to origin ids 2 and 3 takes it
    kept = page_in_scope(read, scope=frozenset({"2", "3"}), id_position="id")

    # Then only those stay, each with its own hash, and the next page is still asked for
    assert kept.objects == [{"id": "2", "name": "b"}, {"id": 3}]
    assert kept.hashes == ["h2", "h3"]
    assert kept.next_request == {"page": 2}
