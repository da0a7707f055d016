"""rehabstats: outcome metrics and reproducible cohort reports for rehabilitation programmes."""

from importlib.metadata import PackageNotFoundError, version

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
from rehabstats.simulate import simulate_cohort, simulate_tables

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
    "load_cohort",
    "simulate_cohort",
    "simulate_tables",
    "write_cohort",
]
