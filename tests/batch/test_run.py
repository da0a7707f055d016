"""`rehabstats batch` end to end: isolated failures, manifests, index, skips, kills, locking.

One batch is rendered once per module (two fanned-out site audits next to broken jobs) and the
scenarios below build on it in file order: skip, --force, kills mid-render, the lock, a data
change. The command runs as a real subprocess, from another folder than the job file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from batch_support import check, run

from rehabstats import load_cohort, simulate_tables, write_cohort
from rehabstats.batch import (
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    RunLock,
    load_jobs,
    plan_jobs,
)
from rehabstats.report.render import external_references
from rehabstats.report.specs import notebook_path

pytestmark = pytest.mark.slow


JOBS = """
output_dir: out
workers: 1
defaults:
  data: data/good
  audience: internal
jobs:
  - name: audit
    report: clinic_audit
    for_each: site
    output: "audit/{site}.html"
    parameters:
      title: "Clinic audit - {site}"
  - name: nodata
    report: clinic_audit
    data: data/missing
    output: nodata.html
  - name: badparam
    report: clinic_audit
    output: badparam.html
    parameters: {target_adherence: 2}
  - name: invalid
    report: clinic_audit
    data: data/invalid
    output: invalid.html
  - name: nosite
    report: clinic_audit
    output: nosite.html
    parameters: {site: nowhere}
"""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(root: Path, name: str) -> dict:
    return json.loads((root / "out" / f"{name}.manifest.json").read_text())


def two_site_tables(seed: int = 3) -> dict:
    tables = simulate_tables(48, seed=seed)
    people = tables["participants"]
    people["site"] = np.where(np.arange(len(people)) % 2 == 0, "north", "south")
    return tables


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A job folder rendered once: (folder, completed process, seconds)."""
    root = tmp_path_factory.mktemp("batch")
    tables = two_site_tables()
    write_cohort(tables, root / "data" / "good")
    broken = {name: table.copy() for name, table in tables.items()}
    broken["participants"].loc[0, "body_mass_kg"] = 5.0  # contract: 25-300 kg
    write_cohort(broken, root / "data" / "invalid")
    (root / "jobs.yaml").write_text(JOBS)
    elsewhere = tmp_path_factory.mktemp("cwd")  # relative paths follow the job file, not cwd
    started = time.perf_counter()
    result = run("batch", str(root / "jobs.yaml"), "--workers", "2", cwd=elsewhere)
    return root, result, time.perf_counter() - started


# ---- a batch with broken jobs next to good ones ---------------------------------------------


def test_good_jobs_render_and_broken_ones_fail_alone(batch):
    root, result, seconds = batch
    out = root / "out"
    assert result.returncode == EXIT_FAILED, result.stdout + result.stderr
    for site in ("north", "south"):
        assert (out / "audit" / f"{site}.html").stat().st_size > 10_000
        assert (out / "audit" / f"{site}.ipynb").is_file()
    status = {
        line.split()[0]: line.split()[1]
        for line in result.stdout.splitlines()
        if re.match(r"^(audit:\w+|nodata|badparam|invalid|nosite)\s+(ok|failed|skipped)\s", line)
    }
    assert status == {
        "audit:north": "ok",
        "audit:south": "ok",
        "nodata": "failed",
        "badparam": "failed",
        "invalid": "failed",
        "nosite": "failed",
    }
    assert "2 ok, 4 failed" in result.stdout
    # each failure says what went wrong
    assert "data folder not found" in result.stdout
    assert "target_adherence must be <= 1, got 2" in result.stdout
    assert "body_mass_kg" in result.stdout and "must be between 25 and 300" in result.stdout
    assert "site 'nowhere' is not in the data" in result.stdout
    for name in ("nodata", "badparam", "invalid", "nosite"):
        assert not (out / f"{name}.html").exists()
    # the failed notebook is kept where a kernel ran, and only there
    assert (out / "nosite.failed.ipynb").is_file()
    assert str(out / "nosite.failed.ipynb") in result.stdout
    for name in ("nodata", "badparam", "invalid"):
        assert not (out / f"{name}.failed.ipynb").exists()
    assert not list(out.rglob("*.tmp"))
    print(f"batch of 6 jobs (3 kernels) with 2 workers: {seconds:.1f} s")


