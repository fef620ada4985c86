"""OpenConnector's own configurations (issue 22): each shipped folder, imported as it is with `sync import DIR`
(its sources pointed at a loopback fake), runs as OpenConnector runs it: the same objects, the same detail
calls and file fetches, the files its rules fetch stored, and a second run that changes nothing.

What OpenConnector does with each folder is in expected/<folder>.json, written by regenerate_expected.py from
OpenConnector's PHP and real Twig (see its note); the fakes are in fakes.py. These tests need the whole of
issue 22: Twig mappings, the importer of folders, rules, nested extra data and Guzzle options.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest
from django.core.management import call_command

from contracts.models import SynchronizationContract, SynchronizationRun
from syncapp import runs as sync_runs
from syncapp.models import Object, Register, Schema, StoredFile, Synchronization
from syncapp.runs import actions
from syncapp.twig import library
from tests.loopback import Request
from tests.openconnector.fakes import FAKES, Fake
from tests.openconnector.shipped import FOLDERS, configurations_dir, expected_of, folder_copied

if not configurations_dir().is_dir():
    pytest.fail(
        f"OpenConnector's shipped configurations are not at {configurations_dir()} "
        "(set SYNC_OPENCONNECTOR_CONFIGURATIONS)",
        pytrace=False,
    )


def stored_files(*, object_uuid: str) -> list[dict[str, Any]]:
    """Return the files stored for a register object: name, tags and the sha256 of the stored content.

    """
    stored = []
    for file in StoredFile.objects.filter(object_id=object_uuid).order_by("name"):
        with file.file.open("rb") as handle:
            content = handle.read()
        stored.append(
            {
                "filename": file.name,
                "tags": sorted(file.tags),
                "sha256": file.sha256,
                "sha256_of_content": hashlib.sha256(content).hexdigest(),
            }
        )
    return stored


# ---------------------------------------------------------------------------------------------
# Helpers


def resolved(expected: Any, actual: Any, *, location: str) -> Any:
    """Return `expected` with `{location}` the fake's URL, and a `{"$matches": regex}` (a value of the clock)
    replaced by the actual value when that matches, so that a plain == shows every real difference."""
    if isinstance(expected, dict) and set(expected) == {"$matches"}:
        return actual if isinstance(actual, str) and re.fullmatch(expected["$matches"], actual) else expected
    if isinstance(expected, dict):
        actual = actual if isinstance(actual, dict) else {}
        return {key: resolved(value, actual.get(key), location=location) for key, value in expected.items()}
    if isinstance(expected, list):
        actual = actual if isinstance(actual, list) else []
        return [
            resolved(value, actual[i] if i < len(actual) else None, location=location)
            for i, value in enumerate(expected)
        ]
    if isinstance(expected, str):
        return expected.replace("{location}", location)
    return expected


def asked(requests: list[Request]) -> list[tuple[str, str, tuple]]:
    """Return requests as (method, decoded path, sorted query) to compare with the fixtures'."""
    return [(r.method, unquote(r.path), tuple(sorted(r.query.items()))) for r in requests]


def asked_expected(entries: list[dict[str, Any]], *, location: str) -> list[tuple[str, str, tuple]]:
    return [
        (e["method"], e["path"], tuple(sorted(resolved(e["query"], None, location=location).items()))) for e in entries
    ]


def objects_written(synchronization: Synchronization) -> dict[str, dict[str, Any]]:
    """Return the register objects a synchronization wrote, by origin id."""
    written = {}
    for contract in SynchronizationContract.objects.filter(synchronization=synchronization, target_id__isnull=False):
        found = Object.objects.filter(uuid=contract.target_id).first()
        if found is not None:
            written[contract.origin_id] = found.data
    return written


@dataclass
class Ran:
    """A shipped folder imported and run once against its fake."""

    folder: str
    fake: Fake
    synchronization: Synchronization
    run: SynchronizationRun
    expected: dict[str, Any]
    objects: dict[str, dict[str, Any]]
    data_requests: list[Request]
    file_requests: list[Request]


def publication_register() -> None:
    """Given the register and schema the folders write to ("targetId": "1/1"), as OpenRegister's publications."""
    register = Register.objects.create(reference="1", name="Publications")
    Schema.objects.create(register=register, reference="1", name="Publication", schema={"type": "object"})


def run_once(synchronization: Synchronization) -> SynchronizationRun:
    run = sync_runs.run_start(synchronization=synchronization)
    run.refresh_from_db()
    return run


@pytest.fixture(params=FOLDERS)
def ran(request, transactional_db, in_process_tasks, tmp_path, monkeypatch) -> Iterator[Ran]:
    """Given a shipped folder imported with `sync import DIR`, its source pointed at its fake; when its
    synchronization runs once."""
    with folder_ran(request.param, tmp_path=tmp_path, monkeypatch=monkeypatch) as done:
        yield done


@contextmanager
def folder_ran(folder: str, *, tmp_path, monkeypatch) -> Iterator[Ran]:
    """Import a shipped folder, its source pointed at its fake, and run its synchronization once.

    The templates' clock stands still for the test: xxllnc-suite's mapping prints `'now'|date`, and is its
    hash mapping too, so a run a second later updates every object (as OpenConnector's does).
    """
    stopped = library.clock_now()
    monkeypatch.setattr(library, "clock_now", lambda: stopped)
    with FAKES[folder]() as fake:
        publication_register()
        copied = folder_copied(folder, into=tmp_path, location=fake.url)
        call_command("sync", "import", str(copied))
        synchronization = Synchronization.objects.get()
        (expected,) = expected_of(folder)["synchronizations"].values()

        run = run_once(synchronization)

        yield Ran(
            folder=folder,
            fake=fake,
            synchronization=synchronization,
            run=run,
            expected=expected,
            objects=objects_written(synchronization),
            data_requests=fake.requests_of("data"),
            file_requests=fake.requests_of("file"),
        )


