"""Where a cohort comes from: one reader per kind of source, all ending in the same raw tables.

A *source* is a string (or a path) naming where the seven contract tables are:

- a cohort **folder** (one CSV, Parquet or XLSX file per table; :mod:`rehabstats.data.folder`);
- a **REDCap** records export (a ``.csv`` file, or a folder holding ``redcap_export.csv`` and the
  data dictionary; ``redcap:PATH`` says so explicitly) or a REDCap **API** address
  (``https://redcap.example.org/api/``, the token from the environment or a file;
  :mod:`rehabstats.data.redcap`);
- a **database URL** (SQLAlchemy's form: ``postgresql://user@host/db``, ``sqlite:///file.db``;
  :mod:`rehabstats.data.sql`) or a **database mapping file** (``clinic.yaml`` naming the database
  and where each table is in it);
- ``env:NAME``: the source held in the environment variable ``NAME`` -- the way to give a URL
  that carries a password, which is never accepted on a command line.

Each kind has a reader (:data:`SOURCE_KINDS`: adding a kind is one entry there plus its module)
that returns :class:`SourceTables`: the raw tables by contract name, how their records are
numbered, the problems found while reading, each record's place in the source's own terms and
a redacted location for provenance. :func:`rehabstats.load_cohort` validates them exactly as
it validates a folder, so every source gives the same errors and the same parsed tables (and
the same :meth:`~rehabstats.Cohort.fingerprint` for the same data).

Credentials (passwords, API tokens) never appear in a location, a message or a report: URLs are
shown through :func:`redact`, and :func:`check_no_secret` refuses a source that carries one
where it would be seen by others (a command line, a job file).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import numpy as np
import pandas as pd

from rehabstats.errors import ParameterError, Problem, ValidationReport

__all__ = [
    "SOURCE_KINDS",
    "Coordinates",
    "Numbering",
    "SourceKind",
    "SourceTables",
    "check_no_secret",
    "describe_kind",
    "is_url",
    "read_folder",
    "read_source",
    "redact",
    "resolve_env",
    "secret_in",
    "source_path",
    "unreadable",
]

Numbering = int | Callable[[], np.ndarray]
"""How a table's records are numbered in problems: an offset added to the 0-based position, or
a function returning the row of every record (see
:func:`rehabstats.data.schema.validate_tables`)."""

Coordinates = Callable[[np.ndarray, str | None], list[str]]
"""``(0-based record positions, contract column or None)`` -> the source's own coordinates of
those records, e.g. ``table clinic.pain, id 18234, column pain_score`` or ``record P012,
pain #3, field pain_nrs`` (the column's name in the source, when it knows it)."""


@dataclass
class SourceTables:
    """What a source reader returns: raw contract tables, ready for validation.

    Attributes
    ----------
    tables : dict of str to DataFrame
        The raw tables that could be read, by contract name (text, or typed values: the
        validation parses both; nothing converted by guessing).
    numbering : dict of str to int or callable
        How each table's records are numbered in problems (:data:`Numbering`).
    report : ValidationReport
        Problems found while reading (an unreachable server, a missing table, a mapping file
        that is wrong...) and data notes.
    coordinates : dict of str to callable
        For tables whose rows are not lines of a file (or not of a file of the contract's
        shape): 0-based positions and a column -> the records' places in the source's own
        terms (:data:`Coordinates`), shown as :attr:`Problem.where`.
    kind : str
        ``folder``, ``postgresql``, ``sqlite``, ``redcap-export``, ``redcap-api``...
    location : str
        Where the data are, redacted (no password, no token): for provenance and messages.
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    numbering: dict[str, Numbering] = field(default_factory=dict)
    report: ValidationReport = field(default_factory=ValidationReport)
    coordinates: dict[str, Coordinates] = field(default_factory=dict)
    kind: str = "folder"
    location: str = ""

    def locate(self, report: ValidationReport) -> ValidationReport:
        """``report`` with :attr:`Problem.where` filled in for every problem with a row of a
        table that has :attr:`coordinates` (one call per table and column: vectorised).

        A row is found back at its record's position by inverting the table's numbering; a
        problem whose row is not a record of the table (none is) keeps an empty place."""
        wanted: dict[tuple[str, str | None], list[int]] = {}
        for i, p in enumerate(report.problems):
            if p.row is not None and not p.where and p.table in self.coordinates:
                wanted.setdefault((p.table, p.column), []).append(i)
        if not wanted:
            return report
        problems = list(report.problems)
        for (table, column), indices in wanted.items():
            rows = np.array([problems[i].row for i in indices], dtype=np.int64)
            positions, found = _positions(self.numbering.get(table, 1), rows)
            places = self.coordinates[table](positions[found], column)
            for i, place in zip(np.asarray(indices)[found].tolist(), places, strict=True):
                problems[i] = replace(problems[i], where=place)
        return ValidationReport(problems=problems, warnings=list(report.warnings))


def _positions(numbering: Numbering, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 0-based positions of reported rows, and which rows were found (the inverse of a
    table's numbering)."""
    if not callable(numbering):
        return rows - int(numbering), np.ones(rows.shape, dtype=bool)
    every = np.asarray(numbering(), dtype=np.int64)
    if every.size == 0:
        return np.zeros(rows.shape, dtype=np.int64), np.zeros(rows.shape, dtype=bool)
    order = np.argsort(every, kind="stable")
    ordered = every[order]
    at = np.minimum(np.searchsorted(ordered, rows), every.size - 1)
    return order[at], ordered[at] == rows


