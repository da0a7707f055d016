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
   network) and keeps no IPython history. A batch worker passes a :class:`WarmKernel` instead:
   one kernel kept for several reports and put back to a new kernel's state before each.
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

The reports and their parameters are declared once, in :mod:`rehabstats.report.specs`.
"""

from __future__ import annotations

import contextlib
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
from rehabstats.constants import (
    CELL_TIMEOUT,
    PATH_PARAMETERS,
    REPORTS_PER_KERNEL,
    START_TIMEOUT,
)
from rehabstats.errors import OutputError, ParameterError, RehabstatsError
from rehabstats.report.specs import (
    PROVENANCE_MIMETYPE,
    REPORTS,
    notebook_path,
    report_spec,
    validate_parameters,
)

__all__ = [
    "RenderError",
    "RenderResult",
    "WarmKernel",
    "external_references",
    "render_demo",
    "render_report",
    "report_pair_matches",
    "template_dir",
    "to_html",
    "written_by_rehabstats",
]

_HERE = Path(__file__).resolve().parent

DATABASE_URL_ENV = "REHABSTATS_DATABASE_URL"
"""Environment variable through which :func:`render_report` hands the kernel a database URL
that carries its password (given through the Python API; never a notebook parameter)."""


class RenderError(RehabstatsError, RuntimeError):
    """A report notebook failed while executing or converting; the message says where."""


# ---- locations -----------------------------------------------------------------------------


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

KERNEL_PRELOAD = "import gc, rehabstats.report.sections; gc.collect(); gc.freeze()"
"""Run by each report kernel as it starts (``IPKernelApp.exec_lines``): the libraries every
report imports load while this process is still importing papermill, instead of after; then
what is loaded is frozen out of the garbage collector's full collections (:func:`gc.freeze`),
which would otherwise traverse those libraries' objects again and again while a report runs
(about 5 % of a report's CPU; its own objects are collected as before)."""


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

        @default("client_factory")
        def _client_factory_default(self) -> type:
            from rehabstats.report.kernel_client import ReadyClient

            return ReadyClient  # ready without jupyter_client's 0.2 s of IOPub silence

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


class WarmKernel:
    """One report kernel kept running across the reports of a batch worker.

    A new kernel costs a process and the import of the report libraries (pandas, matplotlib,
    scipy, statsmodels: seconds per report). A batch worker keeps one instead and renders up to
    ``reports_per_kernel`` reports in it (:func:`render_report` with ``kernel=``). Before each
    report :meth:`begin` puts the kernel back to the state it started in
    (:mod:`rehabstats.report.kernel_state`: the namespace and execution counter, matplotlib's
    figures and ``rcParams``, the warning filters, the environment -- the previous report's
    pseudonym key removed --, the working folder, pandas' and numpy's options) and gives it
    the report's private work folder and environment; after the report :meth:`end` does the
    same again (the report's data and key do not stay in the idle kernel). The kernel is
    replaced by a new one after a report that failed or timed out, after
    ``reports_per_kernel`` reports, or when putting it back fails. The rendered notebook and
    HTML are those of a new kernel.

    Parameters
    ----------
    reports_per_kernel : int
        Reports one kernel renders before it is replaced (1: a new kernel for each report).
    start_timeout : float
        Longest time the kernel may take to start or to answer, in seconds.
    """

    def __init__(
        self, *, reports_per_kernel: int = REPORTS_PER_KERNEL, start_timeout: float = START_TIMEOUT
    ) -> None:
        if reports_per_kernel < 1:
            raise ValueError(f"reports_per_kernel must be >= 1, got {reports_per_kernel}")
        self.reports_per_kernel = reports_per_kernel
        self.start_timeout = start_timeout
        self.kernels_started = 0
        """Kernels started so far (a new one after a failure or ``reports_per_kernel``)."""
        self.reports = 0
        """Reports rendered by the running kernel."""
        self._km: Any = None
        self._home: Path | None = None
        self._log: Any = None

    @property
    def pid(self) -> int | None:
        """Process id of the running kernel (None when none runs)."""
        process = getattr(getattr(self._km, "provisioner", None), "process", None)
        return None if process is None or process.poll() is not None else process.pid

    @property
    def log_folder(self) -> Path | None:
        """The running kernel's folder (connection file and ``kernel.log``)."""
        return self._home

    def flush_log(self) -> None:
        if self._log is not None:
            self._log.flush()

    def _start(self) -> None:
        from jupyter_core.utils import run_sync

        self._home = files.make_workdir(_WORKDIR_PREFIX)  # owned by this process while it runs
        self._log = open(self._home / "kernel.log", "wb")  # noqa: SIM115 - closed in close()
        self._km = _kernel_manager_class(self._home, self._log)(kernel_name="rehabstats-python")
        self.kernels_started += 1
        self.reports = 0
        run_sync(self._km.start_kernel)(cwd=str(self._home))

    def _call(self, function: str, *args: Any) -> None:
        """Run ``rehabstats.report.kernel_state.<function>(*args)`` in the kernel, silently
        (nothing is recorded in the kernel's history or sent to a notebook)."""
        from jupyter_core.utils import run_sync

        code = (
            f"__import__('rehabstats.report.kernel_state', fromlist=['{function}'])"
            f".{function}(*__import__('json').loads({json.dumps(json.dumps(args))}))"
        )

        async def call() -> dict[str, Any]:
            # a new client each time, the earlier ones (the last notebook's) stopped first: the
            # kernel routes replies to the client that connected last (one session identity)
            for earlier in getattr(self._km, "_clients", []):
                earlier.stop_channels()
            self._km._clients = []
            kc = self._km.client()
            kc.start_channels()
            try:
                await kc.wait_for_ready(timeout=self.start_timeout)
                return await kc.execute_interactive(
                    code,
                    silent=True,
                    store_history=False,
                    allow_stdin=False,
                    timeout=self.start_timeout,
                    output_hook=lambda msg: None,
                )
            finally:
                kc.stop_channels()

        reply = run_sync(call)()
        content = reply.get("content", {})
        if content.get("status") != "ok":
            raise RenderError(
                f"the kernel could not be reset: {content.get('ename')}: {content.get('evalue')}"
            )

    def begin(self, cwd: Path, env: Mapping[str, str] | None = None) -> Any:
        """The kernel manager of a kernel in its starting state, working in ``cwd`` with ``env``
        added to its environment (a kernel is started when none runs)."""
        if self._km is not None and self.pid is None:  # died while idle
            self.close()
        if self._km is None:
            self._start()
        self._call("begin_report", str(cwd), dict(env or {}))
        # a failure quotes the end of the kernel's own output: this report's only (the kernel
        # writes through the same open file, at its shared offset)
        self._log.flush()
        self._log.truncate(0)
        self._log.seek(0)
        return self._km

    def end(self, *, ok: bool) -> None:
        """After a report: keep the kernel (reset) if the report rendered and the kernel has
        reports left, else stop it."""
        if self._km is None:
            return
        self.reports += 1
        if not ok or self.reports >= self.reports_per_kernel or self.pid is None:
            self.close()
            return
        try:
            self._call("end_report", str(self._home))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the kernel and remove its folder (its connection file and key)."""
        km, home, log = self._km, self._home, self._log
        self._km = self._home = self._log = None
        try:
            if km is not None:
                _close_kernel(km)
        finally:
            if log is not None:
                log.close()
            if home is not None:
                files.remove_workdir(home)


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
    timeout: float | None = CELL_TIMEOUT,
    start_timeout: float = START_TIMEOUT,
    check_data: bool = True,
    kernel: WarmKernel | None = None,
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
        Load and validate the cohort folder before any kernel starts (a batch run has
        validated it while planning and passes False).
    kernel : WarmKernel, optional
        Render in this kept kernel (put back to its starting state first) instead of a new
        one; a batch worker's. It is replaced after a failure or a timeout
        (:class:`WarmKernel`).

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
        kernel=kernel,
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
    kernel: WarmKernel | None = None,
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
    if check_data and params.get("data") is not None and not _on_cluster(params):
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
        if _on_cluster(params):  # the tables computed on the cluster, handed to the kernel
            from rehabstats.report.cluster import write_for_kernel

            kernel_env.update(write_for_kernel(report, params, workdir))
        kernel_log = None
        log_folder = workdir
        if kernel is None:
            kernel_log = open(workdir / "kernel.log", "wb")  # noqa: SIM115 - closed in finally
            # the kernel starts before papermill is imported: it boots and loads the report
            # libraries on another core while this process imports papermill, nbformat, nbclient
            km = _kernel_manager_class(workdir, kernel_log, kernel_env)(
                kernel_name="rehabstats-python"
            )
            if kernels is not None:
                kernels.append(km)
        rendered = False
        try:
            executed = workdir / f"{report}.ipynb"
            try:
                if start_after is not None:
                    start_after.wait()
                _stop_if(cancel, report)
                if kernel is None:
                    run_sync(km.start_kernel)(cwd=str(workdir))
                else:  # the worker's kernel, back to its starting state, in this work folder
                    km = kernel.begin(workdir, kernel_env)
            except Exception as exc:  # launch, socket or path errors alike
                if kernel is not None:
                    kernel.flush_log()
                    log_folder = kernel.log_folder or workdir
                raise _kernel_failure(
                    report, f"could not start its kernel: {exc}", log_folder
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
                if kernel_log is not None:
                    kernel_log.flush()
                else:
                    kernel.flush_log()
                    log_folder = kernel.log_folder or workdir
                raise _kernel_failure(report, f"could not be executed: {exc}", log_folder) from exc
            import nbformat

            if params.get("audience") == "external":
                _withhold_paths(nb)
            provenance = _provenance(nb)
            nb.metadata["title"] = provenance.get("title") or report_spec(report).title
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
            rendered = True
        finally:
            if kernel is not None:  # kept for the next report only after a clean render
                kernel.end(ok=rendered)
            else:
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


def _on_cluster(params: Mapping[str, Any]) -> bool:
    """Whether the report's data is a partitioned cohort analysed on a Dask cluster (the
    tables are computed, and the partitions validated, before the kernel starts)."""
    return params.get("engine") == "dask" and params.get("data") is not None


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
    :data:`~rehabstats.report.specs.REPORTS`) start their kernels at once and the others once papermill is imported.
    Interrupted (``KeyboardInterrupt``, a signal turned into one), every running render is
    stopped and writes nothing.

    Returns
    -------
    list of RenderResult
        In the order of :data:`~rehabstats.report.specs.REPORTS`.
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
                timeout=CELL_TIMEOUT,
                start_timeout=START_TIMEOUT,
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


def _withhold_paths(nb: Any) -> None:
    """Paths out of an external report's notebook: papermill's record of the parameters and
    its injected-parameters cell (a folder or file name can hold names or ids; the report
    identifies its data by the fingerprint instead)."""
    recorded = nb.metadata.get("papermill", {}).get("parameters", {})
    for name in PATH_PARAMETERS:
        if recorded.get(name) is not None:
            recorded[name] = "withheld (external report)"
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell.source = "\n".join(
                f"{line.split('=', 1)[0].strip()} = 'withheld (external report)'"
                if line.split("=", 1)[0].strip() in PATH_PARAMETERS
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
