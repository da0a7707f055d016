"""Batch jobs on the Dask engine (issue 14, part 5): ``engine: dask`` and ``scheduler`` in a
job file, a partitioned cohort planned on the cluster (its sites, its fingerprint) without
loading it here, one report rendered, recorded, skipped when unchanged, and equal to the
pandas engine's report of the same tables in one folder.

The cluster is a LocalCluster of 2 workers started by the module; the job file names its
scheduler, so the batch (a subprocess) and its report's render use it. One report is rendered
(CPU is scarce); the fan-out and the engine checks are planned only.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from batch_support import run, write
from cli_support import environment_without_dask

from rehabstats import load_cohort, simulate_tables, write_cohort
from rehabstats.batch import EXIT_OK, load_jobs, plan_jobs
from rehabstats.data.partitioned import write_partitioned
from rehabstats.errors import JobFileError

pytest.importorskip("distributed")

JOBS = """
output_dir: out
workers: 1
defaults:
  audience: internal
jobs:
  - name: audit
    report: clinic_audit
    data: parts
    engine: dask
    scheduler: {scheduler}
    for_each: site
    output: "audit/{{site}}.html"
  - name: pandas-on-parts
    report: clinic_audit
    data: parts
    output: pandas_on_parts.html
  - name: dask-on-folder
    report: clinic_audit
    data: folder
    engine: dask
    output: dask_on_folder.html
  - name: folder
    report: clinic_audit
    data: folder
    for_each: site
    output: "folder/{{site}}.html"
"""


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> Path:
    """A job folder: the same simulated tables (two sites) as a folder and as 3 partitions."""
    root = tmp_path_factory.mktemp("batch_dask")
    tables = simulate_tables(60, seed=5)
    people = tables["participants"]
    people["site"] = np.where(np.arange(len(people)) % 2 == 0, "north", "south")
    write_cohort(tables, root / "folder", format="parquet")
    write_partitioned(tables, root / "parts", n_partitions=3)
    return root


def _partition_fingerprint(parts: Path) -> str:
    """The definition (docs/scale.md): SHA-256 of the non-empty partitions' cohort
    fingerprints, concatenated in partition order -- each partition loaded here by itself."""
    manifest = json.loads((parts / "partitions.json").read_text())
    prints = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, n in enumerate(manifest["participants"]):
            if n:
                prints.append(load_cohort(parts / f"part-{i:05d}").fingerprint())
    return hashlib.sha256("".join(prints).encode()).hexdigest()


# ---- the job file ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("engine: spark", r"unknown engine 'spark'; engines: pandas, dask"),
        ("engine: dusk", r"unknown engine 'dusk' \(did you mean 'dask'\?\)"),
        ("scheduler: tcp://h:8786", r"scheduler is for the Dask engine; add engine: dask"),
        ("engine: dask, scheduler: 'tcp://a b'", r"scheduler must be a Dask scheduler address"),
        ("parameters: {engine: dask}", r"give the engine as the job's engine key, not a param"),
        ("parameters: {scheduler: x}", r"give the scheduler as the job's scheduler key"),
    ],
)
def test_engine_keys_are_checked(tmp_path, job, message):
    text = (
        "jobs:\n  - {name: a, report: clinic_audit, data: d, output: a.html, "
        f"audience: internal, {job}}}\n"
    )
    with pytest.raises(JobFileError, match=message):
        load_jobs(write(tmp_path / "jobs.yaml", text))


def test_a_scheduler_with_a_password_is_refused_and_never_shown(tmp_path):
    text = (
        "jobs:\n  - {name: a, report: clinic_audit, data: d, output: a.html, audience: internal,"
        " engine: dask, scheduler: 'tcp://alice:s3cret@dask.example:8786'}\n"
    )
    with pytest.raises(JobFileError, match=r"holds a user or password") as caught:
        load_jobs(write(tmp_path / "jobs.yaml", text))
    assert "s3cret" not in str(caught.value) and "alice" not in str(caught.value)
    assert "tcp://***@dask.example:8786" in str(caught.value)


def test_engine_keys_in_defaults(tmp_path):
    """``defaults`` may give the engine and scheduler; a job choosing the pandas engine drops
    the default scheduler; a default scheduler no job can use is an error."""
    text = """
