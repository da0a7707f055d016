"""Inside a reused report kernel: a fresh kernel's state back before each report.

A batch worker keeps one Jupyter kernel for several reports
(:class:`rehabstats.report.render.WarmKernel`). Before each report the worker runs
:func:`begin_report` in that kernel (a silent execution: nothing reaches the notebook) and
after it :func:`end_report`. The first call records the state of the kernel as it started
(only the report libraries preloaded: :data:`rehabstats.report.render.KERNEL_PRELOAD`); every
call puts that state back:

- the user namespace (IPython's ``reset(new_session=True)``: variables, ``In``/``Out``
  history, the execution counter back to 1), then the names the preload defined;
- matplotlib: every figure closed, ``rcParams`` as they were;
- the warning filters, ``showwarning``/``formatwarning`` and the "already shown" registries
  (a warning shown once by the previous report is shown again);
- the environment (the previous report's pseudonym key or database URL removed; the next
  report's set), the working folder, ``sys.path``, the root logger's handlers and level;
- pandas' options, numpy's error handling and print options; the global random generators of
  ``random`` and numpy reseeded from the operating system, as a new process has them.

Imported modules stay imported (that is the point of reusing the kernel). The module-level
caches of rehabstats hold only the package's own schema and default files
(``functools.cache`` in :mod:`rehabstats.data.schema`, :mod:`rehabstats.constants`,
:mod:`rehabstats.config`, :mod:`rehabstats.data.redcap`), never a report's data.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["begin_report", "end_report"]

_BASELINE: dict[str, Any] | None = None


def _shell() -> Any:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:  # pragma: no cover - only run inside a kernel
        raise RuntimeError("rehabstats.report.kernel_state runs inside a report kernel")
    return shell


def _pandas_options() -> dict[str, Any] | None:
    if "pandas" not in sys.modules:
        return None
    import pandas as pd
    from pandas._config import config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated options warn when read
        return {key: pd.get_option(key) for key in config._registered_options}


def _numpy_state() -> tuple[dict[str, Any], dict[str, Any]] | None:
    if "numpy" not in sys.modules:
        return None
    import numpy as np

    return np.geterr(), np.get_printoptions()


def _rc_params() -> dict[str, Any] | None:
    if "matplotlib" not in sys.modules:
        return None
    import matplotlib

    return dict(matplotlib.rcParams)


def _take_baseline() -> dict[str, Any]:
    shell = _shell()
    root = logging.getLogger()
    return {
        "names": dict(shell.user_ns),
        "environ": dict(os.environ),
        "path": list(sys.path),
        "filters": list(warnings.filters),
        "showwarning": warnings.showwarning,
        "formatwarning": warnings.formatwarning,
        "log_handlers": list(root.handlers),
        "log_level": root.level,
        "rc": _rc_params(),
        "pandas": _pandas_options(),
        "numpy": _numpy_state(),
    }


def _restore_environ(target: Mapping[str, str]) -> None:
    for name in [name for name in os.environ if name not in target]:
        del os.environ[name]
    for name, value in target.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _restore_matplotlib(rc: dict[str, Any] | None) -> None:
    if "matplotlib" not in sys.modules:
        return
    import matplotlib

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    if rc is None:  # first imported by a report: the values it was imported with
        rc = dict(matplotlib.rcParamsOrig)
    # the backend stays as chosen (switching it is not a report's business)
    changed = {
        k: v for k, v in rc.items() if k != "backend" and _differs(matplotlib.rcParams.get(k), v)
    }
    if changed:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated keys warn when set
            matplotlib.rcParams.update(changed)


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(a != b)
    except Exception:  # arrays and the like: compare their text
        return repr(a) != repr(b)


def _restore_pandas(options: dict[str, Any] | None) -> None:
    if options is None or "pandas" not in sys.modules:
        return
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, value in options.items():
            if _differs(pd.get_option(key), value):
                pd.set_option(key, value)


def _restore_numpy(state: tuple[dict[str, Any], dict[str, Any]] | None) -> None:
    if "numpy" not in sys.modules:
        return
    import numpy as np

    if state is not None:
        np.seterr(**state[0])
        np.set_printoptions(**state[1])
    np.random.seed()  # noqa: NPY002 - the legacy global generator, reseeded as a new process


def _restore(base: dict[str, Any], *, cwd: str, environ: Mapping[str, str]) -> None:
    shell = _shell()
    shell.reset(new_session=True)  # variables, In/Out, the execution counter back to 1
    for name, value in base["names"].items():
        shell.user_ns.setdefault(name, value)  # what the preload defined
    _restore_environ({**base["environ"], **environ})
    os.chdir(cwd)
    sys.path[:] = base["path"]
    warnings.filters[:] = base["filters"]
    warnings.showwarning = base["showwarning"]
    warnings.formatwarning = base["formatwarning"]
    warnings._filters_mutated()  # every module's "already shown" registry is void
    warnings.onceregistry.clear()
    root = logging.getLogger()
    root.handlers[:] = base["log_handlers"]
    root.setLevel(base["log_level"])
    _restore_matplotlib(base["rc"])
    _restore_pandas(base["pandas"])
    _restore_numpy(base["numpy"])
    random.seed()


def begin_report(cwd: str, environ: Mapping[str, str] | None = None) -> None:
    """Put the kernel's starting state back, then set the next report's folder and environment.

    Parameters
    ----------
    cwd : str
        The report's working folder (a new private folder for each report).
    environ : mapping, optional
        Variables the report adds to the kernel's starting environment (the pseudonym key of
        an external report, a database URL carrying its password).
    """
    global _BASELINE
    if _BASELINE is None:  # the kernel has only run its preload so far
        _BASELINE = _take_baseline()
    _restore(_BASELINE, cwd=cwd, environ=environ or {})


def end_report(cwd: str) -> None:
    """After a report: its data, figures and environment (its key) dropped; back to ``cwd``."""
    if _BASELINE is None:
        return
    _restore(_BASELINE, cwd=cwd, environ={})
