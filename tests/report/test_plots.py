"""rehabstats.report.plots on small hand-made metric outputs: Axes in, Axes out, labelled, no globals."""

from __future__ import annotations

import io

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from rehabstats.constants import OVERALL
from rehabstats.metrics.flow import flow_counts, withdrawal_reasons
from rehabstats.report import plots


@pytest.fixture
def ax():
    fig = Figure(figsize=(6, 4))
    return fig.subplots()


@pytest.fixture(autouse=True)
def rc_unchanged():
    before = dict(mpl.rcParams)
    yield
    after = dict(mpl.rcParams)
    changed = {k for k in before if str(before[k]) != str(after[k])}
    assert not changed, f"plot functions changed global rcParams: {sorted(changed)}"


def weekly_pain() -> pd.DataFrame:
    rows = []
    for pid, group, start in (("p1", "a", 5), ("p2", "a", 6), ("p3", "b", 4), ("p4", "b", 3)):
        for week in range(1, 13):
            rows.append(
                {"participant_id": pid, "group": group, "week": week,
                 "pain_morning_mean": max(0.0, start - 0.3 * week)}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_group_colors_are_okabe_ito_and_stable():
    colors = plots.group_colors(["b", "a", "all"])
    assert colors["a"] == plots.OKABE_ITO["blue"]
    assert colors["b"] == plots.OKABE_ITO["orange"]
    assert set(plots.group_colors(["a", "b"]).items()) <= set(colors.items())


def test_pain_trajectories(ax):
    out = plots.pain_trajectories(weekly_pain(), hue="group", ax=ax, pain_limit=4)
    assert out is ax
    assert "NRS" in ax.get_ylabel() and "Week" in ax.get_xlabel()
    assert ax.get_ylim() == (0, 10)
    assert len(ax.collections) >= 2  # individual lines and the CI bands
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("a ") for label in labels) and "Pain limit (4)" in labels
    colors = {to_hex(line.get_color()) for line in ax.get_lines()}
    assert plots.OKABE_ITO["blue"].lower() in colors


def test_pain_trajectories_without_groups(ax):
    plots.pain_trajectories(weekly_pain().drop(columns="group"), hue="group", ax=ax)
    assert len([line for line in ax.get_lines() if line.get_label().startswith("Mean")]) == 1


def test_adherence_by_week(ax):
    weekly = pd.DataFrame(
        {"participant_id": ["p1", "p1", "p2", "p2"], "group": ["a", "a", "b", "b"],
         "week": [1, 2, 1, 2], "adherence_sessions": [1.0, 0.5, 0.8, np.nan]}
    )  # fmt: skip
    out = plots.adherence_by_week(weekly, ax=ax, threshold=0.8)
    assert out is ax
    assert "%" in ax.get_ylabel()
    assert ax.yaxis.get_major_formatter()(0.5, 0) == "50%"


def test_visa_change(ax):
    outcomes = pd.DataFrame(
        {
            "group": ["a"] * 5 + ["b"] * 5,
            "visa_a_change_12": [5, 10, 15, 20, np.nan, 0, 3, 30, 14, 8],
        }
    )
    out = plots.visa_change(outcomes, ax=ax, mcid=14)
    assert out is ax
    assert "points" in ax.get_ylabel()
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["a\n(n = 4)", "b\n(n = 5)"]


def test_visa_change_draws_the_same_picture_every_time():
    # a re-run of a report on the same data must give the same report: the points' jitter may
    # not come from numpy's global random state (seaborn's stripplot does; it changed each run)
    outcomes = pd.DataFrame({"group": ["a"] * 30 + ["b"] * 30,
                             "visa_a_change_12": np.linspace(-10, 40, 60)})  # fmt: skip
    pictures = []
    for seed in (1, 2):
        np.random.seed(seed)  # noqa: NPY002 - another global state before each drawing
        fig = Figure(figsize=(4, 3))
        plots.visa_change(outcomes, ax=fig.subplots())
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        pictures.append(buf.getvalue())
    assert pictures[0] == pictures[1]


