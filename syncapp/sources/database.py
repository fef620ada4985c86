"""Databases as sources: a table or a read-only query of PostgreSQL, MariaDB/MySQL or SQLite, in keyset pages.

A Source of type `database` has a connection URL as its location (`postgresql://user@host:5432/db`,
`mysql://user@host:3306/db` or `mariadb://…`, `sqlite:////absolute/path.db`); the password is in the
source's credentials (`{"password": "…"}`, optionally with `username`), never in the URL, which the
admin, the API and exports show. A synchronization's sourceConfig names what is read:

    {"table": "customers", "schema": "sales", "keyColumn": "id", "idColumn": "id", "pageSize": 500,
     "columns": ["id", "name", "updated_at"], "decimals": "string"}
    {"query": "SELECT c.id, c.name, o.total FROM customers c JOIN orders o ON …", "keyColumn": "id"}

Pages are keyset pages on `keyColumn` (a unique, orderable column; default the table's primary key):
`WHERE key > last ORDER BY key LIMIT n`, a query wrapped as a subquery, never OFFSET, so a page costs
the same however far the run has come. Every connection is read-only (PostgreSQL
`default_transaction_read_only`, MySQL `SET SESSION TRANSACTION READ ONLY`, SQLite `mode=ro` and
`query_only`), made for one page and closed with its engine, to a host the egress policy allows after
resolving it (syncapp.egress). Rows become JSON-safe dicts: dates and times ISO 8601, decimals text (or
numbers with `"decimals": "number"`), bytes base64, UUIDs text.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import getpass
import ipaddress
import logging
import math
import os
import random
import re
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from django.conf import settings
from django.db import DatabaseError, connections
from pydantic import Field
from sqlalchemy import bindparam, column, create_engine, func, inspect, literal_column, select, table, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchTableError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import JSON, LargeBinary, NullType

from syncapp.authentication import credentials_refusal
from syncapp.budget import PageBudget
from syncapp.declared import Declared
from syncapp.egress import EgressRefused, host_addresses_allowed, host_refusal
from syncapp.errors import SourceError, SyncError, TransientSourceError
from syncapp.hashing import hash_value
from syncapp.http import Wait
from syncapp.models import Source, Synchronization
from syncapp.outbound.masking import redact
from syncapp.sources.base import Fetched, ReaderKind, ReadPage, reader_type, source_record_check
from syncapp.sources.declarations import RunSettings

logger = logging.getLogger(__name__)

SCHEMES = {
    "postgresql": "postgresql", "postgres": "postgresql", "postgresql+psycopg": "postgresql",
    "mysql": "mysql", "mariadb": "mysql", "mysql+pymysql": "mysql", "mariadb+pymysql": "mysql",
    "sqlite": "sqlite",
}
DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
# Options a location may carry. Others could point the driver elsewhere than the checked host
# (`host=`, `hostaddr=`, `unix_socket=`), read local files (`read_default_file=`, `passfile=`) or undo
# the read-only session (`options=`).
URL_OPTIONS = {
    "postgresql": frozenset({
        "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "application_name", "channel_binding",
        "gssencmode", "target_session_attrs",
    }),
    "mysql": frozenset({"charset", "ssl_ca", "ssl_cert", "ssl_key", "ssl_capath", "ssl_cipher", "ssl_check_hostname"}),
    "sqlite": frozenset(),
}
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 10_000
DECIMALS = ("string", "number")
CREDENTIAL_KEYS = frozenset({"type", "username", "user", "password"})
# Words that write inside a SELECT (a data-modifying WITH, SELECT … INTO, FOR UPDATE), looked for outside
# quotes and comments; what is not a SELECT at all is refused by its first word.
WRITING_WORDS = frozenset({
    "insert", "update", "delete", "merge", "into", "create", "alter", "drop", "truncate", "grant", "revoke",
})
# PostgreSQL SQLSTATE classes and codes worth another try: connection exceptions, resources, operator
# intervention (a cancelled statement: the statement timeout), serialization failures and deadlocks.
PG_TRANSIENT_STATES = ("08", "53", "57", "40001", "40P01", "55P03")
# MariaDB/MySQL error codes worth another try: too many connections, shutdown, lock wait timeout,
# deadlock, cannot connect, server gone, lost connection, statement time limits.
MYSQL_TRANSIENT_CODES = frozenset({1040, 1053, 1205, 1213, 1969, 2002, 2003, 2006, 2013, 2055, 3024, 4031})
# What a failed PostgreSQL connection says when no retry will mend it.
PG_PERMANENT = re.compile(r"authentication|does not exist|pg_hba\.conf|permission denied|certificate|SSL", re.I)
MYSQL_PERMANENT_CODES = frozenset({1044, 1045, 1049, 1698})


class DatabaseConfigError(SyncError, ValueError):
    """A location or sourceConfig of a database source that cannot be read as it is; `problems` lists each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


# ---------------------------------------------------------------------------------------------
# Locations


