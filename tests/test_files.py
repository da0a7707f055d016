"""rehabstats.files: atomic writes, groups of files, the umask, sweeping what killed runs left."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rehabstats import files
from rehabstats.errors import OutputError


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def temp_name(target: str, pid: int, host: str | None = None, kind: str = "tmp") -> str:
    return f".{target}.rs-{host or files._HOST}-{pid}-0123abcd.{kind}"


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_replaces_with_the_umask_mode_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "r.html"
    target.write_text("old")
    old = os.umask(0o077)
    try:
        files.atomic_write(target, b"new")
        private = stat.S_IMODE(target.stat().st_mode)
        os.umask(0o022)
        files.atomic_write(tmp_path / "shared.html", b"x")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new"
    assert private == 0o600  # umask 077: only the owner reads reports holding identifiers
    assert stat.S_IMODE((tmp_path / "shared.html").stat().st_mode) == 0o644
    assert listing(tmp_path) == ["r.html", "shared.html"]


def test_write_files_refuses_a_folder_in_the_way_and_writes_nothing(tmp_path):
    (tmp_path / "b.html").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        files.write_files([(tmp_path / "a.ipynb", b"a"), (tmp_path / "b.html", b"b")])
    assert listing(tmp_path) == ["b.html"]


def test_two_writers_of_one_pair_cannot_interleave_their_renames(tmp_path, monkeypatch):
    """A renames its notebook, then is slow; B writes both meanwhile; A renames its HTML.
    Without the folder lock the result was B's notebook with A's HTML."""
    import threading

    real = os.replace
    b_may_start = threading.Event()

    def replace(src, dst, **kwargs):
        real(src, dst, **kwargs)
        if threading.current_thread().name == "A" and dst == "r.ipynb":
            b_may_start.set()
            time.sleep(0.5)

    monkeypatch.setattr(files.os, "replace", replace)

    def write(who: str) -> None:
        if who == "B":
            b_may_start.wait(10)
        files.write_files(
            [(tmp_path / "r.ipynb", who.encode()), (tmp_path / "r.html", who.encode())]
        )

    threads = [threading.Thread(target=write, args=(w,), name=w) for w in "AB"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert (tmp_path / "r.ipynb").read_bytes() == (tmp_path / "r.html").read_bytes()
    assert listing(tmp_path) == ["r.html", "r.ipynb"]


def test_sweep_removes_only_abandoned_temporaries_of_the_named_targets(tmp_path):
    gone = dead_pid()
    now = time.time()
    made = {
        temp_name("r.html", gone): "a dead writer's temporary: removed",
        temp_name("r.ipynb", gone): "a dead writer's temporary: removed",
        temp_name("r.html", os.getpid()): "this (running) process's: kept",
        temp_name("other.html", gone): "another target's: kept",
        temp_name("r.html", gone, host="ffffffff"): "another host's, recent: kept",
        ".r.html.notes.tmp": "not rehabstats' pattern: kept",
        "r.html.tmp": "not rehabstats' pattern: kept",
        ".r.html.abcd1234.tmp": "an earlier version's, recent: kept",
        ".r.ipynb.zz99yy88.tmp": "an earlier version's, two days old: removed",
        "r.html": "the report: kept",
    }
    for name in made:
        (tmp_path / name).write_text(name)
    two_days_ago = now - 2 * 86400
    os.utime(tmp_path / ".r.ipynb.zz99yy88.tmp", (two_days_ago, two_days_ago))
    removed = files.sweep(tmp_path, ["r.html", "r.ipynb"])
    expected_gone = {n for n, why in made.items() if why.endswith("removed")}
    assert {p.name for p in removed} == expected_gone
    assert listing(tmp_path) == sorted(set(made) - expected_gone)


def test_sweep_completes_the_journal_of_a_killed_group_write(tmp_path):
    """Killed after its first rename: the notebook is new, the HTML old; the journal (written
    once both temporaries were complete) lets the next run put the new HTML in place."""
    gone = dead_pid()
    (tmp_path / "r.ipynb").write_text("new notebook")  # already renamed
    (tmp_path / "r.html").write_text("old html")
    html_tmp = temp_name("r.html", gone)
    (tmp_path / html_tmp).write_text("new html")
    journal = temp_name("r.ipynb", gone, kind="journal")
    nb_tmp = temp_name("r.ipynb", gone)  # renamed already: no longer there
    doc = {"version": 1, "replace": [[nb_tmp, "r.ipynb"], [html_tmp, "r.html"]], "remove": []}
    (tmp_path / journal).write_text(json.dumps(doc))
    files.sweep(tmp_path, ["r.html", "r.ipynb"])
    assert listing(tmp_path) == ["r.html", "r.ipynb"]
    assert (tmp_path / "r.html").read_text() == "new html"
    assert (tmp_path / "r.ipynb").read_text() == "new notebook"


def test_sweep_leaves_the_journal_of_a_running_writer(tmp_path):
    journal = temp_name("r.ipynb", os.getpid(), kind="journal")
    (tmp_path / journal).write_text(json.dumps({"replace": [], "remove": ["r.html"]}))
    (tmp_path / "r.html").write_text("kept")
    assert files.sweep(tmp_path, ["r.html", "r.ipynb"]) == []
    assert listing(tmp_path) == sorted([journal, "r.html"])


def test_a_reused_pid_does_not_keep_a_temporary_alive(tmp_path):
    """The writer's pid now belongs to a process started after the file was written."""
    name = temp_name("r.html", os.getpid())
    (tmp_path / name).write_text("x")
    long_ago = time.time() - 3600  # written an hour before this process started? (not so)
    os.utime(tmp_path / name, (long_ago, long_ago))
    started = files._process_start(os.getpid())
    if started is None or started < long_ago:
        pytest.skip("needs /proc and a test process younger than an hour")
    # this process is the 'writer' only if it had started before the file was written
    assert files._writer_running(files._HOST, os.getpid() + 0, long_ago) is True  # own pid
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert files._writer_running(files._HOST, child.pid, long_ago) is False
        assert files._writer_running(files._HOST, child.pid, time.time()) is True
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_sweep_workdirs_removes_dead_owners_folders_and_their_kernels(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    live = files.make_workdir("rehabstats-render-")
    dead = files.make_workdir("rehabstats-render-")
    owner = json.loads((dead / "rehabstats-owner.json").read_text())
    owner["pid"] = dead_pid()
    (dead / "rehabstats-owner.json").write_text(json.dumps(owner))
    (dead / "kernel-0123.json").write_text('{"key": "secret"}')
    # a 'kernel' of the dead render, still running (its parent poller not yet fired)
    kernel = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-f", str(dead / "kernel-0123.json")]
    )
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    unrelated = tmp_path / "rehabstats-render-notes"  # no owner file, recent: kept
    unrelated.mkdir()
    try:
        # as a dead render's kernel has, this one has started: Popen may return while the
        # child is still inside execve, its command line empty for a moment (seen under load)
        deadline = time.monotonic() + 30
        while str(dead).encode() not in Path(f"/proc/{kernel.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the stand-in kernel never started"
            time.sleep(0.01)
        assert stat.S_IMODE(live.stat().st_mode) == 0o700  # it holds the kernel's key
        removed = files.sweep_workdirs("rehabstats-render-")
        assert removed == [dead]
        assert kernel.wait(timeout=10) == -signal.SIGKILL
        assert bystander.poll() is None
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unrelated.name])
    finally:
        for proc in (kernel, bystander):
            proc.kill()
            proc.wait()


