"""The embedded default: SQLite and tasks in process, with nothing configured, on the chunked path."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_the_demo_runs_on_sqlite_with_tasks_in_process_when_nothing_is_configured(tmp_path):
    env = {
        key: value for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "SYNC_REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(SYNC_DATA_DIR=str(tmp_path), SYNC_CHUNK_SIZE="40", PYTHONUNBUFFERED="1")

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)

    assert manage("migrate", "--no-input", "-v", "0").returncode == 0
    result = manage("demo", "--count", "300", "--show", "0")

    assert result.returncode == 0, result.stderr[-3000:]
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines() if line.endswith(("failed 0",))}
    first, second = lines["First run"], lines["Second run"]
    created = int(first.split("created ")[1].split(",")[0])
    assert "succeeded" in first and created > 100 and "invalid 0" in first
    assert "succeeded" in second and "updated 1," in second and f"unchanged {created - 1}," in second
    assert (tmp_path / "sync.sqlite3").exists()
