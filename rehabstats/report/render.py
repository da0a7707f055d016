"""Render the report notebooks: parameters checked first, papermill, then one offline HTML file.

Pipeline of :func:`render_report`:

1. **Parameters** are validated against the report's declared parameters
   (:func:`report_parameters`) before any kernel starts: unknown names are rejected with the list of
   valid ones, values are parsed by type (dates, numbers, booleans, choices, paths) and every
   problem is reported at once (:class:`~rehabstats.errors.ParameterError`).
2. **papermill** executes the notebook with a kernel of *this* Python environment
   (``sys.executable -m ipykernel_launcher``, built in memory: no kernelspec needs installing, and a
   ``python3`` kernelspec of another environment can never be picked up by mistake). The kernel
   runs in a temporary working directory, talks over IPC sockets on POSIX (nothing listens on the
   network) and keeps no IPython history.
3. **nbconvert** turns the executed notebook into one self-contained HTML file with the
   ``rehabstats_report`` template: no code, no prompts, figures as data URIs, one inline
   stylesheet, no JavaScript, no CDN. A Content-Security-Policy forbids the page any network
   request, and the HTML is checked for external references before it is written.
4. The HTML and the executed ``.ipynb`` are written **as a pair** by
   :func:`rehabstats.files.write_files`: both complete as temporary files beside their targets
   (``fsync``, the umask's mode), then the notebook and the HTML renamed into place. The HTML
   names the notebook's SHA-256 and a render id the notebook keeps too
   (:func:`report_pair_matches`). Before that, the cohort folder is validated (before any
   kernel starts), and what a killed earlier render left is finished or removed
   (:func:`rehabstats.files.sweep`, :func:`rehabstats.files.sweep_workdirs`). The kernel runs
   from a private work folder removed on every exit path; an existing report file rehabstats
   did not write is never replaced.

The parameters of each report are declared here, once (:data:`REPORTS`); the notebooks'
``parameters`` cells hold the same names and defaults (checked by the test suite), and the CLI
builds its help and parses ``-p key value`` from the same declaration.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import functools
import hashlib
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehabstats import files
from rehabstats.constants import notebook_dir
from rehabstats.errors import OutputError, ParameterError, RehabstatsError

__all__ = [
    "AUDIENCES",
    "PROVENANCE_MIMETYPE",
    "REPORTS",
    "RenderError",
    "RenderResult",
    "ReportParameter",
    "ReportSpec",
    "external_references",
    "notebook_path",
    "parse_parameter_pairs",
    "render_demo",
    "render_report",
    "report_names",
    "report_pair_matches",
    "report_parameters",
    "template_dir",
    "validate_parameters",
    "written_by_rehabstats",
]

_HERE = Path(__file__).resolve().parent

PROVENANCE_MIMETYPE = "application/vnd.rehabstats.provenance+json"
"""Mimetype of the machine-readable provenance the report header emits (not shown in HTML)."""

AUDIENCES: tuple[str, ...] = ("internal", "external")
"""Audiences a report can be rendered for: ``internal`` (the team; identifiers shown) and
``external`` (leaves the team: pseudonymised ids, small cells suppressed; see
:mod:`rehabstats.report.disclosure`)."""

PARAMETER_TYPES: tuple[str, ...] = (
    "str",
    "int",
    "float",
    "bool",
    "date",
    "path",
    "choice",
    "source",
)

DATABASE_URL_ENV = "REHABSTATS_DATABASE_URL"
"""Environment variable through which :func:`render_report` hands the kernel a database URL
that carries its password (given through the Python API; never a notebook parameter)."""


class RenderError(RehabstatsError, RuntimeError):
    """A report notebook failed while executing or converting; the message says where."""


# ---- parameters ----------------------------------------------------------------------------

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
        cohort source (:mod:`rehabstats.data.sources`): an existing folder or mapping file
        (made absolute), a database URL without a password, or ``env:NAME``.
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
            "source": "folder, database URL or mapping file",
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

    def _parse_int(self, value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number, got {value!r}")
        if isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                raise ValueError(f"must be a whole number, got {value!r}") from None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        else:
            raise ValueError(f"must be a whole number, got {value!r}")
        self._bounds(number)
        return number

    def _parse_float(self, value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError(f"must be a number, got {value!r}")
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(f"must be a number, got {value!r}") from None
        elif isinstance(value, int | float):
            number = float(value)
        else:
            raise ValueError(f"must be a number, got {value!r}")
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"must be a finite number, got {value!r}")
        self._bounds(number)
        return number

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
        from rehabstats.data.sources import check_no_secret, is_url

        if not isinstance(value, str | os.PathLike):
            raise ValueError(
                f"must be a cohort folder, a database URL or a mapping file, got {value!r}"
            )
        text = os.fspath(value)
        if is_url(text) or text.startswith("env:"):
            try:
                check_no_secret(text, where="as a report parameter")
            except ParameterError as exc:
                raise ValueError(str(exc)) from None
            return text
        path = Path(text).expanduser()
        if not path.exists():
            raise ValueError(
                "must be an existing folder, a database mapping file or a database URL, "
                f"got {text!r}"
            )
        return str(path.resolve())

    def _parse_choice(self, value: Any) -> str:
        if not isinstance(value, str) or value not in (self.choices or ()):
            raise ValueError(f"must be one of {', '.join(self.choices or ())}; got {value!r}")
        return value


@dataclass(frozen=True)
class ReportSpec:
    """A report: its notebook, title and declared parameters."""

    name: str
    title: str
    description: str
    parameters: tuple[ReportParameter, ...] = field(default_factory=tuple)

    @property
    def notebook(self) -> Path:
        return notebook_path(self.name)

    def parameter(self, name: str) -> ReportParameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)


_GROUPABLE = ("arm", "site", "tendinopathy_type", "sex")  # rehabstats.time.timeline.GROUPABLE

_COMMON: tuple[ReportParameter, ...] = (
    ReportParameter(
        "data",
        "source",
        None,
        "cohort folder (one CSV/Parquet/XLSX file per table), database URL "
        "(postgresql://user@host/db, password from PGPASSWORD or ~/.pgpass), database mapping "
        "file or env:NAME; None = the embedded demo cohort (simulated)",
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
                choices=_GROUPABLE,
            ),
        ),
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
            ReportParameter(
                "target_adherence",
                "float",
                0.80,
                "target: mean session adherence in weeks 1-12 at least this (proportion)",
                minimum=0,
                maximum=1,
            ),
            ReportParameter(
                "target_stage4_by_week12",
                "float",
                0.60,
                "target: proportion reaching stage 4 by week 12 (Kaplan-Meier) at least this",
                minimum=0,
                maximum=1,
            ),
            ReportParameter(
                "target_responders",
                "float",
                0.50,
                "target: proportion of VISA-A responders at 12 weeks at least this",
                minimum=0,
                maximum=1,
            ),
            ReportParameter(
                "target_checkpoint_fidelity",
                "float",
                0.95,
                "target: of those reaching stage 4, proportion who passed the checkpoint first",
                minimum=0,
                maximum=1,
            ),
            ReportParameter(
                "target_relapse_rate",
                "float",
                5.0,
                "target: relapses per 1000 person-weeks at risk at most this",
                minimum=0,
            ),
            ReportParameter(
                "swimmer_limit",
                "int",
                60,
                "most participants drawn in the swimmer plot (those under care first)",
                minimum=1,
                maximum=500,
            ),
        ),
    ),
}
"""Every report and its parameters (the single declaration used by validation and the CLI)."""


def report_names() -> list[str]:
    """Names of the available reports."""
    return list(REPORTS)


def _spec(report: str) -> ReportSpec:
    if report not in REPORTS:
        close = difflib.get_close_matches(report, REPORTS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(f"unknown report {report!r}{hint}; available: {', '.join(REPORTS)}")
    return REPORTS[report]


def report_parameters(report: str) -> tuple[ReportParameter, ...]:
    """The declared parameters of a report (name, type, default, choices, help)."""
    return _spec(report).parameters


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
    spec = _spec(report)
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


# ---- locations -----------------------------------------------------------------------------


def notebook_path(report: str) -> Path:
    """The notebook of a report."""
    _spec(report)
    return notebook_dir() / f"{report}.ipynb"


def template_dir() -> Path:
    """Folder holding the ``rehabstats_report`` nbconvert template."""
    return _HERE / "templates"


# ---- rendering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderResult:
    """What :func:`render_report` produced.

    Attributes
    ----------
    report : str
    html_path, notebook_path : Path
        The self-contained HTML file and the executed notebook beside it.
    seconds : float
        Wall-clock time of the whole render.
    parameters : dict
        Every parameter as the notebook received it.
    fingerprint : str or None
        SHA-256 fingerprint of the cohort's data (from the report's provenance).
    provenance : dict
        The report's provenance block (versions, cut-off, cohort summary...).
    """

    report: str
    html_path: Path
    notebook_path: Path
    seconds: float
    parameters: dict[str, Any]
    fingerprint: str | None
    provenance: dict[str, Any] = field(default_factory=dict)
    render_id: str | None = None


_UNIX_PATH_MAX = 104
"""Longest Unix socket path used (the system limit is 104-108 bytes, by platform)."""

KERNEL_PRELOAD = "import rehabstats.report.sections"
"""Run by each report kernel as it starts (``IPKernelApp.exec_lines``): the libraries every
report imports load while this process is still importing papermill, instead of after."""


def _kernel_manager_class(workdir: Path, log: Any, env: Mapping[str, str] | None = None) -> type:
    """A kernel manager running ipykernel on this interpreter, in ``workdir``, over IPC.

    The kernel's own stdout/stderr (start-up messages, shutdown notices) go to ``log`` instead
    of the terminal; a failing render quotes its end. ``env`` is added to the kernel's
    environment (the pseudonym key of an external report travels this way, never as a
    notebook parameter). The kernel imports :data:`KERNEL_PRELOAD` while it starts, and the
    manager keeps the clients it hands out so that :meth:`close` can stop them.
    """
    kernel_env = {"PYDEVD_DISABLE_FILE_VALIDATION": "1", **(env or {})}
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class SameEnvironmentKernelManager(AsyncKernelManager):
        """Runs ``sys.executable -m ipykernel_launcher``: the kernel is this environment."""

        @property
        def kernel_spec(self) -> KernelSpec:
            if self._kernel_spec is None:
                self._kernel_spec = KernelSpec(
                    argv=[
                        sys.executable,
                        "-m",
                        "ipykernel_launcher",
                        "-f",
                        "{connection_file}",
                        "--HistoryManager.hist_file=:memory:",
                        f"--IPKernelApp.exec_lines={KERNEL_PRELOAD}",
                    ],
                    display_name=f"Python {sys.version_info[0]}.{sys.version_info[1]} (rehabstats)",
                    language="python",
                    env=kernel_env,
                )
            return self._kernel_spec

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super()._async_launch_kernel(kernel_cmd, **kw)

        def client(self, **kwargs: Any) -> Any:
            kc = super().client(**kwargs)
            self._clients = [*getattr(self, "_clients", []), kc]
            return kc

        async def close(self) -> None:
            """Stop the clients, kill the kernel if it still runs, free its sockets."""
            for kc in getattr(self, "_clients", []):
                kc.stop_channels()
            process = getattr(self.provisioner, "process", None)
            if process is not None and process.poll() is None:
                # every cell has run: kill and reap it here rather than in jupyter_client's
                # shutdown, which polls the dead process at 100 ms intervals
                process.kill()
                process.wait(timeout=10)
            try:
                if self.has_kernel:
                    await self.shutdown_kernel(now=True)  # frees the process handle and ports
            finally:
                await self.cleanup_resources()

        @default("transport")
        def _transport_default(self) -> str:
            # Unix sockets in the private work folder; TCP on localhost (connection signed with
            # the key in the private connection file) where the socket path would be too long
            longest = workdir / "kernel-000000000000.json-ipc-4"
            return "ipc" if os.name == "posix" and len(str(longest)) < _UNIX_PATH_MAX else "tcp"

        @default("connection_file")
        def _connection_file_default(self) -> str:
            return str(workdir / f"kernel-{uuid.uuid4().hex[:12]}.json")

    return SameEnvironmentKernelManager


_CELL_TIMEOUT = 1800
"""Longest time one report cell may run, in seconds (:func:`render_report`'s default)."""

_START_TIMEOUT = 120
"""Longest time a report kernel may take to start, in seconds."""


def _kernel_failure(report: str, problem: str, workdir: Path) -> RenderError:
    """A RenderError quoting the end of the kernel's own output."""
    log = workdir / "kernel.log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    return RenderError(
        f"report {report!r} {problem}" + (f"\nKernel output:\n{tail}" if tail.strip() else "")
    )


