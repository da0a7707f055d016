"""Reading and writing cohort folders (CSV, Parquet or XLSX per table).

Reading never guesses: a file that is not exactly a table file (a near-miss name, a folder or a
broken link in its place, another delimiter or encoding, ragged lines, an unclosed quote,
spreadsheet formulas without a saved value) is a problem named in the report, with the fix.
CSV files are parsed by Arrow, as text; the line of each record in the file is worked out only
when a problem has to be reported, so a valid file costs one parse.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import errno
import mmap
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rehabstats.data.cohort import Cohort
from rehabstats.data.columnar import release_unused_memory
from rehabstats.data.schema import TABLES, table_spec, validate_tables
from rehabstats.errors import (
    UNREADABLE_KINDS,
    CohortValidationError,
    DataWarning,
    Note,
    OutputError,
    Problem,
    ValidationReport,
)

__all__ = ["FORMATS", "load_cohort", "read_tables", "write_cohort"]

FORMATS: tuple[str, ...] = ("csv", "parquet", "xlsx")
"""File formats of a cohort folder, one file per table named after it."""

_DATA_SUFFIXES = frozenset(
    {
        *FORMATS,
        "tsv",
        "tab",
        "txt",
        "dat",
        "pq",
        "xls",
        "xlsm",
        "xlsb",
        "ods",
        "numbers",
        "json",
        "feather",
        "arrow",
        "sav",
        "dta",
        "sas7bdat",
        "rds",
        "gz",
        "zip",
        "bz2",
        "xz",
    }
)
"""Suffixes of files that may hold a table (a near-miss name among them is an error)."""

Numbering = int | Callable[[], np.ndarray]


# --------------------------------------------------------------------------------------------
# The folder


@dataclass
class _Folder:
    """What a cohort folder holds: the table files and the files that are not read."""

    files: dict[str, Path] = field(default_factory=dict)
    not_read: list[str] = field(default_factory=list)


def _stem(name: str) -> tuple[str, str]:
    """``"Pain diary.csv.txt"`` -> (``"pain_diary"``, ``"txt"``): the name without its data
    suffixes, reduced for comparison, and the last suffix."""
    parts = name.split(".")
    last = parts[-1].lower() if len(parts) > 1 else ""
    while len(parts) > 1 and parts[-1].lower() in _DATA_SUFFIXES:
        parts.pop()
    base = ".".join(parts)
    return re.sub(r"[^0-9a-z]+", "_", base.strip().lower()).strip("_"), last


def _resembles(name: str) -> tuple[str | None, bool]:
    """The table a file name resembles, and whether closely (a near miss) or only by a word."""
    stem, _ = _stem(name)
    if not stem:
        return None, False
    best, score = None, 0.0
    for table in TABLES:
        if stem == table or stem.replace("_", "") == table.replace("_", ""):
            return table, True
        ratio = difflib.SequenceMatcher(None, stem, table).ratio()
        if ratio >= 0.8 and ratio > score:
            best, score = table, ratio
    if best is not None:
        return best, True
    for table in TABLES:
        if re.search(rf"(?<![a-z]){table}(?![a-z])", stem):
            return table, False
    return None, False


def _suggestion(table: str, name: str) -> str:
    """The name a near-miss file should have, and how to get it."""
    _, last = _stem(name)
    if last in FORMATS:
        return f"rename it to `{table}.{last}`"
    if last in ("xls", "xlsm", "xlsb", "ods", "numbers"):
        return f"save it as an Excel workbook `{table}.xlsx` (first sheet)"
    if last == "pq":
        return f"rename it to `{table}.parquet`"
    return f"save it as comma-separated values named `{table}.csv`"


def _not_a_file(path: Path) -> str | None:
    """Why an existing path in a table file's place cannot be read as one (None: it can)."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link that leads back to itself (a loop): replace it by the file"
        if path.is_symlink():
            target = os.readlink(path)
            return f"is a broken symbolic link (to {target}, which does not exist)"
        return f"cannot be read: {exc.strerror or exc}"
    if path.is_dir():
        return "is a folder, not a file: a table is one file"
    if not path.is_file():
        return "is not a regular file"
    return None


