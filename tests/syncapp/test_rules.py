"""Rules (a synchronization's `actions`), run on each object written: against loopback servers."""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse

from contracts.models import ContractLog, SynchronizationContract, SynchronizationRun
from syncapp import runs as sync_runs
from syncapp.configuration import ConfigurationInvalid, bundle_export, bundle_import
from syncapp.models import Object, Rule, Schema, StoredFile, Synchronization
from syncapp.rules import Applied, Prepared, RuleFailed, fetch_file
from syncapp.rules.fetch_file import FetchFileRule
from syncapp.runs import actions, chunks
from syncapp.targets.register import register_object_save, register_objects_delete
from tests.helpers import wait_for_run
from tests.loopback import LoopbackServer, Request
from tests.syncapp.targets.test_api import TargetApi

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

TAGS = ["woo_besluit", "woo_publicatie"]
FILES = {"/files/besluit.pdf": b"%PDF-1.7 besluit", "/files/notes": b"plain notes", "/files/big.bin": b"x" * 5000}


class Zaaksysteem:
    """A list of cases, each naming its attachments, and the files themselves (with an ETag each)."""

    def __init__(self) -> None:
        self.cases = [
            {"id": 1, "title": "Besluit", "status": "open", "attachments": [
                {"filename": "besluit.pdf", "endpoint": "/files/besluit.pdf", "label": "woo_besluit"},
                {"endpoint": "/files/notes", "label": "intern"},
            ]},
            {"id": 2, "title": "Zonder bijlagen", "status": "open", "attachments": []},
        ]
        self.files = dict(FILES)
        self.sent: list[str] = []  # the paths of the files answered whole (not 304)
        self.server = LoopbackServer(self.handle)

    def handle(self, request: Request):
        if request.path == "/cases":
            return 200, {}, self.cases
        if request.path in self.files:
            content = self.files[request.path]
            etag = '"' + hashlib.sha256(content).hexdigest()[:16] + '"'
            if request.header("If-None-Match") == etag:
                return 304, {"ETag": etag}, b""
            kind = "application/pdf" if request.path.endswith(".pdf") else "text/plain"
            self.sent.append(request.path)
            return 200, {"Content-Type": kind, "ETag": etag}, content
        return 404, {}, {"error": "no such path"}

    def conditional_requests(self) -> list[str]:
        return [request.path for request in self.server.requests if request.header("If-None-Match")]


def case_bundle(url: str, *, rules: list[dict], actions: list[str] | None = None) -> dict:
    return {
        "sources": [{"reference": "zaaksysteem", "name": "Zaaksysteem", "type": "api", "location": url}],
        "registers": [{"reference": "woo", "name": "WOO",
                       "schemas": [{"reference": "publicatie", "name": "Publicatie", "schema": {"type": "object"}}]}],
        "rules": rules,
        "synchronizations": [{
            "reference": "cases", "name": "Cases", "sourceType": "api", "sourceId": "zaaksysteem",
            "sourceConfig": {"endpoint": "/cases", "resultsPosition": "_root", "pagination": {"type": "none"}},
            "targetType": "register/schema", "targetId": "woo/publicatie",
            "actions": [rule["reference"] for rule in rules] if actions is None else actions,
        }],
    }


def fetch_rule(**configuration) -> dict:
    return {"reference": "fetch-files", "name": "Fetch files", "type": "fetch_file", "timing": "after",
            "conditions": {"==": [1, 1]},
            "configuration": {"source": "zaaksysteem", "filePath": "attachments", "tags": TAGS, **configuration}}


def objects_by_title() -> dict[str, Object]:
    """Return the objects the cases synchronization wrote, by title."""
    return {obj.data["title"]: obj for obj in Object.objects.filter(schema__reference="publicatie")}


def run(reference: str = "cases", **options):
    started = sync_runs.run_start(synchronization=Synchronization.objects.get(reference=reference), **options)
    started.refresh_from_db()
    return started