def render_report(
    report: str,
    data: str | os.PathLike | None = None,
    *,
    out: str | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    progress: bool | Mapping[str, Any] | None = None,
    timeout: float | None = _CELL_TIMEOUT,
    start_timeout: float = _START_TIMEOUT,
    check_data: bool = True,
) -> RenderResult:
    """Execute a report notebook and write it as one self-contained HTML file.

    Parameters
    ----------
    report : str
        ``cohort_report`` or ``clinic_audit`` (:func:`report_names`).
    data : str or path, optional
        The cohort (the ``data`` parameter): a folder, a database URL, a database mapping file
        or ``env:NAME`` (:func:`rehabstats.load_cohort`); None renders the embedded demo
        cohort. A database URL that carries its password is accepted here (not on the command
        line): it reaches the kernel through the environment (``REHABSTATS_DATABASE_URL``),
        never as a notebook parameter, and the report shows it without the password.
    out : path
        The HTML file to write (``.html`` added when missing); the executed notebook is written
        beside it with the suffix ``.ipynb``.
    parameters : mapping, optional
        Other report parameters (:func:`report_parameters`), as Python values or text.
    progress : bool or mapping, optional
        Show a progress bar over the notebook's cells (default: when stderr is a terminal); a
        mapping gives extra ``tqdm`` options (e.g. ``position``).
    timeout : float, optional
        Longest time one cell may run, in seconds.
    start_timeout : float
        Longest time the kernel may take to start, in seconds.
    check_data : bool
        Load and validate the cohort before the kernel starts (False: the caller has just done
        so, as a batch run does when planning).

    Returns
    -------
    RenderResult

    Raises
    ------
    ParameterError
        Before any kernel starts, for an unknown report or parameter or a bad value, and for an
        ``external`` report without a pseudonym key (:func:`rehabstats.report.disclosure.privacy_key`).
    CohortValidationError
        Before any kernel starts: the cohort folder breaks the data contract.
    OutputError
        Before any kernel starts: the output's folder cannot be created, or a file at ``out``
        (or its ``.ipynb``) was not written by rehabstats.
    RenderError
        When a cell fails (the executed notebook is kept as ``<out>.failed.ipynb`` with the
        traceback) or the HTML would reference anything outside itself.
    """
    return _render(
        report,
        data,
        out=out,
        parameters=parameters,
        progress=progress,
        timeout=timeout,
        start_timeout=start_timeout,
        check_data=check_data,
    )


