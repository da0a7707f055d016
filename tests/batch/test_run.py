"""`rehabstats batch`: job files, isolated failures, manifests, index, skips, atomicity, locking.

One batch is rendered once per module (two fanned-out site audits next to broken jobs) and the
scenarios below build on it in file order: skip, --force, kills mid-render, the lock, a data
change. The command runs as a real subprocess, from another folder than the job file.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import load_cohort, simulate_tables, write_cohort
from rehabstats.batch import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_LOCKED,
    EXIT_OK,
    RunLock,
    load_jobs,
    plan_jobs,
)
from rehabstats.errors import JobFileError, OutputError
from rehabstats.report.render import external_references, notebook_path, report_parameters

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

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


def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-m", "rehabstats", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


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


def test_index_links_stay_files_in_the_folder(tmp_path):
    # a report's file name is the job file's choice: "javascript:x.html" or "a#b?.html" is a
    # file beside the index, linked as such (a bare name before ":" would be read as a scheme)
    from rehabstats.batch import write_index
    from rehabstats.batch.manifest import MANIFEST_VERSION

    names = ["javascript:alert(1).html", "http:x.html", "a#b?c d.html"]
    for i, name in enumerate(names):
        (tmp_path / name).write_text("<p>report</p>")
        last = {"finished_at": "2026-01-31T02:30:05Z", "outputs": {"html": name},
                "report_provenance": {"title": f"<b>{name}</b>"}}  # fmt: skip
        doc = {"manifest_version": MANIFEST_VERSION, "job": f"job{i}", "status": "ok",
               "audience": "internal", "outputs": {"html": name}, "last_success": last}  # fmt: skip
        (tmp_path / f"job{i}.manifest.json").write_text(json.dumps(doc))
    text = write_index(tmp_path).read_text()
    hrefs = re.findall(r'<a href="([^"]*)"', text)
    assert sorted(hrefs) == ["./a%23b%3Fc%20d.html", "./http%3Ax.html",
                             "./javascript%3Aalert%281%29.html"]  # fmt: skip
    assert "&lt;b&gt;javascript:alert(1).html&lt;/b&gt;" in text  # the title as text


# ---- incremental runs -----------------------------------------------------------------------


def test_unchanged_reports_are_skipped(batch):
    root, _, _ = batch
    html = root / "out" / "audit" / "north.html"
    before = (sha(html), html.stat().st_mtime_ns)
    result = run("batch", "jobs.yaml", "--only", "audit", cwd=root)
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


# ---- the job file ---------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_every_problem_of_a_job_file_is_listed_and_nothing_runs(tmp_path):
    jobs = write(
        tmp_path / "jobs.yaml",
        """
output_dir: out
colour: blue
defaults: {audience: internal, data: data}
jobs:
  - name: a
    report: clinic_audit
    output: a.html
    outptu: typo.html
  - name: b
    report: clinic_adit
    output: b.html
  - name: a
    report: clinic_audit
    output: other.html
  - name: c
    report: cohort_report
    for_each: arm
    output: "c/{arm}.html"
  - name: d
    report: clinic_audit
    for_each: site
    output: d.html
  - name: e
    report: clinic_audit
    output: ../../escape.html
  - name: f
    report: clinic_audit
    audience: public
    output: f.html
  - name: g
    report: clinic_audit
  - name: h
    report: clinic_audit
    output: a.html
