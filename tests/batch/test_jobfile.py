"""The job file: every problem listed at once, strict YAML, the shipped example, the docs."""

from __future__ import annotations

import pytest
import yaml
from batch_support import DEPLOY, ROOT, check, sites_cohort, write

from rehabstats.batch import EXIT_INVALID, load_jobs, plan_jobs
from rehabstats.errors import JobFileError


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
    result = check("batch", str(jobs), cwd=tmp_path)
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
    sites_cohort(tmp_path / "data", ["north"])
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


def test_the_example_job_file_is_valid():
    jobfile = load_jobs(DEPLOY / "jobs.yaml")
    assert jobfile.output_dir == (ROOT / "reports" / "batch").resolve()
    names = {job.name: job for job in jobfile.jobs}
    assert names["site-audit"].for_each == "site"
    assert names["partner-summary"].audience == "external"
    assert not names["partner-summary"].enabled
    assert all(job.data == (ROOT / "data" / "demo").resolve() for job in jobfile.jobs)


def test_the_job_file_schema_is_documented():
    doc = (ROOT / "docs" / "batch.md").read_text()
    for key in ("output_dir", "workers", "defaults", "for_each", "audience", "timeout"):
        assert f"`{key}`" in doc, key
    assert "75" in doc and "--force" in doc and "--wait" in doc
    example = yaml.safe_load((DEPLOY / "jobs.yaml").read_text())
    assert {"output_dir", "defaults", "jobs"} <= set(example)


@pytest.mark.parametrize(
    "text",
    [
        "jobs:\n  - ? [a, b]\n    : 1\n",  # a list as a key, inside a job
        "output_dir: out\n? {a: 1}\n: x\njobs: []\n",  # a mapping as a key, at the top level
    ],
)
def test_a_key_that_is_a_list_or_mapping_is_a_job_file_problem_not_a_traceback(tmp_path, text):
    # YAML allows any node as a key; a job file's keys are names. Before: TypeError (unhashable
    # type) from the duplicate-key check, a traceback and exit 1 instead of the listed problem.
    jobs = write(tmp_path / "jobs.yaml", text)
    with pytest.raises(JobFileError, match=r"line \d+, column \d+: not valid YAML: .*unhashable"):
        load_jobs(jobs)
    result = check("batch", str(jobs), cwd=tmp_path)
    assert result.returncode == EXIT_INVALID, result.stderr
    assert "Traceback" not in result.stderr


def test_a_job_file_not_in_utf8_is_a_job_file_problem_not_a_traceback(tmp_path):
    # "café" saved as Latin-1 (a Windows editor's default): byte 0xE9 at offset 19 is not UTF-8.
    # Before: UnicodeDecodeError, a traceback and exit 1 instead of the listed problem.
    jobs = tmp_path / "jobs.yaml"
    jobs.write_bytes("jobs:\n  - name: café\n".encode("latin-1"))
    with pytest.raises(JobFileError, match=r"not a UTF-8 text file \(byte 20\)"):
        load_jobs(jobs)
    result = check("batch", str(jobs), cwd=tmp_path)
    assert result.returncode == EXIT_INVALID, result.stderr
    assert "Traceback" not in result.stderr


def test_a_list_where_a_report_name_belongs_is_a_job_file_problem_not_a_traceback(tmp_path):
    # Before: "report: [clinic_audit]" raised TypeError (unhashable type) while looking the
    # report up: a traceback and exit 1 instead of the listed problem.
    jobs = write(
        tmp_path / "jobs.yaml",
        "defaults: {data: data, audience: internal}\njobs:\n"
        "  - {name: a, report: [clinic_audit], output: a.html}\n"
        "  - {name: b, report: {clinic_audit: 1}, output: b.html, for_each: site}\n",
    )
    with pytest.raises(JobFileError) as info:
        load_jobs(jobs)
    # the text of each value is close enough to a report's name to suggest it
    hint = "(did you mean 'clinic_audit'?); available: cohort_report, clinic_audit"
    assert info.value.problems == [
        f"jobs[1] (a): unknown report ['clinic_audit'] {hint}",
        f"jobs[2] (b): unknown report {{'clinic_audit': 1}} {hint}",
    ]
    result = check("batch", str(jobs), cwd=tmp_path)
    assert result.returncode == EXIT_INVALID, result.stderr
    assert "Traceback" not in result.stderr


def test_a_parameter_name_that_is_not_text_is_a_job_file_problem_not_a_traceback(tmp_path):
    # YAML reads "5: x" as the number 5. Before: TypeError ('int' object is not iterable) while
    # looking for the closest parameter name when planning: a traceback instead of a problem.
    jobs = write(
        tmp_path / "jobs.yaml",
        "defaults: {data: data, audience: internal, report: clinic_audit}\njobs:\n"
        "  - {name: a, output: a.html, parameters: {5: x, title: T}}\n",
    )
    with pytest.raises(JobFileError) as info:
        load_jobs(jobs)
    assert info.value.problems == [
        "jobs[1] (a): parameter 5 is not a parameter name (rehabstats report --help lists them)"
    ]
    result = check("batch", str(jobs), cwd=tmp_path)
    assert result.returncode == EXIT_INVALID, result.stderr
    assert "Traceback" not in result.stderr
