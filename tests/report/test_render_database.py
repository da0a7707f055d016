"""Reports rendered from a PostgreSQL source (the server .ci/run starts; skipped without one)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from cli_support import run_in_process
from conftest import without_password

from rehabstats import render_report
from rehabstats.data.simulate import simulate_tables
from rehabstats.data.sources import redact

pytest.importorskip("psycopg", reason="the [sql] extra is not installed")

from rehabstats.data.sql import write_database

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tables():
    return simulate_tables(60, seed=2)


@pytest.fixture
def db(pg_database, tables):
    write_database(tables, pg_database)
    return pg_database


def test_the_report_command_renders_from_postgresql(db, tmp_path, folder_fingerprint):
    url, password = without_password(db)
    out = tmp_path / "trial.html"
    result = run_in_process(
        "report", url, "-n", "cohort_report", "-o", str(out), "--no-progress",
        env={"PGPASSWORD": password},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"(data fingerprint {folder_fingerprint[:12]})" in result.stdout
    html = out.read_text()
    assert f"PostgreSQL database: {url}" in html  # the header names the kind and location
    assert folder_fingerprint in html
    assert password not in html and password not in out.with_suffix(".ipynb").read_text()


def test_render_report_takes_a_url_with_its_password_and_never_writes_it(
    db, tmp_path, folder_fingerprint, report_kernel
):
    result = render_report(
        "clinic_audit", db, out=tmp_path / "audit.html", progress=False, kernel=report_kernel
    )
    password = urlsplit(db).password
    html = result.html_path.read_text()
    notebook = result.notebook_path.read_text()
    assert password not in html and password not in notebook
    assert result.provenance["source"] == f"PostgreSQL database: {redact(db)}"
    assert result.provenance["source_kind"] == "postgresql"
    assert result.fingerprint == folder_fingerprint
    # the kernel got the URL through its environment, never as a notebook parameter
    assert result.parameters["data"] == "env:REHABSTATS_DATABASE_URL"
