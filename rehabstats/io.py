"""Reading and writing cohort folders (CSV, Parquet or XLSX per table)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from rehabstats.cohort import Cohort
from rehabstats.errors import CohortValidationError, OutputError, Problem, ValidationReport
from rehabstats.schema import TABLES, table_spec, validate_tables

__all__ = ["FORMATS", "load_cohort", "read_tables", "validate_folder", "write_cohort"]

FORMATS: tuple[str, ...] = ("csv", "parquet", "xlsx")
"""File formats of a cohort folder, one file per table named after it."""


def _find_files(folder: Path, report: ValidationReport) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name in TABLES:
        candidates = [
            folder / f"{name}.{ext}" for ext in FORMATS if (folder / f"{name}.{ext}").is_file()
        ]
        if len(candidates) > 1:
            report.problems.append(
                Problem(
                    name,
                    None,
                    None,
                    ", ".join(p.name for p in candidates),
                    "one file per table: remove all but one format",
                )
            )
        elif candidates:
            found[name] = candidates[0]
    return found


def _read(path: Path) -> tuple[pd.DataFrame, int]:
    """One table file as raw data, and the offset from row position to reported row."""
    if path.suffix == ".csv":
        # Read as text: nothing is converted before the contract checks it; only an empty
        # field is missing (not "NA", "null"...), as in the Frictionless schemas.
        frame = pd.read_csv(
            path, dtype="str", keep_default_na=False, na_values=[""], skipinitialspace=False
        )
        return frame, 2
    if path.suffix == ".parquet":
        return pd.read_parquet(path), 1
    frame = pd.read_excel(path, sheet_name=0, engine="openpyxl")
    return frame, 2


def read_tables(
    source: str | os.PathLike,
) -> tuple[dict[str, pd.DataFrame], dict[str, int], ValidationReport]:
    """Read the raw tables of a cohort folder without validating them.

    Returns the raw tables, the row offset of each (for error rows) and a report holding any
    folder-level problem (missing folder, ambiguous formats, unreadable files).
    """
    folder = Path(source)
    report = ValidationReport()
    if not folder.is_dir():
        report.problems.append(
            Problem("(folder)", None, None, str(folder), "must be an existing cohort folder")
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
            )
        )
        return {}, {}, report
    raw: dict[str, pd.DataFrame] = {}
    offsets: dict[str, int] = {}
    for name, path in _find_files(folder, report).items():
        try:
            raw[name], offsets[name] = _read(path)
        except (ValueError, OSError, ImportError) as exc:
            report.problems.append(
                Problem(name, None, None, path.name, f"file could not be read: {exc}")
            )
    return raw, offsets, report


def validate_folder(
    source: str | os.PathLike,
    *,
    loaded_on: str | dt.date | pd.Timestamp | None = None,
) -> tuple[dict[str, pd.DataFrame], ValidationReport]:
    """Read and validate a cohort folder; returns the parsed tables and the full report.

    ``loaded_on``: see :func:`load_cohort`.
    """
    raw, offsets, report = read_tables(source)
    if not report.ok:
        return {}, report
    tables, checked = validate_tables(raw, row_offset=offsets, loaded_on=loaded_on)
    return tables, checked


def load_cohort(
    source: str | os.PathLike,
    *,
    data_cutoff: str | pd.Timestamp | None = None,
    loaded_on: str | dt.date | pd.Timestamp | None = None,
) -> Cohort:
    """Load and validate a cohort folder.

    Parameters
    ----------
    source : path
        A folder with one file per table named after it (``participants.csv``,
        ``sessions.parquet``, ``pain.xlsx``...). ``participants`` and ``sessions`` are required;
        an absent optional table means no records.
    data_cutoff : str or Timestamp, optional
        Analysis date (ISO ``YYYY-MM-DD``). Default: the latest date found in any table.
    loaded_on : str, date or Timestamp, optional
        The day the data are loaded: a date after it is a validation problem (a typo such as
        2042 for 2024). Default: today where it is latest on Earth (UTC+14), so that no
        time zone's today is rejected. A plausibility bound only, never an analysis date.

    Returns
    -------
    Cohort

    Raises
    ------
    CohortValidationError
        With every problem at once (table, row = 1-based line of the file, column, value, rule);
        nothing is loaded.
    """
    raw, offsets, report = read_tables(source)
    if not report.ok:
        raise CohortValidationError(report, source=str(source))
    return Cohort.from_tables(
        raw, data_cutoff=data_cutoff, source=str(source), row_offset=offsets, loaded_on=loaded_on
    )


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
