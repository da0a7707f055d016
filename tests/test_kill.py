"""`rehabstats report` killed at several points over an earlier report.

Each run is a real subprocess writing ``report.html`` + ``report.ipynb`` where an earlier run
left its pair. It is stopped before its kernel starts, while the kernel executes cells, or
between the two renames of the final write; by SIGKILL (nothing can run: the next run must
clean up) or by SIGTERM, SIGINT and SIGHUP (the command unwinds at once). After each: the
earlier pair is intact, byte for byte, or the new pair is complete (never one of each, once the
next run has swept), no temporary file, journal, work folder (kernel connection file and key)
or kernel process is left.

Two points cannot be reached by polling alone (the kernel manager is created within
milliseconds of the work folder; the renames take microseconds): there the command runs through
a small driver that pauses at that point (``DRIVER`` below), says so with a file and goes on
when the test has sent its signal; the command itself is ``rehabstats.cli.main``, unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from rehabstats import simulate_tables, write_cohort
from rehabstats.report.render import report_pair_matches

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc"),
]

DRIVER = r"""
import os, sys, time
from pathlib import Path

point, ready = sys.argv[1], Path(sys.argv[2])
sys.argv = ["rehabstats", *sys.argv[3:]]
if point == "before-kernel":  # the work folder exists, the kernel is not started yet
    from rehabstats.report import render as reporting

    real_manager = reporting._kernel_manager_class

    def paused(*args, **kwargs):
        ready.touch()
        time.sleep(60)
        return real_manager(*args, **kwargs)

    reporting._kernel_manager_class = paused
elif point == "writes":  # the new notebook is in place, the new HTML not yet
    real_replace = os.replace

    def replace(src, dst, **kwargs):
        real_replace(src, dst, **kwargs)
        if str(dst) == "report.ipynb":
            ready.touch()
            go = ready.with_name("go")  # the test has sent its signal (or 3 s have passed)
            deadline = time.monotonic() + 3
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.01)

    os.replace = replace
from rehabstats.cli import main

main()
"""

NAMES = ["report.html", "report.ipynb"]


class Run:
    """``rehabstats report`` as a subprocess (through the driver when pausing at ``point``),
    its output collected as it comes (the progress bar tells which cell is running)."""

    def __init__(self, root, data, out, scratch, *, point=None, umask=None):
        args = ["report", str(data), "-n", "cohort_report", "--out", str(out / "report.html")]
        args.append("--progress")  # on stderr: "cohort_report:  40%|... | 10/25 [..."
        command = [sys.executable, "-m", "rehabstats", *args]
        if point is not None:
            command = [sys.executable, str(root / "driver.py"), point, str(scratch / "ready")]
            command += args
        self.scratch = scratch
        self.proc = subprocess.Popen(
            command,
            env={**os.environ, "TMPDIR": str(scratch)},  # the render's work folder goes here
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
        )
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while chunk := self.proc.stdout.read1(4096):
            self.chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def wait_for(self, ready, what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, f"exited before {what}: {self.output}"
            assert time.monotonic() < deadline, f"never reached: {what}"
            time.sleep(0.02)

    def reach(self, point: str) -> None:
        if point == "cells":  # a few cells done, more to run: the kernel is executing them

            def cells_running() -> bool:
                done = [(int(a), int(b)) for a, b in _PROGRESS.findall(self.output)]
                return bool(done) and 3 <= done[-1][0] < done[-1][1] - 3

            self.wait_for(cells_running, point)
            assert kernels(self.scratch), "the kernel should be executing cells"
        else:
            ready = self.scratch / "ready"
            self.wait_for(ready.exists, point)
            ready.unlink()

    def stop(self, signum: int) -> str:
        self.proc.send_signal(signum)
        go = self.scratch / "go"
        go.touch()  # a run paused at its writes goes on: the signal is in
        try:
            return self.finish()
        finally:
            go.unlink()

    def finish(self, timeout: float = 300) -> str:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - it did not stop
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise
        self.reader.join(timeout=10)
        return self.output


_PROGRESS = re.compile(r"(\d+)/(\d+) \[")


def kernels(scratch: Path) -> list[int]:
    """Processes running from the scratch folder: kernels (their connection file is there)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(scratch).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A cohort of 60 and the report rendered on it once, under umask 077."""
    root = tmp_path_factory.mktemp("kill")
    data = write_cohort(simulate_tables(60, seed=4), root / "data")
    (root / "driver.py").write_text(DRIVER)
    out = root / "earlier"
    scratch = Path(tempfile.mkdtemp(prefix="rsk-", dir="/tmp"))
    try:
        run = Run(root, data, out, scratch, umask=0o077)
        output = run.finish()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert run.proc.returncode == 0, output
    return root, data, {name: (out / name).read_bytes() for name in NAMES}, out


@pytest.fixture
def place(earlier, tmp_path):
    """A folder holding the earlier pair, and a short scratch TMPDIR (Unix socket paths)."""
    _, _, _, source = earlier
    out = tmp_path / "out"
    out.mkdir()
    for name in NAMES:
        shutil.copy2(source / name, out / name)
    scratch = Path(tempfile.mkdtemp(prefix="rsk-", dir="/tmp"))
    yield out, scratch
    for pid in kernels(scratch):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(scratch, ignore_errors=True)


def test_the_earlier_report_follows_the_umask(earlier):
    """Reports were chmod 0644 whatever the umask; under umask 077 they are the owner's only."""
    _, _, _, out = earlier
    assert {(out / n).stat().st_mode & 0o777 for n in NAMES} == {0o600}
    assert report_pair_matches(out / "report.html")