@dataclass(frozen=True)
class DatabaseLocation:
    """A parsed connection URL of a database source, without a password."""

    kind: str  # postgresql, mysql or sqlite
    host: str = ""
    port: int = 0
    database: str = ""
    username: str = ""
    options: tuple[tuple[str, str], ...] = ()
    path: str = ""  # sqlite: the file

    @property
    def shown(self) -> str:
        """Return the location fit for messages and logs."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind}://{user}{host}:{self.port}/{self.database}"


def database_location_parse(location: Any) -> DatabaseLocation:
    """Return a database source's connection URL parsed; raise DatabaseConfigError naming what is wrong.

    No message repeats the URL: it may hold a password.
    """
    if not isinstance(location, str) or "://" not in location:
        raise DatabaseConfigError([
            "a database source needs a connection URL like postgresql://user@host:5432/db, "
            "mysql://user@host:3306/db or sqlite:////path/to/file.db"
        ])
    try:
        url = make_url(location.strip())
        port = url.port
    except (ArgumentError, ValueError):
        raise DatabaseConfigError(["not a valid connection URL"]) from None
    kind = SCHEMES.get(url.drivername.lower())
    if kind is None:
        known = "postgresql://, mysql://, mariadb:// or sqlite://"
        raise DatabaseConfigError([f"the scheme must be {known} (drivers psycopg and pymysql), not {url.drivername}://"])
    problems = []
    if url.password:
        problems.append(
            'the password belongs in the source\'s credentials ({"password": "…"}), not in the URL, which the '
            "admin, the API and exports show"
        )
    unknown = sorted(set(url.query) - URL_OPTIONS[kind])
    if unknown:
        allowed = ", ".join(sorted(URL_OPTIONS[kind])) or "none"
        problems.append(f"the URL option(s) {', '.join(unknown)} are not allowed here (allowed: {allowed})")
    if kind == "sqlite":
        path = url.database or ""
        if not path or path == ":memory:" or not os.path.isabs(path):
            problems.append("a SQLite location names an absolute file path: sqlite:////path/to/file.db")
        if problems:
            raise DatabaseConfigError(problems)
        return DatabaseLocation(kind=kind, path=path)
    if not url.host:
        problems.append("the URL names no host (a local socket cannot be checked against the egress policy)")
    if not url.database:
        problems.append("the URL names no database: …/dbname")
    if problems:
        raise DatabaseConfigError(problems)
    options = tuple(sorted((key, str(value)) for key, value in url.query.items() if isinstance(value, str)))
    return DatabaseLocation(
        kind=kind, host=url.host, port=port or DEFAULT_PORTS[kind], database=url.database,
        username=url.username or "", options=options,
    )


def sqlite_path_refusal(path: str) -> str | None:
    """Return why a SQLite file may not be read (it is outside SYNC_DATABASE_SOURCE_SQLITE_DIRS), or None."""
    directories = [os.path.realpath(directory) for directory in settings.SYNC_DATABASE_SOURCE_SQLITE_DIRS]
    if not directories:
        return "SQLite files may be read only from the directories of SYNC_DATABASE_SOURCE_SQLITE_DIRS, set to none"
    real = os.path.realpath(path)  # a symbolic link is judged by where it leads
    if any(real.startswith(directory.rstrip(os.sep) + os.sep) for directory in directories):
        return None
    return f"{path} is not in a directory of SYNC_DATABASE_SOURCE_SQLITE_DIRS"


def database_location_problems(location: Any, *, path: str = "location", username: str | None = None) -> list[str]:
    """Return the problems of a database source's location as saved: its form, and whether it may be read.

    `username`: the role of the source's credentials, if they name one (service_database_refusal).
    """
    try:
        parsed = database_location_parse(location)
    except DatabaseConfigError as error:
        return [f"{path}: {problem}" for problem in error.problems]
    if parsed.kind == "sqlite":
        refusal = sqlite_path_refusal(parsed.path)
    else:
        # A name is resolved when connecting, not now: it may resolve elsewhere by then anyway. (Whether
        # it is the service's own server is asked of what it resolves to now, and again when connecting.)
        refusal = host_refusal(parsed.host, port=parsed.port, resolve=False)
    refusal = refusal or service_database_refusal(parsed, username=username)
    return [f"{path}: {refusal}"] if refusal else []


# ---------------------------------------------------------------------------------------------
# The service's own database


def _local_addresses() -> set[str]:
    """Return the addresses of this machine's own name: a server here is reached through them as well."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return set()
    return {str(info[4][0]).split("%", 1)[0] for info in infos}


def _address_marks(addresses: list[Any]) -> set[str]:
    """Return addresses as compared: every loopback, unspecified (0.0.0.0 reaches this machine) or own
    address of this machine as "this machine", IPv4-mapped IPv6 as the IPv4 address."""
    local = _local_addresses()
    marks = set()
    for raw in addresses:
        address = ipaddress.ip_address(str(raw).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        here = address.is_loopback or address.is_unspecified or str(address) in local
        marks.add("this machine" if here else str(address))
    return marks


def _host_marks(host: str, *, port: int) -> set[str]:
    """Return the addresses a host stands for, as compared (_address_marks); a local socket is this machine.

    A name that does not resolve stands for itself: it cannot be told apart from anything now.
    """
    if not host or host.startswith("/"):
        return {"this machine"}
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return {host.lower()}
    return _address_marks([info[4][0] for info in infos])


def _role_reads_service_tables(role: str) -> bool:
    """Return whether a PostgreSQL role can read any table of the service's database (a superuser can).

    Asked of the service's own connection: the privileges of a role on tables of another database
    cannot be asked from there.
    """
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_roles r JOIN pg_class c ON c.relkind IN ('r', 'v', 'm', 'p') "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.rolname = %s "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%' "
            "AND has_any_column_privilege(r.oid, c.oid, 'SELECT'))",
            [role],
        )
        return bool(cursor.fetchone()[0])


def service_database_refusal(location: DatabaseLocation, *, username: str | None,
                             addresses: list[Any] | None = None) -> str | None:
    """Return why a database source may not read where it points: the service's own database, or its
    server with a role that can read the service's tables (unless SYNC_DATABASE_SOURCE_ALLOW_SERVICE_SERVER).

    However the host is written (localhost, 127.0.0.1, ::1, a name resolving to one of the service's
    addresses) and with the port written or not, the same server is the same. `username`: the role the
    source connects as (None: the location's, else libpq's default); `addresses`: those the connection
    goes to, checked already (None: the host's, resolved now).
    """
    own = settings.DATABASES["default"]
    engine = own.get("ENGINE", "")
    if engine.endswith("sqlite3"):
        name = str(own.get("NAME") or "")
        if location.kind == "sqlite" and name and os.path.realpath(location.path) == os.path.realpath(name):
            return "this is the service's own database, which a source may not read"
        return None
    if not engine.endswith("postgresql") or location.kind != "postgresql":
        return None
    port = int(own.get("PORT") or DEFAULT_PORTS["postgresql"])
    host = str(own.get("HOST") or "")
    marks = _address_marks(addresses) if addresses is not None else _host_marks(location.host, port=port)
    if location.port != port or not marks & _host_marks(host, port=port):
        return None
    if location.database == own.get("NAME"):
        return "this is the service's own database, which a source may not read"
    if settings.SYNC_DATABASE_SOURCE_ALLOW_SERVICE_SERVER:
        return None
    role = username or location.username or os.environ.get("PGUSER") or getpass.getuser()
    try:
        reads = _role_reads_service_tables(role)
    except DatabaseError as error:
        return f"whether role {role!r} can read the service's tables on its server cannot be told ({error})"
    if reads:
        return (f"role {role!r} can read the service's own tables on this server (the same server as the service's "
                "database): use a role without that right, or set SYNC_DATABASE_SOURCE_ALLOW_SERVICE_SERVER=true")
    return None


class DatabaseSourceConfiguration(Declared):
    """A database source's `configuration`: how long a connection and a statement may take."""

    connect_timeout: float | int | None = None
    """Seconds to wait for a connection (default SYNC_DATABASE_CONNECT_TIMEOUT)."""
    timeout: float | int | None = None
    """Seconds a statement may run (default SYNC_DATABASE_STATEMENT_TIMEOUT); also statementTimeout."""
    statement_timeout: float | int | None = None
    """Another name for `timeout`."""
    read_timeout: float | int | None = None
    """Another name for `timeout`."""


