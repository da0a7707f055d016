"""``rehabstats batch --dry-run`` finds what the real run would fail on, before any kernel
starts, and the example job file's comments say what the code does."""

from __future__ import annotations

from batch_support import DEPLOY, check, sites_cohort, write


def test_dry_run_lists_every_problem_of_the_real_run(tmp_path):
    sites_cohort(tmp_path / "data", ["a", "b"])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "theirs.html").write_text("<p>someone else's file</p>")
    write(tmp_path / "jobs.yaml", """
output_dir: out
defaults: {data: data, audience: internal}
jobs:
  - {name: fine, report: clinic_audit, output: fine.html}
  - {name: partner, report: clinic_audit, audience: external, output: partner.html}
  - {name: bad-parameter, report: clinic_audit, output: bad.html,
     parameters: {target_adherence: 2}}
  - {name: not-ours, report: clinic_audit, output: theirs.html}
  - {name: nowhere, report: clinic_audit, output: nowhere.html, data: missing}
""")  # fmt: skip
    env = {"REHABSTATS_PSEUDONYM_KEY": None}  # not set
    result = check("batch", "jobs.yaml", "--dry-run", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    # the external job needs a pseudonym key that is not set: the render would fail on it
    assert "partner failed: an external report needs a pseudonym key" in out
    assert "REHABSTATS_PSEUDONYM_KEY" in out
    assert "bad-parameter failed:" in out and "target_adherence" in out
    assert "not-ours failed:" in out and "was not written by rehabstats" in out
    assert "nowhere failed:" in out
    assert "fine" in out and "would run" in out
    assert "(dry run: nothing written)" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["theirs.html"]

    # with a key in the environment, the external job would run (the key is never printed)
    key = "k" * 40
    result = check("batch", "jobs.yaml", "--dry-run", "--only", "partner", cwd=tmp_path,
                   env={"REHABSTATS_PSEUDONYM_KEY": key})  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert key not in result.stdout + result.stderr


def test_the_example_job_file_says_what_the_code_does():
    text = (DEPLOY / "jobs.yaml").read_text()
    # external reports are supported (pseudonyms and suppression); they need a key
    assert "until the reports support the external audience" not in text
    assert "REHABSTATS_PSEUDONYM_KEY" in text
    # a source can be a database as well as a folder; fan-out is over a report's subset
    assert "postgresql://" in text
    assert "distinct values of a\n  # participant column" not in text


def test_batch_progress_on_a_terminal_only(tmp_path):
    from test_cli_feedback import ELAPSED, run_on_terminal

    sites_cohort(tmp_path / "data", ["a"])
    jobs = write(tmp_path / "jobs.yaml", """
output_dir: out
defaults: {data: data, audience: internal}
jobs:
  - {name: fine, report: clinic_audit, output: fine.html}
""")  # fmt: skip
    code, out, terminal = run_on_terminal("batch", str(jobs), "--dry-run")
    assert code == 0, terminal
    assert ELAPSED.search(terminal) and f"checking {jobs} and planning: done in" in terminal
    assert "would run" in out and not ELAPSED.search(out)  # the plan stays on stdout
    code, out, terminal = run_on_terminal("batch", str(jobs), "--dry-run", "--quiet")
    assert code == 0 and terminal == "" and "would run" in out