def test_visa_change_shows_the_counts_given(ax):
    # a report that leaves the team gives the n as it may show them (small ones as "<5")
    outcomes = pd.DataFrame({"group": ["a"] * 3 + ["b"] * 6, "visa_a_change_12": range(9)})
    plots.visa_change(outcomes, ax=ax, counts={"a": "<5", "b": 6})
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a\n(n = <5)", "b\n(n = 6)"]


def test_data_labels_are_drawn_literally():
    # a site, arm or id holding "$" is text: mathtext would stop on the unknown symbol \x
    # (and typeset "a$b$c" as math); every plot function draws such labels as they are
    label = "a$b$c $\\x$"
    fig = Figure(figsize=(6, 4))
    axes = fig.subplots(1, 3)
    outcomes = pd.DataFrame({"group": [label] * 3 + ["b"] * 3, "visa_a_change_12": range(6)})
    plots.visa_change(outcomes, ax=axes[0])
    inc = pd.DataFrame({"group": [label] * 2, "week": [4, 8], "cumulative_incidence": [0.1, 0.2]})
    plots.cumulative_incidence(inc, ax=axes[1])
    plots.km_curves(km_table().replace({"group": {"a": label}}), stage=4, ax=axes[2])
    fig.savefig(io.BytesIO(), format="png")  # draws every text
    assert axes[1].get_legend().get_texts()[0].get_text() == label
    assert label + "\n(n = 3)" in [t.get_text() for t in axes[0].get_xticklabels()]


def km_table() -> pd.DataFrame:
    rows = []
    for group, times in (("a", [7, 14, 21]), ("b", [10, 30])):
        s = 1.0
        for t in times:
            s *= 0.7
            rows.append({"stage": 4, "group": group, "time_days": float(t), "at_risk": 10,
                         "events": 3, "censored": 0, "survival": s, "ci_low": s * 0.8,
                         "ci_high": min(1.0, s * 1.2)})  # fmt: skip
    return pd.DataFrame(rows)


def test_km_curves_with_at_risk_table(ax):
    at_risk = pd.DataFrame(
        {"group": ["a", "a", "b", "b"], "time": [0, 28, 0, 28], "n": [10, 4, 8, 3]}
    )
    out = plots.km_curves(km_table(), stage=4, ax=ax, max_days=56, at_risk=at_risk)
    assert out is ax
    assert ax.get_title(loc="left") == "Stage 4"
    assert "Weeks" in ax.get_xlabel() and "%" in ax.get_ylabel()
    # the curve is 1 - S(t), starting at 0
    first = ax.get_lines()[0]
    assert first.get_ydata()[0] == 0.0
    assert first.get_ydata()[-1] == pytest.approx(1 - 0.7**3)
    table = ax.child_axes[0]
    texts = sorted(t.get_text() for t in table.texts)
    assert texts == sorted(["10", "4", "8", "3"])


def test_add_at_risk_table_hides_labels_on_request(ax):
    ax.set_xlim(0, 8)
    at_risk = pd.DataFrame({"group": ["a"], "time": [0], "n": [5]})
    table = plots.add_at_risk_table(ax, at_risk, labels=False)
    assert [t.get_text() for t in table.get_yticklabels()] == [""]


def test_stage_occupancy(ax):
    rows = []
    for week in (1, 2):
        for state, n in (("stage_1", 6 - 3 * (week - 1)), ("stage_2", 3 * (week - 1)),
                         ("withdrawn", 1)):  # fmt: skip
            rows.append({"group": "all", "week": week, "state": state, "n": n,
                         "proportion": n / 7})  # fmt: skip
    out = plots.stage_occupancy(pd.DataFrame(rows), group="all", ax=ax)
    assert out is ax
    assert ax.get_title(loc="left") == "All participants"
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == pytest.approx(2.0)  # two weeks, each stacking to 100%
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Stage 1 isometric" in labels and "Withdrawn" in labels


