"""Running a job file: the worker pool, signals, results and :func:`run_batch`.

:func:`run_batch` checks the job file (:func:`~rehabstats.batch.jobfile.load_jobs`), takes the
output folder's lock (:class:`~rehabstats.batch.lock.RunLock`), plans
(:func:`~rehabstats.batch.plan.plan_jobs`), then renders each task that must run in a worker
process (``spawn``), at most ``workers`` at a time; a worker keeps its kernel for up to
``reports_per_kernel`` tasks, reset between them (:class:`~rehabstats.report.render.WarmKernel`;
1: a new worker and kernel per task), and each task has its own working directory.
A worker renders into a private temporary folder, checks the data did not change meanwhile, then
moves the executed notebook and the HTML into place together (:mod:`rehabstats.files`) and writes
the task's manifest last (:mod:`rehabstats.batch.manifest`). A task that fails or is killed
leaves the previous report untouched; a failed notebook is kept as ``<name>.failed.ipynb``.
SIGINT and SIGTERM stop the running workers (they remove their temporary folders); a worker dies
with the batch process. Last, the index is written (:func:`~rehabstats.batch.index.write_index`)
and a :class:`BatchResult` returned, its exit code one of the ``EXIT_*`` codes.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import hashlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehabstats import files
from rehabstats.batch import outputs
from rehabstats.batch.index import write_index
from rehabstats.batch.jobfile import JobFile, load_jobs, substitute
from rehabstats.batch.lock import RunLock
from rehabstats.batch.manifest import error_record, manifest, utc_iso, utc_now, write_manifest
from rehabstats.batch.plan import FAN_OUT_FAILED, Task, plan_jobs, snapshot
from rehabstats.constants import MANIFEST_PACKAGES, REPORTS_PER_KERNEL, package_versions
from rehabstats.errors import OutputError, RehabstatsError
from rehabstats.lazy import skip_iri_grammars
from rehabstats.report.render import WarmKernel, render_report

__all__ = [
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_LOCKED",
    "EXIT_OK",
    "BatchResult",
    "JobResult",
    "run_batch",
]

EXIT_OK = 0
"""Every job rendered or skipped as up to date."""
EXIT_FAILED = 1
"""At least one job failed (the others ran; see the summary, manifests and index)."""
EXIT_INVALID = 2
"""The job file (or the command line) is invalid: nothing ran."""
EXIT_LOCKED = 75
"""Another batch run holds the output folder's lock (``EX_TEMPFAIL``: try again later)."""

_STAGE_PREFIX = "rehabstats-batch-"
"""Name prefix of a worker's private staging folder in the temporary folder."""

_SHARED_PREFIX = "rehabstats-cohorts-"
"""Name prefix of a run's private folder of validated cohorts (:mod:`rehabstats.data.shared`)."""


# ---- the worker ------------------------------------------------------------------------------


def _worker_init(parent_pid: int) -> None:
    """Set a worker up: own session, dies with the batch process, SIGTERM cleans up, no IRI
    grammars compiled when it imports nbformat (:func:`rehabstats.lazy.skip_iri_grammars`)."""
    skip_iri_grammars()
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


_KERNEL: WarmKernel | None = None
"""The worker's kept kernel (``reports_per_kernel`` > 1), started by its first report."""


def _worker_kernel(per_kernel: int) -> WarmKernel | None:
    """The worker's kept kernel; None when every report gets a new one."""
    global _KERNEL
    if per_kernel <= 1:
        return None
    if _KERNEL is None:
        import atexit

        _KERNEL = WarmKernel(reports_per_kernel=per_kernel)
        atexit.register(_close_worker_kernel)  # the worker leaves the pool: stop its kernel
    return _KERNEL


def _close_worker_kernel() -> None:
    if _KERNEL is not None:
        _KERNEL.close()


def _run_task(task: Task, ctx: Mapping[str, Any]) -> dict[str, Any]:
    """Render one task in a worker process and move its outputs into place (see module doc).

    Stopped by SIGTERM (the batch process was interrupted or died), the render unwinds (its
    temporary folders are removed, nothing is moved into place), the worker's kept kernel is
    stopped and the worker exits at once: a ``spawn`` pool worker would otherwise report the
    exit and wait for more work forever.
    """
    try:
        return _render_task(task, ctx)
    except SystemExit as exc:
        try:
            _close_worker_kernel()
        finally:
            os._exit(exc.code if isinstance(exc.code, int) else 1)


