"""Structured logs: with LOG_FORMAT=json a worker writes one JSON object a line, naming the work it was for."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from config.celery import app as celery_app
from syncapp import runs as sync_runs
from syncapp.models import Synchronization
from syncapp.structured_logs import JsonFormatter, WorkContextFilter, work_context
from tests.conftest import TEST_QUEUE, WorkerProcess, purge_queue, zoo_bundle
from tests.helpers import import_zoo, runner_take, wait_for_run
from tests.loopback import LoopbackServer
from workers import dispatch


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def json_worker(transactional_db, tmp_path):
    """A worker of its own, on its own queue, started with LOG_FORMAT=json."""
    queue = f"{TEST_QUEUE}-jsonlogs"
    purge_queue(queue)
    celery_app.conf.task_default_queue = queue
    worker = WorkerProcess(queue=queue, log_path=tmp_path / "worker.log", env={"LOG_FORMAT": "json"})
    try:
        yield worker
    finally:
        worker.stop()
        celery_app.conf.task_default_queue = TEST_QUEUE
        purge_queue(queue)


def failing_source_sync(server: LoopbackServer) -> Synchronization:
    sync = import_zoo(zoo_bundle(location=server.url))
    sync.source_config = {**sync.source_config, "endpoint": "/animals?api_key=hunter2-secret-value"}
    sync.save()
    return sync


@pytest.mark.worker
def test_a_json_log_line_of_a_page_task_carries_the_run_id_the_synchronization_and_the_page_number(json_worker):
    # Given a source that answers its first page with an error, and a worker logging JSON
    with LoopbackServer(lambda request: (404, {}, {"error": "no animals here"})) as server:
        sync = failing_source_sync(server)

        # When the worker runs the page
        run = wait_for_run(sync_runs.run_start(synchronization=sync), timeout=90)

    # Then the page's failure is one JSON line naming the run, its synchronization and the page
    assert run.status == "failed"
    lines = json_lines(json_worker.log_path.read_text())
    failed = [line for line in lines if line["message"].startswith(f"run {run.pk} page 1 failed")]
    assert failed, json_worker.log()
    line = failed[0]
    assert (line["run"], line["page"], line["synchronization"]) == (run.pk, 1, sync.pk)
    assert {"time", "level", "logger", "message", "exception"} <= set(line)
    assert line["exception"] is None
    assert line["level"] == "WARNING"
    # And the secret in the source's URL is masked there, as in every message
    assert "hunter2-secret-value" not in json_worker.log_path.read_text()
    # And the worker's own lines are JSON too, without the ids of work they were not written for
    assert any("run" not in line for line in lines)


def test_an_exception_is_logged_in_its_line_with_the_ids_of_the_work_and_urls_masked():
    record_filter, formatter = WorkContextFilter(), JsonFormatter()
    try:
        raise RuntimeError("GET https://api.example.org/x?token=s3cr3t-token failed")
    except RuntimeError:
        record = logging.LogRecord("syncapp.runs", logging.ERROR, __file__, 1, "run %s chunk %s failed", (7, 3),
                                   exc_info=sys.exc_info())
    with work_context(run=7, chunk=3):
        record_filter.filter(record)
    line = json.loads(formatter.format(record))

    assert (line["run"], line["chunk"], line["level"], line["logger"]) == (7, 3, "ERROR", "syncapp.runs")
    assert "page" not in line
    assert "RuntimeError" in line["exception"]
    assert "s3cr3t-token" not in line["exception"]
    assert "token=***" in line["exception"]


@contextlib.contextmanager
def json_log_lines() -> Iterator[list[dict]]:
    """Capture what the root logger writes, as LOG_FORMAT=json writes it, into a list of objects."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(WorkContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        lines.extend(json_lines(stream.getvalue()))


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_the_in_process_runner_names_the_run_it_takes_and_its_tasks_the_page_or_chunk_in_each_line(sample_source):
    # Given a run queued for the runner of `sync serve` (tasks in process)
    sync = import_zoo(zoo_bundle(location=sample_source.url))
    with dispatch.for_the_runner():
        queued = sync_runs.run_start(synchronization=sync)

    # When the runner takes it and runs it in this process
    with json_log_lines() as lines:
        assert runner_take() == [queued.pk]

    # Then its line taking the run names the run, and the line of the task that ended it names the run, the
    # synchronization and the page or chunk that task worked on
    taken = [line for line in lines if line["message"] == f"run {queued.pk} taken by the runner"]
    assert [(line["run"], "page" in line, "chunk" in line) for line in taken] == [(queued.pk, False, False)]
    ended = [line for line in lines if line["message"].startswith(f"run {queued.pk} of {sync.pk} ended succeeded")]
    assert len(ended) == 1, lines
    assert (ended[0]["run"], ended[0]["synchronization"]) == (queued.pk, sync.pk)
    assert ("page" in ended[0]) != ("chunk" in ended[0])
