"""The ``rehabstats`` command run in the test's own process: what a subprocess gives (exit code,
standard output, standard error) without starting a new interpreter and importing the package
again (1-2 s of CPU for each command).

The console script's entry point (:func:`rehabstats.cli.main`, with its handling of errors) runs
with ``sys.argv`` set, standard output and error on pipes (not terminals) and Python's default
warning filters, so warnings a real process would print land in ``stderr`` too. Tests of what
only a real process shows (progress on a pseudo-terminal, signals, imports, umask, a command's
temporary folder) keep running the command as a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from unittest import mock


def _default_warning_filters() -> None:
    """The warning filters of a new Python process (no ``-W`` option, not in development mode)."""
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")


def run_in_process(
    *args: str, env: dict[str, str | None] | None = None, cwd: Path | str | None = None
) -> subprocess.CompletedProcess:
    """``python -m rehabstats *args`` in this process: its exit code, stdout and stderr.

    ``env`` is added to the environment for the command (a ``None`` value removes the
    variable) and put back afterwards."""
    from click.testing import CliRunner

    from rehabstats import cli

    old_cwd = os.getcwd()
    with (
        CliRunner().isolation(env=env) as (stdout, stderr, _),
        warnings.catch_warnings(record=True) as caught,
        mock.patch.object(sys, "argv", ["rehabstats", *args]),
    ):
        _default_warning_filters()
        if cwd is not None:
            os.chdir(cwd)
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                sys.stderr.write(f"{exc.code}\n")  # as the interpreter prints it
        finally:
            os.chdir(old_cwd)
        for w in caught:  # printed by a real process at the time (order aside)
            sys.stderr.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno))
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = stdout.getvalue(), stderr.getvalue()
    return subprocess.CompletedProcess(
        ["rehabstats", *args], code, out.decode(errors="replace"), err.decode(errors="replace")
    )


def environment_without_dask(folder: Path) -> dict[str, str]:
    """The environment of a real process in which ``import dask`` fails as on an installation
    without the ``[dask]`` extra: a module named ``dask`` raising ImportError, first on
    ``PYTHONPATH`` (made in ``folder``)."""
    blocker = folder / "nodask"
    blocker.mkdir()
    (blocker / "dask.py").write_text("raise ImportError('No module named dask', name='dask')\n")
    return {**os.environ, "PYTHONPATH": f"{blocker}:{os.environ.get('PYTHONPATH', '')}"}
