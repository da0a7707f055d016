"""The data contract: table schemas read from ``data_schema/`` and the validation of a cohort.

The Frictionless Table Schemas in ``data_schema/`` are the single source of truth. Column types
are parsed here (strictly: ISO dates, whole numbers for integers, nothing guessed), the per-column
constraints (required, enum, minimum/maximum, unique) are checked by pandera schemas built with
:func:`pandera.io.pandas_io.from_frictionless_schema`, and the cross-table rules of the contract
(foreign keys, dates not before enrolment, withdrawal after enrolment, VISA-A item rules) are
checked as vectorised pandas operations. Every problem is collected; nothing is loaded when any
rule is broken.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import yaml

from rehabstats.errors import Note, Problem, ValidationReport

__all__ = [
    "DATE_COLUMNS",
    "LABEL_COLUMNS",
    "OPTIONAL_TABLES",
    "REQUIRED_TABLES",
    "TABLES",
    "FieldSpec",
    "TableSpec",
    "contract_markdown",
    "data_schema_dir",
    "table_spec",
    "today_anywhere",
    "validate_tables",
]

_HERE = Path(__file__).resolve().parent


def data_schema_dir() -> Path:
    """Folder holding the Frictionless schemas and the analysis defaults.

    Installed wheels carry it inside the package; a source checkout has it at the top level.
    """
    for candidate in (_HERE / "data_schema", _HERE.parent / "data_schema"):
        if (candidate / "datapackage.json").is_file():
            return candidate
    raise FileNotFoundError("data_schema/datapackage.json not found next to the rehabstats package")


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
def _pandera_schema(name: str) -> pa.DataFrameSchema:
    """pandera schema for the per-column constraints of table ``name``.

    The Frictionless constraints map one to one onto pandera checks, as
    :func:`pandera.io.pandas_io.from_frictionless_schema` maps them (``required`` → not
    nullable, ``unique``, ``enum`` → ``isin``, ``minimum``/``maximum`` → ``in_range``, ``ge``,
    ``le``; a test holds the two equal). It is built directly because going through
    ``frictionless`` costs about 2 s of imports in every process (its descriptor validation
    loads jsonschema's format grammars), paid again by every report kernel. Types are parsed
    beforehand (see :func:`_parse_column`), so there are no dtype checks or coercion here; extra
    columns are allowed (kept and ignored, as the contract says).
    """
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


@cache
def _visa_baseline_earliest_day() -> int:
    defaults = yaml.safe_load((data_schema_dir() / "analysis_defaults.yaml").read_text())
    return int(defaults["baseline_window_days"][0])


# --------------------------------------------------------------------------------------------
# Parsing


def _text(values: pd.Series) -> pd.Series:
    """Values as text for error messages (missing -> empty string)."""
    return values.astype("object").where(values.notna(), "").astype(str)


def _parse_column(values: pd.Series, spec: FieldSpec) -> tuple[pd.Series, pd.Series, str | None]:
    """Parse one raw column to its contract dtype.

    Returns the parsed column, a boolean mask of values that could not be parsed, and the rule
    text for those. Text input (CSV) is parsed strictly; typed input (Parquet, XLSX, DataFrames)
    is checked for a compatible dtype. Nothing is rounded or guessed.
    """
    kind = spec.type
    is_text = pd.api.types.is_string_dtype(values) or values.dtype == object
    present = values.notna()
    if kind == "string":
        if pd.api.types.is_integer_dtype(values):  # e.g. numeric ids read from XLSX: lossless
            values = values.astype("Int64").astype("str")
        elif not is_text:
            bad = present.copy()
            return pd.Series(pd.NA, index=values.index, dtype="str"), bad, "must be text"
        parsed = values.astype("str").where(present)
        parsed = parsed.str.strip()
        blank = present & parsed.eq("")
        parsed = parsed.mask(blank)
        return parsed.astype("str"), pd.Series(False, index=values.index), None
    if kind == "date":
        if pd.api.types.is_datetime64_any_dtype(values):
            parsed = values.dt.tz_localize(None) if values.dt.tz is not None else values
            parsed = parsed.astype("datetime64[ns]")
            bad = present & parsed.ne(parsed.dt.normalize())
            return parsed.mask(bad), bad, "must be a date without a time of day"
        text = values.astype("str").where(present).str.strip()
        iso = text.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)
        parsed = pd.to_datetime(text.where(iso), format="%Y-%m-%d", errors="coerce")
        parsed = parsed.astype("datetime64[ns]")
        bad = present & parsed.isna()
        return parsed, bad, "must be an ISO date YYYY-MM-DD"
    # number / integer
    if is_text:
        text = values.astype("str").where(present).str.strip()
        if kind == "integer":
            ok = text.str.fullmatch(r"[+-]?\d+").fillna(False).astype(bool)
        else:
            ok = (
                text.str.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?").fillna(False)
            ).astype(bool)
        parsed = pd.to_numeric(text.where(ok), errors="coerce").astype("float64")
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        parsed = values.astype("float64")
    else:
        bad = present.copy()
        return pd.Series(np.nan, index=values.index), bad, f"must be a {kind}"
    finite = np.isfinite(parsed)
    bad = present & ~finite
    if kind == "integer":
        whole = finite & (parsed == np.round(parsed))
        bad = present & ~whole
        parsed = parsed.where(whole)
        rule = "must be a whole number"
        if spec.required and not (bad | parsed.isna()).any():
            return parsed.astype("int64"), bad, rule
        return parsed, bad, rule
    return parsed.where(finite), bad, "must be a number"


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


def _problems_at(
    table: str,
    rows: np.ndarray,
    mask: pd.Series,
    column: str | None,
    values: pd.Series,
    rule: str,
) -> list[Problem]:
    """Problems for every True of ``mask`` (vectorised selection, one object per problem)."""
    idx = np.flatnonzero(mask.to_numpy(dtype=bool))
    if idx.size == 0:
        return []
    texts = _text(values.iloc[idx]).tolist()
    return [
        Problem(table, int(r), column, v, rule)
        for r, v in zip(rows[idx].tolist(), texts, strict=True)
    ]


def _check_columns(name: str, frame: pd.DataFrame, report: ValidationReport) -> list[str]:
    """Report missing required columns; return the optional columns that are absent."""
    spec = table_spec(name)
    absent = [c for c in spec.columns if c not in frame.columns]
    for column in absent:
        if column in spec.required_columns:
            report.problems.append(
                Problem(name, None, column, "", "required column is missing from the table")
            )
    return [c for c in absent if c not in spec.required_columns]


def _parse_table(
    name: str, frame: pd.DataFrame, rows: np.ndarray, report: ValidationReport
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse every contract column; returns the parsed table and a mask of unparsable cells."""
    spec = table_spec(name)
    absent_optional = _check_columns(name, frame, report)
    parsed = {}
    unparsable = {}
    for field_ in spec.fields:
        if field_.name not in frame.columns:
            if field_.name in absent_optional:
                empty = pd.Series(pd.NA, index=frame.index, dtype="object")
                values, bad, _ = _parse_column(empty, field_)
                parsed[field_.name] = values
            continue
        values, bad, rule = _parse_column(frame[field_.name], field_)
        report.problems.extend(
            _problems_at(name, rows, bad, field_.name, frame[field_.name], rule or "")
        )
        parsed[field_.name] = values
        unparsable[field_.name] = bad
    extras = [c for c in frame.columns if c not in parsed]
    out = pd.concat([pd.DataFrame(parsed, index=frame.index), frame[extras]], axis=1)
    return out, pd.DataFrame(unparsable, index=frame.index)


def _check_constraints(
    name: str,
    raw: pd.DataFrame,
    frame: pd.DataFrame,
    unparsable: pd.DataFrame,
    rows: np.ndarray,
    report: ValidationReport,
) -> None:
    """Per-column constraints (required, enum, range, unique) through pandera, lazily."""
    spec = table_spec(name)
    present = [c for c in spec.columns if c in frame.columns]
    try:
        _pandera_schema(name).validate(frame[present], lazy=True)
    except pa.errors.SchemaErrors as exc:
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
                    name, int(rows[position]), column, value, _rule_text(case.check, column, spec)
                )
            )