def _name_problem(table: str, name: str, rule: str) -> Problem:
    """A file of the folder whose name is not exactly a table's (code ``file_name``)."""
    return Problem(table, None, None, name, rule, "file_name")


def _scan_folder(folder: Path, report: ValidationReport) -> _Folder:
    """Find the table files and check every other name in the folder.

    A name that is a near miss of a table file name (case, spacing, a typo, another or doubled
    suffix: ``Events.csv``, ``visa-a.csv``, ``pain.txt``, ``participants.csv.csv``) is an error
    (a careful data manager wants the file read, not ignored); so is a data file that mentions a
    table (``pain_2024.csv``) when that table has no file. Other data files are listed in a
    data note; hidden files (``.name``) and office lock files (``~$name``) are ignored.
    """
    found = _Folder()
    try:
        names = sorted(entry.name for entry in os.scandir(folder))
    except OSError as exc:
        report.problems.append(
            Problem(
                "(folder)",
                None,
                None,
                str(folder),
                f"the folder cannot be read: {exc.strerror or exc}",
                "folder",
            )
        )
        return found
    exact = {f"{t}.{ext}": (t, ext) for t in TABLES for ext in FORMATS}
    candidates: dict[str, list[str]] = {}
    loose: list[tuple[str, str]] = []
    for name in names:
        if name.startswith((".", "~$")):
            continue
        path = folder / name
        if name in exact:
            table = exact[name][0]
            why = _not_a_file(path)
            if why is not None:
                report.problems.append(Problem(table, None, None, name, f"`{name}` {why}", "file"))
            else:
                candidates.setdefault(table, []).append(name)
            continue
        table, close = _resembles(name)
        is_dir = path.is_dir()
        _, last = _stem(name)
        data_like = is_dir or last in _DATA_SUFFIXES or last == ""
        if table is not None and close and data_like:
            fix = (
                f"a table is one file named `{table}.csv` (or .parquet, .xlsx), not a folder"
                if is_dir
                else _suggestion(table, name)
            )
            rule = f"`{name}` is not read: its name is not exactly a table file name; {fix}"
            report.problems.append(_name_problem(table, name, rule))
        elif table is not None and data_like and not is_dir:
            loose.append((table, name))
        elif last in _DATA_SUFFIXES and not is_dir:
            found.not_read.append(name)
    for table, name in loose:
        if table in candidates:
            found.not_read.append(name)
            continue
        rule = (
            f"`{name}` looks like the {table} table but is not read: if it is, "
            f"{_suggestion(table, name)}; if not, move it out of the folder"
        )
        report.problems.append(_name_problem(table, name, rule))
    for table, files in candidates.items():
        if len(files) > 1:
            report.problems.append(
                Problem(
                    table,
                    None,
                    None,
                    ", ".join(files),
                    "one file per table: remove all but one format",
                    "file_name",
                )
            )
        else:
            found.files[table] = folder / files[0]
    return found


# --------------------------------------------------------------------------------------------
# CSV


_CHUNK = 1 << 23


def _count_quotes(path: Path) -> int:
    """Number of ``"`` in the file (read in chunks: no copy of a large file in memory)."""
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            n += chunk.count(b'"')
    return n


