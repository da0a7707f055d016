"""REDCap: the template data dictionary, reading records exports, writing an export."""

from __future__ import annotations

import csv
import io
import json
import re
import warnings

import pandas as pd
import pytest
from cli_support import run_in_process
from redcap_server import API_NAMES

from rehabstats import Cohort, CohortValidationError, load_cohort, simulate_tables, write_cohort
from rehabstats.constants import data_schema_dir
from rehabstats.data.redcap import (
    default_mapping,
    is_export_path,
    read_redcap_export,
    redcap_dictionary,
    write_redcap_export,
)
from rehabstats.data.sources import read_source

# The 18 columns REDCap's data dictionary import expects, written out here as REDCap names
# them (not taken from the code under test).
HEADER = [
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
]


def load(source, **kw):
    """Load a REDCap source with ``rehabstats.load_cohort`` (which locates every problem in
    REDCap's terms); the raw read is returned too, for its data notes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cohort = load_cohort(str(source), loaded_on="2030-01-01", **kw)
    return cohort, read_source(str(source), **kw)


def problems_of(source):
    with pytest.raises(CohortValidationError) as info:
        load(source)
    return info.value.report.problems


@pytest.fixture(scope="module")
def simulated():
    return simulate_tables(12, seed=5)


@pytest.fixture
def export_dir(tmp_path, simulated):
    return write_redcap_export(simulated, tmp_path / "rc")


def rows_of(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def write_rows(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


# --------------------------------------------------------------------------------------------
# The template


def test_template_has_redcaps_18_columns_and_the_record_id_first():
    d = redcap_dictionary()
    assert list(d.columns) == HEADER
    first = d.iloc[0]
    assert (first["Variable / Field Name"], first["Form Name"]) == (
        "participant_id",
        "participants",
    )
    # instruments in the contract's order, participants first
    assert list(dict.fromkeys(d["Form Name"])) == [
        "participants",
        "sessions",
        "pain",
        "visa_a",
        "function_tests",
        "events",
        "running",
    ]


def test_template_covers_every_contract_column_once_with_valid_redcap_names():
    d = redcap_dictionary()
    names = d["Variable / Field Name"].tolist()
    assert len(names) == len(set(names))  # REDCap variable names are unique in a project
    for name in names:
        # REDCap: lower-case letters, digits, underscores, starting with a letter; REDCap
        # warns beyond 26 characters
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name) and len(name) <= 26, name
    # every contract column of every table, read from data_schema/ here, is annotated once;
    # the child tables' participant_id is the record id, not a field
    expected = set()
    package = json.loads((data_schema_dir() / "datapackage.json").read_text())
    for resource in package["resources"]:
        schema = json.loads((data_schema_dir() / resource["schema"]).read_text())
        for f in schema["fields"]:
            if f["name"] != "participant_id" or resource["name"] == "participants":
                expected.add(f"rehabstats {resource['name']}.{f['name']}")
    assert sorted(d["Field Annotation"]) == sorted(expected)


def by_name(name):
    d = redcap_dictionary()
    return d.loc[d["Variable / Field Name"] == name].iloc[0]


def test_template_types_ranges_choices_and_flags():
    # enum -> choices whose codes are the contract's values
    t = by_name("pt_tendinopathy_type")
    assert t["Field Type"] == "radio"
    assert (
        t["Choices, Calculations, OR Slider Labels"]
        == "midportion, Midportion | insertional, Insertional"
    )
    assert t["Required Field?"] == "y"
    # six events: a dropdown (radio up to 5)
    assert by_name("ev_event")["Field Type"] == "dropdown"
    # VISA-A q7: integer codes 0, 4, 7, 10
    assert (
        by_name("visa_q7")["Choices, Calculations, OR Slider Labels"]
        == "0, 0 | 4, 4 | 7, 7 | 10, 10"
    )
    # dates and numbers with REDCap validation types and the contract's range
    assert by_name("ses_session_date")["Text Validation Type OR Show Slider Number"] == "date_ymd"
    stage = by_name("ses_stage")
    assert (
        stage["Text Validation Type OR Show Slider Number"],
        stage["Text Validation Min"],
        stage["Text Validation Max"],
    ) == ("integer", "1", "4")
    nrs = by_name("pain_nrs")
    assert (
        nrs["Text Validation Type OR Show Slider Number"],
        nrs["Text Validation Min"],
        nrs["Text Validation Max"],
    ) == ("number", "0", "10")
    # an exclusive minimum (minutes > 0): REDCap's min is inclusive, so the note says it
    minutes = by_name("run_minutes")
    assert (
        minutes["Text Validation Min"],
        minutes["Text Validation Max"],
        minutes["Field Note"],
    ) == ("0", "600", "more than 0")
    # optional columns are not required fields; the record id is not flagged
    assert by_name("pt_age_years")["Required Field?"] == ""
    assert by_name("participant_id")["Required Field?"] == ""
    # free text that may identify a person is an identifier; the pseudonymous id is not
    flagged = redcap_dictionary().query("`Identifier?` == 'y'")["Variable / Field Name"]
    assert sorted(flagged) == ["ev_note", "pt_withdrawal_reason"]
    assert by_name("ev_note")["Field Type"] == "notes"


def run_cli(*args, cwd=None):
    """The command in this process (its exit code and output, without a new interpreter)."""
    return run_in_process(*args, cwd=cwd)


def test_cli_writes_the_template_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "dictionary.csv"
    done = run_cli("redcap-template", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = rows_of(out)
    assert rows[0] == HEADER and rows[1][0] == "participant_id"
    out.write_text("mine")
    again = run_cli("redcap-template", "--out", str(out))
    assert again.returncode != 0 and "Traceback" not in again.stderr
    assert "exists" in again.stderr and out.read_text() == "mine"
    forced = run_cli("redcap-template", "--out", str(out), "--overwrite")
    assert forced.returncode == 0 and rows_of(out)[0] == HEADER


# --------------------------------------------------------------------------------------------
# Round trip


def test_round_trip_through_an_export_keeps_the_fingerprint(export_dir, simulated):
    cohort, read = load(export_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = Cohort.from_tables(simulated, loaded_on="2030-01-01")
    assert cohort.fingerprint() == direct.fingerprint()
    assert read.kind == "redcap-export" and read.report.ok
    # REDCap's raw export holds one line per participant plus one per child row
    n_rows = sum(len(t) for t in simulated.values())
    assert len(rows_of(export_dir / "redcap_export.csv")) == 1 + n_rows


def test_simulate_writes_a_redcap_export_that_reads_back(tmp_path):
    out = tmp_path / "sim"
    done = run_cli(
        "simulate", "--participants", "8", "--seed", "2", "--out", str(out), "--format", "redcap"
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["redcap_dictionary.csv", "redcap_export.csv"]
    cohort, _ = load(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = Cohort.from_tables(simulate_tables(8, seed=2), loaded_on="2030-01-01")
    assert cohort.fingerprint() == direct.fingerprint()


def test_export_file_path_and_redcap_prefix_find_the_dictionary_beside(export_dir):
    path = export_dir / "redcap_export.csv"
    a, _ = load(path)
    b, _ = load(f"redcap:{path}")
    assert a.fingerprint() == b.fingerprint()


def test_redcaps_own_download_names_are_found(export_dir):
    (export_dir / "redcap_export.csv").rename(export_dir / "Achilles_DATA_2024-06-30_1200.csv")
    (export_dir / "redcap_dictionary.csv").rename(
        export_dir / "Achilles_DataDictionary_2024-06-30.csv"
    )
    cohort, _ = load(export_dir)
    assert cohort.n_participants == 12


# --------------------------------------------------------------------------------------------
# Bad values, with REDCap coordinates


def test_out_of_range_value_in_a_repeating_instrument_names_record_instance_and_field(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    header = rows[0]
    # the third sessions instance of the second participant: find its line by looking
    second = sorted({r[0] for r in rows[1:]})[1]
    at = [i for i, r in enumerate(rows) if r[0] == second and r[1] == "sessions" and r[2] == "3"][0]
    rows[at][header.index("ses_stage")] = "7"
    write_rows(path, rows)
    [p] = problems_of(export_dir)
    # the line of the file (rows[0] is line 1), the contract's table and column, and REDCap's
    # own place of the value
    assert (p.table, p.row, p.column, p.value) == ("sessions", at + 1, "stage", "7")
    assert p.where == f"record {second}, sessions #3, field ses_stage"


def test_unknown_choice_code_is_an_enum_problem_at_its_place(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    header = rows[0]
    at = next(i for i, r in enumerate(rows) if r[1] == "pain")
    rows[at][header.index("pain_timing")] = "noon"
    write_rows(path, rows)
    [p] = problems_of(export_dir)
    assert (p.table, p.column, p.value, p.code) == ("pain", "timing", "noon", "enum")
    assert p.where == f"record {rows[at][0]}, pain #{rows[at][2]}, field pain_timing"


def test_record_without_participants_data_names_the_record_and_the_missing_fields(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    header = rows[0]
    orphan = [""] * len(header)
    orphan[0], orphan[1], orphan[2] = "X9", "sessions", "1"
    for name, value in [
        ("ses_session_date", "2024-03-01"),
        ("ses_stage", "1"),
        ("ses_prescribed_sets", "3"),
        ("ses_prescribed_reps", "15"),
        ("ses_completed_sets", "3"),
        ("ses_completed_reps", "15"),
    ]:
        orphan[header.index(name)] = value
    rows.append(orphan)
    write_rows(path, rows)
    problems = problems_of(export_dir)
    # the record exists in REDCap with an empty participants form: each required field of it
    # is missing -- the fix is on that form, not in the child rows (no foreign-key problems)
    required = {(p.column, p.where) for p in problems if p.table == "participants"}
    assert required == {
        (c, f"record X9, field pt_{c}")
        for c in ("site", "arm", "tendinopathy_type", "sex", "enrolled_on")
    }
    assert {p.code for p in problems} == {"required"}


def test_error_report_text_shows_the_redcap_place(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    header = rows[0]
    at = next(i for i, r in enumerate(rows) if r[1] == "running")
    rows[at][header.index("run_minutes")] = "0"
    write_rows(path, rows)
    with pytest.raises(CohortValidationError) as info:
        load(export_dir)
    text = str(info.value)
    where = f"record {rows[at][0]}, running #{rows[at][2]}, field run_minutes"
    # the summary names the place under the rows, and the details give it its own column
    assert f"       at {where}\n" in text
    assert re.search(rf"running +{at + 1} +{re.escape(where)} +minutes +0 +must be > 0", text)


# --------------------------------------------------------------------------------------------
# Exports that cannot be read: one message each


def test_label_headers_are_refused_with_the_export_options(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    # a label export's headers: field labels, "Repeat Instrument", "Repeat Instance"
    rows[0] = ["Participant ID", "Repeat Instrument", "Repeat Instance", *rows[0][3:]]
    write_rows(path, rows)
    [p] = problems_of(export_dir)
    assert p.code == "export" and "labels" in p.rule
    assert "raw data with variable names as headers" in p.rule and "CSV" in p.rule


def test_label_values_are_refused(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    header = rows[0]
    column = header.index("pt_tendinopathy_type")
    for r in rows[1:]:
        if r[column]:
            r[column] = r[column].capitalize()  # "Midportion": the choice's label
    write_rows(path, rows)
    [p] = problems_of(export_dir)
    assert p.code == "export" and "pt_tendinopathy_type holds choice labels" in p.rule
    assert "rawOrLabel=raw" in p.rule


def test_label_repeat_instruments_are_refused(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    for r in rows[1:]:
        if r[1] == "sessions":
            r[1] = "Sessions"
    write_rows(path, rows)
    [p] = problems_of(export_dir)
    assert p.code == "export" and "repeat instruments are labels" in p.rule


def test_a_dictionary_of_another_project_is_one_mismatch_message(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    rows[0][rows[0].index("ses_stage")] = "stage_prescribed"
    write_rows(path, rows)
    [p] = problems_of(export_dir)
    assert p.code == "export" and "does not match the data dictionary" in p.rule
    # both sides of the mismatch are named
    assert "stage_prescribed" in p.rule and "ses_stage" in p.rule


def test_missing_dictionary_is_named(export_dir):
    (export_dir / "redcap_dictionary.csv").unlink()
    [p] = problems_of(export_dir)
    assert p.table == "(dictionary)" and "redcap_dictionary.csv" in p.rule


def test_semicolon_export_is_refused(export_dir):
    path = export_dir / "redcap_export.csv"
    path.write_text(path.read_text().replace(",", ";"))
    [p] = problems_of(export_dir)
    assert "comma" in p.rule


def test_label_download_alone_is_named(tmp_path, export_dir):
    (export_dir / "redcap_export.csv").rename(export_dir / "X_DATA_LABELS_2024-06-30_1200.csv")
    [p] = problems_of(export_dir)
    assert "labels" in p.rule and p.value == "X_DATA_LABELS_2024-06-30_1200.csv"


# --------------------------------------------------------------------------------------------
# Missing-data codes, empty instances, de-identified exports


def test_missing_data_codes_are_read_as_missing_and_counted(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    header = rows[0]
    hits = [i for i, r in enumerate(rows) if r[1] == "function_tests"][:3]
    for i in hits:
        rows[i][header.index("ft_pain_nrs")] = "UNK"
    write_rows(path, rows)
    # without the project's codes, UNK is a value: not a number
    assert {p.column for p in problems_of(export_dir)} == {"pain_nrs"}
    (export_dir / "redcap_mapping.yaml").write_text(
        "missing_data_codes: 'UNK, Unknown | NI, No information'\n" + _template_mapping_yaml()
    )
    cohort, read = load(export_dir)
    # 3 values read as missing, said in a data note with the count
    [note] = [w for w in read.report.warnings if "missing-data" in w]
    assert note.counts == {"n": 3} and "function_tests.pain_nrs" in note and "UNK" in note
    assert cohort.function_tests["pain_nrs"].isna().sum() >= 3


def _template_mapping_yaml() -> str:
    lines = ["tables:"]
    for table, columns in default_mapping().tables.items():
        lines += [f"  {table}:", "    columns:"]
        lines += [f"      {column}: {source.field}" for column, source in columns.items()]
    return "\n".join(lines) + "\n"


def test_empty_instances_are_not_read_and_counted(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    header = rows[0]
    empty = [""] * len(header)
    empty[0], empty[1], empty[2] = rows[1][0], "pain", "99"
    empty[header.index("pain_complete")] = "0"
    rows.insert(2, empty)
    write_rows(path, rows)
    _, read = load(export_dir)
    [note] = [w for w in read.report.warnings if "no value" in w]
    assert note.counts == {"n": 1} and "pain" in note


def test_a_deidentified_export_without_identifier_fields_loads_with_a_note(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    drop = [rows[0].index("pt_withdrawal_reason"), rows[0].index("ev_note")]
    write_rows(path, [[v for i, v in enumerate(r) if i not in drop] for r in rows])
    cohort, read = load(export_dir)
    assert any("de-identified" in w for w in read.report.warnings)
    assert cohort.events["note"].isna().all()


# --------------------------------------------------------------------------------------------
# A project built without the template: a mapping file


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# The dictionary of a project built without the template (dates shown d-m-y in REDCap but
# exported y-m-d, a comma-decimal weight, numeric choice codes, a checkbox).
OWN_DICTIONARY = [HEADER] + [
    row + [""] * (18 - len(row))
    for row in csv_rows(
        """\
