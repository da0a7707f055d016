"""Bad cohort folders: each one a clear CohortValidationError, never a traceback or a silent change.

Every case starts from a small valid folder written by hand below (so the line of every record
is known by reading it) and breaks one thing.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import zipfile

import openpyxl
import pandas as pd
import pytest
from cli_support import run_in_process

from rehabstats import Cohort, CohortValidationError, load_cohort, write_cohort
from rehabstats.errors import Problem, ValidationReport

PARTICIPANTS = """\
participant_id,site,arm,tendinopathy_type,sex,age_years,body_mass_kg,enrolled_on,withdrawn_on,withdrawal_reason
a,s1,staged,midportion,female,40,80,2024-01-01,,
b,s2,hsr,insertional,male,50,90,2024-01-05,,
"""
SESSIONS = """\
participant_id,session_date,stage,prescribed_sets,prescribed_reps,completed_sets,completed_reps,load_kg,surface
a,2024-01-01,1,3,15,3,15,,
a,2024-01-03,1,3,15,3,15,,
b,2024-01-06,2,3,15,2,15,10,step
"""
PAIN = """\
participant_id,recorded_on,timing,nrs
a,2024-01-02,morning,3
b,2024-01-06,after,2.5
"""
EVENTS = """\
participant_id,event_date,event,note
b,2024-02-01,return_to_running,ok
"""
FILES = {
    "participants.csv": PARTICIPANTS,
    "sessions.csv": SESSIONS,
    "pain.csv": PAIN,
    "events.csv": EVENTS,
}


@pytest.fixture
def folder(tmp_path):
    target = tmp_path / "cohort"
    target.mkdir()
    for name, text in FILES.items():
        (target / name).write_text(text)
    return target


def problems_of(folder) -> list[Problem]:
    with pytest.raises(CohortValidationError) as info:
        load_cohort(folder)
    return info.value.report.problems


def edit(folder, name: str, old: str, new: str, count: int = 1) -> None:
    path = folder / name
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))


def drop_column(text: str, column: str) -> str:
    lines = text.splitlines()
    i = lines[0].split(",").index(column)
    return "\n".join(",".join(f for j, f in enumerate(line.split(",")) if j != i) for line in lines)


def test_the_hand_written_folder_is_valid(folder):
    cohort = load_cohort(folder)
    assert (len(cohort.participants), len(cohort.sessions), len(cohort.pain)) == (2, 3, 2)


# ---------------------------------------------------------------------------------------------
# 7. tracebacks instead of errors


def test_header_only_participants_is_an_error_not_a_traceback(folder):
    (folder / "participants.csv").write_text(PARTICIPANTS.splitlines()[0] + "\n")
    found = problems_of(folder)
    assert ("participants", "must hold at least one participant") in {
        (p.table, p.rule) for p in found
    }
    # with no participant at all, the child rows are not each reported again as orphans
    assert not any("must exist in participants" in p.rule for p in found)


def test_header_only_file_without_a_line_break(folder):
    (folder / "participants.csv").write_text(PARTICIPANTS.splitlines()[0])
    found = problems_of(folder)
    assert [p.rule for p in found] == ["must hold at least one participant"]


def test_every_participant_id_blank(folder):
    edit(folder, "participants.csv", "\na,", "\n,")
    edit(folder, "participants.csv", "\nb,", "\n,")
    found = problems_of(folder)
    blanks = [(p.table, p.row, p.column) for p in found if p.rule.startswith("required")]
    # participants' records are on lines 2 and 3
    assert blanks == [("participants", 2, "participant_id"), ("participants", 3, "participant_id")]


@pytest.mark.parametrize(
    ("file", "text", "column"),
    [
        ("sessions.csv", SESSIONS, "participant_id"),
        ("pain.csv", PAIN, "participant_id"),
        ("events.csv", EVENTS, "participant_id"),
        ("pain.csv", PAIN, "recorded_on"),
        ("pain.csv", PAIN, "timing"),
        ("sessions.csv", SESSIONS, "session_date"),
        ("participants.csv", PARTICIPANTS, "enrolled_on"),
        ("participants.csv", PARTICIPANTS, "participant_id"),
    ],
)
def test_a_missing_required_column_is_named(folder, file, text, column):
    (folder / file).write_text(drop_column(text, column) + "\n")
    found = problems_of(folder)
    table = file.removesuffix(".csv")
    assert [(p.table, p.row, p.column, p.rule) for p in found] == [
        (table, None, column, "required column is missing from the table")
    ]


@pytest.mark.parametrize(
    ("file", "header", "variant", "column"),
    [
        ("sessions.csv", "participant_id", "Participant_ID", "participant_id"),
        ("sessions.csv", "session_date", "Session date", "session_date"),
        ("pain.csv", "recorded_on", "Recorded-On", "recorded_on"),
        ("pain.csv", "nrs", " nrs", "nrs"),
        ("participants.csv", "participant_id", "participantid", "participant_id"),
    ],
)
def test_a_header_variant_gets_the_name_to_use(folder, file, header, variant, column):
    edit(folder, file, header, variant)
    [problem] = problems_of(folder)
    assert (problem.table, problem.column, problem.value) == (
        file.removesuffix(".csv"),
        column,
        variant,
    )
    assert problem.rule == (
        f"required column is missing from the table; did you mean `{variant}`? "
        f"rename it to `{column}`"
    )


def test_an_optional_column_under_a_near_miss_name_is_not_ignored(folder):
    """`Load_kg` would otherwise be an extra column and load_kg silently all missing."""
    edit(folder, "sessions.csv", "load_kg", "Load_kg")
    [problem] = problems_of(folder)
    assert (problem.table, problem.column, problem.value) == ("sessions", "load_kg", "Load_kg")
    assert "rename it to `load_kg`" in problem.rule


@pytest.mark.parametrize(("sep", "word"), [("\t", "tab-separated"), (";", "semicolon-separated")])
def test_a_file_with_another_separator(folder, sep, word):
    (folder / "pain.csv").write_text(PAIN.replace(",", sep))
    [problem] = problems_of(folder)
    assert (problem.table, problem.row, problem.code) == ("pain", 1, "delimiter")
    assert problem.rule == f"the file looks {word}; save it as comma-separated values (CSV)"


def test_in_memory_tables_with_broken_headers_do_not_crash():
    from cohort_builder import tables_from_rows

    raw = tables_from_rows(
        [{"participant_id": "a"}],
        sessions=[{"participant_id": "a", "day": 0}],
        visa_a=[{"participant_id": "a", "day": 0, "q1": 5}],
    )
    sessions = raw["sessions"]
    raw["sessions"] = pd.concat([sessions, sessions[["stage"]]], axis=1)  # `stage` twice
    raw["visa_a"] = raw["visa_a"].rename(columns={"q8a": "q1"})  # `q1` twice, no q8a
    with pytest.raises(CohortValidationError) as info:
        Cohort.from_tables(raw)
    found = {(p.table, p.column, p.code) for p in info.value.report.problems}
    assert found == {("sessions", "stage", "column"), ("visa_a", "q1", "column")}


# ---------------------------------------------------------------------------------------------
# 8. accepted silently but wrong


def test_a_duplicated_column_is_an_error_naming_both(folder):
    # the first copy of `site` is blank, the second holds the sites: before, the blank one won
    header = PARTICIPANTS.splitlines()[0]
    lines = [
        header.replace("withdrawal_reason", "site"),
        "a,,staged,midportion,female,40,80,2024-01-01,,s1",
        "b,,hsr,insertional,male,50,90,2024-01-05,,s2",
    ]
    (folder / "participants.csv").write_text("\n".join(lines) + "\n")
    found = problems_of(folder)
    assert [(p.table, p.column, p.rule) for p in found] == [
        (
            "participants",
            "site",
            "column name appears 2 times in the header (columns 2 and 10): "
            "keep one column of each name",
        )
    ]


def test_a_case_twin_of_a_contract_column_is_an_error(folder):
    edit(folder, "events.csv", "note\n", "note,Note\n")
    edit(folder, "events.csv", ",ok\n", ",ok,ok too\n")
    [problem] = problems_of(folder)
    assert (problem.table, problem.column, problem.value) == ("events", "note", "Note")


def _xlsx_with_formula(path, *, cached: str | None):
    """participants as a workbook whose age cell (F2) is the formula =30+10."""
    book = openpyxl.Workbook()
    sheet = book.active
    for line in PARTICIPANTS.splitlines():
        sheet.append([v if v else None for v in line.split(",")])
    sheet["F2"] = "=30+10"
    book.save(path)
    if cached is None:
        return
    # openpyxl never stores a formula's value; Excel does, as <v> after <f>: add it
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    sheet_xml = members["xl/worksheets/sheet1.xml"].decode()
    sheet_xml, n = re.subn(r"(<f>30\+10</f>)<v\s*/?>(</v>)?", rf"\1<v>{cached}</v>", sheet_xml)
    assert n == 1, sheet_xml
    members["xl/worksheets/sheet1.xml"] = sheet_xml.encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_an_xlsx_formula_without_a_saved_value_is_an_error(folder):
    (folder / "participants.csv").unlink()
    _xlsx_with_formula(folder / "participants.xlsx", cached=None)
    [problem] = problems_of(folder)
    # F2: row 2 of the sheet, the age column; before, the age was silently missing
    assert (problem.table, problem.row, problem.column, problem.value, problem.code) == (
        "participants",
        2,
        "age_years",
        "=30+10",
        "formula",
    )
    assert problem.rule == "cell F2 is a formula without a saved value"


def test_an_xlsx_formula_with_its_saved_value_is_read_as_the_value(folder):
    (folder / "participants.csv").unlink()
    _xlsx_with_formula(folder / "participants.xlsx", cached="40")
    cohort = load_cohort(folder)
    assert cohort.participants["age_years"].tolist() == [40.0, 50.0]


@pytest.mark.parametrize("kind", ["folder", "loop", "broken"])
def test_something_else_in_a_table_files_place_is_an_error(folder, kind):
    path = folder / "pain.csv"
    path.unlink()
    if kind == "folder":
        path.mkdir()
        rule = "`pain.csv` is a folder, not a file: a table is one file"
    elif kind == "loop":
        path.symlink_to(path)
        rule = "`pain.csv` is a symbolic link that leads back to itself (a loop): replace it by the file"
    else:
        path.symlink_to(folder / "gone.csv")
        rule = (
            f"`pain.csv` is a broken symbolic link (to {folder / 'gone.csv'}, which does not exist)"
        )
    [problem] = problems_of(folder)
    assert (problem.table, problem.value, problem.rule) == ("pain", "pain.csv", rule)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_table_file_is_an_error(folder):
    (folder / "pain.csv").chmod(0)
    [problem] = problems_of(folder)
    assert (problem.table, problem.rule) == ("pain", "cannot be read: permission denied")


def test_an_unreadable_table_file_is_an_error_also_when_run_as_root(folder, monkeypatch):
    import rehabstats.data.folder

    def refuse(name, path):
        if name == "pain":
            raise PermissionError(13, "Permission denied", str(path))
        return real(name, path)

    real = rehabstats.data.folder._read
    monkeypatch.setattr(rehabstats.data.folder, "_read", refuse)
    [problem] = problems_of(folder)
    assert (problem.table, problem.rule) == ("pain", "cannot be read: permission denied")


@pytest.mark.parametrize(
    ("present", "wrong", "table", "fix"),
    [
        ("events.csv", "Events.csv", "events", "rename it to `events.csv`"),
        ("sessions.csv", "Sessions.CSV", "sessions", "rename it to `sessions.csv`"),
        ("pain.csv", "pain.txt", "pain", "save it as comma-separated values named `pain.csv`"),
        ("participants.csv", "participants.csv.csv", "participants", None),
        ("events.csv", "event.csv", "events", "rename it to `events.csv`"),
        ("pain.csv", "pain.xls", "pain", "save it as an Excel workbook `pain.xlsx` (first sheet)"),
    ],
)
def test_a_near_miss_file_name_is_an_error(folder, present, wrong, table, fix):
    (folder / present).rename(folder / wrong)
    found = problems_of(folder)
    # the file-name problem only: a required table is not also called missing
    [problem] = found
    assert (problem.table, problem.value, problem.code) == (table, wrong, "file_name")
    assert problem.rule.startswith(f"`{wrong}` is not read: its name is not exactly")
    if fix:
        assert problem.rule.endswith(fix)


def test_a_visa_a_near_miss(folder):
    write_cohort(load_cohort(folder), folder, overwrite=True)  # adds visa_a.csv (header only)
    (folder / "visa_a.csv").rename(folder / "visa-a.csv")
    [problem] = problems_of(folder)
    assert (problem.table, problem.value) == ("visa_a", "visa-a.csv")


@pytest.mark.parametrize("name", ["pain_2024.csv", "Pain diary.csv", "copy of pain.csv"])
def test_a_file_naming_a_table_without_that_tables_file_is_an_error(folder, name):
    (folder / "pain.csv").rename(folder / name)
    [problem] = problems_of(folder)
    assert (problem.table, problem.value) == ("pain", name)
    assert problem.rule == (
        f"`{name}` looks like the pain table but is not read: if it is, rename it to "
        "`pain.csv`; if not, move it out of the folder"
    )


def test_other_data_files_are_named_in_a_note_and_other_files_ignored(folder):
    (folder / "pain_old.csv").write_text(PAIN)  # pain.csv is there: this one is not read
    (folder / "codebook.xlsx").write_bytes(b"")
    (folder / "README.md").write_text("notes")
    (folder / ".DS_Store").write_bytes(b"\0")
    with pytest.warns(UserWarning, match="2 files are not a cohort table") as caught:
        cohort = load_cohort(folder)
    message = str(caught[0].message)
    assert "codebook.xlsx, pain_old.csv" in message and "README" not in message
    assert message in cohort.warnings


def test_short_and_long_lines_are_errors_naming_the_line(folder):
    lines = SESSIONS.splitlines()
    lines[2] = "a,2024-01-03,1,3,15,3"  # line 3: 6 of 9 fields (before: padded with empties)
    lines[3] = lines[3] + ",x"  # line 4: 10 fields
    (folder / "sessions.csv").write_text("\n".join(lines) + "\n")
    found = problems_of(folder)
    assert [(p.table, p.row, p.column, p.value, p.rule) for p in found] == [
        ("sessions", 3, None, "a,2024-01-03,1,3,15,3", "must have 9 fields like the header, not 6"),
        ("sessions", 4, None, lines[3], "must have 9 fields like the header, not 10"),
    ]


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x07", "\x7f"])
def test_control_characters_in_values_are_errors(folder, char):
    edit(folder, "events.csv", ",ok", f",o{char}k")
    [problem] = problems_of(folder)
    assert (problem.table, problem.row, problem.column, problem.value) == (
        "events",
        2,
        "note",
        f"o{char}k",
    )
    assert problem.rule == "must not contain control characters"


def test_a_tab_inside_a_text_value_is_legal(folder):
    edit(folder, "events.csv", ",ok", ',"o\tk"')
    assert load_cohort(folder).events["note"].tolist() == ["o\tk"]


def test_integer_overflow_is_too_large_not_below_the_minimum(folder):
    edit(folder, "sessions.csv", "a,2024-01-03,1,3,", "a,2024-01-03,1,99999999999999999999,")
    [problem] = problems_of(folder)
    assert (problem.row, problem.column, problem.value) == (
        3,
        "prescribed_sets",
        "99999999999999999999",
    )
    assert problem.rule == "must be a whole number of at most 15 digits (too large)"


def test_a_number_too_large_for_a_float(folder):
    edit(folder, "pain.csv", ",2.5", ",1e400")
    [problem] = problems_of(folder)
    assert (problem.row, problem.column, problem.rule) == (
        3,
        "nrs",
        "must be a finite number (too large)",
    )


def test_an_unclosed_quote_is_an_error(folder):
    # the quote opened on line 2 is never closed: the parser would swallow the rest of the file
    edit(folder, "pain.csv", "a,2024-01-02,morning,3", 'a,2024-01-02,"morning,3')
    found = problems_of(folder)
    assert (found[0].code, found[0].table, found[0].row) == ("quote", "pain", 2)
    assert "a quoted value must be closed" in found[0].rule


def test_a_file_in_another_encoding_names_its_lines(folder):
    (folder / "events.csv").write_bytes(
        EVENTS.replace(",ok", ",d\u00e9j\u00e0 vu").encode("latin-1")
    )
    [problem] = problems_of(folder)
    assert (problem.table, problem.row, problem.code) == ("events", 2, "encoding")


def test_a_utf16_file(folder):
    (folder / "events.csv").write_bytes(EVENTS.encode("utf-16"))
    [problem] = problems_of(folder)
    assert "UTF-16" in problem.rule


def test_an_empty_file(folder):
    (folder / "pain.csv").write_bytes(b"")
    [problem] = problems_of(folder)
    assert (problem.table, problem.rule) == ("pain", "the file is empty: it needs a header")


def test_a_damaged_workbook_is_an_error(folder):
    (folder / "pain.csv").unlink()
    (folder / "pain.xlsx").write_bytes(b"not a zip file")
    [problem] = problems_of(folder)
    assert (problem.table, problem.code) == ("pain", "file")
    assert problem.rule.startswith("not a readable XLSX file")


# ---------------------------------------------------------------------------------------------
# 11. rows are lines of the file


def test_rows_are_lines_with_blank_lines_and_quoted_line_breaks(folder):
    events = (
        "participant_id,event_date,event,note\n"
        "\n"  # line 2: blank
        'b,2024-02-01,return_to_running,"first line\nsecond line"\n'  # lines 3-4: one record
        "\r\n"  # line 5: blank (CRLF)
        "b,2024-02-02,return_to_sport,\n"  # line 6
        "b,2024-02-03,fall,\n"  # line 7: not an event type
    )
    (folder / "events.csv").write_text(events, newline="")
    [problem] = problems_of(folder)
    assert (problem.table, problem.row, problem.column, problem.value) == (
        "events",
        7,
        "event",
        "fall",
    )


def test_rows_are_lines_with_blank_lines_in_a_file_without_quotes(folder):
    lines = SESSIONS.splitlines()
    text = "\n".join([lines[0], "", lines[1], "", "", lines[2], lines[3].replace(",2,", ",7,", 1)])
    (folder / "sessions.csv").write_text(text + "\n")
    # header 1, blank 2, record 3, blanks 4-5, record 6, the broken record on line 7
    [problem] = problems_of(folder)
    assert (problem.row, problem.column, problem.value) == (7, "stage", "7")


def test_lines_of_commas_are_skipped_like_blank_lines(folder):
    lines = SESSIONS.splitlines()
    text = "\n".join([lines[0], lines[1], ",,,,,,,,", lines[2], lines[3].replace(",2,", ",7,", 1)])
    (folder / "sessions.csv").write_text(text + "\n")
    [problem] = problems_of(folder)
    assert (problem.row, problem.column) == (5, "stage")
    edit(folder, "sessions.csv", ",7,", ",2,")
    assert len(load_cohort(folder).sessions) == 3


def test_xlsx_rows_are_sheet_rows_also_after_a_blank_row(folder):
    (folder / "sessions.csv").unlink()
    book = openpyxl.Workbook()
    sheet = book.active
    lines = SESSIONS.splitlines()
    cells = [[int(v) if v.isdigit() else (v or None) for v in line.split(",")] for line in lines]
    sheet.append(cells[0])
    sheet.append(cells[1])
    sheet.append([])  # row 3: blank
    sheet.append(cells[2])
    cells[3][2] = 7  # row 5: stage 7
    sheet.append(cells[3])
    book.save(folder / "sessions.xlsx")
    [problem] = problems_of(folder)
    assert (problem.row, problem.column, problem.value) == (5, "stage", "7")


def test_xlsx_text_cells_are_not_converted(folder):
    """Text cells "007" and "010" are the ids 007 and 010, not the numbers 7 and 10 (pandas'
    guess for a column whose every cell looks like a number)."""
    (folder / "participants.csv").unlink()
    book = openpyxl.Workbook()
    sheet = book.active
    text = PARTICIPANTS.replace("\na,", "\n007,").replace("\nb,", "\n010,")
    for line in text.splitlines():
        sheet.append([v or None for v in line.split(",")])  # every cell as text
    book.save(folder / "participants.xlsx")
    for name in ("sessions.csv", "pain.csv", "events.csv"):
        path = folder / name
        path.write_text(path.read_text().replace("\na,", "\n007,").replace("\nb,", "\n010,"))
    cohort = load_cohort(folder)
    assert cohort.participants["participant_id"].tolist() == ["007", "010"]


def test_line_numbers_are_worked_out_only_when_a_problem_is_reported(folder, monkeypatch):
    """A valid file is parsed once: the scan for lines runs on failure only."""
    import rehabstats.data.folder

    calls = []
    real = rehabstats.data.folder._csv_lines
    monkeypatch.setattr(
        rehabstats.data.folder, "_csv_lines", lambda *a: calls.append(a[0].name) or real(*a)
    )
    load_cohort(folder)
    assert calls == []
    edit(folder, "pain.csv", ",2.5", ",25")
    [problem] = problems_of(folder)
    assert problem.row == 3 and calls == ["pain.csv"]


# ---------------------------------------------------------------------------------------------
# 12. the report: a summary first, the cause first


def excel_dates(folder):
    """Every session date as a spreadsheet shows it, one as NA."""
    lines = SESSIONS.splitlines()
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        fields = line.split(",")
        y, m, d = fields[1].split("-")
        fields[1] = "NA" if i == 0 else f"{d}/{m}/{y}"
        out.append(",".join(fields))
    (folder / "sessions.csv").write_text("\n".join(out) + "\n")


def test_the_summary_leads_with_count_rows_example_and_fix(folder):
    excel_dates(folder)
    with pytest.raises(CohortValidationError) as info:
        load_cohort(folder)
    text = str(info.value)
    summary, details = text.split("\nDetails")
    assert text.startswith("3 problems found in")
    assert "1. sessions.session_date: must be an ISO date YYYY-MM-DD (3 rows)" in summary
    assert "rows 2-4" in summary
    assert 'e.g. "NA", "03/01/2024", "06/01/2024"' in summary
    assert "write dates as YYYY-MM-DD" in summary
    assert "`NA` is not a missing value: leave the cell empty" in summary
    assert details.count("must be an ISO date") == 3
    assert "<NA>" not in text


def test_the_cause_comes_first(folder):
    # b's id typed as a's: a duplicated id, and b's child rows become orphans
    edit(folder, "participants.csv", "\nb,", "\na,")
    # and a misnamed column in pain, whose other problem would otherwise come first
    edit(folder, "pain.csv", "timing", "Timing")
    edit(folder, "pain.csv", ",2.5", ",25")
    report = ValidationReport(problems_of(folder))
    order = [(g.table, g.column, g.code) for g in report.groups()]
    assert order == [
        ("pain", "timing", "column"),
        ("participants", "participant_id", "unique"),
        ("pain", "nrs", "range"),
        ("sessions", "participant_id", "foreign_key"),
        ("pain", "participant_id", "foreign_key"),
        ("events", "participant_id", "foreign_key"),
    ]


def test_text_details_are_capped_with_a_count_and_json_carries_all(folder):
    lines = SESSIONS.splitlines()
    bad = [lines[1].replace(",1,3,15", ",9,3,15")] * 30  # 30 records with stage 9
    (folder / "sessions.csv").write_text("\n".join([lines[0], *bad]) + "\n")
    report = ValidationReport(problems_of(folder))
    text = report.format_text(max_details=5)
    assert text.count("must be between 1 and 4") == 6  # the summary line and 5 details
    assert "... and 25 more rows like these" in text
    doc = json.loads(report.to_json())
    assert len(doc["problems"]) == 30 and doc["n_problems"] == 30
    [group] = doc["summary"]
    assert (group["table"], group["column"], group["count"]) == ("sessions", "stage", 30)
    assert group["rows"][:3] == [2, 3, 4] and group["examples"] == ["9"]


def test_plurals_and_no_repeated_lines():
    one = Problem("pain", 7, "nrs", "11", "must be between 0 and 10", "range")
    report = ValidationReport([one, one])  # the same problem twice is shown once
    text = report.format_text()
    assert "(1 row)" in text and "row 7" in text and "1 rows" not in text
    assert text.count("must be between 0 and 10") == 2  # summary + one detail line


def test_control_characters_are_shown_escaped():
    report = ValidationReport([Problem("events", 2, "note", "o\x00k", "must not", "control")])
    text = report.format_text()
    assert "\x00" not in text and "o\\x00k" in text


def run(*args: str) -> subprocess.CompletedProcess:
    """The command in this process (its exit code and output, without a new interpreter)."""
    return run_in_process(*args)


def test_validate_prints_the_same_report_as_the_error(folder):
    excel_dates(folder)
    with pytest.raises(CohortValidationError) as info:
        load_cohort(folder)
    result = run("validate", str(folder))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{folder}: INVALID - 3 problems; nothing was loaded\n")
    # what another command prints to show the same report
    assert result.stdout == info.value.report.format_text(max_details=20, source=str(folder)) + "\n"
    doc = json.loads(run("validate", str(folder), "--format", "json").stdout)
    assert doc["summary"][0]["count"] == 3 and len(doc["problems"]) == 3


def test_validate_summary_of_a_valid_folder_says_1_row(folder):
    (folder / "events.csv").write_text(EVENTS)  # one event
    result = run("validate", str(folder))
    assert result.returncode == 0, result.stdout
    assert re.search(r"events:\s+1 row\n", result.stdout)
    assert "1 rows" not in result.stdout and "<NA>" not in result.stdout


@pytest.mark.parametrize("placeholder", ["9999-12-31", "0001-01-01"])
def test_a_placeholder_date_is_an_error_not_a_traceback(folder, placeholder):
    edit(folder, "participants.csv", "2024-01-05,,", f"2024-01-05,{placeholder},")
    [problem] = problems_of(folder)
    assert (problem.table, problem.row, problem.column, problem.value) == (
        "participants",
        3,
        "withdrawn_on",
        placeholder,
    )
    assert problem.rule.startswith("must be a date between 1677-09-22 and 2262-04-11")


def test_a_placeholder_date_in_a_workbook_cell(folder):
    import datetime

    (folder / "participants.csv").unlink()
    book = openpyxl.Workbook()
    sheet = book.active
    for line in PARTICIPANTS.splitlines():
        sheet.append([v or None for v in line.split(",")])
    sheet["I3"] = datetime.datetime(9999, 12, 31)  # b's withdrawn_on as a date cell
    book.save(folder / "participants.xlsx")
    [problem] = problems_of(folder)
    assert (problem.row, problem.column) == (3, "withdrawn_on")
    assert problem.rule.startswith("must be a date between")


def test_parquet_with_a_repeated_column_name(folder):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "events.csv").unlink()
    note = pa.array(["ok"])
    columns = [pa.array(["b"]), pa.array(["2024-02-01"]), pa.array(["return_to_running"]), note]
    names = ["participant_id", "event_date", "event", "note"]
    pq.write_table(pa.table([*columns, note], names=[*names, "note"]), folder / "events.parquet")
    [problem] = problems_of(folder)
    assert (problem.table, problem.column, problem.code) == ("events", "note", "column")
    assert "columns 4 and 5" in problem.rule


def test_values_that_are_not_text_are_not_stringified(folder):
    (folder / "events.csv").unlink()
    events = pd.read_csv(io.StringIO(EVENTS), dtype="str")
    events["note"] = [[1, 2]]  # a list, e.g. from a nested Parquet column
    events.to_parquet(folder / "events.parquet")
    [problem] = problems_of(folder)
    assert (problem.table, problem.row, problem.column, problem.rule) == (
        "events",
        1,
        "note",
        "must be text",
    )


@pytest.mark.parametrize("kind", ["xlsx", "parquet"])
def test_a_workbook_or_parquet_file_named_csv(folder, kind):
    events = pd.read_csv(folder / "events.csv", dtype="str")
    if kind == "xlsx":
        events.to_excel(folder / "x.xlsx", index=False)
    else:
        events.to_parquet(folder / "x.parquet")
    (folder / f"x.{kind}").replace(folder / "events.csv")
    [problem] = problems_of(folder)
    assert (problem.table, problem.code) == ("events", "file")
    assert problem.rule.endswith(f"not CSV text: save it as CSV, or name it `events.{kind}`")


@pytest.mark.parametrize("quoted", [False, True])
def test_the_line_scan_of_a_file(tmp_path, quoted):
    """Both ways of finding the lines (bytes without quotes; the csv module) agree with a
    hand count: header on line 1, a blank line 3, CRLF line ends, a short line 5, a blank
    CRLF line 6, no line break at the end."""
    from rehabstats.data.folder import _csv_lines

    value = '"x"' if quoted else "x"
    text = f"a,b,c\r\n1,2,3\r\n\r\n4,5,{value}\r\n6,7\r\n\r\n8,9,10"
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    found = _csv_lines(path, 3)
    assert found.records.tolist() == [2, 4, 7]
    assert found.ragged == [(5, 2, "6,7")]
