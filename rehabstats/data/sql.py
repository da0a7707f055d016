"""Cohorts in SQL databases: PostgreSQL and SQLite through SQLAlchemy (the optional ``[sql]``).

Reading (:func:`read_database`) ends in the raw contract tables that a folder gives, so the
same validation applies and the same data give the same :meth:`~rehabstats.Cohort.fingerprint`:

- **Where the tables are.** By default each contract table is the table (or view) of the same
  name in the connection's default schema (PostgreSQL: the first schema of the search path,
  usually ``public``). A mapping (a YAML file, :func:`read_mapping`; docs/databases.md) names
  another schema, other table names, column renames or a SQL query per table.
- **Types, explicitly.** PostgreSQL: every column is read in PostgreSQL's own text form (ISO
  dates with ``DateStyle = ISO``, exact shortest numbers with ``extra_float_digits = 3``)
  through ``COPY ... TO STDOUT`` into Arrow text columns, and parsed by the contract's rules
  exactly like a CSV file: a date column holding ``infinity``, a number column holding
  ``NaN``, a time of day in a timestamp column are reported, never turned into a missing value
  (a timestamp at midnight is the date it names). Other databases (SQLite): the values the
  driver returns, text as text, whole days as dates, numbers as float -- typed values, checked
  like a Parquet file's.
- **One snapshot, read only.** All tables are read in one transaction (PostgreSQL: ``REPEATABLE
  READ READ ONLY``), so a report never mixes data from before and after a write by the clinic's
  application; nothing is ever written when reading.
- **Row order and coordinates.** A table with a primary key is read in its order (so the tables
  rehabstats writes, keyed by ``id``, come back in the order written); one without is read
  ordered by its contract columns (text by code point), so the same data always come back in
  the same order; a query keeps its own ``ORDER BY``. A problem's row is the record's number
  in that order, and its :attr:`~rehabstats.errors.Problem.where` names the table or query and
  the row's key: the primary key, the mapping's ``key``, or the contract's natural key
  (participant_id, the date and, by table, timing, test and side, event).

Writing (:func:`write_database`, ``rehabstats simulate --out URL``) creates typed tables in one
transaction, and never drops a table rehabstats did not create (it keeps a list of the tables
it wrote in ``rehabstats_tables``).

Credentials: a URL's password is never shown (:func:`rehabstats.data.sources.redact`); the
command line refuses one (:func:`rehabstats.data.sources.check_no_secret`): PostgreSQL reads
``PGPASSWORD`` and ``~/.pgpass`` itself (libpq), and ``env:NAME`` gives a whole URL from the
environment.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rehabstats.data.schema import TABLES, table_spec
from rehabstats.data.sources import (
    Coordinates,
    SourceTables,
    check_no_secret,
    redact,
    resolve_env,
    unreadable,
)
from rehabstats.errors import (
    OutputError,
    ParameterError,
    Problem,
    YamlFileError,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "MARKER_TABLE",
    "NATURAL_KEYS",
    "DatabaseMapping",
    "TableMapping",
    "is_mapping_file",
    "read_database",
    "read_mapping",
    "read_mapping_source",
    "write_database",
]

NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "participants": ("participant_id",),
    "sessions": ("participant_id", "session_date"),
    "pain": ("participant_id", "recorded_on", "timing"),
    "visa_a": ("participant_id", "assessed_on"),
    "function_tests": ("participant_id", "assessed_on", "test", "side"),
    "events": ("participant_id", "event_date", "event"),
    "running": ("participant_id", "run_date"),
}
"""The columns that name a record of each table when it has no primary key (and no ``key`` in
the mapping): shown in a problem's place, and the first columns of its reading order."""

MARKER_TABLE = "rehabstats_tables"
"""The table in which :func:`write_database` lists the tables it created (so that
``overwrite`` never drops a table rehabstats did not write)."""

MISSING_EXTRA = (
    "reading or writing a database needs the optional dependencies rehabstats[sql] "
    "(SQLAlchemy and the psycopg PostgreSQL driver): "
    "python -m pip install -c requirements.lock 'rehabstats[sql]'"
)

_BLOCK_ROWS = 65_536
"""Rows fetched (other databases) or written (COPY) at a time."""

_BLOCK_BYTES = 1 << 23
"""Bytes of PostgreSQL's CSV parsed at a time (memory: one block beside the Arrow table)."""


class _SourceError(Exception):
    """The source cannot be read at all (its message is the problem's rule)."""


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError:
        raise _SourceError(MISSING_EXTRA) from None
    return sqlalchemy


# --------------------------------------------------------------------------------------------
# The mapping


@dataclass(frozen=True)
class TableMapping:
    """Where one contract table is in the database.

    Attributes
    ----------
    table : str
        The contract table (``sessions``).
    relation : str or None
        The database table or view; ``None`` with a query, or when the table is absent.
    schema : str or None
        The relation's schema (default: the mapping's, else the connection's).
    query : str or None
        A SQL query giving the table's rows (its columns named as the contract's).
    columns : dict
        Contract column -> database column, for the columns named otherwise.
    key : tuple of str or None
        Database columns naming a row in problems (default: the primary key, else the
        contract's natural key).
    absent : bool
        The database does not hold this table (``null`` in the mapping): no records.
    """

    table: str
    relation: str | None = None
    schema: str | None = None
    query: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    key: tuple[str, ...] | None = None
    absent: bool = False


