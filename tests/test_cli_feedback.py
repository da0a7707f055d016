"""The first hour at the command line: progress on a terminal (and nowhere else), the
``validate`` summary, ``metrics --by`` any participants column, ``metrics --format json`` and
``metrics --help``. Progress is read from a real pseudo-terminal, and its absence from the
standard error of a real process on a pipe; the rest runs the command in this process
(``cli_support.run_in_process``: the same entry point, output and exit code)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading

import pandas as pd
import pytest
from cli_support import run_in_process
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import write_cohort


def run(*args: str) -> subprocess.CompletedProcess:
    """``python -m rehabstats *args`` in this process (the entry point, no new interpreter)."""
    return run_in_process(*args)


def run_on_terminal(*args: str) -> tuple[int, str, str]:
    """Run with standard error on a pseudo-terminal (as in an interactive shell) and standard
    output on a pipe: returns the exit code, stdout and what the terminal showed."""
    master, slave = pty.openpty()
    # a terminal 100 columns wide (a new pseudo-terminal has no size)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    shown: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the slave side closed
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "rehabstats", *args],
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=300,
        )
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return process.returncode, process.stdout.decode(), b"".join(shown).decode(errors="replace")


ELAPSED = re.compile(r"\[\s*\d+\.\d s\] ")
"""A progress line starts with the elapsed time: ``[    1.2 s] ``."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # a and b at site s1, c at site s2 (by site: two groups); c has no age (a missing value)
    cohort = cohort_from_rows(
        [
            {"participant_id": "a"},
            {"participant_id": "b", "referral": "gp"},
            {"participant_id": "c", "site": "s2", "age_years": None, "referral": "physio"},
        ],
        sessions=sessions_on("a", [0, 3]) + sessions_on("b", [1]) + sessions_on("c", [2]),
    )
    return write_cohort(cohort, tmp_path_factory.mktemp("feedback") / "cohort")


# ---- progress ---------------------------------------------------------------------------------


def test_metrics_shows_stages_counts_and_a_bar_on_a_terminal_only(folder, tmp_path):
    code, out, terminal = run_on_terminal("metrics", str(folder), "--out", str(tmp_path / "m"))
    assert code == 0, terminal
    # stage lines with the elapsed time, the participant and file counts, and a bar (tqdm
    # draws "n/N" and the unit) on the terminal; the result line alone on stdout
    assert ELAPSED.search(terminal), terminal
    assert f"reading and validating {folder}" in terminal
    assert "3 participants; computing 9 metric files" in terminal
    assert re.search(r"metrics: +\d+%.*\| *\d/9 ", terminal), terminal
    assert "wrote 9 files" in terminal
    assert out.startswith("wrote 9 files to ") and not ELAPSED.search(out)

    quiet_code, quiet_out, quiet_terminal = run_on_terminal(
        "metrics", str(folder), "--out", str(tmp_path / "q"), "--quiet"
    )
    assert quiet_code == 0 and not ELAPSED.search(quiet_terminal), quiet_terminal
    assert "metrics:" not in quiet_terminal
    # not on a terminal (a pipe, a log file, cron): no progress either
    piped = run("metrics", str(folder), "--out", str(tmp_path / "p"))
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr


def test_simulate_and_validate_show_progress_on_a_terminal_only(tmp_path):
    code, out, terminal = run_on_terminal(
        "simulate", "--participants", "30", "--out", str(tmp_path / "sim")
    )
    assert code == 0, terminal
    assert re.search(r"simulating 30 participants \(seed 0\): done in \d+\.\d s", terminal)
    assert re.search(r"[\d,]+ rows in 7 tables; writing them to ", terminal), terminal
    assert "wrote 30 simulated participants" in out

    code, out, terminal = run_on_terminal("validate", str(tmp_path / "sim"))
    assert code == 0
    assert ELAPSED.search(terminal) and "reading and validating" in terminal
    assert "summarising" in terminal
    assert "valid, 30 participants" in out

    assert run_on_terminal("validate", str(tmp_path / "sim"), "-q")[2] == ""
    piped = run("simulate", "--participants", "20", "--out", str(tmp_path / "sim2"))
    assert piped.returncode == 0 and piped.stderr == ""


# ---- validate summary -------------------------------------------------------------------------


def test_validate_summary_says_each_fact_once_with_plurals(folder):
    result = run("validate", str(folder))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # the participant count once, in the first line; the participants table's rows once
    assert lines[0] == f"{folder}: valid, 3 participants"
    assert sum("participants" in line for line in lines) == 2
    assert re.fullmatch(r"  participants: +3 rows", lines[1])
    # sessions: a on days 0 and 3, b on day 1, c on day 2 = 4 rows; absent tables have none
    assert re.search(r"^  sessions: +4 rows$", result.stdout, re.M)
    assert re.search(r"^  pain: +no rows$", result.stdout, re.M)
    # two sites, one arm: singular and plural
    assert "  2 sites: s1, s2; 1 arm: staged" in lines
    assert "<NA>" not in result.stdout and "None" not in result.stdout
    assert len(lines) == len(set(lines))  # no repeated line


