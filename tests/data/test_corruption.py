"""Corruptions of a valid simulated cohort: each loads unchanged or fails with the right problem.

A small simulated cohort is written as CSV; every example rewrites some of its tables with a
legal layout (byte-order mark, CRLF line ends, every value quoted, blank lines, spaces around
values, extra and reordered columns, a table as an XLSX workbook of text cells) and at most one
corruption (a blank, malformed, out-of-range or too-large value, a control character, a short,
long or unclosed line, a missing, repeated or misnamed column, a file under a near-miss name,
another separator or encoding, spreadsheet dates, a repeated participant...).

The file writer here is independent of the loader and records the line of every record it
writes (blank lines and quoted line breaks included), so the expected row of a problem comes
from the file as written. Each example must then either load with the original fingerprint (a
legal variant), load (a legal change of content), or raise CohortValidationError whose first
problem -- the cause the summary puts first -- names the corrupted table, column and line.
Any other exception fails the test.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rehabstats import CohortValidationError, load_cohort, simulate_tables, write_cohort
from rehabstats.data.schema import DATE_COLUMNS, TABLES, table_spec
from rehabstats.errors import ValidationReport

N_PARTICIPANTS = 20
SEED = 11


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


def _read_csv(path: Path) -> Table:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return Table(rows[0], rows[1:])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corruption") / "base"
    write_cohort(simulate_tables(N_PARTICIPANTS, seed=SEED), folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fingerprint = load_cohort(folder).fingerprint()
    tables = {name: _read_csv(folder / f"{name}.csv") for name in TABLES}
    # the cohort must give every corruption something to work on
    assert all(t.rows for t in tables.values())
    return folder, fingerprint, tables


# ---------------------------------------------------------------------------------------------
# What each column allows, read from the schema files (not from the loader)


def _constraints(table: str) -> dict[str, dict]:
    raw = json.loads(table_spec(table).path.read_text())
    return {f["name"]: {"type": f["type"], **f.get("constraints", {})} for f in raw["fields"]}


def _free_text(table: str, column: str) -> bool:
    c = _constraints(table)[column]
    return c["type"] == "string" and "enum" not in c and column != "participant_id"


# ---------------------------------------------------------------------------------------------
# Writing files as a person or a spreadsheet might


@dataclass
class Layout:
    """How a table's file is written: all legal variations."""

    bom: bool = False
    crlf: bool = False
    quote_all: bool = False
    blank_before: dict[int, int] = field(default_factory=dict)  # record index -> blank lines
    pad: bool = False  # spaces around every value
    extra: bool = False  # an extra column at the end
    order: list[int] | None = None  # column order
    xlsx: bool = False
    sep: str = ","
    encoding: str = "utf-8"
    name: str | None = None  # the file name (default: the table's)
    raw: bool = False  # fields joined as they are, never quoted
    empty: bool = False  # a file of 0 bytes


def write_table(folder: Path, table: str, data: Table, layout: Layout) -> list[int]:
    """Write one table file; returns the row reported for each record (its line, or its sheet
    row for XLSX), counted here from what is written."""
    header, rows = list(data.header), [list(r) for r in data.rows]
    if layout.order is not None and len(layout.order) == len(header):
        header = [header[i] for i in layout.order]
        rows = [[r[i] for i in layout.order] for r in rows]
    if layout.extra:
        header.append("entered_by")
        rows = [[*r, f"user {i % 3}"] for i, r in enumerate(rows)]
    if layout.pad:
        rows = [[f" {v} " if v else v for v in r] for r in rows]
    if layout.xlsx:
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(header)
        for r in rows:
            sheet.append([v if v != "" else None for v in r])
        book.save(folder / (layout.name or f"{table}.xlsx"))
        return [i + 2 for i in range(len(rows))]

    if layout.empty:
        (folder / f"{table}.csv").write_bytes(b"")
        return []

    def render(fields: list[str]) -> str:
        if layout.raw:
            return layout.sep.join(fields)
        out = io.StringIO()
        quoting = csv.QUOTE_ALL if layout.quote_all else csv.QUOTE_MINIMAL
        # the line terminator tells the writer which characters force quotes: CR and LF
        csv.writer(out, delimiter=layout.sep, quoting=quoting, lineterminator="\r\n").writerow(
            fields
        )
        return out.getvalue().removesuffix("\r\n")

    lines, texts, line = [], [render(header)], 1 + render(header).count("\n")
    for i, r in enumerate(rows):
        blanks = layout.blank_before.get(i, 0)
        texts.extend([""] * blanks)
        line += blanks
        lines.append(line + 1)
        text = render(r)
        texts.append(text)
        line += 1 + text.count("\n")  # a quoted value holding a line break spans two lines
    newline = "\r\n" if layout.crlf else "\n"
    content = newline.join(texts) + newline
    data_bytes = ("\ufeff" if layout.bom else "").encode() + content.encode(layout.encoding)
    (folder / (layout.name or f"{table}.csv")).write_bytes(data_bytes)
    return lines