def _render(
    report: str,
    data: str | os.PathLike | None,
    *,
    out: str | os.PathLike,
    parameters: Mapping[str, Any] | None,
    progress: bool | Mapping[str, Any] | None,
    timeout: float | None,
    start_timeout: float,
    start_after: threading.Event | None = None,
    imported: threading.Event | None = None,
    cancel: threading.Event | None = None,
    kernels: list[Any] | None = None,
    check_data: bool = True,
) -> RenderResult:
    """:func:`render_report`. The kernel starts once ``start_after`` is set, when given;
    ``imported`` is set once papermill is imported; once ``cancel`` is set the render stops
    before its next step and writes nothing; the kernel manager is kept in ``kernels`` while it
    runs (see :func:`render_demo`). ``check_data=False`` skips loading the data before the
    kernel starts (a batch has validated it while planning)."""
    started = time.perf_counter()
    values = dict(parameters or {})
    if data is not None:
        if values.get("data") is not None:
            raise ParameterError("give the cohort folder once: as data or as parameter 'data'")
        values["data"] = os.fspath(data)
    kernel_env: dict[str, str] = {}
    secret_source = _secret_source(values.get("data"))
    if secret_source is not None:  # the kernel reads it from its environment
        kernel_env[DATABASE_URL_ENV] = secret_source
        values["data"] = f"env:{DATABASE_URL_ENV}"
    params = validate_parameters(report, values)
    if params.get("config_file"):
        _check_config(params["config_file"])
    key: str | None = None
    if params.get("audience") == "external":
        from rehabstats.report.disclosure import PSEUDONYM_KEY_ENV, privacy_key

        key = privacy_key(params.get("pseudonym_key_file")).decode("utf-8")
        kernel_env[PSEUDONYM_KEY_ENV] = key
    html_path, notebook_out, failed = _output_paths(out)
    if check_data and params.get("data") is not None:
        _check_data(secret_source or params["data"])  # the contract, before any kernel starts
    files.make_folder(html_path.parent)
    # what killed renders left: finished pairs, temporaries, work folders and their kernels
    files.sweep(html_path.parent, [html_path.name, notebook_out.name, failed.name])
    files.sweep_workdirs(_WORKDIR_PREFIX)
    _check_replaceable(html_path, notebook_out, failed)
    if progress is None:
        progress = sys.stderr.isatty()
    progress_bar: bool | dict[str, Any] = False
    if progress:
        progress_bar = {"desc": report, "leave": False}
        if isinstance(progress, Mapping):
            progress_bar.update(progress)
    _stop_if(cancel, report)

    from jupyter_core.utils import run_sync

    workdir = files.make_workdir(_WORKDIR_PREFIX)
    try:
        kernel_log = open(workdir / "kernel.log", "wb")  # noqa: SIM115 - closed in finally
        # the kernel starts before papermill is imported: it boots and loads the report
        # libraries on another core while this process imports papermill, nbformat and nbclient
        km = _kernel_manager_class(workdir, kernel_log, kernel_env)(kernel_name="rehabstats-python")
        if kernels is not None:
            kernels.append(km)
        try:
            executed = workdir / f"{report}.ipynb"
            try:
                if start_after is not None:
                    start_after.wait()
                _stop_if(cancel, report)
                run_sync(km.start_kernel)(cwd=str(workdir))
            except Exception as exc:  # launch, socket or path errors alike
                raise _kernel_failure(
                    report, f"could not start its kernel: {exc}", workdir
                ) from exc
            import papermill
            from papermill.exceptions import PapermillExecutionError

            if imported is not None:
                imported.set()

            try:
                with _own_signal_handling():
                    nb = papermill.execute_notebook(
                        str(notebook_path(report)),
                        str(executed),
                        parameters=params,
                        kernel_name="rehabstats-python",
                        language="python",
                        progress_bar=progress_bar,
                        log_output=False,
                        request_save_on_cell_execute=False,
                        start_timeout=start_timeout,
                        execution_timeout=timeout,
                        km=km,
                        resources={"metadata": {"path": str(workdir)}},
                    )
            except PapermillExecutionError as exc:
                _stop_if(cancel, report)
                if executed.exists():
                    files.atomic_write(failed, executed.read_bytes())
                raise RenderError(
                    f"report {report!r} failed in cell {exc.exec_count}: {exc.ename}: "
                    f"{exc.evalue}\nThe executed notebook with the full traceback is at {failed}"
                ) from exc
            except (RuntimeError, TimeoutError) as exc:  # the kernel died or did not start
                _stop_if(cancel, report)
                kernel_log.flush()
                raise _kernel_failure(report, f"could not be executed: {exc}", workdir) from exc
            import nbformat

            if params.get("audience") == "external":
                _withhold_paths(nb)
            provenance = _provenance(nb)
            nb.metadata["title"] = provenance.get("title") or REPORTS[report].title
            # the pair's marker: the notebook records a render id, the HTML the same id and
            # the SHA-256 of the notebook's bytes (report_pair_matches checks it)
            render_id = uuid.uuid4().hex
            nb.metadata["rehabstats"] = {"render_id": render_id}
            nb_text = nbformat.writes(nb)
            nb_bytes = nb_text.encode("utf-8")
            nb.metadata["rehabstats"]["notebook_sha256"] = hashlib.sha256(nb_bytes).hexdigest()
            html = to_html(nb)
            problems = external_references(html)
            if problems:
                raise RenderError(
                    "the report would reference content outside the file (refused, it must open "
                    "offline): " + ", ".join(problems[:5])
                )
            if key is not None and (key in nb_text or key in html):
                raise RenderError("the pseudonym key would be written into the report (refused)")
            if secret_source is not None and _leaks(secret_source, nb_text, html):
                raise RenderError(
                    "the database password would be written into the report (refused)"
                )
            _stop_if(cancel, report)
            # both as complete temporary files first; the notebook, then the HTML, replaced
            files.write_files([(notebook_out, nb_bytes), (html_path, html.encode("utf-8"))])
        finally:
            try:
                _close_kernel(km)  # every cell has run: do not wait on the kernel
            finally:
                if kernels is not None and km in kernels:
                    kernels.remove(km)
                kernel_log.close()
    finally:
        files.remove_workdir(workdir)  # the kernel's connection file (and key) with it
    return RenderResult(
        report=report,
        html_path=html_path,
        notebook_path=notebook_out,
        seconds=time.perf_counter() - started,
        parameters=params,
        fingerprint=provenance.get("fingerprint"),
        provenance=provenance,
        render_id=render_id,
    )


