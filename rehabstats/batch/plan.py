"""Planning a run: the reports to render, their inputs hashed, and which are up to date.

:func:`plan_jobs` turns the jobs of a :class:`~rehabstats.batch.jobfile.JobFile` into
:class:`Task` objects, before any kernel starts and without writing anything:

- each data folder is loaded and validated once (its :meth:`~rehabstats.Cohort.fingerprint`,
  its participants, the values a job fans out over, a snapshot of its files); a partitioned
  cohort read by jobs with ``engine: dask`` is validated on the Dask cluster instead, one
  partition per task, and only its partitions' fingerprints and fan-out values reach this
  process (:func:`plan_partitioned`);
- a fanned-out job becomes one task per value, its output path filled in and checked where it
  will really be written (symbolic links followed: it must stay inside the output folder);
- each task's parameters are validated as ``rehabstats report`` does, its audience against the
  report; a task with missing data, an invalid cohort, a bad parameter, an output that is not
  rehabstats' or shared with another task fails here, alone;
- a task whose inputs (report, notebook, data fingerprint, parameters, audience, analysis
  configuration, rehabstats code, package versions) equal those of its last successful run, and
  whose HTML and notebook are still those that run wrote, is skipped.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rehabstats
from rehabstats.batch.jobfile import Job, JobFile, redact_scheduler, substitute
from rehabstats.batch.manifest import error_record, read_manifest
from rehabstats.batch.outputs import INDEX_NAME
from rehabstats.constants import MANIFEST_PACKAGES, data_schema_dir, package_versions
from rehabstats.errors import (
    CohortValidationError,
    JobFileError,
    RehabstatsError,
    ValidationReport,
)
from rehabstats.report.render import written_by_rehabstats
from rehabstats.report.specs import REPORTS, notebook_path, validate_parameters

__all__ = [
    "FAN_OUT_FAILED",
    "Task",
    "code_sha256",
    "plan_jobs",
    "plan_partitioned",
    "sha256_file",
    "snapshot",
]

FAN_OUT_FAILED = "ALL"
"""Stands for the fan-out value in the output path of a fanned-out job whose data failed."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


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
    data: Path | str
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

    @property
    def files(self) -> tuple[Path, Path, Path, Path]:
        """The report, its notebook, its failed notebook and its manifest (one folder)."""
        return (self.html, self.notebook, self.failed_notebook, self.manifest)


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_sha256() -> str:
    """SHA-256 of the rehabstats package and data contract files (code changes re-render).

    Every file of the package (``rehabstats/``, all its layers) and of ``data_schema/``, by
    relative path and content; compiled files excepted.
    """
    digest = hashlib.sha256()
    package = Path(rehabstats.__file__).resolve().parent
    for root in (package, data_schema_dir()):
        for file in sorted(root.rglob("*")):
            if not file.is_file() or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            digest.update(f"{root.name}/{file.relative_to(root).as_posix()}\0".encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def snapshot(folder: Path) -> list[list[Any]]:
    """Name, size, mtime and inode of each file of a data folder (to notice changes;
    :func:`rehabstats.data.shared.folder_state`); of a partitioned cohort, also of each file
    of its partition folders (``part-00000/sessions.parquet``...)."""
    from rehabstats.data.partitioned import is_partitioned
    from rehabstats.data.shared import folder_state

    state = folder_state(folder)
    if is_partitioned(folder):
        for entry in sorted(folder.glob("part-*")):
            if entry.is_dir():
                state += [[f"{entry.name}/{name}", *rest] for name, *rest in folder_state(entry)]
    return state


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
        if sha256_file(path) != outputs.get(key):
            return f"{path.name} differs from the last successful run"
    return None


def plan_jobs(
    jobfile: JobFile,
    *,
    only: Sequence[str] | None = None,
    force: bool = False,
    share_into: Path | None = None,
) -> list[Task]:
    """The tasks of a run: fanned out, parameters validated, skip decisions made.

    Nothing is rendered and nothing is written (but ``share_into``). Each data folder is loaded
    and validated once.

    Parameters
    ----------
    jobfile : JobFile
    only : sequence of str, optional
        Job names (all of a fanned-out job) or task names (``job:value``) to plan; a job
        disabled with ``enabled: false`` is planned when named here.
    force : bool
        Plan every task to run even when up to date.
    share_into : Path, optional
        The run's private work folder: each data folder a task to render reads is kept there
        validated (:func:`rehabstats.data.shared.share_cohort`), for the report kernels.

    Raises
    ------
    JobFileError
        When a name in ``only`` matches no job or task.
    """
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
    versions = package_versions(MANIFEST_PACKAGES)
    code = code_sha256()
    cohorts: dict[Path | str, dict[str, Any]] = plan_partitioned(jobs)
    tasks: list[Task] = []
    for job in jobs:
        info = cohorts.get(job.data)
        if info is None:
            same = [j for j in jobs if j.data == job.data]
            info = cohorts[job.data] = _load_data(
                job.data,
                [j.for_each for j in same],
                dask_only=all(j.engine == "dask" for j in same),
            )
        base_inputs = {
            "report": job.report,
            "notebook_sha256": sha256_file(notebook_path(job.report)),
            "data_fingerprint": info.get("fingerprint"),
            "audience": job.audience,
            "code_sha256": code,
            "versions": versions,
        }
        if job.for_each is None or "error" in info:
            expansions: list[dict[str, str] | None] = [None]
        else:
            expansions = [{job.for_each: v} for v in info["values"][job.for_each]]
        for fan_out in expansions:
            tasks.append(_make_task(jobfile, job, fan_out, info, base_inputs))
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
        task.previous = read_manifest(task.manifest)
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
    if share_into is not None:
        _share(tasks, cohorts, share_into)
    for info in cohorts.values():
        info.pop("loaded", None)
    return tasks


def _share(tasks: list[Task], cohorts: Mapping[Path | str, dict[str, Any]], root: Path) -> None:
    """Keep each validated cohort folder that a task to render reads in ``root``."""
    from rehabstats.data.shared import share_cohort

    used = {t.data for t in tasks if not t.skip and t.error is None}
    for data, info in cohorts.items():
        if data in used and isinstance(data, Path) and "loaded" in info:
            cohort, caught = info["loaded"]
            share_cohort(root, str(data), cohort, caught, info.get("snapshot", []))


def _not_found(folder: Path) -> dict[str, str]:
    return error_record(
        f"data folder not found: {folder} (relative paths are relative to the job file's folder)",
        "DataNotFound",
    )


def _partitioned_under_pandas(folder: Path | str) -> dict[str, str]:
    """The error of a job reading a partitioned cohort with the pandas engine."""
    return error_record(
        f"{folder} is a partitioned cohort (rehabstats partition or simulate --partitions): "
        "give the job engine: dask to compute its report on a Dask cluster (docs/scale.md); "
        "the pandas engine reads the cohort it was made from",
        "PartitionedCohort",
    )


def _load_data(
    folder: Path | str, columns: Iterable[str | None], *, dask_only: bool = False
) -> dict[str, Any]:
    """A cohort loaded and validated once: fingerprint, participants, the values of the
    fan-out ``columns``, the kind of source and its redacted location, a snapshot of a
    folder's files; or ``error``.

    A partitioned cohort is not loaded here (:func:`plan_partitioned` plans it for the jobs
    with ``engine: dask``), nor the data of jobs that all use the Dask engine (it is not a
    partitioned cohort: each of them fails, :func:`_engine_error`)."""
    from rehabstats.data.folder import load_cohort
    from rehabstats.data.partitioned import is_partitioned

    info: dict[str, Any] = {"path": str(folder)}
    if isinstance(folder, Path) and not folder.exists():
        info["error"] = _not_found(folder)
        return info
    if is_partitioned(folder):
        info["error"] = _partitioned_under_pandas(folder)
        return info
    if dask_only:
        return info
    if isinstance(folder, Path) and folder.is_dir():
        info["snapshot"] = snapshot(folder)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cohort = load_cohort(folder)
    except RehabstatsError as exc:
        info["error"] = error_record(exc)
        return info
    except Exception as exc:  # an unreadable file the loader did not anticipate
        info["error"] = error_record(exc)
        return info
    info["kind"] = cohort.source_kind
    info["location"] = cohort.source
    if not isinstance(folder, Path):
        info["path"] = None  # a database URL: its location (no password) says where
    info["fingerprint"] = cohort.fingerprint()
    info["participants"] = cohort.n_participants
    info["values"] = {}
    for column in {c for c in columns if c}:
        values = cohort.participants[column].dropna().astype("str").unique().tolist()
        info["values"][column] = sorted(values)
    if isinstance(folder, Path) and folder.is_dir():
        info["loaded"] = (cohort, caught)  # for _share; dropped before plan_jobs returns
    return info


def _make_task(
    jobfile: JobFile,
    job: Job,
    fan_out: dict[str, str] | None,
    info: Mapping[str, Any],
    base_inputs: Mapping[str, Any],
) -> Task:
    """One task of ``job`` (for one fan-out value), checked; ``error`` set when it cannot run."""
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
    lexical = Path(os.path.normpath(jobfile.output_dir / substitute(job.output, places)))
    html = lexical.resolve()
    # the final path, after substitution and symbolic links: it must stay in the output folder
    outside = not html.is_relative_to(jobfile.output_dir) or html == jobfile.output_dir / INDEX_NAME
    if outside:
        html = lexical  # named (manifest, summary) where it was meant to be; nothing written
    params = {k: substitute(v, raw) if isinstance(v, str) else v for k, v in job.parameters.items()}
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
            "path": info.get("path", str(job.data)),
            "kind": info.get("kind"),
            "location": info.get("location"),
            "fingerprint": info.get("fingerprint"),
            "participants": info.get("participants"),
            **({"partitions": info["partitions"]} if "partitions" in info else {}),
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
        task.error = error_record(
            f"output {job.output!r} of {name} {problem}: refused, nothing is written there",
            "OutputOutsideFolder",
        )
        return task
    if "error" in info:
        task.error = dict(info["error"])
        return task
    wrong_engine = _engine_error(job, info)
    if wrong_engine is not None:
        task.error = wrong_engine
        return task
    foreign = [
        path
        for path in (task.html, task.notebook, task.failed_notebook)
        if (path.exists() or path.is_symlink()) and not written_by_rehabstats(path)
    ]
    if foreign:
        task.error = error_record(
            f"{foreign[0]} exists and was not written by rehabstats: it is not replaced; "
            "choose another output, or move that file away",
            "OutputNotOurs",
        )
        return task
    accepts = {p.name for p in REPORTS[job.report].parameters}
    values = {**params, "data": str(job.data), "engine": job.engine}
    if job.scheduler is not None:
        values["scheduler"] = job.scheduler
    if "audience" in accepts:
        values["audience"] = job.audience
    elif job.audience != "internal":
        task.error = error_record(
            f"report {job.report!r} cannot be rendered for audience {job.audience!r} yet: it "
            "has no 'audience' parameter (small-cell suppression, pseudonymised ids), so it "
            "was refused rather than rendered unprotected for readers outside the team",
            "AudienceNotSupported",
        )
        return task
    try:
        task.parameters = validate_parameters(job.report, values)
        if job.audience == "external":  # the key the render will need (never shown)
            from rehabstats.report.disclosure import privacy_key

            privacy_key(task.parameters.get("pseudonym_key_file"))
    except RehabstatsError as exc:
        task.error = error_record(exc)
        return task
    config = task.parameters.get("config_file")
    task.inputs = {
        **base_inputs,
        # where the Dask engine computes does not change the report: not a reason to re-render
        "parameters": {k: v for k, v in task.parameters.items() if k != "scheduler"},
        "config_sha256": sha256_file(Path(config)) if config else None,
    }
    return task


def _engine_error(job: Job, info: Mapping[str, Any]) -> dict[str, str] | None:
    """The Dask engine reads a partitioned cohort only; the pandas engine never reads one."""
    if job.engine == "dask" and not info.get("partitioned"):
        return error_record(
            f"engine dask needs a partitioned cohort (a folder with partitions.json, written by "
            f"`rehabstats partition`); {info.get('location') or job.data} is not one",
            "NotPartitioned",
        )
    if job.engine != "dask" and info.get("partitioned"):
        return _partitioned_under_pandas(job.data)
    return None


def plan_partitioned(jobs: Sequence[Job]) -> dict[Path | str, dict[str, Any]]:
    """Plan the partitioned cohorts that jobs with ``engine: dask`` read, on their cluster.

    Each partition is loaded and validated on a worker
    (:func:`rehabstats.data.partitioned.partition_summary`); this process receives its
    fingerprint, its participant count and the values of the columns jobs fan out over, never
    its tables. The cohort's fingerprint is :func:`~rehabstats.data.partitioned.
    combined_fingerprint`, as the report's (:mod:`rehabstats.report.cluster`). One client per
    scheduler (a job's ``scheduler``; the first job's for a cohort several jobs read).

    Returns
    -------
    dict
        Data path -> what :func:`_load_data` returns (``partitioned``, ``partitions``,
        ``fingerprint``, ``participants``, ``values``, ``snapshot``), or ``error``: the
        cohort's problems (every partition's at once), dask not installed (how to install
        it), the cluster unreachable.
    """
    from rehabstats.data.partitioned import is_partitioned, open_partitioned
    from rehabstats.metrics.distributed import require_dask

    cohorts: dict[Path | str, dict[str, Any]] = {}
    groups: dict[str | None, dict[Path, Any]] = {}
    for job in jobs:
        data = job.data
        if job.engine != "dask" or data in cohorts or not isinstance(data, Path):
            continue
        if not data.exists():
            cohorts[data] = {"path": str(data), "error": _not_found(data)}
            continue
        if not is_partitioned(data):
            continue  # _load_data, then each dask job fails (_engine_error)
        info = cohorts[data] = {
            "path": str(data),
            "kind": "partitioned",
            "location": str(data),
            "partitioned": True,
            "snapshot": snapshot(data),
        }
        try:
            require_dask()
            part = open_partitioned(data)
        except RehabstatsError as exc:
            info["error"] = error_record(exc)
            continue
        info["partitions"] = part.n_partitions
        columns = sorted({j.for_each for j in jobs if j.data == data and j.for_each})
        groups.setdefault(job.scheduler, {})[data] = (part, columns)
    for scheduler, parts in groups.items():
        _plan_on_cluster(scheduler, parts, cohorts)
    return cohorts


def _plan_on_cluster(
    scheduler: str | None,
    parts: Mapping[Path, Any],
    cohorts: Mapping[Path | str, dict[str, Any]],
) -> None:
    """:func:`plan_partitioned` of the cohorts ``parts`` (path -> partitioned cohort, fan-out
    columns) on one client; their ``cohorts`` entries completed."""
    from rehabstats.data.partitioned import combined_fingerprint, partition_summary
    from rehabstats.metrics.distributed import SCHEDULER_ENV, dask_client

    address = scheduler or os.environ.get(SCHEDULER_ENV)
    where = f"the Dask scheduler {redact_scheduler(address)}" if address else "a local Dask cluster"
    try:
        with dask_client(scheduler) as client:
            futures = {
                data: [
                    client.submit(partition_summary, str(part.folder), i, columns, pure=False)
                    for i in part.non_empty
                ]
                for data, (part, columns) in parts.items()
            }
            results: dict[Path, Any] = {}
            for data, submitted in futures.items():
                try:
                    results[data] = client.gather(submitted)
                except Exception as exc:  # one partition's unexpected failure: its cohort only
                    results[data] = exc
    except Exception as exc:  # the cluster could not be reached or started
        message = str(exc).replace(address, redact_scheduler(address)) if address else str(exc)
        for data in parts:
            cohorts[data]["error"] = error_record(
                f"could not plan {data} on {where}: {type(exc).__name__}: {message}",
                "DaskClusterError",
            )
        return
    for data, (_, columns) in parts.items():
        info, summaries = cohorts[data], results[data]
        if isinstance(summaries, Exception):
            info["error"] = error_record(
                f"planning {data} on {where} failed: {type(summaries).__name__}: {summaries}",
                "DaskClusterError",
            )
            continue
        problems = [p for r in summaries for p in r["problems"]]
        if problems:
            failure = CohortValidationError(ValidationReport(problems=problems), source=str(data))
            info["error"] = error_record(failure)
            continue
        info["fingerprint"] = combined_fingerprint(r["fingerprint"] for r in summaries)
        info["participants"] = sum(r["participants"] for r in summaries)
        info["values"] = {
            c: sorted(set().union(*(r["values"][c] for r in summaries))) for c in columns
        }


def _fail_collisions(tasks: list[Task]) -> None:
    """Fail every task whose output another task also writes (fan-out values that differ only in
    characters unsafe in file names)."""
    by_output: dict[Path, list[Task]] = {}
    for task in tasks:
        by_output.setdefault(task.html, []).append(task)
    for same in by_output.values():
        if len(same) > 1:
            names = ", ".join(t.name for t in same)
            for task in same:
                if task.error is None:
                    task.error = error_record(
                        f"{names} would all write {task.html}; their values differ only in "
                        "characters unsafe in file names",
                        "OutputCollision",
                    )
