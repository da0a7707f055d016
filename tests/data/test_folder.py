"""Cohort folders on disk: CSV, Parquet and XLSX, real files, row numbers as lines of the file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pandas as pd
import pytest
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import Cohort, CohortValidationError, load_cohort, simulate_tables, write_cohort
from rehabstats.data.folder import read_tables
from rehabstats.errors import OutputError


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


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_write_refuses_a_folder_that_is_not_empty(tmp_path, cohort):
    """A folder holding anything (here a user's own file) is never written into by default."""
    target = tmp_path / "c"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="is not empty .*notes.txt.*--overwrite"):
        write_cohort(cohort, target)
    assert _files(target) == {"notes.txt": b"mine"}  # nothing added, nothing removed
    # an earlier cohort is no exception: replacing it must be asked for
    other = write_cohort(cohort, tmp_path / "d")
    before = _files(other)
    with pytest.raises(OutputError, match="is not empty"):
        write_cohort(cohort.filter(participant_id="a"), other)
    assert _files(other) == before


def test_overwrite_replaces_only_the_cohort_tables(tmp_path, cohort):
    target = write_cohort(cohort, tmp_path / "c")  # six CSV tables
    mine = {
        "notes.txt": b"mine",
        "participants.csv.bak": b"a backup",
        "README": b"read me",
        "sessions.json": b"{}",
    }
    for name, content in mine.items():
        (target / name).write_bytes(content)
    (target / "events.csv").unlink()
    tables = {k: v for k, v in cohort.filter(participant_id="a").tables.items() if k != "pain"}
    write_cohort(tables, target, format="parquet", overwrite=True)
    after = _files(target)
    # every table file of the old cohort (any format) is gone or replaced: the folder holds
    # exactly the new cohort (no pain table: the old pain.csv must not survive to be read with it)
    tables_now = sorted(n for n in after if n not in mine)
    assert tables_now == sorted(f"{name}.parquet" for name in tables)
    assert {n: after[n] for n in mine} == mine  # other files untouched, byte for byte
    for name in mine:  # near-miss table names are refused by the loader (docs/data.md)
        (target / name).unlink()
    loaded = load_cohort(target)
    assert list(loaded.participants["participant_id"]) == ["a"]
    assert loaded.pain.empty


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_write_to_a_place_that_cannot_be_a_folder_is_a_clear_error(tmp_path, cohort, where):
    afile = tmp_path / "afile"
    afile.write_text("x")
    target = afile if where == "file" else afile / "sub"
    with pytest.raises(OutputError, match="file"):
        write_cohort(cohort, target)
    assert afile.read_text() == "x"


def test_a_failed_write_leaves_the_folder_as_it_was(tmp_path, cohort, monkeypatch):
    target = write_cohort(cohort, tmp_path / "c")
    (target / "notes.txt").write_text("mine")
    before = _files(target)
    from rehabstats.data import folder as io

    calls = []
    real = io._write_table

    def failing(frame, name, path, fmt):
        calls.append(name)
        if len(calls) == 3:  # participants and sessions are written, then the disk fills up
            raise OSError(28, "No space left on device")
        real(frame, name, path, fmt)

    monkeypatch.setattr(io, "_write_table", failing)
    with pytest.raises(OSError, match="No space"):
        write_cohort(cohort.filter(participant_id="a"), target, overwrite=True)
    assert _files(target) == before  # no table replaced, no temporary file left


def test_written_files_follow_the_umask(tmp_path, cohort):
    """Files 0666 and folders 0777 minus the umask, like any file the user creates."""
    old = os.umask(0o022)
    try:
        shared = write_cohort(cohort, tmp_path / "shared")
        os.umask(0o077)
        private = write_cohort(cohort, tmp_path / "private" / "c")
    finally:
        os.umask(old)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in shared.iterdir()} == {0o644}
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in private.iterdir()} == {0o600}


_KILLED_MID_COMMIT = """
import os, sys
from rehabstats import files, simulate_tables
from rehabstats.data import folder as io
real = os.replace
def replace(src, dst, **kw):
    real(src, dst, **kw)
    if str(dst) == "participants.csv":  # the first table is in place, the others are not
        os._exit(9)
files.os.replace = replace
io.write_cohort(simulate_tables(30, seed=2), sys.argv[1], overwrite=True)
"""


def test_a_write_killed_midway_is_completed_by_the_next_one(tmp_path, cohort):
    """Killed between two renames (the tables are complete on disk, the journal says so), the
    folder holds a mixed cohort until the next write completes it; the loader refuses it."""
    target = write_cohort(simulate_tables(30, seed=1), tmp_path / "c")
    (target / "notes.txt").write_text("mine")
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_COMMIT, str(target)], capture_output=True, text=True
    )
    assert killed.returncode == 9, killed.stderr
    assert [p.name for p in target.glob(".*.journal")] != []
    with pytest.raises(CohortValidationError, match="interrupted"):
        load_cohort(target)
    write_cohort(simulate_tables(30, seed=2), target, overwrite=True)
    assert sorted(p.name for p in target.iterdir() if p.name.startswith(".")) == []
    assert (target / "notes.txt").read_text() == "mine"
    expected = Cohort.from_tables(simulate_tables(30, seed=2))
    assert load_cohort(target).fingerprint() == expected.fingerprint()


def test_read_tables_reads_csv_as_text(tmp_path, cohort):
    folder = write_cohort(cohort, tmp_path / "c")
    raw, numbering, report = read_tables(folder)
    assert report.ok
    # the line of each record is worked out on demand: header on line 1, no blank line, so the
    # 5 sessions are on lines 2 to 6
    assert numbering["sessions"]().tolist() == [2, 3, 4, 5, 6]
    assert raw["sessions"]["stage"].map(type).eq(str).all()
