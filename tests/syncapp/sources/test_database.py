"""Databases as sources: PostgreSQL, MariaDB and SQLite tables and queries read in keyset pages through
read-only connections, synced into the register through conditions, contracts and runs like an API."""
from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from contracts.models import RunPage, SynchronizationContract
from syncapp import runs as sync_runs
from syncapp.configuration import CREDENTIALS_KEPT, ConfigurationInvalid, bundle_export, bundle_import
from syncapp.errors import SourceError, TransientSourceError
from syncapp.models import Object, Source, Synchronization
from syncapp.sources import reader_for
from syncapp.sources.database import (
    database_connect,
    database_location_problems,
    json_safe,
    key_decode,
    key_encode,
    query_problems,
)
from tests.databases import database_sync, maria, maria_items, mariadb_table, pg, pg_items, source_database
from tests.helpers import credentials_set, run

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "warehouse-database.json"
ROWS = 3000
PASSWORD = "hunter2-not-shown"


@pytest.fixture
def pg_database() -> Iterator[str]:
    with source_database() as location:
        yield location


@pytest.fixture
def maria_table() -> Iterator[str]:
    with mariadb_table() as name:
        yield name


def counts(run) -> tuple:
    return (run.status, run.found, run.created, run.updated, run.deleted, run.unchanged)


def register_rows() -> dict[str, dict]:
    """Return the register's objects by their origin id."""
    targets = dict(SynchronizationContract.objects.values_list("target_id", "origin_id"))
    return {targets[str(obj.uuid)]: obj.data for obj in Object.objects.all()}


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """The SQL every SQLAlchemy engine sends meanwhile, as the driver gets it."""
    sent: list[str] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", keep)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", keep)


def page_reads(sent: list[str], *, name: str) -> list[str]:
    """Return the statements that read pages (not the check of a query when saved, with LIMIT :none, 0, nor
    the measure of a page's bytes before it is read, FROM (…) AS sync_page)."""
    return [sql for sql in sent if name in sql and "LIMIT" in sql and "LIMIT 0" not in sql and "(none)" not in sql
            and "sync_page" not in sql]


# ---------------------------------------------------------------------------------------------
# Tables synced, changed, synced again


def test_a_postgresql_table_syncs_and_a_second_run_applies_exactly_the_changed_added_and_deleted_rows(
    pg_database, statements
):
    pg_items(pg_database, count=ROWS)
    sync = database_sync(pg_database, table="items")

    first = run(sync)

    assert counts(first) == ("succeeded", ROWS, ROWS, 0, 0, 0), first.error_message
    rows = register_rows()
    assert len(rows) == ROWS
    assert rows["7"] == {
        "id": 7, "name": "item 7", "price": "8.75", "born": "2020-01-08", "seen": "2024-05-06T07:15:09+00:00",
        "tag": str(uuid.UUID("8f14e45f-ceea-167a-5a36-dedd4bea2543")), "blob": "AAc=",
    }

    with pg(pg_database) as connection:
        connection.execute("UPDATE items SET name = name || ' (changed)' WHERE id IN (5, 600, 1500, 2999)")
        connection.execute("DELETE FROM items WHERE id IN (1, 2, 1000)")
        connection.execute("INSERT INTO items (id, name) VALUES (3001, 'new 1'), (3002, 'new 2')")
    second = run(sync)

    assert counts(second) == ("succeeded", ROWS - 1, 2, 4, 3, ROWS - 3 - 4), second.error_message
    rows = register_rows()
    assert len(rows) == ROWS - 1
    assert rows["600"]["name"] == "item 600 (changed)"
    assert rows["3002"] == {"id": 3002, "name": "new 2", "price": None, "born": None, "seen": None, "tag": None,
                            "blob": None}
    assert not {"1", "2", "1000"} & set(rows)
    # Keyset pages: each page starts after the last key of the one before, never at an offset.
    requests = list(RunPage.objects.filter(run=second).order_by("number").values_list("request", flat=True))
    assert [request["after"] and request["after"]["value"] for request in requests] == [
        None, 502, 1003, 1503, 2003, 2503,
    ]
    reads = page_reads(statements, name="items")
    assert len(reads) >= 12
    assert not [statement for statement in reads if "OFFSET" in statement.upper()]
    assert all("ORDER BY id" in statement for statement in reads)
    assert len([statement for statement in reads if "WHERE id > " in statement]) == len(reads) - 2  # 2 first pages


def test_a_mariadb_table_syncs_and_a_second_run_applies_exactly_the_changed_added_and_deleted_rows(
    maria_table, statements
):
    maria_items(maria_table, count=ROWS)
    sync = database_sync("mysql://root@127.0.0.1:3306/test", table=maria_table, decimals="number")

    first = run(sync)

    assert counts(first) == ("succeeded", ROWS, ROWS, 0, 0, 0), first.error_message
    assert register_rows()["10"] == {
        "id": 10, "name": "item 10", "price": 12.5, "born": "2020-01-11", "seen": "2024-05-06T07:18:09",
    }

    with maria() as cursor:
        cursor.execute(f"UPDATE `{maria_table}` SET price = 0.5 WHERE id IN (10, 2500)")
        cursor.execute(f"DELETE FROM `{maria_table}` WHERE id BETWEEN 100 AND 104")
        cursor.execute(f"INSERT INTO `{maria_table}` (id, name) VALUES (5000, 'new')")
    second = run(sync)

    assert counts(second) == ("succeeded", ROWS - 4, 1, 2, 5, ROWS - 5 - 2), second.error_message
    rows = register_rows()
    assert (rows["10"]["price"], rows["2500"]["price"], rows["5000"]["name"]) == (0.5, 0.5, "new")
    assert not {str(n) for n in range(100, 105)} & set(rows)
    reads = page_reads(statements, name=maria_table)
    assert len(reads) >= 12
    assert not [statement for statement in reads if "OFFSET" in statement.upper()]
    assert all("ORDER BY id" in statement for statement in reads)
    assert len([statement for statement in reads if "WHERE id > " in statement]) == len(reads) - 2  # 2 first pages