study_id,enrolment,,text,Study ID
centre,enrolment,,dropdown,Centre,"1, Leeds | 2, York",,,,,,,y
group,enrolment,,radio,Group,"1, Staged | 2, HSR",,,,,,,y
location,enrolment,,radio,Location,"1, Mid | 2, Insertion",,,,,,,y
gender,enrolment,,radio,Gender,"1, Female | 2, Male | 3, Other | 9, Not known",,,,,,,y
enrol_date,enrolment,,text,Date,,,date_dmy,,,,,y
weight,enrolment,,text,Weight,,,number_comma_decimal
end_date,study_end,,text,Withdrawn,,,date_dmy
ex_date,exercise_log,,text,Date,,,date_dmy,,,,,y
ex_stage,exercise_log,,dropdown,Stage,"1, I | 2, II | 3, III | 4, IV",,,,,,,y
ex_sets,exercise_log,,text,Sets,,,integer
ex_done,exercise_log,,text,Done,,,integer
ex_surface,exercise_log,,checkbox,Surface,"s, Step | f, Flat"
visa_date,visa,,text,Date,,,date_ymd
visa_total,visa,,text,VISA-A,,,integer,0,100
"""
    )
]

OWN_MAPPING = """\
missing_data_codes: [NASK]
tables:
  participants:
    columns:
      site: {field: centre, codes: {1: leeds, 2: york}}
      arm: {field: group, codes: {1: staged, 2: hsr}}
      tendinopathy_type: {field: location, codes: {1: midportion, 2: insertional}}
      sex: {field: gender, codes: {1: female, 2: male, 3: other, 9: unknown}}
      enrolled_on: enrol_date
      body_mass_kg: weight
      withdrawn_on: end_date
  sessions:
    instrument: exercise_log
    columns:
      session_date: ex_date
      stage: ex_stage
      prescribed_sets: ex_sets
      prescribed_reps: ex_sets
      completed_sets: ex_done
      completed_reps: ex_sets
      surface: {field: ex_surface, codes: {s: step, f: flat}}
  visa_a:
    columns:
      assessed_on: visa_date
      total: visa_total
