"""AnalysisConfig: every threshold of the metric definitions in one object.

Defaults come from ``data_schema/analysis_defaults.yaml`` (the single source of truth); a YAML
file or keyword arguments override them; unknown keys and out-of-range values are errors.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from rehabstats.constants import analysis_defaults, data_schema_dir
from rehabstats.data.schema import table_spec
from rehabstats.errors import ConfigError, YamlFileError

__all__ = ["RELAPSE_RULES", "AnalysisConfig", "read_yaml"]

RELAPSE_RULES: tuple[str, ...] = ("recorded", "pain", "regression")
KM_CI_TRANSFORMS: tuple[str, ...] = ("log", "log-log")


def _default(key: str) -> Any:
    value = analysis_defaults()[key]
    return tuple(value) if isinstance(value, list) else value


def _field(key: str) -> Any:
    return field(default=_default(key))


@dataclass(frozen=True)
class AnalysisConfig:
    """Every analysis threshold of the metric definitions (``docs/metrics.md``).

    Build with ``AnalysisConfig()`` (the defaults), ``AnalysisConfig(pain_limit=5)``,
    :meth:`from_yaml` or :meth:`preset`. Frozen: derive variants with :meth:`replace`.
    Each attribute is documented in ``data_schema/analysis_defaults.yaml``.
    """

    data_cutoff: str | None = _field("data_cutoff")
    window_weeks: int = _field("window_weeks")
    adherent_threshold: float = _field("adherent_threshold")
    stagnation_weeks: int = _field("stagnation_weeks")
    pain_limit: float = _field("pain_limit")
    settle_tolerance: float = _field("settle_tolerance")
    flare_delta: float = _field("flare_delta")
    rising_min_records: int = _field("rising_min_records")
    visa_a_mcid: float = _field("visa_a_mcid")
    baseline_window_days: tuple[int, int] = _field("baseline_window_days")
    visit_window_days: int = _field("visit_window_days")
    visit_weeks: tuple[int, ...] = _field("visit_weeks")
    checkpoint_load_ratio: float = _field("checkpoint_load_ratio")
    checkpoint_hold_s: float = _field("checkpoint_hold_s")
    checkpoint_pain_max: float = _field("checkpoint_pain_max")
    stopped_early_day: int = _field("stopped_early_day")
    stopped_early_min_follow_up_days: int = _field("stopped_early_min_follow_up_days")
    relapse_rules: tuple[str, ...] = _field("relapse_rules")
    relapse_days: int = _field("relapse_days")
    relapse_regression_stage: int = _field("relapse_regression_stage")
    incidence_weeks: tuple[int, ...] = _field("incidence_weeks")
    min_lowering_s: float = _field("min_lowering_s")
    rest_day_stages: tuple[int, ...] = _field("rest_day_stages")
    acwr_acute_days: int = _field("acwr_acute_days")
    acwr_chronic_days: int = _field("acwr_chronic_days")
    acwr_spike: float = _field("acwr_spike")
    weekly_increase_max: float = _field("weekly_increase_max")
    spike_window_days: int = _field("spike_window_days")
    rts_tests: tuple[str, ...] = _field("rts_tests")
    rts_lsi_min: float = _field("rts_lsi_min")
    confidence_level: float = _field("confidence_level")
    km_ci_transform: str = _field("km_ci_transform")
    review_recent_days: int = _field("review_recent_days")
    review_pain_rise_points: float = _field("review_pain_rise_points")
    review_pain_min_records: int = _field("review_pain_min_records")
    review_flare_days: int = _field("review_flare_days")
    review_adherence_min_scheduled: int = _field("review_adherence_min_scheduled")
    review_stuck_weeks: tuple[int, int, int] = _field("review_stuck_weeks")
    review_horizon_weeks: int = _field("review_horizon_weeks")
    target_adherence: float = _field("target_adherence")
    target_stage4_by_week12: float = _field("target_stage4_by_week12")
    target_responders: float = _field("target_responders")
    target_checkpoint_fidelity: float = _field("target_checkpoint_fidelity")
    target_relapse_rate: float = _field("target_relapse_rate")
    preset_name: str | None = None

    def __post_init__(self) -> None:
        # YAML reads an unquoted 2025-06-30 as a date and sequences as lists: normalise both
        if self.data_cutoff is not None and hasattr(self.data_cutoff, "isoformat"):
            object.__setattr__(self, "data_cutoff", self.data_cutoff.isoformat()[:10])
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        problems = _check(self)
        if problems:
            raise _config_error(problems)

    # ---- construction -----------------------------------------------------------------------

    @classmethod
    def keys(cls) -> list[str]:
        """Names of every configurable key."""
        return [f.name for f in fields(cls) if f.name != "preset_name"]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AnalysisConfig:
        """Defaults overridden by ``values``; a ``preset`` key applies a named preset first."""
        values = dict(values)
        preset = values.pop("preset", None)
        known = set(cls.keys())
        problems = [(key, _unknown(key)) for key in values if key not in known]
        if preset is not None and (not isinstance(preset, str) or preset not in cls.presets()):
            problems.append(
                ("preset", f"unknown preset {preset!r}; available: {', '.join(cls.presets())}")
            )
        if problems:  # and the known keys' values, to report every problem at once
            try:
                cls().replace(**{k: v for k, v in values.items() if k in known})
            except ConfigError as exc:
                problems += getattr(exc, "problems", [])
            raise _config_error(problems)
        base = cls.preset(preset) if preset else cls()
        return base.replace(**values)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> AnalysisConfig:
        """Load overrides from a YAML file (a mapping of keys to values).

        Raises
        ------
        ConfigError
            Naming the file, and for each problem the line, the key and what its value must be
            (unreadable file, YAML syntax error, not a mapping, a key given twice, unknown key,
            bad value), every problem at once.
        """
        path = Path(path)
        try:
            values, text = read_yaml(path)
        except YamlFileError as exc:
            where = f", line {exc.line}, column {exc.column}" if exc.line is not None else ""
            raise ConfigError(f"{path}{where}: {exc.problem}") from None
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"{path}: must be a mapping of configuration keys to values (one 'key: value' "
                f"per line, e.g. 'pain_limit: 5'), not a {_yaml_kind(values)}"
            )
        lines = {
            str(key.value): key.start_mark.line + 1
            for key, _ in getattr(yaml.compose(text, Loader=yaml.SafeLoader), "value", [])
            if isinstance(key, yaml.ScalarNode)
        }
        try:
            return cls.from_dict(values)
        except ConfigError as exc:
            problems = getattr(exc, "problems", None)
            if not problems:
                raise ConfigError(f"{path}: {exc}") from None
            problems = sorted(problems, key=lambda p: lines.get(str(p[0]), 0))
            raise _config_error(
                [
                    (key, f"line {lines[str(key)]}: {text}" if str(key) in lines else text)
                    for key, text in problems
                ],
                source=path,
            ) from None

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """Named presets from the defaults file."""
        return dict(analysis_defaults().get("presets", {}))

    @classmethod
    def preset(cls, name: str) -> AnalysisConfig:
        """A named preset, e.g. ``silbernagel2007`` (pain limit 5)."""
        presets = cls.presets()
        if not isinstance(name, str) or name not in presets:
            raise _config_error(
                [("preset", f"unknown preset {name!r}; available: {', '.join(presets)}")]
            )
        return cls().replace(**presets[name], preset_name=name)

    def replace(self, **changes: Any) -> AnalysisConfig:
        """A copy with some keys changed (validated)."""
        unknown = [key for key in changes if key not in {f.name for f in fields(self)}]
        if unknown:
            raise _config_error([(key, _unknown(key)) for key in unknown])
        return dataclasses.replace(self, **changes)

    # ---- output -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every key and value (lists for sequences), as printed in reports."""
        out = {k: getattr(self, k) for k in self.keys()}
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
        if self.preset_name:
            out["preset"] = self.preset_name
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_frame(self) -> pd.DataFrame:
        """Key, value and description of every setting (for report appendices)."""
        notes = _descriptions()
        rows = [
            {"key": k, "value": v, "description": notes.get(k, "")}
            for k, v in self.to_dict().items()
        ]
        return pd.DataFrame(rows, columns=["key", "value", "description"])

    @property
    def window_end_day(self) -> int:
        """Last day of the remodelling window: ``7 · window_weeks − 1`` (day 83 for 12 weeks)."""
        return 7 * self.window_weeks - 1

    @property
    def cutoff(self) -> pd.Timestamp | None:
        """``data_cutoff`` as a Timestamp (None = the cohort's latest date)."""
        return None if self.data_cutoff is None else pd.Timestamp(self.data_cutoff)


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML loader for the files a user writes: a key given twice is an error (PyYAML keeps
    the last), and a date stays the text written (``data_cutoff: 2024-1-1`` or ``2024-13-01``
    is then refused by the key's rule instead of being read as a date or crashing)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: PyYAML says so below
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} given twice (first on line {first + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)


def read_yaml(path: str | os.PathLike) -> tuple[Any, str]:
    """The document of a YAML file a user wrote (an analysis configuration, a batch job file),
    and the file's text.

    Read as UTF-8 (a byte-order mark is ignored) with a safe loader that refuses a key given
    twice and keeps dates as the text written.

    Raises
    ------
    YamlFileError
        The file cannot be read, is not UTF-8, or is not valid YAML (with the line and column).
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlFileError(
            f"not a UTF-8 text file (byte {exc.start + 1}); save it as UTF-8 YAML"
        ) from None
    except OSError as exc:
        raise YamlFileError(f"cannot be read: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader), text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlFileError(
            f"not valid YAML: {problem}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None


def _yaml_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    return "text" if isinstance(value, str) else type(value).__name__


def _unknown(key: Any) -> str:
    close = difflib.get_close_matches(str(key), AnalysisConfig.keys(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown analysis configuration key {key!r}{hint}"


def _config_error(
    problems: list[tuple[str, str]], *, source: str | os.PathLike | None = None
) -> ConfigError:
    """A ConfigError listing every problem; ``problems`` keeps (key, text) for callers."""
    where = f"{source}: " if source is not None else ""
    text = "\n  ".join(message for _, message in problems)
    if any("unknown analysis configuration key" in message for _, message in problems):
        text += f"\n  Valid keys: {', '.join(AnalysisConfig.keys())}, preset"
    error = ConfigError(
        f"{where}invalid analysis configuration:\n  {text}"
        "\nSee data_schema/analysis_defaults.yaml for every key and its meaning."
    )
    error.problems = problems
    return error


def _descriptions() -> dict[str, str]:
    """The comment after each key in analysis_defaults.yaml."""
    out = {}
    for line in (data_schema_dir() / "analysis_defaults.yaml").read_text().splitlines():
        if line and not line.startswith((" ", "#")) and ":" in line and "#" in line:
            key = line.split(":", 1)[0].strip()
            out[key] = line.split("#", 1)[1].strip()
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(c: AnalysisConfig) -> list[tuple[str, str]]:
    """Every out-of-range value, each as (key, 'key = value: rule')."""
    problems: list[tuple[str, str]] = []

    def need(ok: bool, key: str, rule: str) -> None:
        if not ok:
            problems.append((key, f"{key} = {getattr(c, key)!r}: {rule}"))

    if c.data_cutoff is not None:
        try:
            ok = date.fromisoformat(str(c.data_cutoff)).isoformat() == str(c.data_cutoff)
        except ValueError:
            ok = False
        need(ok, "data_cutoff", "must be an ISO date YYYY-MM-DD or null")
    need(
        _is_int(c.window_weeks) and 1 <= c.window_weeks <= 104,
        "window_weeks",
        "must be a whole number of weeks from 1 to 104",
    )
    need(
        _is_number(c.adherent_threshold) and 0 <= c.adherent_threshold <= 1,
        "adherent_threshold",
        "must be a proportion from 0 to 1",
    )
    need(
        _is_int(c.stagnation_weeks) and c.stagnation_weeks >= 1,
        "stagnation_weeks",
        "must be a whole number >= 1",
    )
    for key in ("pain_limit", "checkpoint_pain_max"):
        need(
            _is_number(getattr(c, key)) and 0 <= getattr(c, key) <= 10,
            key,
            "must be an NRS value from 0 to 10",
        )
    need(
        _is_number(c.settle_tolerance) and 0 <= c.settle_tolerance <= 10,
        "settle_tolerance",
        "must be from 0 to 10 NRS points",
    )
    need(
        _is_number(c.flare_delta) and 0 < c.flare_delta <= 10,
        "flare_delta",
        "must be more than 0 and at most 10 NRS points",
    )
    need(
        _is_int(c.rising_min_records) and 1 <= c.rising_min_records <= 7,
        "rising_min_records",
        "must be a whole number of days from 1 to 7",
    )
    need(
        _is_number(c.visa_a_mcid) and 0 < c.visa_a_mcid <= 100,
        "visa_a_mcid",
        "must be more than 0 and at most 100 points",
    )
    bw = c.baseline_window_days
    need(
        isinstance(bw, tuple)
        and len(bw) == 2
        and all(_is_int(v) for v in bw)
        and bw[0] <= 0 <= bw[1],
        "baseline_window_days",
        "must be two whole numbers [before, after] with before <= 0 <= after",
    )
    need(
        _is_int(c.visit_window_days) and 0 <= c.visit_window_days <= 60,
        "visit_window_days",
        "must be a whole number of days from 0 to 60",
    )
    need(
        isinstance(c.visit_weeks, tuple)
        and len(c.visit_weeks) > 0
        and all(_is_int(w) and w > 0 for w in c.visit_weeks),
        "visit_weeks",
        "must be a list of positive whole weeks",
    )
    need(
        _is_number(c.checkpoint_load_ratio) and c.checkpoint_load_ratio >= 1,
        "checkpoint_load_ratio",
        "must be a ratio >= 1",
    )
    need(
        _is_number(c.checkpoint_hold_s) and c.checkpoint_hold_s > 0,
        "checkpoint_hold_s",
        "must be a positive number of seconds",
    )
    need(
        _is_int(c.stopped_early_day) and c.stopped_early_day >= 0,
        "stopped_early_day",
        "must be a whole day >= 0",
    )
    need(
        _is_int(c.stopped_early_min_follow_up_days) and c.stopped_early_min_follow_up_days >= 0,
        "stopped_early_min_follow_up_days",
        "must be a whole number of days >= 0",
    )
    need(
        isinstance(c.relapse_rules, tuple)
        and len(c.relapse_rules) > 0
        and all(isinstance(rule, str) for rule in c.relapse_rules)
        and set(c.relapse_rules) <= set(RELAPSE_RULES)
        and len(set(c.relapse_rules)) == len(c.relapse_rules),
        "relapse_rules",
        f"must be a non-empty list of distinct rules from {list(RELAPSE_RULES)}",
    )
    need(
        _is_int(c.relapse_days) and c.relapse_days >= 1,
        "relapse_days",
        "must be a whole number of days >= 1",
    )
    need(
        _is_int(c.relapse_regression_stage) and 1 <= c.relapse_regression_stage <= 3,
        "relapse_regression_stage",
        "must be a stage from 1 to 3",
    )
    need(
        isinstance(c.incidence_weeks, tuple)
        and len(c.incidence_weeks) > 0
        and all(_is_int(w) and w > 0 for w in c.incidence_weeks),
        "incidence_weeks",
        "must be a list of positive whole weeks",
    )
    need(
        _is_number(c.min_lowering_s) and 0 <= c.min_lowering_s <= 60,
        "min_lowering_s",
        "must be a number of seconds from 0 to 60 (the range of sessions.lowering_s)",
    )
    need(
        isinstance(c.rest_day_stages, tuple)
        and len(c.rest_day_stages) > 0
        and all(_is_int(s) and 1 <= s <= 4 for s in c.rest_day_stages)
        and len(set(c.rest_day_stages)) == len(c.rest_day_stages),
        "rest_day_stages",
        "must be a non-empty list of distinct stages from 1 to 4",
    )
    need(
        _is_int(c.acwr_acute_days) and c.acwr_acute_days >= 1,
        "acwr_acute_days",
        "must be a whole number of days >= 1",
    )
    need(
        _is_int(c.acwr_chronic_days)
        and _is_int(c.acwr_acute_days)
        and c.acwr_acute_days < c.acwr_chronic_days <= 365,
        "acwr_chronic_days",
        "must be a whole number of days more than acwr_acute_days and at most 365",
    )
    need(
        _is_number(c.acwr_spike) and c.acwr_spike > 0,
        "acwr_spike",
        "must be a positive ratio",
    )
    need(
        _is_number(c.weekly_increase_max) and c.weekly_increase_max >= 0,
        "weekly_increase_max",
        "must be a proportion >= 0 (0.30 = 30%)",
    )
    need(
        _is_int(c.spike_window_days) and c.spike_window_days >= 1,
        "spike_window_days",
        "must be a whole number of days >= 1",
    )
    tests = table_spec("function_tests").fields
    allowed = next(f.enum for f in tests if f.name == "test") or ()
    need(
        isinstance(c.rts_tests, tuple)
        and len(c.rts_tests) > 0
        and all(t in allowed for t in c.rts_tests)
        and len(set(c.rts_tests)) == len(c.rts_tests),
        "rts_tests",
        f"must be a non-empty list of distinct function tests from {list(allowed)}",
    )
    need(
        _is_number(c.rts_lsi_min) and 0 < c.rts_lsi_min <= 200,
        "rts_lsi_min",
        "must be a limb symmetry index in percent, more than 0 and at most 200",
    )
    need(
        _is_number(c.confidence_level) and 0 < c.confidence_level < 1,
        "confidence_level",
        "must be strictly between 0 and 1",
    )
    need(
        c.km_ci_transform in KM_CI_TRANSFORMS,
        "km_ci_transform",
        f"must be one of {list(KM_CI_TRANSFORMS)}",
    )
    for key in ("review_recent_days", "review_flare_days", "review_adherence_min_scheduled"):
        need(_is_int(getattr(c, key)) and getattr(c, key) >= 1, key, "must be a whole number >= 1")
    need(
        _is_number(c.review_pain_rise_points) and 0 < c.review_pain_rise_points <= 10,
        "review_pain_rise_points",
        "must be more than 0 and at most 10 NRS points",
    )
    need(
        _is_int(c.review_pain_min_records) and 1 <= c.review_pain_min_records <= 7,
        "review_pain_min_records",
        "must be a whole number of days from 1 to 7",
    )
    sw = c.review_stuck_weeks
    need(
        isinstance(sw, tuple) and len(sw) == 3 and all(_is_int(w) and w >= 1 for w in sw),
        "review_stuck_weeks",
        "must be three whole numbers of weeks >= 1 (stages 1, 2 and 3)",
    )
    need(
        _is_int(c.review_horizon_weeks) and 1 <= c.review_horizon_weeks <= 103,
        "review_horizon_weeks",
        "must be a whole number of weeks from 1 to 103",
    )
    for key in (
        "target_adherence",
        "target_stage4_by_week12",
        "target_responders",
        "target_checkpoint_fidelity",
    ):
        need(
            _is_number(getattr(c, key)) and 0 <= getattr(c, key) <= 1,
            key,
            "must be a proportion from 0 to 1",
        )
    need(
        _is_number(c.target_relapse_rate) and c.target_relapse_rate >= 0,
        "target_relapse_rate",
        "must be a rate >= 0 (relapses per 1000 person-weeks)",
    )
    return problems
