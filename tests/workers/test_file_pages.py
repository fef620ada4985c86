"""A file at a URL read by a real worker: its pages are tasks on any worker process, the file is
downloaded once per run into the shared media root, and the copy is gone when the run ends."""
from __future__ import annotations

import json

import pytest
from django.conf import settings

from contracts.models import RunPage
from syncapp import runs as sync_runs
from syncapp.configuration import bundle_import
from syncapp.models import Object, Synchronization
from tests.helpers import wait_for_run
from tests.loopback import LoopbackServer

pytestmark = pytest.mark.worker

ROWS = [{"id": str(number), "name": f"animal {number}", "legs": str(number % 5)} for number in range(1, 24)]


def ndjson(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def test_the_pages_of_a_file_at_a_url_are_read_by_the_worker_from_one_download_a_run(worker):
    content = {"body": ndjson(ROWS)}
    with LoopbackServer(lambda request: (200, {"Content-Type": "application/x-ndjson"}, content["body"])) as server:
        bundle_import({
            "sources": [{"reference": "animals-file", "type": "file", "location": f"{server.url}/animals.ndjson"}],
            "registers": [{"reference": "zoo", "schemas": [{"reference": "animal", "schema": {"type": "object"}}]}],
            "mappings": [{"reference": "animal-in", "mapping": {"name": "name", "legs": "legs"},
                          "cast": {"legs": "int"}}],
            "synchronizations": [{
                "reference": "animals-from-file", "sourceType": "file", "sourceId": "animals-file",
                "sourceConfig": {"pageSize": 5}, "sourceTargetMapping": "animal-in",
                "targetType": "register/schema", "targetId": "zoo/animal",
            }],
        })
        sync = Synchronization.objects.get(reference="animals-from-file")

        first = wait_for_run(sync_runs.run_start(synchronization=sync))
        content["body"] = ndjson([{**ROWS[0], "name": "renamed"}, *ROWS[2:]])
        second = wait_for_run(sync_runs.run_start(synchronization=sync))

    assert (first.status, first.created, first.pages_fetched) == ("succeeded", 23, 5), first.error_message
    assert (second.status, second.updated, second.deleted, second.unchanged) == ("succeeded", 1, 1, 21), \
        second.error_message
    assert len(server.requests) == 2  # five pages a run, one download
    assert RunPage.objects.filter(run=second).count() == 5
    assert sorted(Object.objects.values_list("data__name", flat=True))[:2] == ["animal 10", "animal 11"]
    downloads = settings.MEDIA_ROOT / "file-sources" / "downloads"
    assert not [path for path in downloads.glob("run-*") if path.name in (f"run-{first.pk}", f"run-{second.pk}")]
