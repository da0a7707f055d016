"""Unattended report runs: a job file (YAML) rendered into many reports, safely and incrementally.

``rehabstats batch JOBS.yaml`` (see ``docs/batch.md`` for the job file, key by key):

1. **Load and check the job file** (:func:`load_jobs`): every problem at once (unknown or missing
   keys, unknown reports, impossible fan-outs, outputs outside the output folder or colliding),
   or :class:`JobFileError` and nothing runs.
2. **Lock** the output folder (``fcntl.flock`` on ``<output_dir>/.rehabstats-batch.lock``): a
   second overlapping run exits at once with :data:`EXIT_LOCKED`, or waits (``--wait``).
3. **Plan** (:func:`plan_jobs`): load and validate each data folder once (its
   :meth:`~rehabstats.Cohort.fingerprint`), fan jobs out over a column's values, validate every
   job's parameters with :func:`rehabstats.report.render.validate_parameters` — all before any kernel
   starts. A job with missing data, an invalid cohort or a bad parameter fails here, alone.
   A job whose inputs (data fingerprint, parameters, notebook, analysis configuration,
   rehabstats code and package versions) equal those of its last successful run, and whose
   outputs are still those that run wrote, is skipped.
4. **Run** each remaining job in its own worker process (``spawn``; its own kernel and working
   directory), at most ``workers`` at a time. The worker renders into a private temporary folder,
   checks the data did not change meanwhile, then moves the executed notebook and the HTML into
   place (temporary file in the target folder, ``fsync``, ``os.replace``) and writes the job's
   manifest last. A job that fails or is killed leaves the previous report untouched; a failed
   notebook is kept as ``<name>.failed.ipynb``.
5. **Report**: a manifest per job (``<name>.manifest.json``), ``index.html`` listing every report
   of the output folder, and a summary table; exit :data:`EXIT_OK` or :data:`EXIT_FAILED`.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import difflib
import fcntl
import hashlib
import html
import json
import multiprocessing
import os
import platform
import re
import signal
import socket
import sys
import time
import traceback
import urllib.parse
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rehabstats import files
from rehabstats.errors import OutputError, RehabstatsError
from rehabstats.report.render import written_by_rehabstats

__all__ = [
    "AUDIENCES",
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_LOCKED",
    "EXIT_OK",
    "BatchLockedError",
    "BatchResult",
    "Job",
    "JobFile",
    "JobFileError",
    "JobResult",
    "RunLock",
    "Task",
    "load_jobs",
    "plan_jobs",
    "run_batch",
    "write_index",
]

EXIT_OK = 0
"""Every job rendered or skipped as up to date."""
EXIT_FAILED = 1
"""At least one job failed (the others ran; see the summary, manifests and index)."""
EXIT_INVALID = 2
"""The job file (or the command line) is invalid: nothing ran."""
EXIT_LOCKED = 75
"""Another batch run holds the output folder's lock (``EX_TEMPFAIL``: try again later)."""

AUDIENCES: tuple[str, ...] = ("internal", "external")
"""Who a report is for; ``external`` reports are only rendered by reports that protect privacy."""

LOCK_NAME = ".rehabstats-batch.lock"
_STAGE_PREFIX = "rehabstats-batch-"
"""Name prefix of a worker's private staging folder in the temporary folder."""
FAN_OUT_FAILED = "ALL"
"""Stands for the fan-out value in the output path of a fanned-out job whose data failed."""
INDEX_NAME = "index.html"
MANIFEST_VERSION = 1

_TOP_KEYS = ("version", "output_dir", "workers", "defaults", "jobs")
_JOB_KEYS = (
    "name",
    "report",
    "data",
    "output",
    "audience",
    "parameters",
    "for_each",
    "timeout",
    "enabled",
)
_REQUIRED = ("name", "report", "data", "output", "audience")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_VERSIONED = (
    "pandas",
    "numpy",
    "scipy",
    "statsmodels",
    "pingouin",
    "matplotlib",
    "seaborn",
    "pandera",
    "pyarrow",
    "papermill",
    "nbconvert",
    "nbformat",
    "ipykernel",
    "jupyter_client",
)


class JobFileError(RehabstatsError, ValueError):
    """The job file is invalid; the message lists every problem. Nothing was run."""

    def __init__(self, path: str | os.PathLike, problems: Sequence[str]):
        self.path = Path(path)
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(
            f"{path}: {n} problem{'s' if n != 1 else ''} in the job file; nothing was run. "
            "Fix each below (docs/batch.md describes every key):\n  - "
            + "\n  - ".join(self.problems)
        )


class BatchLockedError(RehabstatsError, RuntimeError):
    """Another batch run is writing the same output folder."""


