"""Metric tables written to files: CSV text exactly as pandas writes it, made column by column.

``DataFrame.to_csv(index=False, na_rep="")`` formats every float through numpy
(``astype(str)``, several seconds per million values) and hands every row to Python's csv
writer; at 100,000 participants that took longer than computing the metrics. :func:`csv_bytes`
makes the same bytes with Arrow compute kernels, one column at a time, and joins the columns
into lines without a Python loop over rows:

=====================  =====================================================================
dtype                  text (as pandas writes it)
=====================  =====================================================================
float64                Python's ``repr``: shortest round-trip digits, ``1.0`` not ``1``,
                       ``1e-05`` and ``1e+16`` in scientific notation, ``inf``, ``-0.0``;
                       NaN empty. Arrow's float formatting gives the same shortest digits
                       but its own notation: the values it writes in scientific notation,
                       and those Python writes so (``|x| < 1e-4`` or ``>= 1e16``), are
                       formatted by numpy as pandas does; a whole number gains ``.0``.
int, Int64             decimal digits; missing empty
bool, boolean          ``True`` / ``False``; missing empty
str, object            the text, or ``True`` / ``False``; missing empty. A field
                       holding a comma, a quote or a line break is formatted by Python's csv
                       writer itself (quoted, quotes doubled), as pandas does.
category               its categories' text, by code; missing empty
datetime, timedelta,   formatted by pandas itself (dates only when every value is midnight)
period
=====================  =====================================================================

Anything else (complex, intervals, sparse values, other objects, non-text column names) is written
by ``DataFrame.to_csv`` itself, so that the output never differs from pandas'.
``tests/metrics/test_tables.py`` compares the bytes with ``to_csv`` over every dtype and edge.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["FORMATS", "csv_bytes", "table_writer"]

FORMATS = ("csv", "parquet")
"""The file formats of ``rehabstats metrics`` (``--format``)."""

_ROWS_PER_CHUNK = 200_000
"""Rows formatted at once: bounds the memory of the text to about 100 MB per chunk."""

_PANDAS_CHUNK_CELLS = 100_000
"""``to_csv`` formats ``100,000 // columns`` rows at a time (pandas' ``_DEFAULT_CHUNKSIZE_CELLS``)."""

_SPECIAL = r'[,"\r\n]'
"""Characters that may make the csv writer quote a field (it decides; see :func:`_csv_field`)."""


class _UnsupportedError(Exception):
    """A column whose text this module does not make: the frame goes to ``to_csv``."""


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame.to_csv(index=False, na_rep="")`` as bytes (UTF-8, ``os.linesep`` line ends), fast.

    Parameters
    ----------
    frame : DataFrame
        Any frame with text column names; see the module docstring for each dtype.

    Returns
    -------
    bytes
        The file's content, byte for byte what ``to_csv`` writes.
    """
    try:
        return b"".join(_csv_parts(frame))
    except _UnsupportedError:
        return _pandas_csv(frame)


def table_writer(frame: pd.DataFrame, fmt: str = "csv") -> Callable[[str | os.PathLike], None]:
    """A function writing ``frame`` at the path it is given, as CSV (:func:`csv_bytes`) or Parquet.

    For :func:`rehabstats.files.write_files`: the content of one output file. Parquet keeps
    the dtypes (nullable integers and booleans, categories) and writes no index.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")

    def write(path: str | os.PathLike) -> None:
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
            return
        with open(path, "wb") as handle:
            try:
                for part in _csv_parts(frame):
                    handle.write(part)
            except _UnsupportedError:
                handle.seek(0)
                handle.truncate()
                handle.write(_pandas_csv(frame))

    return write


def _csv_parts(frame: pd.DataFrame):
    """The header line, then the text of each chunk of rows (see :func:`csv_bytes`).

    Raises
    ------
    _UnsupportedError
        A column this module does not format (the caller writes the frame with pandas).
    """
    columns = list(frame.columns)
    if not columns or not all(isinstance(c, str) for c in columns) or not frame.columns.is_unique:
        raise _UnsupportedError("column names")
    # pandas formats dates per chunk of its own (whole days only if all of the chunk's are)
    pandas_rows = max(_PANDAS_CHUNK_CELLS // len(columns), 1)
    dated = {
        j: _pandas_column_text(frame.iloc[:, j], pandas_rows)
        for j in range(len(columns))
        if _is_datelike(frame.dtypes.iloc[j])
    }
    yield _csv_line(columns).encode("utf-8")
    for start in range(0, len(frame), _ROWS_PER_CHUNK):
        part = frame.iloc[start : start + _ROWS_PER_CHUNK]
        texts = [
            dated[j][start : start + len(part)] if j in dated else _text(part.iloc[:, j])
            for j in range(len(columns))
        ]
        if len(texts) == 1:  # the csv writer quotes a line that would be empty
            texts[0] = pc.if_else(pc.equal(texts[0], ""), _text_scalar('""'), texts[0])
        # each line is the fields joined by ",", then the line end (an empty last field joined)
        joined = pc.binary_join_element_wise(*texts, _text_scalar(","))
        lines = pc.binary_join_element_wise(joined, _text_scalar(""), _text_scalar(os.linesep))
        yield _string_data(lines)


def _pandas_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, na_rep="").encode("utf-8")


