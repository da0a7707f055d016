"""The job file's ``reports_per_kernel`` and its command-line override (kept kernels).

The isolation of reports sharing a kernel is tested in tests/report/test_warm_kernel.py; the
batch tests (test_run.py, test_kill.py) run with the default, kept kernels.
"""

from __future__ import annotations

import pytest
from batch_support import ROOT, check, write

from rehabstats.batch import EXIT_INVALID, load_jobs
from rehabstats.constants import REPORTS_PER_KERNEL
from rehabstats.errors import JobFileError

JOBS = """
output_dir: out
{extra}
defaults: {{audience: internal, data: data}}
jobs:
  - name: a
    report: clinic_audit
    output: a.html
"""


def test_reports_per_kernel_is_read_and_defaults_to_none(tmp_path):
    jobs = write(tmp_path / "jobs.yaml", JOBS.format(extra="reports_per_kernel: 5"))
    assert load_jobs(jobs).reports_per_kernel == 5
    plain = write(tmp_path / "plain.yaml", JOBS.format(extra=""))
    assert load_jobs(plain).reports_per_kernel is None  # the run uses REPORTS_PER_KERNEL
    assert REPORTS_PER_KERNEL == 20  # the documented default (docs/batch.md)


@pytest.mark.parametrize("value", ["0", "-2", "2.5", "true", "many"])
def test_a_bad_reports_per_kernel_is_a_job_file_problem(tmp_path, value):
    jobs = write(tmp_path / "jobs.yaml", JOBS.format(extra=f"reports_per_kernel: {value}"))
    with pytest.raises(JobFileError, match=r"reports_per_kernel: must be a whole number >= 1"):
        load_jobs(jobs)


def test_the_command_line_option_is_checked_before_anything_runs(tmp_path):
    jobs = write(tmp_path / "jobs.yaml", JOBS.format(extra=""))
    result = check("batch", str(jobs), "--reports-per-kernel", "0", cwd=tmp_path)
    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    assert "--reports-per-kernel" in result.stderr
    assert not (tmp_path / "out").exists()


def test_reports_per_kernel_is_documented():
    doc = (ROOT / "docs" / "batch.md").read_text()
    assert "`reports_per_kernel`" in doc and "`--reports-per-kernel N`" in doc
    assert load_jobs(ROOT / "deploy" / "jobs.yaml").reports_per_kernel == REPORTS_PER_KERNEL
