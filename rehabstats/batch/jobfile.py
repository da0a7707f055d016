"""The job file: YAML read strictly, every key checked, every problem reported at once.

:func:`load_jobs` turns a job file (``docs/batch.md``, key by key) into a :class:`JobFile` of
:class:`Job` entries with the ``defaults`` applied and relative paths made absolute (relative to
the job file's folder), or raises :class:`~rehabstats.errors.JobFileError` listing every problem:
nothing runs until the file is right. What depends on the data (the cohort, the fan-out values,
parameter values) is checked per job when planning (:mod:`rehabstats.batch.plan`).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehabstats.batch.outputs import INDEX_NAME
from rehabstats.config import read_yaml
from rehabstats.constants import AUDIENCES, CELL_TIMEOUT
from rehabstats.errors import JobFileError, ParameterError, YamlFileError
from rehabstats.report.specs import REPORTS, ReportSpec

__all__ = [
    "ENGINES",
    "Job",
    "JobFile",
    "load_jobs",
    "placeholders",
    "redact_scheduler",
    "resolve_path",
    "resolve_source",
    "substitute",
]

_TOP_KEYS = ("version", "output_dir", "workers", "reports_per_kernel", "defaults", "jobs")
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
    "engine",
    "scheduler",
)
ENGINES = ("pandas", "dask")
"""The engines a job can compute its report with (``docs/batch.md``, ``docs/scale.md``)."""
_REQUIRED = ("name", "report", "data", "output", "audience")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Job:
    """One entry of ``jobs:`` with the ``defaults`` applied (before any fan-out).

    Attributes
    ----------
    name : str
        Unique name (letters, digits, ``_.-``); fanned-out jobs are named ``name:value``.
    report : str
        A report of :func:`rehabstats.report.render.report_names`.
    data : Path or str
        The cohort: a folder, a REDCap export or a database mapping file (absolute; relative
        paths in the file are relative to its folder), or a database URL, a REDCap API
        address or ``env:NAME`` (as written).
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
    engine : {"pandas", "dask"}
        ``dask``: the data is a partitioned cohort whose tables are computed on a Dask cluster
        (the report parameter ``engine``; ``docs/scale.md``).
    scheduler : str or None
        With ``engine: dask``, the Dask scheduler's address (None: the environment variable
        ``REHABSTATS_DASK_SCHEDULER``, else a local cluster); never holds a user or password.
    """

    name: str
    report: str
    data: Path | str
    output: str
    audience: str
    parameters: dict[str, Any] = field(default_factory=dict)
    for_each: str | None = None
    timeout: float | None = CELL_TIMEOUT
    enabled: bool = True
    engine: str = "pandas"
    scheduler: str | None = None


@dataclass(frozen=True)
class JobFile:
    """A checked job file: where outputs go, the default worker count, the jobs, and the
    reports a worker renders in one kernel (``reports_per_kernel``; None: the default)."""

    path: Path
    output_dir: Path
    workers: int | None
    jobs: tuple[Job, ...]
    reports_per_kernel: int | None = None

    def job(self, name: str) -> Job:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)


def _unknown(where: str, what: str, value: Any, valid: Iterable[str]) -> str:
    """``where: unknown <what> 'x' (did you mean 'y'?)`` -- the valid choices are added by the
    caller."""
    close = difflib.get_close_matches(str(value), list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{where}: unknown {what} {value!r}{hint}"


def _unknown_key(where: str, key: Any, valid: Iterable[str]) -> str:
    return f"{_unknown(where, 'key', key, valid)}; valid keys: {', '.join(valid)}"


def placeholders(text: str) -> set[str]:
    """The ``{placeholder}`` names in an output path."""
    return set(_PLACEHOLDER.findall(text))


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Put ``values`` in for their ``{placeholder}`` in ``text``; other placeholders stay."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def resolve_path(base: Path, value: str | os.PathLike) -> Path:
    """``value`` (``~`` expanded) as an absolute path, relative to ``base`` when relative."""
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def resolve_source(base: Path, value: str) -> Path | str:
    """A job's ``data``: a URL or ``env:NAME`` as written, a path made absolute (as
    :func:`resolve_path`; ``redcap:PATH`` keeps its prefix)."""
    from rehabstats.data.sources import source_path

    named = source_path(value)
    if named is None:
        return value
    prefix, path = named
    absolute = resolve_path(base, str(path))
    return f"{prefix}{absolute}" if prefix else absolute


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
    path = Path(path)
    try:
        doc, _ = read_yaml(path)
    except YamlFileError as exc:
        raise JobFileError(path, [str(exc)]) from None
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
    out_root = resolve_path(base, output_dir)
    if out_root.exists() and not out_root.is_dir():
        problems.append(f"output_dir: {out_root} is a file, not a folder")
    workers = doc.get("workers")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        problems.append(f"workers: must be a whole number >= 1, got {workers!r}")
        workers = None
    per_kernel = doc.get("reports_per_kernel")
    if per_kernel is not None and (
        isinstance(per_kernel, bool) or not isinstance(per_kernel, int) or per_kernel < 1
    ):
        problems.append(
            f"reports_per_kernel: must be a whole number >= 1 (1: a new kernel for every "
            f"report), got {per_kernel!r}"
        )
        per_kernel = None

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
        if merged.get("engine", "pandas") != "dask" and "scheduler" not in entry:
            merged.pop("scheduler", None)  # a default for the dask jobs (checked below)
        job_problems = _check_job(where, merged)
        if job_problems:
            problems.extend(job_problems)
            continue
        name = merged["name"]
        if name in names:
            problems.append(f"{where}: name {name!r} is already used by jobs[{names[name]}]")
            continue
        names[name] = i
        params = dict(merged["parameters"])
        for p in REPORTS[merged["report"]].parameters:
            value = params.get(p.name)
            if (
                p.type == "path"
                and isinstance(value, str)
                and value.strip().lower() not in ("", "none", "null")
            ):
                params[p.name] = str(resolve_path(base, value))
        output = merged["output"]
        target = resolve_path(out_root, substitute(output, {"name": name}))
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
        timeout = merged.get("timeout", CELL_TIMEOUT)
        jobs.append(
            Job(
                name=name,
                report=merged["report"],
                data=resolve_source(base, merged["data"]),
                output=output,
                audience=merged["audience"],
                parameters=params,
                for_each=merged.get("for_each"),
                timeout=None if timeout is None else float(timeout),
                enabled=merged.get("enabled", True),
                engine=merged.get("engine", "pandas"),
                scheduler=merged.get("scheduler"),
            )
        )
    if defaults.get("scheduler") is not None and not any(j.engine == "dask" for j in jobs):
        problems.append(
            "defaults: scheduler is given but no job has engine: dask (the scheduler is where "
            "the Dask engine computes; add engine: dask, or remove scheduler)"
        )
    if problems:
        raise JobFileError(path, problems)
    return JobFile(
        path=path.resolve(),
        output_dir=out_root,
        workers=workers,
        jobs=tuple(jobs),
        reports_per_kernel=per_kernel,
    )


def _check_job(where: str, job: Mapping[str, Any]) -> list[str]:
    """The problems of one job (``defaults`` applied) that need no data."""
    problems: list[str] = []
    name = job["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(
            f"{where}: name must be letters, digits, '_', '.' or '-' (no spaces), got {name!r}"
        )
    report = job["report"]
    known = isinstance(report, str) and report in REPORTS
    if not known:
        problems.append(
            f"{_unknown(where, 'report', report, REPORTS)}; available: {', '.join(REPORTS)}"
        )
    if not isinstance(job["data"], str) or not job["data"].strip():
        problems.append(
            f"{where}: data must be a cohort folder, a database URL or a database mapping file, "
            f"got {job['data']!r}"
        )
    else:
        from rehabstats.data.sources import check_no_secret

        try:
            check_no_secret(job["data"], where="in the job file")
        except ParameterError as exc:
            problems.append(f"{where}: data: {exc}")
    if job["audience"] not in AUDIENCES:
        problems.append(
            f"{where}: audience must be one of {', '.join(AUDIENCES)}, got {job['audience']!r}"
        )
    timeout = job.get("timeout", CELL_TIMEOUT)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        problems.append(f"{where}: timeout must be seconds > 0 or null, got {timeout!r}")
    if not isinstance(job.get("enabled", True), bool):
        problems.append(f"{where}: enabled must be true or false, got {job.get('enabled')!r}")
    params = job["parameters"]
    for key in params:
        if not isinstance(key, str):
            problems.append(
                f"{where}: parameter {key!r} is not a parameter name "
                "(rehabstats report --help lists them)"
            )
    if "data" in params:
        problems.append(f"{where}: give the cohort folder as the job's data key, not a parameter")
    if "audience" in params:
        problems.append(f"{where}: give the audience as the job's audience key, not a parameter")
    for key in ("engine", "scheduler"):
        if key in params:
            problems.append(f"{where}: give the {key} as the job's {key} key, not a parameter")
    problems.extend(_check_engine(where, job))
    for_each = job.get("for_each")
    output = job["output"]
    if not isinstance(output, str) or not output.strip():
        problems.append(f"{where}: output must be an HTML file path, got {output!r}")
        return problems
    if not output.lower().endswith(".html"):
        problems.append(f"{where}: output must end with .html, got {output!r}")
    allowed = {"name"} | ({for_each} if isinstance(for_each, str) else set())
    for placeholder in sorted(placeholders(output) - allowed):
        problems.append(
            f"{where}: output {output!r} uses {{{placeholder}}}; only {{name}}"
            + (f" and {{{for_each}}}" if isinstance(for_each, str) else "")
            + " can be used"
        )
    if for_each is not None:
        if not isinstance(for_each, str):
            problems.append(f"{where}: for_each must be a column name, got {for_each!r}")
        elif known:
            problems.extend(_check_fan_out(where, REPORTS[report], for_each, params, output))
    return problems


def redact_scheduler(address: str) -> str:
    """A scheduler address as it may be shown: a user and password in it as ``***``.

    >>> redact_scheduler("tcp://alice:s3cret@dask.example:8786")
    'tcp://***@dask.example:8786'
    >>> redact_scheduler("tcp://10.0.0.5:8786")
    'tcp://10.0.0.5:8786'
    """
    scheme, sep, rest = address.rpartition("://")
    head, at, host = rest.partition("/")[0].rpartition("@")
    if not at:
        return address
    return f"{scheme}{sep}***@{rest[len(head) + 1 :]}"


def _check_engine(where: str, job: Mapping[str, Any]) -> list[str]:
    """The ``engine`` and ``scheduler`` keys: a known engine; a scheduler only with the Dask
    engine, an address without a user or password (a Dask scheduler takes none: its security
    is Dask's TLS configuration, outside the job file)."""
    engine = job.get("engine", "pandas")
    if engine not in ENGINES:
        return [f"{_unknown(where, 'engine', engine, ENGINES)}; engines: {', '.join(ENGINES)}"]
    scheduler = job.get("scheduler")
    if scheduler is None:
        return []
    if not isinstance(scheduler, str) or scheduler.split() != [scheduler]:
        shown = redact_scheduler(scheduler) if isinstance(scheduler, str) else scheduler
        return [
            f"{where}: scheduler must be a Dask scheduler address such as tcp://host:8786, "
            f"got {shown!r}"
        ]
    if redact_scheduler(scheduler) != scheduler:
        return [
            f"{where}: scheduler {redact_scheduler(scheduler)!r} holds a user or password: it "
            "would be visible to others (manifests, notebooks, logs); a Dask scheduler address "
            "is host and port only (secure a cluster with Dask's TLS configuration)"
        ]
    if engine != "dask":
        return [
            f"{where}: scheduler is for the Dask engine; add engine: dask (or remove scheduler)"
        ]
    return []


def _check_fan_out(
    where: str, spec: ReportSpec, for_each: str, params: Mapping[str, Any], output: str
) -> list[str]:
    """A report fans out over a participant column it has a text parameter of that name for
    (the parameter selects one subset: ``clinic_audit`` over ``site``)."""
    selectable = [spec.subset_parameter] if spec.subset_parameter else []
    if for_each not in selectable:
        return [
            f"{where}: report {spec.name!r} cannot fan out over {for_each!r}: it has no "
            f"{for_each!r} parameter selecting one subset; it can fan out over: "
            + (", ".join(selectable) or "nothing")
        ]
    if for_each in params:
        return [f"{where}: parameter {for_each!r} is set by for_each: {for_each}; remove it"]
    if f"{{{for_each}}}" not in output:
        return [
            f"{where}: output {output!r} must contain {{{for_each}}} so that each "
            f"{for_each} gets its own file"
        ]
    return []
