"""rehabstats: outcome metrics and reproducible cohort reports for rehabilitation programmes."""

from importlib.metadata import PackageNotFoundError, version

from rehabstats.adherence import adherence, weekly_adherence
from rehabstats.cohort import Cohort
from rehabstats.config import AnalysisConfig
from rehabstats.errors import (
    CohortValidationError,
    ConfigError,
    DataWarning,
    ParameterError,
    RehabstatsError,
    ValidationReport,
)
from rehabstats.io import load_cohort, write_cohort
from rehabstats.metrics import participant_metrics, weekly_metrics, write_metrics
from rehabstats.pain import pain_model, pain_monitoring, session_day_rules, weekly_pain
from rehabstats.relapse import (
    relapse_incidence,
    relapse_metrics,
    relapse_rate_ratio,
    relapse_rates,
)
from rehabstats.simulate import simulate_cohort, simulate_tables
from rehabstats.stages import (
    stage_metrics,
    stage_occupancy,
    time_to_stage,
    time_to_stage_summary,
)
from rehabstats.visa import visa_a_outcomes, visa_a_scores, visa_a_visits

try:
    __version__ = version("rehabstats")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "AnalysisConfig",
    "Cohort",
    "CohortValidationError",
    "ConfigError",
    "DataWarning",
    "ParameterError",
    "RehabstatsError",
    "ValidationReport",
    "__version__",
    "adherence",
    "load_cohort",
    "pain_model",
    "pain_monitoring",
    "participant_metrics",
    "relapse_incidence",
    "relapse_metrics",
    "relapse_rate_ratio",
    "relapse_rates",
    "session_day_rules",
    "stage_metrics",
    "stage_occupancy",
    "time_to_stage",
    "time_to_stage_summary",
    "visa_a_outcomes",
    "visa_a_scores",
    "visa_a_visits",
    "weekly_adherence",
    "weekly_metrics",
    "weekly_pain",
    "write_metrics",
    "simulate_cohort",
    "simulate_tables",
    "write_cohort",
]
