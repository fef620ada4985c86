"""`manage.py sync`: import, export, run, status and list synchronizations; check a deployment (doctor)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from config.celery import app as celery_app
from contracts.models import SynchronizationRun
from contracts.runs import RunRefused, instant_text, process_identity, run_progress, run_summary, runs_fail_stale
from syncapp import configuration, health, imports, rekey, runner, schedules, sealing, tokens
from syncapp import runs as synchronization
from syncapp.models import Synchronization
from syncapp.progress import LinesAboveBar, RateMeter, logs_above_bar, progress_line
from workers import dispatch

# Exit codes tell the outcome of a run apart, for scripts and schedulers.
EXIT_CODES = {
    SynchronizationRun.Status.SUCCEEDED: 0,
    SynchronizationRun.Status.FAILED: 1,
    SynchronizationRun.Status.PARTIAL: 3,
    SynchronizationRun.Status.CANCELLED: 4,
}
EXIT_REFUSED = 5
# Not on a terminal (a log, a pipe), progress is a plain line this often.
PLAIN_PROGRESS_SECONDS = 10
EXIT_STILL_RUNNING = 6


def _plain(text: str) -> str:
    """Leave a line as it is: Django writes to stderr in red bold on a terminal, meant for errors."""
    return text


@contextlib.contextmanager
def interrupts_held() -> Iterator[list[int]]:
    """Hold Ctrl-C inside the block (only the main thread may); yield the interrupts that came meanwhile."""
    interrupted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(1))
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


class Command(BaseCommand):
    help = "Import, export, run and inspect synchronizations."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        importer = actions.add_parser(
            "import", help="Import a JSON or YAML bundle, OpenConnector's objects, or a folder of them."
        )
        importer.add_argument("file", type=Path, metavar="FILE_OR_FOLDER")
        importer.add_argument(
            "--kind", choices=sorted(imports.KINDS),
            help="The kind of an OpenConnector object without @type (in a folder: of those not in sources/, …).",
        )
        importer.add_argument(
            "--check", action="store_true", help="Report what each object would become; write nothing."
        )
        importer.add_argument("--json", action="store_true", help="Print the result as JSON.")
        exporter = actions.add_parser("export", help="Export every configuration as a bundle.")
        exporter.add_argument("--output", "-o", type=Path, help="Write to this file instead of stdout.")
        runner = actions.add_parser("run", help="Run a synchronization.")
        runner.add_argument("reference")
        runner.add_argument("--test", action="store_true", help="Show what would happen; write nothing.")
        runner.add_argument("--force", action="store_true", help="Write every object, changed or not.")
        runner.add_argument(
            "--full", action="store_true",
            help="Read every record, not only what changed since the stored cursor (sourceConfig.incremental).",
        )
        runner.add_argument("--wait", action="store_true", help="Wait until the run has ended.")
        runner.add_argument("--timeout", type=float, default=3600, help="Seconds to wait at most (--wait).")
        runner.add_argument("--json", action="store_true", help="Print the run as one JSON object.")
        runner.add_argument(
            "--queue", action="store_true", help="If a run is active, wait behind it instead of being refused."
        )
        runner.add_argument(
            "--cancel-on-interrupt", action="store_true",
            help="Ctrl-C cancels the run (by default the run goes on and only the waiting stops).",
        )
        canceller = actions.add_parser("cancel", help="Cancel an active run.")
        canceller.add_argument("run", help="Run id or reference.")
        canceller.add_argument("--json", action="store_true")
        status = actions.add_parser("status", help="Show a run, a synchronization's last runs, or the latest runs.")
        status.add_argument("run", nargs="?", help="Run id or reference, or a synchronization's reference.")
        status.add_argument("--json", action="store_true")
        doctor = actions.add_parser(
            "doctor", help="Check this deployment (database, migrations, keys, networks, broker, workers, "
            "scheduler, media storage) and say what to fix; exit 1 when something is wrong.",
        )
        doctor.add_argument("--json", action="store_true")
        lister = actions.add_parser("list", help="List synchronizations with their last run.")
        lister.add_argument("--json", action="store_true")
        serve = actions.add_parser(
            "serve", help="Serve the admin and the API, run the queued runs and tick the schedules, in this process."
        )
        serve.add_argument("--port", type=int, default=8000, help="The port to serve on (default 8000).")
        serve.add_argument("--host", default="127.0.0.1", help="The address to serve on (default 127.0.0.1).")
        serve.add_argument("--threads", type=int, default=4, help="Web requests served at once (default 4).")
        keygen = actions.add_parser("keygen", help="Print a new key for SYNC_CREDENTIAL_KEYS.")
        keygen.add_argument("--json", action="store_true")
        rekey = actions.add_parser(
            "rekey", help="Encrypt every stored credential again with the newest key of SYNC_CREDENTIAL_KEYS."
        )
        rekey.add_argument("--json", action="store_true")
        token = actions.add_parser(
            "token", help="Make an API token for a user and print its key, once: only its digest is stored."
        )
        token.add_argument("username")
        token.add_argument("--name", default="", help="What the token is for.")
        token.add_argument("--json", action="store_true")
        exporter.add_argument("--json", action="store_true", help="The bundle is JSON already; accepted for scripts.")

    def handle(self, *args, **options) -> None:
        # A closed pipe (`sync export | head`) is handled in manage.py, for every command.
        getattr(self, f"handle_{options['action']}")(**options)

    # -- keys ------------------------------------------------------------------------------

    def handle_keygen(self, *, json: bool = False, **_options) -> None:
        key = sealing.key_generate()
        if json:
            self._print_json({"key": key})
            return
        self.stdout.write(key)

    def handle_rekey(self, *, json: bool = False, **_options) -> None:
        try:
            count = rekey.secrets_reseal()
        except sealing.Unsealable as error:
            raise CommandError(str(error)) from None
        if json:
            self._print_json({"sources": count})
            return
        self.stdout.write(f"encrypted the credentials of {count} source(s) again with the newest key")

    def handle_token(self, *, username: str, name: str = "", json: bool = False, **_options) -> None:
        user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        token, key = tokens.token_create(user=user, name=name)
        if json:
            self._print_json({"user": username, "name": token.name, "token": key})
            return
        self.stdout.write(key)
        self.stderr.write(f"a token for {username}: keep it now, it is not shown again (`Authorization: Token …`)")

    # -- import / export ---------------------------------------------------------------------

    def handle_import(
        self, *, file: Path, json: bool = False, kind: str | None = None, check: bool = False, **_options
    ) -> None:
        if not file.exists():
            raise CommandError(f"no such file or folder: {file}")
        try:
            document = imports.document_read(file, kind=kind)
        except (configuration.ConfigurationInvalid, imports.ImportUnreadable) as error:
            raise CommandError(str(error)) from None
        report = imports.import_checked(document, write=not check)
        if check:
            self._show_import_check(report, as_json=json)
            if report.refused:
                raise CommandError(f"{len(report.problems)} problem(s): importing {file} would be refused")
            return
        if report.refused:
            if not json:
                self._show_import_objects(report)
            else:
                self._print_json(self._import_json(report))
            raise CommandError(str(configuration.ConfigurationInvalid(report.problems)))
        result = report.result
        if json:
            self._print_json(self._import_json(report))
            return
        if document.origins:
            # OpenConnector's objects, from their files: each with what became of it.
            self._show_import_objects(report)
            counts = ", ".join(f"{section} {result.created[section]} created, {result.updated[section]} updated"
                               for section in configuration.SECTIONS if result.created[section] or
                               result.updated[section])
            self.stdout.write(self.style.SUCCESS(f"imported {file}: {counts}"))
            return
        for section in configuration.SECTIONS:
            created, updated = result.created[section], result.updated[section]
            if created or updated:
                self.stdout.write(f"{section}: {created} created, {updated} updated")
        if result.ignored:
            self.stdout.write(self.style.WARNING(
                f"ignored {len(result.ignored)} setting(s) of OpenConnector that this service does not do:"
            ))
            for path in result.ignored:
                self.stdout.write(f"  {path}")
        if result.moved:
            self.stdout.write(self.style.WARNING(
                f"{len(result.moved)} secret(s) written in a configuration, where this service refuses them:"
            ))
            for what in result.moved:
                self.stdout.write(f"  {what}")
        if result.not_imported:
            self.stdout.write(self.style.WARNING(f"not imported ({len(result.not_imported)}):"))
            for what in result.not_imported:
                self.stdout.write(f"  {what}")
        if result.notes or report.notes:
            self.stdout.write("notes:")
            for note in [*report.notes, *result.notes]:
                self.stdout.write(f"  {note}")
        self.stdout.write(self.style.SUCCESS(f"imported {file}"))

    @staticmethod
    def _import_json(report: imports.ImportReport) -> dict:
        result = report.result
        return {
            "created": result.created if result else {}, "updated": result.updated if result else {},
            "ignored": result.ignored if result else [], "moved": result.moved if result else [],
            "notImported": result.not_imported if result else [],
            "notes": report.notes + (result.notes if result else []),
            "objects": [item.as_json() for item in report.objects], "problems": report.problems,
        }

    def _show_import_objects(self, report: imports.ImportReport) -> None:
        for item in report.objects:
            style = {"refused": self.style.ERROR, "not imported": self.style.WARNING}.get(item.outcome, str)
            named = f" {item.reference}" if item.reference else ""
            self.stdout.write(f"{item.what} ({item.kind}{named}): " + style(item.outcome))
            for problem in item.problems:
                self.stdout.write(f"    refused: {problem}")
            for key in item.ignored:
                self.stdout.write(f"    ignored: {key}")
            for note in item.notes:
                self.stdout.write(f"    note: {note}")
        for problem in report.general:
            self.stdout.write(self.style.ERROR(f"refused: {problem}"))
        for note in report.notes:
            self.stdout.write(f"note: {note}")

    def _show_import_check(self, report: imports.ImportReport, *, as_json: bool) -> None:
        if as_json:
            self._print_json({
                "check": True, "importable": not report.refused,
                "objects": [item.as_json() for item in report.objects], "problems": report.problems,
                "notes": report.notes,
            })
            return
        self._show_import_objects(report)
        counts: dict[str, int] = {}
        for item in report.objects:
            counts[item.outcome] = counts.get(item.outcome, 0) + 1
        summary = ", ".join(f"{count} {outcome}" for outcome, count in counts.items())
        self.stdout.write(f"checked, nothing written: {summary}")

    def handle_export(self, *, output: Path | None = None, **_options) -> None:
        text = json.dumps(configuration.bundle_export(), indent=2, ensure_ascii=False)
        if output is None:
            self.stdout.write(text)
        else:
            output.write_text(text + "\n", encoding="utf-8")
            self.stderr.write(f"exported to {output}")

    # -- run ---------------------------------------------------------------------------------

    def handle_run(
        self, *, reference: str, test: bool, force: bool, wait: bool, timeout: float, json: bool,
        queue: bool = False, cancel_on_interrupt: bool = False, full: bool = False, **_options,
    ) -> None:
        sync = Synchronization.objects.filter(reference=reference).first()
        if sync is None:
            raise CommandError(f"no synchronization with reference {reference!r} (see `sync list`)")
        # A Ctrl-C while the run is being made is held until it is made, then stops the wait as any other:
        # the run may exist already, and it is then cancelled or said to go on, never left unsaid.
        with interrupts_held() as interrupted:
            try:
                if test:
                    run = synchronization.run_test(synchronization=sync, full=full)
                else:
                    # With tasks in process they run in a thread of this process, so the progress can be shown.
                    with dispatch.in_background() as background:
                        run = synchronization.run_start(synchronization=sync, force=force, queue=queue, full=full)
            except RunRefused as error:
                raise CommandError(str(error), returncode=EXIT_REFUSED) from None
            except synchronization.ConfigurationError as error:
                raise CommandError(str(error)) from None
        follow_ups: list[SynchronizationRun] = []
        if wait or test or settings.TASKS_IN_PROCESS or interrupted:
            deadline = time.monotonic() + timeout
            try:
                if interrupted:
                    raise KeyboardInterrupt
                try:
                    run = self._wait(run, timeout=timeout, progress=not json)
                except BrokenPipeError:
                    # The reader went away (`| head`): the run is this process's to finish, quietly.
                    self._outputs_close()
                    run = self._wait(run, timeout=max(0.0, deadline - time.monotonic()), progress=False)
                if not test and settings.TASKS_IN_PROCESS:
                    # Its follow-ups run in this process too (the same thread): they are waited for, not left
                    # running in a process that ends.
                    background.join(max(0.0, deadline - time.monotonic()))
                    follow_ups = self._follow_ups(run)
            except KeyboardInterrupt:
                # With tasks in process, the run cannot go on without this process: it is cancelled too,
                # with the follow-ups it started here.
                if cancel_on_interrupt or settings.TASKS_IN_PROCESS:
                    synchronization.run_cancel(run=run)
                    if settings.TASKS_IN_PROCESS:
                        for mine in SynchronizationRun.objects.filter(
                            owner=process_identity(), status__in=SynchronizationRun.ACTIVE_STATUSES
                        ):
                            synchronization.run_cancel(run=mine)
                    self.stderr.write(f"interrupted: run {run.pk} cancelled")
                else:
                    self.stderr.write(
                        f"interrupted: stopped waiting; run {run.pk} goes on (`sync status {run.pk}` shows it, "
                        f"`sync cancel {run.pk}` stops it)"
                    )
                sys.exit(130)
        try:
            self._show_run(run, as_json=json, follow_ups=follow_ups)
        except BrokenPipeError:
            self._outputs_close()
        if run.status in SynchronizationRun.ACTIVE_STATUSES:
            if wait:
                raise CommandError(f"run {run.pk} still {run.status} after {timeout:g}s", returncode=EXIT_STILL_RUNNING)
            return
        code = EXIT_CODES.get(run.status, 1)
        if code:
            sys.exit(code)

    # The bar being drawn on the terminal, with the log lines kept above it (None: no bar shown).
    _bar: LinesAboveBar | None = None

    def _outputs_close(self) -> None:
        """Send what is still written to stdout and stderr nowhere: their reader went away."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                os.dup2(devnull, stream.fileno())

    @staticmethod
    def _follow_ups(run: SynchronizationRun) -> list[SynchronizationRun]:
        """Return the runs this run led to (its follow-ups, theirs in turn), oldest first."""
        found, parents = [], [run.pk]
        while parents:
            children = list(SynchronizationRun.objects.select_related("synchronization")
                            .filter(parent_id__in=parents).order_by("created_at", "pk"))
            found += children
            parents = [child.pk for child in children]
        return found

    def _progress_show(self, run: SynchronizationRun, *, meter: RateMeter, last_line_at: float, tick: int) -> float:
        """Show the run's progress: a bar redrawn in place on a terminal, else a plain line every 10 s.
        Return when a plain line was last written."""
        facts = run_progress(run)
        meter.add(at=time.monotonic(), done=facts["done"])
        figures = {
            "run_id": run.pk, "status": run.status, "done": facts["done"], "found": facts["found"],
            "pages": run.pages_fetched, "rate": meter.rate(),
            "total_known": run.fetch_finished or run.status not in SynchronizationRun.ACTIVE_STATUSES,
        }
        if self._bar is not None:
            self._bar.draw(progress_line(**figures, tick=tick))
            return last_line_at
        if time.monotonic() - last_line_at >= PLAIN_PROGRESS_SECONDS:
            self.stderr.write(progress_line(**figures, width=0), style_func=_plain)
            return time.monotonic()
        return last_line_at

    def _wait(self, run: SynchronizationRun, *, timeout: float, progress: bool) -> SynchronizationRun:
        """Wait for the run to end, showing its progress; say so when it stops moving, fail it when lost."""
        if not (progress and self.stderr.isatty()):
            return self._wait_showing(run, timeout=timeout, progress=progress)
        # On a terminal the bar is redrawn in place, and log lines (of the tasks running in this process)
        # are written above it rather than into it.
        self._bar = LinesAboveBar(sys.stderr)
        try:
            with logs_above_bar(self._bar, streams=(sys.stderr, sys.stdout)):
                return self._wait_showing(run, timeout=timeout, progress=progress)
        finally:
            self._bar.finish()
            self._bar = None

    def _wait_showing(self, run: SynchronizationRun, *, timeout: float, progress: bool) -> SynchronizationRun:
        deadline = time.monotonic() + timeout
        meter = RateMeter()
        last_line_at = float("-inf")
        warned = False
        tick = 0
        while True:
            run.refresh_from_db()
            if run.status not in SynchronizationRun.ACTIVE_STATUSES or time.monotonic() > deadline:
                if progress and self._bar is not None:
                    self._progress_show(run, meter=meter, last_line_at=last_line_at, tick=tick)
                return run
            if progress:
                last_line_at = self._progress_show(run, meter=meter, last_line_at=last_line_at, tick=tick)
                tick += 1
            idle = (timezone.now() - run.heartbeat_at).total_seconds() if run.heartbeat_at else 0
            if run.deferred_until is not None:
                # Work deferred for a server's Retry-After: sent once due (by beat, or here in process).
                if run.deferred_until <= timezone.now() and settings.TASKS_IN_PROCESS:
                    with dispatch.in_background():
                        synchronization.runs_send_came_due(synchronization_id=run.synchronization_id)
            elif idle >= settings.SYNC_RUN_STALE_SECONDS:
                # The worker is gone: fail the run now rather than wait out the timeout.
                runs_fail_stale(synchronization_id=run.synchronization_id)
            elif idle >= settings.SYNC_RUN_RESEND_SECONDS and not warned:
                message = (
                    f"run {run.pk} has made no progress for {idle:.0f}s: is a worker running on queue "
                    f"{celery_app.conf.task_default_queue!r} (celery -A config worker)? It is failed after "
                    f"{settings.SYNC_RUN_STALE_SECONDS}s without progress."
                )
                if self._bar is not None:
                    self._bar.write(message + "\n")
                else:
                    self.stderr.write(self.style.WARNING(message))
                warned = True
            time.sleep(0.5)

    def _show_run(self, run: SynchronizationRun, *, as_json: bool, follow_ups=()) -> None:
        summary = run_summary(run)
        if run.is_test:
            summary["report"] = run.report
        if follow_ups:
            summary["followUps"] = [run_summary(follow_up) for follow_up in follow_ups]
        if as_json:
            self._print_json(summary)
            return
        self.stdout.write(f"run {run.pk} of {run.synchronization.reference}: {run.status} ({run.mode})")
        self.stdout.write("  " + ", ".join(f"{name} {value}" for name, value in run.counts.items()))
        if run.enrichments:
            self.stdout.write(f"  detail requests {run.enrichments} ({run.enrichments_failed} failed)")
        if run.cursor_sent is not None or run.cursor_value is not None:
            self.stdout.write(f"  cursor sent {run.cursor_sent!r}, greatest seen {run.cursor_value!r}")
        if run.error_message:
            self.stdout.write(f"  error: {run.error_message}")
        if run.is_test:
            for entry in run.report:
                detail = entry.get("error") or (json.dumps(entry.get("result"), ensure_ascii=False)[:120])
                if entry.get("action") == "filtered":
                    detail = f"{entry['count']} object(s)"
                self.stdout.write(f"  {entry.get('originId') or '-':>10}  {entry['action']:<9} {detail}")
        for follow_up in follow_ups:
            error = f": {follow_up.error_message}" if follow_up.error_message else ""
            self.stdout.write(f"follow-up run {follow_up.pk} of {follow_up.synchronization.reference}: "
                              f"{follow_up.status}{error}")

    # -- serve -------------------------------------------------------------------------------

    def handle_serve(self, *, port: int, host: str, threads: int, **_options) -> None:
        from waitress.server import create_server  # only this command serves

        from config.wsgi import application

        if threads < 1:
            raise CommandError(f"--threads: at least 1, got {threads}")
        try:
            server = create_server(application, host=host, port=port, threads=threads, ident="sync")
        except OSError as error:
            raise CommandError(f"cannot serve on {host}:{port}: {error.strerror or error}") from None
        work = runner.Runner(tick_seconds=settings.SYNC_SCHEDULE_TICK_SECONDS)
        stop = threading.Event()

        def ask_to_stop(number, _frame) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, ask_to_stop)
        signal.signal(signal.SIGINT, ask_to_stop)
        web = threading.Thread(target=server.run, name="sync-web", daemon=True)
        web.start()
        work.start()
        tasks = "runs in this process" if settings.TASKS_IN_PROCESS else (
            f"runs on Celery workers ({settings.CELERY_BROKER_URL.split('@')[-1]})"
        )
        self.stdout.write(
            f"Serving the admin at http://{host}:{server.effective_port}/admin/ and the API at /api/; {tasks}; "
            f"schedules ticked every {settings.SYNC_SCHEDULE_TICK_SECONDS} s. Ctrl-C stops.", ending="\n",
        )
        self.stdout.flush()
        while not stop.wait(1.0) and web.is_alive():
            pass
        released = work.stop()
        server.close()
        self.stdout.write("stopped" + (f"; runs {', '.join(map(str, released))} queued for the next runner"
                                       if released else ""))

    # -- status / list -----------------------------------------------------------------------

    def handle_status(self, *, run: str | None = None, json: bool = False, **_options) -> None:
        runs_fail_stale()  # a run whose process is gone is shown failed, not running
        warning = schedules.scheduler_warning()
        if warning and not json:
            self.stderr.write(self.style.WARNING(warning))
        runs = SynchronizationRun.objects.select_related("synchronization")
        named = Synchronization.objects.filter(reference=run).first() if run is not None else None
        if run is None or named is not None:
            recent = list((runs.filter(synchronization=named) if named is not None else runs)[:20])
            if json:
                self._print_json([run_summary(item) for item in recent])
                return
            if run is None:
                self._show_heartbeats()
            for item in recent:
                self.stdout.write(self._run_line(item))
            return
        found = self._find_run(runs, run)
        self._show_run(found, as_json=json)

    def _show_heartbeats(self) -> None:
        """Write which workers answer a ping and which schedulers ticked lately: on stderr, beside the
        scheduler's warning, so that stdout stays the list of runs for scripts."""
        workers, scheduler = health.workers_check(), health.scheduler_check()
        names = ", ".join(workers.extra.get("answering", []))
        self.stderr.write(f"workers: {workers.detail}{f' ({names})' if names else ''}")
        ticking = ", ".join(f"{beat['kind']} on {beat['host']} (pid {beat['pid']})"
                            for beat in scheduler.extra.get("ticking", []))
        self.stderr.write(f"schedulers: {scheduler.detail}{f' ({ticking})' if ticking else ''}")

    def handle_doctor(self, *, json: bool = False, **_options) -> None:
        checks = health.doctor_checks()
        failed = [check for check in checks if not check.ok]
        if json:
            self._print_json({"ok": not failed, "checks": {check.name: check.as_dict() for check in checks}})
        else:
            for check in checks:
                mark = "FAIL" if not check.ok else "WARN" if check.fix else "ok  "
                self.stdout.write(f"{mark} {check.name}: {check.detail}")
                if check.fix:
                    self.stdout.write(f"     fix: {check.fix}")
        if failed:
            raise CommandError(f"{len(failed)} problem(s): {', '.join(check.name for check in failed)}")

    def handle_cancel(self, *, run: str, json: bool = False, **_options) -> None:
        runs_fail_stale()
        found = self._find_run(SynchronizationRun.objects.select_related("synchronization"), run)
        if not synchronization.run_cancel(run=found):
            raise CommandError(f"run {found.pk} has already ended ({found.status})")
        self._show_run(found, as_json=json)

    @staticmethod
    def _find_run(queryset, run: str) -> SynchronizationRun:
        if run.isdigit():
            found = queryset.filter(pk=int(run)).first()
        else:
            try:
                found = queryset.filter(reference=uuid.UUID(run)).first()
            except ValueError:
                found = None
        if found is None:
            raise CommandError(f"no run {run!r}")
        return found

    def handle_list(self, *, json: bool = False, **_options) -> None:
        runs_fail_stale()
        rows = []
        for sync in Synchronization.objects.select_related("source", "target_schema__register"):
            last = sync.runs.filter(is_test=False).first()
            # The fields the API answers too under the names and with the values it gives them
            # (GET /api/synchronizations/{id}/); `nextRunAt`, `contracts` (how many) and `lastRun` are the list's own.
            rows.append({
                "id": sync.pk,
                "reference": sync.reference,
                "name": sync.name,
                "isEnabled": sync.is_enabled,
                "schedule": sync.schedule,
                "nextRunAt": instant_text(schedules.synchronization_next_run(sync)),
                "contracts": sync.contracts.count(),
                "lastRun": run_summary(last) if last else None,
            })
        if json:
            self._print_json(rows)
            return
        if not rows:
            self.stdout.write("no synchronizations (import some with `sync import FILE`)")
        for row in rows:
            last = row["lastRun"]
            state = f"last run {last['id']} {last['status']}" if last else "never run"
            if row["nextRunAt"]:
                state += f", next run {row['nextRunAt']}"
            self.stdout.write(f"{row['reference']:<30} {row['contracts']:>7} objects  {state}")

    @staticmethod
    def _run_line(run: SynchronizationRun) -> str:
        counts = " ".join(f"{name}={value}" for name, value in run.counts.items() if value)
        kind = " test" if run.is_test else ""
        return f"{run.pk:>6} {run.synchronization.reference:<25} {run.status:<10}{kind} {counts}"

    def _print_json(self, value) -> None:
        self.stdout.write(json.dumps(value, ensure_ascii=False, default=str))
