"""Write docs/configuration.md, the reference of every configuration key, from the declarations."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from syncapp.reference import configuration_reference

DEFAULT_PATH = Path(settings.BASE_DIR) / "docs" / "configuration.md"


class Command(BaseCommand):
    help = "Write the configuration reference (docs/configuration.md) from the declarations; --check compares."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="Where to write it.")
        parser.add_argument("--check", action="store_true", help="Fail when the file differs from the declarations.")

    def handle(self, *, output: Path, check: bool, **_options) -> None:
        text = configuration_reference()
        if check:
            if not output.exists() or output.read_text(encoding="utf-8") != text:
                raise CommandError(f"{output} is out of date: run `manage.py configuration_reference`")
            self.stdout.write(f"{output} is up to date")
            return
        output.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {output}")