@source_record_check("database", label="Database", configuration=DatabaseSourceConfiguration)
def database_source_problems(*, location: Any, credentials: Any, has_upload: bool, path: str) -> list[str]:
    """Return the problems of a database source as saved: its connection URL, and its credentials when given."""
    username = None
    if isinstance(credentials, dict) and isinstance(credentials.get("username") or credentials.get("user"), str):
        username = credentials.get("username") or credentials.get("user")
    problems = database_location_problems(location if isinstance(location, str) else "", path=f"{path}location",
                                          username=username)
    if credentials is not None:
        problems += database_credentials_problems(credentials, path=f"{path}credentials")
    return problems


def database_credentials_problems(credentials: Any, *, path: str = "credentials") -> list[str]:
    """Return the problems of a database source's credentials: an object with `password` (and `username`)."""
    if credentials in (None, "", {}):
        return []
    if not isinstance(credentials, dict):
        return [f'{path}: must be an object like {{"password": "…"}}']
    problems = []
    unknown = sorted(str(key) for key in credentials if key not in CREDENTIAL_KEYS)
    if unknown:
        problems.append(f"{path}: a database source takes username and password, not {', '.join(unknown)}")
    if credentials.get("type") not in (None, "", "basic", "password"):
        problems.append(f"{path}.type: a database source takes basic (a username and password), if anything")
    for key in ("username", "user", "password"):
        if key in credentials and not isinstance(credentials[key], str):
            problems.append(f"{path}.{key}: must be text")
    return problems


# ---------------------------------------------------------------------------------------------
# Connections


def _login(source: Source) -> tuple[str | None, str | None]:
    """Return the username (None: the URL's) and password of a source's credentials."""
    raw = source.credentials or {}
    if not isinstance(raw, dict) or "unsealable" in raw:
        raise SourceError(f"the credentials of source {source.reference!r} are not usable")
    refusal = credentials_refusal(source)
    if refusal is not None:
        raise SourceError(f"the credentials of source {source.reference!r} are not usable: {refusal}")
    username = raw.get("username") or raw.get("user") or None
    password = raw.get("password") or None
    return (str(username) if username else None), (str(password) if password else None)


def _stored_username(source: Source) -> str | None:
    """Return the username of a source's stored credentials, or None (none, or not readable)."""
    raw = source.credentials or {}
    name = (raw.get("username") or raw.get("user")) if isinstance(raw, dict) else None
    return str(name) if name else None


def _seconds(configuration: Any, keys: tuple[str, ...], *, default: float) -> float:
    if isinstance(configuration, dict):
        for key in keys:
            value = configuration.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return float(value)
    return float(default)


def _timeouts(source: Source) -> tuple[float, float]:
    """Return the connect and statement timeouts, in seconds: the source configuration's, else the settings'."""
    configuration = source.configuration or {}
    connect = _seconds(configuration, ("connectTimeout", "connect_timeout"),
                       default=settings.SYNC_DATABASE_CONNECT_TIMEOUT)
    statement = _seconds(configuration, ("timeout", "statementTimeout", "readTimeout"),
                         default=settings.SYNC_DATABASE_STATEMENT_TIMEOUT)
    return connect, statement


def _engine(*, location: DatabaseLocation, username: str | None, password: str | None, connect: float,
            statement: float) -> Engine:
    """Return an engine that makes read-only connections to an allowed address, pooling none."""
    if location.kind == "sqlite":
        refusal = sqlite_path_refusal(location.path)
        if refusal is not None:
            raise SourceError(refusal)
        if not os.path.isfile(location.path):
            raise SourceError(f"{location.path}: no such SQLite file")
        uri = f"file:{quote(location.path)}?mode=ro"

        def sqlite_connect() -> sqlite3.Connection:
            connection = sqlite3.connect(uri, uri=True, timeout=connect, check_same_thread=False)
            connection.execute("PRAGMA query_only = ON")
            deadline = time.monotonic() + statement
            # A connection serves one page: a read that outlasts the statement timeout is interrupted.
            connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            return connection

        refusal = service_database_refusal(location, username=None)
        if refusal is not None:
            raise SourceError(f"{location.shown}: {refusal}")
        return create_engine("sqlite+pysqlite://", creator=sqlite_connect, poolclass=NullPool)
    try:
        addresses = host_addresses_allowed(location.host, port=location.port)
    except EgressRefused as refused:
        raise SourceError(str(refused)) from None
    except (OSError, UnicodeError) as error:
        raise TransientSourceError(f"{location.host} does not resolve ({error})") from None
    address = str(addresses[0])
    # Judged by the address connected to, not by another lookup of the name.
    refusal = service_database_refusal(location, username=username, addresses=[address])
    if refusal is not None:
        raise SourceError(f"{location.shown}: {refusal}")
    query = dict(location.options)
    if location.kind == "postgresql":
        url = URL.create(DRIVERS["postgresql"], username=username or location.username or None, password=password,
                         host=location.host, port=location.port, database=location.database, query=query)
        connect_args: dict[str, Any] = {
            # The name stays for TLS; the connection goes to the address checked, not to a second lookup.
            "hostaddr": address,
            "connect_timeout": max(1, math.ceil(connect)),
            "options": f"-c default_transaction_read_only=on -c statement_timeout={int(statement * 1000)}",
        }
    else:
        # PyMySQL checks a certificate against the host it connects to: with TLS that is the name (checked
        # just now), else the address checked.
        host = location.host if any(key.startswith("ssl_") for key in query) else address
        url = URL.create(DRIVERS["mysql"], username=username or location.username or None, password=password,
                         host=host, port=location.port, database=location.database, query=query)
        connect_args = {
            "connect_timeout": connect, "read_timeout": statement, "write_timeout": statement,
            # Run and committed when the connection is made: every transaction after it is read-only.
            "init_command": "SET SESSION TRANSACTION READ ONLY",
        }
    return create_engine(url, poolclass=NullPool, connect_args=connect_args)


def _error_text(error: BaseException, *, secrets: list[str]) -> str:
    original = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return redact(" ".join(lines), secrets)[:500] or type(original).__name__


def _is_transient(error: BaseException, *, connecting: bool) -> bool:
    original = getattr(error, "orig", None) or error
    if isinstance(original, (TimeoutError, ConnectionError)):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    state = getattr(original, "sqlstate", None)
    if type(original).__module__.startswith("psycopg"):
        if state:
            return state.startswith(PG_TRANSIENT_STATES)
        # A connection that failed has no SQLSTATE: refused, timed out or unreachable may pass.
        return connecting and not PG_PERMANENT.search(str(original))
    if type(original).__module__.startswith("pymysql"):
        code = original.args[0] if original.args and isinstance(original.args[0], int) else None
        if code in MYSQL_PERMANENT_CODES:
            return False
        return code in MYSQL_TRANSIENT_CODES
    if isinstance(original, sqlite3.OperationalError):
        return "locked" in str(original) or "busy" in str(original)
    return False