def test_write_files_within_refuses_a_link_leading_out(tmp_path):
    root = tmp_path / "out"
    outside = tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "site").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutputError, match="outside"):
        files.atomic_write(root / "site" / "r.html", b"x", within=root)
    with pytest.raises(OutputError, match="outside"):
        files.make_folder(root / "site" / "deeper", within=root)
    assert list(outside.iterdir()) == []
    # a link that stays inside the folder is fine
    (root / "real").mkdir()
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    files.atomic_write(root / "alias" / "r.html", b"x", within=root)
    assert (root / "real" / "r.html").read_bytes() == b"x"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_unwind_through_finally_and_handlers_come_back(signum):
    before = signal.getsignal(signum)
    cleaned = []
    with pytest.raises(files.Interrupted) as info, files.unwind_on_signals():
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # pragma: no cover - the signal arrives first
        finally:
            cleaned.append(True)
    assert cleaned == [True]
    assert info.value.signum == signum and info.value.exit_code == 128 + signum
    assert signal.getsignal(signum) == before


def test_signals_are_held_back_during_the_renames():
    order = []
    with pytest.raises(files.Interrupted), files.unwind_on_signals():
        with files.signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            order.append("renamed")
        order.append("after")  # pragma: no cover - the signal is delivered before this
    assert order == ["renamed"]