def _csv_header(path: Path) -> tuple[list[str] | None, str | None]:
    """The header of a CSV file (its first non-blank record) or why it cannot be read."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            for row in csv.reader(f):
                if row:
                    return row, None
    except UnicodeDecodeError:
        return None, "encoding"
    except csv.Error:
        return None, "quote"
    return None, "empty"


def _delimiter_problem(name: str, header: list[str]) -> Problem | None:
    """A header read as one column that holds another separator: the file is not CSV."""
    if len(header) != 1:
        return None
    for sep, what in (
        ("\t", "tab-separated"),
        (";", "semicolon-separated"),
        ("|", "separated by |"),
    ):
        if sep in header[0]:
            return Problem(
                name,
                1,
                None,
                header[0],
                f"the file looks {what}; save it as comma-separated values (CSV)",
                "delimiter",
            )
    return None


def _encoding_problems(name: str, path: Path) -> list[Problem]:
    """Every line that is not UTF-8 text (found on failure only: a Python pass over lines)."""
    with path.open("rb") as f:
        head = f.read(2)
    if head in (b"\xff\xfe", b"\xfe\xff"):
        return [
            Problem(
                name,
                None,
                None,
                path.name,
                "the file is UTF-16 text (Excel's 'Unicode text'): save it as CSV UTF-8",
                "encoding",
            )
        ]
    problems = []
    with path.open("rb") as f:  # a stream of lines: no copy of a large file in memory
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(
                    Problem(
                        name,
                        number,
                        None,
                        line.rstrip(b"\r\n").decode("utf-8", "replace"),
                        "must be UTF-8 text (an accented letter saved in another encoding)",
                        "encoding",
                    )
                )
    return problems


def _quote_problem(name: str, path: Path) -> Problem | None:
    """A quoted value that is not closed, or text after a closing quote (strict CSV)."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, strict=True)
        start = 1
        try:
            for _ in reader:
                start = reader.line_num + 1
        except csv.Error as exc:
            with path.open(newline="", encoding="utf-8-sig", errors="replace") as g:
                line = next((t for i, t in enumerate(g, 1) if i == start), "")
            return Problem(
                name,
                start,
                None,
                line.rstrip("\r\n"),
                "a quoted value must be closed and followed by a comma or the end of the line "
                f"({exc})",
                "quote",
            )
    return None


@dataclass
class _Lines:
    """Where the records of a CSV file are: the line of each record Arrow kept, and the lines
    with the wrong number of fields (which Arrow skipped)."""

    records: np.ndarray
    ragged: list[tuple[int, int, str]]


def _csv_lines(path: Path, n_columns: int) -> _Lines:
    """The 1-based line of every record of a CSV file, and its ragged lines.

    Blank lines are skipped (as the parser skips them) but counted; a record whose quoted value
    holds line breaks is at the line it starts on. Called only when a problem is reported. A
    file without a quote character (the common case, also at millions of rows) is scanned as
    bytes, vectorised, a chunk at a time over a memory map (memory: two integers per line);
    otherwise the ``csv`` module reads it as a stream.
    """
    size = path.stat().st_size
    if size == 0:
        return _Lines(np.empty(0, dtype=np.int64), [])
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        data = np.frombuffer(m, dtype=np.uint8)
        try:
            found = _scan_lines(data, n_columns)
        finally:
            del data  # the memory map closes only without views on it
    if found is not None:
        return found
    records, ragged = [], []
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        previous, header_seen = 0, False
        for row in reader:
            start, previous = previous + 1, reader.line_num
            if not row:
                continue
            if not header_seen:
                header_seen = True
            elif len(row) == n_columns:
                records.append(start)
            else:
                ragged.append((start, len(row), ",".join(row)))
    return _Lines(np.asarray(records, dtype=np.int64), ragged)


def _scan_lines(data: np.ndarray, n_columns: int) -> _Lines | None:
    """:func:`_csv_lines` for a file without quotes or lone CRs (``None`` for another file)."""
    newlines, commas_before, cr_total = [], [], 0
    commas = 0
    for offset in range(0, data.size, _CHUNK):
        chunk = data[offset : offset + _CHUNK]
        if (chunk == 34).any():
            return None  # quoted values: the csv module knows where records start
        cr_total += int(np.count_nonzero(chunk == 13))
        at = np.flatnonzero(chunk == 10)
        comma_at = np.flatnonzero(chunk == 44)
        newlines.append(at + offset)
        commas_before.append(commas + np.searchsorted(comma_at, at))
        commas += comma_at.size
    ends = np.concatenate(newlines)
    before = np.concatenate(commas_before)
    if ends.size == 0 or ends[-1] != data.size - 1:  # a last line without a line break
        ends = np.append(ends, data.size)
        before = np.append(before, commas)
    starts = np.concatenate(([0], ends[:-1] + 1))
    length = ends - starts
    has_cr = (length > 0) & (data[np.maximum(ends - 1, 0)] == 13)
    if int(np.count_nonzero(has_cr)) != cr_total:
        return None  # a CR that does not end a line: a line break for the parser
    length -= has_cr
    fields = np.diff(before, prepend=0) + 1
    filled = length > 0
    lines = np.flatnonzero(filled)[1:] + 1  # the first non-blank line is the header
    fields = fields[filled][1:]
    good = fields == n_columns
    ragged = []
    for line, k in zip(lines[~good].tolist(), fields[~good].tolist(), strict=True):
        s, e = int(starts[line - 1]), int(starts[line - 1] + length[line - 1])
        ragged.append((line, k, data[s:e].tobytes().decode("utf-8", "replace")))
    return _Lines(lines[good], ragged)