@pytest.fixture(params=["fetched inside the transaction", "fetched before the transaction"])
def media(request, settings, tmp_path, monkeypatch):
    """The files' storage, and every case both ways: a rule fetching inside the object's transaction
    (PostgreSQL locks its rows only), and before the chunk's transaction, as on SQLite, whose write lock a
    download must not hold (tests/syncapp/test_embedded.py has it on SQLite itself)."""
    monkeypatch.setattr(actions, "transactions_lock_database", lambda: request.param.endswith("before the transaction"))
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def test_a_fetch_file_rule_stores_the_files_with_their_tags_and_the_object_references_them(media, api):
    zaken = Zaaksysteem()
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))

        first = run()

    assert first.status == "succeeded", first.error_message
    assert first.created == 2
    besluit = objects_by_title()["Besluit"]
    files = {stored.name: stored for stored in StoredFile.objects.filter(object=besluit)}
    assert set(files) == {"besluit.pdf", "notes.plain"}
    pdf = files["besluit.pdf"]
    assert pdf.tags == ["woo_besluit"]  # its label is among the rule's tags; "intern" is not
    assert files["notes.plain"].tags == []
    assert pdf.content_type == "application/pdf" and pdf.size == len(FILES["/files/besluit.pdf"])
    assert pdf.sha256 == hashlib.sha256(FILES["/files/besluit.pdf"]).hexdigest()
    assert pdf.source_url == f"{zaken.server.url}/files/besluit.pdf"
    with pdf.file.open("rb") as handle:
        assert handle.read() == FILES["/files/besluit.pdf"]
    assert (media / pdf.file.name).is_file()
    # Timed after the write, as shipped: the object keeps what it was written with (OpenConnector discards
    # what such a rule returns), and its files belong to it.
    assert besluit.data["attachments"] == zaken.cases[0]["attachments"]
    assert sorted(api.get(f"/api/objects/{besluit.pk}/").json()["files"]) == sorted(
        stored.reference for stored in files.values())
    assert api.get(f"/api/objects/{objects_by_title()['Zonder bijlagen'].pk}/").json()["files"] == []


def test_a_second_run_asks_for_the_files_again_only_conditionally_and_downloads_none_that_did_not_change(media):
    zaken = Zaaksysteem()
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))
        run()
        stored_before = {stored.name: (stored.pk, stored.file.name) for stored in StoredFile.objects.all()}
        zaken.files["/files/notes"] = b"notes, changed"

        second = run(force=True)

    assert second.status == "succeeded", second.error_message
    assert sorted(zaken.sent) == ["/files/besluit.pdf", "/files/notes", "/files/notes"]
    assert sorted(zaken.conditional_requests()) == ["/files/besluit.pdf", "/files/notes"]
    stored_after = {stored.name: (stored.pk, stored.file.name) for stored in StoredFile.objects.all()}
    assert stored_after["besluit.pdf"] == stored_before["besluit.pdf"]  # not written again
    notes = StoredFile.objects.get(name="notes.plain")
    with notes.file.open("rb") as handle:
        assert handle.read() == b"notes, changed"


def test_an_unchanged_object_is_not_written_again_so_its_files_are_not_asked_for(media):
    zaken = Zaaksysteem()
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))
        run()
        asked = len(zaken.server.requests)

        second = run()

    assert second.status == "succeeded" and second.unchanged == 2
    assert [request.path for request in zaken.server.requests[asked:]] == ["/cases"]


def test_a_file_over_the_byte_limit_fails_its_object_with_the_reason_and_the_others_are_written(media, settings):
    settings.SYNC_RULE_FILE_MAX_BYTES = 1024
    zaken = Zaaksysteem()
    zaken.cases[0]["attachments"].append({"filename": "big.bin", "endpoint": "/files/big.bin"})
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))

        first = run()

    assert first.status == "partial", first.error_message  # an object failed: the run is partial, not failed
    assert (first.created, first.failed) == (1, 1)
    contract = SynchronizationContract.objects.get(origin_id="1")
    assert contract.status == "failed"
    assert "rule 'Fetch files' (fetch_file)" in contract.last_error
    assert "/files/big.bin" in contract.last_error and "SYNC_RULE_FILE_MAX_BYTES" in contract.last_error
    assert contract.target_id  # written before its rule failed: the next run writes it again, not anew
    assert not StoredFile.objects.exists()  # what its rule stored before the big file is rolled back
    log = ContractLog.objects.get(origin_id="1")
    assert log.status == "failed" and "SYNC_RULE_FILE_MAX_BYTES" in log.error
    assert "Zonder bijlagen" in objects_by_title()  # the object beside it is written


