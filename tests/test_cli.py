"""The `rehabstats` command, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import write_cohort


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rehabstats", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def folder(tmp_path):
    cohort = cohort_from_rows(
        [{"participant_id": "a"}, {"participant_id": "b", "site": "s2"}],
        sessions=sessions_on("a", [0, 3]) + sessions_on("b", [1]),
    )
    return write_cohort(cohort, tmp_path / "cohort")


def test_validate_valid_folder_exits_0_with_summary(folder):
    result = run("validate", str(folder))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert "participants: 2" in result.stdout
    assert "sessions:" in result.stdout and "3 rows" in result.stdout
    assert "2024-01-01 to 2024-01-04" in result.stdout


def test_validate_invalid_folder_exits_1_with_every_problem(folder):
    text = (folder / "participants.csv").read_text()
    (folder / "participants.csv").write_text(
        text.replace("female", "fem", 1).replace(",80.0,", ",20,")
    )
    result = run("validate", str(folder))
    assert result.returncode == 1
    assert "INVALID - 3 problems" in result.stdout
    # both participants had body mass 80 -> 20 (range 25-300), and one sex became 'fem': the
    # summary has one entry for the two body masses, the details one line for each
    summary, details = result.stdout.split("Details")
    assert "participants.body_mass_kg: must be between 25 and 300 (2 rows)" in summary
    assert "rows 2-3" in summary
    assert details.count("body_mass_kg") == 2
    assert "must be one of: female, male, other, unknown" in result.stdout

    as_json = run("validate", str(folder), "--format", "json")
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False
    assert {p["column"] for p in doc["problems"]} == {"sex", "body_mass_kg"}
    assert {p["row"] for p in doc["problems"]} == {2, 3}


def test_validate_json_summary(folder):
    result = run("validate", str(folder), "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["participants"] == 2 and len(doc["fingerprint"]) == 64


def test_simulate_then_validate(tmp_path):
    out = tmp_path / "sim"
    made = run("simulate", "--participants", "40", "--seed", "3", "--out", str(out))
    assert made.returncode == 0, made.stderr
    checked = run("validate", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "participants: 40" in checked.stdout
