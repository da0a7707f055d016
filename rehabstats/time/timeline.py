"""Study time shared by every metric: days and weeks from enrolment, follow-up, windows.

Definitions (``docs/metrics.md`` §3):

* ``day`` = calendar days from ``enrolled_on`` (day 0); ``week`` = ``day // 7 + 1`` (week 1 =
  days 0-6, week 12 = days 77-83). The remodelling window is weeks 1..``window_weeks``.
* ``data_cutoff``: explicit (``AnalysisConfig.data_cutoff``), else the cohort's own cut-off
  (by default the latest date in any table). Never the wall-clock date.
* ``obs_end`` = min(``withdrawn_on``, ``data_cutoff``); ``follow_up_days`` = ``obs_end`` -
  ``enrolled_on``. Data after ``obs_end`` is excluded from every metric.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.data.cohort import Cohort
from rehabstats.errors import DataWarning, Note, ParameterError

__all__ = [
    "GROUPABLE",
    "analysis_cutoff",
    "group_labels",
    "stage_on",
    "day_of",
    "observe",
    "participant_timeline",
    "per_row",
    "week_of_day",
]


def analysis_cutoff(cohort: Cohort, config: AnalysisConfig | None = None) -> pd.Timestamp:
    """The data cut-off in force: the configuration's if set, else the cohort's."""
    config = config or AnalysisConfig()
    return config.cutoff if config.cutoff is not None else cohort.data_cutoff


def week_of_day(day: pd.Series | np.ndarray) -> pd.Series | np.ndarray:
    """``week = day // 7 + 1`` (day 0-6 -> week 1)."""
    return day // 7 + 1