# ---------------------------------------------------------------------------------------------
# Queries


def test_a_query_source_reads_its_result_in_keyset_pages_with_the_origin_id_from_its_id_column(
    pg_database, statements
):
    pg_items(pg_database, count=50)
    sync = database_sync(
        pg_database, pageSize=7, keyColumn="id", idColumn="code",
        query="SELECT id, 'IT-' || id AS code, upper(name) AS label, price::float AS price FROM items "
              "WHERE price >= 10 AND name LIKE 'item %'; ",
    )

    first = run(sync)

    assert counts(first) == ("succeeded", 43, 43, 0, 0, 0), first.error_message  # ids 8 to 50
    assert first.pages_fetched == 7
    rows = register_rows()
    assert rows["IT-8"] == {"id": 8, "code": "IT-8", "label": "ITEM 8", "price": 10.0}
    reads = page_reads(statements, name="'IT-' || id")
    assert len(reads) == 7
    assert all(") AS sync_source WHERE" in statement and "ORDER BY id LIMIT" in statement for statement in reads)
    assert not [statement for statement in reads if "OFFSET" in statement.upper()]


def test_a_mariadb_query_with_quotes_percent_signs_and_colons_reads_in_keyset_pages(maria_table):
    maria_items(maria_table, count=40)
    sync = database_sync(
        "mariadb://root@127.0.0.1:3306/test", pageSize=6, keyColumn="label",
        query=f"SELECT CONCAT('it''s: ', name) AS label, price FROM `{maria_table}` "
              "WHERE name LIKE 'item 1%' -- the tens and one\n  AND id > 0 -- a comment at the end",
    )

    first = run(sync)

    assert counts(first) == ("succeeded", 11, 11, 0, 0, 0), first.error_message  # 1 and 10 to 19
    assert first.pages_fetched == 2
    assert register_rows()["it's: item 12"] == {"label": "it's: item 12", "price": "15.00"}


def test_columns_limit_what_a_row_holds_and_decimals_may_be_numbers(pg_database):
    pg_items(pg_database, count=3)
    sync = database_sync(pg_database, table="items", columns=["name", "price"], decimals="number")

    assert counts(run(sync)) == ("succeeded", 3, 3, 0, 0, 0)
    assert register_rows()["2"] == {"id": 2, "name": "item 2", "price": 2.5}


# ---------------------------------------------------------------------------------------------
# Read-only


def test_a_write_through_a_source_connection_fails_on_every_kind_of_database(pg_database, maria_table, tmp_path,
                                                                             settings):
    pg_items(pg_database, count=1)
    maria_items(maria_table, count=1)
    sqlite_file = tmp_path / "shop.db"
    with sqlite3.connect(sqlite_file) as connection:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    settings.SYNC_DATABASE_SOURCE_SQLITE_DIRS = (str(tmp_path),)
    sources = [
        (pg_database, "INSERT INTO items (id, name) VALUES (99, 'written')", "read-only transaction"),
        ("mariadb://root@127.0.0.1:3306/test", f"INSERT INTO `{maria_table}` (id, name) VALUES (99, 'written')",
         "READ ONLY transaction"),
        (f"sqlite:///{sqlite_file}", "INSERT INTO items (id, name) VALUES (99, 'written')", "readonly database"),
    ]
    for location, statement, message in sources:
        source = Source(reference="warehouse", type="database", location=location)
        with pytest.raises(SourceError, match=message), database_connect(source=source) as connection:
            connection.execute(text(statement))
            connection.commit()

    with pg(pg_database) as connection:
        assert connection.execute("SELECT count(*) FROM items").fetchone() == (1,)
    with maria() as cursor:
        cursor.execute(f"SELECT count(*) FROM `{maria_table}`")
        assert cursor.fetchone() == (1,)
    with sqlite3.connect(sqlite_file) as connection:
        assert connection.execute("SELECT count(*) FROM items").fetchone() == (0,)


def test_a_query_that_writes_through_a_function_fails_its_run_in_the_read_only_transaction(pg_database):
    pg_items(pg_database, count=2)
    with pg(pg_database) as connection:
        connection.execute("CREATE SEQUENCE counter")
    sync = database_sync(pg_database, query="SELECT id, nextval('counter') AS n FROM items", keyColumn="id")

    failed = run(sync)

    assert failed.status == "failed"
    assert "cannot execute nextval() in a read-only transaction" in failed.error_message
    with pg(pg_database) as connection:
        assert connection.execute("SELECT last_value, is_called FROM counter").fetchone() == (1, False)


# ---------------------------------------------------------------------------------------------
# Checked when saved