def _check_cross_table(
    raws: Mapping[str, pd.DataFrame],
    tables: Mapping[str, pd.DataFrame],
    rows: Mapping[str, np.ndarray],
    report: ValidationReport,
) -> None:
    """Foreign keys, dates against enrolment and withdrawal, and the VISA-A item rules."""
    participants = tables["participants"]
    enrolled = (
        participants.dropna(subset=["participant_id"])
        .drop_duplicates("participant_id")
        .set_index("participant_id")
    )
    withdrawn_early = participants["withdrawn_on"] < participants["enrolled_on"]
    report.problems.extend(
        _problems_at(
            "participants",
            rows["participants"],
            withdrawn_early,
            "withdrawn_on",
            raws["participants"]["withdrawn_on"],
            "must not be before enrolled_on",
        )
    )
    earliest_visa = _visa_baseline_earliest_day()
    ids = pd.Index(enrolled.index)
    enrol_by_code = enrolled["enrolled_on"].to_numpy()
    withdrawn_by_code = enrolled["withdrawn_on"].to_numpy()
    for name, date_col in DATE_COLUMNS.items():
        table = tables.get(name)
        if table is None or table.empty:
            continue
        # one categorical over the participants' ids: the codes serve every lookup below and
        # the loaded Cohort keeps it (no second pass over millions of strings)
        codes = ids.get_indexer(table["participant_id"])  # -1: not a participant
        table["participant_id"] = pd.Categorical.from_codes(codes, categories=ids)
        known = codes >= 0
        orphan = pd.Series(raws[name]["participant_id"].notna().to_numpy() & ~known)
        report.problems.extend(
            _problems_at(
                name,
                rows[name],
                orphan,
                "participant_id",
                raws[name]["participant_id"],
                "must exist in participants.participant_id",
            )
        )
        safe = np.where(known, codes, 0)
        enrol = np.where(known, enrol_by_code[safe], np.datetime64("NaT"))
        day = (table[date_col].to_numpy() - enrol) / np.timedelta64(1, "D")
        if name == "visa_a":
            early = day < earliest_visa
            rule = (
                f"must not be more than {-earliest_visa} days before enrolled_on (baseline window)"
            )
        else:
            early = day < 0
            rule = "must not be before the participant's enrolled_on"
        report.problems.extend(
            _problems_at(name, rows[name], pd.Series(early), date_col, raws[name][date_col], rule)
        )
        withdrawn = np.where(known, withdrawn_by_code[safe], np.datetime64("NaT"))
        after = pd.Series(table[date_col].to_numpy() > withdrawn, index=table.index)
        if after.any():
            report.warnings.append(
                Note(
                    "{table}: {rows} rows dated after the participant's withdrawn_on "
                    "({people} participants); they are kept in the table and excluded from "
                    "every metric (data after obs_end).",
                    counts={
                        "rows": int(after.sum()),
                        "people": int(table.loc[after, "participant_id"].nunique()),
                    },
                    table=name,
                )
            )
    _check_visa_items(raws.get("visa_a"), tables.get("visa_a"), rows.get("visa_a"), report)