_WORKDIR_PREFIX = "rehabstats-render-"
"""Name prefix of a render's private work folder in the temporary folder (kernel files)."""


def _output_paths(out: str | os.PathLike) -> tuple[Path, Path, Path]:
    """The HTML, notebook and failed-notebook paths of ``out``."""
    text = os.fspath(out)
    html_path = Path(text)
    if not text.strip() or html_path.name in ("", ".", ".."):
        raise ParameterError(f"out must be the path of an HTML file, got {text!r}")
    if html_path.suffix.lower() not in (".html", ".htm"):
        html_path = html_path.with_name(html_path.name + ".html")
    html_path = html_path.resolve()
    if html_path.is_dir():
        raise ParameterError(f"out must be the path of an HTML file, {text!r} is a folder")
    return html_path, html_path.with_suffix(".ipynb"), html_path.with_suffix(".failed.ipynb")


def _stop_if(cancel: threading.Event | None, report: str) -> None:
    if cancel is not None and cancel.is_set():
        raise RenderError(f"report {report!r} was cancelled: nothing was written")


def _secret_source(data: Any) -> str | None:
    """``data`` when it is a URL carrying a credential (the Python API accepts one)."""
    from rehabstats.data.sources import secret_in

    if isinstance(data, str | os.PathLike) and secret_in(os.fspath(data)):
        return os.fspath(data)
    return None