@pytest.mark.parametrize(("config", "message"), [
    ({"table": "missing"}, r"synchronizations\[0\]\.sourceConfig\.table: no table or view 'missing'"),
    ({"table": "items", "keyColumn": "nope"}, r"sourceConfig\.keyColumn: table 'items' has no column 'nope'"),
    ({"table": "items", "keyColumn": "name"}, r"sourceConfig\.keyColumn: column 'name' is not unique"),
    ({"table": "items", "idColumn": "code"}, r"sourceConfig\.idColumn: table 'items' has no column 'code'"),
    ({"table": "items", "columns": ["name", "colour"]}, r"sourceConfig\.columns: table 'items' has no column 'colour'"),
    ({"query": "SELECT id, nam FROM items", "keyColumn": "id"},
     r"sourceConfig\.query: the database refused it: column \"nam\" does not exist"),
    ({"query": "SELECT name FROM items", "keyColumn": "id"}, r"sourceConfig\.keyColumn: the query's result has no "
                                                             r"column 'id'"),
    ({"query": "SELECT id FROM items"}, r"sourceConfig\.keyColumn: a query needs one"),
    ({"query": "DELETE FROM items", "keyColumn": "id"}, r"sourceConfig\.query: must be a single SELECT"),
    ({"query": "SELECT id FROM items; DROP TABLE items", "keyColumn": "id"},
     r"sourceConfig\.query: must be a single statement"),
    ({"query": "WITH gone AS (DELETE FROM items RETURNING id) SELECT id FROM gone", "keyColumn": "id"},
     r"sourceConfig\.query: must only read: DELETE"),
    ({"query": "SELECT id INTO copy FROM items", "keyColumn": "id"}, r"sourceConfig\.query: must only read: INTO"),
    ({"query": "SELECT id, 'a\\' AS x FROM items; DELETE FROM items; -- '", "keyColumn": "id"},
     r"sourceConfig\.query: must be a single statement"),  # a backslash hides nothing in any reading of quotes
    ({"query": "SELECT id FROM items FOR UPDATE", "keyColumn": "id"}, r"sourceConfig\.query: must not lock rows"),
    # A $ inside a name (PostgreSQL allows it) starts no dollar quote that could hide a second statement
    ({"query": "SELECT id AS a$b$ FROM items; DELETE FROM items; SELECT 1 AS c$b$", "keyColumn": "id"},
     r"sourceConfig\.query: must be a single statement"),
    ({"table": "items", "query": "SELECT id FROM items", "keyColumn": "id"}, r"sourceConfig: name either a table"),
    ({}, r"sourceConfig: name either a table"),
    ({"table": "items", "pageSize": 0}, r"sourceConfig\.pageSize: must be a whole number"),
    ({"table": "items", "decimals": "float"}, r"sourceConfig\.decimals: must be one of string, number"),
])
def test_a_bad_table_column_or_query_is_refused_at_import_naming_the_field(pg_database, config, message):
    pg_items(pg_database, count=2)

    with pytest.raises(ConfigurationInvalid, match=message):
        database_sync(pg_database, **config)

    assert not Synchronization.objects.exists()
    assert not Source.objects.exists()