# ---- the job file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One entry of ``jobs:`` with the ``defaults`` applied (before any fan-out).

    Attributes
    ----------
    name : str
        Unique name (letters, digits, ``_.-``); fanned-out jobs are named ``name:value``.
    report : str
        A report of :func:`rehabstats.report.render.report_names`.
    data : Path
        Cohort folder (absolute; relative paths in the file are relative to its folder).
    output : str
        HTML path relative to the output folder, possibly with ``{name}`` and ``{<for_each>}``.
    audience : {"internal", "external"}
    parameters : dict
        Report parameters (path parameters made absolute).
    for_each : str or None
        Participant column to fan out over (one report per distinct value).
    timeout : float or None
        Longest time one notebook cell may run, in seconds (None: no limit).
    enabled : bool
        False: not run (unless named with ``--only``).
    """

    name: str
    report: str
    data: Path
    output: str
    audience: str
    parameters: dict[str, Any] = field(default_factory=dict)
    for_each: str | None = None
    timeout: float | None = 1800.0
    enabled: bool = True


@dataclass(frozen=True)
class JobFile:
    """A checked job file: where outputs go, the default worker count and the jobs."""

    path: Path
    output_dir: Path
    workers: int | None
    jobs: tuple[Job, ...]

    def job(self, name: str) -> Job:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML safe loader refusing a key given twice in one mapping (PyYAML keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} given twice (first on line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# a date stays the text written: 2024-13-01 is refused by the parameter's rule, not a crash
_UniqueKeyLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)


def _unknown_key(where: str, key: Any, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(valid)}"


def _placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def _substitute(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _resolve(base: Path, value: str | os.PathLike) -> Path:
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def load_jobs(path: str | os.PathLike) -> JobFile:
    """Read and check a job file; every problem is reported at once.

    Parameters
    ----------
    path : path
        The YAML job file (``docs/batch.md``). Relative paths in it (``output_dir``, ``data``,
        path parameters such as ``config_file``) are relative to the file's folder.

    Returns
    -------
    JobFile

    Raises
    ------
    JobFileError
        Listing every problem: unreadable YAML, unknown or missing keys, unknown reports,
        duplicate names, bad audiences, fan-outs the report cannot do, outputs that leave the
        output folder, collide or lack the fan-out placeholder. Parameter *values*, the data
        folders and the cohorts are checked per job when planning (a bad one fails that job
        only).
    """
    from rehabstats.report.render import REPORTS

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JobFileError(path, [f"cannot be read: {exc.strerror or exc}"]) from None
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise JobFileError(path, [f"{where}not valid YAML: {problem}"]) from None
    if not isinstance(doc, dict):
        raise JobFileError(
            path, ["must be a mapping with the keys jobs (required), defaults, output_dir..."]
        )
    base = path.resolve().parent
    problems: list[str] = []
    for key in doc:
        if key not in _TOP_KEYS:
            problems.append(_unknown_key("top level", key, _TOP_KEYS))
    version = doc.get("version", 1)
    if version != 1:
        problems.append(
            f"version: must be 1 (the job file format this rehabstats reads), got {version!r}"
        )
    output_dir = doc.get("output_dir", "reports")
    if not isinstance(output_dir, str) or not output_dir.strip():
        problems.append(f"output_dir: must be a folder path, got {output_dir!r}")
        output_dir = "reports"
    out_root = _resolve(base, output_dir)
    if out_root.exists() and not out_root.is_dir():
        problems.append(f"output_dir: {out_root} is a file, not a folder")
    workers = doc.get("workers")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        problems.append(f"workers: must be a whole number >= 1, got {workers!r}")
        workers = None

    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append("defaults: must be a mapping of job keys")
        defaults = {}
    for key in defaults:
        if key == "name":
            problems.append("defaults: 'name' cannot have a default (each job names itself)")
        elif key not in _JOB_KEYS:
            problems.append(_unknown_key("defaults", key, [k for k in _JOB_KEYS if k != "name"]))
    if "parameters" in defaults and not isinstance(defaults["parameters"], dict):
        problems.append("defaults: parameters must be a mapping of report parameters")
        defaults = {k: v for k, v in defaults.items() if k != "parameters"}

    entries = doc.get("jobs")
    if not isinstance(entries, list) or not entries:
        problems.append("jobs: must be a list with at least one job")
        entries = []

    jobs: list[Job] = []
    names: dict[str, int] = {}
    outputs: dict[Path, str] = {}
    for i, entry in enumerate(entries, start=1):
        where = f"jobs[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping (name, report, data, output, audience...)")
            continue
        if isinstance(entry.get("name"), str):
            where = f"jobs[{i}] ({entry['name']})"
        unknown = [k for k in entry if k not in _JOB_KEYS]
        problems.extend(_unknown_key(where, k, _JOB_KEYS) for k in unknown)
        if "parameters" in entry and not isinstance(entry["parameters"], dict):
            problems.append(f"{where}: parameters must be a mapping of report parameters")
            continue
        merged = {k: v for k, v in defaults.items() if k in _JOB_KEYS and k != "name"}
        merged.update({k: v for k, v in entry.items() if k in _JOB_KEYS})
        merged["parameters"] = {
            **(defaults.get("parameters") or {}),
            **(entry.get("parameters") or {}),
        }
        missing = [k for k in _REQUIRED if merged.get(k) is None]
        if missing:
            problems.append(
                f"{where}: missing {', '.join(missing)} (give each in the job or in defaults)"
            )
            continue
        job_problems = _check_job(where, merged, REPORTS)
        if job_problems:
            problems.extend(job_problems)
            continue
        name = merged["name"]
        if name in names:
            problems.append(f"{where}: name {name!r} is already used by jobs[{names[name]}]")
            continue
        names[name] = i
        params = dict(merged["parameters"])
        spec = REPORTS[merged["report"]]
        for p in spec.parameters:
            value = params.get(p.name)
            if (
                p.type == "path"
                and isinstance(value, str)
                and value.strip().lower()
                not in (
                    "",
                    "none",
                    "null",
                )
            ):
                params[p.name] = str(_resolve(base, value))
        output = merged["output"]
        target = _resolve(out_root, _substitute(output, {"name": name}))
        if not target.is_relative_to(out_root):
            problems.append(
                f"{where}: output {output!r} leaves the output folder {out_root}; outputs must "
                "be inside output_dir (the lock, the index and the manifests cover that folder)"
            )
            continue
        if target == out_root / INDEX_NAME:
            problems.append(f"{where}: output {output!r} would overwrite the batch's index.html")
            continue
        if not merged.get("for_each"):
            if target in outputs:
                problems.append(
                    f"{where}: output {output!r} is also the output of job {outputs[target]!r}"
                )
                continue
            outputs[target] = name
        timeout = merged.get("timeout", 1800)
        jobs.append(
            Job(
                name=name,
                report=merged["report"],
                data=_resolve(base, merged["data"]),
                output=output,
                audience=merged["audience"],
                parameters=params,
                for_each=merged.get("for_each"),
                timeout=None if timeout is None else float(timeout),
                enabled=merged.get("enabled", True),
            )
        )
    if problems:
        raise JobFileError(path, problems)
    return JobFile(path=path.resolve(), output_dir=out_root, workers=workers, jobs=tuple(jobs))


def _check_job(where: str, job: Mapping[str, Any], reports: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    name = job["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(
            f"{where}: name must be letters, digits, '_', '.' or '-' (no spaces), got {name!r}"
        )
    report = job["report"]
    if report not in reports:
        close = difflib.get_close_matches(str(report), list(reports), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(
            f"{where}: unknown report {report!r}{hint}; available: {', '.join(reports)}"
        )
    if not isinstance(job["data"], str) or not job["data"].strip():
        problems.append(f"{where}: data must be the path of a cohort folder, got {job['data']!r}")
    if job["audience"] not in AUDIENCES:
        problems.append(
            f"{where}: audience must be one of {', '.join(AUDIENCES)}, got {job['audience']!r}"
        )
    timeout = job.get("timeout", 1800)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        problems.append(f"{where}: timeout must be seconds > 0 or null, got {timeout!r}")
    if not isinstance(job.get("enabled", True), bool):
        problems.append(f"{where}: enabled must be true or false, got {job.get('enabled')!r}")
    params = job["parameters"]
    if "data" in params:
        problems.append(f"{where}: give the cohort folder as the job's data key, not a parameter")
    if "audience" in params:
        problems.append(f"{where}: give the audience as the job's audience key, not a parameter")
    for_each = job.get("for_each")
    output = job["output"]
    if not isinstance(output, str) or not output.strip():
        problems.append(f"{where}: output must be an HTML file path, got {output!r}")
        return problems
    if not output.lower().endswith(".html"):
        problems.append(f"{where}: output must end with .html, got {output!r}")
    allowed = {"name"} | ({for_each} if isinstance(for_each, str) else set())
    for placeholder in sorted(_placeholders(output) - allowed):
        problems.append(
            f"{where}: output {output!r} uses {{{placeholder}}}; only {{name}}"
            + (f" and {{{for_each}}}" if isinstance(for_each, str) else "")
            + " can be used"
        )
    if for_each is not None:
        if not isinstance(for_each, str):
            problems.append(f"{where}: for_each must be a column name, got {for_each!r}")
        elif report in reports:
            spec = reports[report]
            selectable = [
                p.name for p in spec.parameters if p.name in _SELECTABLE and p.type == "str"
            ]
            if for_each not in selectable:
                problems.append(
                    f"{where}: report {report!r} cannot fan out over {for_each!r}: it has no "
                    f"{for_each!r} parameter selecting one subset; it can fan out over: "
                    + (", ".join(selectable) or "nothing")
                )
            elif for_each in params:
                problems.append(
                    f"{where}: parameter {for_each!r} is set by for_each: {for_each}; remove it"
                )
            elif f"{{{for_each}}}" not in output:
                problems.append(
                    f"{where}: output {output!r} must contain {{{for_each}}} so that each "
                    f"{for_each} gets its own file"
                )
    return problems


_SELECTABLE = ("site", "arm", "tendinopathy_type", "sex")
"""Participant columns a job can fan out over, when the report has a parameter of that name."""


# ---- planning --------------------------------------------------------------------------------


@dataclass
class Task:
    """One report to render (a job, or one value of a fanned-out job).

    ``error`` is set when the task failed before running (missing data, invalid cohort, bad
    parameter); ``skip`` when it is up to date; ``reason`` says why it runs or is skipped.
    """

    name: str
    job: str
    report: str
    html: Path
    audience: str
    parameters: dict[str, Any]
    fan_out: dict[str, str] | None
    timeout: float | None
    data: Path
    inputs: dict[str, Any] = field(default_factory=dict)
    data_info: dict[str, Any] = field(default_factory=dict)
    snapshot: list[list[Any]] = field(default_factory=list)
    previous: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    skip: bool = False
    reason: str = ""
    submitted: float | None = None

    @property
    def notebook(self) -> Path:
        return self.html.with_suffix(".ipynb")

    @property
    def failed_notebook(self) -> Path:
        return self.html.with_suffix(".failed.ipynb")

    @property
    def manifest(self) -> Path:
        return self.html.with_suffix(".manifest.json")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _code_sha256() -> str:
    """SHA-256 of the rehabstats package and data contract files (code changes re-render)."""
    from rehabstats.constants import data_schema_dir

    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for root in (here, data_schema_dir()):
        for file in sorted(root.rglob("*")):
            if not file.is_file() or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            digest.update(f"{root.name}/{file.relative_to(root).as_posix()}\0".encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("rehabstats", *_VERSIONED):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _snapshot(folder: Path) -> list[list[Any]]:
    """Name, size, mtime and inode of each file of a data folder (to notice changes)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    out = []
    for entry in entries:
        try:
            st = entry.stat()
        except OSError:
            continue
        out.append([entry.name, st.st_size, st.st_mtime_ns, st.st_ino])
    return out


