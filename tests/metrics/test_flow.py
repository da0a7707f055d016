"""rehabstats.metrics.flow: the participant flow, withdrawals by reason and their order."""

from __future__ import annotations

import pandas as pd
import pytest

from rehabstats.config import AnalysisConfig
from rehabstats.constants import OVERALL
from rehabstats.metrics import flow


@pytest.fixture
def flow_people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arm": ["a", "a", "a", "a", "b", "b", "b"],
            "follow_up_days": [200, 200, 40, 50, 200, 10, 300],
            "withdrawn": [False, True, True, False, False, True, False],
            "sessions_completed": [30, 20, 5, 6, 25, 0, 0],
            "at_risk_start_day": [90, pd.NA, pd.NA, pd.NA, 100, pd.NA, pd.NA],
            "relapsed": [True, pd.NA, pd.NA, pd.NA, False, pd.NA, pd.NA],
            "withdrawal_reason": [None, "moved away", None, None, None, "pain increased", None],
        }
    )


def test_flow_counts_are_nested_and_add_up(flow_people):
    counts = flow.flow_counts(flow_people, by="arm")
    n = counts.set_index(["group", "step"])["n"]
    assert n[(OVERALL, "enrolled")] == 7
    assert n[(OVERALL, "never_started")] == 2
    assert n[(OVERALL, "withdrawn_in_window")] == 1
    assert n[(OVERALL, "in_window")] == 1
    assert n[(OVERALL, "completed_window")] == 3
    assert n[(OVERALL, "returned_to_running")] == 2
    assert n[(OVERALL, "relapsed")] == 1
    assert n[(OVERALL, "withdrawn_after_window")] == 1
    for g in (OVERALL, "a", "b"):
        assert n[(g, "enrolled")] == n[(g, "never_started")] + n[(g, "started")]
        assert n[(g, "started")] == (
            n[(g, "withdrawn_in_window")] + n[(g, "in_window")] + n[(g, "completed_window")]
        )
        assert n[(g, "completed_window")] == (
            n[(g, "not_returned")] + n[(g, "returned_to_running")]
        )
    pct = counts.set_index(["group", "step"])["percent"]
    assert pct[("a", "completed_window")] == pytest.approx(50.0)


def test_withdrawal_reasons_by_flow_step(flow_people):
    reasons = flow.withdrawal_reasons(flow_people, by="arm")
    overall = reasons[reasons["group"] == OVERALL].set_index("reason")
    assert overall.loc["moved away", "when"] == "after window"
    assert overall.loc["not recorded", "when"] == "during window"
    assert overall.loc["pain increased", "when"] == "before starting"
    assert reasons["n"].sum() == 2 * 3  # overall + per group


def test_the_window_ends_where_the_configuration_says(flow_people):
    # 12 weeks: the window ends on day 83, so follow-up of 40 and 50 days is still in it;
    # 6 weeks: it ends on day 41 (7 * 6 - 1), so the participant followed 50 days completed
    # it, and the one withdrawn on day 40 withdrew during it either way
    twelve = flow.flow_counts(flow_people).set_index("step")["n"]
    six = flow.flow_counts(flow_people, config=AnalysisConfig(window_weeks=6))
    six = six.set_index("step")["n"]
    assert (twelve["in_window"], twelve["completed_window"]) == (1, 3)
    assert (six["in_window"], six["completed_window"]) == (0, 4)
    assert six["withdrawn_in_window"] == twelve["withdrawn_in_window"] == 1
    reasons = flow.withdrawal_reasons(flow_people, config=AnalysisConfig(window_weeks=2))
    # day 13 is the end of a 2-week window: the withdrawal at day 200 comes after it, the
    # one that never started is counted before starting
    assert set(zip(reasons["reason"], reasons["when"], strict=True)) == {
        ("moved away", "after window"), ("not recorded", "after window"),
        ("pain increased", "before starting"),
    }  # fmt: skip


def test_withdrawal_reasons_empty():
    frame = pd.DataFrame({"withdrawn": [False], "follow_up_days": [10], "sessions_completed": [1]})
    assert flow.withdrawal_reasons(frame).empty


def test_order_reasons_keeps_each_reasons_rows_together():
    # illness: 4 during + 1 after = 5 in total; lost: 1 after + 1 during = 2; moved: 2 during.
    # Sorting rows by their own count would split illness (4 ... 1) and lost around "moved";
    # by reason total: illness (5) first, then lost and moved (2 each, alphabetical), and within
    # a reason the flow order before starting < during window < after window.
    index = pd.MultiIndex.from_tuples(
        [
            ("illness", "during window"),
            ("moved", "during window"),
            ("lost", "after window"),
            ("lost", "during window"),
            ("illness", "after window"),
        ],
        names=["reason", "when"],
    )
    wide = pd.DataFrame({OVERALL: [4, 2, 1, 1, 1], "a": [1, 2, 0, 1, 1]}, index=index)
    ordered = flow.order_reasons(wide)
    assert list(ordered.index) == [
        ("illness", "during window"),
        ("illness", "after window"),
        ("lost", "during window"),
        ("lost", "after window"),
        ("moved", "during window"),
    ]
    assert ordered.loc[("lost", "after window"), "a"] == 0  # rows move whole