def database_error(error: BaseException, *, location: DatabaseLocation, secrets: list[str],
                   connecting: bool = False) -> SourceError:
    """Return a driver's error as a SourceError naming the location (TransientSourceError for what may pass)."""
    kind = TransientSourceError if _is_transient(error, connecting=connecting) else SourceError
    verb = "cannot connect to" if connecting else "error from"
    return kind(f"{verb} {location.shown}: {_error_text(error, secrets=secrets)}")


@contextmanager
def database_connect(*, source: Source) -> Iterator[Connection]:
    """Yield a read-only connection to a database source; its engine is disposed with it.

    Raise SourceError (TransientSourceError for a refused or timed-out connection, a lost one, a
    statement timeout, a deadlock), its message naming the masked location, never the password.
    """
    try:
        location = database_location_parse(source.location)
    except DatabaseConfigError as error:
        raise SourceError(f"source {source.reference!r}: location: {error}") from None
    username, password = _login(source)
    secrets = [password] if password else []
    connect, statement = _timeouts(source)
    engine = _engine(location=location, username=username, password=password, connect=connect, statement=statement)
    try:
        try:
            connection = engine.connect()
        except (SQLAlchemyError, OSError, sqlite3.Error) as error:
            raise database_error(error, location=location, secrets=secrets, connecting=True) from None
        try:
            yield connection
        except (SQLAlchemyError, OSError, sqlite3.Error) as error:
            raise database_error(error, location=location, secrets=secrets) from None
        finally:
            try:
                connection.close()
            except SQLAlchemyError:
                logger.warning("closing a connection to %s failed", location.shown)
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# What a synchronization reads


@dataclass(frozen=True)
class DatabaseRead:
    """A synchronization's sourceConfig for a database source."""

    table: str | None
    schema: str | None
    query: str | None
    key_column: str | None  # None: the table's primary key
    id_column: str | None  # None: the key column
    page_size: int
    columns: tuple[str, ...] | None
    decimals: str

    @property
    def what(self) -> str:
        """Return what is read, for messages."""
        if self.query is not None:
            return "sourceConfig.query"
        name = f"{self.schema}.{self.table}" if self.schema else self.table
        return f"sourceConfig.table {name!r}"


def _quoted_end(query: str, index: int, *, backslash: bool) -> int:
    """Return where the quoted text starting at `index` ends (after its closing quote)."""
    quote_char = query[index]
    position = index + 1
    while position < len(query):
        char = query[position]
        if backslash and char == "\\" and quote_char == "'":
            position += 2  # MySQL's backslash escape
        elif char == quote_char:
            if query.startswith(quote_char * 2, position):  # a doubled quote stands for itself
                position += 2
            else:
                return position + 1
        else:
            position += 1
    raise DatabaseConfigError([f"a quote {quote_char} is not closed"])


# Functions a read may not call. PostgreSQL keeps the `pg_` prefix for its own functions, so there the
# rule is an allow-list (PG_FUNCTIONS_ALLOWED); elsewhere the families that administer a server (end
# sessions, reload or set its configuration), read or write its files, reach other servers, run SQL
# given as text past this check, or stall a connection are refused by name or prefix.
PG_FUNCTIONS_ALLOWED = frozenset({
    "pg_typeof", "pg_column_size", "pg_size_pretty", "pg_size_bytes", "pg_relation_size", "pg_table_size",
    "pg_total_relation_size", "pg_indexes_size", "pg_database_size", "pg_encoding_to_char", "pg_client_encoding",
    "pg_char_to_encoding", "pg_backend_pid", "pg_postmaster_start_time", "pg_conf_load_time", "pg_is_in_recovery",
    "pg_current_xact_id", "pg_input_is_valid", "pg_input_error_info", "pg_get_viewdef", "pg_get_constraintdef",
    "pg_get_indexdef", "pg_get_expr", "pg_get_userbyid", "pg_get_serial_sequence", "pg_get_function_arguments",
    "pg_get_function_result", "pg_has_role", "pg_table_is_visible", "pg_type_is_visible", "pg_function_is_visible",
    "pg_collation_for", "pg_xact_commit_timestamp", "pg_jit_available",
})
FUNCTIONS_REFUSED = frozenset({
    # PostgreSQL: settings, SQL run from text (ts_stat, query_to_xml and its kin), large objects. (nextval and
    # setval fail in the read-only transaction.)
    "set_config", "ts_stat", "loread", "lowrite", "binary_upgrade_set_next_pg_type_oid",
    # MariaDB/MySQL: files, stalls, locks held past the statement, waits on replication, known shell UDFs.
    "load_file", "sleep", "benchmark", "get_lock", "release_lock", "release_all_locks", "is_free_lock",
    "is_used_lock", "master_pos_wait", "source_pos_wait", "master_gtid_wait", "wait_for_executed_gtid_set",
    "wait_until_sql_thread_after_gtids", "sys_exec", "sys_eval", "sys_get", "sys_set",
    # SQLite: native code.
    "load_extension",
})
FUNCTION_PREFIXES_REFUSED = ("lo_", "dblink", "query_to_", "cursor_to_", "table_to_", "schema_to_", "database_to_",
                             "binary_upgrade_")


def function_refused(name: str) -> bool:
    """Return whether a read may not call the function of this name (lower case, without its schema)."""
    if name.startswith(("pg_", 'u&"')):
        return name not in PG_FUNCTIONS_ALLOWED
    return name in FUNCTIONS_REFUSED or name.startswith(FUNCTION_PREFIXES_REFUSED)


@dataclass
class ScannedQuery:
    """What a query holds outside quotes and comments: its words, the names it calls, what follows each ;."""

    words: list[str]
    calls: list[str]
    semicolons: list[str]


