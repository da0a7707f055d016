"""Cohort: fingerprint and filtering."""

from __future__ import annotations

import pandas as pd
from cohort_builder import cohort_from_rows, morning_pain, sessions_on, tables_from_rows

from rehabstats import Cohort


def rows():
    return dict(
        participants=[
            {"participant_id": "a", "site": "s1", "arm": "staged"},
            {"participant_id": "b", "site": "s2", "arm": "hsr"},
            {"participant_id": "c", "site": "s2", "arm": "staged"},
        ],
        sessions=sessions_on("a", [0, 1]) + sessions_on("b", [0]) + sessions_on("c", [3]),
    )


def test_fingerprint_changes_with_any_value_and_not_with_extra_columns():
    base = cohort_from_rows(**rows())
    assert base.fingerprint() == cohort_from_rows(**rows()).fingerprint()
    changed = rows()
    changed["sessions"][0]["completed_sets"] = 2
    assert cohort_from_rows(**changed).fingerprint() != base.fingerprint()
    extra = rows()
    extra["participants"][0]["note"] = "anything"
    assert cohort_from_rows(**extra).fingerprint() == base.fingerprint()
    assert len(base.fingerprint()) == 64


def test_fingerprint_of_a_cohort_without_the_later_additions_is_unchanged():
    """Without lowering_s values and running rows, the fingerprint is the digest the contract
    had before they were added: the six tables and their earlier columns, recomputed here."""
    import hashlib

    import numpy as np

    earlier = {
        "participants": ["participant_id", "site", "arm", "tendinopathy_type", "sex",
                         "age_years", "body_mass_kg", "enrolled_on", "withdrawn_on",
                         "withdrawal_reason"],
        "sessions": ["participant_id", "session_date", "stage", "prescribed_sets",
                     "prescribed_reps", "completed_sets", "completed_reps", "load_kg",
                     "surface"],
        "pain": ["participant_id", "recorded_on", "timing", "nrs"],
        "visa_a": ["participant_id", "assessed_on", "q1", "q2", "q3", "q4", "q5", "q6", "q7",
                   "q8a", "q8b", "q8c", "total"],
        "function_tests": ["participant_id", "assessed_on", "test", "side", "value",
                           "external_load_kg", "pain_nrs"],
        "events": ["participant_id", "event_date", "event", "note"],
    }  # fmt: skip
    cohort = cohort_from_rows(**rows())
    digest = hashlib.sha256()
    for name, columns in earlier.items():
        table = cohort.tables[name]
        digest.update(f"{name}:{len(table)}:{','.join(columns)}".encode())
        if len(table):
            hashed = pd.util.hash_pandas_object(table[columns], index=False)
            digest.update(np.ascontiguousarray(hashed.to_numpy()).tobytes())
    assert cohort.fingerprint() == digest.hexdigest()
    # a lowering time or a run is data: the fingerprint changes
    tempo = rows()
    tempo["sessions"][0]["lowering_s"] = 3
    assert cohort_from_rows(**tempo).fingerprint() != cohort.fingerprint()
    ran = cohort_from_rows(**rows(), running=[{"participant_id": "a", "day": 1, "minutes": 20}])
    assert ran.fingerprint() != cohort.fingerprint()
    longer = cohort_from_rows(**rows(), running=[{"participant_id": "a", "day": 1, "minutes": 21}])
    assert longer.fingerprint() != ran.fingerprint()


def test_filter_keeps_matching_participants_and_their_rows_and_the_cutoff():
    cohort = cohort_from_rows(**rows())
    site2 = cohort.filter(site="s2")
    assert site2.participants["participant_id"].tolist() == ["b", "c"]
    assert sorted(site2.sessions["participant_id"].astype(str)) == ["b", "c"]
    assert site2.data_cutoff == cohort.data_cutoff
    assert site2.running.empty
    ran = cohort_from_rows(
        **rows(), running=[{"participant_id": p, "day": 1, "minutes": 20} for p in "abc"]
    )
    assert sorted(ran.filter(site="s2").running["participant_id"].astype(str)) == ["b", "c"]
    both = cohort.filter(site="s2", arm="staged")
    assert both.participants["participant_id"].tolist() == ["c"]
    assert cohort.filter(arm=["hsr", "staged"]).n_participants == 3


