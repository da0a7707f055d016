"""rehabstats: outcome metrics and reproducible cohort reports for rehabilitation programmes.

The public API is listed in ``__all__``. Submodules are imported on first use, so that
``import rehabstats`` (and every report kernel and command) starts quickly.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("rehabstats")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

_EXPORTS: dict[str, str] = {
    # data
    "Cohort": "cohort",
    "load_cohort": "io",
    "write_cohort": "io",
    "simulate_cohort": "simulate",
    "simulate_tables": "simulate",
    "AnalysisConfig": "config",
    # errors
    "CohortValidationError": "errors",
    "ConfigError": "errors",
    "DataWarning": "errors",
    "OutputError": "errors",
    "ParameterError": "errors",
    "RehabstatsError": "errors",
    "ValidationReport": "errors",
    # metrics
    "participant_metrics": "metrics",
    "weekly_metrics": "metrics",
    "write_metrics": "metrics",
    "adherence": "adherence",
    "weekly_adherence": "adherence",
    "pain_model": "pain",
    "pain_monitoring": "pain",
    "session_day_rules": "pain",
    "weekly_pain": "pain",
    "visa_a_outcomes": "visa",
    "visa_a_scores": "visa",
    "visa_a_visits": "visa",
    "limb_symmetry": "function",
    "checkpoint_attempts": "checkpoint",
    "stage_metrics": "stages",
    "stage_occupancy": "stages",
    "time_to_stage": "stages",
    "time_to_stage_summary": "stages",
    "relapse_incidence": "relapse",
    "relapse_metrics": "relapse",
    "relapse_rate_ratio": "relapse",
    "relapse_rates": "relapse",
    "exercise_quality": "quality",
    "relapse_acwr": "running",
    "running_load": "running",
    "running_metrics": "running",
    "weekly_running": "running",
    # reports
    "render_report": "reporting",
    "render_demo": "reporting",
    "report_parameters": "reporting",
    "RenderResult": "reporting",
    "RenderError": "reporting",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rehabstats' has no attribute {name!r}")
    value = getattr(import_module(f"rehabstats.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