def _error(exc: BaseException | str, kind: str | None = None) -> dict[str, str]:
    message = str(exc) if not isinstance(exc, str) else exc
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    summary = lines[0] if lines else ""
    if summary.endswith(":") and len(lines) > 1:  # "invalid parameters for report 'x':" + first
        summary = f"{summary} {lines[1]}"
    return {
        "type": kind or (type(exc).__name__ if not isinstance(exc, str) else "Error"),
        "summary": summary[:300],
        "message": message[:8000],
    }


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


_INPUT_LABELS = {
    "report": "the report changed",
    "notebook_sha256": "the notebook changed",
    "data_fingerprint": "the data changed",
    "parameters": "the parameters changed",
    "config_sha256": "the analysis configuration file changed",
    "audience": "the audience changed",
    "code_sha256": "the rehabstats code changed",
    "versions": "package versions changed",
}


def _why_run(task: Task, *, force: bool) -> str | None:
    """Why the task must run; None when it is up to date (its last success had these inputs)."""
    if force:
        return "--force"
    previous = task.previous
    if previous is None:
        return "first run" if not task.manifest.exists() else "manifest unreadable"
    last = previous.get("last_success")
    if not last:
        return "no successful run yet"
    if last.get("inputs") != task.inputs:
        old = last.get("inputs") or {}
        changed = [
            label for key, label in _INPUT_LABELS.items() if old.get(key) != task.inputs.get(key)
        ]
        return "; ".join(changed) or "inputs changed"
    outputs = last.get("outputs") or {}
    for path, key in ((task.html, "html_sha256"), (task.notebook, "notebook_sha256")):
        if not path.is_file():
            return f"{path.name} is missing"
        if _sha256_file(path) != outputs.get(key):
            return f"{path.name} differs from the last successful run"
    return None