@dataclass(frozen=True)
class DatabaseMapping:
    """Where the contract tables are in a database (:func:`read_mapping`).

    ``database`` is the URL (or ``env:NAME``) a mapping file names; ``schema`` the default
    schema of its tables; ``tables`` the contract tables mapped otherwise than by name.
    """

    database: str | None = None
    schema: str | None = None
    tables: dict[str, TableMapping] = field(default_factory=dict)
    origin: str = "mapping"

    def table(self, name: str) -> TableMapping:
        """The mapping of one contract table (by default: the relation of the same name)."""
        return self.tables.get(name) or TableMapping(name, relation=name)


_TOP_KEYS = ("database", "schema", "tables")
_TABLE_KEYS = ("table", "schema", "query", "columns", "key")


def _unknown(key: object, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}; keys: {', '.join(known)}"


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def parse_mapping(doc: object, *, origin: str = "mapping") -> tuple[DatabaseMapping, list[str]]:
    """A mapping's content (as YAML reads it) checked whole: the mapping and every problem.

    Parameters
    ----------
    doc : mapping
        ``database`` (URL or ``env:NAME``), ``schema``, ``tables`` (contract table -> a table
        name, ``null``, or ``{table | query, schema, columns, key}``).
    origin : str
        What the problems name (the file).

    Returns
    -------
    mapping : DatabaseMapping
    problems : list of str
        Each problem of the content (unknown keys with the closest valid one, a contract table
        or column that does not exist, a table with both ``table`` and ``query``...).
    """
    problems: list[str] = []
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        return DatabaseMapping(origin=origin), [
            f"{origin}: must be a mapping with the keys {', '.join(_TOP_KEYS)}"
        ]
    for key in doc:
        if key not in _TOP_KEYS:
            problems.append(f"{origin}: {_unknown(key, _TOP_KEYS)}")
    database = doc.get("database")
    if database is not None and not _text(database):
        problems.append(f"{origin}: database must be a database URL or env:NAME")
        database = None
    schema = doc.get("schema")
    if schema is not None and not _text(schema):
        problems.append(f"{origin}: schema must be a schema name")
        schema = None
    tables: dict[str, TableMapping] = {}
    entries = doc.get("tables") or {}
    if not isinstance(entries, Mapping):
        problems.append(f"{origin}: tables must map contract tables to database tables")
        entries = {}
    for name, entry in entries.items():
        where = f"{origin}: tables.{name}"
        if name not in TABLES:
            problems.append(f"{where}: not a table of the data contract; {_unknown(name, TABLES)}")
            continue
        mapped, found = _parse_table(name, entry, where)
        problems += found
        if mapped is not None:
            tables[name] = mapped
    return DatabaseMapping(database=database, schema=schema, tables=tables, origin=origin), problems


def _parse_table(name: str, entry: object, where: str) -> tuple[TableMapping | None, list[str]]:
    if entry is None:
        return TableMapping(name, absent=True), []
    if isinstance(entry, str):
        if not entry.strip():
            return None, [f"{where}: must be a table name, null or a mapping"]
        return TableMapping(name, relation=entry.strip()), []
    if not isinstance(entry, Mapping):
        return None, [f"{where}: must be a table name, null or a mapping (table or query, ...)"]
    problems = [f"{where}: {_unknown(k, _TABLE_KEYS)}" for k in entry if k not in _TABLE_KEYS]
    relation, query, schema = entry.get("table"), entry.get("query"), entry.get("schema")
    if (relation is None) == (query is None):
        problems.append(f"{where}: give either table (a table or view name) or query (SQL)")
    for key, value in (("table", relation), ("query", query), ("schema", schema)):
        if value is not None and not _text(value):
            problems.append(f"{where}.{key}: must be text")
    if query is not None and schema is not None:
        problems.append(f"{where}: schema applies to a table, not to a query")
    contract = table_spec(name).columns
    columns: dict[str, str] = {}
    raw_columns = entry.get("columns") or {}
    if not isinstance(raw_columns, Mapping):
        problems.append(f"{where}.columns: must map contract columns to database columns")
        raw_columns = {}
    for column, source in raw_columns.items():
        if column not in contract:
            problems.append(
                f"{where}.columns: {column!r} is not a column of {name}; "
                + _unknown(column, contract).split("; ", 1)[0].replace("unknown key", "column")
            )
        elif not _text(source):
            problems.append(f"{where}.columns.{column}: must be a database column's name")
        else:
            columns[column] = str(source).strip()
    repeated = sorted({s for s in columns.values() if list(columns.values()).count(s) > 1})
    for source in repeated:
        users = [c for c, s in columns.items() if s == source]
        problems.append(f"{where}.columns: {', '.join(users)} all read column {source!r}")
    key = entry.get("key")
    if isinstance(key, str):
        key = [key]
    if key is not None and (not isinstance(key, list) or not all(_text(k) for k in key) or not key):
        problems.append(f"{where}.key: must be a column name or a list of column names")
        key = None
    mapped = TableMapping(
        name,
        relation=relation.strip() if _text(relation) else None,
        schema=schema.strip() if _text(schema) else None,
        query=query.strip().rstrip(";").strip() if _text(query) else None,
        columns=columns,
        key=tuple(str(k).strip() for k in key) if key else None,
    )
    return (None if problems else mapped), problems


def read_mapping(path: str | os.PathLike) -> tuple[DatabaseMapping, list[str]]:
    """Read and check a database mapping file (YAML; docs/databases.md).

    Returns
    -------
    mapping : DatabaseMapping
    problems : list of str
        Every problem of the file (unreadable, not YAML -- with the line --, unknown keys...).
    """
    from rehabstats.config import read_yaml

    origin = str(path)
    try:
        doc, _ = read_yaml(path)
    except YamlFileError as exc:
        return DatabaseMapping(origin=origin), [f"{origin}: {exc}"]
    return parse_mapping(doc, origin=origin)


