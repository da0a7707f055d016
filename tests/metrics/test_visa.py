"""VISA-A scores, visit windows and 12-week outcomes (METRICS.md §6) on hand-built cohorts.

Every expected value is worked out in the comment next to it. Enrolment is day 0; baseline
window days [-14, 7]; week-N windows 7N +- 14 days; MCID 14 points.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows

from rehabstats import AnalysisConfig, DataWarning
from rehabstats.metrics.visa import visa_a_outcomes, visa_a_scores, visa_a_visits

LATE = "2025-12-31"


def items(score_q1_to_q6: float, q7: int = 4, **q8: int) -> dict:
    """q1..q6 each equal, q7 and one q8 branch (default q8b = 10)."""
    q8 = q8 or {"q8b": 10}
    return {f"q{i}": score_q1_to_q6 for i in range(1, 7)} | {"q7": q7} | q8


def visa(day: int, participant_id: str = "p1", **answers: object) -> dict:
    return {"participant_id": participant_id, "day": day, **answers}


def cohort(visa_rows: list[dict], participants=("p1",), **kw):
    return cohort_from_rows(
        [{"participant_id": p} for p in participants],
        visa_a=visa_rows,
        data_cutoff=kw.pop("data_cutoff", LATE),
        **kw,
    )


def visits(c, **config) -> pd.DataFrame:
    return visa_a_visits(c, config=AnalysisConfig(**config)).set_index(["participant_id", "visit"])


# ---- scores ----------------------------------------------------------------------------------


def test_score_is_the_item_sum_with_the_answered_q8_branch():
    rows = [
        visa(0, **items(5, q7=4, q8b=10)),  # 6 x 5 + 4 + 10 = 44
        visa(1, **items(8, q7=10, q8a=21)),  # 48 + 10 + 21 = 79
        visa(2, **items(2.5, q7=0, q8c=5)),  # 15 + 0 + 5 = 20
    ]
    out = visa_a_scores(cohort(rows))
    assert list(out.columns) == ["participant_id", "assessed_on", "score"]
    assert out["score"].tolist() == pytest.approx([44, 79, 20])


def test_missing_item_gives_missing_score_unless_total():
    no_q3 = {k: v for k, v in items(5).items() if k != "q3"}
    no_q8 = {k: v for k, v in items(5).items() if k != "q8b"}
    rows = [
        visa(0, **no_q3),  # q3 missing, no total -> NaN (no pro-rating)
        visa(1, **no_q3, total=47),  # q3 missing, total given -> 47
        visa(2, **no_q8),  # no q8 branch answered -> NaN
        visa(3, total=62),  # total only -> 62
        visa(4, **items(5), total=44),  # items and an agreeing total -> 44
    ]
    with pytest.warns(DataWarning, match="no pro-rating"):
        c = cohort(rows)
    score = visa_a_scores(c)["score"].tolist()
    assert np.isnan(score[0]) and np.isnan(score[2])
    assert score[1] == 47 and score[3] == 62 and score[4] == 44


# ---- visit windows ---------------------------------------------------------------------------


def test_baseline_is_the_closest_to_day_0_within_its_window():
    rows = [visa(-10, total=30), visa(-2, total=40), visa(5, total=50), visa(8, total=60)]
    out = visits(cohort(rows))
    # candidates -10, -2, 5 (8 is after the window's day 7): -2 is closest to 0
    assert out.loc[("p1", "baseline"), "day"] == -2
    assert out.loc[("p1", "baseline"), "score"] == 40
    assert out.loc[("p1", "baseline"), "target_day"] == 0


def test_ties_go_to_the_earlier_assessment():
    rows = [
        visa(3, total=50),
        visa(-3, total=40),  # |-3| = |3|: the earlier one, day -3
        visa(80, total=60),
        visa(88, total=70),  # 84 - 80 = 88 - 84 = 4: the earlier one, day 80
    ]
    out = visits(cohort(rows))
    assert out.loc[("p1", "baseline"), "score"] == 40
    assert out.loc[("p1", "week_12"), "day"] == 80 and out.loc[("p1", "week_12"), "score"] == 60


def test_visit_window_edges_are_inclusive():
    # week 6 (day 42): 28 and 56 are the window's edges; week 26 (day 182): 167 is 15 days away
    rows = [visa(28, total=50), visa(167, total=70), visa(-14, total=30)]
    out = visits(cohort(rows))
    assert out.loc[("p1", "week_6"), "day"] == 28
    assert np.isnan(out.loc[("p1", "week_26"), "score"])  # outside +-14
    assert out.loc[("p1", "baseline"), "day"] == -14  # the baseline window's first day
    # visit_window_days = 15 takes the day-167 assessment for week 26
    wide = visits(cohort(rows), visit_window_days=15)
    assert wide.loc[("p1", "week_26"), "score"] == 70


def test_the_configured_baseline_window_decides_and_validation_accepts_earlier_assessments():
    # a screening VISA-A 20 days before enrolment (total 40) and none in [-14, 7]: validation
    # accepts it whatever the analysis's window (before the fix it was a validation error,
    # "more than 14 days before enrolled_on", read from the default window only)
    rows = [visa(-20, total=40), visa(84, total=70)]
    c = cohort(rows)
    # baseline_window_days [-28, 7]: day -20 is in the window, the only candidate -> 40
    wide = AnalysisConfig(baseline_window_days=[-28, 7])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # nothing to note: every one is usable
        out = visa_a_outcomes(c, config=wide).set_index("participant_id").loc["p1"]
    assert out["visa_a_baseline"] == 40
    assert out["visa_a_change_12"] == 30  # week 12 (day 84) 70 - 40
    # the default window [-14, 7]: day -20 is before it, no baseline, and a note says so
    with pytest.warns(DataWarning, match="1 assessment dated before the baseline window"):
        default = visa_a_outcomes(c).set_index("participant_id").loc["p1"]
    assert np.isnan(default["visa_a_baseline"]) and np.isnan(default["visa_a_change_12"])


def test_an_unscored_assessment_is_not_a_candidate():
    no_q1 = {k: v for k, v in items(5).items() if k != "q1"}
    rows = [visa(84, **no_q1), visa(90, **items(6))]  # the day-84 one has no score
    with pytest.warns(DataWarning):
        c = cohort(rows)
    out = visits(c)
    # the complete day-90 assessment is used: 36 + 4 + 10 = 50
    assert out.loc[("p1", "week_12"), "day"] == 90
    assert out.loc[("p1", "week_12"), "score"] == 50


def test_every_participant_and_visit_has_a_row():
    out = visa_a_visits(cohort([visa(0, total=40)], participants=("p1", "p2")))
    assert list(out.columns) == ["participant_id", "visit", "target_day", "day", "score"]
    assert len(out) == 2 * 5  # baseline + weeks 6, 12, 26, 52
    assert list(out["visit"].cat.categories) == [
        "baseline",
        "week_6",
        "week_12",
        "week_26",
        "week_52",
    ]
    assert out["target_day"].tolist()[:5] == [0, 42, 84, 182, 364]
    p2 = out[out["participant_id"] == "p2"]
    assert p2["score"].isna().all() and p2["day"].isna().all()


def test_assessments_after_withdrawal_or_cutoff_are_excluded():
    rows = [visa(0, total=40), visa(84, total=70)]
    with pytest.warns(DataWarning, match="withdrawn_on"):
        withdrawn = cohort_from_rows(
            [{"participant_id": "p1", "withdrawn_on": "2024-03-01"}],  # day 60
            visa_a=rows,
            data_cutoff=LATE,
        )
    assert np.isnan(visits(withdrawn).loc[("p1", "week_12"), "score"])
    # cut-off on day 83: the day-84 assessment is not yet known
    early = visa_a_visits(cohort(rows), config=AnalysisConfig(data_cutoff="2024-03-24"))
    assert np.isnan(early.set_index("visit").loc["week_12", "score"])


# ---- outcomes --------------------------------------------------------------------------------


def test_change_and_responder():
    rows = [
        visa(0, "p1", total=40),
        visa(84, "p1", total=54),  # change 14 >= 14 -> responder
        visa(0, "p2", total=40),
        visa(84, "p2", total=53),  # change 13 -> not a responder
        visa(84, "p3", total=80),  # no baseline -> change NaN, responder NA
        visa(0, "p4", total=50.1),
        visa(84, "p4", total=64.1),  # change 14 (13.999999999999993 in floats) -> responder
    ]
    out = visa_a_outcomes(cohort(rows, participants=("p1", "p2", "p3", "p4")))
    out = out.set_index("participant_id")
    assert out.loc["p1", "visa_a_change_12"] == pytest.approx(14)
    assert out.loc["p1", "visa_a_responder_12"]
    assert out.loc["p2", "visa_a_change_12"] == pytest.approx(13)
    assert not out.loc["p2", "visa_a_responder_12"]
    assert np.isnan(out.loc["p3", "visa_a_change_12"])
    assert out.loc["p3", "visa_a_responder_12"] is pd.NA
    assert out.loc["p4", "visa_a_responder_12"]
    assert str(out["visa_a_responder_12"].dtype) == "boolean"
    # a trial MCID of 10: p2's 13 points is a response
    mcid = visa_a_outcomes(
        cohort(rows, participants=("p1", "p2", "p3", "p4")), config=AnalysisConfig(visa_a_mcid=10)
    )
    assert mcid.set_index("participant_id").loc["p2", "visa_a_responder_12"]


def test_outcome_columns_follow_visit_weeks():
    rows = [visa(0, total=40), visa(42, total=45), visa(180, total=70)]
    out = visa_a_outcomes(cohort(rows))
    assert list(out.columns) == [
        "participant_id",
        "visa_a_baseline",
        "visa_a_week6",
        "visa_a_week12",
        "visa_a_week26",
        "visa_a_week52",
        "visa_a_change_12",
        "visa_a_responder_12",
    ]
    row = out.iloc[0]
    assert row["visa_a_baseline"] == 40 and row["visa_a_week6"] == 45
    assert row["visa_a_week26"] == 70  # day 180 is 2 days from 182
    assert np.isnan(row["visa_a_week12"]) and np.isnan(row["visa_a_week52"])
    # without 12 in visit_weeks, visa_a_week12 is still reported (the contract's outcome)
    custom = visa_a_outcomes(cohort(rows), config=AnalysisConfig(visit_weeks=(6, 26)))
    assert list(custom.columns)[1:5] == [
        "visa_a_baseline",
        "visa_a_week6",
        "visa_a_week12",
        "visa_a_week26",
    ]