# ---------------------------------------------------------------------------------------------
# Corruptions


@dataclass
class Case:
    """One drawn example; its repr (shown when a test fails) names only what changed."""

    tables: dict[str, Table]
    layouts: dict[str, Layout]
    expect: Expect
    kind: str = "none"

    def __repr__(self) -> str:
        changed = {n: lay for n, lay in self.layouts.items() if lay != Layout()}
        return f"Case(kind={self.kind!r}, expect={self.expect}, layouts={changed})"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis prints examples with this
        printer.text(repr(self))


@dataclass
class Expect:
    kind: str  # "same" (the original fingerprint), "loads" or "error"
    table: str | None = None
    column: str | None = None
    row_index: int | None = None  # the record whose line the problem must name
    code: str | None = None


BAD_VALUES = {
    "date": ["01/02/2024", "2024-1-5", "2024-02-30", "45292", "NA", "2024/01/05", "yesterday"],
    "integer": ["abc", "NA", "2.5", "3.0", "1e3", "--", "3 sets"],
    "number": ["abc", "NA", "3,5", "1.2.3", "-", "inf", "nan", "4 kg"],
    "enum": ["abc", "Morning", "n/a", "other value"],
}
CONTROL = ["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x7f"]


KINDS = {
    # kind: the tables it applies to
    "none": TABLES,
    "blank": TABLES,
    "bad_value": TABLES,
    "out_of_range": ("participants", "sessions", "pain", "visa_a", "function_tests"),
    "control": TABLES,
    "overflow": ("sessions", "visa_a"),
    "short_line": TABLES,
    "long_line": TABLES,
    "unclosed_quote": TABLES,
    "line_break_in_text": ("participants", "events"),
    "drop_column": TABLES,
    "duplicate_column": TABLES,
    "rename_column": TABLES,
    "near_miss_name": TABLES,
    "separator": TABLES,
    "latin1": ("participants", "events"),
    "spreadsheet_dates": TABLES,
    "duplicate_participant": ("participants",),
    "header_only": TABLES,
    "empty_file": TABLES,
}
TEXT_ONLY = {
    # written as CSV whatever the layout (a workbook cannot hold them)
    "control",
    "short_line",
    "long_line",
    "unclosed_quote",
    "line_break_in_text",
    "separator",
    "latin1",
    "empty_file",
}


@st.composite
def cases(draw, tables: dict[str, Table], kind: str) -> Case:
    """Some tables written with legal layouts, and a corruption of one kind ("none": none)."""
    return Case(*_corrupt(draw, tables, kind), kind=kind)