def test_killed_outright_at_each_point_the_next_run_cleans_up(earlier, place):
    """SIGKILL three times, then a next run (itself stopped by SIGTERM during its writes)."""
    root, data, before, _ = earlier
    out, scratch = place

    def same_as_before() -> bool:
        return {n: (out / n).read_bytes() for n in NAMES} == before

    # 1. before the kernel starts: its work folder exists
    run = Run(root, data, out, scratch, point="before-kernel")
    run.reach("before-kernel")
    run.stop(signal.SIGKILL)
    assert same_as_before() and sorted(p.name for p in out.iterdir()) == NAMES
    assert len(list(scratch.glob("rehabstats-render-*"))) == 1  # left for the next run

    # 2. while the kernel executes cells
    run = Run(root, data, out, scratch)
    run.reach("cells")
    run.stop(signal.SIGKILL)
    assert same_as_before() and sorted(p.name for p in out.iterdir()) == NAMES
    [workdir] = scratch.glob("rehabstats-render-*")  # run 1's was swept by run 2
    assert list(workdir.glob("kernel-*.json"))  # the connection file (its key), until swept

    # 3. between the renames of the final write: the new notebook is in place, the new HTML
    # complete beside it and the journal says so; a reader can see the pair does not match
    run = Run(root, data, out, scratch, point="writes")
    run.reach("writes")
    run.stop(signal.SIGKILL)
    assert (out / "report.html").read_bytes() == before["report.html"]
    assert (out / "report.ipynb").read_bytes() != before["report.ipynb"]
    assert not report_pair_matches(out / "report.html")
    assert [p.suffix for p in out.glob(".report.ipynb.rs-*")] == [".journal"]

    # 4. the next run completes the interrupted write, sweeps the dead runs' work folders and
    # kernels, renders, and is stopped by SIGTERM between its own renames: they finish first
    run = Run(root, data, out, scratch, point="writes")
    run.reach("writes")
    assert not workdir.exists()
    output = run.stop(signal.SIGTERM)
    assert run.proc.returncode == 128 + signal.SIGTERM, output
    assert sorted(p.name for p in out.iterdir()) == NAMES  # no .tmp, no journal
    assert report_pair_matches(out / "report.html")
    assert list(scratch.iterdir()) == []  # no work folder, connection file or key
    assert kernels(scratch) == []


@pytest.mark.parametrize(
    ("point", "signum"),
    [
        ("before-kernel", signal.SIGHUP),
        ("before-kernel", signal.SIGINT),
        ("cells", signal.SIGTERM),
        ("cells", signal.SIGINT),
    ],
)
def test_a_stopped_run_unwinds_and_leaves_the_earlier_pair(earlier, place, point, signum):
    root, data, before, _ = earlier
    out, scratch = place
    run = Run(root, data, out, scratch, point=None if point == "cells" else point)
    run.reach(point)
    output = run.stop(signum)
    assert run.proc.returncode == 128 + signum, output
    assert f"interrupted by {signal.Signals(signum).name}" in output
    assert "Traceback" not in output
    assert sorted(p.name for p in out.iterdir()) == NAMES  # nothing half-written beside
    assert {n: (out / n).read_bytes() for n in NAMES} == before
    assert list(scratch.iterdir()) == []  # the work folder (kernel key) removed at once
    assert kernels(scratch) == []  # the kernel was stopped with it
