"""Progress of long commands on a terminal: stage names, counts, elapsed time, bars.

Every line goes to standard error, so standard output stays the command's result (a summary,
JSON for machines). Progress is shown only when standard error is a terminal, and never with
``--quiet``: a scheduled run, a pipe or a log file gets no progress lines and no bar.

A line reads ``[  12.3 s] loading the cohort: 100,000 participants``: the time since the
command started, then the stage. Work of a known size (metric files, the reports of a batch
run) gets a ``tqdm`` bar that is removed when it completes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

__all__ = ["Progress"]


class Progress:
    """Progress lines and bars of one command on standard error.

    Parameters
    ----------
    enabled : bool, optional
        Show progress; default: when ``stream`` is a terminal.
    stream : file, optional
        Where progress goes (default ``sys.stderr``).
    """

    def __init__(self, *, enabled: bool | None = None, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.started = time.perf_counter()
        self._bar: Any = None

    @property
    def elapsed(self) -> float:
        """Seconds since the command started."""
        return time.perf_counter() - self.started

    def line(self, text: str) -> None:
        """Print ``[elapsed] text`` (nothing when disabled)."""
        if not self.enabled:
            return
        message = f"[{self.elapsed:7.1f} s] {text}"
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def echo(self, text: str) -> None:
        """Print a line of the command's output on standard output (above a bar, if shown)."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """A stage: ``name ...`` when it starts, ``name: done in N s`` when it ends."""
        began = time.perf_counter()
        self.line(f"{name} ...")
        yield
        self.line(f"{name}: done in {time.perf_counter() - began:.1f} s")

    def start_bar(self, total: int, description: str, unit: str = "it") -> None:
        """A bar over ``total`` steps (:meth:`advance` moves it; :meth:`end_bar` removes it)."""
        if not self.enabled or total <= 0:
            return
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=description, unit=unit, leave=False, file=self.stream)

    def advance(self, step: str = "") -> None:
        """One step of the bar done (``step`` names the next one in the bar)."""
        if self._bar is not None:
            self._bar.update(1)
            if step:
                self._bar.set_postfix_str(step, refresh=True)

    def end_bar(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
