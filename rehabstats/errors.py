"""Every error and warning rehabstats raises, with messages that say how to fix the problem."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BatchLockedError",
    "CohortValidationError",
    "ConfigError",
    "DataWarning",
    "JobFileError",
    "ModelDataError",
    "Note",
    "OutputError",
    "PROBLEM_KINDS",
    "UNREADABLE_KINDS",
    "ParameterError",
    "Problem",
    "ProblemGroup",
    "RehabstatsError",
    "RehabstatsWarning",
    "ValidationReport",
    "YamlFileError",
    "plural",
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

    A word that follows a count takes the form ``{n:singular|plural}``: the singular when the
    count is 1, the plural otherwise (also for a suppressed count such as ``<5``).

    >>> str(Note("{n} {n:row|rows} after withdrawal", counts={"n": 1}))
    '1 row after withdrawal'
    """

    template: str
    counts: dict[str, int]
    values: dict[str, Any]

    def __new__(cls, template: str, /, *, counts: dict[str, int] | None = None, **values: Any):
        counts = dict(counts or {})
        shown = {k: _Count(v) for k, v in counts.items()}
        self = super().__new__(
            cls, template.format(**values, **shown) if counts or values else template
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
            **self.values, **{k: _Shown(show(int(v))) for k, v in self.counts.items()}
        )


def _plural_spec(spec: str, one: bool) -> str | None:
    """``singular|plural`` format spec -> the word; ``None`` for an ordinary spec."""
    if "|" not in spec:
        return None
    singular, plural = spec.split("|", 1)
    return singular if one else plural


class _Count(int):
    """A count inside a note template: ``{n:row|rows}`` picks the word for the count."""

    def __format__(self, spec: str) -> str:
        word = _plural_spec(spec, int(self) == 1)
        return word if word is not None else format(int(self), spec)


class _Shown(str):
    """A count as shown (possibly suppressed, e.g. ``<5``): plural unless it reads ``1``."""

    def __format__(self, spec: str) -> str:
        word = _plural_spec(spec, str(self) == "1")
        return word if word is not None else format(str(self), spec)


def plural(n: int, singular: str, plural: str | None = None) -> str:
    """``"1 row"``, ``"2 rows"``, ``"1,251 rows"``: a count with the word that agrees with it."""
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"


class ConfigError(RehabstatsError, ValueError):
    """An analysis configuration key is unknown or its value is out of range."""


class ParameterError(RehabstatsError, ValueError):
    """A report or command parameter is unknown or has a bad value."""


class OutputError(RehabstatsError, OSError):
    """An output cannot be written where asked: the folder is not empty (files rehabstats did
    not create are never replaced), cannot be created, is a file, or lies outside the folder
    it must stay in. Nothing was written."""


class JobFileError(RehabstatsError, ValueError):
    """A batch job file (or a job named on the command line) is invalid; the message lists every
    problem. Nothing was run."""

    def __init__(self, path: str | os.PathLike, problems: Sequence[str]):
        self.path = Path(path)
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(
            f"{path}: {n} problem{'s' if n != 1 else ''} in the job file; nothing was run. "
            "Fix each below (docs/batch.md describes every key):\n  - "
            + "\n  - ".join(self.problems)
        )


class BatchLockedError(RehabstatsError, RuntimeError):
    """Another batch run is writing the same output folder."""


class YamlFileError(RehabstatsError, ValueError):
    """A YAML file a user wrote (analysis configuration, batch job file) cannot be read, is not
    UTF-8 or is not valid YAML (a key given twice among others). ``line`` and ``column``
    (1-based) say where, when known; ``problem`` says what. Each reader turns it into its own
    error (:class:`ConfigError`, :class:`JobFileError`)."""

    def __init__(self, problem: str, line: int | None = None, column: int | None = None):
        self.problem = problem
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(where + problem)


