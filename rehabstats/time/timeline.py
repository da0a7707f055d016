"""Study time shared by every metric: days and weeks from enrolment, follow-up, windows.

Definitions (``docs/metrics.md`` §3):

* ``day`` = calendar days from ``enrolled_on`` (day 0); ``week`` = ``day // 7 + 1`` (week 1 =
  days 0-6, week 12 = days 77-83). The remodelling window is weeks 1..``window_weeks``.
* ``data_cutoff``: :func:`analysis_cutoff`, the one place that decides it:
  ``AnalysisConfig.data_cutoff`` when set, else the cohort's own (by default the latest date in
  any table). Never the wall-clock date.
* ``obs_end`` = min(``withdrawn_on``, ``data_cutoff``); ``follow_up_days`` = ``obs_end`` -
  ``enrolled_on``. Data after ``obs_end`` is excluded from every metric (:func:`observed_rows`).

The participant timeline is computed once per cohort and cut-off and kept with the cohort
(:meth:`rehabstats.data.cohort.Cohort.derived`); its data notes (participants enrolled after the
cut-off, rows dated after it) are issued once per :func:`computation`, that is once per call of a
public metric function, however many of the functions it calls need the timeline.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.constants import OVERALL
from rehabstats.data.cohort import Cohort
from rehabstats.errors import DataWarning, ParameterError
from rehabstats.time.keys import day_keys, participant_positions, sort_order

__all__ = [
    "analysis_cutoff",
    "computation",
    "check_group_by",
    "group_labels",
    "observe",
    "observed_rows",
    "participant_timeline",
    "stage_on",
    "week_of_day",
    "window_grid",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

_NOTES_ISSUED: ContextVar[set[str] | None] = ContextVar("rehabstats_notes_issued", default=None)
"""The timeline's data notes issued so far in the current :func:`computation` (None outside)."""


def analysis_cutoff(cohort: Cohort, config: AnalysisConfig | None = None) -> pd.Timestamp:
    """The data cut-off in force: the configuration's if set, else the cohort's.

    The analysis cut-off is an analysis choice (``AnalysisConfig.data_cutoff``, the YAML key
    ``data_cutoff``, ``--data-cutoff``); :attr:`Cohort.data_cutoff` is the cohort's default,
    the latest date in any table (or the date given to ``load_cohort(data_cutoff=)`` /
    :meth:`Cohort.with_cutoff`, which set that default).
    """
    config = config or AnalysisConfig()
    return config.cutoff if config.cutoff is not None else cohort.data_cutoff


def week_of_day(day: pd.Series | np.ndarray) -> pd.Series | np.ndarray:
    """``week = day // 7 + 1`` (day 0-6 -> week 1)."""
    return day // 7 + 1


