"""rehabstats.report.sections.clinic_audit on a small simulated cohort, without rendering: the
dashboard against targets, the review list, the swimmer plot and the audit's settings."""

from __future__ import annotations

import dataclasses
import re

import pytest
from block_tables import captions, figures, tables

from rehabstats.config import AnalysisConfig
from rehabstats.metrics.review import REVIEW_REASONS, reason_labels
from rehabstats.report import sections
from rehabstats.report.analysis import Analysis, prepare

N = 60


@pytest.fixture(scope="module")
def a() -> Analysis:
    """The demo audit by site, at its interim cut-off (participants still in the programme)."""
    return prepare("clinic_audit", demo_participants=N)


def _sites(a: Analysis) -> list[str]:
    return sorted(a.cohort.participants["site"].astype("str").unique())


def test_dashboard_has_all_sites_then_each_site(a):
    block = sections.audit_dashboard(a)
    table = tables(block)["audit"]
    assert list(table.columns) == ["All sites", *_sites(a)]
    text = block._repr_html_()
    # one tile per audit metric: adherence, stage 4, responders, checkpoint fidelity, relapse
    # rate and the return-to-sport criteria met before the return
    assert text.count('<div class="rs-kpi-label">') == 6
    assert figures(block) == 1
    # the table's rows name each metric with its target (the configuration's defaults)
    assert "Session adherence, weeks 1-12 (target ≥ 80%)" in table.index
    assert "Relapse rate per 1,000 person-weeks (target ≤ 5)" in table.index
    assert "Return-to-sport criteria met before the return (target ≥ 80%)" in table.index
    audit = block.frames["audit"]
    assert audit["site"].iloc[0] == "all"  # the whole cohort inside, "All sites" shown


def test_dashboard_targets_come_from_the_parameters(a):
    strict = prepare("clinic_audit", demo_participants=N, target_adherence=0.95,
                     target_relapse_rate=1.5)  # fmt: skip
    table = tables(sections.audit_dashboard(strict))["audit"]
    assert "Session adherence, weeks 1-12 (target ≥ 95%)" in table.index
    assert "Relapse rate per 1,000 person-weeks (target ≤ 1.5)" in table.index
    settings = tables(sections.audit_settings(strict))["targets"]
    assert (
        dict(zip(settings["target"], settings["value"], strict=True))[
            "Session adherence, weeks 1-12 (mean)"
        ]
        == "≥ 95%"
    )


def test_review_list_counts_and_lists_those_needing_review(a):
    block = sections.review_list(a)
    text = block._repr_html_()
    listed = len(a.review)
    assert re.search(rf"<p><strong>{listed}</strong> of \d+ participants under care", text)
    review = tables(block)["review"]
    assert len(review) == listed
    assert list(review["participant"]) == list(a.review["participant_id"].astype(str))
    reasons = tables(block)["review_reasons"]
    assert list(reasons.index) == list(reason_labels(a.config).values())
    assert "ACWR spike in the last 7 days" in reasons.index  # review_acwr_days filled in
    flagged = a.review[list(REVIEW_REASONS)].sum()  # participants per reason
    assert list(reasons["participants"].astype(int)) == list(flagged)


def test_review_list_rules_follow_the_configuration(a):
    config = a.config.replace(review_flare_days=10, review_stuck_weeks=(2, 4, 6),
                              review_horizon_weeks=30)  # fmt: skip
    block = sections.review_list(dataclasses.replace(a, config=config))
    caption = captions(block)[-1]
    assert "a flare in the last 10 days" in caption
    assert "in stage 1/2/3 longer than 2/4/6 weeks" in caption
    assert "follow-up ≤ 30 weeks" in block._repr_html_()


def test_swimmer_draws_at_most_its_limit(a):
    block = sections.swimmer(a, limit=5)
    caption = captions(block)[0]
    more = len(a.participants) - 5
    assert caption.startswith("5 participants by site and enrolment")
    assert f"; {more} not shown (swimmer_limit = 5)" in caption
    assert figures(block) == 1
    default = captions(sections.swimmer(a))[0]  # the report's swimmer_limit, 60: everyone
    assert default.startswith(f"{min(60, len(a.participants))} participants")


def test_audit_settings_list_the_configured_thresholds(a):
    block = sections.audit_settings(a)
    thresholds = tables(block)["thresholds"]
    values = dict(zip(thresholds["setting"], thresholds["value"], strict=True))
    defaults = AnalysisConfig()
    keys = AnalysisConfig.keys()
    assert list(values) == [k.removeprefix("review_") for k in keys if k.startswith("review_")]
    assert values["stuck_weeks"] == "stage 1: 3, stage 2: 5, stage 3: 8"
    assert values["recent_days"] == str(defaults.review_recent_days) == "14"
    meaning = dict(zip(thresholds["setting"], thresholds["meaning"], strict=True))
    assert meaning["horizon_weeks"] == "participants with longer follow-up are not reviewed, weeks"
