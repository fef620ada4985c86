"""Update many rows with different values in one statement.

Django's bulk_update builds a CASE expression per field with a branch per row, which costs more to
build than the write itself (tens of milliseconds per hundred rows). Here the new values travel as
one VALUES list joined on the primary key (`UPDATE ... FROM (VALUES ...)`), so a chunk's contracts or
objects are one statement whatever their number.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson
from django.db import connection, models

# UPDATE ... FROM came with SQLite 3.33; older ones take Django's bulk_update.
_SQLITE_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33)
# SQLite's limit on the parameters of one statement (SQLITE_MAX_VARIABLE_NUMBER, 32766 since 3.32).
_SQLITE_MAX_PARAMETERS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999


def transactions_lock_database() -> bool:
    """Return whether a write transaction locks the whole database (SQLite), not only the rows it touches.

    There an outgoing call inside a transaction would keep every other writer (a `sync import`, the
    admin, another task) waiting for the other host, and failing "database is locked" after the busy
    timeout: such calls happen between short transactions instead.
    """
    return connection.vendor == "sqlite"


def _column_value(field: models.Field, value: Any) -> Any:
    if isinstance(field, models.JSONField):
        return None if value is None else orjson.dumps(value, default=str).decode()
    if isinstance(field, models.ForeignKey):
        field = field.target_field
    return field.get_db_prep_value(value, connection, prepared=False)


def rows_update(model: type[models.Model], objects: Sequence[models.Model], fields: Sequence[str]) -> None:
    """Write `fields` of each object to its row (matched by primary key) in one statement."""
    if not objects:
        return
    meta = model._meta
    concrete = [meta.get_field(name) for name in fields]
    pk = meta.pk
    vendor = connection.vendor
    if vendor == "postgresql":
        _update_postgresql(model, objects, concrete, pk)
    elif vendor == "sqlite" and _SQLITE_UPDATE_FROM:
        per_row = len(concrete) + 1
        step = max(1, _SQLITE_MAX_PARAMETERS // per_row)
        for start in range(0, len(objects), step):
            _update_sqlite(model, objects[start:start + step], concrete, pk)
    else:
        model.objects.bulk_update(objects, list(fields))


def _update_postgresql(model, objects, fields, pk) -> None:
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = [pk, *fields]
    casts = []
    for field in columns:
        target = field.target_field if isinstance(field, models.ForeignKey) else field
        casts.append("jsonb" if isinstance(field, models.JSONField) else target.db_type(connection))
    row = "(" + ", ".join(f"%s::{cast}" for cast in casts) + ")"
    params: list[Any] = []
    for obj in objects:
        params.extend(_column_value(field, getattr(obj, field.attname)) for field in columns)
    names = ", ".join(quote(field.column) for field in columns)
    assignments = ", ".join(f"{quote(field.column)} = v.{quote(field.column)}" for field in fields)
    sql = (
        f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join(row for _ in objects)}) AS v({names}) "
        f"WHERE {table}.{quote(pk.column)} = v.{quote(pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _update_sqlite(model, objects, fields, pk) -> None:
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = [pk, *fields]
    row = "(" + ", ".join("%s" for _ in columns) + ")"
    params: list[Any] = []
    for obj in objects:
        params.extend(_column_value(field, getattr(obj, field.attname)) for field in columns)
    assignments = ", ".join(f"{quote(field.column)} = v.column{index + 2}" for index, field in enumerate(fields))
    sql = (
        f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join(row for _ in objects)}) AS v "
        f"WHERE {table}.{quote(pk.column)} = v.column1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _copy_value(field: models.Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(field, models.JSONField):
        return orjson.dumps(value, default=str).decode()
    if isinstance(field, models.UUIDField):
        return str(value)
    return value


def rows_insert(model: type[models.Model], rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, each a dict of every column to write by field attname, in one statement.

    PostgreSQL takes them through COPY; other databases through bulk_create. Nothing fills in
    defaults here: the caller gives every value (uuid4 references, timestamps).
    """
    if not rows:
        return
    meta = model._meta
    fields = [meta.get_field(name) for name in rows[0]]
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**row) for row in rows])
        return
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    names = list(rows[0])
    # COPY goes to psycopg's own cursor; its errors are turned into Django's (IntegrityError, DataError ...).
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(
        f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row([_copy_value(field, row[name]) for field, name in zip(fields, names, strict=True)])


def value_batches(values: Sequence[Any], *, spare: int = 10) -> list[Sequence[Any]]:
    """Split values for `in_values` so each statement keeps within the database's parameter limit."""
    if connection.vendor == "postgresql" or len(values) <= _SQLITE_MAX_PARAMETERS - spare:
        return [values]
    step = _SQLITE_MAX_PARAMETERS - spare
    return [values[start:start + step] for start in range(0, len(values), step)]


def in_values(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """Return `column IN values` as SQL and parameters: one array parameter on PostgreSQL."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({', '.join('%s' for _ in values)})", list(values)
