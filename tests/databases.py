"""The machine's databases as sources in tests: a PostgreSQL database and a MariaDB table of a test's
own (dropped after it), writing connections to fill and change them, and a synchronization that reads them."""
from __future__ import annotations

import datetime as dt
import decimal
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pymysql

from syncapp.configuration import bundle_import
from syncapp.models import Synchronization

PG_SERVER = "postgresql://root@127.0.0.1:5432"
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}


@contextmanager
def source_database() -> Iterator[str]:
    """Make a PostgreSQL database of this test's own, owned by a role of its own, dropped after it; yield its
    location (as that role).

    The server is the service's own: a source connecting as the superuser could read the service's tables,
    which the service refuses; the database's own role cannot.
    """
    name = f"h_db_source_{os.getpid()}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{name}"')
        admin.execute(f'CREATE ROLE "{name}" LOGIN')
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
    try:
        yield f"postgresql://{name}@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')


@contextmanager
def pg(location: str) -> Iterator[psycopg.Connection]:
    """A writing connection of the test's own, to set up and change the source's rows."""
    with psycopg.connect(location, autocommit=True) as connection:
        yield connection


@contextmanager
def mariadb_table() -> Iterator[str]:
    """Yield the name of a MariaDB table unique to this test, in database `test`; drop it after."""
    name = f"h_db_source_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        with maria() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS `{name}`")


@contextmanager
def maria() -> Iterator[pymysql.cursors.Cursor]:
    """A writing cursor on MariaDB's database `test`."""
    connection = pymysql.connect(**MARIADB, autocommit=True)
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


def pg_items(location: str, *, count: int) -> None:
    """Make a PostgreSQL table `items` of `count` rows with a column of each common type."""
    with pg(location) as connection:
        connection.execute(
            "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, price numeric(10, 2), born date, "
            "seen timestamptz, tag uuid, blob bytea)"
        )
        connection.execute(
            "INSERT INTO items SELECT g, 'item ' || g, g * 1.25, date '2020-01-01' + g, "
            "timestamptz '2024-05-06 07:08:09+00' + g * interval '1 minute', "
            "md5(g::text)::uuid, decode(lpad(to_hex(g), 4, '0'), 'hex') FROM generate_series(1, %s) g",
            (count,),
        )


def maria_items(table: str, *, count: int) -> None:
    """Make a MariaDB table of `count` rows (ids 1 to count)."""
    with maria() as cursor:
        cursor.execute(
            f"CREATE TABLE `{table}` (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, price DECIMAL(10, 2), "
            "born DATE, seen DATETIME)"
        )
        cursor.executemany(
            f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s, %s)",
            [(n, f"item {n}", decimal.Decimal(n) * decimal.Decimal("1.25"), dt.date(2020, 1, 1) + dt.timedelta(n),
              dt.datetime(2024, 5, 6, 7, 8, 9) + dt.timedelta(minutes=n)) for n in range(1, count + 1)],
        )


def database_sync(location: str, *, credentials: dict | None = None, **source_config) -> Synchronization:
    """Import a database source and a synchronization from it into the register (checked as saved)."""
    source = {"reference": "warehouse", "type": "database", "location": location}
    if credentials is not None:
        source["credentials"] = credentials
    bundle_import({
        "sources": [source],
        "registers": [{"reference": "shop", "schemas": [{"reference": "item", "schema": {"type": "object"}}]}],
        "synchronizations": [{
            "reference": "items", "sourceType": "database", "sourceId": "warehouse",
            "sourceConfig": {"pageSize": 500, **source_config}, "targetType": "register/schema",
            "targetId": "shop/item",
        }],
    })
    return Synchronization.objects.get(reference="items")
