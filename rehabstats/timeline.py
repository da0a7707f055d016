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

from rehabstats.cohort import Cohort
from rehabstats.config import AnalysisConfig
from rehabstats.errors import DataWarning, ParameterError

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
            f"{int(late.sum())} participants enrolled after the data cut-off {cutoff.date()} "
            "are not analysed (no follow-up yet).",
            DataWarning,
            stacklevel=2,
        )
        people = people[~late]
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
    right = sessions[["participant_id", "day", "stage"]].copy()
    right["participant_id"] = right["participant_id"].astype("str")
    right = right.sort_values("day", kind="stable")
    left = pd.DataFrame(
        {
            "participant_id": points["participant_id"].astype("str").to_numpy(),
            "day": points[day_column].to_numpy().astype("int64"),
            "_pos": np.arange(len(points)),
        }
    ).sort_values("day", kind="stable")
    merged = pd.merge_asof(left, right, on="day", by="participant_id", direction="backward")
    stage = merged.sort_values("_pos")["stage"].to_numpy(dtype="float64")
    return pd.Series(stage, index=points.index, name="stage")
