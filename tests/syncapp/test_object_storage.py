"""Files in an object store: with SYNC_S3_BUCKET the uploads, the downloaded copies and the rules' files of a
run go to an S3-compatible bucket (a real server: moto's server mode on loopback), and none to the media root."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from config.storage import s3_storage
from contracts.models import SynchronizationRun
from syncapp.configuration import bundle_import
from syncapp.models import StoredFile
from tests.conftest import S3Server
from tests.helpers import run
from tests.syncapp.test_file_source import (
    EXPECTED_FIRST,
    PEOPLE,
    FileServer,
    as_csv,
    file_sync,
    people_in_register,
    url_source,
)
from tests.syncapp.test_rules import FILES, Zaaksysteem, case_bundle, fetch_rule, objects_by_title
from tests.syncapp.test_rules import run as cases_run

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")


@pytest.fixture
def bucket(settings, s3_server: S3Server, tmp_path) -> dict:
    """The default storage in the S3 server's bucket, under a folder of this test; a media root that must stay empty."""
    prefix = f"install-{uuid.uuid4().hex[:8]}"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SYNC_FILE_ALLOWED_DIRS = ()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(bucket=s3_server.bucket, endpoint_url=s3_server.url, region=S3Server.REGION,
                              prefix=prefix, addressing_style="path", **S3Server.KEYS),
    }
    return {"server": s3_server, "prefix": prefix, "media": Path(settings.MEDIA_ROOT)}


def nothing_in(media: Path) -> bool:
    return not media.exists() or not any(path.is_file() for path in media.rglob("*"))


def test_an_uploaded_file_source_is_stored_in_the_bucket_and_a_run_reads_it_from_there(bucket):
    server, prefix = bucket["server"], bucket["prefix"]
    # Given a file source whose CSV is uploaded
    sync = file_sync(source={}, upload=("people.csv", as_csv(PEOPLE)))

    # Then the upload is an object in the bucket, with the file's bytes
    keys = server.keys(server.bucket, prefix=prefix)
    assert len(keys) == 1 and keys[0].startswith(f"{prefix}/sources/") and keys[0].endswith("/people.csv")
    assert server.read(server.bucket, keys[0]) == as_csv(PEOPLE)

    # When it is synchronized (5 records, 2 a page)
    first = run(sync)

    # Then every page was read from the bucket and its objects are in the register
    assert (first.status, first.pages_fetched, first.created) == ("succeeded", 3, 4), first.error_message
    assert people_in_register() == EXPECTED_FIRST
    assert nothing_in(bucket["media"])


def test_the_copy_of_a_file_at_a_url_is_kept_in_the_bucket_while_its_run_reads_it(bucket):
    server, prefix = bucket["server"], bucket["prefix"]
    # Given a file at a URL whose fourth line is garbage, so that its run stops on the second page and leaves
    # its copy behind (a later download removes it once old)
    content = as_csv(PEOPLE[:2]) + b"9,broken\n" + as_csv(PEOPLE[2:]).split(b"\n", 1)[1]
    with FileServer("people.csv", content) as files:
        sync = file_sync(source=url_source(files, "people.csv"))

        # When it is synchronized
        failed = run(sync)
        # (and, once the file is mended, again)
        files.files["/files/people.csv"] = as_csv(PEOPLE)
        succeeded = run(sync)

    # Then the first run read the first page from the copy and failed the second, and the copy is in the bucket
    assert failed.status == SynchronizationRun.Status.FAILED
    assert failed.pages_fetched >= 1
    copy = f"{prefix}/file-sources/downloads/run-{failed.pk}"
    assert server.keys(server.bucket, prefix=f"{prefix}/file-sources/") == [copy]
    assert server.read(server.bucket, copy) == content
    assert [request.path for request in files.requests] == ["/files/people.csv"] * 2  # once a run

    # And the run that reaches the end removes its copy from the bucket
    assert (succeeded.status, succeeded.pages_fetched) == ("succeeded", 3), succeeded.error_message
    assert f"{prefix}/file-sources/downloads/run-{succeeded.pk}" not in server.keys(server.bucket, prefix=prefix)
    assert nothing_in(bucket["media"])


def test_a_fetch_file_rules_attachment_is_stored_in_the_bucket_and_read_back_from_it(bucket):
    server, prefix = bucket["server"], bucket["prefix"]
    zaken = Zaaksysteem()
    # Given a synchronization whose rule fetches each case's attachments
    with zaken.server:
        bundle_import(case_bundle(zaken.server.url, rules=[fetch_rule()]))

        # When it runs
        done = cases_run()

    # Then the attachment's bytes are read back from the bucket, where its stored file names it
    assert done.status == "succeeded", done.error_message
    pdf = StoredFile.objects.get(object=objects_by_title()["Besluit"], name="besluit.pdf")
    assert server.read(server.bucket, f"{prefix}/{pdf.file.name}") == FILES["/files/besluit.pdf"]
    with pdf.file.open("rb") as handle:
        assert handle.read() == FILES["/files/besluit.pdf"]
    assert nothing_in(bucket["media"])