# --------------------------------------------------------------------------------------------
# The kinds of source


@dataclass(frozen=True)
class SourceKind:
    """One kind of source: how to recognise it and which function reads it.

    Attributes
    ----------
    name : str
        Its name (the :attr:`SourceTables.kind` its reader usually reports).
    reader : str
        ``"module:function"``, imported when a source of this kind is read (so that
        ``import rehabstats`` does not import database drivers): ``function(source: str,
        **options) -> SourceTables``.
    schemes : tuple of str
        URL schemes it reads (the part before ``://``, without a ``+driver`` suffix).
    matches : str, optional
        ``"module:function"``: ``function(path: Path) -> bool`` for a source that is a path
        (a file or folder of this kind). Kinds are tried in the order of
        :data:`SOURCE_KINDS`; the folder comes last and takes any other path.
    prefix : str, optional
        A path written ``prefix:PATH`` (``redcap:export.csv``) is of this kind whatever
        ``matches`` says; its reader gets the path without the prefix.
    description : str
        What it is, for messages and reports (``PostgreSQL database``).
    credentials : str
        How to give this kind's credential safely (shown when a URL carries one).
    """

    name: str
    reader: str
    schemes: tuple[str, ...] = ()
    matches: str | None = None
    prefix: str | None = None
    description: str = ""
    credentials: str = ""


_DATABASE_CREDENTIALS = (
    "Give the URL without it (postgresql://user@host/database) and the password in the "
    "PGPASSWORD environment variable or a ~/.pgpass file, or put the whole URL in an "
    "environment variable and give env:NAME instead (docs/databases.md)"
)

SOURCE_KINDS: tuple[SourceKind, ...] = (
    SourceKind(
        "postgresql", "rehabstats.data.sql:read_database", ("postgresql", "postgres"),
        description="PostgreSQL database", credentials=_DATABASE_CREDENTIALS,
    ),
    SourceKind(
        "sqlite", "rehabstats.data.sql:read_database", ("sqlite",),
        description="SQLite database", credentials=_DATABASE_CREDENTIALS,
    ),
    SourceKind(
        "redcap-api", "rehabstats.data.redcap:read_redcap_api", ("https", "http"),
        description="REDCap API",
        credentials=(
            "Give the address alone (https://redcap.example.org/api/) and the API token in "
            "the REHABSTATS_REDCAP_TOKEN environment variable, or in a file (chmod 600) "
            "named by REHABSTATS_REDCAP_TOKEN_FILE (docs/redcap.md)"
        ),
    ),
    SourceKind(
        "redcap-export", "rehabstats.data.redcap:read_redcap_export",
        matches="rehabstats.data.redcap:is_export_path", prefix="redcap:",
        description="REDCap export",
    ),
    SourceKind(
        "database-mapping", "rehabstats.data.sql:read_mapping_source",
        matches="rehabstats.data.sql:is_mapping_file",
        description="database (through a mapping file)",
    ),
    SourceKind(
        "folder", "rehabstats.data.sources:read_folder",
        matches="rehabstats.data.sources:is_folder_path", description="cohort folder",
    ),
)  # fmt: skip
"""Every kind of source, in the order a path is tried against them (the folder last)."""