def _corrupt(draw, tables: dict[str, Table], kind: str):
    """The tables, the layout of each and what loading them must give."""
    data = {name: Table(list(t.header), [list(r) for r in t.rows]) for name, t in tables.items()}
    layouts = {name: Layout() for name in TABLES}
    for name in draw(st.sets(st.sampled_from(TABLES), max_size=3)):
        layout = layouts[name]
        layout.xlsx = name in ("participants", "events", "visa_a") and draw(st.booleans())
        if not layout.xlsx:
            layout.bom, layout.crlf, layout.quote_all = draw(st.tuples(*[st.booleans()] * 3))
            n = len(data[name].rows)
            positions = draw(st.lists(st.integers(0, n - 1), max_size=3))
            layout.blank_before = {p: draw(st.integers(1, 2)) for p in positions}
        layout.pad, layout.extra = draw(st.booleans()), draw(st.booleans())
        if draw(st.booleans()):
            layout.order = draw(st.permutations(range(len(data[name].header))))
    if kind == "none":
        # every layout is legal (spaces around values are stripped): the data must not change
        return data, layouts, Expect("same")
    table = draw(st.sampled_from(KINDS[kind]))
    t, cons, layout = data[table], _constraints(table), layouts[table]
    if kind in TEXT_ONLY:
        layout.xlsx = False
    r = draw(st.integers(0, len(t.rows) - 1))

    def pick(ok) -> int:
        return draw(st.sampled_from([i for i, h in enumerate(t.header) if ok(h, cons[h])]))

    if kind == "blank":
        c = pick(lambda h, k: True)
        was, t.rows[r][c] = t.rows[r][c], ""
        if cons[t.header[c]].get("required"):
            return data, layouts, Expect("error", table, t.header[c], r)
        return data, layouts, Expect("loads" if was else "same")
    if kind == "bad_value":
        if table != "participants" and draw(st.booleans()):
            t.rows[r][0] = "ghost-1"  # not a participant
            return data, layouts, Expect("error", table, "participant_id", r, "foreign_key")
        c = pick(lambda h, k: k["type"] != "string" or "enum" in k)
        k = cons[t.header[c]]
        pool = BAD_VALUES["enum" if k["type"] == "string" else k["type"]]
        t.rows[r][c] = draw(st.sampled_from(pool))
        return data, layouts, Expect("error", table, t.header[c], r)
    if kind == "out_of_range":
        c = pick(
            lambda h, k: (
                k["type"] in ("integer", "number") and bool({"minimum", "maximum", "enum"} & set(k))
            )
        )
        k = cons[t.header[c]]
        if "enum" in k:
            value = max(k["enum"]) + 1
        elif "maximum" in k and (draw(st.booleans()) or "minimum" not in k):
            value = k["maximum"] + 1
        else:
            value = k["minimum"] - 1
        t.rows[r][c] = str(value)
        return data, layouts, Expect("error", table, t.header[c], r)
    if kind == "control":
        c = pick(lambda h, k: True)
        old = t.rows[r][c]
        cut = draw(st.integers(0, len(old)))
        t.rows[r][c] = old[:cut] + draw(st.sampled_from(CONTROL)) + old[cut:]
        return data, layouts, Expect("error", table, t.header[c], r, "control")
    if kind == "overflow":
        c = pick(lambda h, k: k["type"] == "integer")
        t.rows[r][c] = draw(st.sampled_from(["99999999999999999999", "-1234567890123456"]))
        return data, layouts, Expect("error", table, t.header[c], r, "type")
    if kind in ("short_line", "long_line"):
        if kind == "short_line":
            t.rows[r] = t.rows[r][: -draw(st.integers(1, len(t.header) - 1))]
        else:
            t.rows[r] = [*t.rows[r], "x"]
        layout.extra, layout.order = False, None
        return data, layouts, Expect("error", table, None, r, "line")
    if kind == "unclosed_quote":
        c = pick(lambda h, k: True)
        layout.raw, layout.quote_all, layout.pad = True, False, False
        for row in t.rows:  # the only quote character of the file is the unclosed one
            row[:] = [v.replace('"', "").replace("\n", " ").replace(",", ";") for v in row]
        t.rows[r][c] = '"' + t.rows[r][c]
        return data, layouts, Expect("error", table, None, r, "quote")
    if kind == "line_break_in_text":
        c = pick(lambda h, k: _free_text(table, h))
        t.rows[r][c] = "first line\nsecond line"
        # and, after it, a broken date: its line must count the line break
        later = draw(st.integers(r, len(t.rows) - 1))
        date = DATE_COLUMNS.get(table, "enrolled_on")
        t.rows[later][t.header.index(date)] = "2024-13-45"
        return data, layouts, Expect("error", table, date, later, "type")
    if kind == "drop_column":
        c = pick(lambda h, k: True)
        column = t.header[c]
        for row in [t.header, *t.rows]:
            del row[c]
        layout.order = None
        if cons[column].get("required"):
            return data, layouts, Expect("error", table, column, None, "column")
        return data, layouts, Expect("loads")
    if kind == "duplicate_column":
        c = pick(lambda h, k: True)
        blank_first = draw(st.booleans())
        t.header.append(t.header[c])
        for row in t.rows:
            row.append(row[c])
            if blank_first:
                row[c] = ""
        layout.order = None
        return data, layouts, Expect("error", table, t.header[c], None, "column")
    if kind == "rename_column":
        c = pick(lambda h, k: True)
        column = t.header[c]
        variants = {
            column.upper(),
            column.title(),
            column.replace("_", " "),
            column.replace("_", "-"),
            " " + column,
            column + " ",
            column.capitalize(),
        } - {column}
        t.header[c] = draw(st.sampled_from(sorted(variants)))
        return data, layouts, Expect("error", table, column, None, "column")
    if kind == "near_miss_name":
        ext = "xlsx" if layout.xlsx else "csv"
        names = [
            f"{table.capitalize()}.{ext}",
            f"{table}.{ext.upper()}",
            f"{table}.{ext}.{ext}",
            f"{table.replace('_', '-')} .{ext}",
            f"{table.upper()}.{ext}",
        ]
        if not layout.xlsx:
            names.append(f"{table}.txt")
        layout.name = draw(st.sampled_from(names))
        return data, layouts, Expect("error", table, None, None, "file_name")
    if kind == "separator":
        layout.sep = draw(st.sampled_from(["\t", ";"]))
        for row in t.rows:
            row[:] = [v.replace(layout.sep, " ") for v in row]
        return data, layouts, Expect("error", table, None, None, "delimiter")
    if kind == "latin1":
        c = pick(lambda h, k: _free_text(table, h))
        t.rows[r][c] = "d\u00e9j\u00e0 vu"
        layout.encoding, layout.bom = "latin-1", False
        return data, layouts, Expect("error", table, None, r, "encoding")
    if kind == "spreadsheet_dates":
        c = pick(lambda h, k: k["type"] == "date")
        filled = [i for i, row in enumerate(t.rows) if row[c]]
        if not filled:
            return data, layouts, Expect("same")
        for row in t.rows:
            if row[c]:
                y, m, d = row[c].split("-")
                row[c] = f"{int(d)}/{int(m)}/{y}"
        return data, layouts, Expect("error", table, t.header[c], filled[0], "type")
    if kind == "duplicate_participant":
        # a later participant typed with the first one's id: the first of the two is named
        i = draw(st.integers(1, len(t.rows) - 1))
        t.rows[i][0] = t.rows[0][0]
        return data, layouts, Expect("error", "participants", "participant_id", 0, "unique")
    if kind == "header_only":
        t.rows, layout.blank_before = [], {}
        if table == "participants":
            return data, layouts, Expect("error", "participants", None, None, "empty")
        return data, layouts, Expect("loads")
    if kind == "empty_file":
        layout.empty = True
        return data, layouts, Expect("error", table, None, None, "file")
    raise AssertionError(kind)