def _scan_words(query: str, *, backslash: bool) -> ScannedQuery:
    """Return the words of a query outside quotes and comments, the names it calls, and what follows each ;.

    `backslash`: read as MySQL reads (a backslash escapes a quote inside '…', `/*! … */` is code, `--` starts
    a comment only before a space), or as PostgreSQL and SQLite do. A name called is a word or a quoted name
    followed by `(`, comments and spaces between them allowed, as the databases allow them.
    """
    scanned = ScannedQuery(words=[], calls=[], semicolons=[])
    name: str | None = None  # the last name seen, while only spaces and comments follow it
    index, length = 0, len(query)
    while index < length:
        char = query[index]
        if query.startswith("--", index) and not (
            backslash and index + 2 < length and not query[index + 2].isspace()
        ):
            end = query.find("\n", index)
            index = length if end < 0 else end + 1
        elif backslash and (executable := re.match(r"/\*M?!\d*", query[index:])):
            index += len(executable.group(0))  # MySQL runs what is inside /*! … */: it is read as code
            name = None
        elif query.startswith("/*", index):
            end = query.find("*/", index + 2)
            if end < 0:
                raise DatabaseConfigError(["a comment /* is not closed"])
            index = end + 2
        elif char in "'\"`":
            end = _quoted_end(query, index, backslash=backslash)
            # A quoted name may be called ("pg_sleep"(1), `sleep`(1)); a '…' string may not. PostgreSQL's
            # U&"…" may spell a name with escapes (U&"pg\005fsleep"): it is kept whole, as no known name.
            name = query[index + 1:end - 1].replace(char * 2, char).lower() if char != "'" else None
            if char == '"' and query[max(0, index - 2):index].lower() == "u&":
                name = f'u&"{name}"'

            index = end
        elif char == "$" and not (index and (query[index - 1].isalnum() or query[index - 1] in "_$")) and (
            match := re.match(r"\$([A-Za-z_]\w*)?\$", query[index:])
        ):
            tag = match.group(0)
            end = query.find(tag, index + len(tag))
            if end < 0:
                raise DatabaseConfigError([f"a dollar quote {tag} is not closed"])
            index = end + len(tag)
            name = None
        elif char == ";":
            scanned.semicolons.append(query[index + 1:])
            index += 1
            name = None
        elif (char.isalpha() or char == "_") and (match := re.match(r"[^\W\d][\w$]*", query[index:])):
            # Names may start with any letter (SELECT 1 AS é) and hold $ (PostgreSQL).
            name = match.group(0).lower()
            scanned.words.append(name)
            index += len(match.group(0))
        elif char == "(":
            if name is not None:
                scanned.calls.append(name)
            name = None
            index += 1
        else:
            if not char.isspace():
                name = None
            index += 1
    return scanned


def query_problems(query: str) -> list[str]:
    """Return why a query is not one read-only SELECT, or nothing.

    The query is read as MySQL reads quotes and as PostgreSQL and SQLite do: a word hidden from one
    reading is seen by the other. (`#` comments are not skipped: words in them are judged too.) Besides
    writing and locking, a read may not call functions that administer a server, touch its files, reach
    another server or stall (function_refused).
    """
    readings: list[ScannedQuery] = []
    unreadable: list[str] = []
    for backslash in (False, True):
        try:
            readings.append(_scan_words(query, backslash=backslash))
        except DatabaseConfigError as error:
            unreadable = error.problems
    if not readings:
        return unreadable
    problems: list[str] = []
    for scanned in readings:
        words = scanned.words
        if not words or words[0] not in ("select", "with"):
            problems.append("must be a single SELECT (or WITH … SELECT) statement")
        if any(rest.strip() for rest in scanned.semicolons):
            problems.append("must be a single statement: nothing may follow a ;")
        writing = sorted({word for word in words if word in WRITING_WORDS})
        if writing:
            problems.append(f"must only read: {', '.join(word.upper() for word in writing)} has no place in it")
        locking = "for" in words and any(word in ("share", "update", "nowait") for word in words)
        if locking or any(words[at:at + 4] == ["lock", "in", "share", "mode"] for at in range(len(words))):
            problems.append("must not lock rows (FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE)")
        refused = sorted({name for name in scanned.calls if function_refused(name.rsplit(".", 1)[-1])})
        if refused:
            problems.append(
                f"must not call {', '.join(refused)}: a read may not administer the server, reach its files or "
                "other servers, or stall it"
            )
    return list(dict.fromkeys(problems))


def _name(config: dict[str, Any], key: str, *, path: str, problems: list[str]) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{path}.{key}: must be a name (text), got {value!r}")
        return None
    return value.strip()


def database_read_parse(config: Any, *, path: str = "sourceConfig") -> DatabaseRead:
    """Return what a sourceConfig asks of a database; raise DatabaseConfigError with every problem and its path.

    This reads the settings only; whether the table, columns or query exist is database_read_problems'.
    """
    if not isinstance(config, dict):
        raise DatabaseConfigError([f"{path}: must be an object"])
    problems: list[str] = []
    table_name = _name(config, "table", path=path, problems=problems)
    schema = _name(config, "schema", path=path, problems=problems)
    key = _name(config, "keyColumn", path=path, problems=problems)
    id_column = _name(config, "idColumn", path=path, problems=problems)
    query = config.get("query")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        problems.append(f"{path}.query: must be the text of a SELECT statement")
        query = None
    elif isinstance(query, str):
        query = query.strip().rstrip(";").rstrip()
        problems.extend(f"{path}.query: {problem}" for problem in query_problems(query))
    query_refused = any(problem.startswith(f"{path}.query") for problem in problems)
    if (table_name is None) == (query is None) and not query_refused:
        problems.append(f"{path}: name either a table ({path}.table) or a query ({path}.query), one of them")
    if query is not None and schema is not None:
        problems.append(f"{path}.schema: belongs with a table; a query names its own tables")
    if query is not None and key is None:
        problems.append(f"{path}.keyColumn: a query needs one: a unique, orderable column of its result to page on")
    if id_column is not None and "." in id_column:
        problems.append(f"{path}.idColumn: a column whose name holds a dot cannot be the id column")
    if id_column is None and key is not None and "." in key:
        problems.append(f"{path}.idColumn: the key column's name holds a dot: name another column as idColumn")
    size = config.get("pageSize", DEFAULT_PAGE_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        problems.append(f"{path}.pageSize: must be a whole number from 1 to {MAX_PAGE_SIZE}, got {size!r}")
    columns = config.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not columns
        or not all(isinstance(name, str) and name.strip() for name in columns)
    ):
        problems.append(f"{path}.columns: must be a list of column names")
        columns = None
    decimals = config.get("decimals", "string")
    if decimals not in DECIMALS:
        problems.append(f"{path}.decimals: must be string or number, got {decimals!r}")
    if problems:
        raise DatabaseConfigError(problems)
    return DatabaseRead(
        table=table_name, schema=schema, query=query, key_column=key, id_column=id_column, page_size=size,
        columns=tuple(dict.fromkeys(name.strip() for name in columns)) if columns else None, decimals=decimals,
    )


def _unique_columns(inspector: Any, *, table_name: str, schema: str | None) -> set[str]:
    """Return the columns of a table that are unique on their own: its primary key, unique constraints and indexes."""
    unique: set[str] = set()
    primary = inspector.get_pk_constraint(table_name, schema=schema).get("constrained_columns") or []
    if len(primary) == 1:
        unique.add(primary[0])
    for constraint in inspector.get_unique_constraints(table_name, schema=schema):
        if len(constraint.get("column_names") or []) == 1:
            unique.add(constraint["column_names"][0])
    for index in inspector.get_indexes(table_name, schema=schema):
        if index.get("unique") and len(index.get("column_names") or []) == 1:
            unique.add(index["column_names"][0])
    return unique


def table_key_column(connection: Connection, *, read: DatabaseRead, path: str = "sourceConfig") -> str:
    """Return the key column of a table read (the configured one, else its single-column primary key)."""
    if read.key_column is not None:
        return read.key_column
    inspector = inspect(connection)
    try:
        primary = inspector.get_pk_constraint(read.table, schema=read.schema).get("constrained_columns") or []
    except NoSuchTableError:
        raise SourceError(f"{path}.table: no table {read.table!r} in the database") from None
    if len(primary) != 1:
        raise SourceError(
            f"{path}.keyColumn: table {read.table!r} has no single-column primary key: name a unique column to page on"
        )
    return primary[0]


