"""Report polish that a first reader notices: labels that follow the confidence level, the
stage-4 proportion with its interval, units on the dashboard, values written as people write
them (no Python reprs), headers aligned with their cells, every flagged participant accounted
for in the swimmer plot. Sections are called on small demo analyses (no render); the rendered
demo reports (one render per session, ``rendered_demo``) are checked for reprs."""

from __future__ import annotations

import dataclasses
import html as html_lib
import re

import pandas as pd
import pytest
from block_tables import captions, tables
from test_render import rendered_demo

from rehabstats.report import html, sections
from rehabstats.report.analysis import Analysis, prepare
from rehabstats.report.format import fmt_setting

N = 60


@pytest.fixture(scope="module")
def cohort() -> Analysis:
    return prepare("cohort_report", demo_participants=N)


@pytest.fixture(scope="module")
def audit() -> Analysis:
    return prepare("clinic_audit", demo_participants=N)


def _reached_from_the_curve(a: Analysis, group: str) -> tuple[float, float, float]:
    """1 - S(83) and its limits read off the stage-4 Kaplan-Meier curve itself (the last event
    time on or before day 83): a second route to the numbers the summary reports."""
    km = a.km
    curve = km[(km["stage"] == 4) & (km["group"] == group) & (km["time_days"] <= 83)]
    last = curve.iloc[-1]
    return 1 - last["survival"], 1 - last["ci_high"], 1 - last["ci_low"]


def test_at_a_glance_labels_follow_the_confidence_level(cohort):
    table = tables(sections.at_a_glance(cohort))["at_a_glance"]
    assert "Session adherence, weeks 1-12, mean (95% CI)" in table.index
    level90 = dataclasses.replace(cohort, config=cohort.config.replace(confidence_level=0.9))
    table90 = tables(sections.at_a_glance(level90))["at_a_glance"]
    labels = list(table90.index)
    assert not [label for label in labels if "95%" in label], labels
    assert "Session adherence, weeks 1-12, mean (90% CI)" in labels
    assert "VISA-A change at 12 weeks, mean (90% CI), points" in labels
    assert "Relapse rate per 1,000 person-weeks (90% CI)" in labels
    # a 90% interval is narrower than the 95% one of the same mean
    row = "Session adherence, weeks 1-12, mean ({}% CI)"
    overall = table.columns[0]

    def width(cell: str) -> float:
        low, high = re.findall(r"(\d+)%", cell)[1:]
        return float(high) - float(low)

    assert width(table90.loc[row.format(90), overall]) <= width(table.loc[row.format(95), overall])


def test_at_a_glance_reports_stage_4_by_week_12_with_its_interval(cohort):
    table = tables(sections.at_a_glance(cohort))["at_a_glance"]
    label = "Reached stage 4 by week 12, Kaplan-Meier (95% CI)"
    assert label in table.index
    for column in table.columns:
        group = "all" if column.startswith("Overall") else column.split(" (n =")[0]
        source = cohort if group != "all" else dataclasses.replace(cohort, by=None)
        value, low, high = _reached_from_the_curve(source, group)
        expected = f"{100 * value:.0f}% ({100 * low:.0f}% to {100 * high:.0f}%)"
        assert table.loc[label, column] == expected, column


def test_time_to_stage_table_has_the_interval_of_the_proportion_reached(cohort):
    table = tables(sections.time_to_stage(cohort))["time_to_stage"]
    assert list(table.columns[-4:]) == [
        "median days", "95% CI (median)", "reached by week 12", "95% CI (reached)",
    ]  # fmt: skip
    row = table[(table["stage"] == "Stage 4")].iloc[0]
    value, low, high = _reached_from_the_curve(cohort, row["group"])
    assert row["95% CI (reached)"] == f"{100 * low:.0f}% to {100 * high:.0f}%"


