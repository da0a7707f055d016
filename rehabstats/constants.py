"""Facts several layers share, each written once.

Analysis thresholds are not here: they live in :class:`rehabstats.config.AnalysisConfig` (defaults
in ``data_schema/analysis_defaults.yaml``). What is here is the vocabulary the layers agree on:
where the package's resources are, which participant columns can group a cohort, the name of the
overall group, the audiences a report can be written for, the report parameters that are paths,
the packages whose versions outputs record (and :func:`package_versions`, which reads them), and
the time limits of a render.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "AUDIENCES",
    "CELL_TIMEOUT",
    "GROUPABLE",
    "KEY_PACKAGES",
    "MANIFEST_PACKAGES",
    "OVERALL",
    "OVERALL_LABEL",
    "PATH_PARAMETERS",
    "REPORTS_PER_KERNEL",
    "START_TIMEOUT",
    "analysis_defaults",
    "data_schema_dir",
    "notebook_dir",
    "package_versions",
]

_PACKAGE = Path(__file__).resolve().parent


def _resource(name: str, marker: str) -> Path:
    """A resource folder: inside an installed wheel, or at the top of a source checkout."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if (candidate / marker).is_file():
            return candidate
    raise FileNotFoundError(f"{name}/{marker} not found next to the rehabstats package")


def data_schema_dir() -> Path:
    """Folder holding the Frictionless schemas and the analysis defaults (``data_schema/``)."""
    return _resource("data_schema", "datapackage.json")


@cache
def analysis_defaults() -> dict[str, Any]:
    """The analysis configuration's defaults and presets (``data_schema/analysis_defaults.yaml``).

    Read once; :class:`rehabstats.config.AnalysisConfig` is built from them, and report
    parameters that set a configuration key take its default from here (without importing
    the configuration's validators).
    """
    import yaml

    return yaml.safe_load((data_schema_dir() / "analysis_defaults.yaml").read_text())


def notebook_dir() -> Path:
    """Folder of the report notebooks (``notebooks/``)."""
    return _resource("notebooks", "cohort_report.ipynb")


GROUPABLE: tuple[str, ...] = ("arm", "site", "tendinopathy_type", "sex")
"""Participant columns a cohort can be compared by (``--by``, a report's ``group``)."""

OVERALL: str = "all"
"""The ``group`` value of results over the whole cohort (the output files' ``all``)."""

OVERALL_LABEL: str = "Overall"
"""How reports label the whole cohort beside its groups."""

AUDIENCES: tuple[str, ...] = ("internal", "external")
"""Who a report is for: ``internal`` (the team; identifiers shown) and ``external`` (leaves the
team: pseudonymised ids, small cells suppressed; see :mod:`rehabstats.report.disclosure`)."""

PATH_PARAMETERS: tuple[str, ...] = ("data", "config_file", "pseudonym_key_file")
"""Report parameters that name files or folders (withheld from external reports)."""

KEY_PACKAGES: tuple[str, ...] = (
    "rehabstats",
    "pandas",
    "numpy",
    "scipy",
    "statsmodels",
    "pingouin",
    "matplotlib",
    "seaborn",
    "papermill",
    "nbconvert",
    "ipykernel",
)
"""Packages whose versions a report's provenance block records."""

MANIFEST_PACKAGES: tuple[str, ...] = (
    *KEY_PACKAGES,
    "pandera",
    "pyarrow",
    "nbformat",
    "jupyter_client",
)
"""Packages whose versions a batch manifest records: :data:`KEY_PACKAGES` and those that read
the data and run the notebook. A report whose versions differ from its last successful run's is
rendered again."""

CELL_TIMEOUT: float = 1800.0
"""Longest time one report cell may run, in seconds (a batch job's default ``timeout``)."""

START_TIMEOUT: float = 120.0
"""Longest time a report kernel may take to start, in seconds."""

REPORTS_PER_KERNEL: int = 20
"""Reports a batch worker renders in one kernel before starting a new one (a job file's
``reports_per_kernel``; 1: a new kernel for every report)."""


def package_versions(packages: Iterable[str] = KEY_PACKAGES) -> dict[str, str]:
    """Python's version, then the installed version of each package (``"not installed"``).

    Parameters
    ----------
    packages : iterable of str
        Distribution names (default :data:`KEY_PACKAGES`, a report's provenance;
        :data:`MANIFEST_PACKAGES` for a batch manifest).

    Returns
    -------
    dict
        ``{"python": "3.12.3", "rehabstats": "0.9.0", ...}`` in the order given.
    """
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