def test_manifests_record_inputs_outputs_and_errors(batch):
    root, _, _ = batch
    doc = manifest(root, "audit/north")
    assert doc["status"] == "ok" and doc["error"] is None
    assert doc["job"] == "audit:north" and doc["fan_out"] == {"site": "north"}
    assert doc["audience"] == "internal"
    assert doc["data"]["fingerprint"] == load_cohort(root / "data" / "good").fingerprint()
    assert doc["data"]["path"] == str(root / "data" / "good")
    assert doc["notebook"]["sha256"] == sha(notebook_path("clinic_audit"))
    assert doc["parameters"]["site"] == "north"
    assert doc["parameters"]["title"] == "Clinic audit - north"  # {site} in text parameters
    assert {"python", "rehabstats", "pandas", "papermill"} <= set(doc["versions"])
    for key in ("started_at", "finished_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc[key])
    assert doc["finished_at"] >= doc["started_at"]
    assert doc["outputs"]["html"] == "audit/north.html"
    assert doc["outputs"]["html_sha256"] == sha(root / "out" / "audit" / "north.html")
    assert doc["report_provenance"]["participants"] == 24
    assert doc["last_success"]["inputs"]["data_fingerprint"] == doc["data"]["fingerprint"]

    errors = {
        name: manifest(root, name)["error"] for name in ("nodata", "badparam", "invalid", "nosite")
    }
    assert errors["nodata"]["type"] == "DataNotFound"
    assert errors["badparam"]["type"] == "ParameterError"
    assert "target_adherence must be <= 1" in errors["badparam"]["summary"]
    assert errors["invalid"]["type"] == "CohortValidationError"
    assert errors["nosite"]["type"] == "RenderError"
    assert manifest(root, "nosite")["outputs"]["failed_notebook"] == "nosite.failed.ipynb"
    assert all(manifest(root, n)["last_success"] is None for n in errors)


def test_index_lists_every_report_offline(batch):
    root, _, _ = batch
    text = (root / "out" / "index.html").read_text()
    assert external_references(text) == []
    assert "Content-Security-Policy" in text and "<script" not in text
    for name in ("audit:north", "audit:south", "nodata", "badparam", "invalid", "nosite"):
        assert name in text
    assert '<a href="./audit/north.html">audit:north</a>' in text
    assert '<a href="./nosite.failed.ipynb">failed notebook</a>' in text
    assert text.count('class="s-ok"') == 2 and text.count('class="s-failed"') == 4
    assert "Clinic audit - south" in text


# ---- incremental runs -----------------------------------------------------------------------


def test_unchanged_reports_are_skipped(batch):
    root, _, _ = batch
    html = root / "out" / "audit" / "north.html"
    before = (sha(html), html.stat().st_mtime_ns)
    result = check("batch", "jobs.yaml", "--only", "audit", cwd=root)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert re.search(r"audit:north\s+skipped\s.*up to date", result.stdout)
    assert re.search(r"audit:south\s+skipped\s", result.stdout)
    assert (sha(html), html.stat().st_mtime_ns) == before
    assert manifest(root, "audit/north")["status"] == "skipped"
    assert "nosite" not in result.stdout  # --only


def test_force_plans_up_to_date_reports_to_run(batch):
    # (the kill tests below run --force for real: their kernel starts only because of it)
    root, _, _ = batch
    jobfile = load_jobs(root / "jobs.yaml")
    assert all(t.skip for t in plan_jobs(jobfile, only=["audit"]))
    forced = plan_jobs(jobfile, only=["audit"], force=True)
    assert [(t.name, t.skip, t.reason) for t in forced] == [
        ("audit:north", False, "--force"),
        ("audit:south", False, "--force"),
    ]


def _descendants(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (the batch, its workers, their kernels)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_run_killed_mid_render_leaves_the_previous_report(batch, sig):
    root, _, _ = batch
    out = root / "out"
    kept = {p: p.read_bytes() for p in (out / "audit").glob("north.*")}
    assert len(kept) == 3  # html, ipynb, manifest
    # a short TMPDIR: the kernel's IPC socket paths live in it (Unix sockets: 107 bytes at most)
    scratch = Path(tempfile.mkdtemp(prefix="rsb-", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rehabstats", "batch", "jobs.yaml", "--only", "audit:north"]
        + ["--force"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(scratch.glob("rehabstats-render-*/kernel-*.json")):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no kernel started"
            time.sleep(0.05)
        time.sleep(0.5)  # the kernel is executing the notebook
        assert proc.poll() is None
        proc.send_signal(sig)
        proc.wait(timeout=60)
        # the workers and kernels stop with it: nothing can move a report into place later
        deadline = time.monotonic() + 30
        while _descendants(str(scratch)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _descendants(str(scratch)) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _descendants(str(scratch)):
            os.kill(pid, signal.SIGKILL)
        output = proc.stdout.read()
        proc.stdout.close()
        leftovers_in_tmp = list(scratch.iterdir())
        shutil.rmtree(scratch, ignore_errors=True)
    assert {p: p.read_bytes() for p in kept if p.suffix != ".json"} == {
        p: b for p, b in kept.items() if p.suffix != ".json"
    }
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert sorted(p.name for p in (out / "audit").iterdir()) == sorted(
        f"{s}.{ext}" for s in ("north", "south") for ext in ("html", "ipynb", "manifest.json")
    )
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        assert (out / "audit" / "north.manifest.json").read_bytes() == kept[
            out / "audit" / "north.manifest.json"
        ]
    else:  # stopped cleanly: recorded as interrupted, temporary folders removed
        assert proc.returncode == 128 + signal.SIGTERM, output
        doc = manifest(root, "audit/north")
        assert doc["status"] == "failed" and doc["error"]["type"] == "Interrupted"
        assert doc["last_success"]["outputs"]["html_sha256"] == sha(out / "audit" / "north.html")
        assert leftovers_in_tmp == []
    # the previous report is consistent with its manifest: the next run finds it up to date
    assert [t.skip for t in plan_jobs(load_jobs(root / "jobs.yaml"), only=["audit:north"])] == [
        True
    ]


# ---- the lock -------------------------------------------------------------------------------


def test_an_overlapping_run_exits_at_once_or_waits(batch):
    root, _, _ = batch
    lock = RunLock(root / "out").acquire(job_file="held by the test")
    try:
        started = time.perf_counter()
        result = run("batch", "jobs.yaml", "--only", "audit", cwd=root)
        assert result.returncode == EXIT_LOCKED
        assert "another batch run is writing" in result.stderr
        assert f"pid {os.getpid()}" in result.stderr and "--wait" in result.stderr
        assert time.perf_counter() - started < 30
        waiting = subprocess.Popen(
            [sys.executable, "-m", "rehabstats", "batch", "jobs.yaml", "--only", "audit"]
            + ["--wait"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = waiting.stdout.readline()
        assert "waiting for the lock held by pid" in first
        assert waiting.poll() is None
    finally:
        lock.release()
    rest, err = waiting.communicate(timeout=120)
    assert waiting.returncode == EXIT_OK, rest + err
    assert re.search(r"audit:north\s+skipped\s", rest)


def test_changed_data_rerenders(batch):
    root, _, _ = batch
    tables = two_site_tables()
    tables["participants"].loc[1, "age_years"] = 33  # one participant of site south
    write_cohort(tables, root / "data" / "good", overwrite=True)
    result = run("batch", "jobs.yaml", "--only", "audit:south", cwd=root)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert re.search(r"audit:south\s+ok\s.*the data changed", result.stdout)
    doc = manifest(root, "audit/south")
    assert doc["data"]["fingerprint"] == load_cohort(root / "data" / "good").fingerprint()
    plan = plan_jobs(load_jobs(root / "jobs.yaml"), only=["audit"])
    assert {t.name: t.skip for t in plan} == {"audit:north": False, "audit:south": True}