def test_a_rule_before_the_write_puts_the_references_to_the_files_in_the_object_written(media):
    zaken = Zaaksysteem()
    with zaken.server:
        bundle = case_bundle(zaken.server.url, rules=[fetch_rule()], actions=[])
        bundle["rules"][0]["timing"] = "before"
        bundle_import(bundle)
        run()  # the objects are in the register now, without files
        bundle["synchronizations"][0]["actions"] = ["fetch-files"]
        bundle_import(bundle)

        second = run()

    assert second.status == "succeeded" and second.updated == 2, second.error_message
    besluit = objects_by_title()["Besluit"]
    files = {stored.name: stored for stored in StoredFile.objects.filter(object=besluit)}
    # Where OpenConnector writes its placeholder (file://fetching-async), each file's reference, in the shape
    # the endpoints had.
    assert besluit.data["attachments"] == [files["besluit.pdf"].reference, files["notes.plain"].reference]
    assert objects_by_title()["Zonder bijlagen"].data["attachments"] == []


def test_a_fetch_file_rule_before_the_write_of_a_new_object_fails_it_saying_it_has_no_register_object(media):
    zaken = Zaaksysteem()
    with zaken.server:
        bundle = case_bundle(zaken.server.url, rules=[fetch_rule()])
        bundle["rules"][0]["timing"] = "before"
        bundle_import(bundle)

        first = run()

    assert (first.created, first.failed) == (1, 1)  # the case without attachments needs no register object
    assert "belongs to no register object" in SynchronizationContract.objects.get(origin_id="1").last_error


def test_a_rule_whose_conditions_do_not_hold_does_nothing(media):
    zaken = Zaaksysteem()
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[
            fetch_rule(),
            {"reference": "refuse-closed", "name": "Refuse closed", "type": "error", "timing": "before",
             "conditions": {"==": [{"var": "status"}, "closed"]},
             "configuration": {"code": 422, "name": "Closed", "message": "a closed case is not published"}},
            {**fetch_rule(), "reference": "fetch-never", "name": "Never", "conditions": {"==": [1, 2]}},
        ]))

        first = run()

    assert first.status == "succeeded" and first.created == 2 and first.failed == 0
    assert StoredFile.objects.filter(rule__reference="fetch-never").count() == 0
    assert StoredFile.objects.filter(rule__reference="fetch-files").count() == 2


def fetching_in_transaction(monkeypatch) -> list[bool]:
    """Record, for each file a rule fetches, whether the thread fetching it was in a transaction."""
    seen: list[bool] = []
    original = fetch_file.file_fetch

    def recorded(**kwargs):
        seen.append(connection.in_atomic_block)
        return original(**kwargs)

    monkeypatch.setattr(fetch_file, "file_fetch", recorded)
    return seen


def test_where_a_transaction_locks_the_database_the_files_are_fetched_outside_any_transaction(media, monkeypatch):
    zaken = Zaaksysteem()
    seen = fetching_in_transaction(monkeypatch)
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))

        first = run()

    assert first.status == "succeeded", first.error_message
    assert StoredFile.objects.count() == 2
    # As on SQLite: before the chunk's transaction; as on PostgreSQL: inside the object's, as it goes.
    assert seen == [not actions.transactions_lock_database()] * 2


