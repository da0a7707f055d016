"""A kept report kernel (:class:`rehabstats.report.render.WarmKernel`): isolation and identity.

A batch worker renders several reports in one kernel. Each report must find the kernel as a
new kernel starts (the reference throughout is a new kernel: what it shows is what a kept
kernel must show), a failure or a timeout must be followed by a new kernel, and so must
``reports_per_kernel`` reports; a report rendered as the 2nd in a kept kernel is the
same file as one rendered in a new kernel (render times and random ids aside).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest

from rehabstats import files
from rehabstats.report.disclosure import PSEUDONYM_KEY_ENV
from rehabstats.report.render import RenderError, WarmKernel, render_report


def _compare_outputs():
    """benchmarks/compare_outputs.py: its masking of render times, paths and random ids."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_outputs.py"
    spec = importlib.util.spec_from_file_location("compare_outputs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


masked = _compare_outputs().masked

pytestmark = pytest.mark.slow

DEMO = {"demo_participants": 60, "demo_seed": 4}

# ---- isolation: a deliberately leaky notebook, then a notebook that looks for its traces -----

LEAKY = """
import os, sys, warnings
import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import numpy as np
sys.path.insert(0, {folder!r})
import leaky_module
leaky_module.warn()                      # shown here; a later report must see it again
leaked_variable = "from the first report"
figure = plt.figure()                    # left open
matplotlib.rcParams["lines.linewidth"] = 9.5
warnings.simplefilter("ignore")          # every warning hidden from here on
warnings.filterwarnings("error", message="leak")
os.environ["LEAKY_VARIABLE"] = "1"
pd.set_option("display.max_rows", 3)
np.seterr(all="raise")
os.chdir({folder!r})
"""

CHECK = """
import json, os, sys, warnings
import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import numpy as np
sys.path.insert(0, {folder!r})
import leaky_module
leaky_module.warn()
print(json.dumps({{
    "names": sorted(k for k in globals() if not k.startswith("_")),
    "figures": plt.get_fignums(),
    "linewidth": matplotlib.rcParams["lines.linewidth"],
    "rc": {{k: repr(v) for k, v in matplotlib.rcParams.items()}},
    "filters": [repr(f) for f in warnings.filters],
    "key": os.environ.get({key_env!r}),
    "leaky_env": os.environ.get("LEAKY_VARIABLE"),
    "cwd": os.getcwd(),
    "max_rows": pd.get_option("display.max_rows"),
    "numpy_errors": np.geterr(),
}}))
"""

MODULE = """
import warnings


def warn():
    warnings.warn("a warning shown once per place", UserWarning)
"""


def notebook(path: Path, source: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def execute(kernel: WarmKernel, source: Path, cwd: Path, env: dict[str, str] | None = None):
    """One notebook through the kept kernel, as render_report runs a report in it."""
    km = kernel.begin(cwd, env)
    ok = False
    try:
        nb = papermill.execute_notebook(
            str(source),
            str(cwd / "executed.ipynb"),
            kernel_name="rehabstats-python",
            progress_bar=False,
            km=km,
        )
        ok = True
    finally:
        kernel.end(ok=ok)
    return nb


def state(nb) -> tuple[dict, str]:
    """The checker's JSON and the warnings it printed (stderr)."""
    outputs = nb.cells[0].outputs
    stdout = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    return json.loads(stdout), stderr


def test_a_report_finds_nothing_of_the_one_before(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "leaky_module.py").write_text(MODULE)
    leaky = notebook(tmp_path / "leaky.ipynb", LEAKY.format(folder=str(folder)))
    check = notebook(
        tmp_path / "check.ipynb", CHECK.format(folder=str(folder), key_env=PSEUDONYM_KEY_ENV)
    )
    key = "a-pseudonym-key-of-the-first-report-0123456789"

    def workdir() -> Path:
        return files.make_workdir("rehabstats-test-warm-")

    dirs = [workdir() for _ in range(4)]
    try:
        # the reference: the checker as the first report of a new kernel
        fresh_kernel = WarmKernel(reports_per_kernel=5)
        try:
            fresh, fresh_err = state(execute(fresh_kernel, check, dirs[0]))
        finally:
            fresh_kernel.close()
        kept = WarmKernel(reports_per_kernel=5)
        try:
            # an external report's key reaches the first report's kernel through its environment
            execute(kept, leaky, dirs[1], {PSEUDONYM_KEY_ENV: key})
            pid = kept.pid
            after, after_err = state(execute(kept, check, dirs[2]))
            assert kept.pid == pid and kept.kernels_started == 1  # the same kernel, reused
        finally:
            kept.close()
    finally:
        for path in dirs:
            files.remove_workdir(path)
    # a new kernel has none of it (sanity of the reference)
    assert "leaked_variable" not in fresh["names"] and fresh["key"] is None
    assert fresh["figures"] == [] and fresh["max_rows"] != 3
    assert fresh["cwd"] == str(dirs[0])
    # the second report of the kept kernel sees exactly what the new kernel saw
    assert "leaked_variable" not in after["names"] and "figure" not in after["names"]
    assert after["names"] == fresh["names"]
    assert after["figures"] == []  # the first report's figure was closed
    assert after["linewidth"] == fresh["linewidth"] != 9.5
    assert after["rc"] == fresh["rc"]
    assert after["filters"] == fresh["filters"]  # neither "ignore" nor "error" remains
    assert after["key"] is None  # the first report's pseudonym key is gone
    assert after["leaky_env"] is None
    assert after["cwd"] == str(dirs[2])  # its own working folder, not the one chdir'd to
    assert after["max_rows"] == fresh["max_rows"]
    assert after["numpy_errors"] == fresh["numpy_errors"]
    # the warning shown by the first report is shown again (its "already shown" record voided)
    assert "a warning shown once per place" in fresh_err
    assert "a warning shown once per place" in after_err


# ---- the reports themselves: new kernels when they must be, the same HTML --------------------


_DURATION = re.compile(r'"(duration|end_time|start_time)": [^,\n]+')
_CELL_ID = re.compile(r'"id": "[0-9a-f-]+"')


def masked_notebook(path: Path) -> str:
    """The executed notebook without its timings and papermill's random cell id."""
    return _CELL_ID.sub('"id": <id>', _DURATION.sub(r'"\1": <t>', masked(path.read_text())))


def test_kept_kernel_renders_what_a_new_kernel_renders_and_is_replaced_when_it_must(tmp_path):
    reference = render_report(
        "clinic_audit", out=tmp_path / "fresh.html", parameters=DEMO, progress=False
    )
    kernel = WarmKernel(reports_per_kernel=2)

    def warm(name: str, report: str = "clinic_audit", **options):
        return render_report(
            report, out=tmp_path / f"{name}.html", parameters=DEMO, progress=False,
            kernel=kernel, **options,
        )  # fmt: skip

    try:
        warm("first", "cohort_report")  # another report first: its state must not carry over
        assert kernel.pid is not None and kernel.kernels_started == 1
        second = warm("second")  # the 2nd report of the same kernel (none was started for it)
        assert kernel.kernels_started == 1
        assert kernel.pid is None  # it has had its reports_per_kernel: stopped
        # a failing report (a cell raises: no such site), in a new kernel (the last one had
        # had its reports); a kernel that failed is not kept
        with pytest.raises(RenderError, match="nowhere"):
            render_report(
                "clinic_audit", out=tmp_path / "failing.html",
                parameters={**DEMO, "site": "nowhere"}, progress=False, kernel=kernel,
            )  # fmt: skip
        assert kernel.kernels_started == 2 and kernel.pid is None
        # a timed-out report, in a new kernel (the failed one was not kept): stopped, and its
        # kernel with it (simulating and analysing 3,000 participants takes several seconds,
        # the limit is 1 s per cell)
        with pytest.raises(RenderError, match="could not be executed"):
            render_report(
                "clinic_audit", out=tmp_path / "slow.html", progress=False, kernel=kernel,
                parameters={**DEMO, "demo_participants": 3000}, timeout=1,
            )  # fmt: skip
        assert kernel.pid is None and kernel.kernels_started == 3
    finally:
        kernel.close()
    assert kernel.pid is None and kernel.log_folder is None
    fresh_html = masked(reference.html_path.read_text())
    assert masked(second.html_path.read_text()) == fresh_html
    assert masked_notebook(second.notebook_path) == masked_notebook(reference.notebook_path)
    # nothing of the failures was written as a report
    assert not (tmp_path / "failing.html").exists() and not (tmp_path / "slow.html").exists()


def test_reports_per_kernel_must_be_positive():
    with pytest.raises(ValueError, match="reports_per_kernel"):
        WarmKernel(reports_per_kernel=0)
