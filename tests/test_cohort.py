"""Cohort: fingerprint and filtering."""

from __future__ import annotations

from cohort_builder import cohort_from_rows, sessions_on, tables_from_rows

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


def test_filter_keeps_matching_participants_and_their_rows_and_the_cutoff():
    cohort = cohort_from_rows(**rows())
    site2 = cohort.filter(site="s2")
    assert site2.participants["participant_id"].tolist() == ["b", "c"]
    assert sorted(site2.sessions["participant_id"].astype(str)) == ["b", "c"]
    assert site2.data_cutoff == cohort.data_cutoff
    both = cohort.filter(site="s2", arm="staged")
    assert both.participants["participant_id"].tolist() == ["c"]
    assert cohort.filter(arm=["hsr", "staged"]).n_participants == 3


def test_summary():
    cohort = Cohort.from_tables(tables_from_rows(**rows()))
    s = cohort.summary()
    assert s["participants"] == 3
    assert s["rows"]["sessions"] == 4
    assert (s["first_date"], s["last_date"]) == ("2024-01-01", "2024-01-04")
    assert s["sites"] == ["s1", "s2"]
