"""AnalysisConfig: every threshold of the metric definitions in one object.

Defaults come from ``data_schema/analysis_defaults.yaml`` (the single source of truth); a YAML
file or keyword arguments override them; unknown keys and out-of-range values are errors.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from collections.abc import Callable, Mapping
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


def _defaults_from_file(cls: type) -> type:
    """Give each key declared without a value its default from ``analysis_defaults.yaml``."""
    for key in cls.__annotations__:
        if key not in vars(cls):
            setattr(cls, key, field(default=_default(key)))
    return cls


@dataclass(frozen=True)
@_defaults_from_file
class AnalysisConfig:
    """Every analysis threshold of the metric definitions (``docs/metrics.md``).

    Build with ``AnalysisConfig()`` (the defaults), ``AnalysisConfig(pain_limit=5)``,
    :meth:`from_yaml` or :meth:`preset`. Frozen: derive variants with :meth:`replace`.
    Each attribute is documented in ``data_schema/analysis_defaults.yaml``, and takes its
    default from there (the keys below are declared with their types only).
    """

    data_cutoff: str | None
    window_weeks: int
    adherent_threshold: float
    stagnation_weeks: int
    pain_limit: float
    settle_tolerance: float
    flare_delta: float
    rising_min_records: int
    visa_a_mcid: float
    baseline_window_days: tuple[int, int]
    visit_window_days: int
    visit_weeks: tuple[int, ...]
    checkpoint_load_ratio: float
    checkpoint_hold_s: float
    checkpoint_pain_max: float
    stopped_early_day: int
    stopped_early_min_follow_up_days: int
    relapse_rules: tuple[str, ...]
    relapse_days: int
    relapse_regression_stage: int
    incidence_weeks: tuple[int, ...]
    min_lowering_s: float
    rest_day_stages: tuple[int, ...]
    acwr_acute_days: int
    acwr_chronic_days: int
    acwr_spike: float
    weekly_increase_max: float
    spike_window_days: int
    rts_tests: tuple[str, ...]
    rts_lsi_min: float
    confidence_level: float
    km_ci_transform: str
    review_recent_days: int
    review_pain_rise_points: float
    review_pain_min_records: int
    review_flare_days: int
    review_adherence_min_scheduled: int
    review_stuck_weeks: tuple[int, int, int]
    review_horizon_weeks: int
    review_acwr_days: int
    review_tempo_min_sessions: int
    review_fast_tempo_rate: float
    target_adherence: float
    target_stage4_by_week12: float
    target_responders: float
    target_checkpoint_fidelity: float
    target_relapse_rate: float
    target_rts_readiness: float
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


# A check takes the key's value and the whole configuration (one rule compares two keys).
_Check = Callable[[Any, "AnalysisConfig"], bool]


def _in_range(
    *,
    whole: bool = False,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
) -> _Check:
    """A number (a whole number with ``whole``) within the bounds given (>=, <=, >, <)."""

    def check(value: Any, _: AnalysisConfig) -> bool:
        return (
            (_is_int(value) if whole else _is_number(value))
            and (ge is None or value >= ge)
            and (le is None or value <= le)
            and (gt is None or value > gt)
            and (lt is None or value < lt)
        )

    return check


def _items(
    item: Callable[[Any], bool], *, length: int | None = None, distinct: bool = False
) -> _Check:
    """A list (a tuple once normalised) of ``length`` items, or at least one, each passing
    ``item``; with ``distinct``, none given twice."""

    def check(value: Any, _: AnalysisConfig) -> bool:
        return (
            isinstance(value, tuple)
            and (len(value) == length if length is not None else len(value) > 0)
            and all(item(v) for v in value)
            and (not distinct or len(set(value)) == len(value))
        )

    return check


def _iso_date_or_none(value: Any, _: AnalysisConfig) -> bool:
    if value is None:
        return True
    try:
        return date.fromisoformat(str(value)).isoformat() == str(value)
    except ValueError:
        return False


def _baseline_window(value: Any, _: AnalysisConfig) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(_is_int(v) for v in value)
        and value[0] <= 0 <= value[1]
    )


def _longer_than_acute(value: Any, c: AnalysisConfig) -> bool:
    return _is_int(value) and _is_int(c.acwr_acute_days) and c.acwr_acute_days < value <= 365


def _positive_whole(value: Any) -> bool:
    return _is_int(value) and value > 0


_PROPORTION = (_in_range(ge=0, le=1), "must be a proportion from 0 to 1")
_NRS_VALUE = (_in_range(ge=0, le=10), "must be an NRS value from 0 to 10")
_NRS_RISE = (_in_range(gt=0, le=10), "must be more than 0 and at most 10 NRS points")
_WHOLE_DAYS_1 = (_in_range(whole=True, ge=1), "must be a whole number of days >= 1")
_DAYS_1_TO_7 = (_in_range(whole=True, ge=1, le=7), "must be a whole number of days from 1 to 7")
_WEEKS = (_items(_positive_whole), "must be a list of positive whole weeks")


@functools.cache
def _rules() -> dict[str, tuple[_Check, str]]:
    """Every key's rule: key -> (check, what the value must be), in the order problems are
    listed."""
    tests = table_spec("function_tests").fields
    allowed = next(f.enum for f in tests if f.name == "test") or ()
    return {
        "data_cutoff": (_iso_date_or_none, "must be an ISO date YYYY-MM-DD or null"),
        "window_weeks": (
            _in_range(whole=True, ge=1, le=104),
            "must be a whole number of weeks from 1 to 104",
        ),
        "adherent_threshold": _PROPORTION,
        "stagnation_weeks": (_in_range(whole=True, ge=1), "must be a whole number >= 1"),
        "pain_limit": _NRS_VALUE,
        "checkpoint_pain_max": _NRS_VALUE,
        "settle_tolerance": (_in_range(ge=0, le=10), "must be from 0 to 10 NRS points"),
        "flare_delta": _NRS_RISE,
        "rising_min_records": _DAYS_1_TO_7,
        "visa_a_mcid": (_in_range(gt=0, le=100), "must be more than 0 and at most 100 points"),
        "baseline_window_days": (
            _baseline_window,
            "must be two whole numbers [before, after] with before <= 0 <= after",
        ),
        "visit_window_days": (
            _in_range(whole=True, ge=0, le=60),
            "must be a whole number of days from 0 to 60",
        ),
        "visit_weeks": _WEEKS,
        "checkpoint_load_ratio": (_in_range(ge=1), "must be a ratio >= 1"),
        "checkpoint_hold_s": (_in_range(gt=0), "must be a positive number of seconds"),
        "stopped_early_day": (_in_range(whole=True, ge=0), "must be a whole day >= 0"),
        "stopped_early_min_follow_up_days": (
            _in_range(whole=True, ge=0),
            "must be a whole number of days >= 0",
        ),
        "relapse_rules": (
            _items(lambda r: isinstance(r, str) and r in RELAPSE_RULES, distinct=True),
            f"must be a non-empty list of distinct rules from {list(RELAPSE_RULES)}",
        ),
        "relapse_days": _WHOLE_DAYS_1,
        "relapse_regression_stage": (
            _in_range(whole=True, ge=1, le=3),
            "must be a stage from 1 to 3",
        ),
        "incidence_weeks": _WEEKS,
        "min_lowering_s": (
            _in_range(ge=0, le=60),
            "must be a number of seconds from 0 to 60 (the range of sessions.lowering_s)",
        ),
        "rest_day_stages": (
            _items(lambda s: _is_int(s) and 1 <= s <= 4, distinct=True),
            "must be a non-empty list of distinct stages from 1 to 4",
        ),
        "acwr_acute_days": _WHOLE_DAYS_1,
        "acwr_chronic_days": (
            _longer_than_acute,
            "must be a whole number of days more than acwr_acute_days and at most 365",
        ),
        "acwr_spike": (_in_range(gt=0), "must be a positive ratio"),
        "weekly_increase_max": (_in_range(ge=0), "must be a proportion >= 0 (0.30 = 30%)"),
        "spike_window_days": _WHOLE_DAYS_1,
        "rts_tests": (
            _items(lambda t: t in allowed, distinct=True),
            f"must be a non-empty list of distinct function tests from {list(allowed)}",
        ),
        "rts_lsi_min": (
            _in_range(gt=0, le=200),
            "must be a limb symmetry index in percent, more than 0 and at most 200",
        ),
        "confidence_level": (_in_range(gt=0, lt=1), "must be strictly between 0 and 1"),
        "km_ci_transform": (
            lambda value, _: value in KM_CI_TRANSFORMS,
            f"must be one of {list(KM_CI_TRANSFORMS)}",
        ),
        "review_recent_days": (_in_range(whole=True, ge=1), "must be a whole number >= 1"),
        "review_flare_days": (_in_range(whole=True, ge=1), "must be a whole number >= 1"),
        "review_adherence_min_scheduled": (
            _in_range(whole=True, ge=1),
            "must be a whole number >= 1",
        ),
        "review_pain_rise_points": _NRS_RISE,
        "review_pain_min_records": _DAYS_1_TO_7,
        "review_stuck_weeks": (
            _items(lambda w: _is_int(w) and w >= 1, length=3),
            "must be three whole numbers of weeks >= 1 (stages 1, 2 and 3)",
        ),
        "review_horizon_weeks": (
            _in_range(whole=True, ge=1, le=103),
            "must be a whole number of weeks from 1 to 103",
        ),
        "review_acwr_days": _WHOLE_DAYS_1,
        "review_tempo_min_sessions": (_in_range(whole=True, ge=1), "must be a whole number >= 1"),
        "review_fast_tempo_rate": (
            _in_range(gt=0, le=1),
            "must be a proportion more than 0 and at most 1",
        ),
        "target_adherence": _PROPORTION,
        "target_stage4_by_week12": _PROPORTION,
        "target_responders": _PROPORTION,
        "target_checkpoint_fidelity": _PROPORTION,
        "target_relapse_rate": (
            _in_range(ge=0),
            "must be a rate >= 0 (relapses per 1000 person-weeks)",
        ),
        "target_rts_readiness": _PROPORTION,
    }


def _check(c: AnalysisConfig) -> list[tuple[str, str]]:
    """Every out-of-range value, each as (key, 'key = value: rule')."""
    return [
        (key, f"{key} = {getattr(c, key)!r}: {rule}")
        for key, (check, rule) in _rules().items()
        if not check(getattr(c, key), c)
    ]
