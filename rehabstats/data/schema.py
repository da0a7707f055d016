"""The data contract: table schemas read from ``data_schema/`` and the validation of a cohort.

The Frictionless Table Schemas in ``data_schema/`` are the single source of truth. Column types
are parsed here (strictly: ISO dates, whole numbers for integers, nothing guessed); the
per-column constraints (required, enum, minimum/maximum, unique) are checked by pandera schemas
built directly from the schema files (:func:`_pandera_schema`: the checks
:func:`pandera.io.pandas_io.from_frictionless_schema` would derive, without importing
``frictionless`` in every process; a test holds the two equal); the header, the rules across
rows and tables (foreign keys, dates not before enrolment except a VISA-A's, withdrawal not
before enrolment, the VISA-A item rules, no date after the load date) and the warnings
(outlying latest dates, labels differing only in case or spacing, several morning ratings on
one day, rows after withdrawal) are vectorised pandas operations. Every problem is collected;
nothing is loaded when any rule is broken. Validation does not depend on the analysis
configuration.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rehabstats.constants import data_schema_dir
from rehabstats.data.columnar import (
    arrow_text,
    categorical_text,
    may_need_strip,
    positions_in,
    release_unused_memory,
)
from rehabstats.errors import Note, Problem, ValidationReport

if TYPE_CHECKING:
    import pandera.pandas

__all__ = [
    "DATE_COLUMNS",
    "LABEL_COLUMNS",
    "OPTIONAL_TABLES",
    "REQUIRED_TABLES",
    "TABLES",
    "FieldSpec",
    "TableSpec",
    "contract_markdown",
    "table_spec",
    "today_anywhere",
    "validate_tables",
]


@cache
def _datapackage() -> dict:
    return json.loads((data_schema_dir() / "datapackage.json").read_text())


TABLES: tuple[str, ...] = tuple(r["name"] for r in _datapackage()["resources"])
REQUIRED_TABLES: tuple[str, ...] = tuple(
    r["name"] for r in _datapackage()["resources"] if r.get("required")
)
OPTIONAL_TABLES: tuple[str, ...] = tuple(t for t in TABLES if t not in REQUIRED_TABLES)


@dataclass(frozen=True)
class FieldSpec:
    """One column of a table schema."""

    name: str
    type: str
    required: bool
    enum: tuple | None
    description: str


@dataclass(frozen=True)
class TableSpec:
    """One table of the data contract, read from its Frictionless Table Schema."""

    name: str
    path: Path
    fields: tuple[FieldSpec, ...]
    foreign_keys: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def required_columns(self) -> list[str]:
        return [f.name for f in self.fields if f.required]


@cache
def table_spec(name: str) -> TableSpec:
    """Read the schema of table ``name`` from ``data_schema/``."""
    resource = next(r for r in _datapackage()["resources"] if r["name"] == name)
    path = data_schema_dir() / resource["schema"]
    raw = json.loads(path.read_text())
    fields = tuple(
        FieldSpec(
            name=f["name"],
            type=f["type"],
            required=bool(f.get("constraints", {}).get("required", False)),
            enum=tuple(f["constraints"]["enum"]) if "enum" in f.get("constraints", {}) else None,
            description=f.get("description", ""),
        )
        for f in raw["fields"]
    )
    fks = [fk["fields"] for fk in raw.get("foreignKeys", [])]
    flat = tuple(c for f in fks for c in ([f] if isinstance(f, str) else f))
    return TableSpec(name=name, path=path, fields=fields, foreign_keys=flat)


DATE_COLUMNS: dict[str, str] = {
    "sessions": "session_date",
    "pain": "recorded_on",
    "visa_a": "assessed_on",
    "function_tests": "assessed_on",
    "events": "event_date",
    "running": "run_date",
}
"""The date column of each child table (the one compared with ``enrolled_on``)."""


@cache
def _pandera_schema(name: str) -> pandera.pandas.DataFrameSchema:
    """pandera schema for the per-column constraints of table ``name``.

    The Frictionless constraints map one to one onto pandera checks, as
    :func:`pandera.io.pandas_io.from_frictionless_schema` maps them (``required`` → not
    nullable, ``unique``, ``enum`` → ``isin``, ``minimum``/``maximum`` → ``in_range``, ``ge``,
    ``le``; a test holds the two equal). It is built directly because going through
    ``frictionless`` costs about 2 s of imports in every process (its descriptor validation
    loads jsonschema's format grammars), paid again by every report kernel. Types are parsed
    beforehand (see :func:`_parse_column`), so there are no dtype checks or coercion here; extra
    columns are allowed (kept and ignored, as the contract says). pandera is imported here, by
    the first table with a suspect column (:func:`_check_constraints`), not by every process
    that validates a cohort.
    """
    import pandera.pandas as pa

    raw = json.loads(table_spec(name).path.read_text())
    columns = {}
    for field_ in raw["fields"]:
        c = field_.get("constraints", {})
        checks = []
        if "enum" in c:
            checks.append(pa.Check.isin(c["enum"]))
        if "minimum" in c and "maximum" in c:
            checks.append(pa.Check.in_range(c["minimum"], c["maximum"]))
        elif "minimum" in c:
            checks.append(pa.Check.ge(c["minimum"]))
        elif "maximum" in c:
            checks.append(pa.Check.le(c["maximum"]))
        # Table Schema v2's exclusive bounds (pandera's Frictionless reader predates them)
        if "exclusiveMinimum" in c:
            checks.append(pa.Check.gt(c["exclusiveMinimum"]))
        if "exclusiveMaximum" in c:
            checks.append(pa.Check.lt(c["exclusiveMaximum"]))
        columns[field_["name"]] = pa.Column(
            None,
            checks=checks,
            nullable=not c.get("required", False),
            unique=bool(c.get("unique", False)),
            required=False,
            coerce=False,
        )
    return pa.DataFrameSchema(columns, strict=False, coerce=False)


# --------------------------------------------------------------------------------------------
# Parsing


def _text(values: pd.Series) -> pd.Series:
    """Values as text for error messages (missing -> empty string)."""
    return values.astype("object").where(values.notna(), "").astype(str)


_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
"""Control characters not allowed in a value: C0 controls and DEL, except tab, CR and LF."""
_NOT_CONTROL = bytes(b for b in range(256) if not (b < 32 and b not in (9, 10, 13) or b == 127))

_MAX_DIGITS = 15
"""Whole numbers have at most 15 digits: every such number is exact in a float64."""


def _maybe_control(values: pd.Series) -> bool:
    """Cheap screen for control characters: False means there are none.

    Arrow-backed text is screened on its raw bytes (one pass, no per-value work); other
    columns are searched value by value.
    """
    array = values.array
    if hasattr(array, "__arrow_array__"):
        chunked = array.__arrow_array__()
        chunks = getattr(chunked, "chunks", [chunked])
        for chunk in chunks:
            buffers = chunk.buffers()
            if len(buffers) < 3 or buffers[2] is None:
                continue
            if buffers[2].to_pybytes().translate(None, _NOT_CONTROL):
                return True
        return False
    return True


def _control_mask(values: pd.Series) -> pd.Series | None:
    """True where a text value holds a control character; ``None`` when none does."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = pd.Series(values.cat.categories.astype("str"), dtype="str")
        has = categories.str.contains(_CONTROL, regex=True).to_numpy(dtype=bool)
        if not has.any():
            return None
        codes = values.cat.codes.to_numpy()
        return pd.Series(np.where(codes >= 0, has[codes], False), index=values.index)
    if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
        return None
    text = values.astype("str") if values.dtype == object else values
    if not _maybe_control(text):
        return None
    found = text.str.contains(_CONTROL, regex=True).fillna(False).astype(bool) & values.notna()
    return found if found.any() else None


_Issue = tuple[pd.Series, str, str]
"""A mask of values breaking a rule, the rule and its kind (see ``errors.PROBLEM_KINDS``)."""


def _parse_column(values: pd.Series, spec: FieldSpec) -> tuple[pd.Series, pd.Series, list[_Issue]]:
    """Parse one raw column to its contract dtype.

    Returns the parsed column, a boolean mask of values that could not be parsed, and the
    issues found (mask, rule, kind). Text input (CSV) is parsed strictly; typed input (Parquet,
    XLSX, DataFrames) is checked for a compatible dtype. Nothing is rounded or guessed. A value
    holding a control character is reported as such, not under its type rule.
    """
    control = _control_mask(values)
    issues: list[_Issue] = []
    if control is not None:
        issues.append((control, "must not contain control characters", "control"))
    parsed, bad, rules = _parse_values(values, spec)
    for mask, text in rules:
        if control is not None:
            mask = mask & ~control
        if mask.any():
            issues.append((mask, text, "type"))
    return parsed, (bad if control is None else bad | control), issues


def _parse_values(
    values: pd.Series, spec: FieldSpec
) -> tuple[pd.Series, pd.Series, list[tuple[pd.Series, str]]]:
    kind = spec.type
    is_text = pd.api.types.is_string_dtype(values) or values.dtype == object
    present = values.notna()
    no = pd.Series(False, index=values.index)
    if kind == "string":
        if pd.api.types.is_integer_dtype(values):  # e.g. numeric ids read from XLSX: lossless
            values = values.astype("Int64").astype("str")
        elif pd.api.types.is_float_dtype(values) and not isinstance(
            values.dtype, pd.CategoricalDtype
        ):
            # numeric ids of a spreadsheet column with a blank cell arrive as floats
            whole = present & np.isfinite(values) & values.eq(np.round(values))
            if (present & ~whole).any():
                bad = present & ~whole
                empty = pd.Series(pd.NA, index=values.index, dtype="str")
                return empty, bad, [(bad, "must be text")]
            values = values.astype("Int64").astype("str")
        elif not is_text:
            bad = present.copy()
            empty = pd.Series(pd.NA, index=values.index, dtype="str")
            return empty, bad, [(bad, "must be text")]
        if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) not in (
            "string",
            "empty",
        ):
            # cells of a spreadsheet or values of a DataFrame: numbers and dates read as text,
            # anything else (lists, bytes, objects) is not text and is never stringified
            odd = (
                pd.Series(
                    [v is not None and not isinstance(v, _TEXT_LIKE) for v in values.to_numpy()],
                    index=values.index,
                )
                & present
            )
            if odd.any():
                empty = pd.Series(pd.NA, index=values.index, dtype="str")
                return empty, odd, [(odd, "must be text")]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = categorical_text(values)  # decoded by Arrow, no object per row
        elif values.dtype != "str":
            values = values.astype("str")  # missing values stay missing
        if not may_need_strip(values):
            return values, no, []  # nothing to strip and no empty value: kept (no copy)
        parsed = values.str.strip()
        blank = parsed.eq("")
        if blank.any():
            parsed = parsed.mask(blank)
        return parsed, no, []
    if kind == "date":
        if values.dtype == "datetime64[ns]" and _whole_days_only(values):
            return values, no, []  # typed and valid: kept as it is (no copy)
        if pd.api.types.is_datetime64_any_dtype(values):
            return _whole_days(values, present)
        if is_text and values.dtype != object:
            fast = _valid_dates_from_text(values)
            if fast is not None:
                return fast, no, []
        if values.dtype == object:
            stamps = pd.Series(
                [_is_datetime_like(v) for v in values.to_numpy()], index=values.index, dtype=bool
            )  # object columns come from spreadsheets and in-memory tables: small
            if stamps.any():  # a spreadsheet column of date cells and text cells
                moments = pd.to_datetime(values.where(stamps), errors="coerce")
                whole, bad_day, rule_day = _whole_days(moments, stamps)
                text, bad_text, rule_text = _parse_values(values.mask(stamps), spec)
                parsed = whole.where(stamps, text)
                return parsed, bad_day | bad_text, rule_day + rule_text
        text = values.astype("str").where(present).str.strip()
        iso = text.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)
        parsed = pd.to_datetime(text.where(iso), format="%Y-%m-%d", errors="coerce")
        parsed, beyond = _in_ns_range(parsed)
        bad = present & parsed.isna()
        return (
            parsed,
            bad,
            [(bad & ~beyond, "must be an ISO date YYYY-MM-DD"), (beyond, _DATE_RANGE)],
        )
    # number / integer: plain numpy from here (one Series at the end: cheap on many columns)
    if not is_text:
        fast = _valid_typed_numbers(values, integer=kind == "integer", required=spec.required)
        if fast is not None:
            return fast, no, []
    present_np = present.to_numpy(dtype=bool)
    too_large = np.zeros(len(values), dtype=bool)
    if is_text:
        number, ok, too_large = _numbers_from_text(values, integer=kind == "integer")
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        number = values.to_numpy(dtype="float64", na_value=np.nan)
        too_large = present_np & np.isinf(number)
    else:
        bad = present.copy()
        return pd.Series(np.nan, index=values.index), bad, [(bad, f"must be a {kind}")]
    finite = np.isfinite(number)
    large_rule = (
        f"must be a whole number of at most {_MAX_DIGITS} digits (too large)"
        if kind == "integer"
        else "must be a finite number (too large)"
    )
    index = values.index
    if kind == "integer":
        # beyond 15 digits a float64 no longer holds every whole number exactly
        with np.errstate(invalid="ignore"):
            too_large |= present_np & finite & (np.abs(number) >= 10**_MAX_DIGITS)
        finite &= ~too_large
        whole = finite & (number == np.round(number))
        bad_np = present_np & ~whole
        number = np.where(whole, number, np.nan)
        bad = pd.Series(bad_np, index=index)
        issues = [
            (pd.Series(bad_np & ~too_large, index=index), "must be a whole number"),
            (pd.Series(too_large, index=index), large_rule),
        ]
        if spec.required and not np.isnan(number).any():
            return pd.Series(number.astype("int64"), index=index), bad, issues
        return pd.Series(number, index=index), bad, issues
    bad_np = present_np & ~finite
    return (
        pd.Series(np.where(finite, number, np.nan), index=index),
        pd.Series(bad_np, index=index),
        [
            (pd.Series(bad_np & ~too_large, index=index), "must be a number"),
            (pd.Series(too_large, index=index), large_rule),
        ],
    )