def test_a_rule_of_a_run_to_an_api_target_on_sqlite_fetches_its_files_between_transactions(
    settings, tmp_path, monkeypatch
):
    # Given objects of the register pushed to an API target, the files they name fetched by a rule after the
    # write, and a database whose transactions lock it whole (SQLite): the target is called between them
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr(chunks, "transactions_lock_database", lambda: True)
    monkeypatch.setattr(actions, "transactions_lock_database", lambda: True)
    seen = fetching_in_transaction(monkeypatch)
    zaken = Zaaksysteem()
    bundle_import({"registers": [{"reference": "zoo", "schemas": [{"reference": "animal",
                                                                   "schema": {"type": "object"}}]}]})
    schema = Schema.objects.get(reference="animal")
    for name, path in (("Lulu", "/files/besluit.pdf"), ("Momo", "/files/notes")):
        register_object_save(obj=Object(schema=schema, data={"name": name, "photo": path}))
    with zaken.server, TargetApi() as crm:
        bundle_import({
            "sources": [{"reference": "crm", "location": crm.url},
                        {"reference": "zaaksysteem", "location": zaken.server.url}],
            "mappings": [{"reference": "out", "mapping": {"name": "name", "photo": "photo"}}],
            "rules": [fetch_rule(filePath="photo")],
            "synchronizations": [{
                "reference": "outgoing", "sourceType": "register/schema", "sourceId": "zoo/animal",
                "sourceTargetMapping": "out", "targetType": "api", "targetId": "crm",
                "targetConfig": {"endpoint": "/items"}, "actions": ["fetch-files"],
            }],
        })

        first = run("outgoing")

    # Then every file was fetched outside any transaction and stored with the register object it belongs to
    assert (first.status, first.created) == ("succeeded", 2), first.error_message
    assert seen == [False, False]
    stored = {obj.data["name"]: [file.name for file in StoredFile.objects.filter(object=obj)]
              for obj in Object.objects.filter(schema=schema)}
    assert stored == {"Lulu": ["besluit.pdf"], "Momo": ["notes.plain"]}


def test_rules_before_a_fetch_file_rule_that_reshape_the_object_are_foreseen_so_its_files_are_fetched(media):
    zaken = Zaaksysteem()
    bundle = case_bundle(zaken.server.url, rules=[
        # Ordered before the fetching rule: the object saved elsewhere too, then its attachments renamed.
        {"reference": "log", "name": "Log", "type": "save_object", "timing": "after", "order": 0,
         "configuration": {"register": "woo", "schema": "log"}},
        {"reference": "rename", "name": "Rename", "type": "mapping", "timing": "after", "order": 1,
         "configuration": {"mapping": "to-bijlagen"}},
        {**fetch_rule(filePath="bijlagen"), "order": 2},
    ])
    bundle["registers"][0]["schemas"].append({"reference": "log", "name": "Log", "schema": {"type": "object"}})
    bundle["mappings"] = [{"reference": "to-bijlagen", "passThrough": True, "mapping": {"bijlagen": "attachments"}}]
    with zaken.server:
        bundle_import(bundle)

        first = run()

    assert first.status == "succeeded", first.error_message
    besluit = objects_by_title()["Besluit"]
    assert sorted(stored.name for stored in StoredFile.objects.filter(object=besluit)) == ["besluit.pdf", "notes.plain"]
    assert Object.objects.filter(schema__reference="log").count() == 2


def test_a_fetch_file_rule_finding_nothing_prepared_fails_its_object_rather_than_fetch_in_its_transaction(media):
    zaken = Zaaksysteem()
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))
        run()
        asked = len(zaken.server.requests)
        besluit = objects_by_title()["Besluit"]
        rule = FetchFileRule(Rule.objects.get(reference="fetch-files"))
        # Given nothing fetched before the transaction, as when the rules before it could not be foreseen
        applied = Applied(synchronization=Synchronization.objects.get(reference="cases"), timing="after",
                          data=besluit.data, object_id=str(besluit.pk), prepared=Prepared(folder=media))

        with pytest.raises(RuleFailed, match="was not fetched before the object's transaction"):
            rule.apply(applied)

    assert len(zaken.server.requests) == asked


