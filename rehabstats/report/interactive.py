"""A report notebook to work in: a copy pointed at a cohort, opened in JupyterLab.

``rehabstats notebook DATA`` (:func:`notebook_copy`, then :func:`lab_command`) copies a report
notebook (``cohort_report`` or ``clinic_audit``) to a file of the user's, with the cohort and
any other parameter set in a cell after the ``parameters`` cell (papermill's
``injected-parameters`` cell: the same values ``rehabstats report -p`` would pass, validated the
same way), and starts JupyterLab on it with a kernel of *this* Python environment (the one
rehabstats is installed in), whatever other ``python3`` kernels the machine has. From there a
researcher runs the cells, changes a parameter or adds their own analysis (docs/interactive.md).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rehabstats.errors import OutputError

__all__ = ["KERNEL_NAME", "kernel_spec", "lab_command", "lab_environment", "notebook_copy"]

KERNEL_NAME = "rehabstats"
"""Name of the kernel the copied notebook asks for (:func:`kernel_spec`)."""


def kernel_spec() -> dict[str, Any]:
    """A Jupyter kernelspec (``kernel.json``) starting ipykernel on this interpreter."""
    from importlib.metadata import version

    return {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python (rehabstats {version('rehabstats')})",
        "language": "python",
        "metadata": {"debugger": True},
    }


def notebook_copy(
    report: str,
    data: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    parameters: Mapping[str, Any] | None = None,
) -> Path:
    """Write a copy of a report notebook with its parameters set, to open and work in.

    Parameters
    ----------
    report : str
        ``cohort_report`` or ``clinic_audit``.
    data : path or str, optional
        The cohort (a folder made absolute, a database URL or ``env:NAME`` as written); None:
        the simulated demo cohort.
    out : path
        The ``.ipynb`` file to write. An existing file is never replaced (it may hold work).
    parameters : mapping, optional
        Other report parameters, validated as ``rehabstats report -p`` validates them.

    Returns
    -------
    Path
        The notebook written (absolute).

    Raises
    ------
    ParameterError
        A parameter is unknown or invalid.
    OutputError
        ``out`` exists, or does not end in ``.ipynb``.
    """
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from rehabstats import files
    from rehabstats.data.sources import is_url
    from rehabstats.report.specs import notebook_path, validate_parameters

    target = Path(out).expanduser().resolve()
    if target.suffix != ".ipynb":
        raise OutputError(f"the notebook must be a .ipynb file, got {os.fspath(out)!r}")
    if target.exists() or target.is_symlink():
        raise OutputError(
            f"{target} already exists: it is not replaced (it may hold your work). Open it "
            "with `jupyter lab`, or choose another --out."
        )
    values = dict(parameters or {})
    if data is not None:
        text = os.fspath(data)
        local = not is_url(text) and not text.startswith("env:")
        values["data"] = str(Path(text).expanduser().resolve()) if local else text
    checked = validate_parameters(report, values)
    given = {k: checked[k] for k in values}  # only what was set; the rest keep their defaults
    nb = load_notebook_node(str(notebook_path(report)))  # every cell with its tags
    nb = parameterize_notebook(nb, given, report_mode=False)
    for cell in nb.cells:  # papermill's bookkeeping: not part of the user's notebook
        cell.metadata.pop("papermill", None)
    spec = kernel_spec()
    nb.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": spec["display_name"],
        "language": "python",
    }
    nb.metadata.pop("papermill", None)
    files.make_folder(target.parent)
    return files.atomic_write(target, nbformat.writes(nb).encode("utf-8"))


def lab_command(notebook: str | os.PathLike, kernels: str | os.PathLike) -> list[str]:
    """The command starting JupyterLab on ``notebook`` with this environment's kernel.

    ``kernels`` is a folder where the kernelspec of :func:`kernel_spec` is written (as
    ``kernels/rehabstats/kernel.json``); the caller puts it first on ``JUPYTER_PATH`` (see
    :func:`lab_environment`), so the notebook's kernel is this interpreter.
    """
    folder = Path(kernels) / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(kernel_spec(), indent=1), encoding="utf-8")
    notebook = Path(notebook).resolve()
    return [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        f"--ServerApp.root_dir={notebook.parent}",
        str(notebook),
    ]


def lab_environment(kernels: str | os.PathLike) -> dict[str, str]:
    """The environment for :func:`lab_command`: ``kernels`` first on ``JUPYTER_PATH``."""
    env = dict(os.environ)
    env["JUPYTER_PATH"] = os.pathsep.join(
        p for p in (str(kernels), env.get("JUPYTER_PATH", "")) if p
    )
    return env