def is_mapping_file(path: Path) -> bool:
    """Whether a source path is a database mapping file (``.yaml`` / ``.yml``)."""
    return path.suffix.lower() in (".yaml", ".yml") and not path.is_dir()


def read_mapping_source(source: str | os.PathLike, **options: Any) -> SourceTables:
    """A mapping file as a source: the database it names (``database:``), read as mapped."""
    if options:
        raise TypeError(f"{', '.join(sorted(options))}: not an option of a mapping file")
    path = Path(source).expanduser()
    if not path.is_file():
        return unreadable(str(source), f"the mapping file {source} does not exist")
    mapping, problems = read_mapping(path)
    if mapping.database is None and not problems:
        problems.append(
            f"{source}: database: is missing; name the database: "
            "database: postgresql://user@host/database (or env:NAME)"
        )
    if not problems:
        try:
            check_no_secret(mapping.database or "", where=f"in the mapping file {source}")
        except ParameterError as exc:
            problems.append(str(exc))
    if problems:
        return unreadable(str(source), *problems)
    url, why = resolve_env(mapping.database or "")
    if url is None:
        return unreadable(str(source), f"{source}: database: {why}")
    return read_database(_beside(url, path.parent), mapping=mapping)


def _beside(url: str, folder: Path) -> str:
    """A SQLite URL with a relative path, made relative to the mapping file's folder (as paths
    in a job file are); any other URL unchanged."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/"):
        return url
    rest = url[len(prefix) :]
    path, sep, query = rest.partition("?")
    if not path or path == ":memory:" or Path(path).expanduser().is_absolute():
        return url
    return f"{prefix}{(folder / path).resolve()}{sep}{query}"


# --------------------------------------------------------------------------------------------
# Connecting


def _url(text: str) -> sa.engine.URL:
    """The SQLAlchemy URL of a source, with the psycopg (3) driver for ``postgresql://``."""
    sa = _sqlalchemy()
    try:
        url = sa.engine.make_url(text)
    except Exception as exc:
        raise _SourceError(f"{redact(text)} is not a database URL: {_first_line(exc)}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "postgresql" and url.drivername != "postgresql+psycopg":
        raise _SourceError(
            f"{redact(text)}: rehabstats reads PostgreSQL with the psycopg (3) driver: write "
            "the URL as postgresql://user@host/database"
        )
    return url


def _kind(url: sa.engine.URL) -> str:
    return url.get_backend_name()


def _engine(url: sa.engine.URL, *, read_only: bool) -> sa.engine.Engine:
    """An engine that opens one connection (no pool): PostgreSQL with a connection timeout and
    an application name; SQLite opened read only when reading (a missing file is refused, not
    created)."""
    sa = _sqlalchemy()
    from sqlalchemy.pool import NullPool

    kind = _kind(url)
    args: dict[str, Any] = {}
    if kind == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            if url.drivername == "postgresql+psycopg":
                raise _SourceError(MISSING_EXTRA) from None
        query = {k.lower() for k in url.query}
        if "connect_timeout" not in query and not os.environ.get("PGCONNECT_TIMEOUT"):
            args["connect_timeout"] = 10
        if "application_name" not in query and not os.environ.get("PGAPPNAME"):
            args["application_name"] = "rehabstats"
    elif kind == "sqlite" and read_only:
        database = url.database or ""
        if database in ("", ":memory:"):
            raise _SourceError(f"{url} is an empty in-memory database: give a database file")
        if database.startswith("file:"):
            raise _SourceError(f"{url}: give the database file's path (sqlite:///path.db)")
        path = Path(database).expanduser()
        if not path.is_file():
            raise _SourceError(f"the SQLite database file {path} does not exist")
        import sqlite3

        target = f"{path.resolve().as_uri()}?mode=ro"
        return _transactional(
            sa.create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(target, uri=True),
                poolclass=NullPool,
            )
        )
    try:
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=args)
    except Exception as exc:  # an unknown dialect or a missing driver
        raise _SourceError(
            f"{redact(url.render_as_string(hide_password=False))}: {_first_line(exc)}"
            + (f"; {MISSING_EXTRA}" if isinstance(exc, ImportError) else "")
        ) from None
    return _transactional(engine) if kind == "sqlite" else engine


def _transactional(engine: sa.engine.Engine) -> sa.engine.Engine:
    """SQLite with real transactions: Python's sqlite3 commits each CREATE TABLE by itself
    (it begins a transaction only before data changes); SQLAlchemy's recipe lets the engine
    issue BEGIN, so that a write is all or nothing and a read is one snapshot."""
    sa = _sqlalchemy()

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _where(url: sa.engine.URL) -> str:
    if url.host:
        return f"{url.host} port {url.port or 5432}" if _kind(url) == "postgresql" else url.host
    host = (url.query or {}).get("host")
    return f"the socket in {host}" if host else "the local socket"


def _scrub(text: str, url: sa.engine.URL) -> str:
    """A driver's message without the password (no driver prints it; never trust that)."""
    password = url.password
    if password:
        text = text.replace(str(password), "***")
    for secret in ("PGPASSWORD",):
        value = os.environ.get(secret)
        if value:
            text = text.replace(value, "***")
    return text


