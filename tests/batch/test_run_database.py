"""`rehabstats batch` with a PostgreSQL source (the server .ci/run starts; skipped without one)."""

from __future__ import annotations

import json
import os
import re
import warnings

import pytest
from batch_support import ONE_JOB, check, run, write
from conftest import without_password

from rehabstats import load_cohort, simulate_tables, write_cohort
from rehabstats.batch import EXIT_INVALID, EXIT_OK


def test_a_job_file_with_a_password_in_its_data_is_refused(tmp_path):
    write(
        tmp_path / "jobs.yaml", ONE_JOB.format(data="postgresql://clinic:s3cret@db.example/rehab")
    )
    result = check("batch", "jobs.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == EXIT_INVALID
    assert "holds a password" in result.stderr and "PGPASSWORD" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr


@pytest.mark.slow
def test_a_batch_renders_from_postgresql_and_its_manifest_names_the_source(pg_database, tmp_path):
    pytest.importorskip("psycopg", reason="the [sql] extra is not installed")
    from rehabstats.data.sql import write_database

    tables = simulate_tables(50, seed=8)
    write_database(tables, pg_database)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = load_cohort(write_cohort(tables, tmp_path / "folder")).fingerprint()
    url, password = without_password(pg_database)
    write(tmp_path / "jobs.yaml", ONE_JOB.format(data=url))
    env = {**os.environ, "PGPASSWORD": password}
    result = run("batch", "jobs.yaml", cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    doc = json.loads((tmp_path / "out" / "trial.manifest.json").read_text())
    assert doc["status"] == "ok"
    assert doc["data"]["kind"] == "postgresql" and doc["data"]["location"] == url
    assert doc["data"]["path"] is None
    assert doc["data"]["fingerprint"] == expected == doc["report_provenance"]["fingerprint"]
    for file in (tmp_path / "out").rglob("*"):
        if file.is_file():
            assert password not in file.read_text(errors="replace"), file
    # the same data: up to date, nothing rendered
    again = check("batch", "jobs.yaml", cwd=tmp_path, env={"PGPASSWORD": password})
    assert again.returncode == EXIT_OK, again.stdout + again.stderr
    assert re.search(r"trial\s+skipped\s.*up to date", again.stdout)