_DAY_NS = 86_400_000_000_000


def _whole_days_only(values: pd.Series) -> bool:
    """Whether a ``datetime64[ns]`` column holds whole days only (missing allowed)."""
    stamps = values.to_numpy().view(np.int64)
    return not np.any((stamps % _DAY_NS != 0) & (stamps != np.iinfo(np.int64).min))


def _valid_dates_from_text(values: pd.Series) -> pd.Series | None:
    """Text dates when every one is a valid ISO date in the ``datetime64[ns]`` range; else None.

    The happy path in Arrow (one regular expression and one strict cast over the buffers);
    any other column goes the general way (:func:`_parse_values`), which names each value.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(arrow_text(values))
    iso = pc.match_substring_regex(trimmed, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    if pc.any(pc.invert(iso)).as_py():  # nulls (missing values) are skipped
        return None
    try:
        days = pc.cast(trimmed, pa.date32())  # strict: 2024-02-30 fails
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    # days since 1970 (a year 0 has no Python date)
    first, last = (x.as_py() for x in pc.min_max(days.cast(pa.int32())).values())
    epoch = pd.Timestamp("1970-01-01")
    lowest, highest = ((d - epoch).days for d in (_FIRST_DAY, _LAST_DAY))
    if first is not None and (first < lowest or last > highest):
        return None
    stamps = days.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False)
    return pd.Series(stamps, index=values.index)


def _valid_typed_numbers(values: pd.Series, *, integer: bool, required: bool) -> pd.Series | None:
    """A typed numeric column (Parquet) when every value is valid, without a copy where it can
    be kept as it is; None when a value breaks a type rule (the general path names it)."""
    dtype = values.dtype
    if dtype == np.float64:
        array = values.to_numpy()
        if np.isinf(array).any():
            return None
        if not integer:
            return values
        with np.errstate(invalid="ignore"):
            whole = (array == np.round(array)) & (np.abs(array) < 10**_MAX_DIGITS)
        missing = np.isnan(array)
        if not (whole | missing).all():
            return None
        return values.astype("int64") if required and not missing.any() else values
    if dtype == np.int64:
        array = values.to_numpy()
        if integer and not ((array > -(10**_MAX_DIGITS)) & (array < 10**_MAX_DIGITS)).all():
            return None
        return values if integer and required else values.astype("float64")
    return None


_INTEGER = r"^[+-]?[0-9]+$"
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def _numbers_from_text(values: pd.Series, *, integer: bool) -> tuple[np.ndarray, ...]:
    """Text to float64, strictly (Arrow compute: no Python work per value).

    Returns the numbers (NaN where missing or not a number), a mask of well-formed values and a
    mask of values too large (integers beyond 15 digits, numbers beyond float64).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    text = values if pd.api.types.is_string_dtype(values) else values.astype("str")
    arrow = text.array.__arrow_array__() if hasattr(text.array, "__arrow_array__") else None
    if arrow is None:
        arrow = pa.array(text.astype(object).where(text.notna(), None), type=pa.string())
    trimmed = pc.utf8_trim_whitespace(arrow)
    ok = pc.fill_null(pc.match_substring_regex(trimmed, _INTEGER if integer else _NUMBER), False)
    if integer:
        digits = pc.utf8_length(pc.utf8_ltrim(pc.utf8_ltrim(trimmed, "+-"), "0"))
        long = pc.fill_null(pc.greater(digits, _MAX_DIGITS), False)
        ok_np, too_large = _bools(ok), _bools(long)
        ok_np &= ~too_large
        ok = pa.chunked_array([pa.array(ok_np)]) if isinstance(ok, pa.ChunkedArray) else ok_np
    number = pc.cast(pc.if_else(ok, trimmed, pa.scalar(None, pa.string())), pa.float64())
    number_np = _floats(number)
    ok_np = _bools(ok)
    if not integer:
        too_large = ok_np & np.isinf(number_np)
    return number_np, ok_np, too_large


