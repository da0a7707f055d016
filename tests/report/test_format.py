"""rehabstats.report.format: numbers, intervals, the whole cohort's label and tables as text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rehabstats.constants import OVERALL
from rehabstats.metrics.flow import flow_counts
from rehabstats.report import format as fmt
from rehabstats.stats.summaries import Variable, table_one


def test_formatting_helpers():
    assert fmt.fmt_num(1.234, 2) == "1.23"
    assert fmt.fmt_num(-0.01, 1) == "0.0"
    assert fmt.fmt_num(np.nan) == "–"
    assert fmt.fmt_pct(0.456) == "46%"
    assert fmt.fmt_count_pct(3, 25.0, 0) == "3 (25%)"
    assert fmt.fmt_mean_sd(10, 2.5) == "10.0 (2.5)"
    assert fmt.fmt_median_iqr(3, 1, 4.25, 1) == "3.0 [1.0, 4.2]"
    assert fmt.fmt_ci(0.1, 0.3, 0, percent=True) == "10% to 30%"
    assert fmt.fmt_p(0.0004) == "<0.001"
    assert fmt.fmt_p(0.04567) == "0.046"
    assert fmt.fmt_p(None) == "–"


def test_suppression_markers_pass_through():
    # a cell withheld by the disclosure holds its marker: shown as it is, never as a number
    assert fmt.fmt_count("<5") == "<5"
    assert fmt.fmt_count_pct("<5", "*", 0) == "<5"
    assert fmt.fmt_count_pct(12, "*", 0) == "12 (*)"
    assert fmt.fmt_mean_sd(3.0, "*") == "*"
    assert fmt.fmt_ci("*", 2.0) == "*"


def test_the_whole_cohort_has_one_label_per_use():
    # the internal group "all" is shown as "Overall" beside the groups and as "All ..." alone;
    # any other group keeps its name (even "Overall": only "all" is the whole cohort)
    assert OVERALL == "all"
    assert fmt.group_label(OVERALL) == "Overall"
    assert fmt.group_label(OVERALL, whole="participants") == "All participants"
    assert fmt.group_label(OVERALL, whole="sites") == "All sites"
    assert fmt.group_label(OVERALL, whole="") == "All"
    assert fmt.group_label("staged", whole="sites") == "staged"
    assert fmt.group_label("Overall", whole="participants") == "Overall"


VARIABLES = (
    Variable("age_years", "Age, years", "mean"),
    Variable("sex", "Sex", "categorical", ("female", "male", "other")),
    Variable("pain_morning_week1", "Pain", "median"),
)


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


def test_format_table_one_strings(people):
    summary, smd = table_one(people, by="arm", variables=VARIABLES)
    frame = fmt.format_table_one(summary, smd)
    assert list(frame.columns) == ["Overall (n = 6)", "a (n = 3)", "b (n = 3)", "SMD"]
    # arm a's ages 30 and 40: mean 35, SD sqrt(50) = 7.07
    assert frame.loc[("Age, years", "mean (SD)"), "a (n = 3)"] == "35.0 (7.1)"
    assert frame.loc[("Age, years", "missing, n"), "Overall (n = 6)"] == "1"
    assert frame.loc[("Sex", "male, n (%)"), "b (n = 3)"] == "2 (100.0%)"
    # pain 1..6: median 3.5, quartiles 2.25 and 4.75 (type 7), shown with one decimal
    assert frame.loc[("Pain", "median [Q1, Q3]"), "Overall (n = 6)"] == "3.5 [2.2, 4.8]"
    assert frame.loc[("Participants", "n"), "b (n = 3)"] == "3"


def test_table_one_without_groups_has_no_smd_column(people):
    summary, smd = table_one(people, variables=VARIABLES)
    frame = fmt.format_table_one(summary, smd)
    assert list(frame.columns) == ["Overall (n = 6)"]
    assert smd["smd"].isna().all()


def test_format_flow_labels_the_whole_cohort_overall():
    people = pd.DataFrame(
        {"arm": ["a", "b", "b"], "follow_up_days": [100, 20, 100], "withdrawn": [False, True, False],
         "sessions_completed": [5, 3, 4], "at_risk_start_day": [80, pd.NA, pd.NA],
         "relapsed": [False, pd.NA, pd.NA]}
    )  # fmt: skip
    wide = fmt.format_flow(flow_counts(people, by="arm"))
    assert list(wide.columns) == ["Overall", "a", "b"]
    assert wide.loc["Enrolled", "b"] == "2 (100%)"
    # b: one of two withdrew on day 20, inside the 12-week window
    assert wide.loc["Started, then withdrew during the window", "b"] == "1 (50%)"
