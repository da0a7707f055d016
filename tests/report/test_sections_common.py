"""rehabstats.report.sections.common on a small simulated cohort, without rendering: the blocks
of the header, participant flow, adherence, pain, time to stage, relapse and the appendices."""

from __future__ import annotations

import dataclasses
import re

import pandas as pd
import pytest
from block_tables import captions, figures, notes, tables

from rehabstats.config import AnalysisConfig
from rehabstats.report import sections
from rehabstats.report.analysis import Analysis, prepare

N = 60


@pytest.fixture(scope="module")
def a() -> Analysis:
    """The cohort report's analysis by arm (three arms) of a 60-participant demo cohort."""
    return prepare("cohort_report", demo_participants=N)


@pytest.fixture(scope="module")
def ungrouped(a) -> Analysis:
    return dataclasses.replace(a, by=None)


def _people(a: Analysis) -> pd.DataFrame:
    """The participants enrolled by the cut-off, from the cohort's own table."""
    p = a.cohort.participants
    return p[p["enrolled_on"] <= a.cohort.data_cutoff]


# ---- header ------------------------------------------------------------------------------


def test_header_names_the_cohort_and_records_provenance(a):
    block = sections.header(a)
    text = block._repr_html_()
    assert "<h1>Cohort report</h1>" in text
    assert "Internal — contains identifiers, do not share" in text
    people = _people(a)
    sites, arms = people["site"].nunique(), people["arm"].nunique()
    assert f"<dd>{len(people)} · {sites} sites · {arms} arms</dd>" in text
    assert "<dd>Arm</dd>" in text  # compared by
    assert f"<dd>{a.cohort.data_cutoff.date()}</dd>" in text
    assert block.provenance["fingerprint"] == a.cohort.fingerprint()
    assert block.provenance["config"] == a.config.to_dict()
    assert block.provenance["parameters"]["group"] == "arm"
    # the data notes: what loading (here: simulating) the data found
    assert notes(block)["Data notes"] == [str(n) for n in a.data_notes]
    assert block.provenance["participants"] == len(people)


def test_header_of_an_external_report_withholds_dates_and_paths(a):
    external = dataclasses.replace(a, audience="external", key=b"k" * 16)
    text = sections.header(external)._repr_html_()
    enrolled = _people(a)["enrolled_on"]
    assert f"<dd>{enrolled.min():%Y-%m} to {enrolled.max():%Y-%m}</dd>" in text
    assert str(enrolled.min().date()) not in text  # by month only
    assert "small cells (&lt;5) suppressed" in text


# ---- participants ------------------------------------------------------------------------


def test_participant_flow_counts_every_enrolled_participant(a):
    block = sections.participant_flow(a)
    flow = tables(block)["flow"]
    people = _people(a)
    arms = sorted(people["arm"].unique())
    assert list(flow.columns) == ["Overall", *arms]
    assert flow.loc["Enrolled", "Overall"] == f"{len(people)} (100%)"
    for arm, n in people["arm"].value_counts().items():
        assert flow.loc["Enrolled", arm] == f"{n} (100%)"
    withdrawn = people["withdrawn_on"].notna() & (people["withdrawn_on"] <= a.cohort.data_cutoff)
    reasons = tables(block)["withdrawal_reasons"]
    # every withdrawal is in the reasons table once (reason and flow step as the row)
    assert reasons["Overall"].astype(int).sum() == withdrawn.sum()
    assert figures(block) == 1
    assert figures(sections.participant_flow(a, diagram=False)) == 0
    assert "follow-up reached day 83 (end of week 12)" in captions(block)[-1]


def test_participant_flow_window_follows_the_configuration(a):
    eight = dataclasses.replace(a, config=a.config.replace(window_weeks=8))
    caption = captions(sections.participant_flow(eight, diagram=False))[-1]
    assert "follow-up reached day 55 (end of week 8)" in caption  # 7 * 8 - 1


# ---- adherence and pain ------------------------------------------------------------------


def test_adherence_table_summarises_the_participants_by_arm(a):
    block = sections.adherence(a)
    table = tables(block)["adherence"]
    pm = a.participants
    assert list(table.columns)[0] == f"Overall (n = {len(pm)})"
    overall = pm["adherence_sessions"].dropna()
    # mean (SD) of session adherence, as percentages without decimals
    expected = f"{100 * overall.mean():.0f}% ({100 * overall.std():.0f}%)"
    assert table.loc["Session adherence, mean (SD)", f"Overall (n = {len(pm)})"] == expected
    adherent = int(pm["adherent"].fillna(False).astype(bool).sum())
    cell = table.loc["Adherent (≥ 80% of sessions), n (%)", f"Overall (n = {len(pm)})"]
    assert cell.startswith(f"{adherent} (")
    assert figures(block) == 1
    assert block.frames["summary"]["group"].iloc[0] == "all"  # the whole cohort first