def _bools(array: object) -> np.ndarray:
    import pyarrow as pa

    if isinstance(array, np.ndarray):
        return array.astype(bool)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.to_numpy(zero_copy_only=False).astype(bool)


def _floats(array: object) -> np.ndarray:
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.to_numpy(zero_copy_only=False).astype("float64")


_FIRST_DAY = pd.Timestamp.min.ceil("D")
_LAST_DAY = pd.Timestamp.max.floor("D")
_DATE_RANGE = (
    f"must be a date between {_FIRST_DAY.date()} and {_LAST_DAY.date()} (a placeholder such "
    "as 9999-12-31 is not a missing value: leave the cell empty)"
)


def _in_ns_range(parsed: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Dates as ``datetime64[ns]``; those beyond its range (years before 1678 or after 2261)
    become missing, and are flagged."""
    moments = parsed.to_numpy()
    if moments.dtype == "datetime64[ns]":
        return parsed, pd.Series(False, index=parsed.index)
    first = np.datetime64(_FIRST_DAY.date().isoformat(), "D")
    last = np.datetime64(_LAST_DAY.date().isoformat(), "D")
    beyond = ~np.isnat(moments) & ((moments < first) | (moments > last))
    if beyond.any():
        moments = np.where(beyond, np.datetime64("NaT"), moments)
    return (
        pd.Series(moments.astype("datetime64[ns]"), index=parsed.index),
        pd.Series(beyond, index=parsed.index),
    )


_TEXT_LIKE = (str, int, float, np.integer, np.floating)


def _is_datetime_like(value: object) -> bool:
    import datetime

    return isinstance(value, (datetime.date, np.datetime64))


def _whole_days(values: pd.Series, present: pd.Series) -> tuple[pd.Series, pd.Series, list]:
    parsed = values.dt.tz_localize(None) if values.dt.tz is not None else values
    parsed, beyond = _in_ns_range(parsed)
    bad = present & parsed.ne(parsed.dt.normalize()) & ~beyond
    return (
        parsed.mask(bad),
        bad | beyond,
        [(bad, "must be a date without a time of day"), (beyond, _DATE_RANGE)],
    )


# --------------------------------------------------------------------------------------------
# Rules


_CHECK_TEXT = {
    "not_nullable": "required: must not be empty",
    "field_uniqueness": "must be unique",
}


def _rule_text(check: str, column: str, spec: TableSpec) -> str:
    if check in _CHECK_TEXT:
        return _CHECK_TEXT[check]
    if check.startswith("isin"):
        field_ = next(f for f in spec.fields if f.name == column)
        allowed = ", ".join(str(v) for v in field_.enum or ())
        return f"must be one of: {allowed}"
    if check.startswith("in_range"):
        lo, hi = check[len("in_range(") : -1].split(", ")
        return f"must be between {lo} and {hi}"
    if check.startswith("greater_than_or_equal_to"):
        return f"must be >= {check[len('greater_than_or_equal_to(') : -1]}"
    if check.startswith("less_than_or_equal_to"):
        return f"must be <= {check[len('less_than_or_equal_to(') : -1]}"
    if check.startswith("greater_than("):
        return f"must be > {check[len('greater_than(') : -1]}"
    if check.startswith("less_than("):
        return f"must be < {check[len('less_than(') : -1]}"
    return check


def _rule_code(check: str) -> str:
    if check == "not_nullable":
        return "required"
    if check == "field_uniqueness":
        return "unique"
    if check.startswith("isin"):
        return "enum"
    return "range"


class _Rows:
    """The reported row of each record position of a table.

    ``numbering`` is an offset added to the 0-based position (2 when the header is line 1 and
    no line is blank), or a function returning the row of every record -- e.g. the lines of a
    CSV file with blank lines or quoted line breaks -- called only when a problem is reported,
    so that a valid table never pays for it.
    """

    def __init__(self, n: int, numbering: int | Callable[[], np.ndarray] = 1):
        self._n = n
        self._numbering = numbering
        self._rows: np.ndarray | None = None

    def _all(self) -> np.ndarray:
        if self._rows is None:
            if callable(self._numbering):
                rows = np.asarray(self._numbering(), dtype=np.int64)
                if rows.shape != (self._n,):
                    raise ValueError(f"{rows.shape[0]} row numbers for {self._n} records")
            else:
                rows = np.arange(self._n, dtype=np.int64) + int(self._numbering)
            self._rows = rows
        return self._rows

    def __getitem__(self, key: object) -> np.ndarray:
        return self._all()[key]


def _problems_at(
    table: str,
    rows: _Rows | np.ndarray,
    mask: pd.Series,
    column: str | None,
    values: pd.Series,
    rule: str,
    code: str = "",
) -> list[Problem]:
    """Problems for every True of ``mask`` (vectorised selection, one object per problem)."""
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    if idx.size == 0:
        return []
    texts = _text(values.iloc[idx]).tolist()
    return [
        Problem(table, int(r), column, v, rule, code)
        for r, v in zip(rows[idx].tolist(), texts, strict=True)
    ]


def _normal(name: object) -> str:
    """A column name reduced for comparison: lower case, runs of other characters -> ``_``."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def _unnamed(name: object) -> bool:
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return True
    text = str(name).strip()
    return text == "" or re.fullmatch(r"Unnamed: \d+(_level_\d+)?", text) is not None


def _close_match(column: str, names: list[str]) -> str | None:
    """The name in ``names`` that looks like ``column`` (case, spacing, a typo), if any."""
    target = _normal(column)
    squeezed = target.replace("_", "")
    best, best_score = None, 0.0
    for name in names:
        candidate = _normal(name)
        if candidate == target or candidate.replace("_", "") == squeezed:
            return name
        score = difflib.SequenceMatcher(None, candidate, target).ratio()
        if score >= 0.8 and score > best_score:
            best, best_score = name, score
    return best


def _check_header(
    name: str, frame: pd.DataFrame, report: ValidationReport
) -> tuple[pd.DataFrame, set[str]]:
    """Problems of the header of a table: duplicated, unnamed and missing columns.

    Returns the table without its unusable columns (repeated names, unnamed columns -- those
    holding no value are dropped without a word, as a trailing separator makes them) and the
    contract columns that cannot be used (missing when required, or repeated).
    """
    spec = table_spec(name)
    labels = list(frame.columns)
    keep = np.ones(len(labels), dtype=bool)
    broken: set[str] = set()
    positions: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        if _unnamed(label):
            keep[i] = False
            column = frame.iloc[:, i]
            filled = column.notna() & column.astype("str").str.strip().ne("")
            if filled.any():
                first = _text(column[filled].iloc[:1]).iat[0]
                report.problems.append(
                    Problem(
                        name,
                        None,
                        None,
                        first,
                        f"column {i + 1} holds values but has no name in the header: "
                        "name it or delete it",
                        "column",
                    )
                )
            continue
        positions.setdefault(str(label), []).append(i)
    for label, where in positions.items():
        if len(where) > 1:
            keep[where] = False
            if label in spec.columns:
                broken.add(label)
            places = " and ".join(str(i + 1) for i in where)
            report.problems.append(
                Problem(
                    name,
                    None,
                    label,
                    label,
                    f"column name appears {len(where)} times in the header (columns {places}): "
                    "keep one column of each name",
                    "column",
                )
            )
    named = [label for label in positions if len(positions[label]) == 1]
    extras = [label for label in named if label not in spec.columns]
    for column in spec.columns:
        if column not in positions:
            continue
        twins = [e for e in extras if _normal(e) == _normal(column)]
        for twin in twins:
            report.problems.append(
                Problem(
                    name,
                    None,
                    column,
                    twin,
                    f"column `{twin}` (column {positions[twin][0] + 1}) looks like `{column}` "
                    f"(column {positions[column][0] + 1}): remove or rename one",
                    "column",
                )
            )
    for column in spec.columns:
        if column in positions:
            continue
        match = _close_match(column, extras)
        if column in spec.required_columns:
            broken.add(column)
            rule = "required column is missing from the table"
            if match is not None:
                rule += f"; did you mean `{match}`? rename it to `{column}`"
        elif match is not None:
            broken.add(column)
            rule = (
                f"column `{match}` looks like the optional column `{column}`, which is absent: "
                f"rename it to `{column}` (as it is, its values would be ignored)"
            )
        else:
            continue
        report.problems.append(Problem(name, None, column, match or "", rule, "column"))
    if not any(not _unnamed(label) for label in labels) and len(frame):
        report.problems.append(
            Problem(name, None, None, "", "the first line must be the header", "column")
        )
    if keep.all():
        return frame, broken
    return frame.iloc[:, np.flatnonzero(keep)], broken


def _parse_table(
    name: str,
    frame: pd.DataFrame,
    rows: _Rows,
    broken: set[str],
    report: ValidationReport,
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Parse every contract column; returns the parsed table and masks of unparsable cells
    (by column).

    A contract column that is absent (optional) or unusable (``broken``: missing or repeated)
    is all-missing in the parsed table.
    """
    spec = table_spec(name)
    parsed = {}
    unparsable = {}
    for field_ in spec.fields:
        if field_.name not in frame.columns or field_.name in broken:
            empty = pd.Series(pd.NA, index=frame.index, dtype="object")
            values, _, _ = _parse_column(empty, field_)
            parsed[field_.name] = values
            continue
        values, bad, issues = _parse_column(frame[field_.name], field_)
        for mask, rule, code in issues:
            report.problems.extend(
                _problems_at(name, rows, mask, field_.name, frame[field_.name], rule, code)
            )
        parsed[field_.name] = values
        unparsable[field_.name] = bad
    extras = [c for c in frame.columns if c not in parsed]
    # copy=False: one block per column, no copy (valid typed columns are the source's arrays)
    out = pd.DataFrame(parsed, index=frame.index, copy=False)
    if extras:
        out = pd.concat([out, frame[extras]], axis=1)
    return out, unparsable


def _check_constraints(
    name: str,
    raw: pd.DataFrame,
    frame: pd.DataFrame,
    unparsable: Mapping[str, pd.Series],
    rows: _Rows,
    usable: list[str],
    report: ValidationReport,
) -> None:
    """Per-column constraints (required, enum, range, unique) through pandera, lazily.

    pandera runs on the columns a vectorised screen finds breaking a constraint (it reports
    them); a column the screen clears is not passed through it (a cost of milliseconds per
    column that dominated the validation of small tables).
    """
    spec = table_spec(name)
    suspects = [c for c in usable if _may_break(frame[c], _constraints(name)[c])]
    if not suspects:
        return
    schema = _pandera_schema(name)
    from pandera.errors import SchemaErrors

    try:
        schema.validate(frame[suspects], lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        cases = cases[cases["index"].notna() & cases["column"].notna()]
        for case in cases.itertuples(index=False):
            position = frame.index.get_loc(case.index)
            column = str(case.column)
            if column in unparsable and bool(unparsable[column].iat[position]):
                continue  # already reported as a type problem
            # the value as it stands in the source, not as parsed
            source = raw[column] if column in raw.columns else frame[column]
            value = _text(source.iloc[[position]]).iat[0]
            report.problems.append(
                Problem(
                    name,
                    int(rows[position]),
                    column,
                    value,
                    _rule_text(case.check, column, spec),
                    _rule_code(str(case.check)),
                )
            )


@cache
def _constraints(name: str) -> dict[str, dict]:
    """The Frictionless constraints of every column of table ``name``."""
    raw = json.loads(table_spec(name).path.read_text())
    return {f["name"]: f.get("constraints", {}) for f in raw["fields"]}


_SCREENED = frozenset(
    {"enum", "unique", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
)
"""The constraints :func:`_may_break` screens besides ``required``."""


def _may_break(values: pd.Series, constraints: Mapping) -> bool:
    """Whether a parsed column breaks any of its constraints (a superset of pandera's cases)."""
    screened = not _SCREENED.isdisjoint(constraints)
    if not screened and not constraints.get("required"):
        return False
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "fiM":
        # numbers and dates: on the array (a small table's column costs microseconds, not the
        # tens of a pandas operation each)
        return _may_break_array(values.to_numpy(), constraints, screened=screened)
    present = values.notna()
    complete = bool(present.all())
    if constraints.get("required") and not complete:
        return True
    if not screened:
        return False
    known = values if complete else values[present]
    if constraints.get("unique") and known.duplicated().any():
        return True
    if "enum" in constraints and not known.isin(constraints["enum"]).all():
        return True
    return _out_of_bounds(known, constraints)


def _may_break_array(array: np.ndarray, constraints: Mapping, *, screened: bool) -> bool:
    """:func:`_may_break` of a float, integer or datetime64 column's values."""
    kind = array.dtype.kind
    missing = np.isnan(array) if kind == "f" else np.isnat(array) if kind == "M" else None
    has_missing = missing is not None and bool(missing.any())
    if constraints.get("required") and has_missing:
        return True
    if not screened:
        return False
    known = array[~missing] if has_missing else array
    if constraints.get("unique") and np.unique(known).size != known.size:
        return True
    if "enum" in constraints and not np.isin(known, constraints["enum"]).all():
        return True
    return _out_of_bounds(known, constraints)


def _out_of_bounds(known: pd.Series | np.ndarray, constraints: Mapping) -> bool:
    """Whether a value present (a Series or an array of them) breaks a bound of its column."""
    if "minimum" in constraints and (known < constraints["minimum"]).any():
        return True
    if "exclusiveMinimum" in constraints and (known <= constraints["exclusiveMinimum"]).any():
        return True
    if "exclusiveMaximum" in constraints and (known >= constraints["exclusiveMaximum"]).any():
        return True
    return "maximum" in constraints and bool((known > constraints["maximum"]).any())


def _check_cross_table(
    raws: Mapping[str, pd.DataFrame],
    tables: Mapping[str, pd.DataFrame],
    rows: Mapping[str, _Rows],
    broken: Mapping[str, set[str]],
    report: ValidationReport,
) -> None:
    """Foreign keys, dates against enrolment and withdrawal, and the VISA-A item rules.

    A rule is checked only where its columns could be read: a missing or repeated column is
    reported once (by :func:`_check_header`), not again as the rows it would break.

    Every child table's date must be on or after the participant's ``enrolled_on``, except a
    VISA-A's: a baseline questionnaire is often completed before enrolment (at screening),
    and which assessment is the baseline is an analysis choice, ``baseline_window_days`` of
    the analysis configuration, applied by :func:`rehabstats.metrics.visa.visa_a_visits`
    (which notes the assessments dated before the window). Validation does not depend on the
    analysis configuration: the same folder is valid for every analysis.
    """
    participants = tables["participants"]
    usable = {name: set(table_spec(name).columns) - broken[name] for name in TABLES}
    if {"enrolled_on", "withdrawn_on"} <= usable["participants"]:
        withdrawn_early = participants["withdrawn_on"] < participants["enrolled_on"]
        report.problems.extend(
            _problems_at(
                "participants",
                rows["participants"],
                withdrawn_early,
                "withdrawn_on",
                raws["participants"]["withdrawn_on"],
                "must not be before enrolled_on",
                "date_order",
            )
        )
    _check_visa_items(
        raws.get("visa_a"), tables.get("visa_a"), rows.get("visa_a"), usable["visa_a"], report
    )
    enrolled = (
        participants.dropna(subset=["participant_id"])
        .drop_duplicates("participant_id")
        .set_index("participant_id")
    )
    if "participant_id" not in usable["participants"] or enrolled.empty:
        # no participant to refer to: the problems of participants say why; every child row
        # would otherwise be reported again as an orphan
        return
    ids = pd.Index(enrolled.index)
    # by code, with NaT at position -1 (rows of no participant): one gather, no masks
    nat = np.array(["NaT"], dtype="datetime64[ns]")
    enrol_by_code = np.concatenate([enrolled["enrolled_on"].to_numpy("datetime64[ns]"), nat])
    withdrawn_by_code = np.concatenate([enrolled["withdrawn_on"].to_numpy("datetime64[ns]"), nat])
    for name, date_col in DATE_COLUMNS.items():
        table = tables.get(name)
        if table is None or table.empty or "participant_id" not in usable[name]:
            continue
        # one categorical over the participants' ids: the codes serve every lookup below and
        # the loaded Cohort keeps it (no second pass over millions of strings)
        codes = positions_in(table["participant_id"], ids)  # -1: not a participant
        table["participant_id"] = pd.Categorical.from_codes(codes, categories=ids)
        orphan = raws[name]["participant_id"].notna().to_numpy() & (codes < 0)
        report.problems.extend(
            _problems_at(
                name,
                rows[name],
                orphan,
                "participant_id",
                raws[name]["participant_id"],
                "must exist in participants.participant_id",
                "foreign_key",
            )
        )
        if date_col not in usable[name] or "enrolled_on" not in usable["participants"]:
            continue
        dates = table[date_col].to_numpy("datetime64[ns]")
        if name != "visa_a":  # a VISA-A may precede enrolment: see _check_cross_table
            report.problems.extend(
                _problems_at(
                    name,
                    rows[name],
                    dates < enrol_by_code[codes],
                    date_col,
                    raws[name][date_col],
                    "must not be before the participant's enrolled_on",
                    "date_order",
                )
            )
        after = pd.Series(dates > withdrawn_by_code[codes], index=table.index)
        if after.any():
            report.warnings.append(
                Note(
                    "{table}: {rows} {rows:row|rows} dated after the participant's withdrawn_on "
                    "({people} {people:participant|participants}); {rows:it is|they are} kept in "
                    "the table and excluded from every metric (data after obs_end).",
                    counts={
                        "rows": int(after.sum()),
                        "people": int(table.loc[after, "participant_id"].nunique()),
                    },
                    table=name,
                )
            )


VISA_ITEMS = ("q1", "q2", "q3", "q4", "q5", "q6", "q7")
VISA_Q8 = ("q8a", "q8b", "q8c")


def _check_visa_items(
    raw: pd.DataFrame | None,
    visa: pd.DataFrame | None,
    rows: _Rows | None,
    usable: set[str],
    report: ValidationReport,
) -> None:
    if visa is None or visa.empty or rows is None or raw is None:
        return
    if not {*VISA_ITEMS, *VISA_Q8, "total"} <= usable:
        return  # a repeated or misnamed item column is reported by the header check
    # the parsed items are float64 (missing: NaN); sums left to right, missing items as 0
    items = {c: visa[c].to_numpy(dtype="float64") for c in (*VISA_ITEMS, *VISA_Q8, "total")}
    q8_count = sum((~np.isnan(items[c])).astype(np.int64) for c in VISA_Q8)
    several = q8_count > 1
    if several.any():
        # e.g. "q8a=7; q8b=4": only the answered branches, built column-wise
        q8 = visa[list(VISA_Q8)]
        answered = pd.Series("", index=visa.index)
        for column in VISA_Q8:
            item = (column + "=" + q8[column].map("{:g}".format) + "; ").where(
                q8[column].notna(), ""
            )
            answered = answered + item
        report.problems.extend(
            _problems_at(
                "visa_a",
                rows,
                several,
                "q8a/q8b/q8c",
                answered.str.rstrip("; "),
                "at most one q8 branch (a, b or c) may be answered",
                "consistency",
            )
        )
    complete = (q8_count == 1) & ~np.any([np.isnan(items[c]) for c in VISA_ITEMS], axis=0)

    def item_sum(columns: tuple[str, ...]) -> np.ndarray:
        total = np.zeros(len(visa))
        for column in columns:
            total += np.nan_to_num(items[column], nan=0.0)
        return total

    total = items["total"]
    with np.errstate(invalid="ignore"):
        disagree = complete & (np.abs(item_sum(VISA_ITEMS) + item_sum(VISA_Q8) - total) > 1e-6)
    report.problems.extend(
        _problems_at(
            "visa_a",
            rows,
            disagree,
            "total",
            raw["total"],
            "must equal q1 + ... + q7 + q8 when all items are present",
            "consistency",
        )
    )
    _count_note(
        report,
        ~complete & np.isnan(total),
        "visa_a: {n} {n:assessment has|assessments have} a missing item and no total; "
        "their score is missing (no pro-rating).",
    )


def _count_note(report: ValidationReport, rows: pd.Series, template: str) -> None:
    """A warning counting ``rows`` (``{n}`` in ``template``), when there is any."""
    if rows.any():
        report.warnings.append(Note(template, counts={"n": int(rows.sum())}))


def _check_duplicates(
    tables: Mapping[str, pd.DataFrame], broken: Mapping[str, set[str]], report: ValidationReport
) -> None:
    pain = tables.get("pain")
    if pain is None or pain.empty or {"participant_id", "recorded_on", "timing"} & broken["pain"]:
        return
    is_morning = (pain["timing"] == "morning").to_numpy(dtype=bool, na_value=False)
    who = pain["participant_id"]
    if isinstance(who.dtype, pd.CategoricalDtype) and (who.cat.codes >= 0).all():
        # participants' integer codes: no pass over the strings
        code = who.cat.codes.to_numpy()[is_morning]
        day = pain["recorded_on"].to_numpy(dtype="datetime64[ns]")[is_morning].view(np.int64)
        shared = _repeated_pairs(code, day)
    else:
        morning = pain[is_morning]
        shared = morning.duplicated(["participant_id", "recorded_on"], keep=False)
    _count_note(
        report,
        shared,
        "pain: {n} morning ratings share a participant and day with another morning rating; "
        "the day's morning NRS is their mean.",
    )


def _repeated_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """True where the pair (first, second) occurs more than once (``duplicated(keep=False)``)."""
    order = np.lexsort((second, first))
    a, b = first[order], second[order]
    same = (a[1:] == a[:-1]) & (b[1:] == b[:-1])
    repeated = np.zeros(len(order), dtype=bool)
    repeated[1:] |= same
    repeated[:-1] |= same
    out = np.empty_like(repeated)
    out[order] = repeated
    return out


# --------------------------------------------------------------------------------------------
# Dates against the load date and against each other


def today_anywhere() -> pd.Timestamp:
    """Today's date where it is latest on Earth (UTC+14): the default load date.

    No record can be dated later than this wherever the data were entered, so a later date is
    a typo; a machine in a time zone behind the clinic's does not turn today's diary entries
    into errors.
    """
    return pd.Timestamp((dt.datetime.now(dt.UTC) + dt.timedelta(hours=14)).date())


def _as_load_date(value: str | dt.date | pd.Timestamp | None) -> pd.Timestamp:
    if value is None:
        return today_anywhere()
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value.strip()):
        raise ValueError(f"loaded_on must be an ISO date YYYY-MM-DD, got {value!r}")
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None or stamp != stamp.normalize():
        raise ValueError(f"loaded_on must be a date without a time of day, got {value!r}")
    return stamp


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date_text(values: pd.Series) -> pd.Series:
    """Source values of a date column as text; typed whole-day dates as YYYY-MM-DD."""
    if pd.api.types.is_datetime64_any_dtype(values):
        iso = values.dt.strftime("%Y-%m-%d")
        return _text(iso.where(values.eq(values.dt.normalize()), values.astype("str")))
    return _text(values)


def _date_cells(tables: Mapping[str, pd.DataFrame]) -> list[tuple[str, str, pd.Series]]:
    """(table, column, parsed dates) for every date column of the contract present."""
    return [
        (name, f.name, tables[name][f.name])
        for name in TABLES
        if name in tables
        for f in table_spec(name).fields
        if f.type == "date" and f.name in tables[name]
    ]


def _check_future_dates(
    raws: Mapping[str, pd.DataFrame],
    tables: Mapping[str, pd.DataFrame],
    rows: Mapping[str, _Rows],
    loaded_on: pd.Timestamp,
    report: ValidationReport,
    *,
    default: bool,
) -> None:
    """Dates later than the day the data are loaded cannot be data yet: a problem each."""
    day = loaded_on.date().isoformat()
    rule = (
        f"must not be in the future (after {day}, today in the latest time zone): "
        "a future date is a typo; check the year"
        if default
        else f"must not be after {day}, the day the data were loaded: a future date is a "
        "typo; check the year"
    )
    for name, column, dates in _date_cells(tables):
        late = dates > loaded_on
        if late.any():
            source = _date_text(raws[name][column])
            report.problems.extend(_problems_at(name, rows[name], late, column, source, rule))


OUTLYING_GAP_DAYS = 365
"""A stretch longer than this without any date in the cohort, before its latest dates."""
OUTLYING_MAX_SHARE = 0.01
OUTLYING_MAX_ROWS = 5
"""Dates after such a stretch are outlying when they are at most ``OUTLYING_MAX_ROWS`` or at
most ``OUTLYING_MAX_SHARE`` of all dates (``docs/data.md``, *Dates*)."""
_LISTED = 10
_FEW_DATES = 50_000
"""Up to this many date cells, :func:`_check_outlying_latest_dates` sorts them; beyond, it
counts them per day of the whole date range (a pass over 215,000 days per date column)."""


def _check_outlying_latest_dates(
    raws: Mapping[str, pd.DataFrame],
    tables: Mapping[str, pd.DataFrame],
    rows: Mapping[str, _Rows],
    loaded_on: pd.Timestamp,
    report: ValidationReport,
) -> None:
    """Warn when the latest dates (which set the default data cut-off) stand far beyond the rest.

    The cohort's distinct dates are sorted; at the first gap longer than
    :data:`OUTLYING_GAP_DAYS` beyond which lie at most ``max(OUTLYING_MAX_ROWS,
    OUTLYING_MAX_SHARE × all dates)`` dates, those dates are named (table, line, column,
    value). Dates after the load date are problems already and left out.
    """
    cells = _date_cells(tables)
    limit = loaded_on.to_datetime64()
    values = [c.to_numpy(dtype="datetime64[ns]") for _, _, c in cells]

    def days_of(v: np.ndarray) -> np.ndarray:  # day numbers of the dates up to the load date
        day = v.view(np.int64)[~np.isnat(v) & (v <= limit)]
        day //= _DAY_NS
        return day

    if sum(v.size for v in values) <= _FEW_DATES:  # a sort of a few dates
        days = [days_of(v) for v in values] or [np.empty(0, dtype=np.int64)]
        distinct, per_distinct = np.unique(np.concatenate(days), return_counts=True)
    else:  # dates per day of the datetime64[ns] range (about 215,000 days): a count, no sort
        first = _FIRST_DAY.value // _DAY_NS
        per_day = np.zeros((_LAST_DAY.value // _DAY_NS) - first + 1, dtype=np.int64)
        for v in values:
            day = days_of(v)
            day -= first
            per_day += np.bincount(day, minlength=per_day.size)
            del day
        distinct = np.flatnonzero(per_day) + first
        per_distinct = per_day[distinct - first]
    n_dates = int(per_distinct.sum())
    if n_dates < 2:
        return
    up_to = np.cumsum(per_distinct)  # dates on or before each distinct day
    allowed = max(OUTLYING_MAX_ROWS, OUTLYING_MAX_SHARE * n_dates)
    for i in np.flatnonzero(np.diff(distinct) > OUTLYING_GAP_DAYS):
        if n_dates - int(up_to[i]) <= allowed:
            break
    else:
        return
    before = distinct[i]
    # the dates after the gap (and not after the load date), the latest first
    after = np.datetime64(int(before), "D")
    hits = [np.flatnonzero((v > after) & (v <= limit)) for v in values]
    cell = np.concatenate([np.full(h.size, k) for k, h in enumerate(hits)])
    position = np.concatenate(hits)
    day = np.concatenate(
        [v[h].astype("datetime64[D]").astype("int64") for v, h in zip(values, hits, strict=True)]
    )
    late = np.lexsort((position, cell, -day))
    listed = []
    for j in late[:_LISTED]:  # at most _LISTED rows named
        k, at = int(cell[j]), int(position[j])
        name, column, _ = cells[k]
        value = _date_text(raws[name][column].iloc[[at]]).iat[0]
        listed.append(f"{name} line {int(rows[name][at])} {column} {value}")
    more = len(late) - len(listed)
    as_date = lambda d: str(np.datetime64(int(d), "D"))  # noqa: E731
    report.warnings.append(
        Note(
            "Outlying latest dates ({n}), more than {gap} days after every other date of the "
            "cohort (the latest of the others is {before}), set the default data cut-off "
            "{latest}: {listed}" + (", and {more} more" if more else "") + ". A date this "
            "far beyond the rest is likely a typo: correct it, or analyse at an explicit data "
            "cut-off (--data-cutoff); otherwise every participant's follow-up runs to "
            "{latest}.",
            counts={"n": int(len(late)), **({"more": int(more)} if more else {})},
            gap=OUTLYING_GAP_DAYS,
            before=as_date(before),
            latest=as_date(distinct[-1]),
            listed="; ".join(listed),
        )
    )


LABEL_COLUMNS: dict[str, str] = {"site": "sites", "arm": "arms", "withdrawal_reason": "reasons"}
"""Participant label columns that reports group or tabulate by, with what their values are."""


def _label_key(values: pd.Series) -> pd.Series:
    """Labels compared without case and with any run of blanks as one space."""
    return values.str.replace(r"\s+", " ", regex=True).str.strip().str.casefold()


def _check_label_variants(tables: Mapping[str, pd.DataFrame], report: ValidationReport) -> None:
    """Warn when labels of one column differ only in case or spacing (``HSR``/``hsr``).

    They stay as they are (nothing is merged or guessed) and are analysed as different groups;
    the note names each variant with the number of participants carrying it.
    """
    people = tables.get("participants")
    if people is None:
        return
    for column, what in LABEL_COLUMNS.items():
        if column not in people:
            continue
        counts = people[column].dropna().astype("str").value_counts(sort=False)
        if len(counts) < 2:
            continue
        keys = _label_key(pd.Series(counts.index, dtype="str")).to_numpy()
        if len(set(keys)) == len(keys):
            continue  # no two labels differ only in case or spacing (the usual case)
        frame = pd.DataFrame({"label": counts.index, "n": counts.to_numpy()})
        frame["key"] = keys
        frame = frame[frame.duplicated("key", keep=False)]
        frame = frame.sort_values(["key", "n", "label"], ascending=[True, False, True])
        for _, group in frame.groupby("key", sort=False):  # one per set of variants (few)
            labels, ns = group["label"].tolist(), group["n"].tolist()
            parts = [f"'{{v{i}}}' ({{n{i}}})" for i in range(len(labels))]
            listing = ", ".join(parts[:-1]) + " and " + parts[-1]
            report.warnings.append(
                Note(
                    f"participants.{column}: {listing} differ only in case or spacing; they are "
                    f"analysed as different {what} — correct the labels in the source.",
                    counts={f"n{i}": int(n) for i, n in enumerate(ns)},
                    **{f"v{i}": label for i, label in enumerate(labels)},
                )
            )


# --------------------------------------------------------------------------------------------
# Entry point


def validate_tables(
    raw: Mapping[str, pd.DataFrame],
    *,
    row_offset: Mapping[str, int | Callable[[], np.ndarray]] | None = None,
    loaded_on: str | dt.date | pd.Timestamp | None = None,
) -> tuple[dict[str, pd.DataFrame], ValidationReport]:
    """Parse and validate the cohort tables against the data contract.

    Parameters
    ----------
    raw : mapping of str to DataFrame
        Tables by name; absent optional tables mean no records. CSV input should be read as text
        (every column ``str``) so that nothing is converted before it is checked.
    row_offset : mapping of str to int or callable, optional
        How a record's 0-based position becomes its reported row: an offset added to it (2 for
        a CSV or XLSX file whose header is line 1 and which has no blank line; 1, the default,
        for Parquet and in-memory tables), or a function returning the row of every record
        (e.g. the lines of a CSV file with blank lines or quoted line breaks), called only if a
        problem is reported.
    loaded_on : str, date or Timestamp, optional
        The day the data are loaded: a date after it is a problem (a typo). Default: today's
        date where it is latest on Earth (:func:`today_anywhere`, UTC+14). It is a plausibility
        bound only, never an analysis date; pass it to reproduce a validation exactly.

    Returns
    -------
    tables : dict of str to DataFrame
        Parsed tables with contract dtypes (text ``str``, enums categorical, dates
        ``datetime64[ns]``, numbers ``float64``, required integers ``int64``, optional integers
        ``float64``); extra columns kept at the end. Only meaningful when ``report.ok``.
    report : ValidationReport
        Every problem (table, row, column, value, rule) and every warning.

    Notes
    -----
    Problems are found in stages (see :data:`rehabstats.errors.PROBLEM_KINDS`): the header of
    each table (missing, misnamed, repeated or unnamed columns), then each value, then the rules
    across rows and tables. A rule is not checked on a column the header check found unusable.
    """
    report = ValidationReport()
    loaded = _as_load_date(loaded_on)
    offsets = dict(row_offset or {})
    unknown = sorted(set(raw) - set(TABLES))
    for name in unknown:
        report.problems.append(
            Problem(
                name,
                None,
                None,
                "",
                f"unknown table; expected one of: {', '.join(TABLES)}",
                "table",
            )
        )
    for name in REQUIRED_TABLES:
        if name not in raw:
            report.problems.append(
                Problem(name, None, None, "", "required table is missing", "table")
            )
    if "participants" in raw and raw["participants"].empty:
        report.problems.append(
            Problem("participants", None, None, "", "must hold at least one participant", "empty")
        )
    tables: dict[str, pd.DataFrame] = {}
    raws: dict[str, pd.DataFrame] = {}
    rows: dict[str, _Rows] = {}
    broken: dict[str, set[str]] = {}
    for name in TABLES:
        frame = raw.get(name)
        if frame is None:
            frame = pd.DataFrame({c: pd.Series(dtype="str") for c in table_spec(name).columns})
        frame = frame.reset_index(drop=True)
        rows[name] = _Rows(len(frame), offsets.get(name, 1))
        frame, broken[name] = _check_header(name, frame, report)
        parsed, unparsable = _parse_table(name, frame, rows[name], broken[name], report)
        usable = [c for c in table_spec(name).columns if c in frame and c not in broken[name]]
        _check_constraints(name, frame, parsed, unparsable, rows[name], usable, report)
        tables[name] = parsed
        # the source values (absent optional columns as empty), for problem messages
        raws[name] = frame.reindex(columns=list(dict.fromkeys([*frame.columns, *parsed.columns])))
    if "participants" in raw:
        _check_cross_table(raws, tables, rows, broken, report)
    _check_future_dates(raws, tables, rows, loaded, report, default=loaded_on is None)
    _check_outlying_latest_dates(raws, tables, rows, loaded, report)
    _check_label_variants(tables, report)
    _check_duplicates(tables, broken, report)
    if not report.ok:
        return tables, report
    tables = {name: _finalise(name, t) for name, t in tables.items()}
    del raws, raw  # the source values: only problem messages needed them
    release_unused_memory()
    return tables, report


def _finalise(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Enums as categoricals with the contract's categories (memory and order)."""
    spec = table_spec(name)
    for field_ in spec.fields:
        if field_.enum is not None and field_.type == "string" and field_.name in frame:
            # validated: every value is one of the enum or missing (-1)
            codes = positions_in(frame[field_.name], list(field_.enum))
            frame[field_.name] = pd.Categorical.from_codes(
                codes, dtype=pd.CategoricalDtype(list(field_.enum))
            )
    return frame


def contract_markdown() -> str:
    """The tables of the data contract as Markdown (kept verbatim in ``docs/data.md``)."""
    resources = {r["name"]: r for r in _datapackage()["resources"]}
    parts = []
    for name in TABLES:
        spec = table_spec(name)
        need = "required" if name in REQUIRED_TABLES else "optional"
        parts.append(f"### {name} ({need})\n\n{resources[name]['description']}\n")
        parts.append("| column | type | required | allowed values | description |")
        parts.append("|---|---|---|---|---|")
        for f in spec.fields:
            allowed = ", ".join(str(v) for v in f.enum) if f.enum else ""
            raw = json.loads(spec.path.read_text())
            constraints = next(x for x in raw["fields"] if x["name"] == f.name).get(
                "constraints", {}
            )
            bounds = [
                f"{sign} {constraints[key]}"
                for key, sign in (
                    ("minimum", "≥"),
                    ("exclusiveMinimum", ">"),
                    ("maximum", "≤"),
                    ("exclusiveMaximum", "<"),
                )
                if key in constraints
            ]
            allowed = allowed or " and ".join(bounds)
            if constraints.get("unique"):
                allowed = (allowed + "; " if allowed else "") + "unique"
            parts.append(
                f"| {f.name} | {f.type} | {'yes' if f.required else ''} | {allowed} | "
                f"{f.description} |"
            )
        parts.append("")
    return "\n".join(parts)
