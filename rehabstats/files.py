"""Writing outputs safely: atomic files, groups of files, the umask, and clean-up after a kill.

Every file rehabstats writes (reports, notebooks, cohort tables, metric tables, batch
manifests and index) goes through :func:`write_files` (or :func:`atomic_write` for one file):

1. Each new file is written to a **temporary file beside its target**, named
   ``.<target>.rs-<host>-<pid>-<token>.tmp`` (the host and process that wrote it, so that a
   later run can tell an abandoned temporary from one still being written), flushed to disk
   (``fsync``) and given the mode ``0666`` minus the process's **umask** (like any file the user
   creates: ``umask 077`` keeps reports private).
2. When several files belong together (a report's HTML and its notebook, the tables of a
   cohort), a **journal** ``.<first target>.rs-<host>-<pid>-<token>.journal`` listing the
   renames is written (and flushed) once every temporary is complete.
3. The temporaries are moved over their targets with ``os.replace`` (atomic per file), with
   SIGINT, SIGTERM and SIGHUP held back for those few milliseconds and, for a group, the
   folder locked (``flock``: two processes writing the same pair cannot interleave), then the
   journal is removed.

A reader therefore never sees a half-written file, and a process killed outright (SIGKILL, power
loss) leaves either the previous files untouched (killed before the journal: only temporaries
remain) or a journal. The next write to the same place calls :func:`sweep` first: it completes
the renames of a journal whose writer is gone (the new set, complete, is put in place) and
removes the temporaries of writers that are gone. It touches nothing else: only names of this
pattern, beside the targets being written, whose writing process is no longer running on this
host (or, from another host or container, older than :data:`STALE_AFTER`).

Work folders (a report's kernel files, a batch worker's staging area) live in the system's
temporary folder, are created private (``0700``) with an owner file naming the process
(:func:`make_workdir`), removed on every exit path the process can catch, and swept by the next
run once their owner is gone (:func:`sweep_workdirs`), with any kernel process still running
from them.

:func:`unwind_on_signals` turns SIGTERM, SIGHUP and SIGINT into an :class:`Interrupted`
exception, so that a stopped command unwinds through its clean-up code instead of dying in the
middle of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from rehabstats.errors import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "STALE_AFTER",
    "Interrupted",
    "atomic_write",
    "dir_mode",
    "file_mode",
    "make_folder",
    "make_workdir",
    "remove_workdir",
    "signals_deferred",
    "sweep",
    "sweep_workdirs",
    "unwind_on_signals",
    "write_files",
]

STALE_AFTER = 24 * 3600.0
"""Seconds after which a temporary whose writer cannot be checked (written on another host, or
by an older rehabstats that did not name its process) counts as abandoned."""

Content = bytes | Callable[[Path], None]
"""What to write: the bytes, or a function writing the file at the path it is given."""


def _host_tag() -> str:
    """8 hex digits naming this machine and process-id namespace (a container sharing a
    folder sees other process ids: its temporaries count as another host's)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    text = f"{socket.gethostname()}\0{namespace}"
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:8]


_HOST = _host_tag()
_OURS = re.compile(
    r"\.(?P<target>.+)\.rs-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-[0-9a-f]{8}"
    r"\.(?P<kind>tmp|journal)"
)
_LEGACY = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")  # tempfile.mkstemp, earlier versions
_OWNER = "rehabstats-owner.json"
_SIGNALS = tuple(
    s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None
)
_UMASK_LOCK = threading.Lock()


# ---- modes -----------------------------------------------------------------------------------


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would race with other threads)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new file: ``0666`` minus the umask (``0600`` under ``umask 077``)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """Mode of a new folder: ``0777`` minus the umask."""
    return 0o777 & ~_umask()