def test_one_column_without_groups(ungrouped):
    table = tables(sections.adherence(ungrouped))["adherence"]
    assert list(table.columns) == [f"Overall (n = {len(ungrouped.participants)})"]


def test_pain_sections_show_the_configured_thresholds(a):
    limited = dataclasses.replace(a, config=a.config.replace(pain_limit=5, flare_delta=3))
    caption = captions(sections.pain_monitoring(limited))[0]
    assert "above 5/10" in caption and "that morning's + 3" in caption
    trajectories = sections.pain_trajectories(a)
    assert figures(trajectories) == 1
    with_diary = a.weekly.dropna(subset=["pain_morning_mean"])["participant_id"].nunique()
    assert f"per week for {with_diary} participants with diary data" in captions(trajectories)[0]


# ---- stages and relapse ------------------------------------------------------------------


def test_time_to_stage_rows_per_stage_and_group(a):
    block = sections.time_to_stage(a)
    table = tables(block)["time_to_stage"]
    arms = sorted(_people(a)["arm"].unique())
    assert list(table["stage"]) == [f"Stage {s}" for s in (2, 3, 4) for _ in arms]
    assert list(table["group"]) == arms * 3
    # n is the arm's size; entered cannot exceed it
    sizes = _people(a)["arm"].value_counts()
    assert (table["n"].astype(int) == table["group"].map(sizes)).all()
    assert (table["entered"].astype(int) <= table["n"].astype(int)).all()
    only4 = tables(sections.time_to_stage(a, stages=(4,)))["time_to_stage"]
    assert set(only4["stage"]) == {"Stage 4"}


def test_relapse_rates_add_up_to_the_overall_row(a):
    block = sections.relapse(a)
    rates = tables(block)["relapse_rates"]
    assert list(rates["group"])[-1] == "Overall"
    groups = rates[rates["group"] != "Overall"]
    overall = rates[rates["group"] == "Overall"].iloc[0]
    assert groups["at risk"].astype(int).sum() == int(overall["at risk"])
    assert groups["relapses"].astype(int).sum() == int(overall["relapses"])
    incidence = tables(block)["relapse_incidence"]
    assert list(incidence.columns) == [f"week {w}" for w in a.config.incidence_weeks]
    assert "rate ratio" in block._repr_html_()  # stopped early vs completers
    assert "rate ratio" not in sections.relapse(a, rate_ratio=False)._repr_html_()


def test_relapse_of_an_ungrouped_cohort_names_all_participants(ungrouped):
    block = sections.relapse(ungrouped)
    assert list(tables(block)["relapse_rates"]["group"]) == ["All participants"]
    assert list(tables(block)["relapse_incidence"].index) == ["All participants"]


# ---- appendices --------------------------------------------------------------------------


def test_definitions_carry_the_analysis_thresholds(a):
    five = dataclasses.replace(a, config=a.config.replace(pain_limit=5, window_weeks=10))
    text = sections.definitions(five)._repr_html_()
    assert "exercise &gt; 5/10" in text
    assert "Remodelling window: weeks 1-10 (days 0-69)." in text


def test_configuration_lists_every_metric_key_and_the_parameters(a):
    block = sections.configuration(a)
    config = tables(block)["configuration"]
    every = AnalysisConfig.keys()
    keys = [k for k in every if not k.startswith(("review_", "target_"))]
    assert list(config["key"]) == keys  # the clinic audit's keys are listed with its settings
    values = dict(zip(config["key"], config["value"], strict=True))
    assert values["pain_limit"] == "4" and values["data_cutoff"] == "not set"
    parameters = tables(block)["parameters"]
    assert list(parameters["parameter"]) == list(a.parameters)
    listed = notes(block)["Every data and model note of this report"]
    assert listed[: len(a.data_notes)] == [str(n) for n in a.data_notes]


def test_a_section_hides_participant_ids_from_an_external_report(a):
    external = dataclasses.replace(a, audience="external", key=b"k" * 16)
    pid = str(a.cohort.participants["participant_id"].iloc[0])

    @sections.section
    def mentions(analysis):
        return sections.Block(f"<p>about {pid}</p>", name="mentions")

    assert pid in mentions(a)._repr_html_()
    text = mentions(external)._repr_html_()
    assert pid not in text and re.search(r"about ID-[0-9a-f]{8}", text)