def test_every_dashboard_tile_has_its_unit(audit):
    block = sections.audit_dashboard(audit)
    tiles = re.findall(r'<div class="rs-kpi[^"]*">(.*?)</div></div>', block._repr_html_(), re.S)
    assert len(tiles) == 6  # adherence, stage 4, responders, checkpoint, relapse, readiness
    found = re.findall(r'class="rs-kpi-unit">([^<]*)<', block._repr_html_())
    units = [html_lib.unescape(u) for u in found]
    assert len(units) == 6 and all(units)
    assert "relapses per 1,000 person-weeks at risk" in units
    table = tables(block)["audit"]
    assert any(r.startswith("Relapse rate per 1,000 person-weeks (target") for r in table.index)


def test_settings_and_parameters_are_written_as_people_write_them(cohort):
    block = sections.configuration(cohort)
    shown = tables(block)
    config = shown["configuration"].set_index("key")["value"]
    # a list, a missing value and a number, in words (the defaults: data_schema/...yaml)
    assert config["relapse_rules"] == "recorded, pain, regression"
    assert config["data_cutoff"] == "not set"
    assert config["confidence_level"] == "0.95"
    assert config["baseline_window_days"] == "-14, 7"
    parameters = shown["parameters"].set_index("parameter")["value"]
    assert parameters["data"] == "not set" and parameters["title"] == "not set"
    text = " ".join([*config, *parameters])  # every value shown
    for repr_ in ("None", "null", "[", "]", "'", "True", "False", "nan", "NaN"):
        assert repr_ not in text, repr_


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "not set"),
        (True, "yes"),
        (False, "no"),
        (["recorded", "pain"], "recorded, pain"),
        ((-14, 7), "-14, 7"),
        ([], "none"),
        (0.95, "0.95"),
        (4.0, "4"),
        ({"a": 1, "b": None}, "a: 1; b: not set"),
        ("site_a", "site_a"),
    ],
)
def test_fmt_setting(value, expected):
    assert fmt_setting(value) == expected


def test_column_headers_are_aligned_and_wrapped_like_their_cells():
    frame = pd.DataFrame({"stage": ["Stage 2"], "n": ["10"], "note": ["long text"]})
    out = html.table(frame, name="t", index=False, left=["stage", "note"], wrap=["note"])
    headers = dict(re.findall(r'<th id="T_t_level0_col\d+" class="([^"]*)"[^>]*>([^<]*)</th>',
                              out))  # fmt: skip
    classes = {text: cls for cls, text in headers.items()}
    assert "rs-left" in classes["stage"].split()
    assert {"rs-left", "rs-wrap"} <= set(classes["note"].split())
    assert "rs-left" not in classes["n"].split()  # counts stay right-aligned over their cells


def test_the_swimmer_plot_draws_every_flagged_participant_or_says_how_many_are_not(audit):
    flagged = audit.review["participant_id"].nunique()
    assert flagged >= 3  # the demo audit has participants to review
    caption = " ".join(captions(sections.swimmer(audit)))
    assert f"Every participant on the review list ({flagged}) is drawn." in caption
    # a limit smaller than the review list: the caption says how many are not drawn and why
    small = dataclasses.replace(audit, parameters={**audit.parameters, "swimmer_limit": 2})
    caption = " ".join(captions(sections.swimmer(small)))
    assert (
        f"Only 2 of the {flagged} participants on the review list are drawn: swimmer_limit = 2"
        in caption
    )


REPR = re.compile(
    r"\bNone\b|\bnull\b|\bNaN\b|\bnan\b|<NA>|\bNaT\b|\bTrue\b|\bFalse\b|\[\s*'[^\]]*\]"
)


@pytest.mark.slow
@pytest.mark.parametrize("report", ["cohort_report", "clinic_audit"])
def test_rendered_reports_show_no_python_repr(report):
    text = rendered_demo()[report].read_text(encoding="utf-8")
    body = re.sub(r"<(style|script)[^>]*>.*?</\1>", "", text, flags=re.S)
    body = re.sub(r'<img[^>]*src="data:[^"]*"[^>]*>', "", body)
    words = html_lib.unescape(re.sub(r"<[^>]+>", " ", body))
    found = [words[max(0, m.start() - 60) : m.end() + 20] for m in REPR.finditer(words)]
    assert found == []
