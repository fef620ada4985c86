"""Bytes are budgeted below the page: a page's rows, records and details together (SYNC_PAGE_MAX_BYTES) and
any one value (SYNC_VALUE_MAX_BYTES) are counted while they are read, so a page over them fails naming the
limit, the run ends failed, what was stored stays, and a worker's memory stays near its resting size."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from contracts.logs import log_value
from syncapp.configuration import bundle_import
from syncapp.hashing import canonical_bytes
from syncapp.models import Object, Source, Synchronization
from tests.databases import database_sync, source_database
from tests.factories import import_api_synchronization
from tests.helpers import run
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

ROOT = Path(__file__).resolve().parents[2]
MiB = 2**20


@pytest.fixture
def pg_database() -> Iterator[str]:
    with source_database() as location:
        yield location


# What a worker does for one page of a database source, in a process of its own, so its peak memory
# (ru_maxrss) is the page's alone: prints the peak in MiB, then what the page came to.
READ_ONE_PAGE = textwrap.dedent("""
    import resource, sys
    import django
    django.setup()
    from syncapp.errors import SourceError
    from syncapp.models import Source, Synchronization
    from syncapp.sources.database import DatabaseReader
    source = Source(reference="big", type="database", location=sys.argv[1])
    sync = Synchronization(reference="big", source_type="database", source=source,
                           source_config={"query": sys.argv[2], "keyColumn": "id", "pageSize": 10000})
    try:
        rows = DatabaseReader(sync).fetch(request={"after": None}).body
        outcome = f"read {len(rows)} rows"
    except SourceError as error:
        outcome = str(error)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    print(outcome)
