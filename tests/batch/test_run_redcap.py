"""`rehabstats batch` with a REDCap export as a job's data."""

from __future__ import annotations

import json
import re
import warnings

import pytest
from batch_support import ONE_JOB, check, run, write

from rehabstats import load_cohort, simulate_tables, write_cohort
from rehabstats.batch import EXIT_INVALID, EXIT_OK
from rehabstats.data.redcap import write_redcap_export


def test_a_job_file_with_a_token_in_its_data_is_refused(tmp_path):
    token = "0123456789ABCDEF0123456789ABCDEF"
    write(tmp_path / "jobs.yaml", ONE_JOB.format(data=f"https://redcap.example/api/?token={token}"))
    result = check("batch", "jobs.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == EXIT_INVALID
    assert "holds a token" in result.stderr and "REHABSTATS_REDCAP_TOKEN" in result.stderr
    assert token not in result.stdout + result.stderr


@pytest.mark.slow
def test_a_batch_renders_from_a_redcap_export_and_its_manifest_names_the_source(tmp_path):
    tables = simulate_tables(40, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = load_cohort(write_cohort(tables, tmp_path / "folder")).fingerprint()
    write_redcap_export(tables, tmp_path / "trial_export")
    # a relative path in a job file is relative to the file; redcap: keeps its prefix
    write(tmp_path / "jobs.yaml", ONE_JOB.format(data="redcap:trial_export/redcap_export.csv"))
    result = run("batch", "jobs.yaml", cwd=tmp_path, timeout=600)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    doc = json.loads((tmp_path / "out" / "trial.manifest.json").read_text())
    assert doc["status"] == "ok"
    location = str(tmp_path / "trial_export" / "redcap_export.csv")
    assert doc["data"]["kind"] == "redcap-export" and doc["data"]["location"] == location
    assert doc["data"]["fingerprint"] == expected == doc["report_provenance"]["fingerprint"]
    assert f"REDCap export: {location}" in (tmp_path / "out" / "trial.html").read_text()
    # the same data: up to date, nothing rendered
    again = check("batch", "jobs.yaml", cwd=tmp_path)
    assert again.returncode == EXIT_OK, again.stdout + again.stderr
    assert re.search(r"trial\s+skipped\s.*up to date", again.stdout)
