"""The run lock: one batch run at a time writes an output folder.

A run takes an exclusive ``flock`` on ``<output_dir>/.rehabstats-batch.lock`` before reading any
manifest and keeps it until the index is written; a second run exits at once
(:class:`~rehabstats.errors.BatchLockedError`, exit 75) or waits for it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

from rehabstats.batch.manifest import utc_now
from rehabstats.errors import BatchLockedError

__all__ = ["LOCK_NAME", "RunLock"]

LOCK_NAME = ".rehabstats-batch.lock"
"""The lock file in the output folder (never deleted)."""


class RunLock:
    """An exclusive ``flock`` on ``<output_dir>/.rehabstats-batch.lock`` for one batch run.

    The lock is released by the kernel when the process ends, however it ends; the file is never
    deleted (deleting a lock file lets two runs lock different files). It holds the pid, host,
    start time and job file of the holder, for the message another run prints.

    ``with RunLock(folder).acquire():`` holds it for the block.
    """

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / LOCK_NAME
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds the lock (pid, host, start, job file), as the holder wrote it."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return "unknown holder"
        return (
            f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started_at')}, "
            f"job file {info.get('job_file')}"
        )

    def acquire(
        self,
        *,
        wait: bool = False,
        job_file: str = "",
        on_wait: Callable[[str], None] | None = None,
    ) -> RunLock:
        """Take the lock; with ``wait``, wait for the holder (``on_wait`` is told who it is).

        Raises
        ------
        BatchLockedError
            Another process holds the lock and ``wait`` is false.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise BatchLockedError(
                        f"another batch run is writing {self.path.parent} ({self.holder()}); "
                        "this run did nothing. Run again when it has finished, or use --wait "
                        "to wait for it."
                    ) from None
                if on_wait:
                    on_wait(self.holder())
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": utc_now(),
                "job_file": job_file,
            }
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (the file stays)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
