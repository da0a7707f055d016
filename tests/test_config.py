"""AnalysisConfig: defaults from data_schema/, YAML overrides, presets and validation."""

from __future__ import annotations

import datetime

import pytest
import yaml

from rehabstats import AnalysisConfig, ConfigError
from rehabstats.constants import data_schema_dir


def test_defaults_come_from_the_schema_folder():
    """Every key of analysis_defaults.yaml is a config key with the same value, and vice versa."""
    defaults = yaml.safe_load((data_schema_dir() / "analysis_defaults.yaml").read_text())
    defaults.pop("presets")
    config = AnalysisConfig().to_dict()
    assert set(config) == set(defaults)
    for key, value in defaults.items():
        assert config[key] == value, key


def test_metrics_md_defaults():
    """The defaults METRICS.md names, written out here independently of the YAML file."""
    c = AnalysisConfig()
    assert (c.pain_limit, c.settle_tolerance, c.flare_delta) == (4, 0, 2)
    assert (c.adherent_threshold, c.stagnation_weeks, c.window_weeks) == (0.80, 4, 12)
    assert (c.visa_a_mcid, c.baseline_window_days, c.visit_window_days) == (14, (-14, 7), 14)
    assert c.visit_weeks == (6, 12, 26, 52)
    assert (c.checkpoint_load_ratio, c.checkpoint_hold_s, c.checkpoint_pain_max) == (1.5, 30, 2)
    assert (c.relapse_days, c.relapse_rules) == (3, ("recorded", "pain", "regression"))
    assert c.incidence_weeks == (4, 8, 12, 26)
    assert c.data_cutoff is None
    # §10-§11
    assert (c.min_lowering_s, c.rest_day_stages) == (3, (3, 4))
    assert (c.acwr_acute_days, c.acwr_chronic_days, c.acwr_spike) == (7, 28, 1.5)
    assert (c.weekly_increase_max, c.spike_window_days) == (0.30, 28)
    assert (c.rts_tests, c.rts_lsi_min) == (("heel_raise_endurance", "single_hop"), 90)


def test_preset_silbernagel2007_sets_pain_limit_5():
    c = AnalysisConfig.preset("silbernagel2007")
    assert c.pain_limit == 5
    assert c.to_dict()["preset"] == "silbernagel2007"
    with pytest.raises(ConfigError, match="unknown preset"):
        AnalysisConfig.preset("nope")


def test_yaml_overrides_and_preset_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: silbernagel2007\nflare_delta: 3\ndata_cutoff: 2025-06-30\n")
    c = AnalysisConfig.from_yaml(path)
    assert (c.pain_limit, c.flare_delta, c.data_cutoff) == (5, 3, "2025-06-30")
    assert AnalysisConfig(data_cutoff=datetime.date(2025, 1, 2)).data_cutoff == "2025-01-02"


def test_unknown_keys_are_errors_listing_valid_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pain_limt: 5\n")
    with pytest.raises(
        ConfigError,
        match="(?s)unknown analysis configuration key 'pain_limt'.*Valid keys: .*pain_limit",
    ):
        AnalysisConfig.from_yaml(path)
    with pytest.raises(ConfigError):
        AnalysisConfig().replace(nonsense=1)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("pain_limit", 11),
        ("pain_limit", -1),
        ("adherent_threshold", 1.5),
        ("flare_delta", 0),
        ("window_weeks", 0),
        ("window_weeks", 2.5),
        ("visa_a_mcid", -3),
        ("baseline_window_days", (3, 7)),
        ("relapse_rules", ("recorded", "gut_feeling")),
        ("relapse_rules", ()),
        ("confidence_level", 1.0),
        ("km_ci_transform", "plain"),
        ("data_cutoff", "30/06/2025"),
        ("rising_min_records", True),
        ("min_lowering_s", -1),
        ("min_lowering_s", 61),
        ("rest_day_stages", ()),
        ("rest_day_stages", (3, 5)),
        ("rest_day_stages", (3, 3)),
        ("acwr_acute_days", 0),
        ("acwr_chronic_days", 7),  # not longer than the acute span (7)
        ("acwr_chronic_days", 28.5),
        ("acwr_spike", 0),
        ("acwr_spike", "1.5"),
        ("weekly_increase_max", -0.1),
        ("spike_window_days", 0),
        ("rts_tests", ()),
        ("rts_tests", ("heel_raise_endurance", "squat")),
        ("rts_tests", ("single_hop", "single_hop")),
        ("rts_lsi_min", 0),
        ("rts_lsi_min", 250),
    ],
)
def test_out_of_range_values_are_errors(key, value):
    with pytest.raises(ConfigError, match=f"{key} = "):
        AnalysisConfig().replace(**{key: value})


def test_all_problems_at_once():
    with pytest.raises(ConfigError) as info:
        AnalysisConfig(pain_limit=12, flare_delta=-1)
    assert "pain_limit" in str(info.value) and "flare_delta" in str(info.value)


def test_to_frame_describes_every_key():
    frame = AnalysisConfig().to_frame()
    assert list(frame.columns) == ["key", "value", "description"]
    assert set(frame["key"]) == set(AnalysisConfig.keys())
    assert frame.set_index("key").loc["pain_limit", "description"].startswith("NRS above")
