"""Pain-monitoring rules, flares and weekly morning pain (METRICS.md §5) on hand-built cohorts.

Every expected value is worked out in the comment next to it. Enrolment is day 0; week =
day // 7 + 1. pain_limit = 4, settle_tolerance = 0, flare_delta = 2, rising_min_records = 4
unless a test says otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows, morning_pain, sessions_on

from rehabstats import AnalysisConfig, DataWarning
from rehabstats.metrics.pain import pain_monitoring, session_day_rules, weekly_pain

LATE = "2024-12-31"
NA = pd.NA


def rating(day: int, timing: str, nrs: float, participant_id: str = "p1") -> dict:
    return {"participant_id": participant_id, "day": day, "timing": timing, "nrs": nrs}


def rules_for(pain: list[dict], session_days=(0,), config: AnalysisConfig | None = None, **kw):
    cohort = cohort_from_rows(
        [{"participant_id": "p1", **kw}],
        sessions=sessions_on("p1", session_days),
        pain=pain,
        data_cutoff=LATE,
    )
    return session_day_rules(cohort, config=config).set_index("day")


def flags(row: pd.Series) -> tuple:
    return tuple(
        row[c] for c in ("during_violated", "after_violated", "not_settled", "violation", "flare")
    )


# ---- session-day rules -----------------------------------------------------------------------


def test_during_and_after_use_the_days_highest_rating_above_the_limit():
    pain = [
        rating(0, "during", 3),
        rating(0, "during", 5),  # max 5 > 4 -> violated
        rating(0, "after", 4),  # 4 is not above the limit -> not violated
    ]
    row = rules_for(pain).loc[0]
    assert row["during_violated"] is not NA and row["during_violated"]
    assert not row["after_violated"]
    assert row["not_settled"] is NA  # no morning ratings: unknown
    assert row["violation"]  # one rule violated is enough
    assert row["flare"] is NA


def test_not_settled_compares_next_morning_with_same_morning():
    # day 0 morning 3, day 1 morning 4: 4 > 3 + 0 -> not settled; day 2 -> 3, day 3 -> 3: settled
    pain = morning_pain("p1", {0: 3, 1: 4, 2: 3, 3: 3})
    out = rules_for(pain, session_days=(0, 2))
    assert out.loc[0, "not_settled"] and out.loc[0, "violation"]
    assert not out.loc[0, "flare"]  # rise 1 < 2
    assert not out.loc[2, "not_settled"]
    assert not out.loc[2, "violation"]  # known (settled) and nothing violated -> False
    # settle_tolerance = 1: a rise of 1 is tolerated (1 > 0 + 1 is false)
    tolerant = rules_for(pain, session_days=(0,), config=AnalysisConfig(settle_tolerance=1))
    assert not tolerant.loc[0, "not_settled"]


def test_unknown_rules_are_not_violations():
    # day 0: no rating at all -> every rule unknown -> violation NA
    # day 2: only a during rating of 3 -> during known and fine, others unknown -> False
    out = rules_for([rating(2, "during", 3)], session_days=(0, 2))
    assert flags(out.loc[0]) == (NA, NA, NA, NA, NA)
    assert flags(out.loc[2]) == (False, NA, NA, False, NA)
    for column in ("during_violated", "after_violated", "not_settled", "violation", "flare"):
        assert str(out[column].dtype) == "boolean"


def test_flare_needs_a_rise_of_flare_delta():
    # day 0: 2 -> 4 (rise 2 >= 2: flare); day 4: 2 -> 3 (rise 1: no flare)
    # day 8: 3 -> missing next morning: flare unknown
    pain = morning_pain("p1", {0: 2, 1: 4, 4: 2, 5: 3, 8: 3})
    out = rules_for(pain, session_days=(0, 4, 8))
    assert out.loc[0, "flare"] and out.loc[0, "not_settled"]
    assert not out.loc[4, "flare"]
    assert out.loc[8, "flare"] is NA and out.loc[8, "not_settled"] is NA


def test_flare_is_not_decided_by_float_noise():
    # 5.1 - 3.1 is 1.9999999999999996 in floating point; the NRS rise is 2 -> a flare
    out = rules_for(morning_pain("p1", {0: 3.1, 1: 5.1}))
    assert out.loc[0, "flare"]


def test_session_days_are_days_with_a_completed_session():
    sessions = (
        sessions_on("p1", [0, 0])  # two sessions on day 0: one session day
        + sessions_on("p1", [1], completed_sets=0)  # missed: not a session day
        + sessions_on("p1", [84])  # week 13: outside the window
    )
    cohort = cohort_from_rows([{"participant_id": "p1"}], sessions=sessions, data_cutoff=LATE)
    out = session_day_rules(cohort)
    assert list(out["day"]) == [0]
    assert list(out["week"]) == [1]


def test_next_morning_may_fall_after_the_window_but_not_after_obs_end():
    # a session on day 83 (last window day) is judged with the day-84 morning rating
    pain = morning_pain("p1", {83: 2, 84: 5})
    out = rules_for(pain, session_days=(83,))
    assert out.loc[83, "flare"]  # 5 - 2 = 3 >= 2
    # withdrawn on day 5: the day-6 morning rating after withdrawal does not exist
    with pytest.warns(DataWarning):
        out = rules_for(
            morning_pain("p1", {5: 2, 6: 6}), session_days=(5,), withdrawn_on="2024-01-06"
        )
    assert out.loc[5, "flare"] is NA and out.loc[5, "violation"] is NA


def test_data_after_cutoff_is_excluded():
    cohort = cohort_from_rows(
        [{"participant_id": "p1"}],
        sessions=sessions_on("p1", [5, 9]),
        pain=morning_pain("p1", {5: 2, 6: 6}),
    )
    # cut-off on day 5: the day-6 rating and the day-9 session are not yet known
    out = session_day_rules(cohort, config=AnalysisConfig(data_cutoff="2024-01-06"))
    assert list(out["day"]) == [5]
    assert out["flare"].iloc[0] is NA


def test_pain_limit_preset():
    pain = [rating(0, "during", 5)]
    assert rules_for(pain).loc[0, "during_violated"]  # 5 > 4
    silbernagel = AnalysisConfig.preset("silbernagel2007")
    assert not rules_for(pain, config=silbernagel).loc[0, "during_violated"]  # 5 is not > 5


# ---- per-participant summary -----------------------------------------------------------------


def test_violation_rate_counts_only_days_with_a_known_rule():
    pain = [
        rating(0, "during", 6),  # day 0: violated
        rating(2, "during", 2),  # day 2: known, fine
        # day 4: nothing recorded -> unknown, out of the denominator
        *morning_pain("p1", {6: 2, 7: 3}),  # day 6: 3 > 2 -> not settled (violated)
    ]
    cohort = cohort_from_rows(
        [{"participant_id": "p1"}, {"participant_id": "p2"}],
        sessions=sessions_on("p1", [0, 2, 4, 6]),
        pain=pain,
        data_cutoff=LATE,
    )
    out = pain_monitoring(cohort).set_index("participant_id")
    assert out.loc["p1", "session_days"] == 4
    assert out.loc["p1", "pmm_violation_days"] == 2  # days 0 and 6
    assert out.loc["p1", "pmm_violation_rate"] == pytest.approx(2 / 3)  # of days 0, 2, 6
    assert out.loc["p1", "flares"] == 0  # the only known rise is 1
    # p2: no session day -> zero counts, rate undefined
    assert out.loc["p2", "session_days"] == 0 and out.loc["p2", "pmm_violation_days"] == 0
    assert np.isnan(out.loc["p2", "pmm_violation_rate"]) and out.loc["p2", "flares"] == 0


def test_all_unknown_days_give_a_missing_rate_and_flares_are_counted():
    pain = morning_pain("p1", {10: 1, 11: 4, 20: 3, 21: 5})  # rises 3 and 2: two flares
    cohort = cohort_from_rows(
        [{"participant_id": "p1"}, {"participant_id": "p2"}],
        sessions=sessions_on("p1", [10, 20]) + sessions_on("p2", [0, 1]),
        pain=pain,
        data_cutoff=LATE,
    )
    out = pain_monitoring(cohort).set_index("participant_id")
    assert out.loc["p1", "flares"] == 2
    assert out.loc["p1", "pmm_violation_rate"] == pytest.approx(1.0)  # both not settled
    assert out.loc["p2", "session_days"] == 2
    assert np.isnan(out.loc["p2", "pmm_violation_rate"])  # 2 session days, no rule known


def test_week1_and_week12_morning_means():
    # week 1 (days 0-6): 6, 5, 4 -> 5; week 12 (days 77-83): 2, 3 -> 2.5; change -2.5
    # day 84 (week 13) is outside the window and ignored
    pain = morning_pain("p1", {0: 6, 3: 5, 6: 4, 77: 2, 83: 3, 84: 9})
    cohort = cohort_from_rows([{"participant_id": "p1"}], pain=pain, data_cutoff=LATE)
    row = pain_monitoring(cohort).iloc[0]
    assert row["pain_morning_week1"] == pytest.approx(5.0)
    assert row["pain_morning_week12"] == pytest.approx(2.5)
    assert row["pain_change"] == pytest.approx(-2.5)
    # window_weeks = 11: the last window week is week 11 (days 70-76), without ratings -> NaN
    short = pain_monitoring(cohort, config=AnalysisConfig(window_weeks=11)).iloc[0]
    assert np.isnan(short["pain_morning_week12"]) and np.isnan(short["pain_change"])


def test_missing_week_gives_missing_change():
    cohort = cohort_from_rows(
        [{"participant_id": "p1"}], pain=morning_pain("p1", {1: 4}), data_cutoff=LATE
    )
    row = pain_monitoring(cohort).iloc[0]
    assert row["pain_morning_week1"] == pytest.approx(4.0)
    assert np.isnan(row["pain_morning_week12"]) and np.isnan(row["pain_change"])


def week_of_ratings(week: int, values: list[float]) -> dict[int, float]:
    start = 7 * (week - 1)
    return {start + i: v for i, v in enumerate(values)}


def test_weeks_rising_needs_enough_records_in_both_weeks():
    by_day: dict[int, float] = {}
    by_day |= week_of_ratings(1, [2, 2, 2, 2])  # mean 2, 4 records
    by_day |= week_of_ratings(2, [3, 3, 3, 3])  # mean 3 > 2 -> rising (1)
    by_day |= week_of_ratings(3, [5, 5, 5])  # 3 records: not counted
    by_day |= week_of_ratings(4, [6, 6, 6, 6])  # previous week has 3 records: not counted
    by_day |= week_of_ratings(5, [6, 6, 6, 6])  # equal mean: not rising
    by_day |= week_of_ratings(6, [7, 7, 7, 8])  # 7.25 > 6 -> rising (2)
    by_day |= week_of_ratings(8, [5, 5, 5, 5])  # week 7 empty: not counted
    by_day |= week_of_ratings(9, [4, 4, 4, 4])  # falling
    by_day |= week_of_ratings(10, [6, 6, 6, 6])  # 6 > 4 -> rising (3)
    cohort = cohort_from_rows(
        [{"participant_id": "p1"}], pain=morning_pain("p1", by_day), data_cutoff=LATE
    )
    assert pain_monitoring(cohort).iloc[0]["weeks_rising"] == 3
    # with rising_min_records = 3, weeks 3 (5 > 3) and 4 (6 > 5) count too -> 5
    loose = pain_monitoring(cohort, config=AnalysisConfig(rising_min_records=3))
    assert loose.iloc[0]["weeks_rising"] == 5


def test_weeks_rising_previous_week_is_the_calendar_week():
    # week 2 mean 2, week 4 mean 5 (week 3 missing): not compared -> 0
    by_day = week_of_ratings(2, [2, 2, 2, 2]) | week_of_ratings(4, [5, 5, 5, 5])
    cohort = cohort_from_rows(
        [{"participant_id": "p1"}], pain=morning_pain("p1", by_day), data_cutoff=LATE
    )
    assert pain_monitoring(cohort).iloc[0]["weeks_rising"] == 0


# ---- weekly morning pain ---------------------------------------------------------------------


def test_weekly_pain_means_and_record_counts():
    pain = morning_pain("p1", {0: 2, 1: 4, 8: 5, 84: 7}) + [
        rating(8, "morning", 7),  # a second rating on day 8: the day's NRS is (5 + 7) / 2 = 6
        rating(1, "during", 9),  # not a morning rating
    ]
    with pytest.warns(DataWarning, match="share a participant and day"):
        cohort = cohort_from_rows(
            [{"participant_id": "p1"}, {"participant_id": "p2"}], pain=pain, data_cutoff=LATE
        )
    out = weekly_pain(cohort)
    assert list(out.columns) == ["participant_id", "week", "pain_morning_mean", "n_records"]
    assert list(out["participant_id"]) == ["p1", "p1"]  # weeks with ratings only
    week = out.set_index("week")
    assert week.loc[1, "pain_morning_mean"] == pytest.approx(3.0)  # (2 + 4) / 2
    assert week.loc[1, "n_records"] == 2
    assert week.loc[2, "pain_morning_mean"] == pytest.approx(6.0)
    assert week.loc[2, "n_records"] == 1  # one day, two ratings
    assert 13 not in week.index  # day 84 is after the window


def test_weekly_pain_stops_at_obs_end():
    with pytest.warns(DataWarning):
        cohort = cohort_from_rows(
            [{"participant_id": "p1", "withdrawn_on": "2024-01-03"}],
            pain=morning_pain("p1", {0: 2, 2: 4, 3: 9}),  # day 3 is after withdrawal (day 2)
            data_cutoff=LATE,
        )
    out = weekly_pain(cohort)
    assert out["pain_morning_mean"].tolist() == pytest.approx([3.0])
    assert out["n_records"].tolist() == [2]
