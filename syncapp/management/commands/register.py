"""`manage.py register export REGISTER/SCHEMA`: the objects of a schema, one JSON document a line."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from syncapp.models import Object, Schema


class Command(BaseCommand):
    help = "Export the objects of the register."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        exporter = actions.add_parser("export", help="Print the objects of REGISTER/SCHEMA as JSON lines.")
        exporter.add_argument("path", metavar="REGISTER/SCHEMA")
        exporter.add_argument("--with-id", action="store_true", help="Add each object's uuid as `_id`.")

    def handle(self, *args, action: str, path: str, with_id: bool = False, **options) -> None:
        register, _, schema_reference = path.partition("/")
        schema = Schema.objects.filter(register__reference=register, reference=schema_reference).first()
        if schema is None:
            raise CommandError(f"no schema {path!r} (expected REGISTER/SCHEMA references)")
        objects = Object.objects.filter(schema=schema).order_by("created_at", "uuid")
        for uuid, data in objects.values_list("uuid", "data").iterator(chunk_size=2000):
            document = {"_id": str(uuid), **data} if with_id and isinstance(data, dict) else data
            self.stdout.write(json.dumps(document, ensure_ascii=False, sort_keys=True))