def test_an_error_rule_fails_its_object_with_its_code_and_message():
    zaken = Zaaksysteem()
    zaken.cases[1]["status"] = "closed"
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[
            {"reference": "refuse-closed", "name": "Refuse closed", "type": "error", "timing": "before",
             "conditions": {"==": [{"var": "status"}, "closed"]},
             "configuration": {"code": 422, "name": "Closed", "message": "a closed case is not published"}},
        ]))

        first = run()

    assert (first.created, first.failed) == (1, 1)
    failed = SynchronizationContract.objects.get(origin_id="2")
    assert failed.last_error == (
        "rule 'Refuse closed' (error): error 422: Closed: a closed case is not published"
    )
    assert list(objects_by_title()) == ["Besluit"]


def test_rules_run_by_their_order_and_at_their_timing():
    zaken = Zaaksysteem()
    trail = [
        # Listed last, ordered first: each mapping appends its letter to the trail the next one sees.
        {"reference": "b-before", "name": "B", "type": "mapping", "timing": "before", "order": 2,
         "configuration": {"mapping": "add-b"}},
        {"reference": "a-before", "name": "A", "type": "mapping", "timing": "before", "order": 1,
         "configuration": {"mapping": "add-a"}},
        # Ordered first of all, but timed after the write: it saves the object as written, with its letter, elsewhere.
        {"reference": "c-after", "name": "C", "type": "save_object", "timing": "after", "order": 0,
         "configuration": {"register": "woo", "schema": "log", "mapping": "add-c"}},
    ]
    bundle = case_bundle(zaken.server.url, rules=trail)
    bundle["registers"][0]["schemas"].append({"reference": "log", "name": "Log", "schema": {"type": "object"}})
    bundle["mappings"] = [
        {"reference": f"add-{letter}", "passThrough": True,
         "mapping": {"trail": "{{ (trail | default('')) ~ '" + letter + "' }}",
                     **({"seenBeforeMapping": "{{ _objectBeforeMapping.title }}"} if letter == "c" else {})}}
        for letter in "abc"
    ]
    with zaken.server:
        bundle_import(bundle)

        first = run()

    assert first.status == "succeeded", first.error_message
    written = {obj.data["title"]: obj.data for obj in Object.objects.filter(schema__reference="publicatie")}
    logged = {obj.data["title"]: obj.data for obj in Object.objects.filter(schema__reference="log")}
    assert written["Besluit"]["trail"] == "ab"  # the before rules by their order, on the object written
    # The after rule saw the object as written, and the object as the source gave it beside it; what it
    # returned is not written to the target (as OpenConnector discards it).
    assert logged["Besluit"]["trail"] == "abc"
    assert logged["Besluit"]["seenBeforeMapping"] == "Besluit"
    assert "_objectBeforeMapping" not in logged["Besluit"] and "_objectBeforeMapping" not in written["Besluit"]


def test_export_then_import_keeps_the_rules_and_the_actions_in_their_order():
    zaken = Zaaksysteem()
    rules = [fetch_rule(allowedLabels=["woo_besluit"], objectIdPath="meta.id"),
             {"reference": "refuse-closed", "name": "Refuse closed", "type": "error", "timing": "before", "order": 3,
              "conditions": {"==": [{"var": "status"}, "closed"]},
              "configuration": {"code": 422, "message": "closed"}}]
    bundle_import(case_bundle(zaken.server.url, rules=rules, actions=["refuse-closed", "fetch-files"]))
    exported = bundle_export()

    Synchronization.objects.all().delete()
    Rule.objects.all().delete()
    bundle_import(exported)

    assert bundle_export() == exported
    assert exported["synchronizations"][0]["actions"] == ["refuse-closed", "fetch-files"]
    fetch = next(rule for rule in exported["rules"] if rule["reference"] == "fetch-files")
    assert fetch["timing"] == "after"
    assert fetch["configuration"]["allowedLabels"] == ["woo_besluit"]