@dataclass(frozen=True)
class Problem:
    """One broken rule in the input data.

    Attributes
    ----------
    table : str
        Table name (``participants``, ``sessions``, ...).
    row : int or None
        1-based line of the source file (the header is line 1; blank lines count; a record
        whose quoted value spans lines is reported at the line it starts on) for CSV; the
        spreadsheet row for XLSX; the 1-based record number for Parquet and in-memory tables.
        ``None`` for file-, table- and column-level problems.
    column : str or None
        Column concerned, ``None`` for table-level problems.
    value : str
        The offending value as text (empty for a missing value).
    rule : str
        The rule broken, phrased as what the value must be.
    code : str
        The kind of rule (see :data:`PROBLEM_KINDS`): it orders the summary (the cause that
        explains the others first) and chooses the advice on how to fix it. Empty: a value rule.
    where : str
        The record's place in the source's own terms, when the source is not a file whose
        lines are the rows: e.g. ``table clinic.pain, id 18234`` (a database: the table or
        query and the row's key) or ``record 12, event baseline_arm_1, pain_diary #3``
        (REDCap). Empty for folders (the row is the line of the file) and for problems
        without a row.
    """

    table: str
    row: int | None
    column: str | None
    value: str
    rule: str
    code: str = ""
    where: str = ""


PROBLEM_KINDS: dict[str, tuple[int, str]] = {
    # code: (stage, how to fix). Stage 0: files and tables, 1: columns and lines (the shape of
    # a table), 2: single values, 3: rules across rows and tables, which a problem of an
    # earlier stage can cause (a duplicated or blank participant_id makes foreign-key errors).
    "folder": (0, "give the path of a folder holding the table files"),
    "source": (
        0,
        "check the source's address, that it is reachable and that its credentials are "
        "accepted (docs/databases.md, docs/redcap.md)",
    ),
    "file": (0, "make the path a readable file (not a folder or a broken link)"),
    "file_name": (
        0,
        "name each table file exactly after its table, in lower case: participants.csv, "
        "sessions.csv, pain.csv, visa_a.csv, function_tests.csv, events.csv (or .parquet, "
        ".xlsx)",
    ),
    "encoding": (0, "save the file as UTF-8 text (in Excel: Save As > CSV UTF-8)"),
    "delimiter": (
        0,
        "save the file as comma-separated values (in Excel: Save As > CSV UTF-8); "
        "values holding a comma are then quoted",
    ),
    "table": (0, "add the table file, or the records it must hold"),
    # a database table or view that is not there, or a column the mapping names that is not in
    # it; a query or a table that cannot be read (the rule says how to fix each)
    "relation": (0, ""),
    "query": (0, ""),
    "export": (
        0,
        "export the records again from REDCap: all instruments, raw data, with variable names "
        "as headers (CSV raw), with the data dictionary of the same project",
    ),
    "mapping": (0, "correct the mapping file as the rule says (docs/redcap.md)"),
    "column": (
        1,
        "the header (first line) must name each column once, spelled exactly as in the data "
        "contract (lower case, underscores): rename or remove columns as the rule says",
    ),
    "line": (
        1,
        "every line must have as many fields as the header; quote a value that holds a "
        'comma ("Smith, J") and remove stray separators',
    ),
    "quote": (
        1,
        'close the quote, or remove it; a quote inside a quoted value is written twice ("")',
    ),
    "empty": (1, "add the records the table must hold"),
    "formula": (
        2,
        "open the workbook in Excel and save it (Excel stores each formula's value), or "
        "replace the formulas by their values",
    ),
    "control": (
        2,
        "remove the control character (shown as \\xNN); it usually comes from a copy-paste "
        "or a broken export",
    ),
    "type": (2, "write the value in the column's type"),
    "required": (2, "fill in the value: this column must not have empty cells"),
    "enum": (2, "use one of the allowed values exactly as written (same case, no extra spaces)"),
    "range": (2, "check the value and its unit"),
    "unique": (
        2,
        "each value must appear once: correct the id of the participant who has the wrong "
        "one (their other rows may then be orphans) or remove the repeated row",
    ),
    "foreign_key": (
        3,
        "correct the id, or add the participant to participants (problems of "
        "participants.participant_id above can cause these)",
    ),
    "date_order": (3, "check the date and the participant's dates in participants"),
    "consistency": (3, "check the values against each other as the rule says"),
}
"""Every kind of problem: its stage (the order of the summary) and how to fix it."""

