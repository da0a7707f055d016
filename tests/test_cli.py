"""The `rehabstats` command: its output and exit codes run in this process (``run``, the console
script's entry point; ``invoke``, the click command), and as a real subprocess where only one
shows it (the same message from a real process, a command's temporary folder, the umask)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import run_in_process
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import write_cohort
from rehabstats.data.schema import TABLES
from rehabstats.metrics.outputs import OUTPUT_FILES


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """``python -m rehabstats *args`` in this process (the entry point, no new interpreter)."""
    return run_in_process(*args, cwd=cwd)


def run_subprocess(*args: str) -> subprocess.CompletedProcess:
    """``python -m rehabstats *args`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "rehabstats", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def folder(tmp_path):
    cohort = cohort_from_rows(
        [{"participant_id": "a"}, {"participant_id": "b", "site": "s2"}],
        sessions=sessions_on("a", [0, 3]) + sessions_on("b", [1]),
    )
    return write_cohort(cohort, tmp_path / "cohort")


def test_validate_valid_folder_exits_0_with_summary(folder):
    result = run("validate", str(folder))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert "valid, 2 participants" in result.stdout
    assert "sessions:" in result.stdout and "3 rows" in result.stdout
    assert "2024-01-01 to 2024-01-04" in result.stdout


def test_validate_invalid_folder_exits_1_with_every_problem(folder):
    text = (folder / "participants.csv").read_text()
    (folder / "participants.csv").write_text(
        text.replace("female", "fem", 1).replace(",80.0,", ",20,")
    )
    result = run("validate", str(folder))
    assert result.returncode == 1
    assert "INVALID - 3 problems" in result.stdout
    # both participants had body mass 80 -> 20 (range 25-300), and one sex became 'fem': the
    # summary has one entry for the two body masses, the details one line for each
    summary, details = result.stdout.split("Details")
    assert "participants.body_mass_kg: must be between 25 and 300 (2 rows)" in summary
    assert "rows 2-3" in summary
    assert details.count("body_mass_kg") == 2
    assert "must be one of: female, male, other, unknown" in result.stdout

    as_json = run("validate", str(folder), "--format", "json")
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False
    assert {p["column"] for p in doc["problems"]} == {"sex", "body_mass_kg"}
    assert {p["row"] for p in doc["problems"]} == {2, 3}


def test_rows_after_an_explicit_cutoff_are_counted_by_validate_and_metrics(folder, tmp_path):
    # a's session on day 3 (2024-01-04) lies after the cut-off 2024-01-02: not analysed, and
    # said once (every metric applies the cut-off)
    note = "sessions: 1 row dated after the data cut-off 2024-01-02 is not analysed."
    checked = run("validate", str(folder), "--data-cutoff", "2024-01-02")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"warning: {note}" in checked.stdout
    as_json = json.loads(run("validate", str(folder), "--data-cutoff", "2024-01-02",
                             "--format", "json").stdout)  # fmt: skip
    assert note in as_json["warnings"]
    made = run("metrics", str(folder), "--out", str(tmp_path / "m"), "--data-cutoff",
               "2024-01-02", "--no-model")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stderr.count(note) == 1
    # without a cut-off nothing lies after the default one (the latest date)
    plain = run("validate", str(folder))
    assert "rows dated after" not in plain.stdout


def test_validate_json_summary(folder):
    result = run("validate", str(folder), "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["participants"] == 2 and len(doc["fingerprint"]) == 64


def test_simulate_then_validate(tmp_path):
    out = tmp_path / "sim"
    made = run("simulate", "--participants", "40", "--seed", "3", "--out", str(out))
    assert made.returncode == 0, made.stderr
    checked = run("validate", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "valid, 40 participants" in checked.stdout


# ---- user mistakes on the command line: a clear error, never a traceback --------------------


def invoke(*args: str, cwd=None):
    """The command in this process (fast); an exception other than a clean exit fails."""
    from click.testing import CliRunner

    from rehabstats.cli import cli

    runner = CliRunner()
    if cwd is not None:
        old = os.getcwd()
        os.chdir(cwd)
    try:
        result = runner.invoke(cli, list(args), catch_exceptions=True)
    finally:
        if cwd is not None:
            os.chdir(old)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"rehabstats {' '.join(args)} raised {result.exception!r}:\n{result.output}"
        ) from result.exception
    return result


@pytest.fixture
def places(tmp_path, folder):
    afile = tmp_path / "afile.txt"
    afile.write_text("a user's file\n")
    config = {
        "syntax.yaml": "pain_limit: [\n",
        "list.yaml": "- pain_limit\n- 5\n",
        "unknown.yaml": "pain_limit: 5\npain_lmit: 3\n",
        "type.yaml": "window_weeks: 12\npain_limit: high\n",
        "date.yaml": "data_cutoff: 2024-13-01\n",
        "latin1.yaml": b"pain_limit: 5 # \xe9\n",
    }
    for name, text in config.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return {"data": str(folder), "file": str(afile), "tmp": tmp_path}


BAD_CUTOFFS = ["2024-13-01", "yesterday", "2024-1-1", "2024-02-30", "30/06/2024"]


@pytest.mark.parametrize("value", BAD_CUTOFFS)
def test_a_malformed_data_cutoff_is_an_option_error(places, value):
    for command in (["validate", places["data"]], ["metrics", places["data"], "--out", "m"]):
        result = invoke(*command, "--data-cutoff", value, cwd=places["tmp"])
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--data-cutoff'" in result.output
        assert repr(value) in result.output and "YYYY-MM-DD" in result.output
    assert not (places["tmp"] / "m").exists()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("syntax.yaml", r"syntax\.yaml, line 2, column 1: not valid YAML"),
        ("list.yaml", r"list\.yaml: must be a mapping of configuration keys .* not a list"),
        ("unknown.yaml", r"unknown\.yaml: .*line 2: unknown .* key 'pain_lmit' \(did you mean"),
        ("type.yaml", r"type\.yaml: .*line 2: pain_limit = 'high': must be an NRS value"),
        ("date.yaml", r"date\.yaml: .*line 1: data_cutoff = '2024-13-01': must be an ISO date"),
        ("latin1.yaml", r"latin1\.yaml: not a UTF-8 text file"),
        ("missing.yaml", r"'missing\.yaml' does not exist"),
    ],
)
def test_a_bad_config_file_names_the_file_line_key_and_rule(places, config, expected):
    result = invoke("metrics", places["data"], "--out", "m", "--config", config, cwd=places["tmp"])
    assert result.exit_code == 2, result.output
    assert re.search(expected, " ".join(result.output.split())), result.output
    assert not (places["tmp"] / "m").exists()


def test_a_bad_config_file_is_a_parameter_error_of_report_too(places):
    path = places["tmp"] / "unknown.yaml"
    result = invoke(
        "report", places["data"], "-n", "cohort_report", "--out", "r.html",
        "-p", "config_file", str(path), cwd=places["tmp"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "line 2: unknown analysis configuration key 'pain_lmit'" in result.output
    assert not (places["tmp"] / "r.html").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--participants", "20", "--out", "{file}/sub"],
        ["simulate", "--participants", "20", "--out", ""],
        ["simulate", "--participants", "20", "--seed", "-1", "--out", "s"],
        ["simulate", "--participants", "99999999999999999999", "--out", "s"],
        ["metrics", "{data}", "--out", "{file}/sub"],
        ["metrics", "{data}", "--out", ""],
        ["demo", "--out", "{file}/sub"],
        ["demo", "--out", ""],
        ["report", "{data}", "-n", "cohort_report", "--out", "{file}/r.html"],
        ["report", "{data}", "-n", "cohort_report", "--out", ""],
        ["report", "{data}", "-n", "cohort_report", "--out", "x.html", "-p", "data_cutoff", "2024-13-01"],
        ["report", "{tmp}/nowhere", "-n", "cohort_report", "--out", "x.html"],
        ["metrics", "{tmp}/nowhere", "--out", "m"],
        ["validate", "{tmp}/nowhere"],
        ["batch", "{tmp}/nowhere.yaml"],
        ["batch", "{file}"],
    ],
)  # fmt: skip
def test_an_impossible_option_is_an_error_not_a_traceback(places, args):
    args = [a.format(**places) for a in args]
    before = sorted(p.name for p in places["tmp"].iterdir())
    result = invoke(*args, cwd=places["tmp"])
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert re.search(r"(?i)error|invalid", result.output), result.output
    assert sorted(p.name for p in places["tmp"].iterdir()) == before  # nothing created
    assert (places["tmp"] / "afile.txt").read_text() == "a user's file\n"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a read-only /sys")
def test_an_out_folder_that_cannot_be_created_says_why(places):
    result = invoke("simulate", "--participants", "20", "--out", "/sys/rehabstats-test")
    assert result.exit_code == 1
    assert "cannot create the folder /sys/rehabstats-test" in result.output


def test_simulate_refuses_a_folder_that_is_not_empty(tmp_path):
    """`simulate --out .` in a folder holding real data replaced it before: now it is refused."""
    (tmp_path / "participants.csv").write_text("participant_id\nreal\n")
    (tmp_path / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = run("simulate", "--participants", "20", "--out", ".", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "is not empty" in result.stderr and "--overwrite" in result.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    result = run("simulate", "--participants", "20", "--out", ".", "--overwrite", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert "real" not in (tmp_path / "participants.csv").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["notes.txt"] + [f"{t}.csv" for t in TABLES]
    )


# ---- invalid data: the validate message, before anything runs --------------------------------


@pytest.fixture
def invalid(folder):
    text = (folder / "participants.csv").read_text()
    (folder / "participants.csv").write_text(text.replace("female", "fem", 1))
    return folder


def test_report_on_invalid_data_fails_at_once_with_the_validate_message(invalid, tmp_path):
    """Before: a kernel started and the report failed ~20 s later in 'cell 4'."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    expected = run("validate", str(invalid))
    assert expected.returncode == 1
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "rehabstats", "report", str(invalid), "-n", "clinic_audit"]
        + ["--out", str(tmp_path / "out" / "r.html")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    seconds = time.perf_counter() - started
    assert result.returncode == 1
    assert result.stderr.strip() == expected.stdout.strip()  # the same message as validate
    assert "Traceback" not in result.stderr and "cell" not in result.stderr
    assert list(scratch.iterdir()) == []  # no kernel was started (its folder would be here)
    assert not (tmp_path / "out").exists()
    assert seconds < 15  # loading a 2-participant cohort, not a kernel's start and run


def test_metrics_on_invalid_data_gives_the_validate_message(invalid, tmp_path):
    expected = run("validate", str(invalid))
    result = run("metrics", str(invalid), "--out", str(tmp_path / "m"))
    assert result.returncode == 1
    assert result.stderr.strip() == expected.stdout.strip()
    assert not (tmp_path / "m").exists()


def test_metric_files_follow_the_umask(folder, tmp_path):
    out = tmp_path / "m"
    result = subprocess.run(
        [sys.executable, "-m", "rehabstats", "metrics", str(folder), "--out", str(out)]
        + ["--no-model"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.umask(0o077),
    )
    assert result.returncode == 0, result.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    # every output file but pain_model.csv (--no-model)
    assert len(modes) == len(OUTPUT_FILES) - 1 and set(modes.values()) == {0o600}, modes
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
