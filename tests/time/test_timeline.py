"""Study time (METRICS.md §3): days, weeks, cut-off, obs_end, follow-up, windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import AnalysisConfig, DataWarning, ParameterError
from rehabstats.time.timeline import (
    group_labels,
    observe,
    observed_rows,
    participant_timeline,
    stage_on,
    week_of_day,
)


def test_week_numbering():
    # week 1 = days 0-6, week 12 = days 77-83
    assert list(week_of_day(pd.Series([0, 6, 7, 77, 83, 84]))) == [1, 1, 2, 12, 12, 13]


def make():
    return cohort_from_rows(
        [
            {"participant_id": "a"},
            # withdrawn on day 20
            {"participant_id": "w", "withdrawn_on": "2024-01-21"},
            # withdrawal after the cut-off used below is not yet known
            {"participant_id": "late_w", "withdrawn_on": "2024-12-01"},
        ],
        sessions=sessions_on("a", [0, 6, 7, 83, 84, 100])
        + sessions_on("w", [5, 20, 21])
        + sessions_on("late_w", [0]),
    )


def test_obs_end_and_follow_up():
    with pytest.warns(UserWarning, match="after the participant's withdrawn_on"):
        cohort = make()
    # default cut-off = latest date in any table = withdrawn_on of late_w (2024-12-01)
    assert cohort.data_cutoff == pd.Timestamp("2024-12-01")
    tl = participant_timeline(cohort, AnalysisConfig(data_cutoff="2024-04-09"))
    # a: obs_end = cut-off 2024-04-09 = day 99 (Jan 31 + Feb 29 + Mar 31 = 91 -> Apr 1 is day 91)
    assert tl.loc["a", "follow_up_days"] == 99
    assert tl.loc["w", "follow_up_days"] == 20 and bool(tl.loc["w", "withdrawn"])
    assert not bool(tl.loc["late_w", "withdrawn"])
    assert pd.isna(tl.loc["late_w", "withdrawn_on"])


def test_observe_excludes_after_obs_end_and_outside_window():
    with pytest.warns(UserWarning):
        cohort = make()
    tl = participant_timeline(cohort, AnalysisConfig(data_cutoff="2024-04-09"))
    whole = observe(cohort.sessions, "session_date", tl)
    # a: day 100 is after the cut-off (day 99); w: day 21 after withdrawal on day 20
    assert sorted(whole.loc[whole.participant_id == "a", "day"]) == [0, 6, 7, 83, 84]
    assert sorted(whole.loc[whole.participant_id == "w", "day"]) == [5, 20]
    window = observe(cohort.sessions, "session_date", tl, window_weeks=12)
    # day 84 is week 13, outside the 12-week window
    assert sorted(window.loc[window.participant_id == "a", "day"]) == [0, 6, 7, 83]
    assert list(window.loc[window.participant_id == "a", "week"]) == [1, 1, 2, 12]


def test_participants_enrolled_after_cutoff_are_left_out_with_a_warning():
    cohort = cohort_from_rows(
        [{"participant_id": "a"}, {"participant_id": "b", "enrolled_on": "2024-03-01"}],
        sessions=sessions_on("a", [0]) + sessions_on("b", [0]),
    )
    with pytest.warns(UserWarning, match="1 participant enrolled after the data cut-off"):
        tl = participant_timeline(cohort, AnalysisConfig(data_cutoff="2024-02-01"))
    assert list(tl.index) == ["a"]


def test_rows_after_the_configured_cutoff_are_counted_in_a_warning():
    # a: sessions on days 0, 10 and 40 (2024-02-10); the configured cut-off 2024-02-01 leaves
    # the day-40 session out of every metric, and says so
    cohort = cohort_from_rows([{"participant_id": "a"}], sessions=sessions_on("a", [0, 10, 40]))
    with pytest.warns(DataWarning) as caught:
        participant_timeline(cohort, AnalysisConfig(data_cutoff="2024-02-01"))
    messages = [str(w.message) for w in caught]
    assert messages == ["sessions: 1 row dated after the data cut-off 2024-02-01 is not analysed."]
    assert caught[0].message.args[0].counts == {"rows": 1}


def test_stage_on_day_is_latest_session_on_or_before():
    cohort = cohort_from_rows(
        [{"participant_id": "a"}],
        sessions=[
            {"participant_id": "a", "day": 2, "stage": 1},
            {"participant_id": "a", "day": 9, "stage": 2},
            # two sessions on day 9: the later row in the file is the later session
            {"participant_id": "a", "day": 9, "stage": 3},
        ],
    )
    tl = participant_timeline(cohort)
    rows, pos, day = observed_rows(cohort.sessions, "session_date", tl)
    stage = cohort.sessions["stage"].to_numpy()[rows]
    out = stage_on(pos, day, stage, [0, 0, 0, 0], [0, 2, 8, 9])
    # day 0: before any session -> NaN; day 2 and 8: stage 1; day 9: the last session, stage 3
    assert np.isnan(out[0]) and out[1:].tolist() == [1, 1, 3]
    # a participant unknown to the sessions (-1) has no stage
    assert np.isnan(stage_on(pos, day, stage, [-1], [9])[0])


def test_group_labels():
    cohort = cohort_from_rows(
        [{"participant_id": "a", "arm": "hsr"}], sessions=sessions_on("a", [0])
    )
    tl = participant_timeline(cohort)
    assert group_labels(tl, None).tolist() == ["all"]
    assert group_labels(tl, "arm").tolist() == ["hsr"]
    with pytest.raises(ParameterError, match="not a participants column; the participants "
                       "columns are: site, arm, tendinopathy_type, sex"):  # fmt: skip
        group_labels(tl, "shoe_size")
    # any participants column groups (age: a number, as text); derived ones do not
    assert group_labels(tl, "age_years").tolist() == ["40.0"]
    with pytest.raises(ParameterError, match="'obs_end': not a participants column"):
        group_labels(tl, "obs_end")


def test_group_labels_refuse_a_column_with_missing_values():
    cohort = cohort_from_rows(
        [{"participant_id": "a"}, {"participant_id": "b", "age_years": None}],
        sessions=sessions_on("a", [0]) + sessions_on("b", [0]),
    )
    tl = participant_timeline(cohort)
    # b would belong to no group: refused, naming b, rather than dropped or put in 'nan'
    with pytest.raises(ParameterError, match=r"1 participant has no value in it \(b\)"):
        group_labels(tl, "age_years")


def _late_cohort():
    # b is enrolled after the cut-off 2024-02-01 used below (not analysed) and a's day-40
    # session is dated after it: two data notes
    return cohort_from_rows(
        [{"participant_id": "a"}, {"participant_id": "b", "enrolled_on": "2024-03-01"}],
        sessions=sessions_on("a", [0, 10, 40]) + sessions_on("b", [0]),
    )


def test_each_timeline_note_once_per_computation():
    from rehabstats import participant_metrics, relapse_rates

    cohort = _late_cohort()
    config = AnalysisConfig(data_cutoff="2024-02-01")
    # participant_metrics computes seven families on the timeline: still each note once
    with pytest.warns(DataWarning) as caught:
        participant_metrics(cohort, config=config)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert messages == [
        "1 participant enrolled after the data cut-off 2024-02-01 is not analysed "
        "(no follow-up yet).",
        "sessions: 2 rows dated after the data cut-off 2024-02-01 are not analysed.",
    ]
    # a later call is another computation: its caller sees the notes too
    with pytest.warns(DataWarning) as again:
        relapse_rates(cohort, config=config)
    assert len([w for w in again if issubclass(w.category, DataWarning)]) == 2


def test_timeline_computed_once_per_cohort_and_cutoff():
    cohort = _late_cohort()
    config = AnalysisConfig(data_cutoff="2024-02-01")
    with pytest.warns(DataWarning):
        first = participant_timeline(cohort, config)
    first["follow_up_days"] = -1  # the caller's copy: the kept timeline is not changed
    with pytest.warns(DataWarning):
        second = participant_timeline(cohort, config.replace(window_weeks=6))
    # a: enrolled 2024-01-01, cut-off 2024-02-01 -> 31 days of follow-up
    assert second["follow_up_days"].tolist() == [31]

    def not_kept():
        raise AssertionError("the timeline of this cut-off was not kept with the cohort")

    # window_weeks does not change the timeline: the one of the cut-off is kept and reused
    kept = cohort.derived(("participant_timeline", pd.Timestamp("2024-02-01")), not_kept)
    assert kept["follow_up_days"].tolist() == [31]
    # the default cut-off (the latest date, 2024-03-01) is another timeline: a and b
    assert participant_timeline(cohort).index.tolist() == ["a", "b"]


def test_the_configured_cutoff_wins_over_the_cohorts_default():
    from rehabstats.time.timeline import analysis_cutoff

    cohort = cohort_from_rows([{"participant_id": "a"}], sessions=sessions_on("a", [0, 40]))
    # the cohort's default: its latest date, day 40 = 2024-02-10
    assert analysis_cutoff(cohort) == pd.Timestamp("2024-02-10")
    earlier = cohort.with_cutoff("2024-02-01")  # another default for code without a config
    assert analysis_cutoff(earlier) == pd.Timestamp("2024-02-01")
    # a configured cut-off is the analysis choice: it wins over either default
    config = AnalysisConfig(data_cutoff="2024-01-21")
    assert analysis_cutoff(earlier, config) == analysis_cutoff(cohort, config)
    with pytest.warns(DataWarning):
        assert participant_timeline(earlier, config)["follow_up_days"].tolist() == [20]
