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


def test_pain_model_shows_satterthwaite_df_and_t_based_intervals(a):
    """METRICS.md §5: t-based CIs with Satterthwaite df, shown and said so in the caption."""
    from scipy import stats

    block = sections.pain_model(a)
    table = tables(block)["pain_model"]
    assert "df" in table.columns
    model = block.frames["model"]
    fixed = model[model["df"].notna()]
    assert len(fixed) >= 2 and (fixed["df"] > 0).all()
    row = fixed.iloc[0]
    # the interval is estimate ± t_{0.975, df} · SE (95% by default), wider than the normal one
    half = stats.t.ppf(0.975, row["df"]) * row["std_err"]
    assert row["ci_high"] - row["estimate"] == pytest.approx(half, rel=1e-9)
    assert half > stats.norm.ppf(0.975) * row["std_err"]
    shown = table.set_index("df").loc[f"{row['df']:.1f}"]  # df shown with one decimal
    low, high = (float(x) for x in str(shown["95% CI"]).replace("−", "-").split(" to "))
    assert (low, high) == (round(row["ci_low"], 2), round(row["ci_high"], 2))
    text = " ".join(captions(block))
    assert "Satterthwaite degrees of freedom" in text and "t distributions" in text


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


# ---- exercise quality and the return to running --------------------------------------------

OVERALL_COL = f"Overall (n = {N})"


def _without(a: Analysis, **empty: bool) -> Analysis:
    """The analysis of the same cohort without the tables named (as if never collected)."""
    cohort = dataclasses.replace(
        a.cohort, **{name: getattr(a.cohort, name).iloc[0:0] for name in empty}
    )
    return dataclasses.replace(a, cohort=cohort)


def test_fidelity_has_the_exercise_quality_lines(a):
    block = sections.checkpoint_fidelity(a)
    table = tables(block)["checkpoint_fidelity"]
    pm = a.participants
    # rushed lowering: the mean of each participant's share of rushed sessions, in %, over
    # those with a session's tempo logged (the demo logs lowering_s)
    rate = pm["fast_tempo_rate"].dropna()
    row = "Exercise quality: lowering under 3 s, % of logged stage 2-3 sessions, mean (SD)"
    assert table.loc[row, OVERALL_COL] == f"{100 * rate.mean():.0f}% ({100 * rate.std():.0f}%)"
    # back-to-back heavy days: of those reaching stage 3 (the first heavy stage by default)
    reached = pm["reached_stage_3"].fillna(False).astype(bool)
    b2b = int((pm.loc[reached, "back_to_back_days"] > 0).sum())
    row = ("Exercise quality: back-to-back heavy days (stage 3/4), n (% of those reaching "
           "stage 3)")  # fmt: skip
    assert table.loc[row, OVERALL_COL] == (
        f"{b2b} ({100 * b2b / reached.sum():.0f}%) of {reached.sum()}"
    )
    assert "Tempo: completed stage 2-3 sessions" in captions(block)[0]


def test_fidelity_says_when_no_lowering_time_is_logged(a):
    sessions = a.cohort.sessions.assign(lowering_s=np.nan)
    b = dataclasses.replace(a, cohort=dataclasses.replace(a.cohort, sessions=sessions))
    block = sections.checkpoint_fidelity(b)
    assert "no lowering time is logged in this cohort" in captions(block)[0]
    row = "Exercise quality: lowering under 3 s, % of logged stage 2-3 sessions, mean (SD)"
    assert tables(block)["checkpoint_fidelity"].loc[row, OVERALL_COL] == "– (–)"


def test_return_to_running_section(a):
    block = sections.return_to_running(a)
    table = tables(block)["return_to_running"]
    pm = a.participants
    returned = int(pm["at_risk_start_day"].notna().sum())
    early = int(pm["returned_before_criteria"].sum())
    # returned before the criteria: of those who returned (the denominator is shown)
    cell = table.loc["Returned before meeting the criteria, n (% of those returning)",
                     OVERALL_COL]  # fmt: skip
    assert cell == f"{early} ({100 * early / returned:.0f}%) of {returned}"
    runners = int(pm["first_run_day"].notna().sum())
    assert table.loc["Logged a run, n (%)", OVERALL_COL].startswith(f"{runners} (")
    # two figures: weekly volume and the distribution of the ACWR, with the caveat
    assert figures(block) == 2
    text = " ".join(captions(block))
    assert "not validated injury cut-offs (Impellizzeri et al. 2020; Lolli et al. 2019)" in text
    assert "the dashed line is the spike threshold" in text
    # the relapse rate ratio after spikes: exposed rate / unexposed rate, worked out from the
    # counts and person-weeks of the metric
    rr = tables(block)["relapse_acwr_ratio"].set_index("group").loc["Overall"]
    rates = tables(block)["relapse_acwr"].set_index("group").loc["Overall"]
    raw = a.relapse_acwr.set_index("group").loc["all"]
    ratio = (raw["exposed_relapses"] / raw["exposed_person_weeks"]) / (
        raw["unexposed_relapses"] / raw["unexposed_person_weeks"]
    )
    assert rr["rate ratio"] == f"{ratio:.2f}"
    assert rates["relapses after a spike"] == str(int(raw["exposed_relapses"]))
    assert " to " in rr["95% CI (exact)"]
    arms = sorted(_sizes(a))
    assert list(tables(block)["relapse_acwr"]["group"]) == [*arms, "Overall"]
    assert list(tables(block)["relapse_acwr_ratio"]["group"]) == [*arms, "Overall"]


def test_return_to_running_without_running_data_says_so(a):
    b = _without(a, running=True)
    block = sections.return_to_running(b)
    assert figures(block) == 0  # no empty figure
    assert "No run is recorded within follow-up (table running)" in " ".join(captions(block))
    table = tables(block)["return_to_running"]
    # the readiness rows stay: returns and function tests do not need a running log
    assert "Returned before meeting the criteria, n (% of those returning)" in table.index
    assert "Logged a run, n (%)" not in table.index
    assert "relapse_acwr" not in tables(block)


def test_return_to_running_without_any_return(a):
    b = _without(a, running=True, events=True)
    block = sections.return_to_running(b)
    assert figures(block) == 0 and tables(block) == {}
    assert captions(block) == [
        "No run (table running) and no return to running or sport (events) is recorded "
        "within follow-up in this cohort: the return to running is not reported."
    ]


def test_return_to_running_of_an_external_report_shows_no_small_count(external):
    block = sections.return_to_running(external)
    summary = block.frames["summary"]
    counts = list(summary["n"]) + list(summary["count"])
    shown = block.frames["relapse_acwr"]
    counts += list(shown["exposed_relapses"]) + list(shown["unexposed_relapses"])
    numbers = [v for v in counts if not isinstance(v, str) and v == v]
    assert not [v for v in numbers if 1 <= v <= 4]
    # the volume figure draws only weeks with at least 5 runners
    assert (block.frames["volume"]["runners"] >= 5).all()
    # 60 participants in three arms: the relapses after a spike of each arm are few, shown
    # as <5 in the rendered table
    assert "<5" in set(tables(block)["relapse_acwr"]["relapses after a spike"])