def test_swimmer(ax):
    timelines = pd.DataFrame(
        {
            "participant_id": ["p1", "p2"],
            "follow_up_days": [120, 40],
            "days_to_stage_2": [10, 12],
            "days_to_stage_3": [30, np.nan],
            "days_to_stage_4": [60, np.nan],
            "withdrawn": [False, True],
            "last_session_day": [110, 35],
            "at_risk_start_day": [90, np.nan],
            "days_to_relapse": [14, np.nan],
            "relapsed": [True, False],
            "needs_review": [True, False],
        }
    )
    out = plots.swimmer(timelines, ax=ax)
    assert out is ax
    # p1: 4 stage segments; p2: 2
    assert len(ax.patches) == 6
    assert [t.get_text() for t in ax.get_yticklabels()] == ["p1", "p2"]
    assert ax.get_yticklabels()[0].get_fontweight() == "bold"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"Relapse", "Withdrawn", "Returned to running/sport"} <= set(legend)


def test_cumulative_incidence(ax):
    inc = pd.DataFrame({"group": ["a"] * 3, "week": [4, 8, 12],
                        "cumulative_incidence": [0.1, 0.2, 0.25]})  # fmt: skip
    out = plots.cumulative_incidence(inc, ax=ax, markers_at=[4, 12])
    assert out is ax
    assert "return to running" in ax.get_xlabel()
    assert ax.get_lines()[0].get_ydata()[-1] == pytest.approx(0.25)


def test_audit_bullet_marks_met_and_missed_by_shape(ax):
    summary = pd.DataFrame(
        {
            "site": [OVERALL, "s1", "s2"],  # audit_summary's whole cohort: "all"
            "metric": ["adherence"] * 3,
            "label": ["Adherence"] * 3,
            "unit": ["proportion"] * 3,
            "unit_label": ["% of sessions"] * 3,
            "value": [0.82, 0.9, 0.7],
            "ci_low": [0.78, 0.85, 0.6],
            "ci_high": [0.86, 0.95, 0.8],
            "target": [0.8] * 3,
            "direction": ["at_least"] * 3,
            "met": [True, True, False],
            "n": [30, 20, 10],
        }
    )
    out = plots.audit_bullet(summary, metric="adherence", ax=ax)
    assert out is ax
    assert "target ≥ 80%" in ax.get_title(loc="left")
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "All sites (n = 30)", "s1 (n = 20)", "s2 (n = 10)"
    ]  # fmt: skip
    assert len(ax.collections) >= 3


def test_flow_diagram_boxes_hold_every_count():
    people = pd.DataFrame(
        {"arm": ["a", "b", "b"], "follow_up_days": [100, 20, 100], "withdrawn": [False, True, False],
         "sessions_completed": [5, 3, 4], "at_risk_start_day": [80, pd.NA, pd.NA],
         "relapsed": [False, pd.NA, pd.NA], "withdrawal_reason": [None, "moved away", None]}
    )  # fmt: skip
    flow = flow_counts(people, by="arm")
    reasons = withdrawal_reasons(people, by="arm")
    width, height = plots.flow_diagram_size(flow, reasons)
    fig = Figure(figsize=(width, height))
    ax = plots.flow_diagram(flow, reasons, ax=fig.subplots())
    text = "\n".join(t.get_text() for t in ax.texts)
    assert "Enrolled\nn = 3\na 1 · b 2" in text
    assert "Withdrew during the window\nn = 1" in text and "moved away: 1" in text
    assert len(ax.patches) == 9  # 5 main boxes, 4 exits


def test_new_axes_when_none_given():
    out = plots.cumulative_incidence(
        pd.DataFrame({"group": ["all"], "week": [4], "cumulative_incidence": [0.1]})
    )
    assert out.figure is not None
    import matplotlib.pyplot as plt

    plt.close(out.figure)