def test_validate_summary_of_one_participant_is_singular(tmp_path):
    cohort = cohort_from_rows([{"participant_id": "a"}], sessions=sessions_on("a", [0]))
    folder = write_cohort(cohort, tmp_path / "one")
    result = run("validate", str(folder))
    assert result.stdout.splitlines()[0].endswith("valid, 1 participant")
    assert re.search(r"^  sessions: +1 row$", result.stdout, re.M)
    assert "1 site: s1; 1 arm: staged" in result.stdout


# ---- metrics --by, --format json, --help -----------------------------------------------------


def test_metrics_by_any_participants_column(folder, tmp_path):
    # 'site' groups s1 (a, b) and s2 (c); the group summaries have one row per group
    result = run("metrics", str(folder), "--out", str(tmp_path / "site"), "--by", "site")
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(tmp_path / "site" / "time_to_stage_summary.csv")
    n = summary[summary["stage"] == 2].set_index("group")["n"]
    assert n.to_dict() == {"s1": 2, "s2": 1}


def test_metrics_by_an_extra_column_of_the_data(tmp_path):
    cohort = cohort_from_rows(
        [
            {"participant_id": "a", "referral": "gp"},
            {"participant_id": "b", "referral": "gp"},
            {"participant_id": "c", "referral": "physio"},
        ],
        sessions=sessions_on("a", [0]) + sessions_on("b", [1]) + sessions_on("c", [2]),
    )
    folder = write_cohort(cohort, tmp_path / "extra")
    result = run("metrics", str(folder), "--out", str(tmp_path / "m"), "--by", "referral")
    assert result.returncode == 0, result.stderr
    rates = pd.read_csv(tmp_path / "m" / "relapse_rates.csv")
    assert rates["group"].tolist() == ["gp", "physio"]  # a and b were referred by a GP


def test_metrics_by_an_unknown_or_incomplete_column_is_a_clear_error(folder, tmp_path):
    unknown = run("metrics", str(folder), "--out", str(tmp_path / "u"), "--by", "sitee")
    assert unknown.returncode == 2  # a usage error, no traceback
    assert "Traceback" not in unknown.stderr
    assert "cannot group by 'sitee': not a participants column (did you mean 'site'?)" in (
        unknown.stderr
    )
    assert "site, arm, tendinopathy_type, sex, age_years" in unknown.stderr
    assert "participant_id" not in unknown.stderr.split("columns are:")[1]
    # c has no age: grouping by age would leave c in no group
    missing = run("metrics", str(folder), "--out", str(tmp_path / "a"), "--by", "age_years")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "1 participant has no value in it (c)" in missing.stderr
    assert not (tmp_path / "u").exists() and not (tmp_path / "a").exists()


def test_metrics_json_summarises_what_was_written_and_the_notes(folder, tmp_path):
    result = run("metrics", str(folder), "--out", str(tmp_path / "m"), "--format", "json",
                 "--no-model", "--data-cutoff", "2024-01-02")  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["participants"] == 3 and doc["by"] is None
    assert doc["data_cutoff"] == "2024-01-02" and doc["model"] is False
    names = [f["name"] for f in doc["files"]]
    assert "pain_model.csv" not in names and len(names) == 8
    files = {f["name"]: f for f in doc["files"]}
    # one row per participant; the file on disk has that many data lines
    assert files["participant_metrics.csv"]["rows"] == 3
    written = (tmp_path / "m" / "participant_metrics.csv").read_text().splitlines()
    assert len(written) == 1 + 3
    assert files["participant_metrics.csv"]["columns"] == len(written[0].split(","))
    # a's session on day 3 (2024-01-04) and c's on day 2 (2024-01-03) lie after the cut-off:
    # the note is in the JSON
    note = "sessions: 2 rows dated after the data cut-off 2024-01-02 are not analysed."
    assert note in doc["notes"]
    assert result.stderr == ""


def test_metrics_json_on_invalid_data_is_json_too(tmp_path):
    cohort = cohort_from_rows([{"participant_id": "a"}], sessions=sessions_on("a", [0]))
    folder = write_cohort(cohort, tmp_path / "bad")
    text = (folder / "participants.csv").read_text()
    (folder / "participants.csv").write_text(text.replace("female", "fem"))
    result = run("metrics", str(folder), "--out", str(tmp_path / "m"), "--format", "json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["problems"][0]["column"] == "sex"


def test_metrics_help_explains_the_outputs_without_section_numbers():
    result = run("metrics", "--help")
    assert result.returncode == 0
    assert "§" not in result.stdout
    for name in ("participant_metrics.csv", "weekly_metrics.csv", "time_to_stage_summary.csv",
                 "relapse_rates.csv", "pain_model.csv", "stage_occupancy.csv"):  # fmt: skip
        assert name in result.stdout
    assert "any" in result.stdout and "--format" in result.stdout and "--quiet" in result.stdout
