"""Pain monitoring (``docs/metrics.md`` §5): diary days, pain-monitoring rules, flares, trends."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rehabstats.cohort import Cohort
from rehabstats.timeline import observe

__all__ = ["morning_nrs", "next_morning_rise"]


def morning_nrs(
    cohort: Cohort, timeline: pd.DataFrame, *, window_weeks: int | None = None
) -> pd.DataFrame:
    """Morning NRS per participant-day within follow-up.

    Returns
    -------
    DataFrame with columns participant_id (categorical), day, week, nrs, sorted by participant
    and day; one row per day with a morning rating (several ratings on one day: their mean,
    flagged by a validation warning).
    """
    pain = cohort.pain
    morning = observe(
        pain[pain["timing"] == "morning"], "recorded_on", timeline, window_weeks=window_weeks
    )
    daily = (
        morning.groupby(["participant_id", "day"], observed=True, sort=True)["nrs"]
        .mean()
        .reset_index()
    )
    daily["week"] = daily["day"] // 7 + 1
    return daily[["participant_id", "day", "week", "nrs"]]


def next_morning_rise(days: pd.DataFrame, morning: pd.DataFrame) -> pd.Series:
    """Next-morning NRS minus same-day morning NRS for each (participant_id, day) of ``days``.

    ``morning`` is :func:`morning_nrs` output. NaN where either morning rating is missing (the
    rule using it is then unknown).
    """
    lookup = pd.Series(
        morning["nrs"].to_numpy(),
        index=pd.MultiIndex.from_arrays(
            [morning["participant_id"].astype("str"), morning["day"].to_numpy()]
        ),
    )
    ids = days["participant_id"].astype("str").to_numpy()
    day = days["day"].to_numpy()
    same = lookup.reindex(pd.MultiIndex.from_arrays([ids, day])).to_numpy()
    following = lookup.reindex(pd.MultiIndex.from_arrays([ids, day + 1])).to_numpy()
    return pd.Series(
        np.asarray(following, dtype=float) - np.asarray(same, dtype=float), index=days.index
    )
