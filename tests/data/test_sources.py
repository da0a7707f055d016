"""rehabstats.data.sources: dispatch on the source, credentials, a problem's place in its source."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import load_cohort, write_cohort
from rehabstats.data.folder import read_tables
from rehabstats.data.sources import (
    SourceTables,
    check_no_secret,
    read_source,
    redact,
    secret_in,
)
from rehabstats.errors import CohortValidationError, ParameterError, Problem, ValidationReport


@pytest.fixture
def folder(tmp_path):
    cohort = cohort_from_rows(
        [{"participant_id": "a"}, {"participant_id": "b"}],
        sessions=sessions_on("a", [0, 3]) + sessions_on("b", [1]),
    )
    return write_cohort(cohort, tmp_path / "cohort")


# ---- credentials ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "shown", "secret"),
    [
        ("postgresql://clinic:s3cret@db.example:5433/rehab", "postgresql://clinic:***@db.example:5433/rehab", "a password"),
        ("postgresql://clinic@db.example/rehab?password=s3cret&sslmode=require",
         "postgresql://clinic@db.example/rehab?password=***&sslmode=require", "a password"),
        ("https://redcap.example/api/?token=ABCDEF", "https://redcap.example/api/?token=***", "a token"),
        ("postgresql://clinic@db.example/rehab", "postgresql://clinic@db.example/rehab", None),
        ("sqlite:////srv/data/cohort.db", "sqlite:////srv/data/cohort.db", None),
        ("data/cohort", "data/cohort", None),
    ],
)  # fmt: skip
def test_credentials_are_found_and_redacted(source, shown, secret):
    assert redact(source) == shown
    assert "s3cret" not in redact(source) and "ABCDEF" not in redact(source)
    assert secret_in(source) == secret


def test_a_url_with_a_password_is_refused_with_how_to_pass_it():
    with pytest.raises(ParameterError) as info:
        check_no_secret("postgresql://clinic:s3cret@db/rehab")
    text = str(info.value)
    assert "s3cret" not in text and "postgresql://clinic:***@db/rehab" in text
    assert "PGPASSWORD" in text and ".pgpass" in text and "env:NAME" in text
    check_no_secret("postgresql://clinic@db/rehab")  # no password: accepted


# ---- dispatch ---------------------------------------------------------------------------------


def test_a_folder_reads_as_before(folder):
    read = read_source(folder)
    raw, numbering, report = read_tables(folder)
    assert read.kind == "folder" and read.location == str(folder)
    assert sorted(read.tables) == sorted(raw) and report.ok and read.report.ok
    assert read.coordinates == {}  # a folder's rows are the lines of its files
    cohort = load_cohort(folder)
    assert cohort.source == str(folder) and cohort.source_kind == "folder"


def test_env_names_the_variable_holding_the_source(folder, monkeypatch):
    monkeypatch.setenv("CLINIC_COHORT", str(folder))
    cohort = load_cohort("env:CLINIC_COHORT")
    assert cohort.n_participants == 2 and cohort.source == str(folder)
    monkeypatch.delenv("CLINIC_COHORT")
    with pytest.raises(CohortValidationError) as info:
        load_cohort("env:CLINIC_COHORT")
    (problem,) = info.value.report.problems
    assert problem.code == "source"
    assert "environment variable CLINIC_COHORT is not set" in problem.rule


def test_an_unknown_kind_of_url_is_one_clear_problem():
    with pytest.raises(CohortValidationError) as info:
        load_cohort("ftp://files.example/cohort")
    (problem,) = info.value.report.problems
    assert problem.code == "source"
    assert "cannot read a ftp:// source" in problem.rule and "postgresql://" in problem.rule


def test_a_mapping_applies_to_databases_not_folders(folder):
    with pytest.raises(TypeError, match="not an option of a cohort folder"):
        load_cohort(folder, mapping={"schema": "x"})


# ---- a problem's place in its source ----------------------------------------------------------


def places(positions: np.ndarray, column: str | None = None) -> list[str]:
    return [f"record {p}" + (f", field x_{column}" if column else "") for p in positions.tolist()]


def test_locate_inverts_an_offset_numbering():
    # rows are positions + 1: rows 1 and 4 are the records at positions 0 and 3
    read = SourceTables(numbering={"pain": 1}, coordinates={"pain": places})
    report = ValidationReport(
        problems=[
            Problem("pain", 4, "nrs", "11", "must be between 0 and 10", "range"),
            Problem("pain", 1, "nrs", "x", "must be a number", "type"),
            Problem("pain", None, None, "", "a table-level problem", "table"),
            Problem("sessions", 2, "stage", "9", "must be between 1 and 4", "range"),
        ]
    )
    located = read.locate(report)
    # each problem's column is passed on: the source names it in its own terms
    assert [p.where for p in located.problems] == [
        "record 3, field x_nrs",
        "record 0, field x_nrs",
        "",
        "",
    ]


def test_locate_inverts_a_numbering_of_lines():
    # the records stand on lines 2, 5 and 9 (blank lines between): line 9 is position 2
    lines = np.array([2, 5, 9])
    read = SourceTables(numbering={"pain": lambda: lines}, coordinates={"pain": places})
    report = ValidationReport(problems=[Problem("pain", 9, "nrs", "11", "bad", "range")])
    assert read.locate(report).problems[0].where == "record 2, field x_nrs"


def test_the_error_report_shows_where_beside_the_row():
    report = ValidationReport(
        problems=[
            Problem("pain", 18, "nrs", "11", "must be between 0 and 10", "range",
                    "table clinic.pain, id 18234"),
        ]
    )  # fmt: skip
    text = report.format_text(source="postgresql://reader@db/clinic")
    assert "at table clinic.pain, id 18234" in text  # the summary
    assert "Details (table, row, where, column, value, rule" in text
    detail = next(line for line in text.splitlines() if line.startswith("  pain"))
    assert detail.split() == ["pain", "18", "table", "clinic.pain,", "id", "18234", "nrs", "11",
                              "must", "be", "between", "0", "and", "10"]  # fmt: skip
    doc = json.loads(report.to_json())
    assert doc["problems"][0]["where"] == "table clinic.pain, id 18234"
    assert report.to_frame()["where"].tolist() == ["table clinic.pain, id 18234"]


def test_a_folder_report_has_no_where_column(folder):
    (folder / "pain.csv").write_text(
        "participant_id,recorded_on,timing,nrs\na,2024-01-02,morning,11\n"
    )
    with pytest.raises(CohortValidationError) as info:
        load_cohort(folder)
    text = info.value.report.format_text()
    assert "Details (table, row, column, value, rule" in text and " at " not in text


def test_a_source_that_cannot_be_read_gets_one_short_message():
    report = ValidationReport(
        problems=[Problem("(source)", None, None, "x", "cannot connect to ...", "source")]
    )
    assert report.format_text(source="postgresql://reader@db/clinic") == (
        "postgresql://reader@db/clinic: cannot be read; nothing was loaded\n  cannot connect to ..."
    )
