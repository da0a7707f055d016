"""What the batch tests share: the repository's folders, running the command, writing files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_support import run_in_process
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import write_cohort

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

ONE_JOB = """\
output_dir: out
workers: 1
jobs:
  - name: trial
    report: cohort_report
    data: {data}
    output: trial.html
    audience: internal
"""
"""A job file of one internal cohort report on ``{data}`` (``ONE_JOB.format(data=...)``)."""


def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-m", "rehabstats", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def check(*args: str, cwd: Path, env: dict[str, str | None] | None = None):
    """:func:`run` in the test's own process (:func:`cli_support.run_in_process`), for a
    command that starts no worker or kernel: job-file checks, refusals, dry runs, runs with
    every job up to date. ``env`` is added to the environment (``None`` removes a variable)."""
    return run_in_process(*args, cwd=cwd, env=env)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def sites_cohort(folder: Path, sites: list[str]) -> None:
    people = [{"participant_id": f"p{i}", "site": site} for i, site in enumerate(sites)]
    sessions = [row for i in range(len(sites)) for row in sessions_on(f"p{i}", [0])]
    write_cohort(cohort_from_rows(people, sessions=sessions), folder)