def _leaks(source: str, *texts: str) -> bool:
    """Whether a source URL, or its password as it stands in one (``:password@``), appears
    in any of ``texts``."""
    from urllib.parse import urlsplit

    password = urlsplit(source).password
    marks = [source] + ([f":{password}@"] if password else [])
    return any(mark in text for mark in marks for text in texts)


def _check_data(data: str) -> None:
    """Load and validate the cohort folder as the notebook will, before any kernel starts.

    Raises
    ------
    CohortValidationError
        Every problem of the data (as ``rehabstats validate`` lists them).
    """
    import warnings

    from rehabstats.data.folder import load_cohort
    from rehabstats.errors import DataWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the report shows them as data notes
        load_cohort(data)


_META = re.compile(r"<meta\b([^>]*)>", re.I)
_ATTRIBUTE = re.compile(r"""([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def _meta_tags(html_head: str) -> dict[str, str]:
    """``<meta name=... content=...>`` of an HTML head as {name: content} (any attribute order)."""
    out = {}
    for match in _META.finditer(html_head):
        attrs = {k.lower(): a or b for k, a, b in _ATTRIBUTE.findall(match.group(1))}
        if "name" in attrs and "content" in attrs:
            out.setdefault(attrs["name"].lower(), attrs["content"])
    return out


def _html_head(path: Path) -> str:
    with open(path, "rb") as fh:
        text = fh.read(16384).decode("utf-8", "replace")
    end = text.lower().find("</head>")
    return text if end < 0 else text[:end]


def written_by_rehabstats(path: str | os.PathLike) -> bool:
    """Whether a report file (HTML or notebook) was written by rehabstats.

    An HTML report names rehabstats as its generator in its head (``<meta name="generator"
    content="rehabstats">``); a report notebook carries papermill's record of a rehabstats
    report notebook (or rehabstats' render id).
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".html", ".htm"):
            return _meta_tags(_html_head(path)).get("generator") == "rehabstats"
        meta = json.loads(path.read_bytes()).get("metadata", {})
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(meta, dict):
        return False
    source = str((meta.get("papermill") or {}).get("input_path") or "")
    return "rehabstats" in meta or Path(source).name in {f"{r}.ipynb" for r in REPORTS}


def _check_replaceable(*paths: Path) -> None:
    """Refuse to replace a file at a report's paths that rehabstats did not write."""
    for path in paths:
        exists = path.is_symlink() or path.exists()
        if exists and (path.is_dir() or not written_by_rehabstats(path)):
            raise OutputError(
                f"{path} exists and was not written by rehabstats: it is not replaced. "
                "Choose another output name, or move that file away first."
            )


def report_pair_matches(html: str | os.PathLike) -> bool:
    """Whether a report's HTML and the ``.ipynb`` beside it come from the same render.

    The HTML carries the SHA-256 of its notebook's bytes (``<meta
    name="rehabstats-notebook-sha256">``) and the render id the notebook keeps in its metadata
    (``metadata.rehabstats.render_id``, ``<meta name="rehabstats-render-id">``).
    """
    html_path = Path(html)
    try:
        meta = _meta_tags(_html_head(html_path))
        nb_bytes = html_path.with_suffix(".ipynb").read_bytes()
        recorded = json.loads(nb_bytes)["metadata"]["rehabstats"]["render_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    digest, render = meta.get("rehabstats-notebook-sha256"), meta.get("rehabstats-render-id")
    return (
        bool(digest and render)
        and hashlib.sha256(nb_bytes).hexdigest() == digest
        and recorded == render
    )


@contextlib.contextmanager
def _own_signal_handling() -> Any:
    """Keep this process's signal handlers while papermill runs.

    nbclient replaces SIGINT and SIGTERM with handlers of its own event loop that shut the
    kernel down and let the render carry on into a misleading failure; refused here, a signal
    reaches the process's handler (``KeyboardInterrupt``, :func:`rehabstats.files.
    unwind_on_signals`, a batch worker's) and the render unwinds through its clean-up.
    """
    from jupyter_core.utils import ensure_event_loop

    loop = ensure_event_loop()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("signals are handled by rehabstats")

    loop.add_signal_handler = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        del loop.add_signal_handler


def _close_kernel(km: Any) -> None:
    """Stop a render's kernel on every exit path; a plain kill when the manager cannot."""
    import asyncio

    from jupyter_core.utils import ensure_event_loop, run_sync

    process = getattr(getattr(km, "provisioner", None), "process", None)
    try:
        loop = ensure_event_loop()
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if pending:  # an interrupted execution: stop the kernel, then let its tasks end
            if process is not None and process.poll() is None:
                process.kill()
            for task in pending:
                task.cancel()
            ended = asyncio.gather(*pending, return_exceptions=True)
            loop.run_until_complete(asyncio.wait_for(ended, timeout=30))
        run_sync(km.close)()
    except BaseException:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        raise
    finally:
        if process is not None and process.poll() is None:  # pragma: no cover - close failed
            process.kill()
            process.wait(timeout=10)


def _stop_kernels(kernels: Sequence[Any]) -> None:
    """Kill the kernels of renders running in other threads (their renders then unwind)."""
    for km in list(kernels):
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                process.kill()


def render_demo(
    out_dir: str | os.PathLike = "reports",
    *,
    participants: int | None = None,
    seed: int | None = None,
    progress: bool | None = None,
    parallel: bool = True,
) -> list[RenderResult]:
    """Render every report on the embedded demo cohort into ``out_dir``.

    The reports run side by side (one kernel each) when ``parallel``; each simulates the same
    demo cohort (same size and seed) in its own kernel. Start-up is staggered to the cores: a
    kernel's start (interpreter, libraries) competes with this process importing papermill, so
    with ``n`` cores the first ``n - 1`` reports (at least one; the heaviest come first in
    :data:`REPORTS`) start their kernels at once and the others once papermill is imported.
    Interrupted (``KeyboardInterrupt``, a signal turned into one), every running render is
    stopped and writes nothing.

    Returns
    -------
    list of RenderResult
        In the order of :data:`REPORTS`.
    """
    from concurrent.futures import ThreadPoolExecutor

    out = files.make_folder(out_dir)
    params: dict[str, Any] = {}
    if participants is not None:
        params["demo_participants"] = participants
    if seed is not None:
        params["demo_seed"] = seed
    if progress is None:
        progress = sys.stderr.isatty()

    at_once = max(1, (os.cpu_count() or 1) - 1) if parallel else len(REPORTS)
    imported = threading.Event()
    cancel = threading.Event()
    kernels: list[Any] = []

    def one(position: int, name: str) -> RenderResult:
        bar: bool | dict[str, Any] = {"position": position} if progress else False
        try:
            return _render(
                name,
                None,
                out=out / f"{name}.html",
                parameters=params,
                progress=bar,
                timeout=_CELL_TIMEOUT,
                start_timeout=_START_TIMEOUT,
                start_after=imported if position >= at_once else None,
                imported=imported if position == 0 else None,
                cancel=cancel,
                kernels=kernels,
            )
        finally:
            imported.set()  # also when the first report failed before importing papermill

    names = list(REPORTS)
    if not parallel:
        return [one(i, name) for i, name in enumerate(names)]
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = [pool.submit(one, i, name) for i, name in enumerate(names)]
        try:
            return [f.result() for f in futures]
        except BaseException:
            cancel.set()  # the others write nothing and stop at their next step
            imported.set()
            _stop_kernels(kernels)
            raise


def _check_config(path: str) -> None:
    from rehabstats.config import AnalysisConfig
    from rehabstats.errors import ConfigError

    try:
        AnalysisConfig.from_yaml(path)
    except ConfigError as exc:
        raise ParameterError(f"config_file {path}: {exc}") from None
    except Exception as exc:  # unreadable YAML
        raise ParameterError(f"config_file {path} could not be read: {exc}") from None


_WITHHELD_PATHS = ("data", "config_file", "pseudonym_key_file")


def _withhold_paths(nb: Any) -> None:
    """Paths out of an external report's notebook: papermill's record of the parameters and
    its injected-parameters cell (a folder or file name can hold names or ids; the report
    identifies its data by the fingerprint instead)."""
    recorded = nb.metadata.get("papermill", {}).get("parameters", {})
    for name in _WITHHELD_PATHS:
        if recorded.get(name) is not None:
            recorded[name] = "withheld (external report)"
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell.source = "\n".join(
                f"{line.split('=', 1)[0].strip()} = 'withheld (external report)'"
                if line.split("=", 1)[0].strip() in _WITHHELD_PATHS
                and line.split("=", 1)[1].strip() != "None"
                else line
                for line in cell.source.splitlines()
            )


def _provenance(nb: Any) -> dict[str, Any]:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PROVENANCE_MIMETYPE in data:
                value = data[PROVENANCE_MIMETYPE]
                return json.loads(value) if isinstance(value, str) else dict(value)
    return {}


_TOC_HEADING = re.compile(r'<h2 id="([^"]+)">(.*?)<a class="anchor-link"', re.S)
_TOC_PLACEHOLDER = '<nav class="rs-toc" data-rs-toc=""></nav>'


_EXPORTER_LOCK = threading.Lock()


@functools.cache
def _exporter() -> Any:
    """The report's nbconvert HTML exporter (use under ``_EXPORTER_LOCK``)."""
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="rehabstats_report",
        extra_template_basedirs=[str(template_dir())],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
        anchor_link_text="",
    )


def to_html(nb: Any) -> str:
    """An executed report notebook as self-contained HTML (no inputs, no prompts, no scripts).

    The header's table-of-contents placeholder is filled with links to the ``##`` sections.
    """
    with _EXPORTER_LOCK:  # one exporter per process: its templates are compiled once
        body, _ = _exporter().from_notebook_node(nb)
    headings = _TOC_HEADING.findall(body)
    if headings and _TOC_PLACEHOLDER in body:
        links = "".join(
            f'<li><a href="#{anchor}">{re.sub(r"<[^>]+>", "", text).strip()}</a></li>'
            for anchor, text in headings
        )
        body = body.replace(
            _TOC_PLACEHOLDER,
            f'<nav class="rs-toc" aria-label="Contents"><strong>Contents</strong><ol>{links}</ol>'
            "</nav>",
            1,
        )
    return body


_REFERENCE = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed|object|track)\b[^>]*?"
    r"\b(src|href|data|srcset|poster)\s*=\s*[\"']?([^\"'\s>]+)",
    re.I,
)
_CSS_URL = re.compile(r"url\(\s*[\"']?([^\"')]+)", re.I)
_IMPORT = re.compile(r"@import\s+[\"']?([^\"';\s]+)", re.I)


def external_references(html: str) -> list[str]:
    """Every reference in the HTML that would make the browser load something else.

    Checks ``src``/``href``/``data`` of script, link, img, iframe, media and object tags, CSS
    ``url(...)`` and ``@import``. Data URIs and in-page anchors (``#...``) are fine; anything
    else (``http(s)://``, protocol-relative ``//``, relative or ``file:`` paths) is returned.
    """
    found = [m.group(3) for m in _REFERENCE.finditer(html)]
    found += _CSS_URL.findall(html) + _IMPORT.findall(html)
    return [ref for ref in found if not ref.startswith(("data:", "#"))]
