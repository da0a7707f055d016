"""The registry of reports: each report declared once, with its notebook, parameters and setup.

:data:`REPORTS` is the one declaration every part reads: the ``rehabstats report`` command (its
``--notebook`` choices and the parameters in its help), :func:`rehabstats.render_report` and
the batch runs (parameters validated before any kernel starts), and
:func:`rehabstats.report.analysis.prepare` (the same validation, the grouping, the one-group
subset, the parameters that set analysis configuration keys, the demo's interim cut-off). The
notebooks' ``parameters`` cells hold the same names and defaults (checked by the test suite).

A new report is a :class:`ReportSpec` here, a notebook ``notebooks/<name>.ipynb`` (a
``parameters`` cell, ``analysis = sections.prepare("<name>", ...)``, then one
``sections.<name>(analysis)`` per cell) and, when it needs them, sections in
:mod:`rehabstats.report.sections`.

This module imports no data or plotting library, so that the command line starts quickly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehabstats.constants import AUDIENCES, GROUPABLE, analysis_defaults, notebook_dir
from rehabstats.errors import ParameterError

__all__ = [
    "PROVENANCE_MIMETYPE",
    "REPORTS",
    "SWIMMER_LIMIT",
    "ReportParameter",
    "ReportSpec",
    "notebook_path",
    "parse_parameter_pairs",
    "report_names",
    "report_parameters",
    "report_spec",
    "validate_parameters",
]

_NONE_WORDS = {"none", "null", ""}
_TRUE_WORDS = {"true", "yes", "1", "on"}
_FALSE_WORDS = {"false", "no", "0", "off"}


@dataclass(frozen=True)
class ReportParameter:
    """One report parameter: its type, default, allowed values and meaning.

    Attributes
    ----------
    name : str
        Variable name in the notebook's ``parameters`` cell.
    type : {"str", "int", "float", "bool", "date", "path", "choice", "source"}
        ``date`` is an ISO ``YYYY-MM-DD`` string; ``path`` an existing file or folder (made
        absolute, because the notebook runs in its own working directory); ``source`` a
        cohort source (:mod:`rehabstats.data.sources`): an existing folder, REDCap export or
        mapping file (made absolute), a database URL without a password, a REDCap API address,
        or ``env:NAME``.
    default : object
        Value in the notebook's ``parameters`` cell.
    help : str
        One line for users (CLI help, errors, report appendix).
    choices : tuple of str, optional
        Allowed values of a ``choice``.
    nullable : bool
        ``None`` is allowed (meaning given in ``help``).
    minimum, maximum : float, optional
        Inclusive bounds of numbers.
    path_kind : {"dir", "file"}, optional
        What a ``path`` must be.
    config_key : str, optional
        The :class:`~rehabstats.config.AnalysisConfig` key the parameter sets (its default is
        the key's default): a value other than the default overrides the configuration's; at
        its default, the configuration's value (from ``config_file``, else the same default)
        is used.
    """

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    path_kind: str | None = None
    config_key: str | None = None

    def describe_type(self) -> str:
        """The type as users read it (``date YYYY-MM-DD or None``, ``one of a|b``...)."""
        text = {
            "str": "text",
            "int": "whole number",
            "float": "number",
            "bool": "true/false",
            "date": "date YYYY-MM-DD",
            "path": "folder" if self.path_kind == "dir" else "file",
            "choice": "one of " + "|".join(self.choices or ()),
            "source": "folder, REDCap export, database or REDCap API URL, or mapping file",
        }[self.type]
        if self.minimum is not None and self.maximum is not None:
            text += f" from {self.minimum:g} to {self.maximum:g}"
        elif self.minimum is not None:
            text += f" >= {self.minimum:g}"
        elif self.maximum is not None:
            text += f" <= {self.maximum:g}"
        return text + (" or None" if self.nullable else "")

    def parse(self, value: Any) -> Any:
        """The value as the notebook receives it; ``ValueError`` explaining a bad value.

        Text (from the command line) is parsed by type; Python values are checked strictly (a
        bool is not a number, a float is not a whole number unless it is integral).
        """
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"must be a {self.describe_type()}, not None")
        if isinstance(value, str) and self.nullable:
            # on the command line "none"/"null" (and, except for text, "") mean None
            words = {"none", "null"} if self.type == "str" else _NONE_WORDS
            if value.strip().lower() in words:
                return None
        parse = getattr(self, f"_parse_{self.type}")
        return parse(value)

    def _parse_str(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {value!r}")
        return value

    def _bounds(self, number: float) -> None:
        if self.minimum is not None and number < self.minimum:
            raise ValueError(f"must be >= {self.minimum:g}, got {number:g}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"must be <= {self.maximum:g}, got {number:g}")

    def _number(self, value: Any, *, whole: bool) -> float:
        """A number from text or a Python number (a bool is not one), finite and in bounds."""
        number: float | None = None
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = (int if whole else float)(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value if whole else float(value)
        elif isinstance(value, float) and (not whole or value.is_integer()):
            number = int(value) if whole else value
        if number is None:
            raise ValueError(f"must be {'a whole number' if whole else 'a number'}, got {value!r}")
        if not math.isfinite(number):
            raise ValueError(f"must be a finite number, got {value!r}")
        self._bounds(number)
        return number

    def _parse_int(self, value: Any) -> int:
        return int(self._number(value, whole=True))

    def _parse_float(self, value: Any) -> float:
        return float(self._number(value, whole=False))

    def _parse_bool(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE_WORDS:
                return True
            if word in _FALSE_WORDS:
                return False
        raise ValueError(f"must be true or false, got {value!r}")

    def _parse_date(self, value: Any) -> str:
        if isinstance(value, dt.datetime):
            if value.time() != dt.time(0):
                raise ValueError(f"must be a date without a time of day, got {value!r}")
            return value.date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            try:
                return dt.date.fromisoformat(value.strip()).isoformat()
            except ValueError as exc:
                raise ValueError(f"is not a valid date: {value!r} ({exc})") from None
        raise ValueError(f"must be a date YYYY-MM-DD, got {value!r}")

    def _parse_path(self, value: Any) -> str:
        if not isinstance(value, str | os.PathLike):
            raise ValueError(f"must be a path, got {value!r}")
        path = Path(value).expanduser()
        if self.path_kind == "dir" and not path.is_dir():
            raise ValueError(f"must be an existing folder, got {str(value)!r}")
        if self.path_kind == "file" and not path.is_file():
            raise ValueError(f"must be an existing file, got {str(value)!r}")
        if not path.exists():
            raise ValueError(f"does not exist: {str(value)!r}")
        return str(path.resolve())

    def _parse_source(self, value: Any) -> str:
        from rehabstats.data.sources import check_no_secret, source_path

        if not isinstance(value, str | os.PathLike):
            raise ValueError(
                "must be a cohort folder, a REDCap export, a database URL or a mapping file, "
                f"got {value!r}"
            )
        text = os.fspath(value)
        named = source_path(text)
        if named is None:
            try:
                check_no_secret(text, where="as a report parameter")
            except ParameterError as exc:
                raise ValueError(str(exc)) from None
            return text
        prefix, path = named
        if not path.exists():
            raise ValueError(
                "must be an existing folder, REDCap export or database mapping file, or a "
                f"URL (a database or a REDCap API), got {text!r}"
            )
        return prefix + str(path.resolve())

    def _parse_choice(self, value: Any) -> str:
        if not isinstance(value, str) or value not in (self.choices or ()):
            raise ValueError(f"must be one of {', '.join(self.choices or ())}; got {value!r}")
        return value


@dataclass(frozen=True)
class ReportSpec:
    """A report: its notebook, title, declared parameters and how its analysis is set up.

    Attributes
    ----------
    name, title, description : str
        The notebook is ``notebooks/<name>.ipynb``; the description is one line for users.
    parameters : tuple of ReportParameter
        In the order of the notebook's ``parameters`` cell.
    by : str, optional
        The participant column the report always compares by (the clinic audit: ``site``).
    by_parameter : str, optional
        The parameter naming the column compared by (the cohort report: ``group``).
    subset_parameter : str, optional
        A parameter that restricts the cohort to one value of ``by`` (the clinic audit:
        ``site``; None = every value, compared).
    demo_interim_days : int, optional
        The demo cohort (no ``data``, no ``data_cutoff``) is analysed at an interim cut-off
        this many days before the last enrolment, so that participants are still in the
        programme (the clinic audit's review list needs them).
    """

    name: str
    title: str
    description: str
    parameters: tuple[ReportParameter, ...] = field(default_factory=tuple)
    by: str | None = None
    by_parameter: str | None = None
    subset_parameter: str | None = None
    demo_interim_days: int | None = None

    @property
    def notebook(self) -> Path:
        return notebook_path(self.name)

    def parameter(self, name: str) -> ReportParameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def grouping(self, parameters: Mapping[str, Any]) -> str | None:
        """The column compared by, given the validated parameters."""
        return parameters[self.by_parameter] if self.by_parameter else self.by

    def config_changes(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The analysis configuration keys the validated parameters set (those other than
        their defaults; see :attr:`ReportParameter.config_key`)."""
        return {
            p.config_key: parameters[p.name]
            for p in self.parameters
            if p.config_key is not None and parameters[p.name] != p.default
        }


PROVENANCE_MIMETYPE = "application/vnd.rehabstats.provenance+json"
"""Mimetype of the machine-readable provenance a report's header emits (not shown in HTML; the
renderer reads it from the executed notebook)."""


def _target(key: str, help: str, **bounds: float) -> ReportParameter:
    """An audit target parameter: sets the configuration key of its name (same default)."""
    return ReportParameter(key, "float", analysis_defaults()[key], help, config_key=key, **bounds)


SWIMMER_LIMIT = 60
"""Most participants a swimmer plot draws by default (the clinic audit's ``swimmer_limit``)."""

_COMMON: tuple[ReportParameter, ...] = (
    ReportParameter(
        "data",
        "source",
        None,
        "cohort folder (one CSV/Parquet/XLSX file per table), database URL "
        "(postgresql://user@host/db, password from PGPASSWORD or ~/.pgpass), database mapping "
        "file, REDCap export or API address (token from REHABSTATS_REDCAP_TOKEN), or "
        "env:NAME; None = the embedded demo cohort (simulated)",
        nullable=True,
    ),
    ReportParameter(
        "data_cutoff",
        "date",
        None,
        "analysis date; None = the latest date in the data (the demo audit uses an interim "
        "date, 30 days before the last enrolment)",
        nullable=True,
    ),
    ReportParameter(
        "config_file",
        "path",
        None,
        "analysis configuration YAML (thresholds of docs/metrics.md); None = the defaults",
        nullable=True,
        path_kind="file",
    ),
    ReportParameter(
        "title", "str", None, "report title; None = the report's own title", nullable=True
    ),
    ReportParameter(
        "demo_participants",
        "int",
        500,
        "size of the simulated demo cohort (used when data is None)",
        minimum=20,
        maximum=20000,
    ),
    ReportParameter("demo_seed", "int", 0, "seed of the simulated demo cohort", minimum=0),
    ReportParameter(
        "engine",
        "choice",
        "pandas",
        "pandas = the cohort in this process; dask = a partitioned cohort (rehabstats "
        "partition), its metrics computed on a Dask cluster and the report drawn here "
        "(docs/scale.md; needs rehabstats[dask])",
        choices=("pandas", "dask"),
    ),
    ReportParameter(
        "scheduler",
        "str",
        None,
        "engine dask: the Dask scheduler (tcp://host:8786); None = REHABSTATS_DASK_SCHEDULER, "
        "else a local cluster of one worker per core",
        nullable=True,
    ),
    ReportParameter(
        "audience",
        "choice",
        "internal",
        "internal = for the team, shows participant ids; external = leaves the team: "
        "pseudonymised ids (key from REHABSTATS_PSEUDONYM_KEY or pseudonym_key_file) and small "
        "cells suppressed",
        choices=AUDIENCES,
    ),
    ReportParameter(
        "suppression_threshold",
        "int",
        5,
        "external reports: counts from 1 to this minus 1 are shown as <threshold",
        minimum=2,
        maximum=100,
    ),
    ReportParameter(
        "pseudonym_key_file",
        "path",
        None,
        "external reports: file holding the pseudonym key; None = the environment variable "
        "REHABSTATS_PSEUDONYM_KEY (the key itself is never a parameter)",
        nullable=True,
        path_kind="file",
    ),
)

REPORTS: dict[str, ReportSpec] = {
    "cohort_report": ReportSpec(
        "cohort_report",
        "Cohort report",
        "trial/research cohorts compared by a grouping column: Table 1, flow, adherence, pain, "
        "VISA-A, stages, relapse, definitions",
        (
            *_COMMON,
            ReportParameter(
                "group",
                "choice",
                "arm",
                "participant column the groups are compared by",
                choices=GROUPABLE,
            ),
        ),
        by_parameter="group",
    ),
    "clinic_audit": ReportSpec(
        "clinic_audit",
        "Clinic audit",
        "a clinic auditing its service by site: dashboard against targets, who needs review "
        "now, stage timelines",
        (
            *_COMMON,
            ReportParameter(
                "site",
                "str",
                None,
                "audit one site only; None = every site, compared",
                nullable=True,
            ),
            _target(
                "target_adherence",
                "target: mean session adherence in weeks 1-12 at least this (proportion)",
                minimum=0,
                maximum=1,
            ),
            _target(
                "target_stage4_by_week12",
                "target: proportion reaching stage 4 by week 12 (Kaplan-Meier) at least this",
                minimum=0,
                maximum=1,
            ),
            _target(
                "target_responders",
                "target: proportion of VISA-A responders at 12 weeks at least this",
                minimum=0,
                maximum=1,
            ),
            _target(
                "target_checkpoint_fidelity",
                "target: of those reaching stage 4, proportion who passed the checkpoint first",
                minimum=0,
                maximum=1,
            ),
            _target(
                "target_relapse_rate",
                "target: relapses per 1000 person-weeks at risk at most this",
                minimum=0,
            ),
            _target(
                "target_rts_readiness",
                "target: of those returning to running or sport, proportion who met the "
                "return-to-sport criteria first",
                minimum=0,
                maximum=1,
            ),
            ReportParameter(
                "swimmer_limit",
                "int",
                SWIMMER_LIMIT,
                "most participants drawn in the swimmer plot (those under care first)",
                minimum=1,
                maximum=500,
            ),
        ),
        by="site",
        subset_parameter="site",
        demo_interim_days=30,
    ),
}
"""Every report, in the order ``rehabstats demo`` renders them (the heaviest first)."""


def report_names() -> list[str]:
    """Names of the available reports."""
    return list(REPORTS)


def report_spec(report: str) -> ReportSpec:
    """The declaration of a report; a :class:`~rehabstats.errors.ParameterError` naming the
    available reports (and the closest) for an unknown name."""
    if report not in REPORTS:
        close = difflib.get_close_matches(report, REPORTS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(f"unknown report {report!r}{hint}; available: {', '.join(REPORTS)}")
    return REPORTS[report]


def report_parameters(report: str) -> tuple[ReportParameter, ...]:
    """The declared parameters of a report (name, type, default, choices, help)."""
    return report_spec(report).parameters


def validate_parameters(report: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check and parse report parameters; every parameter in the result (defaults filled in).

    Parameters
    ----------
    report : str
        A report name (:func:`report_names`).
    values : mapping
        Parameter values: Python values, or text as typed on the command line.

    Returns
    -------
    dict
        Every declared parameter, in declaration order, with its parsed value.

    Raises
    ------
    ParameterError
        Listing every unknown name (with the valid ones) and every bad value (with what it
        must be) at once.
    """
    spec = report_spec(report)
    values = dict(values or {})
    known = {p.name: p for p in spec.parameters}
    problems: list[str] = []
    for name in values:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown parameter {name!r}{hint}")
    out: dict[str, Any] = {}
    for name, p in known.items():
        if name not in values:
            out[name] = p.default
            continue
        try:
            out[name] = p.parse(values[name])
        except ValueError as exc:
            problems.append(f"{name} {exc}")
    if problems:
        valid = "\n".join(f"  {p.name} ({p.describe_type()}): {p.help}" for p in spec.parameters)
        raise ParameterError(
            f"invalid parameters for report {report!r}:\n  "
            + "\n  ".join(problems)
            + f"\nValid parameters of {report!r}:\n{valid}"
        )
    return out


def parse_parameter_pairs(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``-p key value`` pairs as a dict; a key given twice is an error."""
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise ParameterError(f"parameter {key!r} given more than once")
        out[key] = value
    return out


def notebook_path(report: str) -> Path:
    """The notebook of a report."""
    report_spec(report)
    return notebook_dir() / f"{report}.ipynb"