def plan_jobs(
    jobfile: JobFile,
    *,
    only: Sequence[str] | None = None,
    force: bool = False,
) -> list[Task]:
    """The tasks of a run: fanned out, parameters validated, skip decisions made.

    Nothing is rendered and nothing is written. Each data folder is loaded and validated once.

    Parameters
    ----------
    jobfile : JobFile
    only : sequence of str, optional
        Job names (all of a fanned-out job) or task names (``job:value``) to plan; a job
        disabled with ``enabled: false`` is planned when named here.
    force : bool
        Plan every task to run even when up to date.

    Raises
    ------
    JobFileError
        When a name in ``only`` matches no job or task.
    """
    from rehabstats.report.render import REPORTS, notebook_path, validate_parameters

    wanted = set(only or ())
    known = {job.name for job in jobfile.jobs}
    unknown_bases = sorted({name.split(":", 1)[0] for name in wanted} - known)
    if unknown_bases:
        raise JobFileError(
            jobfile.path,
            [
                f"--only {name!r}: no such job; jobs: {', '.join(sorted(known))}"
                for name in unknown_bases
            ],
        )
    jobs = [
        job
        for job in jobfile.jobs
        if (job.name in wanted or any(n.startswith(job.name + ":") for n in wanted))
        or (not wanted and job.enabled)
    ]
    versions = _versions()
    code = _code_sha256()
    cohorts: dict[Path, dict[str, Any]] = {}
    tasks: list[Task] = []
    for job in jobs:
        info = cohorts.get(job.data)
        if info is None:
            info = cohorts[job.data] = _load_data(
                job.data, [j.for_each for j in jobs if j.data == job.data]
            )
        notebook = notebook_path(job.report)
        base_inputs = {
            "report": job.report,
            "notebook_sha256": _sha256_file(notebook),
            "data_fingerprint": info.get("fingerprint"),
            "audience": job.audience,
            "code_sha256": code,
            "versions": versions,
        }
        if job.for_each is None:
            expansions: list[dict[str, str] | None] = [None]
        elif "error" in info:
            expansions = [None]
        else:
            expansions = [{job.for_each: v} for v in info["values"][job.for_each]]
        for fan_out in expansions:
            task = _make_task(
                jobfile, job, fan_out, info, base_inputs, REPORTS, validate_parameters
            )
            tasks.append(task)
    _fail_collisions(tasks)
    if wanted:
        names = {t.name for t in tasks}
        missing = sorted(n for n in wanted if ":" in n and n not in names)
        if missing:
            raise JobFileError(
                jobfile.path,
                [
                    f"--only {n!r}: no such fanned-out report; there are: {', '.join(sorted(names))}"
                    for n in missing
                ],
            )
        tasks = [t for t in tasks if t.name in wanted or t.job in wanted]
    for task in tasks:
        task.previous = _read_manifest(task.manifest)
        if task.error is not None:
            task.reason = "invalid before running"
            continue
        why = _why_run(task, force=force)
        if why is None:
            when = (task.previous or {}).get("last_success", {}).get("finished_at", "?")
            task.skip = True
            task.reason = f"up to date (unchanged since {when})"
        else:
            task.reason = why
    return tasks


