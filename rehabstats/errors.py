"""Every error and warning rehabstats raises, with messages that say how to fix the problem."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CohortValidationError",
    "ConfigError",
    "DataWarning",
    "ModelDataError",
    "Note",
    "OutputError",
    "ParameterError",
    "Problem",
    "RehabstatsError",
    "RehabstatsWarning",
    "ValidationReport",
]


class RehabstatsError(Exception):
    """Base class of every error raised by rehabstats."""


class RehabstatsWarning(UserWarning):
    """Base class of every warning issued by rehabstats."""


class DataWarning(RehabstatsWarning):
    """Suspicious but legal input data (e.g. diary entries after withdrawal)."""


class Note(str):
    """A data note (a warning's text) whose counts are kept apart from the words.

    It is a ``str`` (the note as read inside the team), and it keeps the template and the
    counts so that a report leaving the team can show every count through the small-cell rule
    (:meth:`with_counts`). Every count a note shows goes in ``counts``; other values (table
    names, dates, thresholds) go in ``values``.

    Examples
    --------
    >>> n = Note("{n} participants enrolled after {cutoff}", counts={"n": 4}, cutoff="2024-06-30")
    >>> str(n)
    '4 participants enrolled after 2024-06-30'
    >>> n.with_counts(lambda k: "<5" if 0 < k < 5 else str(k))
    '<5 participants enrolled after 2024-06-30'
    """

    template: str
    counts: dict[str, int]
    values: dict[str, Any]

    def __new__(cls, template: str, /, *, counts: dict[str, int] | None = None, **values: Any):
        counts = dict(counts or {})
        self = super().__new__(
            cls, template.format(**values, **counts) if counts or values else template
        )
        self.template = (
            template if counts or values else template.replace("{", "{{").replace("}", "}}")
        )
        self.counts = counts
        self.values = values
        return self

    def with_counts(self, show: Callable[[int], str]) -> str:
        """The note with every count shown as ``show(count)`` (e.g. small-cell suppression)."""
        return self.template.format(
            **self.values, **{k: show(int(v)) for k, v in self.counts.items()}
        )


class ConfigError(RehabstatsError, ValueError):
    """An analysis configuration key is unknown or its value is out of range."""


class ParameterError(RehabstatsError, ValueError):
    """A report or command parameter is unknown or has a bad value."""


class OutputError(RehabstatsError, OSError):
    """An output cannot be written where asked: the folder is not empty (files rehabstats did
    not create are never replaced), cannot be created, is a file, or lies outside the folder
    it must stay in. Nothing was written."""


@dataclass(frozen=True)
class Problem:
    """One broken rule in the input data.

    Attributes
    ----------
    table : str
        Table name (``participants``, ``sessions``, ...).
    row : int or None
        1-based line of the source file (the header is line 1) for CSV and XLSX; the 1-based
        record number for Parquet and in-memory tables. ``None`` for table-level problems.
    column : str or None
        Column concerned, ``None`` for table-level problems.
    value : str
        The offending value as text (empty for a missing value).
    rule : str
        The rule broken, phrased as what the value must be.
    """

    table: str
    row: int | None
    column: str | None
    value: str
    rule: str


@dataclass
class ValidationReport:
    """All problems and warnings found while validating a cohort.

    ``problems`` break the data contract (the cohort is not loaded); ``warnings`` flag suspicious
    but legal data (the cohort is loaded, the warnings are kept on it).
    """

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Note] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no rule is broken."""
        return not self.problems

    def to_frame(self) -> pd.DataFrame:
        """Problems as a DataFrame with columns table, row, column, value, rule."""
        import pandas as pd  # here, not at import: the command line starts reports without it

        frame = pd.DataFrame(
            [asdict(p) for p in self.problems],
            columns=["table", "row", "column", "value", "rule"],
        )
        return frame.astype({"row": "Int64"})

    def to_json(self) -> str:
        """Problems and warnings as a JSON document (for machines)."""
        return json.dumps(
            {
                "ok": self.ok,
                "problems": [asdict(p) for p in self.problems],
                "warnings": list(self.warnings),
            },
            indent=2,
        )

    def format_table(self, *, max_rows: int | None = 200) -> str:
        """Problems as a plain-text table, sorted by table and row."""
        if self.ok:
            return "no problems"
        import pandas as pd

        frame = self.to_frame().sort_values(["table", "row", "column"], na_position="first")
        shown = frame if max_rows is None else frame.head(max_rows)
        text = shown.fillna({"column": "", "row": pd.NA}).to_string(index=False, na_rep="")
        if max_rows is not None and len(frame) > max_rows:
            text += f"\n... and {len(frame) - max_rows} more problems"
        return text

    def __str__(self) -> str:
        return self.format_table()


class CohortValidationError(RehabstatsError, ValueError):
    """The cohort breaks the data contract; ``report`` lists every problem at once."""

    def __init__(self, report: ValidationReport, *, source: str | None = None):
        self.report = report
        where = f" in {source}" if source else ""
        n = len(report.problems)
        super().__init__(
            f"{n} problem{'s' if n != 1 else ''} found{where}; nothing was loaded. "
            "Fix each row below in the source file and load again "
            "(`rehabstats validate DIR` lists them; `--format json` for machines).\n"
            + report.format_table()
        )


class ModelDataError(RehabstatsError, ValueError):
    """The data given to a model cannot be used (missing columns, missing or non-numeric
    values); the message names every problem."""