def text_convert_options(names: Sequence[str]) -> Any:
    """Arrow CSV conversion that keeps every column as text and only empty fields missing (the
    contract's strict reading: types are checked by the validation, which names each value)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=[""],
        check_utf8=True,
    )


def _read_csv(name: str, path: Path) -> tuple[pd.DataFrame | None, Numbering, list[Problem]]:
    """A CSV file as text columns, how to number its records, and the problems of the file."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with path.open("rb") as f:
        magic = f.read(4)
    if magic.startswith((b"PK\x03\x04", b"PAR1")):
        what = "an Excel workbook (or another zip file)" if magic[:2] == b"PK" else "Parquet"
        right = "xlsx" if magic[:2] == b"PK" else "parquet"
        return (
            None,
            2,
            [
                Problem(
                    name,
                    None,
                    None,
                    path.name,
                    f"the file is {what}, not CSV text: save it as CSV, or name it "
                    f"`{name}.{right}`",
                    "file",
                )
            ],
        )
    header, trouble = _csv_header(path)
    if trouble == "encoding":
        return None, 2, _encoding_problems(name, path)
    if trouble == "quote":
        problem = _quote_problem(name, path)
        return None, 2, [problem] if problem is not None else []
    if header is None:
        return (
            None,
            2,
            [Problem(name, None, None, path.name, "the file is empty: it needs a header", "file")],
        )
    problem = _delimiter_problem(name, header)
    if problem is not None:
        return None, 2, [problem]
    ragged_rows = 0

    def skip(row: object) -> str:
        nonlocal ragged_rows
        ragged_rows += 1
        return "skip"

    def parse(names: list[str]) -> pa.Table:
        return pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=skip),
            convert_options=text_convert_options(names),
        )

    try:
        table = parse(header)
        if not all(pa.types.is_string(t) or pa.types.is_null(t) for t in table.schema.types):
            ragged_rows = 0  # the header as Arrow reads it differs: read again with its names
            table = parse(table.column_names)
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message or "UTF-8" in message:
            return None, 2, _encoding_problems(name, path)
        if "Empty CSV file" in message:  # a header and no line break after it
            table = pa.table({f"c{i}": pa.array([], pa.string()) for i in range(len(header))})
            table = table.rename_columns(header)
        else:
            reason = message.splitlines()[0]
            return (
                None,
                2,
                [Problem(name, None, None, path.name, f"not a CSV file: {reason}", "file")],
            )
    table = table.cast(pa.schema([pa.field(c, pa.string()) for c in table.column_names]))
    frame = table.to_pandas()
    frame.columns = list(table.column_names)  # repeated names stay repeated (never `x.1`)
    problems: list[Problem] = []
    newline_in_values = _values_hold(frame, b"\n")
    if newline_in_values or _count_quotes(path) % 2:
        quote = _quote_problem(name, path)
        if quote is not None:
            problems.append(quote)
    n_columns, n_records = len(header), len(frame)

    def lines() -> np.ndarray:
        found = _csv_lines(path, n_columns).records
        if found.shape != (n_records,):  # cannot happen for a file Arrow and csv read alike
            return np.arange(n_records, dtype=np.int64) + 2
        return found

    numbering: Numbering = lines
    if ragged_rows:
        where = _csv_lines(path, n_columns)
        for line, k, text in where.ragged:
            problems.append(
                Problem(
                    name,
                    line,
                    None,
                    text,
                    f"must have {n_columns} fields like the header, not {k}",
                    "line",
                )
            )
        if not where.ragged:  # the parser skipped lines the scan cannot place: still say so
            problems.append(
                Problem(
                    name,
                    None,
                    None,
                    "",
                    f"every line must have {n_columns} fields like the header; "
                    f"{ragged_rows} do not",
                    "line",
                )
            )
        records = where.records
        if records.shape == (n_records,):
            numbering = lambda: records  # noqa: E731
    frame, numbering = _without_empty_records(frame, numbering)
    return frame, numbering, problems