VISA_ITEMS = ("q1", "q2", "q3", "q4", "q5", "q6", "q7")
VISA_Q8 = ("q8a", "q8b", "q8c")


def _check_visa_items(
    raw: pd.DataFrame | None,
    visa: pd.DataFrame | None,
    rows: np.ndarray | None,
    report: ValidationReport,
) -> None:
    if visa is None or visa.empty or rows is None:
        return
    q8 = visa[list(VISA_Q8)]
    q8_count = q8.notna().sum(axis=1)
    several = q8_count > 1
    # e.g. "q8a=7; q8b=4": only the answered branches, built column-wise
    answered = pd.Series("", index=visa.index)
    for column in VISA_Q8:
        item = (column + "=" + q8[column].map("{:g}".format) + "; ").where(q8[column].notna(), "")
        answered = answered + item
    report.problems.extend(
        _problems_at(
            "visa_a",
            rows,
            several,
            "q8a/q8b/q8c",
            answered.str.rstrip("; "),
            "at most one q8 branch (a, b or c) may be answered",
        )
    )
    complete = visa[list(VISA_ITEMS)].notna().all(axis=1) & q8_count.eq(1)
    item_sum = visa[list(VISA_ITEMS)].sum(axis=1) + visa[list(VISA_Q8)].sum(axis=1)
    disagree = complete & visa["total"].notna() & (item_sum - visa["total"]).abs().gt(1e-6)
    report.problems.extend(
        _problems_at(
            "visa_a",
            rows,
            disagree,
            "total",
            raw["total"],
            "must equal q1 + ... + q7 + q8 when all items are present",
        )
    )
    empty = ~complete & visa["total"].isna()
    if empty.any():
        report.warnings.append(
            Note(
                "visa_a: {n} assessments have a missing item and no total; "
                "their score is missing (no pro-rating).",
                counts={"n": int(empty.sum())},
            )
        )


