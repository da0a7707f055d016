"""rehabstats: outcome metrics and reproducible cohort reports for rehabilitation programmes.

The public API is listed in ``__all__``. Submodules are imported on first use, so that
``import rehabstats`` (and every report kernel and command) starts quickly.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from rehabstats.lazy import lazy_exports

try:
    __version__ = version("rehabstats")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

_EXPORTS: dict[str, str] = {
    # data
    "Cohort": "data.cohort",
    "load_cohort": "data.folder",
    "write_cohort": "data.folder",
    "simulate_cohort": "data.simulate",
    "simulate_tables": "data.simulate",
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
    "participant_metrics": "metrics.outputs",
    "weekly_metrics": "metrics.outputs",
    "write_metrics": "metrics.outputs",
    "adherence": "metrics.adherence",
    "weekly_adherence": "metrics.adherence",
    "pain_model": "metrics.pain",
    "pain_monitoring": "metrics.pain",
    "session_day_rules": "metrics.pain",
    "weekly_pain": "metrics.pain",
    "visa_a_outcomes": "metrics.visa",
    "visa_a_scores": "metrics.visa",
    "visa_a_visits": "metrics.visa",
    "limb_symmetry": "metrics.function_tests",
    "checkpoint_attempts": "metrics.checkpoint",
    "stage_metrics": "metrics.stages",
    "stage_occupancy": "metrics.stages",
    "time_to_stage": "metrics.stages",
    "time_to_stage_summary": "metrics.stages",
    "relapse_incidence": "metrics.relapse",
    "relapse_metrics": "metrics.relapse",
    "relapse_rate_ratio": "metrics.relapse",
    "relapse_rates": "metrics.relapse",
    "exercise_quality": "metrics.quality",
    "relapse_acwr": "metrics.running",
    "running_load": "metrics.running",
    "running_metrics": "metrics.running",
    "weekly_running": "metrics.running",
    # reports
    "render_report": "report.render",
    "render_demo": "report.render",
    "report_parameters": "report.specs",
    "RenderResult": "report.render",
    "RenderError": "report.render",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
