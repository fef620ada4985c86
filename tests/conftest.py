"""Shared fixtures: the sample source, a configured zoo synchronization, and a real Celery worker."""
from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The tests' sources and targets are servers on loopback, which the default policy denies: allowed for
# the workers and commands the tests start, and in this process (whose settings may be read already).
TEST_NETWORKS = "127.0.0.0/8,::1/128"
os.environ.setdefault("SYNC_ALLOWED_NETWORKS", TEST_NETWORKS)

from django.conf import settings  # noqa: E402

if not settings.SYNC_ALLOWED_NETWORKS:
    settings.SYNC_ALLOWED_NETWORKS = tuple(ipaddress.ip_network(network) for network in TEST_NETWORKS.split(","))

from django.contrib.auth import get_user_model  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from config.celery import app as celery_app  # noqa: E402
from syncapp.sample_source import SampleSource, generate_animals  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ZOO_BUNDLE = ROOT / "examples" / "zoo.json"

# Each test session gets its own queue, so a developer's session and CI never take each other's tasks.
TEST_QUEUE = f"test-{os.getpid()}"
celery_app.conf.task_default_queue = TEST_QUEUE


@contextlib.contextmanager
def on_queue(queue: str):
    """Send this process's tasks to `queue` inside the block, and to the test queue again after it, whatever
    happens inside: a test that fails half-way must not leave the next tests' tasks on a queue nobody reads."""
    celery_app.conf.task_default_queue = queue
    try:
        yield
    finally:
        celery_app.conf.task_default_queue = TEST_QUEUE


def zoo_bundle(*, location: str) -> dict:
    """Return the bundled zoo configuration pointing at a sample source."""
    bundle = json.loads(ZOO_BUNDLE.read_text())
    bundle["sources"][0]["location"] = location
    return copy.deepcopy(bundle)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Give each test session its own test database, so sessions side by side never drop each other's."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = f"test_{db['NAME']}_{os.getpid()}"


@pytest.fixture
def api(db):
    """An API client logged in as a superuser (a staff user holding every permission)."""
    user = get_user_model().objects.create(username="api-admin", is_staff=True, is_superuser=True)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def animals() -> list[dict]:
    return generate_animals(count=120, seed=11)


@pytest.fixture
def sample_source(animals):
    with SampleSource(records=animals, page_size=25) as source:
        yield source


@pytest.fixture
def default_egress_policy(settings):
    """The egress policy of a service with nothing configured: loopback, link-local and reserved denied."""
    settings.SYNC_ALLOWED_NETWORKS = ()
    settings.SYNC_DENY_PRIVATE_NETWORKS = False


@pytest.fixture
def in_process_tasks(settings):
    """Run tasks in this process, as the embedded default does; a save's pushes right after its commit
    (the tests of coalescing set SYNC_PUSH_DELAY_SECONDS themselves)."""
    settings.TASKS_IN_PROCESS = True
    settings.SYNC_PUSH_DELAY_SECONDS = 0


def _worker_database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("worker tests need PostgreSQL: run the suite with scripts/test.sh (it sets DATABASE_URL)")
    user = db.get("USER") or "root"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgresql://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class WorkerProcess:
    """A Celery worker subprocess on one queue, pointed at the test database."""

    def __init__(self, *, queue: str, log_path: Path, env: dict[str, str] | None = None):
        self.queue = queue
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - the worker writes to it while it lives
        self.name = f"{queue}-{time.monotonic_ns()}@{socket.gethostname()}"
        # Where its pool processes write their metrics, when it counts them in multiprocess mode.
        self.metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"]) if env and "PROMETHEUS_MULTIPROC_DIR" in env else None
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue,
                "--concurrency", "2", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
                "--hostname", self.name,
            ],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env={
                **os.environ, "DATABASE_URL": _worker_database_url(), "CELERY_TASK_DEFAULT_QUEUE": queue,
                "PYTHONUNBUFFERED": "1", **(env or {}),
            },
        )
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the Celery worker did not start:\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text()[-5000:]

    def idle(self) -> bool:
        """Return whether this worker has nothing to do: no task in its queue, none running, reserved or
        waiting for its countdown (so what the database shows now is what its tasks leave)."""
        with celery_app.connection_for_read() as connection:
            if connection.default_channel.client.llen(self.queue):
                return False
        # Only this worker is asked: other test sessions' workers share the broker.
        inspect = celery_app.control.inspect(destination=[self.name], limit=1, timeout=5.0)
        for answer in (inspect.active(), inspect.reserved(), inspect.scheduled()):
            if not answer or answer.get(self.name) != []:
                return False
        return True

    def kill(self) -> None:
        """Kill the worker and its pool processes at once, as a lost machine would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)
        self._log.close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log.close()


def process_group_stop(process: subprocess.Popen) -> None:
    """Stop a subprocess started in a process group of its own, with its children: asked, then killed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


def purge_queue(queue: str) -> None:
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """Start a real Celery worker process on the machine's Redis, pointed at the test database."""
    if settings.TASKS_IN_PROCESS:
        pytest.fail("worker tests need a broker: run the suite with scripts/test.sh (it sets CELERY_BROKER_URL)")
    purge_queue(TEST_QUEUE)
    # Its pool counts metrics in multiprocess mode, as a deployment's workers do: /metrics can be scraped.
    metrics_dir = tmp_path_factory.mktemp("worker-metrics")
    worker = WorkerProcess(
        queue=TEST_QUEUE, log_path=tmp_path_factory.mktemp("worker") / "worker.log",
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )
    yield worker
    worker.stop()


@pytest.fixture
def worker(celery_worker_process, transactional_db):
    """A running worker; the test's data is committed so the worker sees it."""
    return celery_worker_process


class S3Server:
    """A real S3-compatible server (moto's server mode) as a subprocess on a free loopback port."""

    REGION = "us-east-1"
    KEYS = {"access_key": "sync-test-key", "secret_key": "sync-test-secret"}

    def __init__(self, *, log_path: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "w")  # noqa: SIM115 - the server writes to it while it lives
        self.log_path = log_path
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"moto_server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        import boto3

        self.client = boto3.client(
            "s3", endpoint_url=self.url, region_name=self.REGION, aws_access_key_id=self.KEYS["access_key"],
            aws_secret_access_key=self.KEYS["secret_key"],
        )

    def bucket_create(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, *, prefix: str = "") -> list[str]:
        """Return the keys of the objects in the bucket under the prefix."""
        listed = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def stop(self) -> None:
        process_group_stop(self.process)
        self._log.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server on loopback for this test session, with one bucket."""
    server = S3Server(log_path=tmp_path_factory.mktemp("s3") / "moto.log")
    server.bucket = server.bucket_create("sync-files")
    yield server
    server.stop()
