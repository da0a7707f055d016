"""rehabstats.stats.summaries: SMDs, Table 1, confidence intervals, group summaries and
comparisons."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rehabstats.constants import OVERALL
from rehabstats.stats import summaries
from rehabstats.stats.summaries import Variable

# ---- standardised mean differences -----------------------------------------------------------


def test_smd_continuous_is_difference_over_pooled_sd():
    a = [1.0, 2.0, 3.0, 4.0]
    b = [2.0, 4.0, 6.0, 8.0, np.nan]
    expected = abs(np.mean(a) - 5.0) / math.sqrt(
        (np.var(a, ddof=1) + np.var([2, 4, 6, 8], ddof=1)) / 2
    )
    assert summaries.smd_continuous(a, b) == pytest.approx(expected)
    assert summaries.smd_continuous(b, a) == pytest.approx(expected)  # absolute value


def test_smd_continuous_degenerate_cases():
    assert math.isnan(summaries.smd_continuous([1.0], [1.0, 2.0]))
    assert summaries.smd_continuous([2.0, 2.0], [2.0, 2.0]) == 0.0
    assert math.isinf(summaries.smd_continuous([1.0, 1.0], [2.0, 2.0]))


def test_smd_categorical_binary_reduces_to_the_proportion_formula():
    a = ["y"] * 30 + ["n"] * 70
    b = ["y"] * 55 + ["n"] * 45
    p1, p2 = 0.30, 0.55
    expected = abs(p1 - p2) / math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)
    assert summaries.smd_categorical(a, b) == pytest.approx(expected)


def test_smd_categorical_multinomial_matches_yang_dalton_by_hand():
    a = ["x"] * 20 + ["y"] * 30 + ["z"] * 50
    b = ["x"] * 40 + ["y"] * 40 + ["z"] * 20
    # levels x, y, z; drop the first (x)
    t = np.array([0.30, 0.50])
    c = np.array([0.40, 0.20])
    s = np.array(
        [
            [(t[0] * (1 - t[0]) + c[0] * (1 - c[0])) / 2, -(t[0] * t[1] + c[0] * c[1]) / 2],
            [-(t[0] * t[1] + c[0] * c[1]) / 2, (t[1] * (1 - t[1]) + c[1] * (1 - c[1])) / 2],
        ]
    )
    expected = math.sqrt((t - c) @ np.linalg.inv(s) @ (t - c))
    assert summaries.smd_categorical(a, b) == pytest.approx(expected)
    # the dropped level does not matter
    assert summaries.smd_categorical(a, b, levels=["z", "y", "x"]) == pytest.approx(expected)


def test_smd_categorical_ignores_missing_and_handles_single_level():
    assert summaries.smd_categorical(["a", None, "a"], ["a", "a"]) == 0.0
    assert math.isnan(summaries.smd_categorical([None], ["a"]))


# ---- Table 1 -----------------------------------------------------------------------------------


@pytest.fixture
def people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arm": ["a", "a", "a", "b", "b", "b"],
            "age_years": [30.0, 40.0, np.nan, 50.0, 60.0, 70.0],
            "sex": ["female", "male", "female", "male", "male", None],
            "pain_morning_week1": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )


VARIABLES = (
    Variable("age_years", "Age, years", "mean"),
    Variable("sex", "Sex", "categorical", ("female", "male", "other")),
    Variable("pain_morning_week1", "Pain", "median"),
    Variable("arm", "Arm", "categorical"),
    Variable("absent", "Not in the data", "mean"),
)


def test_table_one_numbers(people):
    summary, smd = summaries.table_one(people, by="arm", variables=VARIABLES)
    assert summary.attrs["groups"] == [OVERALL, "a", "b"]
    assert summary.attrs["n"] == {OVERALL: 6, "a": 3, "b": 3}
    assert "arm" not in set(summary["variable"])  # the grouping variable is left out
    assert "absent" not in set(summary["variable"])
    age_a = summary[(summary["variable"] == "age_years") & (summary["group"] == "a")].iloc[0]
    assert age_a["n"] == 2 and age_a["missing"] == 1
    assert age_a["mean"] == pytest.approx(35.0)
    assert age_a["sd"] == pytest.approx(np.std([30, 40], ddof=1))
    sex = summary[summary["variable"] == "sex"]
    assert list(dict.fromkeys(sex["level"])) == ["female", "male"]  # unobserved "other" dropped
    male_b = sex[(sex["group"] == "b") & (sex["level"] == "male")].iloc[0]
    assert (male_b["count"], male_b["n"], male_b["missing"]) == (2, 2, 1)
    assert male_b["percent"] == pytest.approx(100.0)
    pain = summary[(summary["variable"] == "pain_morning_week1") & (summary["group"] == OVERALL)]
    assert pain["median"].iloc[0] == pytest.approx(3.5)
    assert pain["q1"].iloc[0] == pytest.approx(np.percentile([1, 2, 3, 4, 5, 6], 25))
    by_var = smd.set_index("variable")["smd"]
    assert by_var["age_years"] == pytest.approx(summaries.smd_continuous([30, 40], [50, 60, 70]))
    assert by_var["sex"] == pytest.approx(
        summaries.smd_categorical(["female", "male", "female"], ["male", "male"])
    )


def test_table_one_more_than_two_groups_reports_the_largest_pairwise_smd():
    frame = pd.DataFrame({"g": list("aabbcc"), "x": [1.0, 2.0, 1.5, 2.5, 5.0, 6.0]})
    _, smd = summaries.table_one(frame, by="g", variables=[Variable("x", "x", "mean")])
    pairs = [
        summaries.smd_continuous([1, 2], [1.5, 2.5]),
        summaries.smd_continuous([1, 2], [5, 6]),
        summaries.smd_continuous([1.5, 2.5], [5, 6]),
    ]
    assert smd["smd"].iloc[0] == pytest.approx(max(pairs))


# ---- summaries and comparisons -------------------------------------------------------------------


def test_mean_ci_matches_scipy_t_interval():
    frame = pd.DataFrame({"g": ["a"] * 5 + ["b"], "v": [1.0, 2.0, 4.0, 8.0, 9.0, 3.0]})
    out = summaries.mean_ci(frame, "v", "g").set_index("g")
    values = [1.0, 2.0, 4.0, 8.0, 9.0]
    low, high = stats.t.interval(0.95, 4, loc=np.mean(values), scale=stats.sem(values))
    assert out.loc["a", "ci_low"] == pytest.approx(low)
    assert out.loc["a", "ci_high"] == pytest.approx(high)
    assert math.isnan(out.loc["b", "ci_low"])  # n = 1


BOUNDED_CI = Path(__file__).resolve().parents[1] / "results" / "bounded_ci.json"


def test_bounded_mean_ci_matches_r_survey_svyciprop_logit():
    # tests/results/bounded_ci.R: survey::svyciprop(method = "logit" / "xlogit") on the values
    # rescaled to [0, 1] (simple random sample), limits scaled back. "logit" fits a
    # quasibinomial svyglm by IRLS (R's estimate itself is off by ~1e-10), "xlogit" is the
    # same interval in closed form.
    ref = json.loads(BOUNDED_CI.read_text())
    assert len(ref["cases"]) == 7
    for case in ref["cases"]:
        low, high = summaries.bounded_mean_ci(
            case["x"], bounds=(case["lower"], case["upper"]), confidence=case["level"]
        )
        scale = case["upper"] - case["lower"]
        for method, tol in (("xlogit", 1e-12), ("logit", 1e-8)):
            assert low == pytest.approx(case[method]["ci_low"], abs=tol * scale), case["name"]
            assert high == pytest.approx(case[method]["ci_high"], abs=tol * scale), case["name"]


def test_bounded_mean_ci_stays_inside_where_the_t_interval_overflows():
    # the reported defect: a small site's adherence 1.0, 1.0, 0.55 has the t-interval
    # 0.20 to 1.50 (R: mean ± qt(0.975, 2) · sd / √3); the logit interval is inside (0, 1)
    values = [1.0, 1.0, 0.55]
    t_low, t_high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert t_high > 1.4
    low, high = summaries.bounded_mean_ci(values, bounds=(0, 1))
    assert 0 < low < np.mean(values) < high < 1
    # NRS 0-10 near 0: the t-interval goes below 0, the logit one does not
    pain = [0.0, 0.5, 3.0, 0.0, 1.0]
    assert stats.t.interval(0.95, 4, loc=np.mean(pain), scale=stats.sem(pain))[0] < 0
    low, high = summaries.bounded_mean_ci(pain, bounds=(0, 10))
    assert 0 < low < np.mean(pain) < high < 10


def test_bounded_mean_ci_when_every_value_is_at_a_bound():
    # no spread: the logit interval would be the point. All n at a bound is the outcome
    # "n of n" (or 0 of n): P(all n at b) <= p^n for any quantity in [a, b] with rescaled mean
    # p, so the exact (Clopper-Pearson) limit solves p^n = alpha / 2: p = 0.025^(1/n)
    low, high = summaries.bounded_mean_ci([1.0] * 4, bounds=(0, 1))
    assert (low, high) == pytest.approx((0.025 ** (1 / 4), 1.0))
    assert low == pytest.approx(stats.binomtest(4, 4).proportion_ci(method="exact").low)
    low, high = summaries.bounded_mean_ci([0.0] * 20, bounds=(0, 10))
    assert (low, high) == pytest.approx((0.0, 10 * (1 - 0.025 ** (1 / 20))))
    low, high = summaries.bounded_mean_ci([-100.0, -100.0], bounds=(-100, 100), confidence=0.9)
    assert (low, high) == pytest.approx((-100.0, -100 + 200 * (1 - 0.05**0.5)))
    # fewer than two values: no interval; a value outside the bounds is a programming error
    assert all(math.isnan(x) for x in summaries.bounded_mean_ci([0.5], bounds=(0, 1)))
    with pytest.raises(ValueError, match="outside the bounds"):
        summaries.bounded_mean_ci([0.5, 1.5], bounds=(0, 1))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=30),
    st.sampled_from([(0.0, 1.0), (0.0, 10.0), (0.0, 100.0), (-100.0, 100.0)]),
    st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_bounded_mean_ci_is_always_within_its_bounds(unit, bounds, level):
    a, b = bounds
    values = np.clip(a + (b - a) * np.asarray(unit), a, b)
    low, high = summaries.bounded_mean_ci(values, bounds=bounds, confidence=level)
    mean = values.mean()
    assert a <= low <= high <= b
    tol = 1e-9 * (b - a)
    assert low - tol <= mean <= high + tol


def test_mean_ci_uses_the_bounds_of_known_columns():
    # adherence is bounded in [0, 1]: per week, the bounded interval (the band of the adherence
    # figure and the audit's interval); an unknown column keeps the t-interval (test above)
    frame = pd.DataFrame({"week": [1, 1, 2, 2, 2], "adherence_sessions": [0.5, 0.6, 1, 1, 0.2]})
    out = summaries.mean_ci(frame, "adherence_sessions", "week").set_index("week")
    for week, values in ((1, [0.5, 0.6]), (2, [1.0, 1.0, 0.2])):
        expected = summaries.bounded_mean_ci(values, bounds=(0, 1))
        assert (out.loc[week, "ci_low"], out.loc[week, "ci_high"]) == pytest.approx(expected)
        assert out.loc[week, "ci_low"] >= 0 and out.loc[week, "ci_high"] <= 1
    assert list(out.columns) == ["n", "mean", "sd", "ci_low", "ci_high"]
    # explicit bounds for a column the table does not know
    out = summaries.mean_ci(frame.rename(columns={"adherence_sessions": "x"}), "x", "week",
                         bounds=(0, 1))  # fmt: skip
    assert out["ci_high"].max() < 1


def test_group_summary_bounded_outcomes_stay_within_bounds():
    frame = pd.DataFrame(
        {
            "g": ["small"] * 3 + ["big"] * 6,
            "adherence_sessions": [1.0, 1.0, 0.55, 0.9, 0.8, 0.95, 0.7, 1.0, 0.85],
            "visa_a_change_12": [90.0, 95.0, 40.0, 10.0, 20.0, 5.0, 12.0, 30.0, 14.0],
            "age_years": [30.0, 40.0, 50.0, 31.0, 33.0, 35.0, 37.0, 39.0, 41.0],
        }
    )
    out = summaries.group_summary(
        frame, by="g", continuous=["adherence_sessions", "visa_a_change_12", "age_years"]
    )
    small = out[out["group"] == "small"].set_index("outcome")
    assert (small.loc["adherence_sessions", "ci_low"], small.loc["adherence_sessions", "ci_high"]
            ) == pytest.approx(summaries.bounded_mean_ci([1.0, 1.0, 0.55], bounds=(0, 1)))  # fmt: skip
    assert small.loc["adherence_sessions", "ci_high"] < 1
    # the small group's change 90, 95, 40: t-interval 4.6 to 145.4 (above 100); bounded below
    assert small.loc["visa_a_change_12", "ci_high"] < 100
    assert small.loc["visa_a_change_12", "ci_low"] > -100
    # age is not bounded: the t-interval
    ages = [30.0, 40.0, 50.0]
    t_int = stats.t.interval(0.95, 2, loc=40.0, scale=stats.sem(ages))
    assert (small.loc["age_years", "ci_low"], small.loc["age_years", "ci_high"]) == pytest.approx(
        t_int
    )


def test_group_summary_binary_uses_wilson_interval():
    frame = pd.DataFrame({"g": ["a"] * 10, "ok": [True] * 7 + [False] * 2 + [None]})
    out = summaries.group_summary(frame, by="g", binary=["ok"])
    row = out[(out["group"] == "a")].iloc[0]
    assert (row["n"], row["count"]) == (9, 7)
    low, high = stats.binomtest(7, 9).proportion_ci(method="wilson")
    assert row["ci_low"] == pytest.approx(low)
    assert row["ci_high"] == pytest.approx(high)


def test_compare_continuous_two_groups_against_scipy_and_pingouin():
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 3, 30), rng.normal(13, 5, 40)
    frame = pd.DataFrame({"g": ["a"] * 30 + ["b"] * 40, "v": np.r_[a, b]})
    out = summaries.compare_continuous(frame, "v", "g")
    assert len(out) == 1
    row = out.iloc[0]
    welch = stats.ttest_ind(b, a, equal_var=False)
    assert row["comparison"] == "b vs a"
    assert row["statistic"] == pytest.approx(welch.statistic)
    assert row["p_value"] == pytest.approx(welch.pvalue)
    assert row["estimate"] == pytest.approx(b.mean() - a.mean())
    ci = welch.confidence_interval(0.95)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert row["effect_size"] == pytest.approx(pg.compute_effsize(b, a, eftype="hedges"))
    assert row["es_ci_low"] < row["effect_size"] < row["es_ci_high"]


def test_compare_continuous_bounded_difference_is_truncated_to_its_range():
    # VISA-A change lies in [-100, 100], so a difference of two mean changes lies in
    # [-200, 200]. Two participants per arm with opposite changes: Welch's interval (df about
    # 1.9) is far wider than that; it is intersected with the range (the true difference is
    # always inside it, so coverage is unchanged)
    a, b = [-100.0, 100.0], [100.0, -60.0]
    frame = pd.DataFrame({"g": ["a", "a", "b", "b"], "visa_a_change_12": a + b})
    welch = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert welch.low < -200 and welch.high > 200
    row = summaries.compare_continuous(frame, "visa_a_change_12", "g").iloc[0]
    assert (row["ci_low"], row["ci_high"]) == (-200.0, 200.0)
    assert row["estimate"] == pytest.approx(20.0)
    # one side only: wide groups of larger n stay untouched
    frame = pd.DataFrame({"g": ["a"] * 3 + ["b"] * 3,
                          "visa_a_change_12": [90.0, 95.0, 100.0, -100.0, -90.0, 100.0]})  # fmt: skip
    row = summaries.compare_continuous(frame, "visa_a_change_12", "g").iloc[0]
    welch = stats.ttest_ind([-100.0, -90.0, 100.0], [90.0, 95.0, 100.0], equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert ci.low < -200 < ci.high < 200
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-200.0, ci.high))


def test_compare_continuous_three_groups_starts_with_welch_anova():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {"g": np.repeat(["a", "b", "c"], 20), "v": rng.normal(0, 1, 60) + np.repeat([0, 1, 2], 20)}
    )
    out = summaries.compare_continuous(frame, "v", "g")
    assert list(out["comparison"]) == ["all groups", "b vs a", "c vs a"]
    aov = pg.welch_anova(data=frame, dv="v", between="g")
    assert out.iloc[0]["statistic"] == pytest.approx(float(aov["F"].iloc[0]))


def test_compare_binary_risk_difference_and_chi_squared():
    frame = pd.DataFrame(
        {"g": ["a"] * 20 + ["b"] * 20, "r": [True] * 5 + [False] * 15 + [True] * 12 + [False] * 8}
    )
    out = summaries.compare_binary(frame, "r", "g")
    overall, pair = out.iloc[0], out.iloc[1]
    assert overall["test"] == "chi-squared test"
    table = [[5, 15], [12, 8]]
    chi2, p, _, _ = stats.chi2_contingency(table, correction=True)
    assert overall["statistic"] == pytest.approx(chi2)
    assert overall["p_value"] == pytest.approx(p)
    assert pair["estimate"] == pytest.approx(12 / 20 - 5 / 20)
    assert pair["ci_low"] < pair["estimate"] < pair["ci_high"]


@pytest.mark.filterwarnings("ignore:Low count")
def test_compare_binary_newcombe_interval_stays_within_minus_one_to_one():
    # audit of the bounded intervals: Newcombe's hybrid score interval combines two Wilson
    # intervals (each within [0, 1]), so it cannot leave [-1, 1] even at the extremes. 1 of 1
    # against 0 of 1: estimate 1, upper limit exactly 1
    rows = []
    for a, b in (([False], [True]), ([False] * 3, [True] * 3), ([True] * 4, [False] * 2)):
        frame = pd.DataFrame({"g": ["a"] * len(a) + ["b"] * len(b), "r": a + b})
        row = summaries.compare_binary(frame, "r", "g").iloc[-1]
        assert -1 <= row["ci_low"] <= row["estimate"] <= row["ci_high"] <= 1
        rows.append(row)
    assert rows[0]["ci_high"] == pytest.approx(1.0)  # b's Wilson upper 1, a's lower 0
    assert rows[2]["estimate"] == -1.0 and rows[2]["ci_low"] == pytest.approx(-1.0)


def test_number_at_risk_counts_durations_at_or_after_each_time():
    durations = pd.DataFrame({"group": ["a", "a", "a", "b"], "duration": [0.0, 10.0, 30.0, 5.0]})
    out = summaries.number_at_risk(durations, [0, 10, 20, 40])
    assert out[out["group"] == "a"]["n"].tolist() == [3, 2, 1, 0]
    assert out[out["group"] == "b"]["n"].tolist() == [1, 0, 0, 0]
