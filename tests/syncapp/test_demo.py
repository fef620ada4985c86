"""The demo a newcomer runs first."""
from __future__ import annotations

import io
import logging

import pytest
from django.core.management import call_command

from syncapp.models import Object


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_the_demo_creates_the_active_animals_then_updates_only_the_renamed_one():
    out = io.StringIO()

    call_command("demo", "--count", "60", "--show", "1", stdout=out)

    text = out.getvalue()
    assert "First run: succeeded" in text and "Second run: succeeded" in text
    first = next(line for line in text.splitlines() if line.startswith("First run"))
    second = next(line for line in text.splitlines() if line.startswith("Second run"))
    created = int(first.split("created ")[1].split(",")[0])
    assert created == Object.objects.count() > 0
    assert "updated 1," in second and "created 0," in second
    assert f"unchanged {created - 1}," in second


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_running_the_demo_twice_starts_from_an_empty_register_each_time():
    call_command("demo", "--count", "30", stdout=io.StringIO())
    out = io.StringIO()

    call_command("demo", "--count", "30", stdout=out)

    first = next(line for line in out.getvalue().splitlines() if line.startswith("First run"))
    assert "unchanged 0," in first


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_the_demo_quiets_the_run_logs_for_itself_only():
    # Given the process's log levels (a test's process goes on after the demo, and logs at INFO)
    levels = {name: logging.getLogger(name).level for name in ("contracts", "syncapp")}

    call_command("demo", "--count", "30", stdout=io.StringIO())

    # Then the demo's quiet ended with it
    assert {name: logging.getLogger(name).level for name in levels} == levels
