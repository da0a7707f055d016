"""Participant keys: how a row of a cohort table finds its participant, and (participant, day) keys.

Every metric family maps rows to participants and participant-days the same way, with these
functions:

* **Positions.** A child table's ``participant_id`` is categorical over the cohort's ids (one
  integer code per row; :meth:`rehabstats.data.cohort.Cohort.from_tables`). A row's
  participant is looked up once per category, then taken by the codes:
  :func:`participant_positions` (the row's position in a participant index, such as the
  timeline's, -1 when absent) and :func:`per_row` (a per-participant value for every row).
  Text ids work too (one hash lookup per row).
* **Participant-day keys.** :func:`day_keys` packs a participant (position or code) and a
  day into one int64, ``who << 32 | day + 2**31``: keys sort by participant, then day, and
  ``key + 1`` is the same participant's next day. :func:`key_participants` and
  :func:`key_days` unpack them; :func:`participant_day_keys` makes them from calendar dates.
* **Sorted keys.** :func:`sort_order` (a stable order, or None when sorted already),
  :func:`run_starts` (the first row of each run of equal keys), :func:`lookup` (values at
  wanted keys) and :func:`on_participant_days` (membership): grouping and joining by
  sorting, without a Python loop over participants or rows.

Days are whole days (from enrolment, or since 1970 for calendar dates) within ±2**31; a week
number can stand in for the day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "day_keys",
    "key_days",
    "key_participants",
    "lookup",
    "on_participant_days",
    "participant_day_keys",
    "participant_positions",
    "per_row",
    "run_starts",
    "sort_order",
]

_DAY_OFFSET = 1 << 31
"""Added to the day so that negative days (VISA-A before enrolment) keep their order."""

_NS_PER_DAY = 86_400_000_000_000


def participant_positions(
    ids: pd.Series, index: pd.Index, rows: np.ndarray | None = None
) -> np.ndarray:
    """Position of each row's participant in ``index`` (-1 when absent), as int64.

    Parameters
    ----------
    ids : Series
        A child table's ``participant_id``: categorical over the cohort's ids (one lookup per
        category, then a take by the integer codes) or text.
    index : Index
        The participants, e.g. a participant timeline's index.
    rows : array of int, optional
        Positions of the rows wanted (default: every row, in table order).
    """
    if isinstance(ids.dtype, pd.CategoricalDtype):
        # one entry per category, and a last one (-1) for the code -1 (no category)
        lookup_ = np.r_[index.get_indexer(ids.cat.categories), -1].astype("int64")
        codes = ids.cat.codes.to_numpy()
        return lookup_[codes if rows is None else codes[rows]]
    values = ids.astype("str").to_numpy()
    return index.get_indexer(values if rows is None else values[rows]).astype("int64")


def per_row(ids: pd.Series, values: pd.Series) -> np.ndarray:
    """A per-participant value for every row of a child table.

    ``ids`` is a child table's ``participant_id`` (categorical over the cohort's ids, or text);
    ``values`` is indexed by ``participant_id``. Rows of participants missing from ``values``
    get the missing value of its dtype. Vectorised: one reindex over the categories, then a take
    by the integer codes.
    """
    if isinstance(ids.dtype, pd.CategoricalDtype):
        table = values.reindex(ids.cat.categories)
        codes = ids.cat.codes.to_numpy()
        taken = table.to_numpy()[np.where(codes < 0, 0, codes)]
        if (codes < 0).any():
            taken = pd.Series(taken).mask(codes < 0).to_numpy()
        return taken
    return values.reindex(ids.to_numpy()).to_numpy()


def day_keys(who: np.ndarray, day: np.ndarray) -> np.ndarray:
    """One int64 per (participant, day): sorted by participant, then day; ``key + 1`` is the
    next day.

    ``who`` is a participant's position (or category code); ``day`` a whole day (or week).
    """
    return (np.asarray(who).astype("int64") << 32) + (np.asarray(day).astype("int64") + _DAY_OFFSET)


def key_participants(keys: np.ndarray) -> np.ndarray:
    """The participant (position or code) of each :func:`day_keys` key."""
    return (keys >> 32).astype("int64")


def key_days(keys: np.ndarray) -> np.ndarray:
    """The day of each :func:`day_keys` key."""
    return (keys & 0xFFFFFFFF) - _DAY_OFFSET


def participant_day_keys(
    ids: pd.Series, dates: pd.Series, rows: np.ndarray | None = None
) -> np.ndarray:
    """:func:`day_keys` of each row's (participant category code, calendar date).

    ``ids`` is a child table's categorical ``participant_id`` (all child tables share the
    cohort's categories, so keys from different tables compare); ``dates`` its date column;
    ``rows`` optionally the positions of the rows wanted. ``key + 1`` is the same
    participant's next calendar day.
    """
    codes = ids.cat.codes.to_numpy()
    stamps = np.asarray(dates.to_numpy(), dtype="datetime64[ns]").view("int64")
    if rows is not None:
        codes, stamps = codes[rows], stamps[rows]
    return day_keys(codes, stamps // _NS_PER_DAY)


def sort_order(keys: np.ndarray) -> np.ndarray | None:
    """A stable order sorting ``keys``; None when they are sorted already (the usual case for
    a table in participant-date order)."""
    if len(keys) < 2 or bool(np.all(keys[1:] >= keys[:-1])):
        return None
    return np.argsort(keys, kind="stable")


def run_starts(keys: np.ndarray) -> np.ndarray:
    """Positions of the first element of each run of equal values of sorted ``keys``."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype="int64")
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    return np.flatnonzero(new)


def lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``values`` at the ``wanted`` keys among the sorted unique ``keys`` (NaN when absent)."""
    if len(keys) == 0:
        return np.full(len(wanted), np.nan)
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[at] == wanted, values[at], np.nan)


def on_participant_days(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Whether each key (of :func:`day_keys`) is among ``wanted`` (vectorised)."""
    if len(keys) == 0 or len(wanted) == 0:
        return np.zeros(len(keys), dtype=bool)
    if sort_order(keys) is None:
        # table in participant-date order (the usual case): mark the run of rows of each
        # wanted key, searching the few wanted keys in the many rows
        left = np.searchsorted(keys, wanted, side="left")
        right = np.searchsorted(keys, wanted, side="right")
        edges = np.zeros(len(keys) + 1, dtype="int64")
        np.add.at(edges, left, 1)
        np.add.at(edges, right, -1)
        return np.cumsum(edges[:-1]) > 0
    wanted = np.sort(wanted)
    at = np.minimum(np.searchsorted(wanted, keys), len(wanted) - 1)
    return wanted[at] == keys