def connection_problem(exc: BaseException, url: sa.engine.URL) -> str:
    """One clear sentence for a connection that failed, saying how to fix it."""
    said = _scrub(_first_line(exc), url)
    low = said.lower()
    where, user, database = _where(url), url.username or "(none)", url.database or ""
    if "password authentication failed" in low or "authentication failed" in low:
        return (
            f"the database server at {where} refused the password of user {user} "
            "(password authentication failed): check the password in PGPASSWORD or ~/.pgpass, "
            "or the URL in the environment variable named by env: (docs/databases.md)"
        )
    if "no password supplied" in low or "password is required" in low:
        return (
            f"the database server at {where} asks for the password of user {user} and none "
            "was given: set PGPASSWORD, add a line host:port:database:user:password for it "
            "to ~/.pgpass (mode 0600), or give env:NAME with the whole URL (docs/databases.md)"
        )
    if "does not exist" in low and "database" in low:
        return f"the database server at {where} has no database {database!r}: check its name"
    if "pg_hba.conf" in low:
        return (
            f"the database server at {where} does not accept connections from this machine "
            f"for user {user} and database {database!r} (pg_hba.conf): ask its administrator"
        )
    unreachable = (
        "connection refused",
        "could not connect",
        "timeout",
        "timed out",
        "no route to host",
        "could not translate host name",
        "name or service not known",
        "network is unreachable",
        "no such file or directory",
    )
    if any(word in low for word in unreachable):
        reason = next(
            (w for w in ("connection refused", "timeout expired", "no route to host") if w in low),
            said,
        )
        if "translate host name" in low or "name or service not known" in low:
            reason = "unknown host name"
        return (
            f"cannot connect to the database server at {where} ({reason}): check the host "
            "and port in the URL, that the server is running and that this machine may reach it"
        )
    return f"cannot connect to the database {redact(str(url))}: {said}"


# --------------------------------------------------------------------------------------------
# Reading


def read_database(
    url: str,
    *,
    mapping: str | os.PathLike | Mapping[str, Any] | DatabaseMapping | None = None,
) -> SourceTables:
    """Read the raw contract tables of a database, without validating them.

    Parameters
    ----------
    url : str
        A SQLAlchemy URL: ``postgresql://user@host:port/database`` (the password from
        ``PGPASSWORD`` or ``~/.pgpass``; a password in the URL is accepted here and never
        shown), ``sqlite:///path/to/cohort.db``.
    mapping : path, mapping or DatabaseMapping, optional
        Where the tables are (:func:`parse_mapping`); default: each contract table is the
        table or view of its name in the connection's default schema.

    Returns
    -------
    SourceTables
        ``kind`` ``postgresql`` or ``sqlite``; ``location`` the URL without its password. A
        server that cannot be reached, refused credentials or a missing dependency is one
        problem of kind ``source``; a missing table, a query that fails, a column of the
        mapping that is not in the table are problems of that table.
    """
    location = redact(url)
    if isinstance(mapping, DatabaseMapping):
        chosen, problems = mapping, []
    elif isinstance(mapping, str | os.PathLike):
        chosen, problems = read_mapping(mapping)
    else:
        chosen, problems = parse_mapping(mapping, origin="mapping")
    if problems:
        return unreadable(location, *problems)
    try:
        parsed = _url(url)
        engine = _engine(parsed, read_only=True)
    except _SourceError as exc:
        return unreadable(location, str(exc))
    kind = _kind(parsed)
    sa = _sqlalchemy()
    read = SourceTables(kind=kind, location=location)
    try:
        with engine.connect() as conn:
            if kind == "postgresql":
                conn = conn.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            with conn.begin():
                _read_tables(conn, chosen, read)
    except (sa.exc.SQLAlchemyError, *_driver_errors()) as exc:
        read.report.problems.append(
            Problem("(source)", None, None, location, connection_problem(exc, parsed), "source")
        )
    except _SourceError as exc:
        read.report.problems.append(Problem("(source)", None, None, location, str(exc), "source"))
    finally:
        engine.dispose()
    return read


@dataclass
class _Catalog:
    """What the database holds, per schema: its tables and views."""

    inspector: Any
    default_schema: str | None
    schemas: bool = True
    relations: dict[str | None, set[str]] = field(default_factory=dict)

    def names(self, schema: str | None) -> set[str]:
        if schema not in self.relations:
            found = set(self.inspector.get_table_names(schema=schema))
            found |= set(self.inspector.get_view_names(schema=schema))
            with contextlib.suppress(NotImplementedError):  # PostgreSQL has them
                found |= set(self.inspector.get_materialized_view_names(schema=schema))
            self.relations[schema] = found
        return self.relations[schema]


def _read_tables(conn: sa.Connection, mapping: DatabaseMapping, read: SourceTables) -> None:
    sa = _sqlalchemy()
    postgres = read.kind == "postgresql"
    if postgres:
        conn.exec_driver_sql("SET LOCAL DateStyle TO 'ISO, YMD'")
        conn.exec_driver_sql("SET LOCAL extra_float_digits TO 3")
    inspector = sa.inspect(conn)
    catalog = _Catalog(inspector, inspector.default_schema_name, schemas=postgres)
    schemas = {mapping.schema} | {t.schema for t in mapping.tables.values() if t.schema}
    schemas.discard(None)
    if schemas:
        existing = set(inspector.get_schema_names())
        missing = sorted(s for s in schemas if s not in existing)
        if missing:
            raise _SourceError(
                f"the database has no schema {', '.join(map(repr, missing))} (named in "
                f"{mapping.origin}); its schemas: {', '.join(sorted(existing))}"
            )
    failures = (sa.exc.DBAPIError, *_driver_errors())
    for name in TABLES:
        entry = mapping.table(name)
        if entry.absent:
            continue
        try:
            if postgres:
                with conn.begin_nested():  # a failing query must not end the transaction
                    found = _read_one(conn, entry, mapping, catalog, read.kind)
            else:
                found = _read_one(conn, entry, mapping, catalog, read.kind)
        except failures as exc:
            if _connection_lost(exc):
                raise
            read.report.problems.append(_query_problem(name, entry, exc, catalog))
            continue
        if isinstance(found, Problem):
            read.report.problems.append(found)
            continue
        if found is None:
            continue
        frame, coordinates = found
        read.tables[name] = frame
        read.numbering[name] = 1
        read.coordinates[name] = coordinates