def test_a_rule_that_does_not_fit_its_type_is_refused_naming_where():
    zaken = Zaaksysteem()
    bad = fetch_rule(filePaht="attachments")
    bad["configuration"]["source"] = "nowhere"
    with pytest.raises(ConfigurationInvalid) as refused:
        bundle_import(case_bundle(zaken.server.url, rules=[bad], actions=["fetch-files", "missing"]))

    problems = refused.value.problems
    assert "rules[0].configuration.filePaht: unknown key, did you mean `filePath`?" in problems
    assert "rules[0].configuration.source: no source with reference 'nowhere'" in problems
    assert "synchronizations[0].actions[1]: no rule with reference 'missing'" in problems


SHIPPED = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "openconnector" / "configurations"


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="OpenConnector's shipped configurations are not beside the repository")
def test_openconnectors_shipped_rules_and_a_synchronizations_actions_import_as_rules():
    rx_rule = json.loads((SHIPPED / "RX-woo" / "rules" / "Rule-Fetch RX Fundament files-v0.0.1.json").read_text())
    write_rule = json.loads((SHIPPED / "xxllnc-suite-woo" / "rules" / "write-xxllnc-suite-files.json").read_text())
    export = {"components": {
        "sources": [{"@type": "source", "id": 1, "name": "RX Fundament", "type": "api",
                     "location": "https://rx.example.org/api"}],
        "registers": [{"@type": "register", "id": 1, "name": "WOO", "slug": "woo",
                       "schemas": [{"id": 1, "slug": "publicatie", "name": "Publicatie",
                                    "schema": {"type": "object"}}]}],
        "rules": [rx_rule, write_rule],
        "synchronizations": [{"@type": "synchronization", "id": 1, "name": "RX zaken", "sourceId": "1",
                              "sourceType": "api", "sourceConfig": {"endpoint": "/zaken"}, "targetId": "1/1",
                              "targetType": "register/schema", "actions": [1, 2]}],
    }}

    result = bundle_import(export)

    fetch = Rule.objects.get(reference="fetch-rx-fundament-files")
    assert (fetch.type, fetch.timing, fetch.order, fetch.conditions) == ("fetch_file", "after", 0, {"==": [1, 1]})
    assert fetch.configuration == {
        "source": "rx-fundament", "filePath": "attachments", "method": "GET", "sourceConfiguration": {},
        "tags": ["woo_informatieverzoek", "woo_besluit", "woo_publicatie", "woo_inventarisatielijst", "woo_convenant"],
    }
    assert Rule.objects.get(reference="write-xxllnc-suite-files").configuration["filePath"] == "attachments"
    sync = Synchronization.objects.get(reference="rx-zaken")
    assert [link.rule.reference for link in sync.action_links.order_by("position")] == [
        "fetch-rx-fundament-files", "write-xxllnc-suite-files",
    ]
    # OpenConnector's `action` (create, read, …) says when an endpoint's rule runs: a synchronization's do not ask.
    assert result.ignored == ["rules[0].action", "rules[1].action"]


# ---------------------------------------------------------------------------------------------
# The API and the admin


def test_the_api_takes_a_rule_checked_against_its_type_and_a_synchronizations_actions_in_their_order(api):
    zaken = Zaaksysteem()
    bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))

    refused = api.post("/api/rules/", {"reference": "bad", "name": "Bad", "type": "error", "timing": "after",
                                       "configuration": {"cod": 400}}, format="json")
    created = api.post("/api/rules/", {"reference": "refuse-closed", "name": "Refuse closed", "type": "error",
                                       "conditions": {"==": [{"var": "status"}, "closed"]},
                                       "configuration": {"code": 422, "message": "closed"}}, format="json")
    changed = api.patch("/api/synchronizations/cases/", {"actions": ["refuse-closed", "fetch-files"]}, format="json")
    unknown = api.patch("/api/synchronizations/cases/", {"actions": ["nowhere"]}, format="json")

    assert refused.status_code == 400
    assert refused.json()["configuration"] == ["configuration.cod: unknown key, did you mean `code`?"]
    assert created.status_code == 201, created.json()
    assert created.json()["timing"] == "before"
    assert changed.status_code == 200, changed.json()
    ids = [Rule.objects.get(reference=reference).pk for reference in ("refuse-closed", "fetch-files")]
    assert changed.json()["actions"] == ids
    assert unknown.status_code == 400
    sync = Synchronization.objects.get(reference="cases")
    assert [link.rule.reference for link in sync.action_links.order_by("position")] == ["refuse-closed", "fetch-files"]


