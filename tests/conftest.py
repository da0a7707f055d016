"""Shared fixtures: a real PostgreSQL server for the database tests; the fingerprint of a
module's cohort read from a folder (what every other source must give for the same data); how
tests share workers.

The server is the throwaway cluster `.ci/run` starts (`.ci/postgres start DIR` prints its URL)
and exports as ``REHABSTATS_TEST_PG``: a superuser URL with its password. Each test that asks
for ``pg_database`` gets a new, empty database in it, dropped afterwards. Without the variable
those tests are skipped, saying so (CI always sets it).
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_ENV = "REHABSTATS_TEST_PG"

RENDERED_DEMO_MODULES = frozenset({"test_render", "test_html_browser", "test_polish", "test_print"})
"""Modules using the demo reports rendered once per process (``test_render.rendered_demo``)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist (``--dist loadgroup``), keep each module's tests in one worker (its
    module-scoped fixtures, e.g. a prepared analysis, are then made once), and the modules
    sharing the rendered demo reports together (rendered once, not once per worker)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else item.nodeid
        group = "rendered_demo" if module in RENDERED_DEMO_MODULES else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="module")
def folder_fingerprint(tables, tmp_path_factory) -> str:
    """The fingerprint of the module's ``tables`` written as a folder of CSV files and loaded
    back: the reference a database or REDCap source of the same data must match."""
    from rehabstats import load_cohort, write_cohort

    folder = write_cohort(tables, tmp_path_factory.mktemp("folder") / "cohort")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_cohort(folder).fingerprint()


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The superuser URL of the test PostgreSQL server (the tests are skipped without one)."""
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        pytest.skip(
            f"no PostgreSQL server configured: set {PG_ENV} to a superuser URL "
            "(.ci/run starts one with .ci/postgres start DIR)"
        )
    pytest.importorskip("psycopg", reason="the [sql] extra is not installed")
    return url


def with_database(url: str, database: str, *, user: str | None = None) -> str:
    """``url`` pointing at another database (and user, without a password when given)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, ""))


def without_password(url: str) -> tuple[str, str]:
    """The URL without its password (as a command line takes it), and the password."""
    parts = urlsplit(url)
    return with_database(url, parts.path.lstrip("/"), user=parts.username), parts.password or ""


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """A new empty database: its superuser URL (with the password, for the Python API)."""
    import psycopg

    name = f"rs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield with_database(pg_server, name)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
