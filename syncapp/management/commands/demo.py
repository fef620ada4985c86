"""`manage.py demo`: a synchronization from the bundled sample source into the register, twice."""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from ipaddress import ip_network
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from contracts.models import SynchronizationContract, SynchronizationRun
from syncapp import configuration
from syncapp import runs as synchronization
from syncapp.models import Object, Synchronization
from syncapp.sample_source import SampleSource, generate_animals
from syncapp.targets.register import register_objects_delete

BUNDLE = settings.BASE_DIR / "examples" / "zoo.json"


class Command(BaseCommand):
    help = "Run the demo: sample source -> conditions -> mapping -> zoo register, then again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=300, help="Records the sample source serves.")
        parser.add_argument("--show", type=int, default=5, help="Objects to print from the register.")

    def handle(self, *args, count: int, show: int, **options) -> None:
        # The demo prints its own summary; the per-run log lines would only repeat it. Quiet for the demo
        # only: a process that goes on after it (a test calling it) keeps its log lines.
        loggers = [logging.getLogger(name) for name in ("contracts", "syncapp")]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            self._demo(count=count, show=show)
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)

    def _demo(self, *, count: int, show: int) -> None:
        with SampleSource(records=generate_animals(count=count)) as source:
            self.stdout.write(f"Sample source serving {count} animals at {source.url}/animals")
            port = source.url.rsplit(":", 1)[1]
            # Sources may not call loopback addresses (syncapp/egress.py); the demo's own sample source
            # is the exception, in this process only.
            settings.SYNC_ALLOWED_NETWORKS = (*settings.SYNC_ALLOWED_NETWORKS, ip_network("127.0.0.1/32"))
            bundle = json.loads(BUNDLE.read_text())
            bundle["sources"][0]["location"] = source.url
            result = configuration.bundle_import(bundle)
            self.stdout.write(f"Imported {BUNDLE.name}: created {result.created}, updated {result.updated}")
            sync = Synchronization.objects.get(reference="animals")
            self._start_empty(sync)
            mode = "tasks in this process" if settings.TASKS_IN_PROCESS else f"Celery on {settings.CELERY_BROKER_URL}"
            self.stdout.write(f"Running {sync.reference!r} ({mode})\n")

            first = self._run(sync, "First run")
            self._show_objects(sync, limit=show)
            changed = next(record for record in source.records if record["status"] == "active")
            source.update_record(changed["id"], name=f"{changed['name']} II")
            self.stdout.write(f"\nRenamed animal {changed['id']} at the source.")
            second = self._run(sync, "Second run")
        ok = first.status == second.status == SynchronizationRun.Status.SUCCEEDED
        if not ok:
            self.stderr.write(self.style.ERROR("The demo did not end as expected."))
            raise SystemExit(1)
        # The sample source ends with the demo: `animals` is left disabled rather than pointing at a closed
        # port, where a schedule or "Run now" would only fail.
        Synchronization.objects.filter(pk=sync.pk).update(is_enabled=False)
        python = self._interpreter()
        self.stdout.write(self.style.SUCCESS(
            f"\nThe second run wrote only what changed. Try: {python} manage.py sync status, "
            f"{python} manage.py register export zoo/animal"
        ))
        self.stdout.write(
            f"\nThe sample source has stopped with the demo, so {sync.reference!r} is now disabled. To run it again, "
            f"start the sample source on the same port, enable {sync.reference!r} (its page in the admin) and let "
            f"loopback sources be called:\n  {python} manage.py sample_source --port {port} --count {count} &\n"
            f"  SYNC_ALLOWED_NETWORKS=127.0.0.0/8 {python} manage.py sync run {sync.reference}\n"
            f"\nThe admin (/admin/), the API (/api/), \"Run now\" and schedules need the runner, which serves them "
            f"and runs the runs they queue:\n  {python} manage.py createsuperuser\n"
            f"  SYNC_ALLOWED_NETWORKS=127.0.0.0/8 {python} manage.py sync serve      # http://127.0.0.1:8000/admin/"
        )

    @staticmethod
    def _interpreter() -> str:
        """Return this project's Python as the person should type it: `.venv/bin/python`, not a `python` of the
        system that has no Django."""
        executable = Path(sys.executable)
        with contextlib.suppress(ValueError):
            return str(executable.relative_to(Path.cwd()))
        return str(executable)

    def _run(self, sync: Synchronization, title: str) -> SynchronizationRun:
        run = synchronization.run_start(synchronization=sync)
        deadline = time.monotonic() + 600
        while run.status in SynchronizationRun.ACTIVE_STATUSES and time.monotonic() < deadline:
            time.sleep(0.2)
            run.refresh_from_db()
        counts = ", ".join(f"{name} {value}" for name, value in run.counts.items())
        seconds = f" in {run.duration_seconds:.2f}s" if run.duration_seconds is not None else ""
        self.stdout.write(f"{title}: {run.status}{seconds}, {run.pages_fetched} pages: {counts}")
        if run.error_message:
            self.stdout.write(f"  error: {run.error_message}")
        return run

    def _start_empty(self, sync: Synchronization) -> None:
        """Forget what an earlier demo wrote, so every demo starts from an empty register."""
        with transaction.atomic():
            SynchronizationContract.objects.filter(synchronization=sync).delete()
            register_objects_delete(
                schema=sync.target_schema,
                target_ids=list(Object.objects.filter(schema=sync.target_schema).values_list("pk", flat=True)),
            )

    def _show_objects(self, sync: Synchronization, *, limit: int) -> None:
        objects = Object.objects.filter(schema=sync.target_schema).order_by("created_at")
        self.stdout.write(f"\nThe register {sync.target_schema.path} holds {objects.count()} objects, e.g.:")
        for obj in objects[:limit]:
            self.stdout.write("  " + json.dumps(obj.data, ensure_ascii=False))