def _render_task(task: Task, ctx: Mapping[str, Any]) -> dict[str, Any]:
    """Render into a private folder, install the pair if the data did not change, write the
    manifest; return it."""
    started, clock = utc_now(), time.perf_counter()
    if ctx.get("shared_cohorts"):  # the kernel (a child) takes the validated cohort from there
        from rehabstats.data.shared import SHARED_ENV

        os.environ[SHARED_ENV] = ctx["shared_cohorts"]
    mode = ctx["mode"]
    root = Path(ctx["output_dir"])
    stage = files.make_workdir(_STAGE_PREFIX)
    outputs.remove(task.failed_notebook, root)  # it belongs to an older run
    error: dict[str, str] | None = None
    hashes: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    try:
        staged = stage / task.html.name
        try:
            result = render_report(
                task.report,
                None,
                out=staged,
                parameters=task.parameters,
                progress=False,
                timeout=task.timeout,
                check_data=False,  # planning has loaded and validated it
                kernel=_worker_kernel(ctx.get("reports_per_kernel", 1)),
            )
        except RehabstatsError as exc:
            failed = staged.with_suffix(".failed.ipynb")
            # the message names the staged copy, removed below: name the one kept instead
            error = error_record(
                str(exc).replace(str(failed), str(task.failed_notebook)), type(exc).__name__
            )
            if failed.exists():
                try:
                    outputs.install(failed.read_bytes(), task.failed_notebook, mode, root)
                except OutputError as install_error:
                    error["message"] += f"\nThe failed notebook was not kept: {install_error}"
        except Exception as exc:  # an unexpected failure of this job only
            error = error_record(
                f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", type(exc).__name__
            )
        else:
            # a folder's files are watched; a database has none (docs/databases.md)
            if isinstance(task.data, Path) and snapshot(task.data) != task.snapshot:
                error = error_record(
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
                    error = error_record(exc, "OutputOutsideFolder")
                else:
                    outputs.remove(task.failed_notebook, root)
                    hashes = {
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
    doc = manifest(
        task,
        ctx,
        status=status,
        started=started,
        finished=utc_now(),
        seconds=seconds,
        error=error,
        outputs=hashes,
        provenance=provenance,
    )
    write_manifest(task, doc, mode, root)
    return doc


# ---- the run ---------------------------------------------------------------------------------


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
    reports_per_kernel: int | None = None,
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
    reports_per_kernel : int, optional
        Reports a worker renders in one kernel, put back to its starting state between
        reports, before it starts a new one (default: the file's ``reports_per_kernel``, else
        :data:`~rehabstats.constants.REPORTS_PER_KERNEL`); 1: a new worker process and kernel
        for every report. A report that fails or times out is always followed by a new kernel.

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
    with RunLock(jobfile.output_dir).acquire(
        wait=wait,
        job_file=str(jobfile.path),
        on_wait=lambda holder: echo(f"waiting for the lock held by {holder}"),
    ):
        per_kernel = reports_per_kernel or jobfile.reports_per_kernel or REPORTS_PER_KERNEL
        return _run_locked(
            jobfile, n_workers, force=force, only=only, echo=echo, clock=clock,
            per_kernel=per_kernel,
        )  # fmt: skip


def _run_locked(
    jobfile: JobFile,
    n_workers: int,
    *,
    force: bool,
    only: Sequence[str] | None,
    echo: Callable[[str], None],
    clock: float,
    per_kernel: int,
) -> BatchResult:
    files.sweep_workdirs(_SHARED_PREFIX)  # what a killed run left
    shared = files.make_workdir(_SHARED_PREFIX)
    try:
        return _plan_and_run(jobfile, n_workers, force=force, only=only, echo=echo, clock=clock,
                             shared=shared, per_kernel=per_kernel)  # fmt: skip
    finally:
        files.remove_workdir(shared)


def _plan_and_run(
    jobfile: JobFile,
    n_workers: int,
    *,
    force: bool,
    only: Sequence[str] | None,
    echo: Callable[[str], None],
    clock: float,
    shared: Path,
    per_kernel: int,
) -> BatchResult:
    tasks = plan_jobs(jobfile, only=only, force=force, share_into=shared)
    ctx = {
        "output_dir": str(jobfile.output_dir),
        "job_file": str(jobfile.path),
        "run_id": f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        "host": socket.gethostname(),
        "mode": files.file_mode(),
        "versions": package_versions(MANIFEST_PACKAGES),
        "shared_cohorts": str(shared),
        "reports_per_kernel": per_kernel,
    }
    mode = ctx["mode"]
    root = jobfile.output_dir
    files.sweep_workdirs(_STAGE_PREFIX)  # staging folders of killed workers
    for task in tasks:
        outputs.sweep(task.files, root)
        if task.error is not None or task.skip:
            outputs.remove(task.failed_notebook, root)  # it belongs to an older run
        if task.fan_out:  # the job expanded again: drop the failure record of its whole data
            job = jobfile.job(task.job)
            places = {"name": job.name, job.for_each or "": FAN_OUT_FAILED}
            stale = (jobfile.output_dir / substitute(job.output, places)).resolve()
            if stale != task.html and stale.is_relative_to(root):
                outputs.remove(stale.with_suffix(".manifest.json"), root)
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
            now = utc_now()
            doc = manifest(
                task,
                ctx,
                status="failed" if task.error else "skipped",
                started=now,
                finished=now,
                seconds=0.0,
                error=task.error,
            )
            write_manifest(task, doc, mode, root)
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
            task_error = error_record(message, "Interrupted" if interrupted else "WorkerDied")
            doc = manifest(
                task,
                ctx,
                status="failed",
                started=utc_iso(begun),
                finished=utc_iso(now),
                seconds=now - begun,
                error=task_error,
            )
            write_manifest(task, doc, mode, root)
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
    """Run tasks in at most ``n_workers`` worker processes; the signal name if interrupted.

    One executor of one process per worker and one task at a time in it: a worker that dies
    (killed, out of memory) fails its task only, and a new worker takes the next task. With
    ``reports_per_kernel`` 1 (in ``ctx``) every task has a new worker (and kernel); otherwise
    a worker renders task after task in its kept kernel (:class:`WarmKernel`, which starts a
    new kernel after a failure, a timeout or ``reports_per_kernel`` reports).
    """
    if not tasks:
        return None
    mp = multiprocessing.get_context("spawn")
    reuse = ctx.get("reports_per_kernel", 1) > 1
    pending = list(tasks)
    running: dict[cf.Future, tuple[Task, cf.ProcessPoolExecutor]] = {}
    idle: list[cf.ProcessPoolExecutor] = []
    previous_term = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:

        def on_term(signum: int, frame: Any) -> None:
            raise _Interrupted(signum)

        previous_term = signal.signal(signal.SIGTERM, on_term)
    try:
        while pending or running:
            while pending and len(running) < n_workers:
                task = pending.pop(0)
                task.submitted = time.time()
                executor = idle.pop() if idle else cf.ProcessPoolExecutor(
                    1, mp_context=mp, initializer=_worker_init, initargs=(os.getpid(),)
                )  # fmt: skip
                running[executor.submit(_run_task, task, ctx)] = (task, executor)
            done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for future in done:
                task, executor = running.pop(future)
                try:
                    doc = future.result()
                except BrokenProcessPool:
                    executor.shutdown(wait=True)
                    continue  # recorded as WorkerDied by the caller
                except BaseException as exc:
                    executor.shutdown(wait=True)
                    echo(f"{task.name}: worker error {type(exc).__name__}: {exc}")
                    continue
                if reuse and pending:
                    idle.append(executor)  # its kernel is warm: the next task goes there
                else:
                    executor.shutdown(wait=True)
                finished(task, doc)
        for executor in idle:  # each worker stops its kernel as it leaves
            executor.shutdown(wait=True)
        idle.clear()
    except (KeyboardInterrupt, _Interrupted) as exc:
        signum = exc.signum if isinstance(exc, _Interrupted) else signal.SIGINT
        echo(f"interrupted by {signal.Signals(signum).name}: stopping the running jobs")
        _stop(running, idle)
        return signal.Signals(signum).name
    finally:
        if in_main and previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    return None


def _stop(
    running: Mapping[cf.Future, tuple[Task, cf.ProcessPoolExecutor]],
    idle: Sequence[cf.ProcessPoolExecutor] = (),
) -> None:
    """Terminate the workers (they remove their temporary folders and stop their kernels) and
    wait for them."""
    for child in multiprocessing.active_children():
        child.terminate()
    deadline = time.monotonic() + 20
    for child in multiprocessing.active_children():
        child.join(max(0.1, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
    for executor in [*(executor for _, executor in running.values()), *idle]:
        executor.shutdown(wait=False, cancel_futures=True)
