"""Every rule of the data contract (METRICS.md §2) with an input that breaks it.

Each case starts from a valid one-participant cohort and changes one value; the error must name
the table, the source row, the column, the offending value and the rule.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from cohort_builder import morning_pain, sessions_on, tables_from_rows

from rehabstats import Cohort, CohortValidationError
from rehabstats.constants import data_schema_dir
from rehabstats.data import schema
from rehabstats.data.schema import (
    TABLES,
    _pandera_schema,
    contract_markdown,
    table_spec,
    today_anywhere,
    validate_tables,
)

P = "p1"


def valid_rows() -> dict[str, list[dict]]:
    """A valid cohort touching every table (enrolled 2024-01-01)."""
    return {
        "participants": [{"participant_id": P}, {"participant_id": "p2"}],
        "sessions": [{"participant_id": P, "day": 0}, {"participant_id": P, "day": 2}],
        "pain": [{"participant_id": P, "day": 0, "timing": "morning", "nrs": 3}],
        "visa_a": [
            {
                "participant_id": P,
                "day": -3,
                "q1": 5,
                "q2": 5,
                "q3": 5,
                "q4": 5,
                "q5": 5,
                "q6": 5,
                "q7": 4,
                "q8b": 10,
            }
        ],
        "function_tests": [
            {"participant_id": P, "day": 1, "test": "heel_raise_endurance", "value": 20}
        ],
        "events": [{"participant_id": P, "day": 60, "event": "return_to_running"}],
        "running": [
            {"participant_id": P, "day": 60, "minutes": 20, "distance_km": 3.1, "pain_nrs": 2}
        ],
    }


def validate_rows(rows: dict[str, list[dict]]):
    raw = tables_from_rows(
        rows["participants"], **{k: v for k, v in rows.items() if k != "participants"}
    )
    # rows as in a CSV file: header is line 1, the first record line 2
    return validate_tables(raw, row_offset=dict.fromkeys(raw, 2))


def test_valid_cohort_has_no_problem():
    _, report = validate_rows(valid_rows())
    assert report.ok, report.format_table()


# (table, index of the row to change, column, new value, rule text expected)
CASES = [
    ("participants", 0, "participant_id", None, "required"),
    ("participants", 1, "participant_id", P, "must be unique"),
    ("participants", 0, "site", None, "required"),
    ("participants", 0, "arm", None, "required"),
    ("participants", 0, "tendinopathy_type", "plantar", "must be one of: midportion, insertional"),
    ("participants", 0, "sex", "f", "must be one of: female, male, other, unknown"),
    ("participants", 0, "age_years", "9", "between 10 and 100"),
    ("participants", 0, "age_years", "101", "between 10 and 100"),
    ("participants", 0, "age_years", "forty", "must be a number"),
    ("participants", 0, "body_mass_kg", "24.9", "between 25 and 300"),
    ("participants", 0, "body_mass_kg", "301", "between 25 and 300"),
    ("participants", 0, "enrolled_on", "01/02/2024", "ISO date"),
    ("participants", 0, "enrolled_on", "2024-02-30", "ISO date"),
    ("participants", 0, "enrolled_on", None, "required"),
    ("participants", 0, "withdrawn_on", "2023-12-31", "must not be before enrolled_on"),
    ("sessions", 0, "participant_id", "ghost", "must exist in participants"),
    ("sessions", 0, "session_date", "2023-12-31", "before the participant's enrolled_on"),
    ("sessions", 0, "session_date", "2024-1-5", "ISO date"),
    ("sessions", 0, "stage", "0", "between 1 and 4"),
    ("sessions", 0, "stage", "5", "between 1 and 4"),
    ("sessions", 0, "stage", "2.5", "whole number"),
    ("sessions", 0, "stage", None, "required"),
    ("sessions", 0, "prescribed_sets", "0", ">= 1"),
    ("sessions", 0, "prescribed_reps", "0", ">= 1"),
    ("sessions", 0, "completed_sets", "-1", ">= 0"),
    ("sessions", 0, "completed_reps", "-1", ">= 0"),
    ("sessions", 0, "completed_reps", "ten", "whole number"),
    ("sessions", 0, "load_kg", "-2.5", ">= 0"),
    ("sessions", 0, "surface", "stairs", "must be one of: step, flat"),
    ("sessions", 0, "lowering_s", "-0.5", "between 0 and 60"),
    ("sessions", 0, "lowering_s", "61", "between 0 and 60"),
    ("sessions", 0, "lowering_s", "3s", "must be a number"),
    ("pain", 0, "participant_id", "ghost", "must exist in participants"),
    ("pain", 0, "recorded_on", "2023-12-25", "before the participant's enrolled_on"),
    ("pain", 0, "timing", "evening", "must be one of: morning, during, after"),
    ("pain", 0, "nrs", "10.5", "between 0 and 10"),
    ("pain", 0, "nrs", "-1", "between 0 and 10"),
    ("pain", 0, "nrs", None, "required"),
    ("visa_a", 0, "participant_id", "ghost", "must exist in participants"),
    ("visa_a", 0, "q1", "11", "between 0 and 10"),
    ("visa_a", 0, "q6", "-1", "between 0 and 10"),
    ("visa_a", 0, "q7", "5", "must be one of: 0, 4, 7, 10"),
    ("visa_a", 0, "q8a", "8", "must be one of: 0, 7, 14, 21, 30"),
    ("visa_a", 0, "q8b", "5", "must be one of: 0, 4, 10, 14, 20"),
    ("visa_a", 0, "q8c", "3", "must be one of: 0, 2, 5, 7, 10"),
    ("visa_a", 0, "q8a", "7", "at most one q8 branch"),
    ("visa_a", 0, "total", "60", "must equal q1 + ... + q7 + q8"),
    ("visa_a", 0, "total", "101", "between 0 and 100"),
    ("function_tests", 0, "participant_id", "ghost", "must exist in participants"),
    ("function_tests", 0, "assessed_on", "2023-12-31", "before the participant's enrolled_on"),
    ("function_tests", 0, "test", "squat", "must be one of: heel_raise_endurance"),
    ("function_tests", 0, "side", "left", "must be one of: involved, uninvolved"),
    ("function_tests", 0, "value", "-3", ">= 0"),
    ("function_tests", 0, "external_load_kg", "-1", ">= 0"),
    ("function_tests", 0, "pain_nrs", "12", "between 0 and 10"),
    ("events", 0, "participant_id", "ghost", "must exist in participants"),
    ("events", 0, "event_date", "2023-11-30", "before the participant's enrolled_on"),
    ("events", 0, "event", "fall", "must be one of: return_to_running"),
    ("running", 0, "participant_id", "ghost", "must exist in participants"),
    ("running", 0, "participant_id", None, "required"),
    ("running", 0, "run_date", "2023-12-31", "before the participant's enrolled_on"),
    ("running", 0, "run_date", "2024-13-01", "ISO date"),
    ("running", 0, "minutes", "0", "must be > 0"),  # an exclusive minimum: 0 minutes is no run
    ("running", 0, "minutes", "-5", "must be > 0"),
    ("running", 0, "minutes", "600.5", "must be <= 600"),
    ("running", 0, "minutes", None, "required"),
    ("running", 0, "minutes", "30 min", "must be a number"),
    ("running", 0, "distance_km", "-0.1", ">= 0"),
    ("running", 0, "pain_nrs", "10.5", "between 0 and 10"),
]


@pytest.mark.parametrize(("table", "index", "column", "value", "rule"), CASES)
def test_each_rule_is_reported_with_table_row_column_value_and_rule(
    table, index, column, value, rule
):
    rows = valid_rows()
    date_columns = {
        "sessions": "session_date",
        "pain": "recorded_on",
        "visa_a": "assessed_on",
        "function_tests": "assessed_on",
        "events": "event_date",
        "running": "run_date",
    }
    if column == date_columns.get(table):
        rows[table][index].pop("day")
    rows[table][index][column] = value
    _, report = validate_rows(rows)
    problems = report.to_frame()
    # q8: the problem names the branches together; the value lists both answers
    expected_column = "q8a/q8b/q8c" if rule.startswith("at most one q8") else column
    hit = problems[(problems["table"] == table) & (problems["column"] == expected_column)]
    assert len(hit) >= 1, report.format_table()
    # row = 1-based line of the CSV file: header on line 1, so record index i is on line i + 2
    hit = hit[(hit["row"] == index + 2) & hit["rule"].str.contains(rule, regex=False)]
    assert len(hit) == 1, report.format_table()
    first = hit.iloc[0]
    assert rule in first["rule"]
    if rule.startswith("at most one q8"):
        assert first["value"] == "q8a=7; q8b=10"
    else:
        assert first["value"] == ("" if value is None else value)


def test_all_problems_reported_at_once_and_nothing_loaded():
    rows = valid_rows()
    rows["participants"][0]["sex"] = "f"
    rows["sessions"][1]["stage"] = "9"
    rows["pain"][0]["nrs"] = "11"
    raw = tables_from_rows(
        rows["participants"], **{k: v for k, v in rows.items() if k != "participants"}
    )
    with pytest.raises(CohortValidationError) as info:
        Cohort.from_tables(raw)
    report = info.value.report
    assert len(report.problems) == 3
    assert {(p.table, p.column) for p in report.problems} == {
        ("participants", "sex"),
        ("sessions", "stage"),
        ("pain", "nrs"),
    }
    # the message itself carries the table so a user sees every problem
    message = str(info.value)
    assert "3 problems" in message and "sessions" in message and "nrs" in message


def test_missing_required_table_and_column():
    rows = valid_rows()
    raw = tables_from_rows(rows["participants"])
    del raw["sessions"]
    raw["participants"] = raw["participants"].drop(columns=["site"])
    _, report = validate_tables(raw)
    rules = {(p.table, p.column, p.rule) for p in report.problems}
    assert ("sessions", None, "required table is missing") in rules
    assert ("participants", "site", "required column is missing from the table") in rules


def test_empty_participants_table_is_a_problem():
    raw = tables_from_rows([])
    _, report = validate_tables(raw)
    assert any(p.rule == "must hold at least one participant" for p in report.problems)


def test_absent_optional_tables_and_columns_mean_no_records():
    rows = valid_rows()
    raw = tables_from_rows(rows["participants"], sessions=rows["sessions"])
    raw = {
        "participants": raw["participants"],
        "sessions": raw["sessions"].drop(columns=["load_kg", "surface"]),
    }
    cohort = Cohort.from_tables(raw)
    assert cohort.pain.empty and cohort.events.empty
    assert cohort.sessions["load_kg"].isna().all()
    assert list(cohort.pain.columns) == table_spec("pain").columns


def test_extra_columns_are_kept():
    rows = valid_rows()
    rows["participants"][0]["clinician"] = "dr x"
    cohort = Cohort.from_tables(tables_from_rows(rows["participants"], sessions=rows["sessions"]))
    assert "clinician" in cohort.participants.columns
    assert cohort.participants["clinician"].iloc[0] == "dr x"


def test_visa_total_used_when_items_missing_and_matching_total_accepted():
    rows = valid_rows()
    # all items present: 5*6 + 4 + 10 = 44, total 44 agrees
    rows["visa_a"][0]["total"] = "44"
    _, report = validate_rows(rows)
    assert report.ok, report.format_table()
    # items partly missing: the total cannot be checked against them, so it is accepted
    rows["visa_a"][0]["q3"] = None
    rows["visa_a"][0]["total"] = "61"
    _, report = validate_rows(rows)
    assert report.ok, report.format_table()


@pytest.mark.parametrize("day", [-14, -20, -400])
def test_a_visa_a_may_precede_enrolment_by_any_number_of_days(day):
    # a screening questionnaire before enrolment is data, not an error; which one is the
    # baseline is the analysis's baseline_window_days (rehabstats.metrics.visa), so validation
    # does not depend on the analysis configuration (before: -20 and -400 were errors, against
    # the default window [-14, 7] whatever the analysis configured)
    rows = valid_rows()
    rows["visa_a"][0]["day"] = day
    _, report = validate_rows(rows)
    assert report.ok, report.format_table()
    # every other table's dates still may not precede enrolment (CASES: "before the
    # participant's enrolled_on")
    rows["function_tests"][0]["day"] = -1
    _, report = validate_rows(rows)
    assert [(p.table, p.column) for p in report.problems] == [("function_tests", "assessed_on")]


def test_sessions_after_withdrawal_warn_but_load():
    rows = valid_rows()
    rows["participants"][0]["withdrawn_on"] = "2024-01-02"  # sessions on day 0 and day 2
    raw = tables_from_rows(
        rows["participants"], **{k: v for k, v in rows.items() if k != "participants"}
    )
    # one row: the note says "1 row ... it is kept", not "1 rows"
    with pytest.warns(UserWarning, match="sessions: 1 row dated after .*; it is kept"):
        cohort = Cohort.from_tables(raw)
    assert len(cohort.sessions) == 2  # kept in the table; metrics exclude it
    assert any("after the participant's withdrawn_on" in w for w in cohort.warnings)


def test_duplicate_morning_rating_warns():
    rows = valid_rows()
    rows["pain"].append({"participant_id": P, "day": 0, "timing": "morning", "nrs": 5})
    raw = tables_from_rows(
        rows["participants"], **{k: v for k, v in rows.items() if k != "participants"}
    )
    with pytest.warns(UserWarning, match="morning ratings share a participant and day"):
        Cohort.from_tables(raw)


# ---- dates against the load date and against each other ---------------------------------------


def test_dates_after_the_load_date_are_problems():
    # the reported typo: a pain row dated 2042 instead of 2024. Loaded on 2024-07-01, every date
    # after it is impossible, in every table and date column, all reported at once
    rows = valid_rows()
    rows["pain"].append(
        {"participant_id": P, "recorded_on": "2042-06-30", "timing": "morning", "nrs": 2}
    )
    rows["participants"][0]["withdrawn_on"] = "2024-07-02"
    rows["participants"][1]["enrolled_on"] = "2024-08-01"
    rows["events"].append({"participant_id": P, "event_date": "2024-07-01", "event": "relapse"})
    raw = tables_from_rows(
        rows["participants"], **{k: v for k, v in rows.items() if k != "participants"}
    )
    _, report = validate_tables(raw, row_offset=dict.fromkeys(raw, 2), loaded_on="2024-07-01")
    found = {(p.table, p.row, p.column, p.value) for p in report.problems}
    assert found == {
        ("pain", 3, "recorded_on", "2042-06-30"),
        ("participants", 2, "withdrawn_on", "2024-07-02"),
        ("participants", 3, "enrolled_on", "2024-08-01"),
    }  # the event on the load date itself is fine
    assert all(
        p.rule.startswith("must not be after 2024-07-01, the day the data were loaded")
        for p in report.problems
    )
    with pytest.raises(CohortValidationError, match="2042-06-30"):
        Cohort.from_tables(raw, loaded_on="2024-07-01")


def test_default_load_date_is_today_in_the_latest_time_zone():
    # UTC+14 (Line Islands): today's diary entries of any clinic are not in its future
    today = today_anywhere()
    utc_today = dt.datetime.now(dt.UTC).date()
    assert (today.date() - utc_today).days in (0, 1)
    rows = valid_rows()
    rows["events"] = [
        {"participant_id": P, "event_date": today.strftime("%Y-%m-%d"), "event": "relapse"},
        {
            "participant_id": P,
            "event_date": (today + pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
            "event": "relapse",
        },
    ]
    _, report = validate_rows(rows)
    assert [(p.table, p.row) for p in report.problems] == [("events", 3)]
    assert "must not be in the future" in report.problems[0].rule
    with pytest.raises(ValueError, match="loaded_on"):
        validate_tables(tables_from_rows([{"participant_id": P}]), loaded_on="01/07/2024")


def _diary(pid: str, days) -> list[dict]:
    return morning_pain(pid, dict.fromkeys(days, 2))


def _visa(pid: str, day: int) -> dict:
    items = dict(q1=5, q2=5, q3=5, q4=5, q5=5, q6=5, q7=4, q8b=10)
    return {"participant_id": pid, "day": day, **items}


@pytest.fixture(params=["sorted", "counted per day"])
def date_paths(request, monkeypatch):
    """The outlying-date check sorts a few dates and counts many per day of the date range:
    each test below runs both ways (the second as if the cohort were large)."""
    if request.param == "counted per day":
        monkeypatch.setattr(schema, "_FEW_DATES", 0)


def outlying_notes(participants, loaded_on="2030-01-01", **children) -> list[str]:
    raw = tables_from_rows(participants, **children)
    _, report = validate_tables(raw, row_offset=dict.fromkeys(raw, 2), loaded_on=loaded_on)
    assert report.ok, report.format_table()
    return [w for w in report.warnings if w.startswith("Outlying latest dates")]


def test_a_typo_date_far_beyond_the_rest_is_named(date_paths):
    # one participant (enrolled 2024-01-01): sessions and diaries over 12 weeks, then one diary
    # row typed 2026-06-30 instead of 2024-03-30: 820 days after the rest, 1 of 170 dates (the
    # 5-row floor applies to a cohort this small)
    pain = _diary(P, range(84))
    pain.insert(5, {"participant_id": P, "recorded_on": "2026-06-30", "timing": "morning",
                    "nrs": 2})  # fmt: skip
    notes = outlying_notes([{"participant_id": P}], sessions=sessions_on(P, range(0, 84, 1)),
                           pain=pain)  # fmt: skip
    assert len(notes) == 1
    note = notes[0]
    assert "pain line 7 recorded_on 2026-06-30" in note  # header line 1, inserted 6th record
    assert "the latest of the others is 2024-03-24" in note  # day 83
    assert "set the default data cut-off 2026-06-30" in note
    assert note.counts == {"n": 1}


def test_late_follow_up_visits_and_a_second_wave_are_not_outlying(date_paths):
    # diaries and sessions end on day 83; VISA-A at weeks 0, 6, 12, 26 and 52: the 52-week
    # visit stands 182 days after the 26-week one (a gap under a year), in a cohort of one
    visits = [_visa(P, 7 * w) for w in (0, 6, 12, 26, 52)]
    assert outlying_notes([{"participant_id": P}], sessions=sessions_on(P, range(84)),
                          pain=_diary(P, range(84)), visa_a=visits) == []  # fmt: skip
    # a second wave enrolled two years after the first: a 650-day gap, but half of the dates
    # lie after it; that is data, not a typo
    people = [{"participant_id": "w1"}, {"participant_id": "w2", "enrolled_on": "2026-01-01"}]
    sessions = sessions_on("w1", range(84)) + sessions_on("w2", range(84))
    assert outlying_notes(people, sessions=sessions) == []
    # ... and a typo after the second wave is still found: the first gap of more than a year
    # with few dates after it is the last one
    events = [{"participant_id": "w2", "event_date": "2028-05-01", "event": "relapse"}]
    notes = outlying_notes(people, sessions=sessions, events=events)
    assert len(notes) == 1 and "events line 2 event_date 2028-05-01" in notes[0]
    assert "the latest of the others is 2026-03-25" in notes[0]  # w2's day 83


def test_dates_after_the_load_date_are_not_also_outlying(date_paths):
    pain = _diary(P, range(10)) + [
        {"participant_id": P, "recorded_on": "2042-06-30", "timing": "morning", "nrs": 2}
    ]
    raw = tables_from_rows([{"participant_id": P}], sessions=sessions_on(P, [0]), pain=pain)
    _, report = validate_tables(raw, loaded_on="2025-01-01")
    assert [p.value for p in report.problems] == ["2042-06-30"]
    assert not [w for w in report.warnings if "Outlying" in w]


def test_labels_differing_only_in_case_or_spacing_are_named_with_their_counts():
    # arms HSR (2) / hsr (1); sites Leeds / "leeds " (the trailing blank is stripped on reading,
    # the case stays) and "Leeds  North" (two spaces) / "leeds north"; reasons likewise. They
    # stay as typed (analysed as different groups); a warning names each variant
    people = [
        {"participant_id": "p1", "arm": "HSR", "site": "Leeds"},
        {"participant_id": "p2", "arm": "HSR", "site": "leeds "},
        {"participant_id": "p3", "arm": "hsr", "site": "Leeds  North"},
        {"participant_id": "p4", "arm": "staged", "site": "leeds north"},
        {"participant_id": "p5", "arm": "staged", "site": "York"},
    ]
    for pid, reason in (("p1", "moved away"), ("p2", "Moved  away"), ("p3", "injury")):
        person = next(p for p in people if p["participant_id"] == pid)
        person.update(withdrawn_on="2024-02-01", withdrawal_reason=reason)
    tables, report = validate_tables(tables_from_rows(people))
    assert report.ok
    notes = [w for w in report.warnings if "differ only in case or spacing" in w]
    assert notes == [
        "participants.site: 'Leeds' (1) and 'leeds' (1) differ only in case or spacing; they "
        "are analysed as different sites — correct the labels in the source.",
        "participants.site: 'Leeds  North' (1) and 'leeds north' (1) differ only in case or "
        "spacing; they are analysed as different sites — correct the labels in the source.",
        "participants.arm: 'HSR' (2) and 'hsr' (1) differ only in case or spacing; they are "
        "analysed as different arms — correct the labels in the source.",
        "participants.withdrawal_reason: 'Moved  away' (1) and 'moved away' (1) differ only "
        "in case or spacing; they are analysed as different reasons — correct the labels in "
        "the source.",
    ]
    assert notes[2].counts == {"n0": 2, "n1": 1}
    # nothing merged: the labels are loaded as typed (surrounding blanks stripped)
    assert tables["participants"]["arm"].tolist() == ["HSR", "HSR", "hsr", "staged", "staged"]
    assert tables["participants"]["site"].tolist()[1] == "leeds"


def test_distinct_labels_do_not_warn():
    people = [{"participant_id": f"p{i}", "arm": arm, "site": "s1"}
              for i, arm in enumerate(["hsr", "hsr", "staged", "alfredson"])]  # fmt: skip
    _, report = validate_tables(tables_from_rows(people))
    assert not [w for w in report.warnings if "case or spacing" in w]


def test_typed_input_is_checked_too():
    """Parquet/XLSX arrive typed: a float stage is not a whole number, a text date is parsed."""
    participants = pd.DataFrame(
        {
            "participant_id": ["a"],
            "site": ["s"],
            "arm": ["staged"],
            "tendinopathy_type": ["midportion"],
            "sex": ["male"],
            "age_years": [30.0],
            "body_mass_kg": [70.0],
            "enrolled_on": pd.to_datetime(["2024-01-01"]),
            "withdrawn_on": pd.to_datetime([None]),
            "withdrawal_reason": [None],
        }
    )
    sessions = pd.DataFrame(
        {
            "participant_id": ["a", "a"],
            "session_date": ["2024-01-02", "2024-01-03 10:00"],
            "stage": [1.0, 1.5],
            "prescribed_sets": [3, 3],
            "prescribed_reps": [15, 15],
            "completed_sets": [3, 3],
            "completed_reps": [15, 15],
        }
    )
    _, report = validate_tables({"participants": participants, "sessions": sessions})
    found = {(p.column, p.row, p.rule) for p in report.problems}
    # in-memory tables: row is the 1-based record number
    assert ("stage", 2, "must be a whole number") in found
    assert ("session_date", 2, "must be an ISO date YYYY-MM-DD") in found
    assert len(report.problems) == 2


def test_schema_files_are_a_valid_frictionless_package():
    """The data_schema folder is itself checked by the frictionless library."""
    frictionless = pytest.importorskip("frictionless")
    package = json.loads((data_schema_dir() / "datapackage.json").read_text())
    assert [r["name"] for r in package["resources"]] == list(TABLES)
    for name in TABLES:
        descriptor = json.loads((data_schema_dir() / f"{name}.schema.json").read_text())
        report = frictionless.Schema.validate_descriptor(descriptor)
        assert report.valid, report.flatten(["message"])


def test_docs_describe_the_schema_files():
    """docs/data.md carries the tables generated from data_schema/ verbatim."""
    docs = (data_schema_dir().parent / "docs" / "data.md").read_text()
    assert contract_markdown() in docs


@pytest.mark.parametrize("name", TABLES)
def test_constraints_match_pandera_reading_of_the_frictionless_schema(name):
    """The validator's checks are exactly those pandera derives from the Frictionless file,
    plus the exclusive bounds of Table Schema v2, which pandera's reader does not know."""
    from pandera.io.pandas_io import from_frictionless_schema

    reference = from_frictionless_schema(table_spec(name).path)
    ours = _pandera_schema(name)
    raw = {
        f["name"]: f.get("constraints", {})
        for f in json.loads(table_spec(name).path.read_text())["fields"]
    }
    assert list(ours.columns) == list(reference.columns)
    for column, expected in reference.columns.items():
        got = ours.columns[column]
        exclusive = [
            f"<Check {check}: {check}({raw[column][key]})>"
            for key, check in (
                ("exclusiveMinimum", "greater_than"),
                ("exclusiveMaximum", "less_than"),
            )
            if key in raw[column]
        ]
        want = [str(c) for c in expected.checks] + exclusive
        assert [str(c) for c in got.checks] == want, column
        assert (got.nullable, got.unique) == (expected.nullable, expected.unique), column


def test_exclusive_minimum_is_enforced_by_frictionless_too():
    """running.minutes > 0 is a Table Schema v2 constraint: the frictionless library, reading
    the same schema file, rejects 0 minutes and accepts 0.5 (an independent check)."""
    frictionless = pytest.importorskip("frictionless")
    schema = json.loads((data_schema_dir() / "running.schema.json").read_text())
    schema.pop("foreignKeys")
    resource = frictionless.Resource.from_descriptor(
        {
            "$schema": "https://datapackage.org/profiles/2.0/dataresource.json",
            "name": "running",
            "data": [
                ["participant_id", "run_date", "minutes", "distance_km", "pain_nrs"],
                ["a", "2024-01-02", "0", "", ""],
                ["a", "2024-01-03", "0.5", "0.1", "2"],
            ],
            "schema": schema,
        }
    )
    errors = frictionless.validate(resource).flatten(["rowNumber", "fieldName", "type"])
    assert errors == [[2, "minutes", "constraint-error"]]
