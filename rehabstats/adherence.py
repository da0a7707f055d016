"""Adherence to the loading programme (``docs/metrics.md`` §4).

Sessions, completion, volume and load progression within the remodelling window (weeks
1..``window_weeks``) and within follow-up (§3): sessions dated after ``obs_end`` (withdrawal or
the data cut-off) or after the window do not count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rehabstats.cohort import Cohort
from rehabstats.config import AnalysisConfig
from rehabstats.timeline import observe, participant_timeline

__all__ = ["adherence", "weekly_adherence"]

_LOAD_STAGES = (2, 3)
"""Stages whose external load is expected to progress (slow isotonic, heavy slow resistance)."""


def adherence(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Session and volume adherence and load stagnation per participant.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        Thresholds (``window_weeks``, ``adherent_threshold``, ``stagnation_weeks``,
        ``data_cutoff``); default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per analysed participant, in the order of
        :func:`~rehabstats.timeline.participant_timeline`, with columns

        participant_id : str
        sessions_scheduled : int
            Scheduled sessions in weeks 1..window_weeks on or before ``obs_end``.
        sessions_completed : int
            Of those, sessions with ``completed_sets >= 1``.
        adherence_sessions : float
            sessions_completed / sessions_scheduled; NaN when none was scheduled.
        adherence_volume : float
            Completed share of the prescribed volume (see Notes); NaN when none was scheduled.
        adherent : boolean (nullable)
            ``adherence_sessions >= adherent_threshold``; NA when none was scheduled.
        load_stagnant_weeks : int
            Longest run of stagnant load weeks (see Notes); 0 without qualifying weeks.
        load_stagnant : bool
            ``load_stagnant_weeks >= stagnation_weeks``.

    Notes
    -----
    ``docs/metrics.md`` §4 (CERT item 16: session adherence is the primary definition, volume
    adherence the secondary one). A session is completed when ``completed_sets >= 1``.

    ::

        adherence_sessions = completed sessions / scheduled sessions
        adherence_volume   = sum(min(cs * cr, ps * pr)) / sum(ps * pr)

    with cs, cr the completed sets and reps per set and ps, pr the prescribed ones, summed over
    the scheduled sessions: over-completing one session cannot make up for another, and a partly
    completed session (e.g. 2 of 3 sets) counts in part.

    A participant with no scheduled session in the window has adherence NaN and ``adherent`` NA:
    there was nothing to adhere to (e.g. enrolled days before the cut-off, or a programme not yet
    started), which is neither adherence nor non-adherence; counting them as non-adherent would
    bias the adherent proportion downwards.

    **Load stagnation.** A *load week* is a week of the window (within follow-up) with at least
    one completed stage-2 or stage-3 session whose ``load_kg`` is recorded; its weekly maximum is
    the largest recorded ``load_kg`` among those sessions (stage-1 and stage-4 sessions and
    missing loads are ignored; a week whose stage-2/3 sessions all lack a load is not a load
    week, since its progression is unknown). A load week is *stagnant* when its maximum does not
    exceed (``<=``) the highest maximum of **all** earlier load weeks of the participant, so the
    first load week is never stagnant. ``load_stagnant_weeks`` is the longest run of stagnant
    load weeks in consecutive calendar weeks: a week that is not a load week (a gap) ends the
    run, and so does a week whose maximum exceeds every earlier one. A gap does not reset the
    reference maximum: returning after a gap at or below the earlier best load starts a new
    stagnant run of 1.
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    sessions = _window_sessions(cohort, timeline, config)
    totals = _counts(sessions, ["participant_id"]).reindex(timeline.index)
    scheduled = totals["sessions_scheduled"].fillna(0).astype("int64")
    completed = totals["sessions_completed"].fillna(0).astype("int64")
    adherence_sessions = completed / scheduled.where(scheduled > 0)
    adherent = (adherence_sessions >= config.adherent_threshold).astype("boolean")
    adherent = adherent.mask(adherence_sessions.isna())
    stagnant_weeks = (
        _load_stagnant_weeks(sessions).reindex(timeline.index).fillna(0).astype("int64")
    )
    out = pd.DataFrame(
        {
            "participant_id": timeline.index.astype("str"),
            "sessions_scheduled": scheduled.to_numpy(),
            "sessions_completed": completed.to_numpy(),
            "adherence_sessions": adherence_sessions.to_numpy(dtype="float64"),
            "adherence_volume": totals["adherence_volume"].to_numpy(dtype="float64"),
            "adherent": adherent.array,
            "load_stagnant_weeks": stagnant_weeks.to_numpy(),
            "load_stagnant": (stagnant_weeks >= config.stagnation_weeks).to_numpy(),
        }
    )
    return out


def weekly_adherence(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Session and volume adherence per participant-week of the remodelling window.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``window_weeks`` and ``data_cutoff``; default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per analysed participant and every week from 1 to min(``window_weeks``, week of
        ``obs_end``), including weeks without a scheduled session; participants in
        :func:`~rehabstats.timeline.participant_timeline` order, then by week. Columns

        participant_id : str
        week : int
        sessions_scheduled, sessions_completed : int
            As in :func:`adherence`, for that week (0 when none).
        adherence_sessions, adherence_volume : float
            As in :func:`adherence`, for that week; NaN when no session was scheduled.

    Notes
    -----
    ``docs/metrics.md`` §4 ("weekly adherence per participant-week likewise") and §3
    (``week = day // 7 + 1``). The week holding ``obs_end`` is included even when only partly
    observed; its sessions after ``obs_end`` do not count.
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    sessions = _window_sessions(cohort, timeline, config)
    last_week = np.minimum(
        config.window_weeks, timeline["follow_up_days"].to_numpy() // 7 + 1
    ).astype("int64")
    total = int(last_week.sum())
    starts = np.cumsum(last_week) - last_week
    grid = pd.DataFrame(
        {
            "participant_id": np.repeat(timeline.index.astype("str").to_numpy(), last_week),
            "week": np.arange(total, dtype="int64") - np.repeat(starts, last_week) + 1,
        }
    )
    weekly = _counts(sessions, ["participant_id", "week"])
    out = grid.merge(weekly, how="left", left_on=["participant_id", "week"], right_index=True)
    out[["sessions_scheduled", "sessions_completed"]] = (
        out[["sessions_scheduled", "sessions_completed"]].fillna(0).astype("int64")
    )
    out["adherence_sessions"] = out["sessions_completed"] / out["sessions_scheduled"].where(
        out["sessions_scheduled"] > 0
    )
    out["adherence_volume"] = out["adherence_volume"].astype("float64")
    columns = [
        "participant_id",
        "week",
        "sessions_scheduled",
        "sessions_completed",
        "adherence_sessions",
        "adherence_volume",
    ]
    return out[columns].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------


def _window_sessions(
    cohort: Cohort, timeline: pd.DataFrame, config: AnalysisConfig
) -> pd.DataFrame:
    """Scheduled sessions in the window within follow-up, with text ids and volume columns."""
    sessions = observe(cohort.sessions, "session_date", timeline, window_weeks=config.window_weeks)
    sessions["participant_id"] = sessions["participant_id"].astype("str")
    sessions["completed"] = sessions["completed_sets"] >= 1
    prescribed = sessions["prescribed_sets"] * sessions["prescribed_reps"]
    done = sessions["completed_sets"] * sessions["completed_reps"]
    sessions["volume_prescribed"] = prescribed.astype("float64")
    sessions["volume_done"] = np.minimum(done, prescribed).astype("float64")
    return sessions


def _counts(sessions: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Scheduled, completed and volume adherence per group of ``keys``."""
    grouped = sessions.groupby(keys, sort=False)
    out = pd.DataFrame(
        {
            "sessions_scheduled": grouped.size(),
            "sessions_completed": grouped["completed"].sum(),
            "adherence_volume": grouped["volume_done"].sum() / grouped["volume_prescribed"].sum(),
        }
    )
    return out


def _load_stagnant_weeks(sessions: pd.DataFrame) -> pd.Series:
    """Longest stagnant-load run per participant (participants with load weeks only)."""
    loaded = sessions[
        sessions["completed"] & sessions["stage"].isin(_LOAD_STAGES) & sessions["load_kg"].notna()
    ]
    weekly = loaded.groupby(["participant_id", "week"], sort=True)["load_kg"].max().reset_index()
    if weekly.empty:
        return pd.Series(dtype="int64")
    person = weekly.groupby("participant_id", sort=False)
    earlier_best = person["load_kg"].cummax().groupby(weekly["participant_id"]).shift(1)
    stagnant = (weekly["load_kg"] <= earlier_best).to_numpy()  # NaN (first week) -> False
    first = ~weekly["participant_id"].duplicated().to_numpy()
    gap = np.r_[True, np.diff(weekly["week"].to_numpy()) != 1] | first
    # a run starts at every week that is not stagnant or follows a gap; number the runs
    run = np.cumsum(~stagnant | gap)
    length = pd.Series(stagnant.astype("int64")).groupby(run).cumsum()
    return length.groupby(weekly["participant_id"].to_numpy()).max()
