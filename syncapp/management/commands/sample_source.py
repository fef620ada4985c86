"""Serve the sample zoo API in the foreground: `python manage.py sample_source --port 8900`."""
from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from syncapp.sample_source import MAX_PAGE_SIZE, SampleSource, generate_animals, serve


class Command(BaseCommand):
    help = "Serve generated zoo animals as a paginated JSON API on 127.0.0.1 until Ctrl-C."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare the port, the number of animals, the page size and the seed."""
        parser.add_argument("--port", type=int, default=8900, help="port; 0 picks a free one (default: 8900)")
        parser.add_argument("--count", type=int, default=300, help="number of animals (default: 300)")
        parser.add_argument("--page-size", type=int, default=50, help="default per_page (default: 50)")
        parser.add_argument("--seed", type=int, default=7, help="seed of the generated records (default: 7)")

    def handle(self, *args: Any, port: int, count: int, page_size: int, seed: int, **options: Any) -> None:
        """Start the sample source, print its URL and serve until interrupted."""
        if count < 0:
            raise CommandError(f"--count must not be negative, got {count}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise CommandError(f"--page-size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        records = generate_animals(count=count, seed=seed)
        source = SampleSource(records=records, page_size=page_size, port=port)
        try:
            source.start()
        except OSError as error:
            raise CommandError(f"Cannot serve on 127.0.0.1:{port}: {error}") from None
        serve(source=source, out=self.stdout)
