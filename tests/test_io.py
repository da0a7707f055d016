"""Cohort folders on disk: CSV, Parquet and XLSX, real files, row numbers as lines of the file."""

from __future__ import annotations

import pandas as pd
import pytest
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import CohortValidationError, load_cohort, write_cohort
from rehabstats.io import read_tables


@pytest.fixture
def cohort():
    return cohort_from_rows(
        [{"participant_id": "a"}, {"participant_id": "b", "arm": "hsr", "site": "s2"}],
        sessions=sessions_on("a", [0, 2, 4], stage=1) + sessions_on("b", [1, 3], stage=2),
        pain=[{"participant_id": "a", "day": 1, "timing": "after", "nrs": 2.5}],
        events=[{"participant_id": "b", "day": 30, "event": "return_to_running", "note": "ok"}],
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
def test_round_trip_keeps_content_and_fingerprint(tmp_path, cohort, fmt):
    folder = write_cohort(cohort, tmp_path / "c", format=fmt)
    assert (folder / f"participants.{fmt}").is_file()
    loaded = load_cohort(folder)
    # the same data read from any format gives the same content fingerprint
    assert loaded.fingerprint() == cohort.fingerprint()
    assert loaded.data_cutoff == cohort.data_cutoff
    pd.testing.assert_frame_equal(loaded.sessions, cohort.sessions)


def test_error_rows_are_lines_of_the_csv_file(tmp_path, cohort):
    folder = write_cohort(cohort, tmp_path / "c")
    lines = (folder / "sessions.csv").read_text().splitlines()
    # break the 4th record: it sits on line 5 of the file (line 1 is the header)
    fields = lines[4].split(",")
    header = lines[0].split(",")
    fields[header.index("stage")] = "7"
    lines[4] = ",".join(fields)
    (folder / "sessions.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(CohortValidationError) as info:
        load_cohort(folder)
    [problem] = info.value.report.problems
    assert (problem.table, problem.row, problem.column, problem.value) == (
        "sessions",
        5,
        "stage",
        "7",
    )


def test_csv_na_strings_are_not_missing_values(tmp_path, cohort):
    """Only an empty field is missing: 'NA' in a number column is an error, not a silent NaN."""
    folder = write_cohort(cohort, tmp_path / "c")
    text = (folder / "pain.csv").read_text().replace(",2.5", ",NA")
    (folder / "pain.csv").write_text(text)
    with pytest.raises(CohortValidationError) as info:
        load_cohort(folder)
    [problem] = info.value.report.problems
    assert (problem.table, problem.row, problem.column, problem.value) == ("pain", 2, "nrs", "NA")
    assert problem.rule == "must be a number"


def test_two_formats_for_one_table_is_ambiguous(tmp_path, cohort):
    folder = write_cohort(cohort, tmp_path / "c")
    cohort.pain.to_parquet(folder / "pain.parquet")
    with pytest.raises(CohortValidationError, match="one file per table"):
        load_cohort(folder)


def test_missing_folder_and_required_file(tmp_path, cohort):
    with pytest.raises(CohortValidationError, match="must be an existing cohort folder"):
        load_cohort(tmp_path / "nowhere")
    folder = write_cohort(cohort, tmp_path / "c")
    (folder / "sessions.csv").unlink()
    with pytest.raises(CohortValidationError, match="required table is missing"):
        load_cohort(folder)


def test_absent_optional_file_means_no_records(tmp_path, cohort):
    folder = write_cohort(cohort, tmp_path / "c")
    (folder / "events.csv").unlink()
    loaded = load_cohort(folder)
    assert loaded.events.empty


def test_explicit_data_cutoff(tmp_path, cohort):
    folder = write_cohort(cohort, tmp_path / "c")
    assert load_cohort(folder, data_cutoff="2024-06-30").data_cutoff == pd.Timestamp("2024-06-30")
    # default: the latest date in any table = event on day 30 of b (enrolled 2024-01-01)
    assert load_cohort(folder).data_cutoff == pd.Timestamp("2024-01-31")


def test_write_replaces_a_folder_atomically(tmp_path, cohort):
    target = tmp_path / "c"
    write_cohort(cohort, target)
    (target / "stale.txt").write_text("old")
    write_cohort(cohort.filter(participant_id="a"), target)
    assert not (target / "stale.txt").exists()
    assert len(load_cohort(target).participants) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no staging folder left behind


def test_read_tables_reads_csv_as_text(tmp_path, cohort):
    folder = write_cohort(cohort, tmp_path / "c")
    raw, numbering, report = read_tables(folder)
    assert report.ok
    # the line of each record is worked out on demand: header on line 1, no blank line, so the
    # 5 sessions are on lines 2 to 6
    assert numbering["sessions"]().tolist() == [2, 3, 4, 5, 6]
    assert raw["sessions"]["stage"].map(type).eq(str).all()