# ---- folders ---------------------------------------------------------------------------------


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def make_folder(folder: str | os.PathLike, *, within: str | os.PathLike | None = None) -> Path:
    """Create ``folder`` and its missing parents (modes from the umask); an error says why not.

    With ``within``, no folder is created (or followed) outside ``within``: a symbolic link on
    the way that leads out of it is refused.

    Raises
    ------
    OutputError
        The path or one of its parents is a file, cannot be created (permissions, read-only
        file system) or leads outside ``within``.
    """
    folder = Path(folder)
    if within is not None:
        root = os.path.realpath(within)
        current = Path(root)
        try:
            parts = Path(os.path.abspath(folder)).relative_to(os.path.abspath(within)).parts
        except ValueError:
            raise OutputError(f"{folder} is outside {within}: refused") from None
        for part in parts:
            current = current / part
            real = os.path.realpath(current)
            if not _inside(real, root):
                raise OutputError(
                    f"{current} leads to {real}, outside {within} (a symbolic link): refused"
                )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot create the folder {folder}: it is a file") from None
    except NotADirectoryError:
        raise OutputError(
            f"cannot create the folder {folder}: a part of the path is a file"
        ) from None
    except OSError as exc:
        raise OutputError(f"cannot create the folder {folder}: {exc.strerror or exc}") from None
    if not folder.is_dir():  # pragma: no cover - mkdir succeeded
        raise OutputError(f"{folder} is not a folder")
    return folder


def _open_dir(folder: Path, within: str | os.PathLike | None) -> int:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise OutputError(f"the folder {folder} does not exist") from None
    except NotADirectoryError:
        raise OutputError(f"{folder} is not a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot open the folder {folder}: {exc.strerror or exc}") from None
    if within is not None:
        try:
            _check_within(fd, folder, within)
        except BaseException:
            os.close(fd)
            raise
    return fd