def _function(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_ENV = "env:"


def is_url(source: str | os.PathLike) -> bool:
    """Whether a source is a URL (``scheme://...``) rather than a path."""
    return isinstance(source, str) and _URL.match(source) is not None


def _url_kind(url: str) -> SourceKind | None:
    """The kind that reads a URL (by its scheme, without a ``+driver`` suffix)."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    return next((k for k in SOURCE_KINDS if scheme in k.schemes), None)


def source_path(source: str | os.PathLike) -> tuple[str, Path] | None:
    """The path a source names, apart from its kind's prefix: ``("redcap:", Path(...))``,
    ``("", Path(...))`` for a plain path; None for a URL or ``env:NAME``.

    Commands use it to check that the path exists and to make it absolute
    (``prefix + str(path.resolve())``) without losing what kind it was said to be.
    """
    text = os.fspath(source)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if is_url(text) or text.startswith(_ENV):
        return None
    for kind in SOURCE_KINDS:
        if kind.prefix and text.startswith(kind.prefix):
            return kind.prefix, Path(text[len(kind.prefix) :]).expanduser()
    return "", Path(text).expanduser()


def is_folder_path(path: Path) -> bool:
    """The folder kind takes every path no other kind claims (its reader says what is wrong)."""
    return True


def describe_kind(kind: str | None) -> str:
    """``postgresql`` -> ``PostgreSQL database``: a kind as people read it."""
    for k in SOURCE_KINDS:
        if k.name == kind:
            return k.description
    return kind or "source"


def resolve_env(source: str) -> tuple[str | None, str | None]:
    """``env:NAME`` -> (the variable's value, None); another source -> (itself, None); an unset
    or empty variable -> (None, why)."""
    if not source.startswith(_ENV):
        return source, None
    name = source[len(_ENV) :].strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return None, f"{source!r}: env: must be followed by an environment variable's name"
    value = os.environ.get(name, "").strip()
    if not value:
        return None, (
            f"the environment variable {name} is not set (or is empty): it must hold the "
            "source, e.g. the database URL (docs/databases.md)"
        )
    return value, None


def read_source(source: str | os.PathLike, **options: Any) -> SourceTables:
    """Read the raw tables of any source, without validating them.

    Parameters
    ----------
    source : str or path
        A cohort folder, a REDCap export or API address, a database URL, a database mapping
        file or ``env:NAME`` (see the module's description).
    **options
        Options of the source's reader (e.g. ``mapping=`` for a database URL or a REDCap
        source: see :func:`rehabstats.data.sql.read_database`,
        :func:`rehabstats.data.redcap.read_redcap_export`).

    Returns
    -------
    SourceTables
        Whatever could be read; problems of reading are in its ``report`` (nothing raised for
        a source that cannot be read: an unreachable server is a problem like a missing
        folder).
    """
    text = os.fspath(source)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    resolved, why = resolve_env(text)
    if resolved is None:
        return unreadable(text, why or "")
    if is_url(resolved):
        kind = _url_kind(resolved)
        if kind is not None:
            return _function(kind.reader)(resolved, **options)
        scheme = resolved.split("://", 1)[0]
        known = sorted({f"{s}://" for k in SOURCE_KINDS for s in k.schemes})
        return unreadable(
            redact(resolved),
            f"{redact(resolved)}: rehabstats cannot read a {scheme}:// source; a source is a "
            f"cohort folder, a REDCap export, a database mapping file or a URL starting "
            f"{', '.join(known)}",
        )
    for kind in SOURCE_KINDS:
        if kind.prefix and resolved.startswith(kind.prefix):
            return _function(kind.reader)(resolved[len(kind.prefix) :], **options)
    path = Path(resolved).expanduser()
    for kind in SOURCE_KINDS:
        if kind.matches is not None and _function(kind.matches)(path):
            return _function(kind.reader)(resolved, **options)
    raise AssertionError("the folder kind takes every path")  # pragma: no cover


def unreadable(location: str, *rules: str, kind: str = "") -> SourceTables:
    """A source that cannot be read at all: one ``source`` problem per rule, nothing read
    (an unreachable server, refused credentials, a mapping file that is wrong...)."""
    problems = [Problem("(source)", None, None, location, rule, "source") for rule in rules]
    return SourceTables(report=ValidationReport(problems=problems), kind=kind, location=location)


def read_folder(source: str | os.PathLike, **options: Any) -> SourceTables:
    """The folder reader (:func:`rehabstats.data.folder.read_tables`) as a source."""
    from rehabstats.data.folder import read_tables

    if options:
        raise TypeError(
            f"{', '.join(sorted(options))}: not an option of a cohort folder (a mapping applies "
            "to a database source)"
        )
    from rehabstats.data.partitioned import is_partitioned

    if is_partitioned(source):  # its tables are in part-NNNNN/ folders, not here
        return unreadable(
            str(source),
            "is a partitioned cohort (rehabstats partition or simulate --partitions): compute "
            "its metrics with `rehabstats metrics DIR --engine dask` (docs/scale.md); the "
            "other commands read the cohort it was made from",
            kind="folder",
        )
    tables, numbering, report = read_tables(source)
    return SourceTables(tables, numbering, report, {}, kind="folder", location=str(source))


# --------------------------------------------------------------------------------------------
# Credentials


_SECRET_PARAMETERS = frozenset(
    {"password", "passwd", "pwd", "token", "api_token", "apitoken", "api_key", "apikey",
     "secret", "access_token", "sslpassword"}
)  # fmt: skip
"""Query parameters of a URL that carry a credential (libpq reads ``password`` from one)."""

_HIDDEN = "***"


def secret_in(source: str | os.PathLike) -> str | None:
    """What credential a source carries in itself, if any: ``"a password"`` (in the URL's
    user part or a ``password=`` parameter) or ``"a token"`` (``token=``, ``api_key=``...)."""
    if not is_url(source):
        return None
    parts = urlsplit(str(source))
    if parts.password:
        return "a password"
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _SECRET_PARAMETERS and value:
            return "a password" if "pass" in key.lower() else "a token"
    return None


def redact(source: str | os.PathLike) -> str:
    """A source as it may be shown: a URL's password and credential parameters as ``***``.

    >>> redact("postgresql://clinic:s3cret@db.example/rehab?sslmode=require&password=x")
    'postgresql://clinic:***@db.example/rehab?sslmode=require&password=***'
    >>> redact("data/cohort")
    'data/cohort'
    """
    text = os.fspath(source)
    if not is_url(text):
        return str(text)
    try:
        parts = urlsplit(text)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        hidden = [k for k, _ in pairs if k.lower() in _SECRET_PARAMETERS]
        if parts.password is None and not hidden:
            return text
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.split(':', 1)[0]}:{_HIDDEN}@{host}"
        query = "&".join(
            f"{quote(k, safe='')}="
            + (_HIDDEN if k.lower() in _SECRET_PARAMETERS else quote(v, safe="/:,"))
            for k, v in pairs
        )
        return (
            f"{parts.scheme}://{netloc}{parts.path}"
            + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else "")
        )
    except ValueError:  # not a URL urllib can take apart: show its scheme only
        return text.split("://", 1)[0] + "://" + _HIDDEN


def check_no_secret(source: str | os.PathLike, *, where: str = "on the command line") -> None:
    """Refuse a source that carries a credential where others would see it.

    Raises
    ------
    ParameterError
        Saying how to pass the credential safely, as the source's kind takes it
        (:attr:`SourceKind.credentials`): a database's password in ``PGPASSWORD``, a
        ``.pgpass`` file, or the whole URL in an environment variable given as ``env:NAME``;
        a REDCap API token in ``REHABSTATS_REDCAP_TOKEN`` or a token file.
    """
    what = secret_in(source)
    if what is None:
        return
    kind = _url_kind(os.fspath(source))
    raise ParameterError(
        f"the source {redact(source)} {where} holds {what}: it would be visible to others "
        "(the process list, shell history, logs, version control). "
        + (kind.credentials if kind is not None and kind.credentials else _DATABASE_CREDENTIALS)
    )
