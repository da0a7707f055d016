"""Load + validate a cohort folder: ``rehabstats.load_cohort`` against a DuckDB script.

Usage::

    python benchmarks/bench_duckdb_load.py --participants 20000
    python benchmarks/bench_duckdb_load.py --folder path/to/cohort_parquet --folder path/to/csv

The DuckDB script reads the same files and runs the same rules, generated from the same
Frictionless schemas in ``data_schema/``: the type of every column (CSV: the strict text rules
-- trimmed text, whole numbers, plain decimal numbers, ISO dates; Parquet: whole-day dates),
control characters in text, required values, enums, ranges, uniqueness, the foreign keys, the
date rules (not before enrolment except a VISA-A's, withdrawal not before enrolment, no date
after the load date, rows after withdrawal), the VISA-A item rules, the repeated morning
ratings and the labels differing only in case or spacing. It counts the rows breaking each rule
(rehabstats also names them, but only when a rule is broken: the happy path is what is timed).
Each table is read into a DuckDB table first (rehabstats keeps its tables in memory too).

Both run in this process, alternately, ``--repeat`` times; the medians and their ratio are
printed as a Markdown table (recorded in docs/performance.md). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import rehabstats as rs
from rehabstats.data.schema import DATE_COLUMNS, TABLES, table_spec

LOADED_ON = "2100-01-01"
"""An explicit load date: both sides check the same 'no date after the load date' rule."""

_CONTROL = r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]"
_INTEGER = r"[+-]?[0-9]+"
_NUMBER = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"


def _fields(name: str) -> list[dict]:
    return json.loads(table_spec(name).path.read_text())["fields"]


def _sql_value(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def _typed_column(name: str, kind: str, fmt: str) -> str:
    """The SQL expression parsing raw column ``name`` to its contract type."""
    col = f'"{name}"'
    if kind == "string":
        return f"nullif(trim({col}), '')"
    if fmt == "parquet":
        return col  # typed by the file (dates: timestamps, checked to be whole days)
    text = f"trim({col})"
    if kind == "date":
        return f"CASE WHEN regexp_full_match({text}, '{_DATE}') THEN TRY_CAST({text} AS DATE) END"
    if kind == "integer":
        return (
            f"CASE WHEN regexp_full_match({text}, '{_INTEGER}') AND length(ltrim({text}, '+-0'))"
            f" <= 15 THEN TRY_CAST({text} AS DOUBLE) END"
        )
    return f"CASE WHEN regexp_full_match({text}, '{_NUMBER}') THEN TRY_CAST({text} AS DOUBLE) END"


def _column_rules(name: str, field_: dict, fmt: str) -> list[tuple[str, str]]:
    """(rule, SQL condition of a broken row) for one column: type, control, constraints."""
    col, kind = f'"{field_["name"]}"', field_["type"]
    raw = f'"raw_{field_["name"]}"'
    typed = col
    rules = []
    if kind == "string":
        rules.append(("control", f"regexp_matches({raw}, '{_CONTROL}')"))
    elif fmt == "csv":
        rules.append(("type", f"{raw} IS NOT NULL AND {typed} IS NULL"))
    elif kind == "date":
        rules.append(("type", f"{raw} <> date_trunc('day', {raw})"))
    elif kind == "integer":
        rules.append(("type", f"{raw} <> round({raw})"))
    c = field_.get("constraints", {})
    if c.get("required"):
        rules.append(("required", f"{typed} IS NULL"))
    if "enum" in c:
        values = ", ".join(_sql_value(v) for v in c["enum"])
        rules.append(("enum", f"{typed} NOT IN ({values})"))
    for key, op in (
        ("minimum", "<"),
        ("maximum", ">"),
        ("exclusiveMinimum", "<="),
        ("exclusiveMaximum", ">="),
    ):
        if key in c:
            rules.append(("range", f"{typed} {op} {c[key]}"))
    if kind == "date":
        rules.append(("future", f"{typed} > DATE '{LOADED_ON}'"))
    return [(f"{field_['name']}: {rule}", cond) for rule, cond in rules]


def duckdb_checks(folder: Path, *, threads: int | None = None) -> dict[str, int]:
    """Read the tables of ``folder`` into DuckDB and count the rows breaking each rule.

    Returns ``{"table.column: rule": rows}`` for every rule checked (all zero on a valid
    cohort).
    """
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {threads}")
    counts: dict[str, int] = {}
    present = []
    for name in TABLES:
        files = [p for p in (folder / f"{name}.csv", folder / f"{name}.parquet") if p.exists()]
        if not files:
            continue
        path = files[0]
        fmt = path.suffix[1:]
        present.append(name)
        fields = _fields(name)
        source = (
            f"read_csv('{path}', all_varchar = true, header = true, delim = ',', quote = '\"',"
            " escape = '\"', strict_mode = true)"
            if fmt == "csv"
            else f"read_parquet('{path}')"
        )
        # one read: the source values (``raw_*``, kept for the type rules) and the parsed ones
        columns = ", ".join(
            f'"{f["name"]}" AS "raw_{f["name"]}", '
            f'{_typed_column(f["name"], f["type"], fmt)} AS "{f["name"]}"'
            for f in fields
        )
        con.execute(f"CREATE TABLE {name} AS SELECT {columns} FROM {source}")
        rules = [rule for f in fields for rule in _column_rules(name, f, fmt)]
        unique = [f["name"] for f in fields if f.get("constraints", {}).get("unique")]
        select = [f"count_if({cond})" for _, cond in rules]
        select += [f'count("{u}") - count(DISTINCT "{u}")' for u in unique]
        row = con.execute(f"SELECT {', '.join(select)} FROM {name}").fetchone()
        labels = [rule for rule, _ in rules] + [f"{u}: unique" for u in unique]
        counts.update({f"{name}.{label}": int(n) for label, n in zip(labels, row, strict=True)})
    # across rows and tables
    counts["participants.withdrawn_on: date_order"] = con.execute(
        "SELECT count_if(withdrawn_on < enrolled_on) FROM participants"
    ).fetchone()[0]
    for column in ("site", "arm", "withdrawal_reason"):
        counts[f"participants.{column}: variants"] = con.execute(
            f"SELECT count(*) FROM (SELECT lower(trim(regexp_replace({column}, '\\s+', ' ', 'g')))"
            f" AS k FROM participants WHERE {column} IS NOT NULL GROUP BY k"
            f" HAVING count(DISTINCT {column}) > 1)"
        ).fetchone()[0]
    enrolled = (
        "SELECT participant_id, any_value(enrolled_on) AS enrolled_on, "
        "any_value(withdrawn_on) AS withdrawn_on FROM participants "
        "WHERE participant_id IS NOT NULL GROUP BY participant_id"
    )
    con.execute(f"CREATE TABLE enrolled AS {enrolled}")
    for name, date_col in DATE_COLUMNS.items():
        if name not in present:
            continue
        before = "0" if name == "visa_a" else f"count_if(c.{date_col} < p.enrolled_on)"
        row = con.execute(
            "SELECT count_if(p.participant_id IS NULL AND c.participant_id IS NOT NULL), "
            f"{before}, count_if(c.{date_col} > p.withdrawn_on) "
            f"FROM {name} c LEFT JOIN enrolled p USING (participant_id)"
        ).fetchone()
        counts[f"{name}.participant_id: foreign_key"] = row[0]
        counts[f"{name}.{date_col}: date_order"] = row[1]
        counts[f"{name}.{date_col}: after withdrawal (note)"] = row[2]
    if "visa_a" in present:
        items = " + ".join(f"q{i}" for i in range(1, 8))
        row = con.execute(
            "SELECT count_if((q8a IS NOT NULL)::INT + (q8b IS NOT NULL)::INT"
            " + (q8c IS NOT NULL)::INT > 1), "
            f"count_if(total IS NOT NULL AND abs({items} + coalesce(q8a, q8b, q8c) - total)"
            " > 1e-6) FROM visa_a"
        ).fetchone()
        counts["visa_a.q8: consistency"], counts["visa_a.total: consistency"] = row
    if "pain" in present:
        counts["pain: repeated morning ratings (note)"] = con.execute(
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM pain "
            "WHERE timing = 'morning' GROUP BY participant_id, recorded_on HAVING n > 1)"
        ).fetchone()[0]
    con.close()
    return {k: int(v) for k, v in counts.items()}


def time_both(folder: Path, *, repeat: int = 1) -> dict[str, float]:
    """Median seconds of ``load_cohort`` and of :func:`duckdb_checks` on ``folder``, alternated."""
    ours, theirs = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        cohort = rs.load_cohort(folder, loaded_on=LOADED_ON)
        ours.append(time.perf_counter() - start)
        del cohort
        start = time.perf_counter()
        counts = duckdb_checks(folder)
        theirs.append(time.perf_counter() - start)
        broken = {k: v for k, v in counts.items() if v and "(note)" not in k}
        if broken:
            raise SystemExit(f"DuckDB found problems in a cohort rehabstats loaded: {broken}")
    return {"rehabstats": statistics.median(ours), "duckdb": statistics.median(theirs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--folder", type=Path, action="append", help="existing cohort folders")
    args = parser.parse_args()
    warnings.simplefilter("ignore", rs.DataWarning)
    import duckdb  # noqa: F401  (imported before timing, as rehabstats is)

    with tempfile.TemporaryDirectory() as tmp:
        folders = args.folder
        if not folders:
            tables = rs.simulate_tables(args.participants, seed=args.seed)
            folders = []
            for fmt in ("parquet", "csv"):
                folders.append(rs.write_cohort(tables, Path(tmp) / fmt, format=fmt))
            del tables
        print("| folder | load_cohort | DuckDB | ratio |")
        print("|---|---:|---:|---:|")
        for folder in folders:
            t = time_both(folder, repeat=args.repeat)
            ratio = t["rehabstats"] / t["duckdb"]
            print(
                f"| {folder.name} | {t['rehabstats']:.2f} s | {t['duckdb']:.2f} s | {ratio:.2f} |"
            )


if __name__ == "__main__":
    main()
