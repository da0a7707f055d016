"""The shipped schedule: the systemd unit and timer, the crontab line."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from batch_support import DEPLOY


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