def _load_data(folder: Path, columns: Iterable[str | None]) -> dict[str, Any]:
    from rehabstats.data.folder import load_cohort

    info: dict[str, Any] = {"path": str(folder)}
    if not folder.is_dir():
        info["error"] = _error(
            f"data folder not found: {folder} (relative paths are relative to the job file's "
            "folder)",
            "DataNotFound",
        )
        return info
    info["snapshot"] = _snapshot(folder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cohort = load_cohort(folder)
    except RehabstatsError as exc:
        info["error"] = _error(exc)
        return info
    except Exception as exc:  # an unreadable file the loader did not anticipate
        info["error"] = _error(exc)
        return info
    info["fingerprint"] = cohort.fingerprint()
    info["participants"] = cohort.n_participants
    info["values"] = {}
    for column in {c for c in columns if c}:
        values = cohort.participants[column].dropna().astype("str").unique().tolist()
        info["values"][column] = sorted(values)
    return info


def _make_task(
    jobfile: JobFile,
    job: Job,
    fan_out: dict[str, str] | None,
    info: Mapping[str, Any],
    base_inputs: Mapping[str, Any],
    reports: Mapping[str, Any],
    validate: Callable[..., dict[str, Any]],
) -> Task:
    places = {"name": job.name}
    raw = {"name": job.name}
    name = job.name
    if fan_out:
        ((column, value),) = fan_out.items()
        places[column] = _UNSAFE.sub("_", value).strip("._") or "_"
        raw[column] = value
        name = f"{job.name}:{value}"
    elif job.for_each:
        places[job.for_each] = FAN_OUT_FAILED  # the data could not be read: one failed task
    lexical = Path(os.path.normpath(jobfile.output_dir / _substitute(job.output, places)))
    html = lexical.resolve()
    # the final path, after substitution and symbolic links: it must stay in the output folder
    outside = not html.is_relative_to(jobfile.output_dir) or html == jobfile.output_dir / INDEX_NAME
    if outside:
        html = lexical  # named (manifest, summary) where it was meant to be; nothing written
    params = {
        k: _substitute(v, raw) if isinstance(v, str) else v for k, v in job.parameters.items()
    }
    if fan_out:
        params.update(fan_out)
    task = Task(
        name=name,
        job=job.name,
        report=job.report,
        html=html,
        audience=job.audience,
        parameters=params,
        fan_out=dict(fan_out) if fan_out else None,
        timeout=job.timeout,
        data=job.data,
        data_info={
            "path": str(job.data),
            "fingerprint": info.get("fingerprint"),
            "participants": info.get("participants"),
        },
        snapshot=info.get("snapshot", []),
    )
    if outside:
        if lexical.resolve() == jobfile.output_dir / INDEX_NAME:
            problem = "would overwrite the batch's index.html"
        else:
            problem = (
                f"leads outside the output folder {jobfile.output_dir} (to "
                f"{lexical.resolve()}, through a symbolic link)"
            )
        task.error = _error(
            f"output {job.output!r} of {name} {problem}: refused, nothing is written there",
            "OutputOutsideFolder",
        )
        return task
    if "error" in info:
        task.error = dict(info["error"])
        return task
    foreign = [
        path
        for path in (task.html, task.notebook, task.failed_notebook)
        if (path.exists() or path.is_symlink()) and not written_by_rehabstats(path)
    ]
    if foreign:
        task.error = _error(
            f"{foreign[0]} exists and was not written by rehabstats: it is not replaced; "
            "choose another output, or move that file away",
            "OutputNotOurs",
        )
        return task
    accepts = {p.name for p in reports[job.report].parameters}
    values = {**params, "data": str(job.data)}
    if "audience" in accepts:
        values["audience"] = job.audience
    elif job.audience != "internal":
        task.error = _error(
            f"report {job.report!r} cannot be rendered for audience {job.audience!r} yet: it "
            "has no 'audience' parameter (small-cell suppression, pseudonymised ids), so it "
            "was refused rather than rendered unprotected for readers outside the team",
            "AudienceNotSupported",
        )
        return task
    try:
        task.parameters = validate(job.report, values)
    except RehabstatsError as exc:
        task.error = _error(exc)
        return task
    config = task.parameters.get("config_file")
    task.inputs = {
        **base_inputs,
        "parameters": task.parameters,
        "config_sha256": _sha256_file(Path(config)) if config else None,
    }
    return task


def _fail_collisions(tasks: list[Task]) -> None:
    by_output: dict[Path, list[Task]] = {}
    for task in tasks:
        by_output.setdefault(task.html, []).append(task)
    for same in by_output.values():
        if len(same) > 1:
            names = ", ".join(t.name for t in same)
            for task in same:
                if task.error is None:
                    task.error = _error(
                        f"{names} would all write {task.html}; their values differ only in "
                        "characters unsafe in file names",
                        "OutputCollision",
                    )


# ---- files -----------------------------------------------------------------------------------


def _file_mode() -> int:
    return files.file_mode()


def _install(content: bytes, target: Path, mode: int, root: Path | None = None) -> None:
    """Write ``target`` atomically (:func:`rehabstats.files.atomic_write`), creating its folder;
    with ``root``, only if the folder really is inside ``root`` (checked again right before the
    file is replaced: a symbolic link created meanwhile cannot lead the write out)."""
    files.make_folder(target.parent, within=root)
    files.atomic_write(target, content, mode=mode, within=root)


def _remove(path: Path, root: Path) -> None:
    """Delete a file rehabstats wrote in the output folder (never through a link leading out)."""
    if _really_inside(path.parent, root):
        path.unlink(missing_ok=True)


def _really_inside(folder: Path, root: Path) -> bool:
    return Path(os.path.realpath(folder)).is_relative_to(os.path.realpath(root))


def _sweep(task: Task, root: Path) -> None:
    """Finish or remove what a killed earlier run left beside this task's outputs."""
    folder = task.html.parent
    if not folder.is_dir() or not _really_inside(folder, root):
        return
    names = [p.name for p in (task.html, task.notebook, task.failed_notebook, task.manifest)]
    files.sweep(folder, names)


def _iso(timestamp: float) -> str:
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _now() -> str:
    return _iso(time.time())


def _manifest(
    task: Task,
    ctx: Mapping[str, Any],
    *,
    status: str,
    started: str,
    finished: str,
    seconds: float,
    error: dict[str, str] | None = None,
    outputs: dict[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    root = Path(ctx["output_dir"])
    rel = {
        "html": task.html.relative_to(root).as_posix(),
        "notebook": task.notebook.relative_to(root).as_posix(),
        "failed_notebook": task.failed_notebook.relative_to(root).as_posix()
        if task.failed_notebook.exists()
        else None,
    }
    doc: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "job": task.name,
        "job_name": task.job,
        "fan_out": task.fan_out,
        "job_file": ctx["job_file"],
        "output_dir": str(root),
        "run_id": ctx["run_id"],
        "host": ctx["host"],
        "status": status,
        "reason": task.reason,
        "started_at": started,
        "finished_at": finished,
        "seconds": round(seconds, 3),
        "report": task.report,
        "audience": task.audience,
        "notebook": {"sha256": task.inputs.get("notebook_sha256")},
        "data": task.data_info,
        "parameters": task.parameters,
        "config_file": (
            {"path": task.parameters.get("config_file"), "sha256": task.inputs.get("config_sha256")}
            if task.parameters.get("config_file")
            else None
        ),
        "versions": task.inputs.get("versions") or ctx.get("versions"),
        "code_sha256": task.inputs.get("code_sha256"),
        "inputs_sha256": hashlib.sha256(
            json.dumps(task.inputs, sort_keys=True, default=str).encode()
        ).hexdigest()
        if task.inputs
        else None,
        "outputs": {**rel, **(outputs or {})},
        "report_provenance": dict(provenance or {}),
        "error": error,
    }
    last = (task.previous or {}).get("last_success")
    if status == "ok":
        last = {
            key: doc[key]
            for key in ("run_id", "started_at", "finished_at", "outputs", "report_provenance")
        }
        last["inputs"] = task.inputs
    elif status == "skipped" and last:
        doc["outputs"] = {
            **doc["outputs"],
            **{k: v for k, v in last["outputs"].items() if k.endswith("sha256")},
        }
        doc["report_provenance"] = last.get("report_provenance", {})
    doc["last_success"] = last
    return doc


def _write_manifest(task: Task, doc: Mapping[str, Any], mode: int, root: Path) -> None:
    text = json.dumps(doc, indent=2, default=str) + "\n"
    try:
        _install(text.encode("utf-8"), task.manifest, mode, root)
    except OutputError:  # its place leads out of the output folder: the summary says so
        if (task.error or {}).get("type") != "OutputOutsideFolder":
            raise


# ---- the worker ------------------------------------------------------------------------------


def _worker_init(parent_pid: int) -> None:
    """Set a worker up: own session, dies with the batch process, SIGTERM cleans up."""
    os.setsid()  # a Ctrl-C on the terminal reaches the batch process only; it stops workers
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: the parent's death -> SIGTERM
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            pass
    if os.getppid() != parent_pid:  # the batch process died while this worker started
        os._exit(1)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds render_report: its temporary folder is removed

    signal.signal(signal.SIGTERM, stop)


def _run_task(task: Task, ctx: Mapping[str, Any]) -> dict[str, Any]:
    """Render one task in a worker process and move its outputs into place (see module doc).

    Stopped by SIGTERM (the batch process was interrupted or died), the render unwinds (its
    temporary folders are removed, nothing is moved into place) and the worker exits at once:
    a ``spawn`` pool worker would otherwise report the exit and wait for more work forever.
    """
    try:
        return _render_task(task, ctx)
    except SystemExit as exc:
        os._exit(exc.code if isinstance(exc.code, int) else 1)


def _render_task(task: Task, ctx: Mapping[str, Any]) -> dict[str, Any]:
    from rehabstats.report.render import _START_TIMEOUT, _render

    started, clock = _now(), time.perf_counter()
    mode = ctx["mode"]
    root = Path(ctx["output_dir"])
    stage = files.make_workdir(_STAGE_PREFIX)
    _remove(task.failed_notebook, root)  # it belongs to an older run
    error: dict[str, str] | None = None
    outputs: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    try:
        staged = stage / task.html.name
        try:
            result = _render(  # render_report, without loading the data planning checked
                task.report,
                None,
                out=staged,
                parameters=task.parameters,
                progress=False,
                timeout=task.timeout,
                start_timeout=_START_TIMEOUT,
                check_data=False,
            )
        except RehabstatsError as exc:
            failed = staged.with_suffix(".failed.ipynb")
            # the message names the staged copy, removed below: name the one kept instead
            error = _error(
                str(exc).replace(str(failed), str(task.failed_notebook)), type(exc).__name__
            )
            if failed.exists():
                try:
                    _install(failed.read_bytes(), task.failed_notebook, mode, root)
                except OutputError as install_error:
                    error["message"] += f"\nThe failed notebook was not kept: {install_error}"
        except Exception as exc:  # an unexpected failure of this job only
            error = _error(
                f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", type(exc).__name__
            )
        else:
            if _snapshot(task.data) != task.snapshot:
                error = _error(
                    f"the data folder {task.data} changed while the report was rendering; the "
                    "report was not kept (the next run renders the new data)",
                    "DataChanged",
                )
            else:
                html_bytes = result.html_path.read_bytes()
                nb_bytes = result.notebook_path.read_bytes()
                try:
                    # the pair together: the notebook, then the HTML (rehabstats.files)
                    files.make_folder(task.html.parent, within=root)
                    files.write_files(
                        [(task.notebook, nb_bytes), (task.html, html_bytes)], mode=mode, within=root
                    )
                except OutputError as exc:
                    error = _error(exc, "OutputOutsideFolder")
                else:
                    _remove(task.failed_notebook, root)
                    outputs = {
                        "html_sha256": hashlib.sha256(html_bytes).hexdigest(),
                        "notebook_sha256": hashlib.sha256(nb_bytes).hexdigest(),
                    }
                    provenance = {
                        key: result.provenance.get(key)
                        for key in ("title", "data_cutoff", "participants", "fingerprint", "run_at")
                    }
    finally:
        files.remove_workdir(stage)
    status = "failed" if error else "ok"
    seconds = time.perf_counter() - clock
    doc = _manifest(
        task,
        ctx,
        status=status,
        started=started,
        finished=_now(),
        seconds=seconds,
        error=error,
        outputs=outputs,
        provenance=provenance,
    )
    _write_manifest(task, doc, mode, root)
    return doc


# ---- the run ---------------------------------------------------------------------------------


class RunLock:
    """An exclusive ``flock`` on ``<output_dir>/.rehabstats-batch.lock`` for one batch run.

    The lock is released by the kernel when the process ends, however it ends; the file is never
    deleted (deleting a lock file lets two runs lock different files). It holds the pid, host,
    start time and job file of the holder, for the message another run prints.
    """

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / LOCK_NAME
        self._fd: int | None = None

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return "unknown holder"
        return (
            f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started_at')}, "
            f"job file {info.get('job_file')}"
        )

    def acquire(
        self,
        *,
        wait: bool = False,
        job_file: str = "",
        on_wait: Callable[[str], None] | None = None,
    ) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise BatchLockedError(
                        f"another batch run is writing {self.path.parent} ({self.holder()}); "
                        "this run did nothing. Run again when it has finished, or use --wait "
                        "to wait for it."
                    ) from None
                if on_wait:
                    on_wait(self.holder())
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": _now(),
                "job_file": job_file,
            }
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class JobResult:
    """The outcome of one task in a run (one row of the summary table)."""

    name: str
    status: str
    seconds: float
    html: Path
    note: str
    manifest: Path | None = None
    error: dict[str, str] | None = None
    failed_notebook: Path | None = None
    previous_report: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """A batch run: every task's result, the index written and the exit code."""

    results: tuple[JobResult, ...]
    output_dir: Path
    index: Path | None
    seconds: float
    exit_code: int
    interrupted: str | None = None

    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "skipped": 0, "failed": 0}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def summary_table(self) -> str:
        """The plain-text table printed at the end of a run: job, status, seconds, output, note."""
        rows = [("job", "status", "seconds", "output", "note")]
        for r in self.results:
            try:
                shown = r.html.relative_to(self.output_dir).as_posix()
            except ValueError:
                shown = str(r.html)
            note = r.error["summary"] if r.error else r.note
            if len(note) > 110:
                note = note[:107] + "..."
            rows.append((r.name, r.status, f"{r.seconds:.1f}", shown, note))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = []
        for row in rows:
            cells = [
                row[0].ljust(widths[0]),
                row[1].ljust(widths[1]),
                row[2].rjust(widths[2]),
                row[3].ljust(widths[3]),
                row[4],
            ]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)