def window_grid(
    timeline: pd.DataFrame, window_weeks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The participant-weeks of the remodelling window within follow-up, laid out in one array.

    Every analysed participant (timeline order) has the weeks 1..min(``window_weeks``, week of
    ``obs_end``), in order, the week holding ``obs_end`` included.

    Returns
    -------
    last_week : array of int
        Each participant's last week in the grid.
    starts : array of int
        Each participant's first cell: week ``w`` of participant ``p`` is cell
        ``starts[p] + w - 1``.
    grid_pos : array of int
        The participant (timeline position) of every cell.
    """
    follow = timeline["follow_up_days"].to_numpy().astype("int64")
    last_week = np.minimum(window_weeks, week_of_day(follow)).astype("int64")
    starts = np.cumsum(last_week) - last_week
    return last_week, starts, np.repeat(np.arange(len(timeline)), last_week)


def computation(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Make a public metric function one computation for the timeline's data notes.

    Within a call of ``fn`` each data note of :func:`participant_timeline` is issued once,
    however many of the metric functions it calls compute the timeline (e.g.
    ``participant_metrics`` and its seven families); a call of ``fn`` inside another
    computation is part of that one. Every call from outside issues the notes again, so every
    caller that shows warnings (a notebook cell, a report section, the command line) sees them.
    """

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if _NOTES_ISSUED.get() is not None:
            return fn(*args, **kwargs)
        token = _NOTES_ISSUED.set(set())
        try:
            return fn(*args, **kwargs)
        finally:
            _NOTES_ISSUED.reset(token)

    return wrapper


def participant_timeline(cohort: Cohort, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """One row per analysed participant with the follow-up quantities of §3.

    Participants enrolled after the data cut-off are not yet in the analysis; they are left out
    with a :class:`~rehabstats.errors.DataWarning` saying how many, and the rows dated after
    the cut-off are counted in one more per table (:meth:`Cohort.cutoff_notes`). Computed once
    per cohort and cut-off; the notes are issued once per :func:`computation`.

    Returns
    -------
    DataFrame indexed by ``participant_id`` with columns

    site, arm, tendinopathy_type, sex, age_years, body_mass_kg : from participants
    enrolled_on : Timestamp
    withdrawal_reason and any extra participants columns : from participants
    withdrawn_on : Timestamp or NaT (withdrawals after the cut-off are not yet known: NaT)
    withdrawn : bool, withdrawn on or before the data cut-off
    data_cutoff : Timestamp
    obs_end : Timestamp, min(withdrawn_on, data_cutoff)
    follow_up_days : int, obs_end - enrolled_on in days
    """
    cutoff = analysis_cutoff(cohort, config)
    timeline = cohort.derived(("participant_timeline", cutoff), lambda: _timeline(cohort, cutoff))
    issued = _NOTES_ISSUED.get()
    for note in cohort.cutoff_notes(cutoff):  # enrolled after it, then rows dated after it
        if issued is not None:
            if note in issued:
                continue
            issued.add(note)
        warnings.warn(note, DataWarning, stacklevel=2)
    return timeline.copy(deep=False)  # the caller's to change; the kept one stays as it is


_DERIVED = ("withdrawn_on", "withdrawn", "data_cutoff", "obs_end", "follow_up_days")
"""Timeline columns :func:`participant_timeline` derives (``withdrawn_on`` as known at the
cut-off), not taken from the participants table as they are."""


def _timeline(cohort: Cohort, cutoff: pd.Timestamp) -> pd.DataFrame:
    people = cohort.participants.set_index("participant_id", drop=True)
    people = people[~(people["enrolled_on"] > cutoff)]
    withdrawn_on = people["withdrawn_on"].where(people["withdrawn_on"] <= cutoff)
    obs_end = withdrawn_on.fillna(cutoff).clip(upper=cutoff)
    fixed = ["site", "arm", "tendinopathy_type", "sex", "age_years", "body_mass_kg", "enrolled_on"]
    # every other participants column too (withdrawal, extra columns): any can group results
    extra = [c for c in people.columns if c not in fixed and c not in _DERIVED]
    out = people[fixed + extra].copy()
    out["withdrawn_on"] = withdrawn_on
    out["withdrawn"] = withdrawn_on.notna()
    out["data_cutoff"] = cutoff
    out["obs_end"] = obs_end
    out["follow_up_days"] = (obs_end - people["enrolled_on"]).dt.days.astype("int64")
    return out


def observed_rows(
    frame: pd.DataFrame,
    date_column: str,
    timeline: pd.DataFrame,
    *,
    window_weeks: int | None = None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of a child table within follow-up, without copying the table.

    Keeps rows of analysed participants dated on or before their ``obs_end`` (and, with
    ``window_weeks``, in weeks 1..window_weeks, i.e. day 0 to 7·window_weeks − 1). Rows before
    enrolment are kept when the table allows them (VISA-A baseline), with negative days.

    Parameters
    ----------
    frame : DataFrame
        A child table (``participant_id`` and ``date_column``).
    date_column : str
    timeline : DataFrame
        :func:`participant_timeline` output.
    window_weeks : int, optional
        Keep only the rows in weeks 1..window_weeks.
    rows : array of int, optional
        Positions of the rows to consider (default: every row).

    Returns
    -------
    kept : array of int
        Positions of the kept rows in ``frame``, in table order.
    position : array of int
        Each kept row's participant position in ``timeline``.
    day : array of int
        Each kept row's day from enrolment.
    """
    # one padding entry, for rows whose participant is not analysed (position -1)
    enrolled = np.r_[
        np.asarray(timeline["enrolled_on"].to_numpy(), dtype="datetime64[ns]").view("int64"), 0
    ]
    follow_up = np.r_[timeline["follow_up_days"].to_numpy().astype("float64"), -np.inf]
    pos = participant_positions(frame["participant_id"], timeline.index, rows)
    row_enrolled = enrolled[pos]
    row_follow = follow_up[pos]
    dates = np.asarray(frame[date_column].to_numpy(), dtype="datetime64[ns]").view("int64")
    if rows is not None:
        dates = dates[rows]
    # days as timedelta64[ns] / timedelta64(1, "D") computes them (int64 ns cast to float64,
    # divided by the day's ns); the gathered buffer is reused for the difference
    nat = dates == np.iinfo("int64").min
    delta = np.subtract(dates, row_enrolled, out=row_enrolled)
    # the quotient into the same buffer (element by element): one array per row less
    day = np.divide(delta, float(86_400 * 10**9), out=delta.view("float64"))
    del delta, row_enrolled
    keep = np.less_equal(day, row_follow)  # -inf for participants not analysed
    del row_follow
    if nat.any():
        keep &= ~nat
    if window_weeks is not None:
        keep &= (day >= 0) & (day < 7 * window_weeks)
    if keep.all():  # the usual case for a whole table: no copies of the kept rows
        out_rows = np.arange(len(keep)) if rows is None else np.asarray(rows)
        return out_rows, pos, day.astype("int64")
    kept = np.flatnonzero(keep)
    out_rows = kept if rows is None else np.asarray(rows)[kept]
    return out_rows, pos[kept], day[kept].astype("int64")


def observe(
    frame: pd.DataFrame,
    date_column: str,
    timeline: pd.DataFrame,
    *,
    window_weeks: int | None = None,
) -> pd.DataFrame:
    """The rows of :func:`observed_rows` as a table, with ``day`` and ``week`` columns added.

    ``participant_id`` stays categorical over the whole cohort's ids.
    """
    rows, _, day = observed_rows(frame, date_column, timeline, window_weeks=window_weeks)
    out = frame.iloc[rows]
    out["day"] = day
    out["week"] = week_of_day(out["day"])
    return out


def check_group_by(participants: pd.DataFrame, by: str) -> None:
    """Check that ``by`` can group these participants, else say why.

    Any participants column can group results (the contract's, such as ``site`` or ``arm``
    (:data:`rehabstats.constants.GROUPABLE`), or an extra column of the data such as
    ``referral_source``) but ``participant_id``, when every participant has a value in it: a
    participant without one would belong to no group, and is neither dropped nor put in a made-up
    group (docs/metrics.md, *Interpretation choices: Groups*).

    Parameters
    ----------
    participants : DataFrame
        The participants table (or the timeline, indexed by ``participant_id``).
    by : str
        The column.

    Raises
    ------
    ParameterError
        ``by`` is not a participants column (the message lists them and names the closest), or
        it has missing values (how many, and the first participants without one).
    """
    import difflib

    columns = [c for c in participants.columns if c not in ("participant_id", *_DERIVED)]
    if by not in columns:
        close = difflib.get_close_matches(by, columns, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(
            f"cannot group by {by!r}: not a participants column{hint}; the participants "
            f"columns are: {', '.join(columns)}"
        )
    missing = participants[by].isna().to_numpy()
    if missing.any():
        ids = (participants["participant_id"] if "participant_id" in participants
               else participants.index.to_series())[missing].astype("str")  # fmt: skip
        shown = ", ".join(ids.iloc[:5]) + (", ..." if len(ids) > 5 else "")
        n = int(missing.sum())
        raise ParameterError(
            f"cannot group by {by!r}: {n} participant{'s' * (n != 1)} {'have' if n != 1 else 'has'}"
            f" no value in it ({shown}); every participant needs a group: fill the column in "
            "or group by another one"
        )


def group_labels(timeline: pd.DataFrame, by: str | None) -> pd.Series:
    """The analysis group of each participant: ``"all"`` without ``by``, else the column value.

    Raises ``ParameterError`` (:func:`check_group_by`) when ``by`` is not a participants column
    or has missing values.
    """
    if by is None:
        return pd.Series(OVERALL, index=timeline.index, name="group", dtype="str")
    check_group_by(timeline, by)
    return timeline[by].astype("str").rename("group")


def stage_on(
    s_who: np.ndarray,
    s_day: np.ndarray,
    stage: np.ndarray,
    p_who: np.ndarray,
    p_day: np.ndarray,
) -> np.ndarray:
    """Stage on given participant-days: the stage of the latest scheduled session on or before.

    Parameters
    ----------
    s_who, s_day, stage : arrays
        The scheduled sessions in source order (e.g. :func:`observed_rows` of the sessions
        table): participant (position or code; -1 is ignored), day and stage. Several sessions
        on one day: the last one in source order is the latest.
    p_who, p_day : arrays
        The participant-days asked about, participants numbered as in ``s_who`` (-1: NaN).

    Returns
    -------
    array of float
        The stage on each participant-day; NaN before the participant's first session.
    """
    s_who = np.asarray(s_who, dtype="int64")
    s_day = np.asarray(s_day, dtype="int64")
    stage = np.asarray(stage, dtype="float64")
    p_who = np.asarray(p_who, dtype="int64")
    p_day = np.asarray(p_day, dtype="int64")
    valid = s_who >= 0
    s_who, s_day, stage = s_who[valid], s_day[valid], stage[valid]
    out = np.full(len(p_who), np.nan)
    if len(s_day) and len(p_day):
        s_key = day_keys(s_who, s_day)
        # by participant and day; several sessions on one day keep source order, the last wins
        order = sort_order(s_key)
        if order is not None:
            s_key, s_who, stage = s_key[order], s_who[order], stage[order]
        at = np.searchsorted(s_key, day_keys(p_who, p_day), side="right") - 1
        safe = np.maximum(at, 0)
        hit = (at >= 0) & (p_who >= 0) & (s_who[safe] == p_who)
        out = np.where(hit, stage[safe], np.nan)
    return out