def _without_empty_records(
    frame: pd.DataFrame, numbering: Numbering
) -> tuple[pd.DataFrame, Numbering]:
    """Drop records whose every field is empty, keeping the row numbers of the others.

    A spreadsheet saved as CSV writes its blank rows as lines of commas; like blank lines,
    they hold no value and are skipped (their lines still count).
    """
    if frame.shape[1] == 0 or len(frame) == 0:
        return frame, numbering
    empty = frame.isna().all(axis=1).to_numpy()
    if not empty.any():
        return frame, numbering
    kept = np.flatnonzero(~empty)
    frame = frame.iloc[kept].reset_index(drop=True)
    if callable(numbering):
        full = numbering
        return frame, lambda: full()[kept]
    rows = kept + numbering
    return frame, lambda: rows


def _values_hold(frame: pd.DataFrame, needle: bytes) -> bool:
    """Whether any text value holds ``needle`` (a scan of the Arrow data buffers)."""
    for column in range(frame.shape[1]):
        array = frame.iloc[:, column].array
        if not hasattr(array, "__arrow_array__"):
            return True
        chunked = array.__arrow_array__()
        for chunk in getattr(chunked, "chunks", [chunked]):
            buffers = chunk.buffers()
            if len(buffers) > 2 and buffers[2] is not None and needle in buffers[2].to_pybytes():
                return True
    return False


# --------------------------------------------------------------------------------------------
# XLSX and Parquet


_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")


def _has_formulas(path: Path) -> bool:
    """Whether any worksheet of the workbook holds a formula (a scan of its XML)."""
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not (member.startswith("xl/worksheets/") and member.endswith(".xml")):
                continue
            with archive.open(member) as f:
                tail = b""
                while chunk := f.read(_CHUNK):
                    if _FORMULA.search(tail + chunk):
                        return True
                    tail = chunk[-16:]
    return False


def _read_xlsx(
    name: str, path: Path
) -> tuple[pd.DataFrame | None, Numbering, list[Problem], list[Note]]:
    """The first sheet of a workbook, its header and cells exactly as typed.

    Cells are not converted by guessing (numbers stay numbers, text stays text, dates are
    dates); blank rows are skipped like blank lines of a CSV file. Formulas are read as the values Excel saved with them; a formula without a saved value
    (a workbook written by a program, never opened in Excel) is a problem naming the cell.
    """
    import openpyxl
    from openpyxl.utils import get_column_letter

    # dtype=object: each cell as Excel holds it (a text cell "007" stays "007", not 7.0)
    frame = pd.read_excel(path, sheet_name=0, engine="openpyxl", dtype=object)
    problems: list[Problem] = []
    notes: list[Note] = []
    book = openpyxl.load_workbook(path, read_only=True, data_only=False)
    try:
        sheet = book.worksheets[0]
        header = next(sheet.iter_rows(min_row=1, max_row=1, values_only=True), ())
        names = [header[i] if i < len(header) else None for i in range(frame.shape[1])]
        frame.columns = [None if v is None else _header_text(v) for v in names]
        if len(book.sheetnames) > 1:
            notes.append(
                Note(
                    "{file}: only the first sheet ({sheet}) is read; {n} other "
                    "{n:sheet is|sheets are} ignored.",
                    counts={"n": len(book.sheetnames) - 1},
                    file=path.name,
                    sheet=book.sheetnames[0],
                )
            )
        if _has_formulas(path):
            for cells in sheet.iter_rows(min_row=2):
                for cell in cells:
                    if getattr(cell, "data_type", None) != "f":
                        continue
                    r, c = cell.row - 2, cell.column - 1
                    if r < frame.shape[0] and c < frame.shape[1] and pd.isna(frame.iat[r, c]):
                        problems.append(
                            Problem(
                                name,
                                cell.row,
                                frame.columns[c],
                                str(cell.value),
                                f"cell {get_column_letter(cell.column)}{cell.row} is a formula "
                                "without a saved value",
                                "formula",
                            )
                        )
    finally:
        book.close()
    frame, numbering = _without_empty_records(frame, 2)
    return frame, numbering, problems, notes


