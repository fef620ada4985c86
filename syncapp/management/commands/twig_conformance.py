"""Run Twig's own fixture tests against the Twig engine of mappings; print, write or check the README table."""
from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from syncapp.twig.conformance import KNOWN_FAILURES, conformance_table, run_fixtures

# The repository has shared/ beside it (/work/main and /work/shared), as the other conformance suites.
DEFAULT_FIXTURES = Path(settings.BASE_DIR).parent / "shared" / "conformance" / "twig" / "Fixtures"
README = Path(settings.BASE_DIR) / "README.md"
START = "<!-- twig-conformance:start (manage.py twig_conformance --write) -->"
END = "<!-- twig-conformance:end -->"


def readme_with_table(readme: str, table: str) -> str:
    """Return the README text with the table between its markers replaced."""
    pattern = re.compile(re.escape(START) + r"\n.*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise CommandError(f"the README has no {START} ... {END} section")
    return pattern.sub(lambda _match: f"{START}\n{table}{END}", readme)


class Command(BaseCommand):
    help = "Run Twig's fixture tests; print the pass share per feature (--write: into the README, --check: compare)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES, help="Twig's tests/Fixtures folder.")
        parser.add_argument("--write", action="store_true", help="Write the table into README.md.")
        parser.add_argument("--check", action="store_true", help="Fail when README.md's table is not the current one.")
        parser.add_argument("--failures", action="store_true", help="List each fixture that fails, and why.")

    def handle(self, *, fixtures: Path, write: bool, check: bool, failures: bool, **_options) -> None:
        if not fixtures.is_dir():
            raise CommandError(f"no Twig fixtures at {fixtures}")
        results = run_fixtures(fixtures)
        table = conformance_table(results)
        if failures:
            for result in results:
                if result.outcome == "fail":
                    known = KNOWN_FAILURES.get(result.path, "NOT A KNOWN FAILURE")
                    self.stdout.write(f"{result.path}: {known}: {result.detail}")
            return
        if check or write:
            readme = README.read_text(encoding="utf-8")
            updated = readme_with_table(readme, table)
            if check:
                if updated != readme:
                    raise CommandError(
                        "README.md's Twig table is out of date: run `manage.py twig_conformance --write`"
                    )
                self.stdout.write("README.md's Twig table is up to date")
                return
            README.write_text(updated, encoding="utf-8")
            self.stdout.write(f"wrote the Twig table into {README}")
            return
        self.stdout.write(table, ending="")