def test_the_api_refuses_a_synchronization_of_a_missing_table_at_its_field(api, pg_database):
    pg_items(pg_database, count=2)
    sync = database_sync(pg_database, table="items")

    response = api.patch(f"/api/synchronizations/{sync.pk}/", {"sourceConfig": {"table": "itemz"}}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["sourceConfig"] == ["sourceConfig.table: no table or view 'itemz' in the database"]
    sync.refresh_from_db()
    assert sync.source_config["table"] == "items"


def test_a_synchronization_can_be_changed_while_its_database_is_down_unless_what_it_reads_changes(api, pg_database):
    pg_items(pg_database, count=2)
    sync = database_sync(pg_database, table="items")
    Source.objects.filter(pk=sync.source_id).update(location="postgresql://root@127.0.0.1:1/down")
    url = f"/api/synchronizations/{sync.pk}/"

    assert api.patch(url, {"name": "Disabled for now", "isEnabled": False}, format="json").status_code == 200
    bundle_import(bundle_export())  # the same bundle again
    refused = api.patch(url, {"sourceConfig": {"table": "items", "pageSize": 10}}, format="json")

    assert refused.status_code == 400
    assert refused.json()["source"][0].startswith(
        "source 'warehouse': cannot connect to postgresql://root@127.0.0.1:1/down: connection failed"
    )
    changed = bundle_export()
    changed["synchronizations"][0]["sourceConfig"]["pageSize"] = 10
    with pytest.raises(ConfigurationInvalid, match=r"synchronizations\[0\]\.sourceId: source 'warehouse': cannot "
                                                   r"connect to postgresql://root@127\.0\.0\.1:1/down"):
        bundle_import(changed)


def test_the_admin_refuses_a_query_of_a_missing_column_at_its_field(admin_client, pg_database):
    pg_items(pg_database, count=2)
    sync = database_sync(pg_database, table="items")
    form = {
        "reference": "items", "name": "Items", "description": "", "source_type": "database",
        "source": sync.source_id, "source_schema": "", "source_hash_mapping": "", "source_target_mapping": "",
        "source_config": json.dumps({"query": "SELECT id FROM items", "keyColumn": "id", "idColumn": "sku"}),
        "conditions": "{}", "target_type": "register/schema", "target_schema": sync.target_schema_id,
        "target_source": "", "target_config": "{}", "target_source_mapping": "", "schedule": "", "is_enabled": "on",
    }

    response = admin_client.post(f"/admin/syncapp/synchronization/{sync.pk}/change/", form)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["source_config"] == ["sourceConfig.idColumn: the query's result has no column 'sku' (it has id)"]


@pytest.mark.parametrize(("query", "refused"), [
    ("SELECT pid AS id, pg_terminate_backend(pid) FROM pg_stat_activity", "pg_terminate_backend"),
    ("SELECT pid AS id, pg_catalog.pg_cancel_backend(pid) FROM pg_stat_activity", "pg_cancel_backend"),
    ("SELECT 1 AS id, pg_reload_conf()", "pg_reload_conf"),
    ("SELECT 1 AS id, set_config('statement_timeout', '0', false)", "set_config"),
    ("SELECT 1 AS id, lo_import('/etc/passwd')", "lo_import"),
    ("SELECT 1 AS id, pg_read_file('/etc/passwd')", "pg_read_file"),
    ("SELECT 1 AS id, pg_read_binary_file('/etc/passwd')", "pg_read_binary_file"),
    ("SELECT pg_ls_dir AS id FROM pg_ls_dir('.')", "pg_ls_dir"),
    ("SELECT * FROM dblink('host=10.0.0.1', 'SELECT 1') AS t(id int)", "dblink"),
    ("SELECT 1 AS id, pg_sleep(30)", "pg_sleep"),
    ("SELECT 1 AS id, \"pg_sleep\" /* quoted, a comment before ( */ (30)", "pg_sleep"),
    ("SELECT 1 AS id, U&\"pg\\005fsleep\"(30)", 'u&"pg\\005fsleep"'),  # a name spelled with escapes
    ("SELECT 1 AS id, query_to_xml('SELECT pg_terminate_backend(1)', true, true, '')", "query_to_xml"),
    ("SELECT id, LOAD_FILE('/etc/passwd') AS f FROM items", "load_file"),
    ("SELECT id, SLEEP(30) AS s FROM items", "sleep"),
    ("SELECT id, `sleep`(30) AS s FROM items", "sleep"),
    ("SELECT id, BENCHMARK(100000000, MD5('a')) AS b FROM items", "benchmark"),
    # MariaDB runs what is inside /*! … */ and reads --x as minus minus x
    ("SELECT id /*!, SLEEP(30) */ FROM items", "sleep"),
    ("SELECT id--sleep(30)\nFROM items", "sleep"),
])
def test_the_query_checker_refuses_functions_that_administer_read_files_reach_out_or_stall(query, refused):
    assert query_problems(query) == [
        f"must not call {refused}: a read may not administer the server, reach its files or other servers, or stall it"
    ]


@pytest.mark.parametrize("query", [
    "SELECT count(*) AS n, coalesce(name, 'x') AS id, pg_typeof(price) AS t FROM items GROUP BY name, price",
    "WITH named(id) AS (SELECT 1) SELECT id, 'sleep(1)' AS quoted, sleep AS column_named_sleep FROM named",
    "SELECT id -- a comment mentioning pg_sleep(1)\nFROM items",
    "SELECT 1 AS é",
])
def test_the_query_checker_lets_ordinary_reads_through(query):
    assert query_problems(query) == []


def test_mariadb_lock_in_share_mode_is_refused_as_a_lock():
    assert query_problems("SELECT id FROM items LOCK IN SHARE MODE") == [
        "must not lock rows (FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE)"
    ]


def test_a_query_that_ends_other_sessions_is_refused_at_import_and_nothing_is_saved(pg_database):
    with pytest.raises(ConfigurationInvalid, match=r"sourceConfig\.query: must not call pg_terminate_backend"):
        database_sync(pg_database, query="SELECT pid AS id, pg_terminate_backend(pid) FROM pg_stat_activity",
                      keyColumn="id")

    assert not Source.objects.exists()


def test_the_api_answers_a_query_naming_a_column_with_a_non_ascii_letter_not_a_server_error(api, pg_database):
    pg_items(pg_database, count=2)
    sync = database_sync(pg_database, table="items")

    response = api.patch(f"/api/synchronizations/{sync.pk}/",
                         {"sourceConfig": {"query": "SELECT id, 1 AS é FROM items", "keyColumn": "id"}}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["sourceConfig"]["query"] == "SELECT id, 1 AS é FROM items"


def test_a_database_source_is_refused_with_a_password_in_its_location_or_at_a_loopback_address(settings):
    with pytest.raises(ConfigurationInvalid) as refused:
        bundle_import({"sources": [{"reference": "db", "type": "database",
                                    "location": f"postgresql://root:{PASSWORD}@203.0.113.9/shop?host=127.0.0.1"}]})
    assert "sources[0].location: the password belongs in the source's credentials" in str(refused.value)
    assert "sources[0].location: the URL option(s) host are not allowed here" in str(refused.value)
    assert PASSWORD not in str(refused.value)

    settings.SYNC_ALLOWED_NETWORKS = ()
    with pytest.raises(ConfigurationInvalid, match=r"sources\[0\]\.location: 127\.0\.0\.1 is in a loopback"):
        bundle_import({"sources": [{"reference": "db", "type": "database",
                                    "location": "mysql://root@127.0.0.1:3306/test"}]})


# ---------------------------------------------------------------------------------------------
# The service's own database and server


def service_location(*, host: str = "127.0.0.1", port: str = ":5432", user: str = "root") -> str:
    """Return a location of the service's own (test) database, its host and port written as asked."""
    return f"postgresql://{user}@{host}{port}/{connection.settings_dict['NAME']}"


@pytest.mark.parametrize(("host", "port"), [
    ("127.0.0.1", ":5432"), ("localhost", ""), ("[::1]", ":5432"), ("localhost", ":5432"), ("127.0.0.1", ""),
    ("0.0.0.0", ""),  # connecting to 0.0.0.0 reaches this machine
])
def test_a_source_of_the_services_own_database_is_refused_however_its_host_is_written(host, port, settings):
    settings.SYNC_DATABASE_SOURCE_ALLOW_SERVICE_SERVER = True  # allows the server, never the service's database
    # (an operator's allow-list could let 0.0.0.0 through: the rule holds without the egress policy)
    settings.SYNC_ALLOWED_NETWORKS = (*settings.SYNC_ALLOWED_NETWORKS, ipaddress.ip_network("0.0.0.0/32"))

    with pytest.raises(ConfigurationInvalid) as refused:
        database_sync(service_location(host=host, port=port), query="SELECT key AS id, user_id FROM authtoken_token",
                      keyColumn="id")

    assert "sources[0].location: this is the service's own database, which a source may not read" in str(
        refused.value)
    assert not Source.objects.exists()


def test_a_source_saved_anyway_at_the_services_own_database_is_refused_when_connecting():
    get_user_model().objects.create(username="boss", is_superuser=True)
    pg_source = Source.objects.create(reference="self", name="Self", type="database",
                                      location=service_location(host="localhost", port=""))
    sync = Synchronization.objects.create(
        reference="tokens", source=pg_source, source_type="database", target_type="register/schema",
        source_config={"query": "SELECT id, username FROM auth_user", "keyColumn": "id"},
    )

    with pytest.raises(SourceError, match="this is the service's own database, which a source may not read"):
        reader_for(sync).fetch(request={"after": None})


def test_a_source_on_the_services_server_whose_role_can_read_the_services_tables_is_refused(pg_database, settings):
    # Given a database of its own on the service's server, read as the superuser (who can read every table)
    as_superuser = pg_database.replace(pg_database.split("//")[1].split("@")[0], "root", 1)
    pg_items(pg_database, count=2)

    with pytest.raises(ConfigurationInvalid, match=r"sources\[0\]\.location: role 'root' can read the service's own "
                                                   r"tables on this server"):
        database_sync(as_superuser, table="items")
    with pytest.raises(ConfigurationInvalid, match=r"role 'root' can read the service's own tables"):
        database_sync(pg_database, credentials={"username": "root"}, table="items")
    assert not Source.objects.exists()

    # The database's own role can read nothing of the service's: that source is kept, and runs
    assert counts(run(database_sync(pg_database, table="items"))) == ("succeeded", 2, 2, 0, 0, 0)


def test_a_sqlite_source_of_the_embedded_services_own_file_is_refused_even_through_a_link(tmp_path, settings,
                                                                                        monkeypatch):
    # Given the embedded service keeping its data in a SQLite file of an allowed directory
    own = tmp_path / "data" / "sync.sqlite3"
    own.parent.mkdir()
    sqlite3.connect(own).close()
    (tmp_path / "link.sqlite3").symlink_to(own)
    settings.SYNC_DATABASE_SOURCE_SQLITE_DIRS = (str(tmp_path),)
    monkeypatch.setattr(django_settings, "DATABASES", {"default": {"ENGINE": "django.db.backends.sqlite3",
                                                                   "NAME": str(own)}})

    for location in (f"sqlite:///{own}", f"sqlite:///{tmp_path / 'link.sqlite3'}"):
        assert database_location_problems(location) == [
            "location: this is the service's own database, which a source may not read"
        ]


def test_an_operator_may_allow_sources_on_the_services_server_with_such_a_role(pg_database, settings):
    settings.SYNC_DATABASE_SOURCE_ALLOW_SERVICE_SERVER = True
    as_superuser = pg_database.replace(pg_database.split("//")[1].split("@")[0], "root", 1)
    pg_items(pg_database, count=2)

    assert counts(run(database_sync(as_superuser, table="items"))) == ("succeeded", 2, 2, 0, 0, 0)


def test_the_password_comes_from_the_credentials_and_no_error_shows_it(maria_table):
    maria_items(maria_table, count=1)

    with pytest.raises(ConfigurationInvalid) as refused:
        database_sync("mysql://root@127.0.0.1:3306/test", credentials={"password": PASSWORD}, table=maria_table)

    assert "synchronizations[0].sourceId: source 'warehouse': cannot connect to mysql://root@127.0.0.1:3306/test: " \
           "(1045, \"Access denied for user 'root'@" in str(refused.value)
    assert PASSWORD not in str(refused.value)


# ---------------------------------------------------------------------------------------------
# Errors at read time


def test_a_refused_connection_is_transient_and_tried_again_a_missing_table_is_not(pg_database, settings):
    settings.SYNC_HTTP_MAX_ATTEMPTS, settings.SYNC_HTTP_BACKOFF_SECONDS = 2, 0
    pg_items(pg_database, count=2)
    sync = database_sync(pg_database, table="items", keyColumn="id")
    reader = reader_for(sync)
    waits = []

    Source.objects.filter(pk=sync.source_id).update(location="postgresql://root@127.0.0.1:1/shop")
    sync.source.refresh_from_db()
    with pytest.raises(TransientSourceError) as refused:
        reader.fetch(request=reader.first_request(variables={}), on_wait=waits.append)
    assert "synchronization 'items', sourceConfig.table 'items': cannot connect to postgresql://root@127.0.0.1:1/shop"\
        in str(refused.value)
    assert "(after 2 attempts)" in str(refused.value)
    assert [wait.retry for wait in waits] == [True]

    Source.objects.filter(pk=sync.source_id).update(location=pg_database)
    sync.source.refresh_from_db()
    with pg(pg_database) as connection:
        connection.execute("DROP TABLE items")
    with pytest.raises(SourceError) as missing:
        reader.fetch(request=reader.first_request(variables={}))
    assert not isinstance(missing.value, TransientSourceError)
    assert 'relation "items" does not exist' in str(missing.value)


def test_a_run_fails_its_page_naming_the_synchronization_when_the_table_went_away(pg_database):
    pg_items(pg_database, count=2)
    sync = database_sync(pg_database, table="items", keyColumn="id")
    with pg(pg_database) as connection:
        connection.execute("DROP TABLE items")

    failed = run(sync)

    assert failed.status == "failed"
    assert "synchronization 'items', sourceConfig.table 'items'" in failed.error_message
    assert 'relation "items" does not exist' in failed.error_message


def test_a_query_key_that_is_not_unique_fails_the_page_rather_than_skip_rows(pg_database):
    pg_items(pg_database, count=10)
    sync = database_sync(pg_database, pageSize=3, keyColumn="bucket", query="SELECT id, id / 4 AS bucket FROM items")

    failed = run(sync)

    assert failed.status == "failed"
    assert "keyColumn 'bucket' is not unique" in failed.error_message


def test_the_egress_policy_is_checked_again_when_connecting(pg_database, settings):
    pg_items(pg_database, count=2)
    sync = database_sync(pg_database, table="items", keyColumn="id")
    settings.SYNC_ALLOWED_NETWORKS = (ipaddress.ip_network("192.0.2.0/24"),)

    with pytest.raises(SourceError, match=r"127\.0\.0\.1 is not in SYNC_ALLOWED_NETWORKS") as refused:
        reader_for(sync).fetch(request={"after": None})
    assert not isinstance(refused.value, TransientSourceError)


def test_a_statement_past_the_sources_timeout_is_cancelled_and_counts_as_transient(pg_database, settings):
    settings.SYNC_HTTP_MAX_ATTEMPTS, settings.SYNC_HTTP_BACKOFF_SECONDS = 1, 0
    pg_items(pg_database, count=2)
    # (pg_sleep is refused by the query checker: a count of 10^9 numbers is as slow)
    slow = "SELECT id, (SELECT count(*) FROM generate_series(1, 1000000000)) AS counted FROM items"
    sync = database_sync(pg_database, query=slow, keyColumn="id")
    Source.objects.filter(pk=sync.source_id).update(configuration={"timeout": 0.2})
    sync.refresh_from_db()

    with pytest.raises(TransientSourceError, match="canceling statement due to statement timeout"):
        reader_for(sync).fetch(request={"after": None})


def test_the_api_refuses_a_database_source_with_a_password_in_its_location_without_echoing_it(api):
    response = api.post("/api/sources/", {
        "reference": "db", "name": "DB", "type": "database",
        "location": f"mysql://root:{PASSWORD}@127.0.0.1:3306/test",
    }, format="json")

    assert response.status_code == 400
    assert "the password belongs in the source's credentials" in response.json()["location"][0]
    assert PASSWORD not in response.content.decode()
    assert not Source.objects.exists()


def test_the_admin_refuses_a_sqlite_source_outside_the_allowed_directories_at_its_location(admin_client):
    response = admin_client.post("/admin/syncapp/source/add/", {
        "reference": "db", "name": "DB", "description": "", "type": "database", "location": "sqlite:////etc/shop.db",
        "configuration": "{}", "is_enabled": "on", "new_credentials": "",
    })

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["location"] == [
        "SQLite files may be read only from the directories of SYNC_DATABASE_SOURCE_SQLITE_DIRS, set to none"
    ]


def test_the_admin_list_of_sources_masks_a_password_stored_in_a_location_anyway(admin_client):
    Source.objects.create(reference="legacy", name="Legacy", type="database",
                          location=f"postgresql://reader:{PASSWORD}@203.0.113.9:5432/shop")

    page = admin_client.get("/admin/syncapp/source/").content.decode()

    assert "postgresql://reader:***@203.0.113.9:5432/shop" in page
    assert PASSWORD not in page


def test_the_example_bundle_syncs_a_warehouse_table_and_a_query(pg_database):
    with pg(pg_database) as connection:
        connection.execute(
            "CREATE TABLE products (id bigint PRIMARY KEY, sku text UNIQUE NOT NULL, name text NOT NULL, "
            "price numeric(8, 2), stock integer NOT NULL, updated_at timestamp, secret text)"
        )
        connection.execute("INSERT INTO products SELECT g, 'SKU-' || g, 'product ' || g, g + 0.99, g % 3, "
                           "timestamp '2025-01-01 12:00' + g * interval '1 hour', 'x' FROM generate_series(1, 1200) g")
        connection.execute("UPDATE products SET name = '' WHERE id = 5")
        connection.execute("CREATE TABLE customers (id integer PRIMARY KEY, email text NOT NULL)")
        connection.execute("CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, total numeric(8, 2))")
        connection.execute("INSERT INTO customers VALUES (1, 'a@example.org'), (2, 'b@example.org')")
        connection.execute("INSERT INTO orders VALUES (1, 1, 10.50), (2, 1, 4.50)")
    bundle = json.loads(EXAMPLE.read_text())
    bundle["sources"][0]["location"] = pg_database  # the machine's PostgreSQL trusts root, password or not

    bundle_import(bundle)
    products = run(Synchronization.objects.get(reference="products"))
    customers = run(Synchronization.objects.get(reference="customer-totals"))

    assert (products.status, products.found, products.filtered, products.created, products.pages_fetched) == (
        "succeeded", 1200, 1, 1199, 2), products.error_message
    product = Object.objects.get(schema__reference="product", data__sku="SKU-7")
    assert product.data == {"sku": "SKU-7", "name": "product 7", "price": "7.99", "stock": 1,
                            "updated": "2025-01-01T19:00:00"}
    assert (customers.status, customers.created) == ("succeeded", 2), customers.error_message
    assert sorted((obj.data["email"], obj.data["orders"], obj.data["spent"])
                  for obj in Object.objects.filter(schema__reference="customer")) == [
        ("a@example.org", 2, 15), ("b@example.org", 0, 0),
    ]


def test_an_exported_database_synchronization_imports_again_keeping_the_stored_password(maria_table):
    maria_items(maria_table, count=3)
    sync = database_sync("mysql://root@127.0.0.1:3306/test", table=maria_table)
    credentials_set(Source.objects.get(pk=sync.source_id), {"password": ""})  # root has none here

    exported = bundle_export()
    assert exported["sources"][0]["credentials"] == CREDENTIALS_KEPT
    assert exported["synchronizations"][0]["sourceId"] == "warehouse"
    result = bundle_import(exported)

    assert result.created == {"sources": 0, "registers": 0, "mappings": 0, "rules": 0, "synchronizations": 0}
    assert Source.objects.get(reference="warehouse").credentials == {"password": ""}
    assert counts(run(Synchronization.objects.get(reference="items"))) == ("succeeded", 3, 3, 0, 0, 0)


def test_a_test_sync_shows_what_the_first_page_would_do_and_writes_nothing(pg_database):
    pg_items(pg_database, count=30)
    sync = database_sync(pg_database, table="items", pageSize=10)

    tried = sync_runs.run_test(synchronization=sync)

    assert (tried.status, tried.found, tried.created) == ("succeeded", 10, 10), tried.error_message
    assert [entry["originId"] for entry in tried.report] == [str(n) for n in range(1, 11)]
    assert not Object.objects.exists()


# ---------------------------------------------------------------------------------------------
# SQLite


def test_a_sqlite_file_in_an_allowed_directory_syncs_and_one_elsewhere_is_refused(tmp_path, settings):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    with sqlite3.connect(allowed / "shop.db") as connection:
        connection.execute("CREATE TABLE items (sku TEXT PRIMARY KEY, name TEXT, price NUMERIC)")
        connection.executemany("INSERT INTO items VALUES (?, ?, ?)", [(f"S{n:03}", f"item {n}", n) for n in range(25)])
    (tmp_path / "elsewhere.db").write_bytes((allowed / "shop.db").read_bytes())
    settings.SYNC_DATABASE_SOURCE_SQLITE_DIRS = (str(allowed),)

    sync = database_sync(f"sqlite:///{allowed / 'shop.db'}", table="items", pageSize=10)
    first = run(sync)

    assert counts(first) == ("succeeded", 25, 25, 0, 0, 0), first.error_message
    assert first.pages_fetched == 3
    assert register_rows()["S007"] == {"sku": "S007", "name": "item 7", "price": 7}
    with pytest.raises(ConfigurationInvalid, match=r"sources\[0\]\.location: .*elsewhere\.db is not in a directory "
                                                   r"of SYNC_DATABASE_SOURCE_SQLITE_DIRS"):
        bundle_import({"sources": [{"reference": "other", "type": "database",
                                    "location": f"sqlite:///{tmp_path / 'elsewhere.db'}"}]})


def test_a_sqlite_integer_primary_key_is_a_key_column_that_is_never_null(tmp_path, settings):
    # Given a table whose key is SQLite's INTEGER PRIMARY KEY (the rowid: never NULL, though not declared so)
    with sqlite3.connect(tmp_path / "shop.db") as connection:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        connection.executemany("INSERT INTO items VALUES (?, ?)", [(n, f"item {n}") for n in range(1, 4)])
    settings.SYNC_DATABASE_SOURCE_SQLITE_DIRS = (str(tmp_path),)

    sync = database_sync(f"sqlite:///{tmp_path / 'shop.db'}", table="items", keyColumn="id")

    assert counts(run(sync)) == ("succeeded", 3, 3, 0, 0, 0)


def test_a_sqlite_text_primary_key_may_still_be_null_and_is_refused_as_a_named_key_column(tmp_path, settings):
    with sqlite3.connect(tmp_path / "shop.db") as connection:
        connection.execute("CREATE TABLE items (sku TEXT PRIMARY KEY, name TEXT)")
    settings.SYNC_DATABASE_SOURCE_SQLITE_DIRS = (str(tmp_path),)

    with pytest.raises(ConfigurationInvalid, match=r"sourceConfig\.keyColumn: column 'sku' may be NULL"):
        database_sync(f"sqlite:///{tmp_path / 'shop.db'}", table="items", keyColumn="sku")


def test_sqlite_files_are_refused_when_no_directory_is_allowed(tmp_path):
    with pytest.raises(ConfigurationInvalid, match="SYNC_DATABASE_SOURCE_SQLITE_DIRS, set to none"):
        bundle_import({"sources": [{"reference": "db", "type": "database", "location": f"sqlite:///{tmp_path}/a.db"}]})


# ---------------------------------------------------------------------------------------------
# Values as JSON


def test_database_values_become_json_and_keys_survive_a_page_request():
    moment = dt.datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=dt.UTC)
    values = {
        "when": moment, "day": dt.date(2024, 1, 2), "time": dt.time(3, 4), "amount": decimal.Decimal("12.50"),
        "blob": b"\x00\xff", "id": uuid.UUID(int=5), "took": dt.timedelta(days=1, hours=2, seconds=3.5),
        "tags": ["a", decimal.Decimal("1")], "doc": {"n": decimal.Decimal("2")}, "nan": float("nan"),
    }

    assert json_safe(values) == {
        "when": "2024-01-02T03:04:05.600000+00:00", "day": "2024-01-02", "time": "03:04:00", "amount": "12.50",
        "blob": "AP8=", "id": "00000000-0000-0000-0000-000000000005", "took": "P1DT2H3.5S", "tags": ["a", "1"],
        "doc": {"n": "2"}, "nan": "nan",
    }
    assert json_safe(decimal.Decimal("12.50"), decimals="number") == 12.5
    assert json_safe(decimal.Decimal("12"), decimals="number") == 12
    for key in (7, "S007", moment, dt.date(2024, 1, 2), decimal.Decimal("1.10"), uuid.UUID(int=5), b"\x01"):
        assert key_decode(json.loads(json.dumps(key_encode(key)))) == key


def test_an_incremental_run_reads_only_rows_at_or_after_the_stored_cursor_and_deletes_nothing(
    pg_database, statements
):
    # Given a table whose `seen` column moves when a row changes, synced once in full
    pg_items(pg_database, count=50)
    sync = database_sync(pg_database, table="items", pageSize=20, incremental={"cursorPath": "seen"})
    first = run(sync)
    sync.refresh_from_db()
    assert (first.status, first.mode, first.created) == ("succeeded", "full", 50), first.error_message
    assert sync.incremental_cursor == "2024-05-06T07:58:09+00:00"  # row 50's

    # When two rows change (and move their cursor on) and one is deleted
    with pg(pg_database) as connection:
        connection.execute("UPDATE items SET name = 'renamed', seen = timestamptz '2025-01-01 00:00:00+00' "
                           "WHERE id IN (3, 40)")
        connection.execute("DELETE FROM items WHERE id = 7")
    statements.clear()
    second = run(sync)

    # Then the second run asks for rows at or after the cursor: the two changed and row 50 at the boundary
    sync.refresh_from_db()
    assert (second.status, second.mode) == ("succeeded", "incremental"), second.error_message
    assert (second.found, second.updated, second.unchanged, second.deleted) == (3, 2, 1, 0)
    reads = page_reads(statements, name="items")
    assert reads and all("seen >=" in statement for statement in reads)
    # and the deleted row is still in the register (only a full run deletes), the cursor moved on
    assert "7" in register_rows() and register_rows()["40"]["name"] == "renamed"
    assert sync.incremental_cursor == "2025-01-01T00:00:00+00:00"


def test_an_incremental_run_on_mariadb_reads_only_rows_at_or_after_the_stored_cursor(maria_table):
    # Given a MariaDB table synced once in full, its cursor the greatest `seen` (a DATETIME without zone)
    maria_items(maria_table, count=30)
    sync = database_sync("mysql://root@127.0.0.1:3306/test", table=maria_table, incremental={"cursorPath": "seen"})
    assert run(sync).created == 30
    sync.refresh_from_db()
    assert sync.incremental_cursor == "2024-05-06T07:38:09"

    # When one row changes and moves its cursor on
    with maria() as cursor:
        cursor.execute(f"UPDATE `{maria_table}` SET name = 'renamed', seen = '2025-02-03 04:05:06' WHERE id = 12")
    second = run(sync)

    # Then only it and the boundary row are read
    assert (second.mode, second.found, second.updated, second.unchanged) == ("incremental", 2, 1, 1)


def test_an_incremental_sqlite_source_compares_its_cursor_with_dates_kept_as_text(tmp_path, settings):
    # Given a SQLite table whose `changed` dates are text, synced once in full
    settings.SYNC_DATABASE_SOURCE_SQLITE_DIRS = (str(tmp_path),)
    with sqlite3.connect(tmp_path / "shop.db") as connection:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, changed TEXT)")
        connection.executemany("INSERT INTO items VALUES (?, ?, ?)",
                               [(n, f"item {n}", f"2024-01-{n:02} 10:00:00") for n in range(1, 11)])
    sync = database_sync(f"sqlite:///{tmp_path / 'shop.db'}", table="items", incremental={"cursorPath": "changed"})
    assert run(sync).created == 10

    # When a row changes on the cursor's own day and time
    with sqlite3.connect(tmp_path / "shop.db") as connection:
        connection.execute("UPDATE items SET name = 'renamed', changed = '2024-01-10 10:00:00' WHERE id = 4")
    second = run(sync)

    # Then it is read with the boundary row (text compared with text, not with a datetime's rendering)
    assert (second.mode, second.found, second.updated, second.unchanged) == ("incremental", 2, 1, 1)