# ---------------------------------------------------------------------------------------------
# Tests


def test_a_shipped_folder_runs_and_writes_the_objects_openconnector_writes(ran):
    assert ran.run.status == "succeeded", ran.run.error_message
    expected = ran.expected
    assert (ran.run.found, ran.run.filtered) == (expected["listed"], len(expected["filtered"]))
    assert sorted(ran.objects) == sorted(expected["objects"])  # the filtered cases are not written
    for origin_id, document in expected["objects"].items():
        actual = ran.objects[origin_id]
        assert actual == resolved(document, actual, location=ran.fake.url), origin_id


def within_the_last_page(asked_pages: list[tuple[str, str, tuple]], *, last: list[tuple[str, str, tuple]]):
    """Drop the list pages asked past the last one OpenConnector asks for: with page numbers up to
    `concurrency` pages are asked at once (sourceConfig.concurrency, 4 by default), and those found past the
    end (the empty page) are not read; OpenConnector asks one after another."""
    def number(request: tuple[str, str, tuple]) -> int:
        return int(dict(request[2]).get("page", 1))

    end = max(number(request) for request in last)
    return [request for request in asked_pages if number(request) <= end]


def test_a_shipped_folder_asks_for_the_details_openconnector_asks_for(ran):
    location = ran.fake.url
    expected = ran.expected["requests"]
    listed = [r for r in ran.data_requests if unquote(r.path) == expected["list"][0]["path"]]
    details = [r for r in ran.data_requests if r not in listed]

    pages = asked_expected(expected["list"], location=location)
    assert sorted(within_the_last_page(asked(listed), last=pages)) == sorted(pages)
    assert Counter(asked(details)) == Counter(asked_expected(expected["detail"], location=location))


def files_expected(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return a fixture's files as stored_files() gives them."""
    files = [
        {"filename": f["filename"], "tags": sorted(f["tags"]), "sha256": f["sha256"], "sha256_of_content": f["sha256"]}
        for f in entries
    ]
    return sorted(files, key=lambda file: file["filename"])


def test_a_shipped_folder_fetches_the_files_openconnector_fetches_and_stores_them(ran):
    expected = ran.expected
    targets = dict(
        SynchronizationContract.objects.filter(
            synchronization=ran.synchronization, target_id__isnull=False
        ).values_list("origin_id", "target_id")
    )

    assert Counter(asked(ran.file_requests)) == Counter(
        asked_expected(expected["requests"]["file"], location=ran.fake.url)
    )
    for origin_id in expected["objects"]:  # every object written, those without files too
        assert origin_id in targets, f"{origin_id} was not written"
        stored = stored_files(object_uuid=targets[origin_id])
        assert stored == files_expected(expected["files"].get(origin_id, [])), origin_id


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_shipped_folder_fetches_the_same_files_before_the_chunks_transaction_as_on_sqlite(
    folder, transactional_db, in_process_tasks, tmp_path, monkeypatch
):
    # Given a database whose transactions lock it whole (SQLite): the rules' files are fetched before them
    monkeypatch.setattr(actions, "transactions_lock_database", lambda: True)

    with folder_ran(folder, tmp_path=tmp_path, monkeypatch=monkeypatch) as done:
        test_a_shipped_folder_fetches_the_files_openconnector_fetches_and_stores_them(done)

    assert done.run.status == "succeeded", done.run.error_message


def test_a_shipped_folder_sends_the_headers_its_source_configures(ran):
    expected = {e["path"]: e["headers"] for kind in ("list", "detail", "file") for e in ran.expected["requests"][kind]}
    assert ran.data_requests
    for request in ran.data_requests + ran.file_requests:
        # A request OpenConnector does not make is the details test's to report.
        for name, value in expected.get(unquote(request.path), {}).items():
            # An empty value OpenConnector sends empty; leaving it out says the same to the API.
            assert request.header(name) in ((value, None) if value == "" else (value,)), (request.path, name)


@pytest.fixture
def ran_twice(ran) -> tuple[Ran, SynchronizationRun, dict[str, dict[str, Any]]]:
    """When the synchronization runs a second time, nothing having changed at the source."""
    before = objects_written(ran.synchronization)
    ran.fake.server.requests.clear()
    return ran, run_once(ran.synchronization), before


def test_a_second_run_of_a_shipped_folder_changes_nothing(ran_twice):
    ran, again, before = ran_twice

    assert again.status == "succeeded", again.error_message
    assert (again.found, again.filtered) == (ran.run.found, ran.run.filtered)
    assert (again.created, again.updated, again.deleted, again.invalid, again.failed) == (0, 0, 0, 0, 0)
    assert again.unchanged == again.found - again.filtered
    assert objects_written(ran.synchronization) == before
    assert ran.fake.requests_of("file") == []  # rules run for objects written only


def test_a_second_run_asks_for_every_detail_again_as_openconnector_does(ran_twice):
    # OpenConnector fetches the extra data before it compares the origin hash, which covers it: a change in a
    # detail alone (a document added to a zaak) is seen.
    ran, again, _ = ran_twice
    expected = ran.expected["requests"]
    pages = asked_expected(expected["list"], location=ran.fake.url)
    listed = [r for r in ran.fake.requests_of("data") if unquote(r.path) == expected["list"][0]["path"]]
    details = [r for r in ran.fake.requests_of("data") if r not in listed]

    assert sorted(within_the_last_page(asked(listed), last=pages)) == sorted(pages)
    assert Counter(asked(details)) == Counter(asked_expected(expected["detail"], location=ran.fake.url))