def test_the_api_lists_an_objects_files_and_serves_their_content(api, media):
    zaken = Zaaksysteem()
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))
        run()
    besluit = objects_by_title()["Besluit"]

    answer = api.get(f"/api/files/?object={besluit.pk}").json()
    listed = answer["results"] if isinstance(answer, dict) else answer
    pdf = next(item for item in listed if item["name"] == "besluit.pdf")
    content = api.get(pdf["content"])

    files_of_object = api.get(f"/api/objects/{besluit.pk}/").json()["files"]
    assert sorted(item["reference"] for item in listed) == sorted(files_of_object)
    assert len(listed) == 2
    assert pdf["tags"] == ["woo_besluit"] and pdf["object"] == str(besluit.pk)
    assert api.get(pdf["reference"]).json()["sha256"] == hashlib.sha256(FILES["/files/besluit.pdf"]).hexdigest()
    assert content.status_code == 200
    assert b"".join(content.streaming_content) == FILES["/files/besluit.pdf"]


def test_the_admin_adds_a_rule_and_sets_a_synchronizations_actions_in_the_order_listed(admin_client):
    zaken = Zaaksysteem()
    bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))
    sync = Synchronization.objects.get(reference="cases")

    added = admin_client.post(reverse("admin:syncapp_rule_add"), {
        "reference": "refuse-closed", "name": "Refuse closed", "description": "", "type": "error",
        "timing": "before", "order": "0", "conditions": json.dumps({"==": [{"var": "status"}, "closed"]}),
        "configuration": json.dumps({"code": 422, "message": "closed"}),
    })
    refused = admin_client.post(reverse("admin:syncapp_rule_add"), {
        "reference": "bad", "name": "Bad", "description": "", "type": "write_file", "timing": "before",
        "order": "0", "conditions": "{}", "configuration": json.dumps({"filePath": "files"}),
    })
    page = admin_client.get(reverse("admin:syncapp_synchronization_change", args=[sync.pk])).content.decode()
    form = {
        "reference": "cases", "name": "Cases", "description": "", "source_type": "api",
        "source": sync.source_id, "source_schema": "", "source_hash_mapping": "", "source_target_mapping": "",
        "source_config": json.dumps(sync.source_config), "conditions": "{}", "target_type": "register/schema",
        "target_schema": sync.target_schema_id, "target_source": "", "target_config": "{}",
        "target_source_mapping": "", "schedule": "", "is_enabled": "on", "actions": "refuse-closed\nfetch-files",
    }
    saved = admin_client.post(reverse("admin:syncapp_synchronization_change", args=[sync.pk]), form)

    assert added.status_code == 302
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["timing"] == ["a write_file rule runs after the write only"]
    assert "fetch-files" in page  # the actions as saved, one a line
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert [link.rule.reference for link in sync.action_links.order_by("position")] == ["refuse-closed", "fetch-files"]


def test_a_write_file_rule_writes_the_contents_the_object_holds_as_its_files(media):
    zaken = Zaaksysteem()
    zaken.cases[0]["attachments"] = [
        {"filename": "besluit.txt", "content": base64.b64encode(b"Het besluit").decode(), "label": "woo_besluit"},
        {"filename": "notitie.txt", "content": "plain text, not base64!", "label": "intern"},
    ]
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[{
            "reference": "write-files", "name": "Write files", "type": "write_file", "timing": "after",
            "configuration": {"filePath": "attachments", "tags": TAGS},
        }]))

        first = run()

    assert first.status == "succeeded", first.error_message
    besluit = objects_by_title()["Besluit"]
    files = {stored.name: stored for stored in StoredFile.objects.filter(object=besluit)}
    with files["besluit.txt"].file.open("rb") as handle:
        assert handle.read() == b"Het besluit"
    with files["notitie.txt"].file.open("rb") as handle:
        assert handle.read() == b"plain text, not base64!"
    assert files["besluit.txt"].tags == TAGS and files["notitie.txt"].tags == TAGS
    assert besluit.data["attachments"] == zaken.cases[0]["attachments"]  # after the write: as written


