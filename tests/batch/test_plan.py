"""Planning: fan-out values, output paths kept inside the output folder, audiences."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from batch_support import ROOT, run, sites_cohort, write
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import write_cohort
from rehabstats.batch import EXIT_FAILED, load_jobs, plan_jobs
from rehabstats.errors import OutputError
from rehabstats.report.specs import report_parameters


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


def test_fan_out_values_cannot_name_a_path_outside_the_output_folder(tmp_path):
    """Values come from the data: '..', '/', '~' and dots never make a path of their own."""
    sites = ["..", "../../etc/cron.d/x", "/etc/passwd", ".hidden", "~root", "north"]
    sites_cohort(tmp_path / "data", sites)
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
    sites_cohort(tmp_path / "data", ["north", "south", "west"])
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


def test_audience_is_passed_to_reports_or_external_is_refused(tmp_path, monkeypatch):
    # an external report needs the pseudonym key (tests/batch/test_dry_run.py: without it, the
    # task fails at planning)
    monkeypatch.setenv("REHABSTATS_PSEUDONYM_KEY", "k" * 32)
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


def test_the_code_fingerprint_covers_the_whole_package_and_the_data_contract(tmp_path):
    """A change anywhere in rehabstats' code or data contract re-renders every report (docs:
    "the rehabstats version and code"). Before: only rehabstats/batch/ was hashed, so a changed
    metric left every report 'up to date'."""
    shutil.copytree(ROOT / "rehabstats", tmp_path / "rehabstats",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copytree(ROOT / "data_schema", tmp_path / "data_schema")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    # one process importing the copy, printing its fingerprint each time it is asked (the
    # files are read again on each call)
    script = (
        "import sys, rehabstats.batch.plan as p\n"
        f"assert p.__file__.startswith({str(tmp_path)!r}), p.__file__\n"
        "for _ in sys.stdin:\n"
        "    print(p.code_sha256(), flush=True)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)  # fmt: skip

    def fingerprint() -> str:
        process.stdin.write("\n")
        process.stdin.flush()
        line = process.stdout.readline()
        assert line, "the fingerprinting process ended"
        return line.strip()

    try:
        before = fingerprint()
        assert fingerprint() == before  # the same files give the same fingerprint
        changed = [
            tmp_path / "rehabstats" / "metrics" / "adherence.py",
            tmp_path / "rehabstats" / "cli.py",
            tmp_path / "data_schema" / "analysis_defaults.yaml",
        ]
        for path in changed:
            original = path.read_bytes()
            path.write_bytes(original + b"\n# changed\n")
            assert fingerprint() != before, path
            path.write_bytes(original)
        assert fingerprint() == before
    finally:
        process.communicate(timeout=60)  # closes its input: it ends
    assert process.returncode == 0