UNREADABLE_KINDS = frozenset({"folder", "source", "export", "mapping"})
"""Kinds of problem that stop a source giving any table (no folder, an unreachable server, a
REDCap label export, a wrong mapping file): nothing is validated after one of them, since
every table would only be reported missing again."""

_NA_WORDS = frozenset(
    {"na", "n/a", "n.a.", "nan", "null", "none", "-", "--", ".", "?", "missing", "#n/a", "nd"}
)


def _fix(code: str, rule: str, examples: list[str]) -> str:
    """How to fix a group of problems, from its kind, its rule and some of its values."""
    stage_fix = PROBLEM_KINDS.get(code, (2, ""))[1]
    parts = [stage_fix] if stage_fix and code != "type" else []
    if code == "type":
        if "date" in rule:
            parts.append("write dates as YYYY-MM-DD (e.g. 2024-03-07)")
            if any(_looks_like_spreadsheet_date(v) for v in examples):
                parts.append(
                    "a spreadsheet reformatted them: format the column as text or as "
                    "yyyy-mm-dd before saving"
                )
        elif "too large" in rule:
            parts.append("the number is too large to be right: check it")
        elif "whole number" in rule:
            parts.append("write whole numbers without decimals or units (3, not 3.0)")
        elif "number" in rule:
            parts.append(
                "write numbers with a decimal point and without units, spaces or thousands "
                "separators (3.5, not 3,5)"
            )
        else:
            parts.append(stage_fix)
    if code in ("type", "enum", "range"):
        na = next((v for v in examples if v.strip().lower() in _NA_WORDS), None)
        if na is not None:
            parts.append(f"`{na.strip()}` is not a missing value: leave the cell empty")
    return "; ".join(p for p in parts if p)


def _looks_like_spreadsheet_date(value: str) -> bool:
    import re

    v = value.strip()
    return bool(
        re.fullmatch(r"\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4}( .*)?", v)
        or re.fullmatch(r"\d{5}(\.\d+)?", v)  # a spreadsheet day number (45292 = 2024-01-01)
        or re.fullmatch(r"\d{4}-\d{2}-\d{2}[ T]\d.*", v)
    )


def _show(value: str, width: int = 40) -> str:
    """A value as printed: control characters as escapes, long values cut."""
    out = []
    for ch in value:
        o = ord(ch)
        if ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif o < 32 or o == 127:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    text = "".join(out)
    return text if len(text) <= width else text[: width - 3] + "..."


