"""``rehabstats notebook``: a copy of a report notebook pointed at the cohort, opened in a real
JupyterLab whose kernel for it is this Python environment."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from cli_support import run_in_process
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import write_cohort


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """The command in this process (its exit code and output, without a new interpreter)."""
    return run_in_process(*args, cwd=cwd)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    cohort = cohort_from_rows([{"participant_id": "a"}], sessions=sessions_on("a", [0]))
    return write_cohort(cohort, tmp_path_factory.mktemp("nb") / "cohort")


def test_the_copy_sets_the_cohort_and_parameters_after_the_parameters_cell(folder, tmp_path):
    result = run("notebook", str(folder), "-n", "clinic_audit", "-p", "site", "s1",
                 "--no-lab", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = tmp_path / "clinic_audit.ipynb"  # the default name, in the current folder
    assert f"wrote {path}" in result.stdout and "jupyter lab" in result.stdout
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].metadata["tags"] == ["parameters"]
    assert nb.cells[1].metadata["tags"] == ["injected-parameters"]
    assert f'data = "{folder}"' in nb.cells[1].source and 'site = "s1"' in nb.cells[1].source
    assert nb.metadata["kernelspec"]["name"] == "rehabstats"
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    # run again: the copy (maybe holding work) is never replaced
    again = run("notebook", str(folder), "-n", "clinic_audit", "--no-lab", cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert nbformat.read(path, as_version=4) == nb
    # a bad parameter is refused before anything is written
    bad = run("notebook", str(folder), "-p", "group", "nothing", "--out",
              str(tmp_path / "x.ipynb"), "--no-lab")  # fmt: skip
    assert bad.returncode == 2 and "group" in bad.stderr and not (tmp_path / "x.ipynb").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_jupyterlab_opens_the_copy_with_this_environments_kernel(folder, tmp_path):
    port, token = _free_port(), "t" * 32
    lab_args = ["--no-browser", f"--port={port}", f"--IdentityProvider.token={token}",
                "--ServerApp.open_browser=False"]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lab_args.append("--allow-root")
    process = subprocess.Popen(
        [sys.executable, "-m", "rehabstats", "notebook", str(folder), "--out",
         str(tmp_path / "mine.ipynb"), "--", *lab_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/kernelspecs?token={token}", timeout=5) as r:
                    specs = json.loads(r.read())
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "JupyterLab did not start"
                time.sleep(0.5)
        # the notebook's kernel runs this interpreter (the environment rehabstats is in)
        argv = specs["kernelspecs"]["rehabstats"]["spec"]["argv"]
        assert argv[:3] == [sys.executable, "-m", "ipykernel_launcher"]
        with urllib.request.urlopen(f"{base}/contents/mine.ipynb?token={token}", timeout=10) as r:
            served = json.loads(r.read())
        assert served["type"] == "notebook"
        assert served["content"]["metadata"]["kernelspec"]["name"] == "rehabstats"
    finally:
        process.send_signal(signal.SIGTERM)  # stops JupyterLab with it
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 128 + signal.SIGTERM
    with pytest.raises(OSError):  # the server is gone
        urllib.request.urlopen(f"{base}/status?token={token}", timeout=2)