def _header_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read(name: str, path: Path) -> tuple[pd.DataFrame | None, Numbering, list[Problem], list]:
    """One table file as raw data, how to number its records, its problems and notes."""
    suffix = path.suffix
    if suffix == ".csv":
        frame, numbering, problems = _read_csv(name, path)
        return frame, numbering, problems, []
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        # ParquetFile: read_table refuses repeated column names
        table = pq.ParquetFile(path).read(use_pandas_metadata=True)
        names = list(table.column_names)
        # each column's Arrow memory is released once converted (no second copy of the table)
        frame = table.to_pandas(self_destruct=True, split_blocks=True)
        del table
        frame.columns = names  # repeated names stay repeated
        release_unused_memory()
        return frame, 1, [], []
    return _read_xlsx(name, path)


def read_tables(
    source: str | os.PathLike,
) -> tuple[dict[str, pd.DataFrame], dict[str, Numbering], ValidationReport]:
    """Read the raw tables of a cohort folder without validating them.

    Returns
    -------
    raw : dict of str to DataFrame
        The tables that could be read (CSV as text).
    numbering : dict of str to int or callable
        How each table's records are numbered in problems (see
        :func:`rehabstats.data.schema.validate_tables`): the line of each record of a CSV file is
        worked out only if a problem is reported.
    report : ValidationReport
        Problems of the folder and its files (missing folder, near-miss file names, unreadable
        files, ragged lines, encodings...) and data notes (files not read).
    """
    folder = Path(source)
    report = ValidationReport()
    if not folder.is_dir():
        report.problems.append(
            Problem(
                "(folder)", None, None, str(folder), "must be an existing cohort folder", "folder"
            )
        )
        return {}, {}, report
    unfinished = sorted(p.name for p in folder.glob(".*.rs-*.journal"))
    if unfinished:  # rehabstats.files: a write killed while moving its tables into place
        report.problems.append(
            Problem(
                "(folder)",
                None,
                None,
                unfinished[0],
                "a write of this folder by rehabstats was interrupted while its tables were "
                "being replaced (or is still running): the tables may mix two cohorts; write "
                "the cohort again (--overwrite), which completes the interrupted write first",
                "folder",
            )
        )
        return {}, {}, report
    found = _scan_folder(folder, report)
    raw: dict[str, pd.DataFrame] = {}
    numbering: dict[str, Numbering] = {}
    for name in TABLES:
        path = found.files.get(name)
        if path is None:
            continue
        try:
            frame, rows, problems, notes = _read(name, path)
        except MemoryError:
            raise
        except PermissionError:
            frame, rows, notes = None, 2, []
            problems = [
                Problem(name, None, None, path.name, "cannot be read: permission denied", "file")
            ]
        except Exception as exc:  # a damaged file: say so, whatever the library raised
            frame, rows, notes = None, 2, []
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            kind = {".parquet": "Parquet", ".xlsx": "XLSX"}.get(path.suffix, "CSV")
            problems = [
                Problem(
                    name, None, None, path.name, f"not a readable {kind} file: {reason}", "file"
                )
            ]
        report.problems.extend(problems)
        report.warnings.extend(notes)
        if frame is None:
            continue
        raw[name] = frame
        numbering[name] = rows
    if found.not_read:
        report.warnings.append(
            Note(
                "{folder}: {n} {n:file is|files are} not a cohort table and {n:was|were} not "
                "read: {files}.",
                counts={"n": len(found.not_read)},
                folder=folder.name or str(folder),
                files=", ".join(found.not_read),
            )
        )
    return raw, numbering, report