def test_an_extend_input_rule_puts_the_register_object_a_value_names_in_its_place():
    zaken = Zaaksysteem()
    bundle = case_bundle(zaken.server.url, rules=[{
        "reference": "extend-keeper", "name": "Extend keeper", "type": "extend_input", "timing": "before",
        "configuration": {"properties": "behandelaar, onbekend"},
    }])
    bundle_import(bundle)
    keeper = Object.objects.create(schema=Synchronization.objects.get(reference="cases").target_schema,
                                   data={"title": "Keeper", "naam": "Nala"})
    zaken.cases[0]["behandelaar"] = f"https://elders.example.org/objects/{keeper.pk}"
    zaken.cases[0]["onbekend"] = "8d0c3b56-5d8f-4c7e-9d8a-000000000000"
    with zaken.server:
        first = run()

    assert first.status == "succeeded", first.error_message
    besluit = objects_by_title()["Besluit"]
    assert besluit.data["behandelaar"] == {"title": "Keeper", "naam": "Nala", "id": str(keeper.pk)}
    assert besluit.data["onbekend"] == "8d0c3b56-5d8f-4c7e-9d8a-000000000000"  # names no object: as it was


def test_a_synchronization_rule_runs_the_other_synchronization_for_that_object_only():
    zaken = Zaaksysteem()
    bundle = case_bundle(zaken.server.url, rules=[{
        "reference": "publish-it", "name": "Publish it", "type": "synchronization", "timing": "after",
        "conditions": {"==": [{"var": "title"}, "Besluit"]}, "configuration": {"synchronization": "publish"},
    }])
    bundle["registers"][0]["schemas"].append({"reference": "copy", "name": "Copy", "schema": {"type": "object"}})
    bundle["synchronizations"].append({
        "reference": "publish", "name": "Publish", "sourceType": "register/schema", "sourceId": "woo/publicatie",
        # Not pushed to on creations: only the rule starts it.
        "sourceConfig": {"triggerOnlyOnEvents": ["delete"]},
        "targetType": "register/schema", "targetId": "woo/copy",
    })
    with zaken.server:
        bundle_import(bundle)

        first = run()

    assert first.status == "succeeded", first.error_message
    publish = Synchronization.objects.get(reference="publish")
    [started] = SynchronizationRun.objects.filter(synchronization=publish)
    started = wait_for_run(started)
    assert started.trigger == "event" and started.status == "succeeded", started.error_message
    assert started.scope == [str(objects_by_title()["Besluit"].pk)]
    assert [data["title"] for data in Object.objects.filter(schema__reference="copy").values_list("data", flat=True)
            ] == ["Besluit"]


def test_deleting_an_object_deletes_its_files_content_too(media):
    zaken = Zaaksysteem()
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))
        run()
    besluit = objects_by_title()["Besluit"]
    paths = [media / stored.file.name for stored in StoredFile.objects.filter(object=besluit)]
    assert paths and all(path.is_file() for path in paths)

    register_objects_delete(objects=[besluit])

    assert not StoredFile.objects.filter(object_id=besluit.pk).exists()
    assert not any(path.exists() for path in paths)


def test_a_file_source_asking_to_wait_long_fails_the_written_object_for_the_next_run_not_the_chunk(media):
    zaken = Zaaksysteem()
    original = zaken.handle

    def handle(request: Request):
        if request.path == "/files/notes":
            return 429, {"Retry-After": "3000"}, {"error": "slow down"}
        return original(request)

    zaken.server.handler = handle
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))

        first = run()

    assert (first.created, first.failed) == (1, 1)
    contract = SynchronizationContract.objects.get(origin_id="1")
    assert contract.status == "failed" and contract.target_id
    assert "asked to wait 3000 s" in contract.last_error and "/files/notes" in contract.last_error