defaults: {engine: dask, scheduler: "tcp://h:8786", audience: internal, data: d}
jobs:
  - {name: a, report: clinic_audit, output: a.html}
  - {name: b, report: clinic_audit, output: b.html, engine: pandas}
"""
    jobs = load_jobs(write(tmp_path / "jobs.yaml", text))
    a, b = jobs.jobs
    assert (a.engine, a.scheduler) == ("dask", "tcp://h:8786")
    assert (b.engine, b.scheduler) == ("pandas", None)
    text = """
defaults: {scheduler: "tcp://h:8786", audience: internal, data: d}
jobs:
  - {name: a, report: clinic_audit, output: a.html}
"""
    with pytest.raises(JobFileError, match=r"defaults: scheduler is given but no job has engine"):
        load_jobs(write(tmp_path / "jobs.yaml", text))


# ---- planning --------------------------------------------------------------------------------


def test_a_partitioned_cohort_is_planned_on_the_cluster(cohorts, dask_scheduler):
    """The dask job fans out over the sites of the partitions (those of the same tables in one
    folder, planned by the pandas engine), its fingerprint is the partitioned cohort's; the
    wrong engine for either kind of data fails that job alone, before any kernel starts."""
    jobs = load_jobs(write(cohorts / "jobs.yaml", JOBS.format(scheduler=dask_scheduler)))
    tasks = {t.name: t for t in plan_jobs(jobs)}
    assert sorted(tasks) == [
        "audit:north",
        "audit:south",
        "dask-on-folder",
        "folder:north",
        "folder:south",
        "pandas-on-parts",
    ]
    north = tasks["audit:north"]
    assert north.error is None, north.error
    assert north.parameters["engine"] == "dask"
    assert north.parameters["scheduler"] == dask_scheduler
    assert north.parameters["site"] == "north"
    assert north.data_info["fingerprint"] == _partition_fingerprint(cohorts / "parts")
    assert north.data_info["participants"] == 60
    assert north.data_info["partitions"] == 3
    assert tasks["folder:north"].error is None
    # the partition folders' files are watched for changes while rendering
    assert any(name.startswith("part-00001/") for name, *_ in north.snapshot)
    wrong = tasks["pandas-on-parts"].error
    assert wrong["type"] == "PartitionedCohort" and "give the job engine: dask" in wrong["message"]
    wrong = tasks["dask-on-folder"].error
    assert wrong["type"] == "NotPartitioned" and "rehabstats partition" in wrong["message"]


def test_invalid_partitions_fail_their_jobs_with_every_problem_placed(
    cohorts, dask_scheduler, tmp_path
):
    tables = simulate_tables(30, seed=6)
    tables["participants"].loc[[0, 1], "body_mass_kg"] = 5.0  # contract: 25-300 kg
    write_partitioned(tables, tmp_path / "parts", n_partitions=2)
    text = (
        "jobs:\n  - {name: a, report: cohort_report, data: parts, output: a.html, "
        f"audience: internal, engine: dask, scheduler: '{dask_scheduler}'}}\n"
    )
    (task,) = plan_jobs(load_jobs(write(tmp_path / "jobs.yaml", text)))
    assert task.error is not None and task.error["type"] == "CohortValidationError"
    # both rows, whichever partitions they fell in, each named with its partition file
    assert task.error["message"].count("body_mass_kg") >= 2
    assert re.search(r"part-0000[01]/participants\.parquet", task.error["message"])


def test_the_scheduler_is_not_part_of_the_skip_key(cohorts, dask_scheduler, monkeypatch):
    """The same job planned with its scheduler from REHABSTATS_DASK_SCHEDULER instead of the
    job file has the same inputs: a report is not rendered again because the cluster moved."""
    jobs = load_jobs(write(cohorts / "jobs.yaml", JOBS.format(scheduler=dask_scheduler)))
    (named,) = plan_jobs(jobs, only=["audit:south"])
    monkeypatch.setenv("REHABSTATS_DASK_SCHEDULER", dask_scheduler)
    text = JOBS.format(scheduler=dask_scheduler).replace(f"    scheduler: {dask_scheduler}\n", "")
    (from_env,) = plan_jobs(load_jobs(write(cohorts / "env.yaml", text)), only=["audit:south"])
    assert from_env.parameters["scheduler"] is None
    assert from_env.inputs == named.inputs


def test_dry_run_names_the_missing_dask_extra(cohorts, tmp_path):
    """Without dask installed, the dask job fails in the plan with the install line; the pandas
    jobs are planned; no traceback, nothing written."""
    env = environment_without_dask(tmp_path)
    write(
        cohorts / "nodask.yaml",
        JOBS.format(scheduler="tcp://127.0.0.1:1").replace("output_dir: out", "output_dir: nd"),
    )
    done = run("batch", str(cohorts / "nodask.yaml"), "--dry-run", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr
    out = done.stdout + done.stderr
    assert "Traceback" not in out
    assert re.search(r"audit\s+failed", out)  # the fan-out needs the data: one failed task
    assert "pip install" in out and "rehabstats[dask]" in out
    assert re.search(r"folder:north\s+would run", out)
    assert not (cohorts / "nd").exists()


# ---- a report rendered -----------------------------------------------------------------------


def _cells(html: str, table_id: str) -> list[str]:
    """The text of each cell of the table ``table_id`` (as the report shows it)."""
    match = re.search(rf'<table[^>]*\bid="{table_id}"[^>]*>(.*?)</table>', html, re.S)
    assert match, table_id
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", match.group(1), re.S)
    return [" ".join(unescape(re.sub(r"<[^>]+>", "", c)).split()) for c in cells]


@pytest.mark.slow
def test_a_dask_job_renders_is_recorded_and_skipped_when_unchanged(cohorts, dask_scheduler):
    write(cohorts / "jobs.yaml", JOBS.format(scheduler=dask_scheduler))
    first = run("batch", str(cohorts / "jobs.yaml"), "--only", "audit:north", cwd=cohorts)
    assert first.returncode == EXIT_OK, first.stdout + first.stderr
    out = cohorts / "out"
    html = (out / "audit" / "north.html").read_text()
    doc = json.loads((out / "audit" / "north.manifest.json").read_text())
    assert doc["status"] == "ok"
    assert doc["parameters"]["engine"] == "dask" and doc["parameters"]["site"] == "north"
    assert doc["data"]["kind"] == "partitioned" and doc["data"]["participants"] == 60
    # the batch's key is the report's own fingerprint of the partitioned cohort
    assert doc["data"]["fingerprint"] == _partition_fingerprint(cohorts / "parts")
    assert doc["report_provenance"]["fingerprint"] == doc["data"]["fingerprint"]
    assert doc["report_provenance"]["participants"] == 30  # the north site: every other one

    second = run("batch", str(cohorts / "jobs.yaml"), "--only", "audit:north", cwd=cohorts)
    assert second.returncode == EXIT_OK, second.stdout + second.stderr
    assert re.search(r"audit:north\s+skipped\s+\S+\s+audit/north\.html\s+up to date", second.stdout)
    assert json.loads((out / "audit" / "north.manifest.json").read_text())["status"] == "skipped"

    # the tables equal the pandas engine's report of the same tables in one folder (the whole
    # report's equality is tests/report/test_cluster_report.py; here, what the batch rendered)
    from rehabstats.report import sections
    from rehabstats.report.analysis import prepare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pandas = prepare("clinic_audit", data=str(cohorts / "folder"), site="north")
        expected = "".join(  # as the clinic audit's notebook calls them
            block._repr_html_()
            for block in (
                sections.audit_dashboard(pandas),
                sections.participant_flow(pandas),
                sections.time_to_stage(pandas, stages=(4,)),
                sections.relapse(pandas),
            )
        )
    for table in ("T_audit", "T_flow", "T_time_to_stage", "T_relapse_rates"):
        want = _cells(expected, table)
        assert len(want) > 10, table  # a table with rows: a header and at least one row
        assert _cells(html, table) == want, table