def _csv_line(fields: list[str]) -> str:
    """A line as ``to_csv`` writes it (Python's csv writer; the line end is ``os.linesep``)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=os.linesep).writerow(fields)
    return buffer.getvalue()


def _csv_field(value: str) -> str:
    """One field as the csv writer writes it in a line of several fields."""
    return _csv_line([value, ""])[: -1 - len(os.linesep)]


def _text_scalar(text: str) -> pa.Scalar:

    return pa.scalar(text, pa.large_string())


def _string_data(lines: pa.Array) -> bytes:
    """The concatenated text of a string array without nulls (its data buffer's used part)."""
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    if len(lines) == 0:
        return b""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset :]
    start, end = int(offsets[0]), int(offsets[len(lines)])
    return lines.buffers()[2].to_pybytes()[start:end]


def _text(values: pd.Series) -> pa.Array:
    """The CSV text of one column: a large_string array without nulls (see the module table)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = _text(pd.Series(dtype.categories))
        codes = values.cat.codes.to_numpy()
        with_empty = pa.concat_arrays([categories, pa.array([""], pa.large_string())])
        return with_empty.take(pa.array(np.where(codes < 0, len(categories), codes)))
    kind = getattr(dtype, "kind", "O")
    if dtype == np.float64 or str(dtype) == "Float64":
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        missing = values.isna().to_numpy()
        return _float_text(numbers, missing)
    if kind in "iu":
        arrow = pa.array(values, from_pandas=True)
        return pc.cast(pc.cast(arrow, pa.string()), pa.large_string()).fill_null("")
    if kind == "b":
        arrow = pa.array(values, type=pa.bool_(), from_pandas=True)
        return pc.if_else(arrow, "True", "False").cast(pa.large_string()).fill_null("")
    if _is_datelike(dtype):
        return _pandas_column_text(values, len(values))
    if isinstance(dtype, pd.StringDtype) or pd.api.types.is_object_dtype(dtype):
        return _object_text(values)
    if kind == "f":  # other float widths: numpy's repr of that width, as pandas
        text = values.to_numpy().astype(str).astype(object)
        text[values.isna().to_numpy()] = ""
        return pa.array(text, pa.large_string())
    raise _UnsupportedError(str(dtype))


def _float_text(numbers: np.ndarray, missing: np.ndarray) -> pa.Array:
    """Python's ``repr`` of each float64 (numpy's ``astype(str)``, as pandas), missing empty.

    Arrow formats the values Python writes positionally; a whole number gains ``.0``; numpy
    formats the others (scientific in Python or in Arrow, infinite, NaN that is not missing).
    """
    size = np.abs(numbers)
    with np.errstate(invalid="ignore"):
        slow = ~np.isfinite(numbers) | (size >= 1e16) | ((size < 1e-4) & (size > 0))
    slow &= ~missing
    arrow = pc.cast(pa.array(numbers, mask=missing | slow), pa.large_string())
    slow |= pc.match_substring(arrow, "e").fill_null(False).to_numpy(zero_copy_only=False)
    whole = ~(missing | slow) & (numbers == np.floor(numbers))
    if whole.any():
        mask = pa.array(whole)
        with_point = pc.binary_join_element_wise(
            arrow.filter(mask), _text_scalar(".0"), _text_scalar("")
        )
        arrow = pc.replace_with_mask(arrow, mask, with_point)
    if slow.any():
        fixed = pa.array(numbers[slow].astype(str).astype(object), pa.large_string())
        arrow = pc.replace_with_mask(arrow, pa.array(slow), fixed)
    return arrow.fill_null("")


def _object_text(values: pd.Series) -> pa.Array:
    """Text of a str or object column (text, or booleans), missing empty, quoted if needed."""
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if isinstance(values.dtype, pd.StringDtype) or inferred in ("string", "empty"):
        arrow = pa.array(values, type=pa.large_string(), from_pandas=True)
    elif inferred == "boolean":  # True/False with missing values
        arrow = pa.array(values, type=pa.bool_(), from_pandas=True)
        arrow = pc.if_else(arrow, "True", "False").cast(pa.large_string())
    else:  # numbers or other objects in an object column: as pandas writes them
        raise _UnsupportedError(f"object column of {inferred}")
    arrow = arrow.fill_null("")
    special = pc.match_substring_regex(arrow, _SPECIAL).to_numpy(zero_copy_only=False)
    if special.any():
        quoted = np.zeros(len(arrow), dtype=object)
        raw = arrow.to_numpy(zero_copy_only=False)
        quoted[special] = [_csv_field(v) for v in raw[special]]  # the few special fields
        arrow = pc.if_else(
            pa.array(special), pa.array(quoted, pa.large_string(), mask=~special), arrow
        )
    return arrow


def _is_datelike(dtype: object) -> bool:
    return getattr(dtype, "kind", "O") in "mM" or isinstance(dtype, pd.PeriodDtype)


def _pandas_column_text(values: pd.Series, rows: int) -> pa.Array:
    """Dates and durations as pandas formats them, ``rows`` at a time.

    ``to_csv`` formats a frame in chunks of ``100,000 // columns`` rows, and a chunk's dates
    without their time only when every date of the chunk (in that column) is at midnight: the
    same chunks are formatted here. Their text never holds a comma, a quote or a line break, so
    pandas' one-column CSV of each chunk is split into lines; a line ``""`` is the csv writer's
    one empty field (pandas writes NaT empty).
    """
    parts = []
    for start in range(0, len(values), rows):  # a few chunks, not rows
        chunk = values.iloc[start : start + rows].to_frame("x")
        text = chunk.to_csv(index=False, header=False, na_rep="", lineterminator="\n")
        parts.append(np.array(text.split("\n")[:-1], dtype=object))
    lines = np.concatenate(parts) if parts else np.array([], dtype=object)
    lines[lines == '""'] = ""
    if len(lines) != len(values):
        raise _UnsupportedError("multi-line values")
    return pa.array(lines, pa.large_string())