def test_summary():
    cohort = Cohort.from_tables(tables_from_rows(**rows()))
    s = cohort.summary()
    assert s["participants"] == 3
    assert s["rows"]["sessions"] == 4
    assert s["rows"]["running"] == 0  # no runs
    assert (s["first_date"], s["last_date"]) == ("2024-01-01", "2024-01-04")
    assert s["sites"] == ["s1", "s2"]


def interim_rows():
    # a enrolled 2024-01-01 with sessions on days 0-9 and diaries on days 0-19; b enrolled on
    # 2024-01-02 and withdrawn on 2024-01-25; c enrolled 2024-02-01
    return dict(
        participants=[
            {"participant_id": "a"},
            {"participant_id": "b", "enrolled_on": "2024-01-02", "withdrawn_on": "2024-01-25"},
            {"participant_id": "c", "enrolled_on": "2024-02-01"},
        ],
        sessions=sessions_on("a", range(10)) + sessions_on("c", [0]),
        pain=morning_pain("a", dict.fromkeys(range(20), 2)),
    )


def test_rows_after_an_explicit_cutoff_are_counted_in_data_notes():
    # cut-off 2024-01-05 (day 4 of a): a's sessions on days 5-9 (5 rows) and c's session are
    # after it -> 6 session rows; diaries on days 5-19 -> 15 pain rows; c enrolled after it;
    # b's withdrawal (2024-01-25) is after it too
    cohort = Cohort.from_tables(tables_from_rows(**interim_rows()), data_cutoff="2024-01-05")
    notes = cohort.summary()["warnings"]
    assert notes == [
        "1 participant enrolled after the data cut-off 2024-01-05 is not analysed "
        "(no follow-up yet).",
        "participants: withdrawn_on after the data cut-off 2024-01-05 in 1 row; those "
        "withdrawals are not yet counted (the participants are followed to the cut-off).",
        "sessions: 6 rows dated after the data cut-off 2024-01-05 are not analysed.",
        "pain: 15 rows dated after the data cut-off 2024-01-05 are not analysed.",
    ]
    assert [n.counts for n in notes] == [{"n": 1}, {"n": 1}, {"rows": 6}, {"rows": 15}]
    # with_cutoff counts at the new cut-off; the default cut-off (the latest date) leaves
    # nothing after it
    later = cohort.with_cutoff("2024-01-15")
    assert (
        "pain: 5 rows dated after the data cut-off 2024-01-15 are not analysed."
        in (later.summary()["warnings"])
    )
    default = Cohort.from_tables(tables_from_rows(**interim_rows()))
    assert default.data_cutoff == pd.Timestamp("2024-02-01")
    assert default.cutoff_notes() == []
    assert default.cutoff_notes("2024-01-05") == notes
    assert default.cutoff_notes("2024-01-05", enrolments=False) == notes[1:]


def test_derived_values_are_computed_once_and_stay_with_the_cohort():
    import pickle

    cohort = cohort_from_rows(**rows())
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    # computed on first use, then the kept value: compute runs once
    assert cohort.derived(("x", 1), compute) == 1
    assert cohort.derived(("x", 1), compute) == 1
    assert cohort.derived(("x", 2), compute) == 2  # another key, another value
    # a cohort made from it, or unpickled, starts without them
    assert cohort.filter(site="s1").derived(("x", 1), compute) == 3
    copy = pickle.loads(pickle.dumps(cohort))
    assert copy.derived(("x", 1), compute) == 4
    assert copy.fingerprint() == cohort.fingerprint()


def test_summary_at_an_analysis_cutoff():
    # a's sessions on days 0 and 1 (2024-01-01, 2024-01-02), b's on day 0, c's on day 3: the
    # latest date 2024-01-04 is the cohort's default; at 2024-01-02 c's day-3 session lies after
    cohort = cohort_from_rows(**rows())
    assert cohort.summary()["data_cutoff"] == "2024-01-04"
    summary = cohort.summary(cutoff="2024-01-02")
    assert summary["data_cutoff"] == "2024-01-02"
    assert summary["warnings"] == [
        "sessions: 1 row dated after the data cut-off 2024-01-02 is not analysed."
    ]
    assert cohort.data_cutoff == pd.Timestamp("2024-01-04")  # the cohort is unchanged