def _driver_errors() -> tuple[type[BaseException], ...]:
    """The errors of psycopg itself (raised by ``COPY``, which goes to the driver directly)."""
    try:
        import psycopg
    except ImportError:
        return ()
    return (psycopg.Error,)


def _connection_lost(exc: BaseException) -> bool:
    """Whether a failed read lost the connection (nothing more can be read) rather than
    failing on one table (a query error, a permission refused)."""
    sa = _sqlalchemy()
    operational = isinstance(exc, sa.exc.OperationalError) or type(exc).__name__ in (
        "OperationalError",
        "ConnectionTimeout",
    )
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    low = _first_line(exc).lower()
    return operational and any(
        w in low for w in ("server closed", "connection", "terminating", "timeout", "canceling")
    )


def _query_problem(
    name: str, entry: TableMapping, exc: BaseException, catalog: _Catalog
) -> Problem:
    said = _first_line(exc)
    if "permission denied" in said.lower():
        what = "the query" if entry.query else f"table {_label(entry, catalog)}"
        rule = (
            f"the database role may not read {what} ({said}): grant it SELECT (docs/databases.md)"
        )
    elif entry.query:
        rule = f"the query of the mapping failed: {said}"
    else:
        rule = f"table {_label(entry, catalog)} cannot be read: {said}"
    return Problem(name, None, None, entry.query or entry.relation or name, rule, "query")


def _label(entry: TableMapping, catalog: _Catalog, schema: str | None = None) -> str:
    """``public.pain`` (PostgreSQL, or a schema named), ``pain`` (SQLite's main schema)."""
    relation = entry.relation or entry.table
    shown = schema or entry.schema or (catalog.default_schema if catalog.schemas else None)
    return f"{shown}.{relation}" if shown else relation


def _variants(name: str) -> set[str]:
    """How a table's name may be written by mistake: another case or punctuation, singular."""
    base = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    return {base, base + "s", base.removesuffix("s"), base.replace("_", "")}


def _near_misses(name: str, names: set[str]) -> list[str]:
    """Tables whose names differ from ``name`` only in case, punctuation or a plural ``s``."""
    wanted = _variants(name)
    return sorted(n for n in names if n != name and _variants(n) & wanted)