def _validated(
    raw: Mapping[str, pd.DataFrame],
    numbering: Mapping[str, Numbering],
    read: ValidationReport,
    *,
    loaded_on: str | dt.date | pd.Timestamp | None = None,
) -> tuple[dict[str, pd.DataFrame], ValidationReport]:
    """Validate what could be read, and merge the problems of reading in front.

    A table whose file has a problem is not also reported as missing.
    """
    if any(p.code in UNREADABLE_KINDS for p in read.problems):
        return {}, read
    tables, checked = validate_tables(raw, row_offset=numbering, loaded_on=loaded_on)
    blocked = {p.table for p in read.problems} - set(raw)
    kept = [p for p in checked.problems if not (p.code == "table" and p.table in blocked)]
    merged = ValidationReport(
        problems=[*read.problems, *kept], warnings=[*read.warnings, *checked.warnings]
    )
    return tables, merged


def load_cohort(
    source: str | os.PathLike,
    *,
    data_cutoff: str | pd.Timestamp | None = None,
    loaded_on: str | dt.date | pd.Timestamp | None = None,
    mapping: str | os.PathLike | Mapping | None = None,
) -> Cohort:
    """Load and validate a cohort from a folder, a database or another source.

    Parameters
    ----------
    source : str or path
        A folder with one file per table named after it (``participants.csv``,
        ``sessions.parquet``, ``pain.xlsx``...), or another source
        (:mod:`rehabstats.data.sources`): a database URL (``postgresql://user@host/db``,
        ``sqlite:///cohort.db``), a database mapping file, a REDCap records export (its
        file or folder, or ``redcap:PATH``), a REDCap API address
        (``https://redcap.example.org/api/``; the token from the environment or a file), or
        ``env:NAME`` (the source in an environment variable). ``participants`` and
        ``sessions`` are required; an absent
        optional table means no records.
    data_cutoff : str or Timestamp, optional
        The cohort's default cut-off (ISO ``YYYY-MM-DD``; :attr:`Cohort.data_cutoff`).
        Default: the latest date found in any table. The analysis cut-off is owned by the
        analysis configuration: ``AnalysisConfig(data_cutoff=...)`` wins when set, and is
        where the commands put ``--data-cutoff``.
    loaded_on : str, date or Timestamp, optional
        The day the data are loaded: a date after it is a validation problem (a typo such as
        2042 for 2024). Default: today where it is latest on Earth (UTC+14), so that no
        time zone's today is rejected. A plausibility bound only, never an analysis date.
    mapping : path or mapping, optional
        A database or REDCap source only: where the contract tables are in the database, or
        which REDCap fields hold the contract's columns (a mapping file's path, or its content
        as a dict; :func:`rehabstats.data.sql.read_database`,
        :func:`rehabstats.data.redcap.read_redcap_export`).

    Returns
    -------
    Cohort
        Its ``source`` is the source's redacted location (no password) and ``source_kind``
        its kind (``folder``, ``postgresql``...).

    Raises
    ------
    CohortValidationError
        With every problem at once (table, row = 1-based line of the file or record number,
        the record's place in the source, column, value, rule) and a summary of them;
        nothing is loaded. A source that cannot be read (an unreachable server, refused
        credentials) is a problem too.
    """
    from rehabstats.data.sources import read_source  # it reads folders with read_tables

    read = read_source(source, **({} if mapping is None else {"mapping": mapping}))
    raw, numbering, report = read.tables, read.numbering, read.report
    if not report.ok:
        _, merged = _validated(raw, numbering, report, loaded_on=loaded_on)
        raise CohortValidationError(read.locate(merged), source=read.location)
    try:
        cohort = Cohort.from_tables(
            raw,
            data_cutoff=data_cutoff,
            source=read.location,
            row_offset=numbering,
            loaded_on=loaded_on,
        )
    except CohortValidationError as exc:
        raise CohortValidationError(read.locate(exc.report), source=read.location) from None
    cohort = replace(cohort, source_kind=read.kind)
    warned = report.warnings
    del read, raw, numbering  # the source's values: only problem messages needed them
    release_unused_memory()
    if warned:
        for message in warned:
            warnings.warn(message, DataWarning, stacklevel=2)
        cohort = replace(cohort, warnings=(*warned, *cohort.warnings))
    return cohort


