"""rehabstats.report.analysis: prepare as each report declares it, tables computed once with
their notes, and the notes a section shows (whatever the order of the cells)."""

from __future__ import annotations

import dataclasses
import re
import warnings

import pandas as pd
import pytest

from rehabstats.config import AnalysisConfig
from rehabstats.constants import OVERALL
from rehabstats.errors import DataWarning, ParameterError
from rehabstats.report import sections
from rehabstats.report.analysis import Analysis, demo_cohort, prepare

N = 40  # participants of the simulated demo cohort


@pytest.fixture(scope="module")
def audit() -> Analysis:
    return prepare("clinic_audit", demo_participants=N)


@pytest.fixture(scope="module")
def cohort_report() -> Analysis:
    return prepare("cohort_report", demo_participants=N)


def _notes_boxes(block: sections.Block) -> dict[str, list[str]]:
    """Title -> items of each notes box of a block."""
    text = block._repr_html_()
    boxes = re.findall(r'<div class="rs-notes"><strong>(.*?)</strong><ul>(.*?)</ul>', text)
    return {title: re.findall(r"<li>(.*?)</li>", items) for title, items in boxes}


# ---- prepare: as the report's declaration says ----------------------------------------------


def test_the_clinic_audit_compares_sites_and_the_cohort_report_its_group(audit, cohort_report):
    assert audit.by == "site"
    assert cohort_report.by == "arm"  # the default of its group parameter
    assert prepare("cohort_report", demo_participants=N, group="sex").by == "sex"
    sites = set(audit.cohort.participants["site"].astype("str"))
    assert set(audit.groups) == sites and len(sites) > 1


def test_the_site_parameter_audits_one_site(audit):
    site = sorted(set(audit.cohort.participants["site"].astype("str")))[0]
    one = prepare("clinic_audit", demo_participants=N, site=site)
    assert set(one.cohort.participants["site"]) == {site}
    # the subset keeps the whole cohort's cut-off (an interim one for the demo audit)
    assert one.cohort.data_cutoff == audit.cohort.data_cutoff
    with pytest.raises(ParameterError, match=r"site 'nowhere' is not in the data; sites: "):
        prepare("clinic_audit", demo_participants=N, site="nowhere")


def test_the_demo_audit_is_analysed_at_an_interim_cut_off(audit, cohort_report):
    # 30 days before the last enrolment, so that participants are still in the programme
    last = demo_cohort(N).participants["enrolled_on"].max()
    assert audit.cohort.data_cutoff == (last - pd.Timedelta(days=30)).normalize()
    assert any("interim cut-off" in str(n) and "30 days" in str(n) for n in audit.data_notes)
    assert not any("interim" in str(n) for n in cohort_report.data_notes)
    dated = prepare("clinic_audit", demo_participants=N, data_cutoff="2025-01-31")
    assert dated.config.data_cutoff == "2025-01-31"  # a given cut-off wins over the interim one


def test_target_parameters_set_the_configuration(tmp_path):
    # the parameter defaults are the configuration's: nothing changes
    default = prepare("clinic_audit", demo_participants=N)
    assert default.config.target_adherence == AnalysisConfig().target_adherence == 0.8
    # a target parameter other than its default overrides the configuration
    set_ = prepare("clinic_audit", demo_participants=N, target_adherence=0.7)
    assert set_.config.target_adherence == 0.7
    # a configuration file's target is kept while the parameter is at its default ...
    config = tmp_path / "clinic.yaml"
    config.write_text("target_adherence: 0.9\ntarget_relapse_rate: 3\n")
    filed = prepare("clinic_audit", demo_participants=N, config_file=str(config))
    assert (filed.config.target_adherence, filed.config.target_relapse_rate) == (0.9, 3)
    # ... and a parameter given another value still wins
    both = prepare("clinic_audit", demo_participants=N, config_file=str(config),
                   target_relapse_rate=7.5)  # fmt: skip
    assert (both.config.target_adherence, both.config.target_relapse_rate) == (0.9, 7.5)


# ---- tables: computed once, shown as the audience may see them --------------------------------


def test_each_table_is_computed_once(monkeypatch, audit):
    from rehabstats.metrics import stages

    calls = []
    real = stages.time_to_stage

    def counted(*args, **kwargs):
        calls.append(kwargs.get("by"))
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "time_to_stage", counted)
    a = dataclasses.replace(audit)  # the same set-up, nothing computed yet
    assert a.km is a.km
    a.audit  # noqa: B018 - the audit reuses the stage curves by site, adds the overall ones
    a.audit  # noqa: B018
    assert calls == ["site", None]
    km = a.audit[a.audit["metric"] == "stage4_by_week12"]
    assert list(km["site"])[0] == OVERALL and len(km) == len(a.groups) + 1


def test_internal_tables_are_shown_as_computed_and_external_ones_disclosed(cohort_report):
    a = cohort_report
    assert a.relapse_rates_shown is a.relapse_rates
    assert a.km_summary_shown is a.km_summary
    external = dataclasses.replace(a, audience="external", key=b"k" * 16)
    shown = external.flow_shown
    numbers = pd.to_numeric(shown["n"], errors="coerce")
    small = numbers.between(1, 4)
    assert not small.any()  # a count from 1 to 4 is never shown outside the team
    markers = shown["n"][numbers.isna()]
    assert set(markers) <= {"<5", "*"} and len(markers) > 0  # 40 participants: small cells
    # the same cells as the internal table where nothing is withheld
    kept = numbers.notna()
    assert (numbers[kept] == a.flow["n"][kept]).all()


# ---- notes: a section shows the notes of what it uses ---------------------------------------


def _warning_stages(monkeypatch):
    """time_to_stage_summary warns (as a statistics library may): a note of that table."""
    from rehabstats.metrics import stages

    real = stages.time_to_stage_summary

    def noisy(*args, **kwargs):
        warnings.warn("a note of the stage summary", UserWarning, stacklevel=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "time_to_stage_summary", noisy)


@pytest.mark.parametrize("first", ["time_to_stage", "at_a_glance"])
def test_notes_stay_with_the_sections_that_use_the_table(monkeypatch, first):
    # both sections show the stage summary: both show its note, whichever cell runs first
    # (before, the note went to whichever section computed the table first)
    _warning_stages(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        a = sections.prepare("cohort_report", demo_participants=N)
    order = [first, *({"time_to_stage", "at_a_glance"} - {first})]
    blocks = {name: getattr(sections, name)(a) for name in order}
    for name in order:
        assert _notes_boxes(blocks[name]).get("Notes") == ["a note of the stage summary"], name
    adherence = sections.adherence(a)  # does not use the stage summary
    assert "Notes" not in _notes_boxes(adherence)
    appendix = _notes_boxes(sections.configuration(a))
    assert (
        appendix["Every data and model note of this report"].count("a note of the stage summary")
        == 1
    )


def test_data_notes_stay_in_the_header_whatever_runs_first():
    # the demo audit's interim cut-off leaves participants enrolled after it: a data note of
    # the participant timeline, which every table uses; only the header shows it
    a = sections.prepare("clinic_audit", demo_participants=N)
    flow = sections.participant_flow(a, diagram=False)  # before the header
    header = sections.header(a)
    late = [n for n in _notes_boxes(header)["Data notes"] if "enrolled after the data" in n]
    assert len(late) == 1
    assert "Notes" not in _notes_boxes(flow)
    assert header.provenance["participants"] == len(a.timeline)