def _check_within(fd: int, folder: Path, within: str | os.PathLike) -> None:
    """The folder open as ``fd`` (where the writes really go) is inside ``within``."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")  # the folder itself, whatever links led here
    except OSError:
        real = os.path.realpath(folder)
        here, there = os.fstat(fd), os.stat(real)
        if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino):
            raise OutputError(f"{folder} changed while it was written: refused") from None
    root = os.path.realpath(within)
    if not _inside(real, root):
        raise OutputError(
            f"{folder} leads to {real}, outside {within} (a symbolic link?): nothing was written "
            "there"
        )


# ---- writing ---------------------------------------------------------------------------------


def _token() -> str:
    return f"rs-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"


def _fsync_dir(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.fsync(fd)


def _write_temp(fd: int, folder: Path, name: str, content: Content, mode: int) -> None:
    if isinstance(content, bytes | bytearray | memoryview):
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(out, view) :]
            os.fsync(out)
        finally:
            os.close(out)
    else:
        content(folder / name)
        out = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        try:
            os.fsync(out)
        finally:
            os.close(out)
    os.chmod(name, mode, dir_fd=fd)


def write_files(
    items: Sequence[tuple[str | os.PathLike, Content]],
    *,
    remove: Iterable[str] = (),
    mode: int | None = None,
    within: str | os.PathLike | None = None,
) -> list[Path]:
    """Write files of one folder together: all new, or (after a kill) none until swept.

    Parameters
    ----------
    items : sequence of (path, content)
        Targets, all in one existing folder, in the order they are replaced (put the file
        readers look at first last: a report's HTML after its notebook). ``content`` is bytes
        or a function writing the file at the (temporary) path it receives.
    remove : iterable of str
        Names of files in that folder to delete in the same step (e.g. a table's file in
        another format when a cohort is replaced).
    mode : int, optional
        File mode; default :func:`file_mode` (the umask).
    within : path, optional
        The folder must really be inside this one, checked on the open folder just before the
        replacement (a symbolic link leading out is refused).

    Returns
    -------
    list of Path
        The targets written.

    Raises
    ------
    OutputError
        A target is a folder, the folder is missing or lies outside ``within``; nothing was
        replaced.
    """
    targets = [Path(p) for p, _ in items]
    if not targets:
        return []
    folder = targets[0].parent
    if any(t.parent != folder for t in targets):
        raise ValueError("write_files writes the files of one folder")
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError("write_files: a target is given twice")
    removed = [n for n in remove if n not in names]
    mode = file_mode() if mode is None else mode
    fd = _open_dir(folder, within)
    token = _token()
    temps = [f".{name}.{token}.tmp" for name in names]
    journal = f".{names[0]}.{token}.journal" if len(names) > 1 or removed else None
    committing = False
    try:
        for name in names:
            try:
                if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise OutputError(f"{folder / name} is a folder: not replaced")
            except FileNotFoundError:
                pass
        for temp, (_, content) in zip(temps, items, strict=True):
            _write_temp(fd, folder, temp, content, mode)
        if journal is not None:
            doc = {"version": 1, "replace": list(zip(temps, names, strict=True)), "remove": removed}
            staged = f".{names[0]}.{_token()}.tmp"
            _write_temp(fd, folder, staged, json.dumps(doc).encode(), mode)
            os.replace(staged, journal, src_dir_fd=fd, dst_dir_fd=fd)
            _fsync_dir(fd)
        with signals_deferred(), _renaming(fd, several=journal is not None):
            if within is not None:
                _check_within(fd, folder, within)
            committing = True
            for temp, name in zip(temps, names, strict=True):
                os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
            for name in removed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=fd)
            _fsync_dir(fd)
            if journal is not None:
                os.unlink(journal, dir_fd=fd)
                _fsync_dir(fd)
    except BaseException:
        if committing and journal is not None:
            # some targets may be new already: complete the set rather than leave it mixed
            with contextlib.suppress(OSError):
                _finish(fd, journal)
        for temp in temps:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=fd)
        raise
    finally:
        os.close(fd)
    return targets


@contextlib.contextmanager
def _renaming(fd: int, *, several: bool) -> Iterator[None]:
    """Hold the folder's lock (``flock`` on the folder itself) while a group is renamed, so
    that two processes writing the same pair at once cannot interleave their renames."""
    if not several or fcntl is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # a file system without locks: renames as they come
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)


def atomic_write(
    path: str | os.PathLike,
    content: Content,
    *,
    mode: int | None = None,
    within: str | os.PathLike | None = None,
) -> Path:
    """Write one file atomically (temporary file beside it, ``fsync``, ``os.replace``).

    See :func:`write_files` (one item); ``mode`` defaults to the umask's.
    """
    return write_files([(path, content)], mode=mode, within=within)[0]


def _finish(fd: int, journal: str) -> None:
    """Complete the renames a journal lists, then remove it (idempotent)."""
    doc = json.loads(_read_at(fd, journal))
    for temp, name in doc.get("replace", []):
        if _is_plain(temp) and _is_plain(name):
            with contextlib.suppress(FileNotFoundError):
                os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
    for name in doc.get("remove", []):
        if _is_plain(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
    _fsync_dir(fd)
    os.unlink(journal, dir_fd=fd)
    _fsync_dir(fd)


def _is_plain(name: object) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name


def _read_at(fd: int, name: str) -> bytes:
    handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    try:
        chunks = []
        while chunk := os.read(handle, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(handle)


# ---- whose is it -----------------------------------------------------------------------------


def _process_start(pid: int) -> float | None:
    """Start time (epoch seconds) of a process, from /proc; None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/stat", encoding="ascii") as fh:
            boot = next(float(line.split()[1]) for line in fh if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _process_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _writer_running(host: str, pid: int, since: float) -> bool:
    """Whether the process that wrote a file at ``since`` may still be writing it."""
    if host != _HOST:  # another machine (a shared folder): only age tells
        return time.time() - since < STALE_AFTER
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    except (OverflowError, ValueError):
        return False
    if _process_state(pid) in ("Z", "X"):  # exited, not yet reaped by its parent
        return False
    started = _process_start(pid)
    # a process started after the file was written cannot have written it: the number was reused
    return started is None or started <= since + 2


def sweep(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Finish or remove what killed rehabstats writers left beside ``names`` in ``folder``.

    A journal whose writer is gone is completed (its new files are moved into place); a
    temporary file whose writer is gone is deleted. Only files named by rehabstats' temporary
    pattern for one of ``names`` are looked at; temporaries of running writers are left alone.

    Returns
    -------
    list of Path
        The journals completed and the temporaries removed.
    """
    folder = Path(folder)
    wanted = set(names)
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    done: list[Path] = []
    now = time.time()
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return []
    try:
        found = [(m, e) for e in entries if (m := _OURS.fullmatch(e)) and m["target"] in wanted]
        # journals first: they name the temporaries that complete them
        for match, entry in sorted(found, key=lambda me: me[0]["kind"] != "journal"):
            try:
                info = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                continue
            if _writer_running(match["host"], int(match["pid"]), info.st_mtime):
                continue
            try:
                if match["kind"] == "journal":
                    _finish(fd, entry)
                else:
                    os.unlink(entry, dir_fd=fd)
            except FileNotFoundError:
                continue
            except (OSError, ValueError):  # an unreadable journal is left for a person to see
                continue
            done.append(folder / entry)
        for entry in entries:
            match = _LEGACY.fullmatch(entry)
            if not match or match["target"] not in wanted or _OURS.fullmatch(entry):
                continue
            try:
                info = os.stat(entry, dir_fd=fd, follow_symlinks=False)
                if (
                    stat.S_ISREG(info.st_mode)
                    and info.st_uid == os.getuid()
                    and now - info.st_mtime > STALE_AFTER
                ):
                    os.unlink(entry, dir_fd=fd)
                    done.append(folder / entry)
            except OSError:
                continue
    finally:
        os.close(fd)
    return done


# ---- work folders ----------------------------------------------------------------------------


def make_workdir(prefix: str, *, root: str | os.PathLike | None = None) -> Path:
    """A private (``0700``) folder in ``root`` (default the temporary folder), naming this
    process as its owner (:func:`sweep_workdirs` removes it once that process is gone)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root)).resolve()
    owner = {"pid": os.getpid(), "host": _HOST, "created": time.time()}
    (path / _OWNER).write_text(json.dumps(owner), encoding="utf-8")
    return path


def remove_workdir(path: str | os.PathLike) -> None:
    """Remove a work folder (its kernel connection files included)."""
    shutil.rmtree(path, ignore_errors=True)


def _kill_kernels_in(folder: str) -> list[int]:
    """Kill processes of this user still running from ``folder`` (a dead render's kernel).

    A process counts only when its command line names a file inside ``folder`` (the kernel's
    connection file): no other process can match a random temporary folder's name.
    """
    marker = (folder.rstrip(os.sep) + os.sep).encode()
    killed = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            if marker not in (entry / "cmdline").read_bytes():
                continue
            pid = int(entry.name)
            if pid != os.getpid():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        except (OSError, ValueError):
            continue
    return killed


def sweep_workdirs(prefix: str, *, root: str | os.PathLike | None = None) -> list[Path]:
    """Remove work folders named ``prefix*`` whose owner process is gone (and their kernels).

    Only folders of this user in ``root`` (default the temporary folder); a folder without an
    owner file (an earlier version, or a process killed while creating it) after
    :data:`STALE_AFTER`.
    """
    root = Path(tempfile.gettempdir() if root is None else root)
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        try:
            owner = json.loads(Path(entry.path, _OWNER).read_text(encoding="utf-8"))
            running = _writer_running(
                str(owner["host"]), int(owner["pid"]), float(owner["created"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            running = time.time() - info.st_mtime < STALE_AFTER
        if running:
            continue
        _kill_kernels_in(entry.path)
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


# ---- signals ---------------------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """A signal (SIGTERM, SIGHUP, SIGINT) stopped the command; clean-up code still runs."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """``128 + signal number``, the shell's convention."""
        return 128 + self.signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def unwind_on_signals() -> Iterator[None]:
    """SIGTERM, SIGHUP and SIGINT raise :class:`Interrupted` inside the block.

    The first signal unwinds the block (``finally`` clauses run: kernels are stopped, temporary
    files and folders removed); later ones are ignored while that clean-up runs. Outside the
    main thread (where Python cannot handle signals) this does nothing.
    """
    if not _in_main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        raise Interrupted(signum)

    with _handling(handler):
        yield


@contextlib.contextmanager
def _handling(handler: Callable[[int, object], None]) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP go to ``handler`` during the block; the previous handlers
    (or the default actions) are put back after it."""
    previous = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back during the block (a few renames); the first one
    that arrived is delivered to the usual handler (or default action) when it ends.

    Python runs signal handlers in the main thread only: there the handlers are swapped for
    ones that just take note. In another thread nothing needs holding back (a handler cannot
    interrupt it); a signal whose default action ends the process is not held there.
    """
    if not _in_main_thread():
        yield
        return
    held: list[int] = []

    def note(signum: int, frame: object) -> None:
        held.append(signum)

    try:
        with _handling(note):
            yield
    finally:
        if held:
            signal.raise_signal(held[0])