"""

# A longitudinal project: enrolment in baseline, the VISA-A form (not repeating) in two
# events, the exercise log repeating in the baseline event, the end-of-study form in its event.
OWN_EXPORT = csv_rows(
    """\
study_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,centre,group,location,gender,enrol_date,weight,enrolment_complete,end_date,study_end_complete,ex_date,ex_stage,ex_sets,ex_done,ex_surface___s,ex_surface___f,exercise_log_complete,visa_date,visa_total,visa_complete
101,baseline_arm_1,,,2,1,1,9,2024-01-08,"81,5",2,,,,,,,0,0,,,,
101,baseline_arm_1,exercise_log,1,,,,,,,,,,2024-01-08,1,3,3,1,0,2,,,
101,baseline_arm_1,exercise_log,2,,,,,,,,,,2024-01-10,2,3,0,0,0,2,,,
101,week_6_arm_1,,,,,,,,,,,,,,,,0,0,,2024-02-19,55,2
101,end_arm_1,,,,,,,,,,2024-03-01,2,,,,,0,0,,,,
102,baseline_arm_1,,,1,2,2,NASK,2024-01-15,,2,,,,,,,0,0,,,,
102,baseline_arm_1,exercise_log,1,,,,,,,,,,2024-01-15,3,4,4,0,1,2,,,
"""
)


@pytest.fixture
def own_project(tmp_path):
    folder = tmp_path / "own"
    folder.mkdir()
    write_rows(folder / "redcap_dictionary.csv", OWN_DICTIONARY)
    write_rows(folder / "redcap_export.csv", OWN_EXPORT)
    (folder / "redcap_mapping.yaml").write_text(OWN_MAPPING)
    return folder


def test_a_mapped_longitudinal_project_reads_codes_checkboxes_and_events(own_project):
    read = read_redcap_export(own_project)
    assert read.report.ok, read.report.format_text()
    p = read.tables["participants"]
    # one participant per record, its fields gathered from the events that hold them
    assert p["participant_id"].tolist() == ["101", "102"]
    assert p["site"].tolist() == ["york", "leeds"]
    assert p["arm"].tolist() == ["staged", "hsr"]
    assert p["withdrawn_on"].tolist()[0] == "2024-03-01"  # from the end_arm_1 event
    assert p["body_mass_kg"].tolist()[0] == "81.5"  # a comma-decimal field, declared so
    # NASK is a missing-data code of this project: sex read as missing (a required column:
    # the validation then names it)
    assert pd.isna(p["sex"].tolist()[1])
    s = read.tables["sessions"]
    assert s["participant_id"].tolist() == ["101", "101", "102"]
    assert s["stage"].tolist() == ["1", "2", "3"]
    # a checkbox field: the one ticked box's code, mapped; none ticked: missing
    assert s["surface"].tolist()[0] == "step" and pd.isna(s["surface"].tolist()[1])
    assert s["surface"].tolist()[2] == "flat"
    # the non-repeating VISA-A form holds data in one event only: one row
    v = read.tables["visa_a"]
    assert v["total"].tolist() == ["55"]
    where = read.coordinates["sessions"]([1], column="stage")
    assert where == ["record 101, event baseline_arm_1, exercise_log #2, field ex_stage"]
    with pytest.raises(CohortValidationError) as info:
        load(own_project)
    [problem] = info.value.report.problems
    assert (problem.table, problem.column, problem.code) == ("participants", "sex", "required")
    assert problem.where == "record 102, event baseline_arm_1, field gender"


def test_two_values_of_one_participant_field_in_two_events_are_a_problem(own_project):
    rows = [list(r) for r in OWN_EXPORT]
    rows[4][OWN_EXPORT[0].index("centre")] = "1"  # week 6 says Leeds, baseline says York
    write_rows(own_project / "redcap_export.csv", rows)
    read = read_redcap_export(own_project)
    [problem] = read.report.problems
    assert (problem.table, problem.column, problem.code) == ("participants", "site", "consistency")
    assert problem.where == "record 101, field centre" and problem.value == "leeds / york"


def test_mapping_problems_are_listed_together(own_project):
    broken = (
        OWN_MAPPING.replace("ex_stage", "ex_stg")
        .replace("{1: staged, 2: hsr}", "{1: staged, 5: hsr}")
        .replace("      session_date: ex_date\n", "")
    )
    (own_project / "redcap_mapping.yaml").write_text(broken)
    read = read_redcap_export(own_project)
    rules = sorted((p.table, p.column, p.code) for p in read.report.problems)
    assert rules == [
        ("participants", "arm", "mapping"),  # 5 is not a choice code of `group`
        ("sessions", "session_date", "mapping"),  # a required column without a field
        ("sessions", "stage", "mapping"),  # ex_stg is not a field
    ]
    assert not read.tables


def test_a_mapping_with_yaml_errors_is_one_problem(own_project):
    (own_project / "redcap_mapping.yaml").write_text("tables:\n  sessions: [\n")
    read = read_redcap_export(own_project)
    [p] = read.report.problems
    assert p.code == "mapping" and "line" in p.rule


def test_dictionary_from_the_api_with_its_column_names_is_read(own_project):
    write_rows(own_project / "redcap_dictionary.csv", [API_NAMES, *OWN_DICTIONARY[1:]])
    read = read_redcap_export(own_project)
    assert read.report.ok and len(read.tables["sessions"]) == 3


def test_export_with_a_byte_order_mark_and_crlf_reads(export_dir):
    path = export_dir / "redcap_export.csv"
    text = path.read_text()
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    cohort, _ = load(export_dir)
    assert cohort.n_participants == 12


def test_note_with_a_line_break_keeps_line_numbers(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    header = rows[0]
    first = next(i for i, r in enumerate(rows) if r[1] == "events")
    rows[first][header.index("ev_note")] = "line one\nline two"
    bad = next(i for i, r in enumerate(rows) if r[1] == "running")
    rows[bad][header.index("run_pain_nrs")] = "11"
    write_rows(path, rows)
    [p] = problems_of(export_dir)
    # the quoted note spans two lines before the running row when it comes first
    assert p.row == bad + 1 + (1 if first < bad else 0)


def test_location_and_kind(export_dir):
    read = read_source(str(export_dir))
    assert (read.kind, read.location) == ("redcap-export", str(export_dir))


def test_export_written_into_a_non_empty_folder_is_refused(tmp_path, simulated):
    from rehabstats.errors import OutputError

    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep")
    with pytest.raises(OutputError):
        write_redcap_export(simulated, folder)
    write_redcap_export(simulated, folder, overwrite=True)
    assert (folder / "mine.txt").read_text() == "keep"


def test_dictionary_is_csv_redcap_can_import():
    # quoted as RFC 4180 with the 18 columns on every line
    buffer = io.StringIO()
    redcap_dictionary().to_csv(buffer, index=False)
    rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert {len(r) for r in rows} == {18}


def test_two_ticked_boxes_for_a_one_value_column_are_an_enum_problem(own_project):
    rows = [list(r) for r in OWN_EXPORT]
    header = OWN_EXPORT[0]
    rows[2][header.index("ex_surface___f")] = "1"  # 101's first session: step and flat ticked
    write_rows(own_project / "redcap_export.csv", rows)
    with pytest.raises(CohortValidationError) as info:
        load(own_project)
    [p] = [p for p in info.value.report.problems if p.table == "sessions"]
    # both codes, mapped codes not applying to the pair: shown as ticked, refused by the enum
    assert (p.column, p.value, p.code, p.row) == ("surface", "s|f", "enum", 3)
    assert p.where == "record 101, event baseline_arm_1, exercise_log #1, field ex_surface"


def test_which_source_strings_are_redcap(tmp_path, export_dir, monkeypatch):
    monkeypatch.delenv("REHABSTATS_REDCAP_TOKEN", raising=False)
    monkeypatch.delenv("REHABSTATS_REDCAP_TOKEN_FILE", raising=False)
    table = tmp_path / "participants.csv"
    table.write_text("participant_id\n")
    assert is_export_path(export_dir)
    assert is_export_path(export_dir / "redcap_export.csv")
    assert not is_export_path(table)  # a cohort table file, not an export
    assert not is_export_path(tmp_path)  # a folder without an export
    # the registry of source kinds sends each string to its reader
    assert read_source(export_dir).kind == "redcap-export"
    assert read_source(f"redcap:{export_dir / 'redcap_export.csv'}").kind == "redcap-export"
    missing = read_source("redcap:anything.csv")  # said to be an export: the export reader
    assert missing.kind == "redcap-export" and "anything.csv" in missing.report.problems[0].value
    api = read_source("https://redcap.example.org/api/")  # no token: refused before sending
    assert api.kind == "redcap-api" and "REHABSTATS_REDCAP_TOKEN" in api.report.problems[0].rule
    assert read_source(tmp_path).kind == "folder"
    (export_dir / "sessions.csv").write_text("x\n")
    assert not is_export_path(export_dir)  # cohort table files: a cohort folder
    assert read_source(export_dir).kind == "folder"


# --------------------------------------------------------------------------------------------
# An export as a cohort source: rehabstats.load_cohort and the commands


def test_a_folder_and_its_redcap_export_load_with_one_fingerprint(tmp_path, simulated):
    # the same cohort two ways: a folder of CSV files, and a REDCap export + dictionary
    folder = write_cohort(simulated, tmp_path / "folder")
    export = write_redcap_export(simulated, tmp_path / "export")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_folder = load_cohort(folder, loaded_on="2030-01-01")
        from_export = load_cohort(export, loaded_on="2030-01-01")
        from_file = load_cohort(export / "redcap_export.csv", loaded_on="2030-01-01")
    assert from_export.fingerprint() == from_folder.fingerprint() == from_file.fingerprint()
    assert (from_export.source_kind, from_export.source) == ("redcap-export", str(export))
    assert from_folder.source_kind == "folder"


def test_validate_names_the_redcap_place_of_a_bad_value(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    at = next(i for i, r in enumerate(rows) if r[1] == "function_tests" and r[2] == "2")
    rows[at][rows[0].index("ft_value")] = "lots"
    write_rows(path, rows)
    result = run_cli("validate", str(export_dir))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    where = f"record {rows[at][0]}, function_tests #2, field ft_value"
    # the summary gives the line of the export (the header is line 1) and REDCap's place
    assert f"row {at + 1}\n       at {where}\n" in result.stdout
    assert re.search(rf"function_tests +{at + 1} +{re.escape(where)} +value +lots", result.stdout)


def test_a_label_export_is_one_message_and_exit_1_on_the_command_line(export_dir):
    path = export_dir / "redcap_export.csv"
    rows = rows_of(path)
    rows[0] = ["Participant ID", "Repeat Instrument", "Repeat Instance", *rows[0][3:]]
    write_rows(path, rows)
    for command in (["validate", str(export_dir)], ["metrics", str(path), "--out", "unused"]):
        result = run_cli(*command)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        text = result.stdout + result.stderr
        assert "cannot be read; nothing was loaded" in text
        assert text.count("is a REDCap export with labels") == 1
        assert "raw data with variable names as headers" in text