def _is_sqlite_rowid(connection: Connection, *, inspector: Any, read: DatabaseRead, key: str, declared: Any) -> bool:
    """Return whether a key column is SQLite's INTEGER PRIMARY KEY: the rowid, never NULL though not declared so."""
    if connection.dialect.name != "sqlite" or str(declared).upper() != "INTEGER":
        return False
    primary = inspector.get_pk_constraint(read.table, schema=read.schema).get("constrained_columns") or []
    return primary == [key]


def _table_problems(connection: Connection, *, read: DatabaseRead, path: str) -> list[str]:
    inspector = inspect(connection)
    if not inspector.has_table(read.table, schema=read.schema):
        where = f" in schema {read.schema!r}" if read.schema else ""
        return [f"{path}.table: no table or view {read.table!r}{where} in the database"]
    found = {info["name"]: info for info in inspector.get_columns(read.table, schema=read.schema)}
    problems = []
    try:
        key = table_key_column(connection, read=read, path=path)
    except SourceError as error:
        return [str(error)]
    # A view has no constraints to show its key is unique: its pages check that as they are read.
    is_view = read.table in inspector.get_view_names(schema=read.schema)
    if key not in found:
        problems.append(f"{path}.keyColumn: table {read.table!r} has no column {key!r}")
    elif not is_view:
        if key not in _unique_columns(inspector, table_name=read.table, schema=read.schema):
            problems.append(
                f"{path}.keyColumn: column {key!r} is not unique on its own (no primary key, unique constraint "
                "or unique index of that column alone): pages on it could skip rows"
            )
        if found[key].get("nullable") and read.key_column is not None and not _is_sqlite_rowid(
            connection, inspector=inspector, read=read, key=key, declared=found[key]["type"],
        ):
            problems.append(f"{path}.keyColumn: column {key!r} may be NULL: rows with a NULL key cannot be paged")
        if isinstance(found[key]["type"], (JSON, LargeBinary)):
            problems.append(f"{path}.keyColumn: column {key!r} is of a type without order ({found[key]['type']})")
    for field, names in (("idColumn", [read.id_column] if read.id_column else []), ("columns", read.columns or [])):
        for name in names:
            if name not in found:
                problems.append(f"{path}.{field}: table {read.table!r} has no column {name!r}")
    return problems


def _query_problems(connection: Connection, *, read: DatabaseRead, path: str) -> list[str]:
    try:
        # A bound parameter sends it as one prepared statement: a second statement hidden from the
        # check above is refused by the database, never run (as the page reads are sent too).
        result = connection.execute(
            text(f"SELECT * FROM ({_wrapped(read.query)}) AS sync_source LIMIT :none").bindparams(none=0)
        )
        names = list(result.keys())
        result.close()
    except SQLAlchemyError as error:
        connection.rollback()
        return [f"{path}.query: the database refused it: {_error_text(error, secrets=[])}"]
    problems = []
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        problems.append(f"{path}.query: the result has columns of the same name ({', '.join(twice)}): rename them")
    for field, wanted in (("keyColumn", [read.key_column]), ("idColumn", [read.id_column] if read.id_column else []),
                          ("columns", read.columns or [])):
        for name in wanted:
            if name not in names:
                problems.append(
                    f"{path}.{field}: the query's result has no column {name!r} (it has {', '.join(names)})"
                )
    return problems


def database_read_problems(*, source: Source | None, source_config: Any, path: str = "sourceConfig",
                           source_path: str = "sourceId", live: bool = True) -> list[str]:
    """Return the problems of what a synchronization reads from a database source, checked on the database.

    The settings first; then (when `live`: what is read has changed) through a read-only connection,
    that the table and its columns exist and the key column is unique, or that the query runs (with
    LIMIT 0) and its result has the columns named. A database that cannot be reached is a problem of
    `source_path`.
    """
    if source is None:
        return [f"{source_path}: a database synchronization names its source (a Source of type database)"]
    if source.type != "database":
        return [f"{source_path}: source {source.reference!r} is of type {source.type}, not database"]
    try:
        read = database_read_parse(source_config, path=path)
    except DatabaseConfigError as error:
        return error.problems
    username = _stored_username(source)
    location_problems = database_location_problems(source.location, path=f"{source_path} location", username=username)
    if location_problems or not live:
        return location_problems
    try:
        with database_connect(source=source) as connection:
            if read.query is not None:
                return _query_problems(connection, read=read, path=path)
            return _table_problems(connection, read=read, path=path)
    except SourceError as error:
        return [f"{source_path}: source {source.reference!r}: {error}"]


# ---------------------------------------------------------------------------------------------
# Rows and keys as JSON


def json_safe(value: Any, *, decimals: str = "string") -> Any:
    """Return a database value as JSON: ISO 8601 dates and times, decimals as text (or numbers), bytes base64."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        if decimals == "number" and value.is_finite():
            return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _duration(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item, decimals=decimals) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item, decimals=decimals) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(json_safe(item, decimals=decimals) for item in value)
    return str(value)  # network addresses, ranges, enums: their text


def _duration(value: dt.timedelta) -> str:
    """Return a timedelta as an ISO 8601 duration (P1DT2H3M4.5S)."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    seconds = value.seconds + value.microseconds / 1_000_000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = "".join(part for part in (
        f"{int(hours)}H" if hours else "", f"{int(minutes)}M" if minutes else "",
        f"{seconds:g}S" if seconds else "",
    ))
    days = f"{value.days}D" if value.days else ""
    return f"{sign}P{days}{'T' + clock if clock else ''}" if (days or clock) else "PT0S"


KEY_TYPES: dict[type, str] = {
    bool: "bool", int: "int", float: "float", str: "str", decimal.Decimal: "decimal", dt.datetime: "datetime",
    dt.date: "date", dt.time: "time", uuid.UUID: "uuid", bytes: "bytes",
}


def key_encode(value: Any) -> dict[str, Any]:
    """Return a key value as JSON that key_decode turns back into the same value, for a page request."""
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    kind = next((name for cls, name in KEY_TYPES.items() if type(value) is cls), None)
    if kind is None:
        kind = next((name for cls, name in KEY_TYPES.items() if isinstance(value, cls)), None)
    if kind is None:
        raise SourceError(f"a key of type {type(value).__name__} cannot be paged on: choose another keyColumn")
    return {"type": kind, "value": json_safe(value)}