""",
    )
    with pytest.raises(JobFileError) as info:
        load_jobs(jobs)
    text = str(info.value)
    expected = [
        "top level: unknown key 'colour'",
        "jobs[1] (a): unknown key 'outptu' (did you mean 'output'?)",
        "unknown report 'clinic_adit' (did you mean 'clinic_audit'?)",
        "name 'a' is already used by jobs[1]",
        "report 'cohort_report' cannot fan out over 'arm'",
        "output 'd.html' must contain {site}",
        "leaves the output folder",
        "audience must be one of internal, external, got 'public'",
        "jobs[8] (g): missing output",
        "output 'a.html' is also the output of job 'a'",
    ]
    for phrase in expected:
        assert phrase in text, phrase
    assert len(info.value.problems) == len(expected)
    result = run("batch", str(jobs), cwd=tmp_path)
    assert result.returncode == EXIT_INVALID
    assert "nothing was run" in result.stderr
    assert not (tmp_path / "out").exists()


def test_yaml_errors_and_duplicate_keys_are_reported_with_their_line(tmp_path):
    bad = write(tmp_path / "bad.yaml", "jobs:\n  - name: a\n    name: b\n")
    with pytest.raises(JobFileError, match=r"line 3.*key 'name' given twice"):
        load_jobs(bad)
    broken = write(tmp_path / "broken.yaml", "jobs: [\n")
    with pytest.raises(JobFileError, match="not valid YAML"):
        load_jobs(broken)


def test_an_impossible_date_or_output_folder_is_a_job_file_problem_not_a_traceback(tmp_path):
    _sites_cohort(tmp_path / "data", ["north"])
    (tmp_path / "afile").write_text("x")
    jobs = write(
        tmp_path / "jobs.yaml",
        "output_dir: afile\n"
        "defaults: {audience: internal, data: data, report: cohort_report}\njobs:\n"
        "  - {name: a, output: a.html, parameters: {data_cutoff: 2024-13-01}}\n"
        "  - {name: b, output: b.html, parameters: {data_cutoff: 2024-06-30}}\n",
    )
    with pytest.raises(JobFileError, match="output_dir: .*afile is a file, not a folder"):
        load_jobs(jobs)
    jobs.write_text(jobs.read_text().replace("output_dir: afile", "output_dir: out"))
    # an unquoted impossible date was a ValueError from the YAML reader: now that job fails
    tasks = {t.name: t for t in plan_jobs(load_jobs(jobs))}
    assert "data_cutoff is not a valid date: '2024-13-01'" in tasks["a"].error["message"]
    assert tasks["b"].error is None and tasks["b"].parameters["data_cutoff"] == "2024-06-30"


def test_fan_out_values_unsafe_in_file_names_cannot_collide(tmp_path):
    cohort = cohort_from_rows(
        [
            {"participant_id": "p1", "site": "St Mary/North"},
            {"participant_id": "p2", "site": "St Mary North"},
            {"participant_id": "p3", "site": "west"},
        ],
        sessions=sessions_on("p1", [0]) + sessions_on("p2", [0]) + sessions_on("p3", [0]),
    )
    write_cohort(cohort, tmp_path / "data")
    jobs = write(
        tmp_path / "jobs.yaml",
        "defaults: {audience: internal, data: data}\njobs:\n"
        "  - {name: s, report: clinic_audit, for_each: site, output: 'by_site/{site}.html'}\n",
    )
    tasks = {t.name: t for t in plan_jobs(load_jobs(jobs))}
    assert set(tasks) == {"s:St Mary North", "s:St Mary/North", "s:west"}
    assert tasks["s:west"].error is None
    assert tasks["s:west"].html == tmp_path / "reports" / "by_site" / "west.html"
    assert tasks["s:west"].parameters["site"] == "west"
    for name in ("s:St Mary North", "s:St Mary/North"):
        assert tasks[name].error["type"] == "OutputCollision"


def _sites_cohort(folder: Path, sites: list[str]) -> None:
    people = [{"participant_id": f"p{i}", "site": site} for i, site in enumerate(sites)]
    sessions = [row for i in range(len(sites)) for row in sessions_on(f"p{i}", [0])]
    write_cohort(cohort_from_rows(people, sessions=sessions), folder)


def test_fan_out_values_cannot_name_a_path_outside_the_output_folder(tmp_path):
    """Values come from the data: '..', '/', '~' and dots never make a path of their own."""
    sites = ["..", "../../etc/cron.d/x", "/etc/passwd", ".hidden", "~root", "north"]
    _sites_cohort(tmp_path / "data", sites)
    jobs = write(
        tmp_path / "jobs.yaml",
        "defaults: {audience: internal, data: data}\njobs:\n"
        "  - {name: s, report: clinic_audit, for_each: site, output: 'by_site/{site}/r.html'}\n",
    )
    root = tmp_path / "reports"
    tasks = {t.name: t for t in plan_jobs(load_jobs(jobs))}
    assert set(tasks) == {f"s:{site}" for site in sites}
    for task in tasks.values():
        assert task.html.is_relative_to(root / "by_site"), task.html
        assert task.html.parent != root / "by_site"  # each value is one folder level, not more
    # '../../etc/cron.d/x' keeps only its letters: by_site/etc_cron.d_x/r.html
    assert tasks["s:../../etc/cron.d/x"].html == root / "by_site" / "etc_cron.d_x" / "r.html"
    assert tasks["s:/etc/passwd"].html == root / "by_site" / "etc_passwd" / "r.html"


def test_an_output_leading_out_through_a_symlink_is_refused_before_anything_runs(tmp_path):
    """Before: the path was resolved through the link and written outside output_dir."""
    _sites_cohort(tmp_path / "data", ["north", "south", "west"])
    jobs = write(
        tmp_path / "jobs.yaml",
        "defaults: {audience: internal, data: data}\njobs:\n"
        "  - {name: s, report: clinic_audit, for_each: site, output: 'sites/{site}/audit.html'}\n",
    )
    root = tmp_path / "reports"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "sites").mkdir(parents=True)
    (root / "sites" / "north").symlink_to(outside, target_is_directory=True)
    (root / "sites" / "south").symlink_to(outside / "deeper", target_is_directory=True)
    tasks = {t.name: t for t in plan_jobs(load_jobs(jobs))}
    for name in ("s:north", "s:south"):
        assert tasks[name].error["type"] == "OutputOutsideFolder", name
        assert f"leads outside the output folder {root}" in tasks[name].error["message"]
    assert tasks["s:west"].error is None
    result = run("batch", "jobs.yaml", "--only", "s:north", "--only", "s:south", cwd=tmp_path)
    assert result.returncode == EXIT_FAILED, result.stdout + result.stderr
    for name in ("s:north", "s:south"):
        assert re.search(rf"\n{name} failed: .* leads outside the output folder", result.stdout)
    assert list(outside.iterdir()) == []  # nothing written through the links
    assert sorted(p.name for p in root.iterdir()) == [
        ".rehabstats-batch.lock",
        "index.html",
        "sites",
    ]
    assert sorted(p.name for p in (root / "sites").iterdir()) == ["north", "south"]


def test_a_symlink_made_after_planning_is_refused_when_installing(tmp_path):
    """The folder is checked again on the open folder right before the file is replaced."""
    from rehabstats.batch.outputs import install

    root = tmp_path / "reports"
    outside = tmp_path / "elsewhere"
    (root / "sites" / "north").mkdir(parents=True)
    outside.mkdir()
    install(b"first", root / "sites" / "north" / "audit.html", 0o644, root)
    # between planning and writing, someone swaps the folder for a link leading out
    shutil.rmtree(root / "sites" / "north")
    (root / "sites" / "north").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutputError, match="outside"):
        install(b"second", root / "sites" / "north" / "audit.html", 0o644, root)
    with pytest.raises(OutputError, match="outside"):
        install(b"second", root / "sites" / "north" / "new" / "audit.html", 0o644, root)
    assert list(outside.iterdir()) == []


def test_audience_is_passed_to_reports_or_external_is_refused(tmp_path):
    cohort = cohort_from_rows([{"participant_id": "p1"}], sessions=sessions_on("p1", [0]))
    write_cohort(cohort, tmp_path / "data")
    jobs = write(
        tmp_path / "jobs.yaml",
        "defaults: {data: data, report: clinic_audit}\njobs:\n"
        "  - {name: inside, audience: internal, output: inside.html}\n"
        "  - {name: outside, audience: external, output: outside.html}\n",
    )
    tasks = {t.name: t for t in plan_jobs(load_jobs(jobs))}
    accepts = any(p.name == "audience" for p in report_parameters("clinic_audit"))
    if accepts:
        assert tasks["inside"].parameters["audience"] == "internal"
        assert tasks["outside"].error is None
        assert tasks["outside"].parameters["audience"] == "external"
    else:  # never rendered unprotected for readers outside the team
        assert tasks["inside"].error is None and "audience" not in tasks["inside"].parameters
        assert tasks["outside"].error["type"] == "AudienceNotSupported"
    assert tasks["outside"].inputs.get("audience", "external") == "external"


def test_the_example_job_file_is_valid():
    jobfile = load_jobs(DEPLOY / "jobs.yaml")
    assert jobfile.output_dir == (ROOT / "reports" / "batch").resolve()
    names = {job.name: job for job in jobfile.jobs}
    assert names["site-audit"].for_each == "site"
    assert names["partner-summary"].audience == "external"
    assert not names["partner-summary"].enabled
    assert all(job.data == (ROOT / "data" / "demo").resolve() for job in jobfile.jobs)


# ---- scheduling -----------------------------------------------------------------------------


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def _exec_start() -> list[str]:
    return shlex.split(_unit(DEPLOY / "rehabstats-reports.service")["Service"]["ExecStart"])


def test_the_systemd_unit_and_timer_are_valid(tmp_path):
    service = _unit(DEPLOY / "rehabstats-reports.service")
    timer = _unit(DEPLOY / "rehabstats-reports.timer")
    assert set(service.sections()) == {"Unit", "Service"}
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["UMask"] == "0027"
    command = _exec_start()
    assert Path(command[0]).is_absolute() and Path(command[0]).name == "rehabstats"
    assert command[1:3] == ["batch", "/etc/rehabstats/jobs.yaml"]
    assert set(timer.sections()) == {"Unit", "Timer", "Install"}
    assert timer["Timer"]["Unit"] == "rehabstats-reports.service"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed: structural checks only")
    calendar = subprocess.run(
        [analyze, "calendar", timer["Timer"]["OnCalendar"]], capture_output=True, text=True
    )
    assert calendar.returncode == 0, calendar.stderr
    # verify needs the ExecStart binary to exist: point it at this environment's command
    installed = Path(sys.executable).with_name("rehabstats")
    if not installed.exists():
        pytest.skip("rehabstats console script not installed beside this Python")
    text = (DEPLOY / "rehabstats-reports.service").read_text()
    (tmp_path / "rehabstats-reports.service").write_text(text.replace(command[0], str(installed)))
    shutil.copy(DEPLOY / "rehabstats-reports.timer", tmp_path)
    verify = subprocess.run(
        [analyze, "verify", "rehabstats-reports.service", "rehabstats-reports.timer"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert verify.returncode == 0, verify.stderr
    assert not re.search(r"Unknown|Failed|Invalid|not safe", verify.stderr), verify.stderr


_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_CRON_NAMES = [
    {},
    {},
    {},
    {
        m: i + 1
        for i, m in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        )
    },
    {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
]


def _valid_cron_field(text: str, index: int) -> bool:
    low, high = _CRON_RANGES[index]
    names = _CRON_NAMES[index]

    def number(part: str) -> int | None:
        value = names.get(part.lower(), int(part) if part.isdigit() else None)
        return value if value is not None and low <= value <= high else None

    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) < 1):
            return False
        if base == "*":
            continue
        first, _, last = base.partition("-")
        if number(first) is None or (last and number(last) is None):
            return False
    return True


def test_the_crontab_line_is_a_valid_schedule_running_the_same_command():
    lines = [
        line
        for line in (DEPLOY / "crontab").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and not re.match(r"^[A-Z_]+=", line)
    ]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert len(fields) == 6
    assert all(_valid_cron_field(f, i) for i, f in enumerate(fields[:5])), fields[:5]
    assert "%" not in fields[5]  # cron turns % into newlines
    assert " ".join(_exec_start()) in fields[5]


def test_the_job_file_schema_is_documented():
    doc = (ROOT / "docs" / "batch.md").read_text()
    for key in ("output_dir", "workers", "defaults", "for_each", "audience", "timeout"):
        assert f"`{key}`" in doc, key
    assert "75" in doc and "--force" in doc and "--wait" in doc
    example = yaml.safe_load((DEPLOY / "jobs.yaml").read_text())
    assert {"output_dir", "defaults", "jobs"} <= set(example)