def _row_ranges(rows: list[int], *, limit: int = 6) -> str:
    """``2-1252``, ``5, 9, 12-14 and 30 more``: sorted rows as ranges, the first few runs."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and r == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], r)
        elif not runs or r != runs[-1][1]:
            runs.append((r, r))
    shown = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    text = ", ".join(shown)
    rest = sum(b - a + 1 for a, b in runs[limit:])
    if rest:
        text += f" and {plural(rest, 'more row')}"
    return text


@dataclass(frozen=True)
class ProblemGroup:
    """Problems sharing a table, column and rule: one line of the summary."""

    table: str
    column: str | None
    rule: str
    code: str
    problems: tuple[Problem, ...]

    @property
    def rows(self) -> list[int]:
        return [p.row for p in self.problems if p.row is not None]

    @property
    def examples(self) -> list[str]:
        """Up to three distinct offending values, in row order."""
        return list(dict.fromkeys(p.value for p in self.problems))[:3]

    @property
    def fix(self) -> str:
        return _fix(self.code, self.rule, list(dict.fromkeys(p.value for p in self.problems)))

    @property
    def label(self) -> str:
        return self.table if self.column is None else f"{self.table}.{self.column}"

    def to_dict(self, *, max_rows: int = 20) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "rule": self.rule,
            "code": self.code,
            "count": len(self.problems),
            "rows": self.rows[:max_rows],
            "examples": self.examples,
            "fix": self.fix,
        }


@dataclass
class ValidationReport:
    """All problems and warnings found while validating a cohort.

    ``problems`` break the data contract (the cohort is not loaded); ``warnings`` flag suspicious
    but legal data (the cohort is loaded, the warnings are kept on it).

    :meth:`format_text` is the one human-readable form of a report: ``rehabstats validate``, the
    message of :class:`CohortValidationError` and the reports print it.
    """

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Note] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no rule is broken."""
        return not self.problems

    def unique_problems(self) -> list[Problem]:
        """The problems without repeats, in the order found."""
        return list(dict.fromkeys(self.problems))

    def groups(self) -> list[ProblemGroup]:
        """Problems grouped by table, column and rule; the cause that explains others first.

        Groups are ordered by stage (files and tables, then the shape of a table -- its columns
        and lines --, then single values, then rules across rows and tables), then in the order
        the problems were found (tables and columns in the order of the data contract). Rows
        within a group are sorted.
        """
        buckets: dict[tuple, list[Problem]] = {}
        for p in self.unique_problems():
            buckets.setdefault((p.table, p.column, p.rule, p.code), []).append(p)
        keyed = []
        for order, ((table, column, rule, code), members) in enumerate(buckets.items()):
            stage = PROBLEM_KINDS.get(code, (2, ""))[0]
            members.sort(key=lambda p: (p.row is not None, p.row or 0))
            keyed.append((stage, order, ProblemGroup(table, column, rule, code, tuple(members))))
        keyed.sort(key=lambda k: (k[0], k[1]))
        return [g for _, _, g in keyed]

    def summary(self) -> list[dict[str, Any]]:
        """One entry per group (see :meth:`groups`): count, first rows, examples, how to fix."""
        return [g.to_dict() for g in self.groups()]

    def to_frame(self) -> pd.DataFrame:
        """Problems as a DataFrame with columns table, row, column, value, rule, code, where."""
        import pandas as pd  # here, not at import: the command line starts reports without it

        frame = pd.DataFrame(
            [asdict(p) for p in self.unique_problems()],
            columns=["table", "row", "column", "value", "rule", "code", "where"],
        )
        return frame.astype({"row": "Int64"})

    def to_json(self) -> str:
        """Problems, their summary and the warnings as a JSON document (for machines).

        ``problems`` holds every problem (no cap); ``summary`` the groups of
        :meth:`summary`, in the same order as the text.
        """
        return json.dumps(
            {
                "ok": self.ok,
                "n_problems": len(self.unique_problems()),
                "summary": self.summary(),
                "problems": [asdict(p) for p in self.unique_problems()],
                "warnings": list(dict.fromkeys(self.warnings)),
            },
            indent=2,
        )

    def format_text(self, *, max_details: int | None = 20, source: str | None = None) -> str:
        """The report for people: a summary, then the problems one per line.

        The summary has one entry per table, column and rule -- the most basic cause first --
        with the count, the first rows, example values and how to fix them. The details list
        every problem (table, row, column, value, rule), at most ``max_details`` of each group
        (``None``: all); the JSON form (:meth:`to_json`) always carries them all. With
        ``source`` (the data folder or the source's redacted location), a first line says
        where and how many: exactly what ``rehabstats validate`` prints.

        A source that could not be read at all (problems of kind ``source`` or ``export``
        only: a database or REDCap server that cannot be reached, credentials refused, a
        REDCap label export) gets one short message instead, each problem's rule saying how
        to fix it.
        Problems placed in the source's own terms (``Problem.where``: a database table and
        the row's key) show that place beside the row.
        """
        if self.ok:
            return "no problems" if source is None else f"{source}: valid"
        unique = self.unique_problems()
        if all(p.code in ("source", "export") for p in unique):
            head = f"{source}: cannot be read" if source is not None else "cannot be read"
            return "\n".join([f"{head}; nothing was loaded", *(f"  {p.rule}" for p in unique)])
        groups = self.groups()
        placed = any(p.where for p in unique)
        lines = []
        if source is not None:
            n = len(unique)
            lines.append(f"{source}: INVALID - {plural(n, 'problem')}; nothing was loaded")
        lines.append("Summary (the first problems can cause the ones after them):")
        for number, g in enumerate(groups, 1):
            n = len(g.problems)
            rows = g.rows
            head = f"{number:>3}. {g.label}: {g.rule}"
            if rows:
                head += f" ({plural(n, 'row')})"
            lines.append(head)
            if rows:
                values = ", ".join(f'"{_show(v, 30)}"' if v else "(empty)" for v in g.examples)
                lines.append(f"       {'row' if len(rows) == 1 else 'rows'} {_row_ranges(rows)}")
                places = list(dict.fromkeys(p.where for p in g.problems if p.where))
                if places:
                    more = f" and {len(places) - 3:,} more" if len(places) > 3 else ""
                    lines.append(f"       at {'; '.join(places[:3])}{more}")
                lines.append(f"       {'value' if len(g.examples) == 1 else 'e.g.'} {values}")
            elif (value := g.problems[0].value) and value not in g.rule and value != g.column:
                found = ", ".join(f'"{_show(p.value, 60)}"' for p in g.problems[:3])
                lines.append(f"       found {found}")
            if g.fix:
                lines.append(f"       fix: {g.fix}")
        cap = "" if max_details is None else f"; up to {max_details} of each problem"
        heading = (
            "table, row, where, column, value, rule"
            if placed
            else "table, row, column, value, rule"
        )
        lines += ["", f"Details ({heading}{cap}):"]
        table: list[tuple[str, ...]] = [
            ("table", "row", *(("where",) if placed else ()), "column", "value", "rule")
        ]
        more: dict[int, str] = {}
        for g in groups:
            shown = g.problems if max_details is None else g.problems[:max_details]
            for p in shown:
                row = "" if p.row is None else str(p.row)
                where = (p.where,) if placed else ()
                table.append((p.table, row, *where, p.column or "", _show(p.value), p.rule))
            if len(shown) < len(g.problems):
                rest = len(g.problems) - len(shown)
                more[len(table) - 1] = f"  ... and {plural(rest, 'more row')} like these"
        n_columns = len(table[0])
        widths = [max(len(r[i]) for r in table) for i in range(n_columns - 1)]
        for i, r in enumerate(table):
            cells = [
                r[k].rjust(widths[k]) if k == 1 else r[k].ljust(widths[k])
                for k in range(n_columns - 1)
            ]
            lines.append("  " + "  ".join([*cells, r[-1]]).rstrip())
            if i in more:
                lines.append(more[i])
        return "\n".join(lines)

    def format_table(self, *, max_rows: int | None = 200) -> str:
        """Problems as a plain-text table, sorted by table and row (see :meth:`format_text`)."""
        if self.ok:
            return "no problems"
        ordered = sorted(
            self.unique_problems(), key=lambda p: (p.table, p.row is not None, p.row or 0)
        )
        shown = ordered if max_rows is None else ordered[:max_rows]
        rows = [("table", "row", "column", "value", "rule")] + [
            (p.table, "" if p.row is None else str(p.row), p.column or "", _show(p.value), p.rule)
            for p in shown
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        text = "\n".join(
            "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows
        )
        if len(shown) < len(ordered):
            text += f"\n... and {plural(len(ordered) - len(shown), 'more problem')}"
        return text

    def __str__(self) -> str:
        return self.format_text()


class CohortValidationError(RehabstatsError, ValueError):
    """The cohort breaks the data contract; ``report`` lists every problem at once.

    The message is :meth:`ValidationReport.format_text` (a summary, then the problems) under
    one line saying how many problems were found and where.
    """

    def __init__(
        self, report: ValidationReport, *, source: str | None = None, max_details: int = 10
    ):
        self.report = report
        self.source = source
        where = f" in {source}" if source else ""
        n = len(report.unique_problems())
        super().__init__(
            f"{plural(n, 'problem')} found{where}; nothing was loaded. Fix them in the source "
            "files and load again (`rehabstats validate DIR` lists them all; `--format json` "
            "for machines).\n" + report.format_text(max_details=max_details)
        )


class ModelDataError(RehabstatsError, ValueError):
    """The data given to a model cannot be used (missing columns, missing or non-numeric
    values); the message names every problem."""