""")


def page_read_in_a_worker(location: str, *, query: str) -> tuple[int, str]:
    """Return the peak memory in MiB of a process that reads the first page of the query, and its outcome."""
    done = subprocess.run(
        [sys.executable, "-c", READ_ONE_PAGE, location, query], cwd=ROOT, capture_output=True, text=True,
        timeout=120, env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak, outcome = done.stdout.strip().splitlines()[-2:]
    return int(peak), outcome


# ---------------------------------------------------------------------------------------------
# Database sources: measured by the database, then streamed and counted


def test_a_page_of_10000_rows_of_100_kb_fails_naming_the_page_limit_while_the_worker_stays_small(pg_database):
    peak, outcome = page_read_in_a_worker(
        pg_database, query="SELECT g AS id, repeat('x', 100000) AS payload FROM generate_series(1, 10000) g",
    )

    assert "SYNC_PAGE_MAX_BYTES" in outcome, outcome
    assert "more than 67,108,864 bytes" in outcome
    assert peak < 500, f"the worker peaked at {peak} MiB"


def test_a_row_of_900_mb_fails_naming_the_value_limit_while_the_worker_stays_small(pg_database):
    # From a row of generate_series, so the server makes the value when it runs the statement, not each time it
    # plans one (a constant is folded when planned: making 900 MB takes it seconds).
    peak, outcome = page_read_in_a_worker(
        pg_database, query="SELECT g AS id, repeat('x', 900000000 + 0 * g) AS payload FROM generate_series(1, 1) g",
    )

    assert "SYNC_VALUE_MAX_BYTES" in outcome, outcome
    assert "column 'payload'" in outcome and "900,000,000 bytes" in outcome
    assert peak < 500, f"the worker peaked at {peak} MiB"


def test_a_database_page_over_budget_fails_the_run_and_keeps_the_pages_stored_before_it(pg_database, settings):
    settings.SYNC_PAGE_MAX_BYTES = 512 * 1024
    # Ten rows of 10 bytes, then rows of 100 KB: the second page of ten holds 1 MB.
    sync = database_sync(
        pg_database, pageSize=10, keyColumn="id",
        query="SELECT g AS id, repeat('x', CASE WHEN g <= 10 THEN 10 ELSE 100000 END) AS payload "
              "FROM generate_series(1, 200) g",
    )

    failed = run(sync)

    assert failed.status == "failed"
    assert "page 2" in failed.error_message and "SYNC_PAGE_MAX_BYTES" in failed.error_message, failed.error_message
    assert (failed.created, failed.deleted) == (10, 0)
    assert Object.objects.count() == 10


def test_rows_counted_as_they_arrive_stop_at_the_budget_when_the_database_measured_them_smaller(
    pg_database, settings, monkeypatch,
):
    """Rows may grow between the measure and the read: the streamed rows are counted too."""
    from syncapp.sources import database

    monkeypatch.setattr(database, "page_sizes_measure", lambda connection, **_: ({}, 0))
    settings.SYNC_PAGE_MAX_BYTES = 512 * 1024
    sync = database_sync(pg_database, pageSize=100, keyColumn="id",
                         query="SELECT g AS id, repeat('x', 100000) AS payload FROM generate_series(1, 100) g")

    failed = run(sync)

    assert failed.status == "failed"
    assert "by row 6;" in failed.error_message, failed.error_message
    assert Object.objects.count() == 0


# ---------------------------------------------------------------------------------------------
# File sources: lines, records and elements counted as they are read


def file_sync(name: str, content: bytes, **source_config) -> Synchronization:
    Source.objects.create(reference="big-file", name="Big file", type="file", file=ContentFile(content, name=name))
    bundle_import({
        "registers": [{"reference": "crm", "schemas": [{"reference": "row", "schema": {"type": "object"}}]}],
        "synchronizations": [{
            "reference": "rows", "sourceType": "file", "sourceId": "big-file", "sourceConfig": source_config,
            "targetType": "register/schema", "targetId": "crm/row",
        }],
    })
    return Synchronization.objects.get(reference="rows")


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def test_a_csv_record_of_many_quoted_fields_across_lines_fails_naming_the_record_limit(media, settings):
    settings.SYNC_FILE_MAX_RECORD_BYTES = 64 * 1024
    # Each line is short and each field (10 KB) under every limit; the record of 20 of them is 200 KB.
    field = '"' + "\n".join(["y" * 99] * 100) + '"'
    content = ("id," + ",".join(f"f{n}" for n in range(20)) + "\n1," + ",".join([field] * 20) + "\n").encode()
    sync = file_sync("big.csv", content, pageSize=10)

    failed = run(sync)

    assert failed.status == "failed"
    assert "big.csv, line 2: a record longer than 65,536 bytes (SYNC_FILE_MAX_RECORD_BYTES)" in failed.error_message, (
        failed.error_message)


@pytest.mark.parametrize("name", ["rows.csv", "rows.ndjson", "rows.json"])
def test_a_file_page_over_budget_fails_naming_the_page_limit_and_keeps_the_pages_before(media, settings, name):
    settings.SYNC_PAGE_MAX_BYTES = 512 * 1024
    small = [{"id": str(n), "payload": "x"} for n in range(1, 6)]
    large = [{"id": str(n), "payload": "x" * 120_000} for n in range(6, 30)]
    rows = small + large
    if name.endswith(".csv"):
        content = ("id,payload\n" + "".join(f"{row['id']},{row['payload']}\n" for row in rows)).encode()
    elif name.endswith(".ndjson"):
        content = b"".join(canonical_bytes(row) + b"\n" for row in rows)
    else:
        content = b"[" + b",\n".join(canonical_bytes(row) for row in rows) + b"]"
    sync = file_sync(name, content, pageSize=5)

    failed = run(sync)

    assert failed.status == "failed"
    assert "page 2" in failed.error_message and "SYNC_PAGE_MAX_BYTES" in failed.error_message, failed.error_message
    assert Object.objects.count() == 5


# ---------------------------------------------------------------------------------------------
# Enrichment: the details of a page's objects count with its objects


def test_the_details_of_a_page_count_against_its_budget_and_fail_the_page(settings):
    settings.SYNC_PAGE_MAX_BYTES = 512 * 1024
    animals = [{"id": n, "name": f"animal {n}"} for n in range(1, 4)]

    def answer(request: Request):
        if request.path == "/animals":
            return 200, {}, animals
        return 200, {}, {"notes": "n" * 200_000}  # each detail 200 KB: the third is over 512 KiB

    with LoopbackServer(answer) as server:
        sync = import_api_synchronization(location=server.url, source_config={
            "endpoint": "/animals", "resultsPosition": "_root", "pagination": {"type": "none"},
            "extraDataConfigs": [{"staticEndpoint": "/animals/{{ originId }}", "keyToSetExtraData": "detail"}],
            "extraDataConcurrency": 1,
        })
        failed = run(sync)

    assert failed.status == "failed"
    assert "page 1" in failed.error_message and "SYNC_PAGE_MAX_BYTES" in failed.error_message, failed.error_message
    assert "the detail at" in failed.error_message and "/animals/3" in failed.error_message
    assert Object.objects.count() == 0


# ---------------------------------------------------------------------------------------------
# Contract logs


def test_a_huge_answer_is_cut_in_its_contract_log_and_says_so(settings):
    settings.SYNC_LOG_VALUE_MAX_BYTES = 64 * 1024
    answer = {"id": "t1", "echo": "z" * (5 * MiB)}

    kept = log_value(answer)

    assert len(canonical_bytes(kept)) < 70 * 1024
    assert kept["truncated"] == f"{len(canonical_bytes(answer)):,} bytes as JSON, cut to the first 65,536 " \
                                "(SYNC_LOG_VALUE_MAX_BYTES)"
    assert kept["start"].startswith('{"echo":"zzz')
    assert log_value({"id": "t1", "name": "small"}) == {"id": "t1", "name": "small"}