def _check_duplicates(tables: Mapping[str, pd.DataFrame], report: ValidationReport) -> None:
    pain = tables.get("pain")
    if pain is None or pain.empty:
        return
    morning = pain[pain["timing"] == "morning"]
    dup = morning.duplicated(["participant_id", "recorded_on"], keep=False)
    if dup.any():
        report.warnings.append(
            Note(
                "pain: {n} morning ratings share a participant and day with another "
                "morning rating; the day's morning NRS is their mean.",
                counts={"n": int(dup.sum())},
            )
        )


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
    rows: Mapping[str, np.ndarray],
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


def _check_outlying_latest_dates(
    raws: Mapping[str, pd.DataFrame],
    tables: Mapping[str, pd.DataFrame],
    rows: Mapping[str, np.ndarray],
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
    days = [v[~np.isnat(v) & (v <= limit)].astype("datetime64[D]").astype("int64") for v in values]
    order = np.sort(np.concatenate(days)) if days else np.array([], dtype="int64")
    if order.size < 2:
        return
    distinct = order[np.r_[True, order[1:] != order[:-1]]]
    allowed = max(OUTLYING_MAX_ROWS, OUTLYING_MAX_SHARE * order.size)
    for i in np.flatnonzero(np.diff(distinct) > OUTLYING_GAP_DAYS):
        if order.size - int(np.searchsorted(order, distinct[i], side="right")) <= allowed:
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
        frame = pd.DataFrame({"label": counts.index, "n": counts.to_numpy()})
        frame["key"] = _label_key(frame["label"]).to_numpy()
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
    row_offset: Mapping[str, int] | None = None,
    loaded_on: str | dt.date | pd.Timestamp | None = None,
) -> tuple[dict[str, pd.DataFrame], ValidationReport]:
    """Parse and validate the cohort tables against the data contract.

    Parameters
    ----------
    raw : mapping of str to DataFrame
        Tables by name; absent optional tables mean no records. CSV input should be read as text
        (every column ``str``) so that nothing is converted before it is checked.
    row_offset : mapping of str to int, optional
        Added to the 0-based row position to give the reported row: 2 for CSV/XLSX files (the
        header is line 1), 1 (the default) for Parquet and in-memory tables.
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
    """
    report = ValidationReport()
    loaded = _as_load_date(loaded_on)
    offsets = dict(row_offset or {})
    unknown = sorted(set(raw) - set(TABLES))
    for name in unknown:
        report.problems.append(
            Problem(name, None, None, "", f"unknown table; expected one of: {', '.join(TABLES)}")
        )
    for name in REQUIRED_TABLES:
        if name not in raw:
            report.problems.append(Problem(name, None, None, "", "required table is missing"))
    if "participants" in raw and raw["participants"].empty:
        report.problems.append(
            Problem("participants", None, None, "", "must hold at least one participant")
        )
    tables: dict[str, pd.DataFrame] = {}
    raws: dict[str, pd.DataFrame] = {}
    rows: dict[str, np.ndarray] = {}
    for name in TABLES:
        frame = raw.get(name)
        if frame is None:
            frame = pd.DataFrame({c: pd.Series(dtype="str") for c in table_spec(name).columns})
        frame = frame.reset_index(drop=True)
        rows[name] = np.arange(len(frame)) + offsets.get(name, 1)
        parsed, unparsable = _parse_table(name, frame, rows[name], report)
        _check_constraints(name, frame, parsed, unparsable, rows[name], report)
        tables[name] = parsed
        # the source values (absent optional columns as empty), for problem messages
        raws[name] = frame.reindex(columns=list(dict.fromkeys([*frame.columns, *parsed.columns])))
    if "participants" in raw and all(
        c in tables["participants"] for c in ("participant_id", "enrolled_on", "withdrawn_on")
    ):
        _check_cross_table(raws, tables, rows, report)
    _check_future_dates(raws, tables, rows, loaded, report, default=loaded_on is None)
    _check_outlying_latest_dates(raws, tables, rows, loaded, report)
    _check_label_variants(tables, report)
    _check_duplicates(tables, report)
    if not report.ok:
        return tables, report
    return {name: _finalise(name, t) for name, t in tables.items()}, report


def _finalise(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Enums as categoricals with the contract's categories (memory and order)."""
    spec = table_spec(name)
    for field_ in spec.fields:
        if field_.enum is not None and field_.type == "string" and field_.name in frame:
            frame[field_.name] = pd.Categorical(frame[field_.name], categories=list(field_.enum))
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