def participant_timeline(cohort: Cohort, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """One row per analysed participant with the follow-up quantities of §3.

    Participants enrolled after the data cut-off are not yet in the analysis; they are left out
    with a :class:`~rehabstats.errors.DataWarning` saying how many.

    Returns
    -------
    DataFrame indexed by ``participant_id`` with columns

    site, arm, tendinopathy_type, sex, age_years, body_mass_kg : from participants
    enrolled_on : Timestamp
    withdrawn_on : Timestamp or NaT (withdrawals after the cut-off are not yet known: NaT)
    withdrawn : bool, withdrawn on or before the data cut-off
    data_cutoff : Timestamp
    obs_end : Timestamp, min(withdrawn_on, data_cutoff)
    follow_up_days : int, obs_end - enrolled_on in days
    """
    cutoff = analysis_cutoff(cohort, config)
    people = cohort.participants.set_index("participant_id", drop=True)
    late = people["enrolled_on"] > cutoff
    if late.any():
        warnings.warn(
            Note(
                "{n} participants enrolled after the data cut-off {cutoff} are not analysed "
                "(no follow-up yet).",
                counts={"n": int(late.sum())},
                cutoff=cutoff.date().isoformat(),
            ),
            DataWarning,
            stacklevel=2,
        )
        people = people[~late]
    for note in cohort.cutoff_notes(cutoff, enrolments=False):  # rows after it: not analysed
        warnings.warn(note, DataWarning, stacklevel=2)
    withdrawn_on = people["withdrawn_on"].where(people["withdrawn_on"] <= cutoff)
    obs_end = withdrawn_on.fillna(cutoff).clip(upper=cutoff)
    out = people[
        ["site", "arm", "tendinopathy_type", "sex", "age_years", "body_mass_kg", "enrolled_on"]
    ].copy()
    out["withdrawn_on"] = withdrawn_on
    out["withdrawn"] = withdrawn_on.notna()
    out["data_cutoff"] = cutoff
    out["obs_end"] = obs_end
    out["follow_up_days"] = (obs_end - people["enrolled_on"]).dt.days.astype("int64")
    return out


def per_row(ids: pd.Series, values: pd.Series) -> np.ndarray:
    """Look up a per-participant value for every row of a child table.

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


def day_of(frame: pd.DataFrame, date_column: str, timeline: pd.DataFrame) -> np.ndarray:
    """Days from enrolment of ``frame[date_column]`` (float; NaN for unanalysed participants)."""
    enrolled = per_row(frame["participant_id"], timeline["enrolled_on"])
    delta = frame[date_column].to_numpy() - enrolled.astype("datetime64[ns]")
    return delta / np.timedelta64(1, "D")


def observe(
    frame: pd.DataFrame,
    date_column: str,
    timeline: pd.DataFrame,
    *,
    window_weeks: int | None = None,
) -> pd.DataFrame:
    """Rows of a child table within follow-up, with ``day`` and ``week`` columns added.

    Keeps rows of analysed participants dated on or before their ``obs_end`` (and, with
    ``window_weeks``, in weeks 1..window_weeks, i.e. day 0 to 7·window_weeks − 1). Rows before
    enrolment are kept when the table allows them (VISA-A baseline), with negative days.
    ``participant_id`` stays categorical over the whole cohort's ids.
    """
    day = day_of(frame, date_column, timeline)
    follow_up = per_row(frame["participant_id"], timeline["follow_up_days"]).astype("float64")
    keep = ~np.isnan(day) & (day <= follow_up)
    if window_weeks is not None:
        keep &= (day >= 0) & (day < 7 * window_weeks)
    out = frame.loc[keep].copy()
    out["day"] = day[keep].astype("int64")
    out["week"] = week_of_day(out["day"])
    return out


def _observed_rows(
    frame: pd.DataFrame,
    date_column: str,
    timeline: pd.DataFrame,
    *,
    window_weeks: int | None = None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows :func:`observe` keeps, without copying the table.

    Returns ``(kept, position, day)``: the positions of the kept rows in ``frame`` (among
    ``rows`` when given), each kept row's participant position in ``timeline`` and its day
    (int64), in table order. Same filter and day arithmetic as :func:`observe`.
    """
    ids = frame["participant_id"]
    # one padding entry so that gathers stay in bounds when nobody is analysed
    enrolled = np.r_[
        np.asarray(timeline["enrolled_on"].to_numpy(), dtype="datetime64[ns]").view("int64"), 0
    ]
    follow_up = np.r_[timeline["follow_up_days"].to_numpy().astype("float64"), -np.inf]
    if isinstance(ids.dtype, pd.CategoricalDtype):
        # one gather per row from per-category tables (the last entry is for code -1)
        lookup = np.r_[timeline.index.get_indexer(ids.cat.categories), -1].astype("int64")
        codes = ids.cat.codes.to_numpy()
        if rows is not None:
            codes = codes[rows]
        pos = lookup[codes]
    else:
        values = ids.to_numpy() if rows is None else ids.to_numpy()[rows]
        pos = timeline.index.get_indexer(values).astype("int64")
        lookup = None
    if lookup is None:
        known = pos >= 0
        row_enrolled = enrolled[np.where(known, pos, 0)]
        row_follow = np.where(known, follow_up[np.where(known, pos, 0)], -np.inf)
    else:
        analysed = lookup >= 0
        safe = np.where(analysed, lookup, 0)
        row_enrolled = np.where(analysed, enrolled[safe], 0)[codes]
        row_follow = np.where(analysed, follow_up[safe], -np.inf)[codes]
    dates = np.asarray(frame[date_column].to_numpy(), dtype="datetime64[ns]").view("int64")
    if rows is not None:
        dates = dates[rows]
    # the float arithmetic of observe: timedelta64[ns] / timedelta64(1, "D") (int64 ns cast
    # to float64, divided by the day's ns); the gathered buffer is reused for the difference
    nat = dates == np.iinfo("int64").min
    delta = np.subtract(dates, row_enrolled, out=row_enrolled)
    day = np.divide(delta, float(86_400 * 10**9))
    keep = np.less_equal(day, row_follow)  # -inf for participants not analysed
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


def _day_keys(pos: np.ndarray, day: np.ndarray) -> np.ndarray:
    """One int64 per (participant position, day); ``key + 1`` is the next day."""
    return (pos.astype("int64") << 32) + (day.astype("int64") + (1 << 31))


GROUPABLE = ("site", "arm", "tendinopathy_type", "sex")
"""Participant columns a metric can be grouped ``by``."""


def group_labels(timeline: pd.DataFrame, by: str | None) -> pd.Series:
    """The analysis group of each participant: ``"all"`` without ``by``, else the column value.

    Raises ``ParameterError`` naming the valid columns when ``by`` is not one of them.
    """
    if by is None:
        return pd.Series("all", index=timeline.index, name="group", dtype="str")
    if by not in GROUPABLE:
        raise ParameterError(f"cannot group by {by!r}; choose one of: {', '.join(GROUPABLE)}")
    return timeline[by].astype("str").rename("group")


def stage_on(sessions: pd.DataFrame, points: pd.DataFrame, *, day_column: str = "day") -> pd.Series:
    """Stage on given participant-days: the stage of the latest scheduled session on or before.

    Parameters
    ----------
    sessions : DataFrame
        :func:`observe` output for the sessions table (columns participant_id, day, stage).
        Several sessions on one day: the last one in source order is the latest.
    points : DataFrame
        Columns participant_id and ``day_column``.

    Returns
    -------
    Series aligned with ``points`` (float: NaN before a participant's first session).
    """
    s_ids, p_ids = sessions["participant_id"], points["participant_id"]
    if isinstance(s_ids.dtype, pd.CategoricalDtype):
        categories = s_ids.cat.categories
        s_codes = s_ids.cat.codes.to_numpy().astype("int64")
    else:
        s_codes, categories = pd.factorize(s_ids.astype("str"))
        s_codes = s_codes.astype("int64")
        categories = pd.Index(categories)
    if isinstance(p_ids.dtype, pd.CategoricalDtype) and p_ids.cat.categories.equals(categories):
        p_codes = p_ids.cat.codes.to_numpy().astype("int64")
    else:
        p_codes = categories.astype("str").get_indexer(p_ids.astype("str").to_numpy())
        p_codes = p_codes.astype("int64")
    out = _stage_on_codes(
        s_codes,
        sessions["day"].to_numpy().astype("int64"),
        sessions["stage"].to_numpy(dtype="float64"),
        p_codes,
        points[day_column].to_numpy().astype("int64"),
    )
    return pd.Series(out, index=points.index, name="stage")


def _stage_on_codes(
    s_codes: np.ndarray,
    s_day: np.ndarray,
    stage: np.ndarray,
    p_codes: np.ndarray,
    p_day: np.ndarray,
) -> np.ndarray:
    """:func:`stage_on` on integer participant codes (sessions in source order; -1 = none)."""
    s_codes = np.asarray(s_codes, dtype="int64")
    s_day = np.asarray(s_day, dtype="int64")
    stage = np.asarray(stage, dtype="float64")
    p_codes = np.asarray(p_codes, dtype="int64")
    p_day = np.asarray(p_day, dtype="int64")
    valid = s_codes >= 0
    s_codes, s_day, stage = s_codes[valid], s_day[valid], stage[valid]
    out = np.full(len(p_codes), np.nan)
    if len(s_day) and len(p_day):
        low = min(int(s_day.min()), int(p_day.min()))
        span = max(int(s_day.max()), int(p_day.max())) - low + 1
        s_key = s_codes * span + (s_day - low)
        # by participant and day; several sessions on one day keep source order, the last wins
        order = np.argsort(s_key, kind="stable")
        s_key, s_codes, stage = s_key[order], s_codes[order], stage[order]
        p_key = p_codes * span + (p_day - low)
        at = np.searchsorted(s_key, p_key, side="right") - 1
        safe = np.maximum(at, 0)
        hit = (at >= 0) & (p_codes >= 0) & (s_codes[safe] == p_codes)
        out = np.where(hit, stage[safe], np.nan)
    return out