def _read_one(
    conn: sa.Connection,
    entry: TableMapping,
    mapping: DatabaseMapping,
    catalog: _Catalog,
    kind: str,
) -> tuple[pd.DataFrame, Coordinates] | Problem | None:
    """One contract table: (raw frame, coordinates), a problem, or None (absent: no records)."""
    name = entry.table
    mapped = name in mapping.tables
    required = name in ("participants", "sessions")
    if entry.query is not None:
        return _read_query(conn, entry, kind)
    schema = entry.schema or mapping.schema
    names = catalog.names(schema)
    relation = entry.relation or name
    label = _label(entry, catalog, schema)
    if relation not in names:
        near = _near_misses(relation, names)
        if not near and not mapped and not required:
            return None  # an optional table the database does not hold: no records
        shown = schema or (catalog.default_schema if catalog.schemas else None)
        where = f"schema {shown}" if shown else "the database"
        rule = f"{'required ' if required else ''}table {label} is not in {where}"
        if near:
            rule += (
                f"; {', '.join(near)} looks like it: name it in a mapping file "
                f"(tables: {name}: {near[0]}; docs/databases.md)"
            )
        elif not mapped:
            rule += "; if it has another name, map it in a mapping file (docs/databases.md)"
        if not required and not mapped:
            rule += f", or write {name}: null there if the database holds no {name}"
        return Problem(name, None, None, relation, rule, "relation")
    columns = catalog.inspector.get_columns(relation, schema=schema)
    db_names = [c["name"] for c in columns]
    for contract, source in entry.columns.items():
        if source not in db_names:
            close = difflib.get_close_matches(source, db_names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return Problem(
                name,
                None,
                contract,
                source,
                f"the mapping reads {contract} from column {source!r}, which table {label} "
                f"does not have{hint}",
                "relation",
            )
    pk = catalog.inspector.get_pk_constraint(relation, schema=schema).get("constrained_columns")
    sa = _sqlalchemy()
    prep = conn.dialect.identifier_preparer
    target = (f"{prep.quote_schema(schema)}." if schema else "") + prep.quote(relation)
    renamed = {source: contract for contract, source in entry.columns.items()}
    shadowed = set(entry.columns) - set(entry.columns.values())
    kept = [c for c in columns if c["name"] not in shadowed or c["name"] in renamed]
    select = []
    for c in kept:
        q = prep.quote(c["name"])
        if kind == "postgresql" and isinstance(c["type"], sa.DateTime):
            # a timestamp at midnight is the date it names; any other keeps its time of day
            # (and is reported: a date must be a whole day)
            select.append(
                f"CASE WHEN {q} = date_trunc('day', {q}) THEN CAST(CAST({q} AS date) AS text) "
                f"ELSE CAST({q} AS text) END AS {q}"
            )
        else:
            select.append(q)
    key = list(entry.key or pk or [])
    missing = [k for k in key if k not in db_names]
    if missing:
        return Problem(
            name, None, None, ", ".join(missing),
            f"the mapping's key names {', '.join(missing)}, not columns of table {label}",
            "relation",
        )  # fmt: skip
    order = _order(entry, kept, renamed, pk, kind, prep)
    sql = f"SELECT {', '.join(select)} FROM {target}" + (f" ORDER BY {order}" if order else "")
    names = [c["name"] for c in kept]
    types = _read_as(name, [renamed.get(n, n) for n in names], [_sql_kind(c["type"]) for c in kept])
    frame = _fetch(conn, sql, names, kind, types)
    frame.columns = [renamed.get(c, c) for c in frame.columns]
    return frame, _coordinates(f"table {label}", frame, key, entry, renamed)


_POSTGRES_TYPES = {
    1082: "date",
    1114: "date",  # timestamp: read as its date when at midnight (see _read_one)
    1184: "date",  # timestamptz
    20: "number",  # int8
    21: "number",  # int2
    23: "number",  # int4
    700: "number",  # float4
    701: "number",  # float8
    1700: "number",  # numeric
}
"""PostgreSQL type OIDs of a query's columns: what their text holds."""


def _sql_kind(column_type: Any) -> str:
    """``date``, ``number`` or ``text``: what a reflected column's text holds."""
    sa = _sqlalchemy()
    if isinstance(column_type, sa.Date | sa.DateTime):
        return "date"
    # (Float is not a Numeric in SQLAlchemy 2.1)
    if isinstance(column_type, sa.Numeric | sa.Float | sa.Integer):
        return "number"
    return "text"


def _read_as(table: str, columns: list[str], kinds: list[str]) -> list[str]:
    """How each column is read: a date or number column of the database as dates or numbers
    where the contract expects them; everything else (text, identifiers, extra columns) as text.
    """
    spec = {f.name: f.type for f in table_spec(table).fields}
    wanted = {"date": ("date",), "number": ("number", "integer")}
    return [
        kind if kind in wanted and spec.get(column) in wanted[kind] else "text"
        for column, kind in zip(columns, kinds, strict=True)
    ]


def _order(
    entry: TableMapping,
    columns: list[dict[str, Any]],
    renamed: dict[str, str],
    pk: list[str] | None,
    kind: str,
    prep: Any,
) -> str:
    """The reading order: the primary key, else the contract columns (natural key first)."""
    if pk:
        return ", ".join(prep.quote(c) for c in pk)
    sa = _sqlalchemy()
    sortable = (sa.String, sa.Integer, sa.Numeric, sa.Float, sa.Date, sa.DateTime, sa.Boolean)
    by_contract = {renamed.get(c["name"], c["name"]): c for c in columns}
    contract = table_spec(entry.table).columns
    ordered = [
        *NATURAL_KEYS[entry.table],
        *[c for c in contract if c not in NATURAL_KEYS[entry.table]],
    ]
    parts = []
    for name in ordered:
        column = by_contract.get(name)
        if column is None or not isinstance(column["type"], sortable):
            continue
        q = prep.quote(column["name"])
        text_like = isinstance(column["type"], sa.String) and not isinstance(
            column["type"], sa.Enum
        )
        parts.append(f'{q} COLLATE "C"' if kind == "postgresql" and text_like else q)
    return ", ".join(parts)


def _read_query(
    conn: sa.Connection, entry: TableMapping, kind: str
) -> tuple[pd.DataFrame, Coordinates] | Problem:
    """A mapped query's rows, in its own order."""
    query = entry.query or ""
    if kind == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor:
            cursor.execute(f"SELECT * FROM ({query}) AS rehabstats_query LIMIT 0")
            described = [(c.name, c.type_code) for c in cursor.description or []]
        names = [n for n, _ in described]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            return Problem(
                entry.table, None, None, ", ".join(repeated),
                f"the mapping's query returns {', '.join(repeated)} more than once: name each "
                "column once (AS)", "relation",
            )  # fmt: skip
        timestamps = {n for n, code in described if code in (1114, 1184)}
        if timestamps:
            prep = conn.dialect.identifier_preparer
            parts = []
            for n in names:
                q = prep.quote(n)
                parts.append(
                    f"CASE WHEN {q} = date_trunc('day', {q}) THEN CAST(CAST({q} AS date) AS text) "
                    f"ELSE CAST({q} AS text) END AS {q}"
                    if n in timestamps
                    else q
                )
            query = f"SELECT {', '.join(parts)} FROM ({query}) AS rehabstats_query"
        renamed = {source: contract for contract, source in entry.columns.items()}
        kinds = [_POSTGRES_TYPES.get(code, "text") for _, code in described]
        types = _read_as(entry.table, [renamed.get(n, n) for n in names], kinds)
        frame = _fetch(conn, query, names, kind, types)
    else:
        frame = _fetch(conn, query, None, kind)
    renamed = {source: contract for contract, source in entry.columns.items()}
    frame.columns = [renamed.get(c, c) for c in frame.columns]
    key = list(entry.key or [])
    present = list(frame.columns)
    missing = [k for k in key if k not in present and renamed.get(k, k) not in present]
    if missing:
        return Problem(
            entry.table, None, None, ", ".join(missing),
            f"the mapping's key names {', '.join(missing)}, not columns of the query's result",
            "relation",
        )  # fmt: skip
    return frame, _coordinates(f"query {entry.table}", frame, key, entry, renamed)


def _coordinates(
    label: str,
    frame: pd.DataFrame,
    key: list[str],
    entry: TableMapping,
    renamed: dict[str, str],
) -> Coordinates:
    """Record positions (and a contract column) -> ``table public.pain, id 18234`` (the key's
    database names), with ``column pain_score`` when the mapping names the column otherwise."""
    if not key:  # the contract's natural key, under the database's names
        key = [entry.columns.get(c, c) for c in NATURAL_KEYS[entry.table]]
    names = list(frame.columns)
    parts = [(k, names.index(renamed.get(k, k))) for k in key if renamed.get(k, k) in names]

    def at(positions: np.ndarray, column: str | None = None) -> list[str]:
        shown = []
        for display, j in parts:
            values = frame.iloc[np.asarray(positions, dtype=np.int64), j].astype(object)
            shown.append([f"{display} {_key_text(v)}" for v in values.tolist()])
        if column in entry.columns:  # the contract's column is shown beside; its own name here
            shown.append([f"column {entry.columns[column]}"] * len(positions))
        return (
            [", ".join([label, *cells]) for cells in zip(*shown, strict=True)]
            if shown
            else [label] * len(positions)
        )

    return at


def _key_text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "(empty)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else str(value)
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fetch(
    conn: sa.Connection,
    sql: str,
    names: list[str] | None,
    kind: str,
    types: list[str] | None = None,
) -> pd.DataFrame:
    """The rows of a query as a raw frame: PostgreSQL through COPY (``types``: how to read each
    column); others as the driver types them."""
    if kind == "postgresql":
        return _copy_text(conn, sql, names or [], types or ["text"] * len(names or []))
    result = conn.exec_driver_sql(sql)
    keys = list(result.keys())
    frames = []
    while rows := result.fetchmany(_BLOCK_ROWS):
        frames.append(pd.DataFrame.from_records(rows, columns=range(len(keys)), coerce_float=True))
    frame = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({i: pd.Series(dtype=object) for i in range(len(keys))})
    )
    frame.columns = keys  # repeated names stay repeated
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Driver values with explicit column types: text as text, days as dates (anything else,
    e.g. a mix of text and numbers in an SQLite column, is left for the validation to name)."""
    out = {}
    for j in range(frame.shape[1]):
        values = frame.iloc[:, j]
        if values.dtype == object:
            inferred = pd.api.types.infer_dtype(values, skipna=True)
            if inferred == "string":
                values = values.astype("str")
            elif inferred in ("date", "datetime", "datetime64"):
                # out of range for pandas: left as they are, the validation names each
                with contextlib.suppress(ValueError, OverflowError, TypeError):
                    values = pd.to_datetime(values)
        out[j] = values
    typed = pd.DataFrame(out)
    typed.columns = list(frame.columns)
    return typed


def _copy_text(conn: sa.Connection, sql: str, names: list[str], types: list[str]) -> pd.DataFrame:
    """``COPY (sql) TO STDOUT`` in CSV, parsed by Arrow as text columns (as a CSV file is: an
    empty value is missing), then each ``date`` or ``number`` column typed (:func:`_typed`).
    Read a block of rows at a time (memory: one block of text)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    placeholders = [f"c{i}" for i in range(len(names))]
    read_options = pacsv.ReadOptions(column_names=placeholders)
    parse_options = pacsv.ParseOptions(newlines_in_values=True)
    from rehabstats.data.folder import text_convert_options

    convert_options = text_convert_options(placeholders)
    raw = conn.connection.driver_connection
    parts = []

    def parse(block: bytearray) -> None:
        parts.append(
            pacsv.read_csv(
                io.BytesIO(block),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        )

    with raw.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
        # one message per row: gathered into blocks (a row never spans two), each parsed
        block = bytearray()
        for row in copy:
            block += row
            if len(block) >= _BLOCK_BYTES:
                parse(block)
                block = bytearray()
        if block:
            parse(block)
    if parts:
        table = pa.concat_tables(parts)
    else:
        table = pa.table({c: pa.array([], pa.string()) for c in placeholders})
    columns = [_typed_text(table.column(i), kind) for i, kind in enumerate(types)]
    frame = pa.table(dict(zip(placeholders, columns, strict=True))).to_pandas()
    frame.columns = list(names)
    return frame


_NOT_FINITE = ("NaN", "Infinity", "-Infinity")


def _typed_text(text: Any, kind: str) -> Any:
    """A column of PostgreSQL's text as dates or numbers, explicitly; left as text when any
    value is not a plain date or a finite number (``infinity``, a BC date, a time of day,
    ``NaN``), so that the validation names each such value rather than it becoming missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind == "date":
        parsed = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
        return parsed if parsed.null_count == text.null_count else text
    if kind == "number":
        if pc.any(pc.is_in(text, value_set=pa.array(_NOT_FINITE))).as_py():
            return text
        for target in (pa.int64(), pa.float64()):  # whole numbers stay whole ("11", not "11.0")
            try:
                return pc.cast(text, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        return text
    return text


# --------------------------------------------------------------------------------------------
# Writing


def _column_type(kind: str) -> Any:
    sa = _sqlalchemy()
    return {"string": sa.Text, "date": sa.Date, "integer": sa.BigInteger, "number": sa.Double}[kind]


def write_database(
    cohort: Any,
    url: str,
    *,
    overwrite: bool = False,
) -> str:
    """Write a cohort's tables into a database, all or nothing.

    Each contract table becomes a table of its name in the connection's default schema, with
    the contract's types (text, date, bigint, double precision), ``NOT NULL`` on required
    columns and a primary key ``id`` (the record's number in the cohort, so that reading it
    back gives the same order and the same fingerprint). PostgreSQL is written with ``COPY``.

    Parameters
    ----------
    cohort : Cohort or mapping of table name to DataFrame
        Tables with contract dtypes (a :class:`~rehabstats.Cohort`, or
        :func:`~rehabstats.simulate_tables`' output).
    url : str
        ``postgresql://user@host/database`` or ``sqlite:///path.db`` (created when missing).
    overwrite : bool
        Replace the cohort tables rehabstats wrote there before. A table of a contract name
        that rehabstats did not write is never dropped: it is refused either way.

    Returns
    -------
    str
        The URL without its password.

    Raises
    ------
    OutputError
        The database cannot be reached or written, or holds tables of the cohort's names
        (and not ``overwrite``, or not written by rehabstats). Nothing was written.
    """
    from rehabstats.data.cohort import Cohort

    tables = cohort.tables if isinstance(cohort, Cohort) else dict(cohort)
    location = redact(url)
    try:
        parsed = _url(url)
        engine = _engine(parsed, read_only=False)
    except _SourceError as exc:
        raise OutputError(f"{exc}; nothing was written") from None
    sa = _sqlalchemy()
    names = [n for n in TABLES if n in tables]
    try:
        with engine.begin() as conn:
            _write_all(conn, tables, names, overwrite=overwrite, location=location)
    except (sa.exc.SQLAlchemyError, *_driver_errors()) as exc:
        if isinstance(exc, sa.exc.OperationalError) and not exc.statement:
            raise OutputError(f"{connection_problem(exc, parsed)}; nothing was written") from None
        raise OutputError(
            f"cannot write the cohort into {location}: {_scrub(_first_line(exc), parsed)}; "
            "nothing was written"
        ) from None
    finally:
        engine.dispose()
    return location


def _write_all(
    conn: sa.Connection,
    tables: Mapping[str, pd.DataFrame],
    names: list[str],
    *,
    overwrite: bool,
    location: str,
) -> None:
    sa = _sqlalchemy()
    inspector = sa.inspect(conn)
    existing = set(inspector.get_table_names()) | set(inspector.get_view_names())
    meta = sa.MetaData()
    marker = sa.Table(
        MARKER_TABLE,
        meta,
        sa.Column("table_name", sa.Text, primary_key=True),
        sa.Column("written_at", sa.Text, nullable=False),
        sa.Column("columns", sa.Text, nullable=False),
    )
    listed: dict[str, str] = {}
    if MARKER_TABLE in existing:
        listed = dict(conn.execute(sa.select(marker.c.table_name, marker.c.columns)).all())
    # ours: listed, and still the table written then (not another one created under its name)
    ours = {
        name
        for name, columns in listed.items()
        if name in existing and _signature(inspector.get_columns(name)) == columns
    }
    clash = sorted(n for n in TABLES if n in existing)
    if clash and not overwrite:
        raise OutputError(
            f"{location} already holds the tables {', '.join(clash)}: a cohort is written only "
            "into a database without them, so that no table rehabstats did not write is ever "
            "replaced. Choose another database, or replace the cohort tables rehabstats wrote "
            "there (--overwrite). Nothing was written."
        )
    foreign = [n for n in clash if n not in ours]
    if foreign:
        raise OutputError(
            f"{location} holds the tables {', '.join(foreign)}, which rehabstats did not write: "
            "they are never dropped, with --overwrite or without. Choose another database. "
            "Nothing was written."
        )
    prep = conn.dialect.identifier_preparer
    for name in clash:  # ours: the previous cohort's tables, all of them (as in a folder)
        conn.exec_driver_sql(f"DROP TABLE {prep.quote(name)}")
    meta.create_all(conn, tables=[marker])
    conn.execute(sa.delete(marker).where(marker.c.table_name.in_(list(TABLES))))
    postgres = conn.dialect.name == "postgresql"
    stamp = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    for name in names:
        spec = table_spec(name)
        frame = tables[name]
        columns = [f for f in spec.fields if f.name in frame]
        table = sa.Table(
            name,
            meta,
            sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
            *[sa.Column(f.name, _column_type(f.type), nullable=not f.required) for f in columns],
        )
        table.create(conn)
        signature = _signature(sa.inspect(conn).get_columns(name))
        conn.execute(sa.insert(marker).values(table_name=name, written_at=stamp, columns=signature))
        if frame.empty:
            continue
        if postgres:
            _copy_in(conn, name, frame, columns)
        else:
            _insert(conn, table, frame, columns)


def _signature(columns: list[dict[str, Any]]) -> str:
    """A table's columns as its database reports them (names and types), to recognise a table
    rehabstats wrote."""
    return ", ".join(f"{c['name']} {c['type']!r}" for c in columns)


def _arrow_columns(frame: pd.DataFrame, columns: list[Any]) -> Any:
    """The table as Arrow arrays of the database's types (ids numbered from 1)."""
    import pyarrow as pa

    arrays = {"id": pa.array(np.arange(1, len(frame) + 1, dtype=np.int64))}
    for f in columns:
        values = frame[f.name]
        if f.type == "string":
            array = pa.array(values.astype(object).where(values.notna(), None), pa.string())
        elif f.type == "date":
            array = pa.array(pd.to_datetime(values), from_pandas=True).cast(pa.date32())
        elif f.type == "integer":
            array = pa.array(values.astype("float64"), from_pandas=True).cast(pa.int64())
        else:
            array = pa.array(values.astype("float64"), from_pandas=True)
        arrays[f.name] = array
    return pa.table(arrays)


def _copy_in(conn: sa.Connection, name: str, frame: pd.DataFrame, columns: list[Any]) -> None:
    import pyarrow.csv as pacsv

    table = _arrow_columns(frame, columns)
    prep = conn.dialect.identifier_preparer
    names = ", ".join(prep.quote(c) for c in table.column_names)
    raw = conn.connection.driver_connection
    options = pacsv.WriteOptions(include_header=False)
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {prep.quote(name)} ({names}) FROM STDIN (FORMAT csv)") as copy,
    ):
        for batch in table.to_batches(max_chunksize=_BLOCK_ROWS):
            sink = io.BytesIO()
            pacsv.write_csv(batch, sink, options)
            copy.write(sink.getvalue())


def _insert(conn: sa.Connection, table: Any, frame: pd.DataFrame, columns: list[Any]) -> None:
    arrow = _arrow_columns(frame, columns)
    for batch in arrow.to_batches(max_chunksize=_BLOCK_ROWS):
        conn.execute(table.insert(), batch.to_pylist())