class _Interrupted(Exception):  # noqa: N818 - a signal, not an error
    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def run_batch(
    path: str | os.PathLike,
    *,
    workers: int | None = None,
    force: bool = False,
    wait: bool = False,
    only: Sequence[str] | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> BatchResult:
    """Run a job file: check, lock, plan, render in parallel, write manifests and the index.

    Parameters
    ----------
    path : path
        The job file (``docs/batch.md``).
    workers : int, optional
        Jobs rendered at once, each in its own process and kernel (default: the file's
        ``workers``, else half the CPUs, at most 4).
    force : bool
        Re-render jobs that are up to date.
    wait : bool
        Wait for another run holding the lock instead of raising :class:`BatchLockedError`.
    only : sequence of str, optional
        Run only these jobs (``name``) or fanned-out reports (``name:value``).
    dry_run : bool
        Check and plan only: nothing is locked, rendered or written.
    echo : callable
        Receives progress lines.

    Returns
    -------
    BatchResult
        ``exit_code`` is :data:`EXIT_OK` or :data:`EXIT_FAILED`.

    Raises
    ------
    JobFileError
        The job file or ``only`` is invalid (exit :data:`EXIT_INVALID`); nothing ran.
    BatchLockedError
        Another run holds the lock and ``wait`` is false (exit :data:`EXIT_LOCKED`).
    """
    clock = time.perf_counter()
    jobfile = load_jobs(path)
    n_workers = workers or jobfile.workers or _default_workers()
    if dry_run:
        tasks = plan_jobs(jobfile, only=only, force=force)
        results = tuple(
            JobResult(
                t.name,
                "failed" if t.error else ("skipped" if t.skip else "would run"),
                0.0,
                t.html,
                t.reason,
                error=t.error,
            )
            for t in tasks
        )
        failed = any(t.error for t in tasks)
        return BatchResult(
            results,
            jobfile.output_dir,
            None,
            time.perf_counter() - clock,
            EXIT_FAILED if failed else EXIT_OK,
        )
    lock = RunLock(jobfile.output_dir).acquire(
        wait=wait,
        job_file=str(jobfile.path),
        on_wait=lambda holder: echo(f"waiting for the lock held by {holder}"),
    )
    try:
        return _run_locked(jobfile, n_workers, force=force, only=only, echo=echo, clock=clock)
    finally:
        lock.release()


def _run_locked(
    jobfile: JobFile,
    n_workers: int,
    *,
    force: bool,
    only: Sequence[str] | None,
    echo: Callable[[str], None],
    clock: float,
) -> BatchResult:
    tasks = plan_jobs(jobfile, only=only, force=force)
    ctx = {
        "output_dir": str(jobfile.output_dir),
        "job_file": str(jobfile.path),
        "run_id": f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        "host": socket.gethostname(),
        "mode": _file_mode(),
        "versions": _versions(),
    }
    mode = ctx["mode"]
    root = jobfile.output_dir
    files.sweep_workdirs(_STAGE_PREFIX)  # staging folders of killed workers
    for task in tasks:
        _sweep(task, root)
        if task.error is not None or task.skip:
            _remove(task.failed_notebook, root)  # it belongs to an older run
        if task.fan_out:  # the job expanded again: drop the failure record of its whole data
            job = jobfile.job(task.job)
            places = {"name": job.name, job.for_each or "": FAN_OUT_FAILED}
            stale = (jobfile.output_dir / _substitute(job.output, places)).resolve()
            if stale != task.html and stale.is_relative_to(root):
                _remove(stale.with_suffix(".manifest.json"), root)
    to_run = [t for t in tasks if not t.skip and t.error is None]
    n_workers = max(1, min(n_workers, len(to_run) or 1))
    echo(
        f"rehabstats batch {jobfile.path.name}: {len(tasks)} report{'s' * (len(tasks) != 1)} "
        f"- {len(to_run)} to render, {sum(t.skip for t in tasks)} up to date, "
        f"{sum(t.error is not None for t in tasks)} invalid - {n_workers} "
        f"worker{'s' * (n_workers != 1)}, output {jobfile.output_dir}"
    )
    docs: dict[str, dict[str, Any]] = {}
    done_count = 0

    def finished(task: Task, doc: dict[str, Any]) -> None:
        nonlocal done_count
        docs[task.name] = doc
        done_count += 1
        note = doc["error"]["summary"] if doc.get("error") else doc.get("reason", "")
        echo(
            f"[{done_count}/{len(tasks)}] {task.name}: {doc['status']} "
            f"({doc['seconds']:.1f} s) {note}".rstrip()
        )

    for task in tasks:
        if task.error is not None or task.skip:
            now = _now()
            doc = _manifest(
                task,
                ctx,
                status="failed" if task.error else "skipped",
                started=now,
                finished=now,
                seconds=0.0,
                error=task.error,
            )
            _write_manifest(task, doc, mode, root)
            finished(task, doc)

    interrupted = _execute(to_run, n_workers, ctx, finished, echo)
    for task in to_run:
        if task.name not in docs:  # interrupted before or while rendering
            now = time.time()
            begun = task.submitted or now
            message = (
                f"interrupted ({interrupted}) before the report was finished"
                if interrupted
                else "the worker process rendering it ended abruptly (killed, or out of memory?)"
            )
            task_error = _error(message, "Interrupted" if interrupted else "WorkerDied")
            doc = _manifest(
                task,
                ctx,
                status="failed",
                started=_iso(begun),
                finished=_iso(now),
                seconds=now - begun,
                error=task_error,
            )
            _write_manifest(task, doc, mode, root)
            finished(task, doc)
    planned: dict[str, set[str]] = {}
    for task in tasks:
        planned.setdefault(task.job, set()).add(task.name)
    index = write_index(jobfile.output_dir, job_file=jobfile, planned=planned, mode=mode)
    results = tuple(_result(task, docs[task.name]) for task in tasks)
    failed = any(r.status == "failed" for r in results)
    code = EXIT_FAILED if failed else EXIT_OK
    if interrupted:
        code = 128 + int(signal.Signals[interrupted])
    return BatchResult(
        results,
        jobfile.output_dir,
        index,
        time.perf_counter() - clock,
        code,
        interrupted=interrupted,
    )


def _result(task: Task, doc: Mapping[str, Any]) -> JobResult:
    failed_nb = (
        task.failed_notebook
        if task.failed_notebook.exists() and doc["status"] == "failed"
        else None
    )
    last = doc.get("last_success") or {}
    kept = last.get("finished_at") if doc["status"] == "failed" and task.html.is_file() else None
    return JobResult(
        previous_report=kept,
        name=task.name,
        status=doc["status"],
        seconds=float(doc.get("seconds") or 0.0),
        html=task.html,
        note=doc.get("reason", ""),
        manifest=task.manifest,
        error=doc.get("error"),
        failed_notebook=failed_nb,
    )


def _execute(
    tasks: list[Task],
    n_workers: int,
    ctx: Mapping[str, Any],
    finished: Callable[[Task, dict[str, Any]], None],
    echo: Callable[[str], None],
) -> str | None:
    """Run tasks, each in its own single-use worker process; the signal name if interrupted.

    One executor per task: a worker that dies (killed, out of memory) fails its task only.
    """
    if not tasks:
        return None
    mp = multiprocessing.get_context("spawn")
    pending = list(tasks)
    running: dict[cf.Future, tuple[Task, cf.ProcessPoolExecutor]] = {}
    previous_term = None
    in_main = _in_main_thread()
    if in_main:

        def on_term(signum: int, frame: Any) -> None:
            raise _Interrupted(signum)

        previous_term = signal.signal(signal.SIGTERM, on_term)
    try:
        while pending or running:
            while pending and len(running) < n_workers:
                task = pending.pop(0)
                task.submitted = time.time()
                executor = cf.ProcessPoolExecutor(
                    1, mp_context=mp, initializer=_worker_init, initargs=(os.getpid(),)
                )
                running[executor.submit(_run_task, task, ctx)] = (task, executor)
            done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for future in done:
                task, executor = running.pop(future)
                executor.shutdown(wait=True)
                try:
                    doc = future.result()
                except BrokenProcessPool:
                    continue  # recorded as WorkerDied by the caller
                except BaseException as exc:
                    echo(f"{task.name}: worker error {type(exc).__name__}: {exc}")
                    continue
                finished(task, doc)
    except (KeyboardInterrupt, _Interrupted) as exc:
        signum = exc.signum if isinstance(exc, _Interrupted) else signal.SIGINT
        echo(f"interrupted by {signal.Signals(signum).name}: stopping the running jobs")
        _stop(running)
        return signal.Signals(signum).name
    finally:
        if in_main and previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    return None


def _stop(running: Mapping[cf.Future, tuple[Task, cf.ProcessPoolExecutor]]) -> None:
    """Terminate the running workers (they remove their temporary folders) and wait for them."""
    for child in multiprocessing.active_children():
        child.terminate()
    deadline = time.monotonic() + 20
    for child in multiprocessing.active_children():
        child.join(max(0.1, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
    for _, executor in running.values():
        executor.shutdown(wait=False, cancel_futures=True)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ---- the index -------------------------------------------------------------------------------

_INDEX_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1b1b1b}
h1{font-size:1.4rem;margin:0 0 .3rem}p.meta{color:#555;margin:.2rem 0 1rem}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right}
.s-ok{color:#16620f;font-weight:600}.s-failed{color:#a4161a;font-weight:600}
.s-skipped{color:#3a3a3a;font-weight:600}.aud-external{background:#fff1c2;padding:0 .3rem;
border-radius:3px}.note{color:#444;font-size:.9em}tr.retired td{color:#777}
"""


def _h(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _href(relative: str) -> str:
    """A link to a file under the index's folder: ``./`` and each path segment percent-encoded,
    so that no name is read as a scheme (``javascript:``, ``http:``), a query or a fragment."""
    return "./" + "/".join(urllib.parse.quote(part, safe="") for part in relative.split("/"))


def _when(value: Any) -> str:
    """``2026-01-31T02:30:05Z`` as ``2026-01-31 02:30`` (the index says times are UTC)."""
    text = str(value or "")
    match = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d)?Z", text)
    return f"{match.group(1)} {match.group(2)}" if match else (text or "-")


def write_index(
    output_dir: str | os.PathLike,
    *,
    job_file: JobFile | None = None,
    planned: Mapping[str, set[str]] | None = None,
    mode: int | None = None,
) -> Path:
    """Write ``<output_dir>/index.html`` listing every report found there, atomically.

    Every ``*.manifest.json`` under the folder is listed (hidden folders excepted): the report
    (linked when one exists), its audience, the last run's status and note, the date of the
    report on disk (its last successful run) and its data cut-off. Reports no longer produced by
    the job file (a job removed, a site gone from the data) are listed last as retired.
    Self-contained: inline CSS, no script, a Content-Security-Policy forbidding any request.

    Parameters
    ----------
    output_dir : path
    job_file : JobFile, optional
        The job file of the run; manifests of other job files or of removed jobs are retired.
    planned : mapping of str to set of str, optional
        Job name -> the report names it produced in this run (fanned-out reports not among
        them are retired).
    mode : int, optional
        File mode (default: 0666 minus the umask).
    """
    root = Path(output_dir).resolve()
    manifests = []
    for path in sorted(root.rglob("*.manifest.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts[:-1]):
            continue
        doc = _read_manifest(path)
        if doc is not None and doc.get("manifest_version") == MANIFEST_VERSION:
            manifests.append(doc)
    names = {j.name for j in job_file.jobs} if job_file else None
    planned = dict(planned or {})

    def current(doc: Mapping[str, Any]) -> bool:
        if names is None:
            return True
        job = doc.get("job_name")
        if job not in names or doc.get("job_file") != str(job_file.path):
            return False
        return job not in planned or doc.get("job") in planned[job]

    manifests.sort(key=lambda d: (not current(d), str(d.get("job"))))
    counts = {"ok": 0, "skipped": 0, "failed": 0}
    rows = []
    for doc in manifests:
        is_current = current(doc)
        status = str(doc.get("status", "?"))
        if is_current:
            counts[status] = counts.get(status, 0) + 1
        last = doc.get("last_success") or {}
        provenance = last.get("report_provenance") or {}
        html_rel = (last.get("outputs") or {}).get("html")
        exists = bool(html_rel) and (root / html_rel).is_file()
        job = _h(doc.get("job"))
        link = f'<a href="{_href(html_rel)}">{job}</a>' if exists else f"{job} (no report)"
        note = str(doc.get("reason", ""))
        if doc.get("error"):
            note = str(doc["error"].get("summary", ""))
            if exists:
                note += f" - the previous report (from {last.get('finished_at', '?')}) is kept"
        note_html = _h(note)
        failed_nb = (doc.get("outputs") or {}).get("failed_notebook")
        if status == "failed" and failed_nb and (root / failed_nb).is_file():
            note_html += f' (<a href="{_href(failed_nb)}">failed notebook</a>)'
        if not is_current:
            note_html += " <em>(no longer produced by the job file)</em>"
        audience = str(doc.get("audience", "?"))
        rows.append(
            f'<tr class="{"current" if is_current else "retired"}">'
            f'<td>{link}<br><span class="note">{_h(provenance.get("title") or doc.get("report"))}'
            "</span></td>"
            f'<td><span class="aud-{_h(audience)}">{_h(audience)}</span></td>'
            f'<td class="s-{_h(status)}">{_h(status)}</td>'
            f"<td>{_h(_when(last.get('finished_at')))}</td>"
            f"<td>{_h(provenance.get('data_cutoff') or '-')}</td>"
            f"<td>{_h(_when(doc.get('finished_at')))}</td>"
            f'<td class="note">{note_html}</td></tr>'
        )
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no reports yet"
    source = f" from {_h(job_file.path)}" if job_file else ""
    body = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reports - rehabstats</title>
<style>{_INDEX_CSS}</style>
</head>
<body>
<h1>Reports</h1>
<p class="meta">Updated {_h(_now())} (UTC) by <code>rehabstats batch</code>{source}: {_h(summary)}.
"Last run" is the status of the latest run; the report linked is the last one that succeeded,
from the date under "Report from". Times are UTC.</p>
<table>
<thead><tr><th>Report</th><th>Audience</th><th>Last run</th><th>Report from</th>
<th>Data cut-off</th><th>Last run at</th><th>Note</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</body>
</html>
"""
    target = root / INDEX_NAME
    _install(body.encode("utf-8"), target, _file_mode() if mode is None else mode, root)
    return target