# ---------------------------------------------------------------------------------------------
# The property


EXAMPLES_PER_KIND = 5
"""20 kinds x 5 examples: about 100 loads of a 20-participant cohort (~20 s)."""


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(
    max_examples=EXAMPLES_PER_KIND,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_corruption_loads_unchanged_or_names_its_table_and_column(base, kind, data):
    folder, fingerprint, tables = base
    case = data.draw(cases(tables, kind))
    data_tables, layouts, expect = case.tables, case.layouts, case.expect
    work = Path(tempfile.mkdtemp(prefix="corrupt-"))
    try:
        lines = {}
        for name in TABLES:
            layout = layouts[name]
            if layout == Layout() and data_tables[name] == tables[name]:
                shutil.copy(folder / f"{name}.csv", work / f"{name}.csv")
                lines[name] = None
                continue
            lines[name] = write_table(work, name, data_tables[name], layout)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cohort = load_cohort(work)
        except CohortValidationError as exc:
            report = exc.report
            assert expect.kind == "error", (
                f"{expect}: a legal file was refused:\n{report.format_text(max_details=3)}"
            )
            first = ValidationReport(report.problems).groups()[0]
            problem = first.problems[0]
            assert (first.table, first.column) == (expect.table, expect.column), (
                f"{expect}: the first problem is not the corruption:\n"
                f"{report.format_text(max_details=3)}"
            )
            if expect.code is not None:
                assert first.code == expect.code, report.format_text(max_details=3)
            if expect.row_index is not None:
                written = lines[expect.table]
                want = written[expect.row_index] if written else expect.row_index + 2
                assert problem.row == want, report.format_text(max_details=3)
            return
        assert expect.kind != "error", f"{expect}: the corruption was not found"
        if expect.kind == "same":
            assert cohort.fingerprint() == fingerprint, "a legal variant changed the data"
    finally:
        shutil.rmtree(work, ignore_errors=True)