def key_decode(encoded: dict[str, Any]) -> Any:
    """Return the key value of a page request."""
    kind, value = encoded["type"], encoded["value"]
    decoders = {
        "bool": bool, "int": int, "float": float, "str": str, "decimal": decimal.Decimal,
        "datetime": dt.datetime.fromisoformat, "date": dt.date.fromisoformat, "time": dt.time.fromisoformat,
        "uuid": uuid.UUID, "bytes": base64.b64decode,
    }
    return decoders[kind](value)


def _wrapped(query: str) -> str:
    """Return a query to put inside a subquery with text(): on lines of its own, so a comment that ends it
    does not swallow what follows, and its colons its own, not bound parameters."""
    return "\n" + query.replace(":", "\\:") + "\n"


# ---------------------------------------------------------------------------------------------
# The reader of `database` sources


class DatabaseSourceConfig(RunSettings):
    """sourceConfig of a synchronization that reads a table or a read-only query of a database."""

    table: str | None = None
    """The table or view to read; or name a query."""
    table_schema: str | None = Field(None, alias="schema")
    """The schema of the table (PostgreSQL), or the database (MariaDB)."""
    query: str | None = None
    """One read-only SELECT (or WITH … SELECT)."""
    key_column: str | None = None
    """The unique, orderable column pages are keyed on; default the table's primary key, required for a query."""
    id_column: str | None = None
    """The column whose value is the origin id (default keyColumn)."""
    page_size: int | None = None
    """Rows a page, 1 to 10000 (default 500)."""
    columns: list[str] | None = None
    """Read only these columns (the key and id columns come along)."""
    decimals: Literal["string", "number"] | None = None
    """Decimals as exact text (string, default) or as JSON numbers."""


@reader_type("database", label="Database")
class DatabaseReader(ReaderKind):
    """The rows of a table or query, in keyset pages on its key column, through a read-only connection."""

    declaration = DatabaseSourceConfig

    concurrency = 1  # each page starts after the last key of the page before

    def __init__(self, synchronization: Synchronization):
        config = synchronization.source_config or {}
        self.synchronization = synchronization
        self.source: Source = synchronization.source
        try:
            self.read = database_read_parse(config)
            self.location = database_location_parse(self.source.location)
        except DatabaseConfigError as error:
            raise SourceError(str(error)) from None
        max_pages = config.get("maxPages")
        self.max_pages = max_pages if isinstance(max_pages, int) and max_pages > 0 else settings.SYNC_DEFAULT_MAX_PAGES
        self._key_column = self.read.key_column

    @staticmethod
    def source_problems(*, source: Source, source_config: dict[str, Any], path: str, source_path: str,
                        live: bool) -> list[str]:
        return database_read_problems(
            source=source, source_config=source_config, path=path, source_path=source_path, live=live,
        )

    @staticmethod
    def problem(synchronization: Synchronization) -> str | None:
        source = synchronization.source
        if source is None:
            return f"synchronization {synchronization.reference!r} has no database source (sourceId)"
        if source.type != "database":
            return (f"synchronization {synchronization.reference!r}: source {source.reference!r} is of type "
                    f"{source.type}, not database")
        return None

    @property
    def key_column(self) -> str:
        """Return the column pages are keyed on; a table's primary key is looked up once."""
        if self._key_column is None:
            self._key_column = self._retrying(self._primary_key, on_wait=None)
        return self._key_column

    @property
    def id_position(self) -> str:
        """Return where an object's origin id is: its id column."""
        return self.read.id_column or self.key_column

    def _primary_key(self) -> str:
        with database_connect(source=self.source) as connection:
            return table_key_column(connection, read=self.read)

    def _context(self, error: SourceError) -> SourceError:
        """Return the error naming the synchronization and what it reads."""
        return type(error)(f"synchronization {self.synchronization.reference!r}, {self.read.what}: {error}")

    def _retrying(self, attempt: Any, *, on_wait: Any) -> Any:
        """Return what `attempt` returns, trying again on transient errors with backoff, as HTTP calls are."""
        failures = 0
        while True:
            try:
                return attempt()
            except TransientSourceError as error:
                failures += 1
                if failures >= settings.SYNC_HTTP_MAX_ATTEMPTS:
                    raise self._context(TransientSourceError(f"{error} (after {failures} attempts)")) from None
                base = settings.SYNC_HTTP_BACKOFF_SECONDS
                seconds = min(settings.SYNC_HTTP_BACKOFF_MAX_SECONDS, base * 2 ** (failures - 1))
                seconds += random.uniform(0, base)  # noqa: S311 - jitter, not a secret
                logger.warning("%s: %s; trying again in %.1f s", self.location.shown, error, seconds)
                if on_wait is not None:
                    on_wait(Wait(url=self.location.shown, reason=str(error)[:200], seconds=seconds, retry=True))
                time.sleep(seconds)
            except SourceError as error:
                raise self._context(error) from None

    def first_request(self, *, variables: dict[str, Any]) -> dict[str, Any]:
        # An incremental run reads only rows whose cursor column is at or after the stored cursor
        # (sourceConfig.incremental.cursorPath names the column); the boundary rows come again, unchanged.
        cursor = variables.get("cursor") or {}
        if cursor.get("raw") is None or not cursor.get("path"):
            return {"after": None}
        return {"after": None, "since": {"column": cursor["path"], "value": key_encode(cursor["raw"])}}

    def statement(self, *, after: Any, since: dict[str, Any] | None = None, measures: list[str] | None = None) -> Any:
        """Return the statement of the page after key `after` (None: the first page), one row more than a page.

        `since` ({"column", "value"}) keeps only rows whose cursor column is at or after the value.
        `measures`: SQL expressions to select instead of the columns (the sizes of a page's values).
        """
        key = self.key_column
        if self.read.query is not None:
            preparer = _preparer(self.location.kind)
            quoted = preparer.quote(key)
            listed = ", ".join(preparer.quote(name) for name in self._selected(key)) if self.read.columns else "*"
            if measures is not None:
                listed = ", ".join(f"{measure} AS sync_measure_{index}" for index, measure in enumerate(measures))
            where = f"{quoted} IS NOT NULL" if after is None else f"{quoted} > :after"
            if since is not None:
                where += f" AND {preparer.quote(since['column'])} >= :since"
            sql = (f"SELECT {listed} FROM ({_wrapped(self.read.query)}) AS sync_source WHERE {where} "
                   f"ORDER BY {quoted} LIMIT :limit")
            statement = text(sql).bindparams(limit=self.read.page_size + 1)
            if since is not None:
                statement = statement.bindparams(_cursor_param(since["value"]))
            return statement.bindparams(after=after) if after is not None else statement
        source = table(self.read.table, schema=self.read.schema)
        key_column = column(key)
        if measures is not None:
            chosen = select(*(literal_column(measure).label(f"sync_measure_{index}")
                              for index, measure in enumerate(measures)))
        elif self.read.columns:
            chosen = select(*(column(name) for name in self._selected(key)))
        else:
            chosen = select(literal_column("*"))
        statement = chosen.select_from(source).order_by(key_column).limit(self.read.page_size + 1)
        if since is not None:
            statement = statement.where(column(since["column"]) >= _cursor_param(since["value"]))
        return statement.where(key_column.is_not(None) if after is None else key_column > after)

    def _selected(self, key: str) -> list[str]:
        id_column = [self.read.id_column] if self.read.id_column else []
        return list(dict.fromkeys([*(self.read.columns or ()), key, *id_column]))

    def fetch(self, *, request: dict[str, Any], on_wait: Any = None) -> Fetched:
        after = key_decode(request["after"]) if request.get("after") else None
        since = request.get("since")
        if since is not None:
            since = {"column": since["column"], "value": key_decode(since["value"])}

        def attempt() -> list[dict[str, Any]]:
            with database_connect(source=self.source) as connection:
                return rows_read(connection, statement=self.statement(after=after, since=since),
                                 measured=lambda measures: self.statement(after=after, since=since, measures=measures),
                                 kind=self.location.kind, where=self.location.shown)

        rows = self._retrying(attempt, on_wait=on_wait)
        key = self.key_column
        more = len(rows) > self.read.page_size  # the row after the page says there is a next one
        keys = [row.get(key) for row in rows]
        for before, current in zip(keys, keys[1:], strict=False):
            if current == before:
                raise self._context(SourceError(
                    f"keyColumn {key!r} is not unique: {json_safe(current)!r} is the key of more than one row, so "
                    "keyset pages would skip rows; choose a unique column"
                ))
        if keys and keys[0] is None:
            raise self._context(SourceError(f"keyColumn {key!r} of a row is NULL"))
        page = rows[: self.read.page_size]
        decimals = self.read.decimals
        body = [{str(name): json_safe(value, decimals=decimals) for name, value in row.items()} for row in page]
        del rows  # the raw rows: only their JSON form stays with the page
        last = key_encode(page[-1][key]) if page and more else None
        return Fetched(
            request=request, body=body, url=f"{self.location.shown} ({self.read.what})",
            meta={"next": last, "keyColumn": key},
        )

    def page(self, *, request: dict[str, Any], fetched: Fetched) -> ReadPage:
        objects = list(fetched.body)
        following = {"after": fetched.meta["next"]} if fetched.meta.get("next") else None
        if following is not None and request.get("since") is not None:
            following["since"] = request["since"]
        return ReadPage(objects=objects, hashes=[hash_value(obj) for obj in objects], next_request=following)

    def ahead(self, *, request: dict[str, Any], steps: int) -> dict[str, Any] | None:
        return None  # a page's start is the last key of the page before

    def same_request(self, first: dict[str, Any], second: dict[str, Any]) -> bool:
        return first.get("after") == second.get("after") and first.get("since") == second.get("since")


