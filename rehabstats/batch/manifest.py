"""The manifest of a report: what a run did with it, and what is on disk.

``<output>.manifest.json`` is written beside every report at every run (``docs/batch.md``, "The
manifest", lists its keys). It records the run (status, reason, times, error), the inputs the
report was rendered from (report, notebook, data fingerprint, parameters, configuration, code and
package versions) and ``last_success``: the run that wrote the report on disk, which the next
run compares its inputs with (:mod:`rehabstats.batch.plan`) and the index links
(:mod:`rehabstats.batch.index`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rehabstats.batch.outputs import install
from rehabstats.errors import OutputError

if TYPE_CHECKING:
    from rehabstats.batch.plan import Task

__all__ = [
    "MANIFEST_VERSION",
    "error_record",
    "manifest",
    "read_manifest",
    "utc_iso",
    "utc_now",
    "write_manifest",
]

MANIFEST_VERSION = 1


def utc_iso(timestamp: float) -> str:
    """A POSIX time as ISO 8601 UTC to the second: ``2026-01-31T02:30:05Z``."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_now() -> str:
    """Now, as :func:`utc_iso`."""
    return utc_iso(time.time())


def error_record(exc: BaseException | str, kind: str | None = None) -> dict[str, str]:
    """A failure as a manifest records it: ``type``, a one-line ``summary`` and the ``message``.

    Parameters
    ----------
    exc : exception or str
        The error, or its message.
    kind : str, optional
        The ``type`` (default: the exception's class name, ``Error`` for a message).
    """
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


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path``; None when it is missing or unreadable."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def manifest(
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
    """The manifest of one task after this run.

    Parameters
    ----------
    task : Task
    ctx : mapping
        The run: ``output_dir``, ``job_file``, ``run_id``, ``host``, ``versions``.
    status : {"ok", "failed", "skipped"}
    started, finished : str
        UTC times (:func:`utc_iso`).
    seconds : float
    error : dict, optional
        :func:`error_record` of a failure.
    outputs : dict, optional
        ``html_sha256`` and ``notebook_sha256`` of the files written.
    provenance : mapping, optional
        From the report itself: title, data cut-off, participants, fingerprint, run time.

    Returns
    -------
    dict
        ``last_success`` is this run when ``ok``, else carried over from the previous manifest.
    """
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


def write_manifest(task: Task, doc: Mapping[str, Any], mode: int, root: Path) -> None:
    """Write ``doc`` as the task's manifest, atomically, inside ``root``.

    A task whose output leads out of the output folder gets no manifest (the summary says why).
    """
    text = json.dumps(doc, indent=2, default=str) + "\n"
    try:
        install(text.encode("utf-8"), task.manifest, mode, root)
    except OutputError:  # its place leads out of the output folder: the summary says so
        if (task.error or {}).get("type") != "OutputOutsideFolder":
            raise
