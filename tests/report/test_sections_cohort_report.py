"""rehabstats.report.sections.cohort_report on a small simulated cohort, without rendering:
at a glance, Table 1, the pain model, VISA-A, stage occupancy and protocol fidelity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from block_tables import captions, figures, tables

from rehabstats.report import sections
from rehabstats.report.analysis import Analysis, prepare

N = 60


@pytest.fixture(scope="module")
def a() -> Analysis:
    """By arm: three arms of a 60-participant demo cohort."""
    return prepare("cohort_report", demo_participants=N)


@pytest.fixture(scope="module")
def external(a) -> Analysis:
    return dataclasses.replace(a, audience="external", key=b"k" * 16)


def _sizes(a: Analysis) -> dict[str, int]:
    """Participants per arm, from the cohort's participants table (all enrolled by the cut-off
    in the demo cohort, which is analysed at its last date)."""
    return a.cohort.participants["arm"].astype("str").value_counts().to_dict()


def test_at_a_glance_has_the_whole_cohort_then_each_arm(a):
    table = tables(sections.at_a_glance(a))["at_a_glance"]
    sizes = _sizes(a)
    assert list(table.columns) == [
        f"Overall (n = {N})",
        *[f"{arm} (n = {n})" for arm, n in sorted(sizes.items())],
    ]
    withdrawn = a.cohort.participants["withdrawn_on"].notna()
    # n (%) with a whole percentage: the withdrawn of the whole cohort
    expected = f"{withdrawn.sum()} ({100 * withdrawn.mean():.0f}%)"
    assert table.loc["Withdrawn", f"Overall (n = {N})"] == expected
    rates = table.loc["Relapse rate per 1,000 person-weeks (95% CI)"]
    assert all(" to " in cell for cell in rates)  # every group's rate with its interval


def test_at_a_glance_of_an_external_report_shows_no_small_count(external):
    summary = sections.at_a_glance(external).frames["summary"]
    values = list(summary["n"]) + list(summary["count"])
    numbers = [v for v in values if not isinstance(v, str) and v == v]
    assert not [v for v in numbers if 1 <= v <= 4]
    assert "<5" in values  # 60 participants in three arms: some counts are small


def test_table_one_by_arm_with_the_largest_pairwise_smd(a):
    block = sections.table_one(a)
    table = tables(block)["table_one"]
    assert list(table.columns)[-1] == "SMD"
    assert table.loc[("Participants", "n"), f"Overall (n = {N})"] == str(N)
    caption = captions(block)[0]
    assert "largest pairwise SMD across the groups" in caption  # three arms
    smd = block.frames["smd"].set_index("variable")["smd"]
    assert (smd.dropna() >= 0).all() and "arm" not in smd.index  # grouped by arm: no arm row


def test_pain_model_names_the_reference_arm(a):
    block = sections.pain_model(a)
    terms = list(tables(block)["pain_model"]["term"])
    ref = sorted(_sizes(a))[0]
    assert f"Change in morning pain per week ({ref}, the reference), NRS" in terms
    others = sorted(_sizes(a))[1:]
    for arm in others:
        assert f"Difference in weekly change: {arm} vs {ref}, NRS/week" in terms
    assert "fitted by REML" in captions(block)[0]


def test_visa_a_compares_each_arm_with_the_reference(a):
    block = sections.visa_a(a)
    comparisons = tables(block)["visa_a_comparisons"]
    ref, *others = sorted(_sizes(a))
    pairwise = [f"{arm} vs {ref}" for arm in others]
    # three arms: a Welch ANOVA and a chi-squared test first, then each arm against the first
    assert list(comparisons["comparison"]) == ["all groups", *pairwise] * 2
    assert figures(block) == 1
    assert captions(block)[-1].startswith(f"Reference group: {ref}.")


def test_visa_a_without_groups_compares_nothing(a):
    block = sections.visa_a(dataclasses.replace(a, by=None))
    assert "visa_a_comparisons" not in tables(block)
    assert "comparisons" not in block.frames


def test_stage_occupancy_is_a_share_of_those_observed_each_week(a):
    block = sections.stage_occupancy(a)
    occ = block.frames["occupancy"]
    shares = occ.groupby(["group", "week"], observed=True)["proportion"].sum()
    assert np.allclose(shares, 1.0)
    assert figures(block) == 1
    assert set(occ["week"]) == set(range(1, a.config.window_weeks + 1))


def test_checkpoint_fidelity_counts_those_reaching_stage_4(a):
    table = tables(sections.checkpoint_fidelity(a))["checkpoint_fidelity"]
    pm = a.participants
    reached = int(pm["reached_stage_4"].fillna(False).astype(bool).sum())
    cell = table.loc["Reached stage 4, n (%)", f"Overall (n = {N})"]
    assert cell == f"{reached} ({100 * reached / N:.0f}%)"
    # the checkpoint's share is of those who reached stage 4: its denominator is shown
    first = table.loc[
        "Passed the checkpoint before stage 4, n (% of those reaching it)", f"Overall (n = {N})"
    ]
    assert first.endswith(f" of {reached}")