def _cursor_param(value: Any) -> Any:
    """Return the stored cursor as a parameter of no type of ours, for the database to read as its column's.

    The cursor was read from rows as JSON (a timestamp as ISO 8601 text). Typed as text, PostgreSQL would
    refuse to compare it with a timestamp; made a datetime, it would no longer equal a date kept as text
    (SQLite). Untyped, PostgreSQL casts it to the column's type, MySQL converts it, SQLite compares text.
    """
    return bindparam("since", value, type_=NullType())


def _preparer(kind: str) -> Any:
    """Return the identifier quoting of a kind of database."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    dialect = {"postgresql": postgresql.dialect, "mysql": mysql.dialect, "sqlite": sqlite.dialect}[kind]()
    return dialect.identifier_preparer


# ---------------------------------------------------------------------------------------------
# Reading a page within its byte budget (syncapp/budget.py)

# Rows a server-side cursor hands over at a time: the memory of a batch is what is over the budget at most.
STREAM_BATCH_ROWS = 50


def _size_sql(kind: str, name: str) -> str:
    """Return SQL for the bytes of a column's value as text (NULL for NULL), measured by the database."""
    quoted = _preparer(kind).quote(name)
    if kind == "postgresql":
        return f"octet_length(CAST({quoted} AS text))"
    if kind == "mysql":
        return f"octet_length({quoted})"
    return f"length(CAST({quoted} AS BLOB))"


def _page_subquery(statement: Any) -> Any:
    """Return a page's statement as a subquery to measure it by."""
    if isinstance(statement, TextClause):
        return statement.columns().subquery("sync_page")
    return statement.subquery("sync_page")


def page_sizes_measure(connection: Connection, *, statement: Any, measured: Any,
                       kind: str) -> tuple[dict[str, int], int]:
    """Return the largest value of each column of a page's rows and the bytes of them all, measured by the
    database, so that rows too large are refused before one byte of them is sent.

    `measured(expressions)` is the page's statement selecting those expressions instead of its columns:
    the database computes the sizes before it orders the page, so it sorts sizes, not the values.
    """
    with connection.execute(select(literal_column("*")).select_from(_page_subquery(statement)).limit(0)) as empty:
        columns = empty.keys()  # a result's column names, not a dict's keys
    names = [str(name) for name in columns]
    if not names:
        return {}, 0
    sizes = [f"coalesce({_size_sql(kind, name)}, 0)" for name in names]
    labels = [f"sync_measure_{index}" for index in range(len(names))]
    total = " + ".join(labels)
    statement = select(
        *(func.max(literal_column(label)) for label in labels), func.sum(literal_column(total)),
    ).select_from(_page_subquery(measured(sizes)))
    row = connection.execute(statement).one()
    largest = {name: int(row[index] or 0) for index, name in enumerate(names)}
    return largest, int(row[-1] or 0)


def rows_read(connection: Connection, *, statement: Any, measured: Any, kind: str,
              where: str) -> list[dict[str, Any]]:
    """Return the rows of a page's statement, failing with PageTooLarge when they are over the page's budget.

    The database measures the page first (the text form of each value, `measured`: see page_sizes_measure),
    so a row of hundreds of megabytes is never sent; then the rows are fetched through a server-side cursor
    (PostgreSQL, MariaDB) in small batches and counted as they arrive, which also bounds rows that grew
    between the two statements.
    """
    budget = PageBudget(where=where)
    largest, total = page_sizes_measure(connection, statement=statement, measured=measured, kind=kind)
    for name, size in largest.items():
        budget.value_check(size, what=f"a value of column {name!r}")
    if total > budget.page_limit:
        budget.add(total, what=f"its rows ({total:,} bytes as the database measures them)")
    rows: list[dict[str, Any]] = []
    streaming = connection.execution_options(stream_results=True, yield_per=STREAM_BATCH_ROWS)
    with streaming.execute(statement) as result:
        for number, row in enumerate(result.mappings(), start=1):
            kept = dict(row)
            budget.add_row(kept, what=f"row {number}")
            rows.append(kept)
    return rows
