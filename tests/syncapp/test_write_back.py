"""Two-way sync: changes made in the register go back to the API source; when both sides changed,
conflictWinner decides."""
from __future__ import annotations

import pytest
from django.urls import reverse

from contracts.models import SynchronizationContract
from syncapp import runs as sync_runs
from syncapp import write_back
from syncapp.configuration import ConfigurationInvalid, bundle_import
from syncapp.models import Object, Synchronization
from syncapp.targets.register import register_object_save
from tests.syncapp.targets.test_api import TargetApi

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")


@pytest.fixture(autouse=True, params=["inside a transaction", "between transactions"])
def write_back_path(request, monkeypatch):
    """Every case both ways: the call inside the contract's transaction (PostgreSQL locks its row only),
    and between short transactions, as on SQLite, whose write lock a call must not hold."""
    monkeypatch.setattr(write_back, "transactions_lock_database", lambda: request.param == "between transactions")


def two_way(crm: TargetApi, **source_config) -> Synchronization:
    bundle_import({
        "sources": [{"reference": "crm", "location": crm.url}],
        "registers": [{"reference": "zoo", "schemas": [{"reference": "animal", "schema": {"type": "object"}}]}],
        "mappings": [
            {"reference": "in", "mapping": {"title": "name", "kind": "kind"}},
            {"reference": "back", "mapping": {"name": "title", "kind": "kind"}},
        ],
        "synchronizations": [{
            "reference": "crm-animals", "sourceType": "api", "sourceId": "crm",
            "sourceConfig": {"endpoint": "/items", "resultsPosition": "results", "pagination": {"type": "none"},
                             "writeBack": True, **source_config},
            "sourceTargetMapping": "in", "targetSourceMapping": "back",
            "targetType": "register/schema", "targetId": "zoo/animal",
        }],
    })
    return Synchronization.objects.get(reference="crm-animals")


def pull(sync: Synchronization):
    run = sync_runs.run_start(synchronization=sync)
    run.refresh_from_db()
    return run


def seeded() -> TargetApi:
    crm = TargetApi()
    crm.items.update({"a1": {"name": "Lulu", "kind": "cat"}, "a2": {"name": "Momo", "kind": "dog"}})
    return crm


def local(origin_id: str) -> Object:
    contract = SynchronizationContract.objects.get(origin_id=origin_id)
    return Object.objects.get(pk=contract.target_id)


def test_a_change_made_in_the_register_goes_back_to_the_source_and_the_next_pull_writes_nothing():
    with seeded() as crm:
        sync = two_way(crm)
        assert pull(sync).created == 2

        # When someone renames Lulu in the register (the admin and the API save through the writer)
        lulu = local("a1")
        lulu.data = {"title": "Lulu the Great", "kind": "cat"}
        register_object_save(obj=lulu)

        # Then the change went back, mapped, to the source's own URL for it
        assert crm.of("PUT") == [("/items/a1", {"name": "Lulu the Great", "kind": "cat"})]
        assert crm.items["a1"]["name"] == "Lulu the Great"

        # And the next pull finds nothing to write and no conflict
        again = pull(sync)

    assert (again.status, again.created, again.updated, again.failed) == ("succeeded", 0, 0, 0), again.error_message
    assert local("a1").data == {"title": "Lulu the Great", "kind": "cat"}
    assert len(crm.of("PUT")) == 1


def both_changed(crm: TargetApi) -> None:
    """Change Lulu here (as an edit the write-back has not sent yet) and at the source."""
    Object.objects.filter(pk=local("a1").pk).update(data={"title": "Lulu here", "kind": "cat"})
    crm.items["a1"] = {"name": "Lulu there", "kind": "cat"}


def test_when_both_changed_and_the_source_wins_the_register_takes_the_sources_version():
    with seeded() as crm:
        sync = two_way(crm, conflictWinner="source")
        pull(sync)
        both_changed(crm)

        second = pull(sync)

    assert (second.status, second.updated) == ("succeeded", 1)
    assert local("a1").data["title"] == "Lulu there"
    assert crm.of("PUT") == []


def test_when_both_changed_and_the_target_wins_the_registers_version_goes_to_the_source():
    with seeded() as crm:
        sync = two_way(crm, conflictWinner="target")
        pull(sync)
        both_changed(crm)

        second = pull(sync)
        third = pull(sync)

    assert (second.status, second.updated, second.unchanged) == ("succeeded", 0, 2), second.error_message
    assert local("a1").data["title"] == "Lulu here"
    assert crm.of("PUT") == [("/items/a1", {"name": "Lulu here", "kind": "cat"})]
    assert (third.updated, third.failed) == (0, 0)


def test_when_both_changed_and_a_person_decides_nothing_is_overwritten_until_resolved(admin_client):
    with seeded() as crm:
        sync = two_way(crm, conflictWinner="manual")
        pull(sync)
        both_changed(crm)

        # When the next pull meets the change on both sides
        second = pull(sync)

        # Then neither side is overwritten; the contract is a conflict, listed in the admin with both versions
        assert (second.status, second.failed) == ("partial", 1)
        contract = SynchronizationContract.objects.get(origin_id="a1")
        assert contract.status == "conflict"
        assert local("a1").data["title"] == "Lulu here" and crm.items["a1"]["name"] == "Lulu there"
        listing = admin_client.get(reverse("admin:contracts_synchronizationcontract_changelist") + "?status=conflict")
        assert listing.status_code == 200 and ">a1<" in listing.content.decode()
        page = admin_client.get(reverse("admin:contracts_synchronizationcontract_change", args=[contract.pk]))
        assert "Lulu here" in page.content.decode() and "Lulu there" in page.content.decode()

        # When a person keeps the source's version, the next pull writes it here
        admin_client.post(reverse("admin:contracts_synchronizationcontract_changelist"),
                          {"action": "keep_source", "_selected_action": [contract.pk]})
        third = pull(sync)

    assert (third.status, third.updated) == ("succeeded", 1), third.error_message
    assert local("a1").data["title"] == "Lulu there"
    assert SynchronizationContract.objects.get(origin_id="a1").status == "synced"
    assert crm.of("PUT") == []


def test_keeping_the_registers_version_sends_it_to_the_source(admin_client):
    with seeded() as crm:
        sync = two_way(crm, conflictWinner="manual")
        pull(sync)
        both_changed(crm)
        pull(sync)
        contract = SynchronizationContract.objects.get(origin_id="a1")

        admin_client.post(reverse("admin:contracts_synchronizationcontract_changelist"),
                          {"action": "keep_register", "_selected_action": [contract.pk]})
        after = pull(sync)

    assert crm.items["a1"]["name"] == "Lulu here"
    assert (after.status, after.updated, after.failed) == ("succeeded", 0, 0), after.error_message


@pytest.mark.parametrize(("config", "message"), [
    ({"writeBack": True, "conflictWinner": "whoever"}, "conflictWinner: must be one of source, target, manual"),
    ({"writeBack": "yes"}, "writeBack: must be true or an object"),
])
def test_bad_two_way_settings_are_refused_when_saved(config, message):
    with TargetApi() as crm, pytest.raises(ConfigurationInvalid, match=message):
        two_way(crm, **config)