def write_cohort(
    cohort: Cohort | Mapping[str, pd.DataFrame],
    target: str | os.PathLike,
    *,
    format: str = "csv",
    overwrite: bool = False,
) -> Path:
    """Write a cohort folder, one file per table, never half-written and never over other files.

    Parameters
    ----------
    cohort : Cohort or mapping of table name to DataFrame
    target : path
        The folder. It is created when missing (with its parents); an existing folder must be
        empty, unless ``overwrite``.
    format : {"csv", "parquet", "xlsx"}
    overwrite : bool
        Write into a folder that is not empty: only the cohort's table files are replaced
        (``participants.csv``, ``sessions.parquet``... in any of the formats; a table file of
        another format or of a table the new cohort lacks is removed with them, so that the
        folder holds exactly the new cohort). Every other file in the folder is left untouched.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    OutputError
        ``target`` is not empty (and not ``overwrite``), is a file, or cannot be created;
        nothing was written.

    Notes
    -----
    Each table is written to a temporary file in ``target``, flushed to disk, then all are moved
    over the table files together (:func:`rehabstats.files.write_files`): a reader never sees a
    half-written table, and a write killed midway is completed or cleaned up by the next write
    into the folder. Files get the umask's mode. Dates are written ``YYYY-MM-DD``; missing
    values are empty fields.
    """
    from rehabstats import files

    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    tables = cohort.tables if isinstance(cohort, Cohort) else dict(cohort)
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} is a file, not a folder: the cohort was not written")
    files.make_folder(target)
    table_files = [f"{name}.{ext}" for name in TABLES for ext in FORMATS]
    files.sweep(target, table_files)  # what a killed earlier write left here
    try:
        existing = sorted(entry.name for entry in os.scandir(target))
    except OSError as exc:
        raise OutputError(f"cannot read the folder {target}: {exc.strerror or exc}") from None
    if existing and not overwrite:
        shown = ", ".join(existing[:5]) + (
            f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        )
        raise OutputError(
            f"{target} is not empty ({shown}): a cohort is written only into a new or empty "
            "folder, so that no file rehabstats did not write is ever replaced. Choose another "
            "folder, or overwrite the cohort tables in this one (--overwrite; other files are "
            "left untouched)."
        )
    written = [name for name in TABLES if name in tables]
    items = [
        (target / f"{name}.{format}", _table_writer(tables[name], name, format)) for name in written
    ]
    new_names = {path.name for path, _ in items}
    stale = [name for name in existing if name in table_files and name not in new_names]
    for name in [*stale, *new_names]:
        if (target / name).is_dir() and not (target / name).is_symlink():
            raise OutputError(f"{target / name} is a folder: the cohort was not written")
    files.write_files(items, remove=stale)
    return target


def _table_writer(frame: pd.DataFrame, name: str, fmt: str):
    return lambda path: _write_table(frame, name, path, fmt)


def _write_table(frame: pd.DataFrame, name: str, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
        return
    out = frame.copy()
    for f in table_spec(name).fields:
        if f.type == "date" and f.name in out:
            out[f.name] = out[f.name].dt.strftime("%Y-%m-%d")
        elif f.type == "integer" and f.name in out:
            out[f.name] = out[f.name].astype("Int64")
    if fmt == "csv":
        out.to_csv(path, index=False, na_rep="")
    else:
        out.to_excel(path, index=False, engine="openpyxl")
