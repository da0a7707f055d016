"""rehabstats.report.specs: one declaration per report, read by the command line, rendering,
batch runs and the analysis set-up."""

from __future__ import annotations

import click
import pytest

from rehabstats.cli import cli
from rehabstats.config import AnalysisConfig
from rehabstats.constants import GROUPABLE
from rehabstats.errors import ParameterError
from rehabstats.report import REPORTS, report_names, report_spec, validate_parameters


def test_the_command_line_offers_the_registered_reports():
    option = next(p for p in cli.commands["report"].params if p.name == "notebook")
    assert isinstance(option.type, click.Choice)
    assert list(option.type.choices) == report_names() == list(REPORTS)
    epilog = cli.commands["report"].epilog
    for name, spec in REPORTS.items():
        assert f"{name}: {spec.description}" in epilog


def test_each_report_declares_how_it_groups():
    cohort, audit = REPORTS["cohort_report"], REPORTS["clinic_audit"]
    assert cohort.grouping(validate_parameters("cohort_report", {"group": "sex"})) == "sex"
    assert cohort.parameter("group").choices == GROUPABLE
    assert audit.grouping(validate_parameters("clinic_audit")) == "site"
    assert (audit.subset_parameter, cohort.subset_parameter) == ("site", None)
    assert (audit.demo_interim_days, cohort.demo_interim_days) == (30, None)


def test_target_parameters_default_to_the_configuration():
    # one home for each target: analysis_defaults.yaml; the parameter takes its default there
    audit = REPORTS["clinic_audit"]
    targets = [p for p in audit.parameters if p.config_key is not None]
    keys = AnalysisConfig.keys()
    assert [p.name for p in targets] == [k for k in keys if k.startswith("target_")]
    for p in targets:
        assert p.default == getattr(AnalysisConfig(), p.config_key), p.name
    # only a value other than the default sets the configuration key
    params = validate_parameters("clinic_audit", {"target_adherence": "0.7"})
    assert audit.config_changes(params) == {"target_adherence": 0.7}
    assert audit.config_changes(validate_parameters("clinic_audit")) == {}


def test_an_unknown_report_names_the_available_ones():
    with pytest.raises(ParameterError, match=r"unknown report 'clinic_audt' \(did you mean "):
        report_spec("clinic_audt")
