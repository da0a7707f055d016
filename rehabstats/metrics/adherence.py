"""Adherence to the loading programme (``docs/metrics.md`` §4).

Sessions, completion, volume and load progression within the remodelling window (weeks
1..``window_weeks``) and within follow-up (§3): sessions dated after ``obs_end`` (withdrawal or
the data cut-off) or after the window do not count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.data.cohort import Cohort
from rehabstats.time.keys import day_keys, key_days, key_participants, run_starts, sort_order
from rehabstats.time.timeline import (
    computation,
    observed_rows,
    participant_timeline,
    window_grid,
)

__all__ = ["adherence", "weekly_adherence"]

_LOAD_STAGES = (2, 3)
"""Stages whose external load is expected to progress (slow isotonic, heavy slow resistance)."""


@computation
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
        :func:`~rehabstats.time.timeline.participant_timeline`, with columns

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
    n = len(timeline)
    w = _window_arrays(cohort, timeline, config)
    scheduled, completed, adherence_sessions, adherence_volume = _adherence(w["pos"], w, n)
    some = scheduled > 0
    adherent = pd.arrays.BooleanArray(
        (adherence_sessions >= config.adherent_threshold) & some, ~some
    )
    stagnant_weeks = _load_stagnant_arrays(w, n)
    out = pd.DataFrame(
        {
            "participant_id": timeline.index.astype("str"),
            "sessions_scheduled": scheduled,
            "sessions_completed": completed,
            "adherence_sessions": adherence_sessions,
            "adherence_volume": adherence_volume,
            "adherent": adherent,
            "load_stagnant_weeks": stagnant_weeks,
            "load_stagnant": stagnant_weeks >= config.stagnation_weeks,
        }
    )
    return out


@computation
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
        :func:`~rehabstats.time.timeline.participant_timeline` order, then by week. Columns

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
    w = _window_arrays(cohort, timeline, config)
    last_week, starts, grid_pos = window_grid(timeline, config.window_weeks)
    total = len(grid_pos)
    cell = starts[w["pos"]] + w["week"] - 1
    scheduled, completed, adherence_sessions, adherence_volume = _adherence(cell, w, total)
    return pd.DataFrame(
        {
            "participant_id": timeline.index.astype("str").take(grid_pos).array,
            "week": np.arange(total, dtype="int64") - np.repeat(starts, last_week) + 1,
            "sessions_scheduled": scheduled,
            "sessions_completed": completed,
            "adherence_sessions": adherence_sessions,
            "adherence_volume": adherence_volume.astype("float64"),
        }
    )


def _adherence(
    at: np.ndarray, w: dict[str, np.ndarray], size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scheduled and completed sessions, session and volume adherence per cell (participant or
    participant-week) of a grid of ``size``, ``at`` being each session's cell (see
    :func:`adherence` for the formulas; NaN adherence where none was scheduled)."""
    scheduled = np.bincount(at, minlength=size).astype("int64")
    completed = np.bincount(at[w["completed"]], minlength=size).astype("int64")
    prescribed = np.bincount(at, weights=w["volume_prescribed"], minlength=size)
    done = np.bincount(at, weights=w["volume_done"], minlength=size)
    some = scheduled > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        sessions = completed / np.where(some, scheduled, np.nan)
        volume = np.where(some, done / np.where(some, prescribed, 1.0), np.nan)
    return scheduled, completed, sessions, volume.astype("float64")


def _window_arrays(
    cohort: Cohort, timeline: pd.DataFrame, config: AnalysisConfig
) -> dict[str, np.ndarray]:
    """Every scheduled session in the window within follow-up, as arrays: timeline position,
    week, completion (``completed_sets >= 1``), prescribed volume, completed volume (capped
    at the prescribed one), stage and load."""
    sessions = cohort.sessions
    rows, pos, day = observed_rows(
        sessions, "session_date", timeline, window_weeks=config.window_weeks
    )
    prescribed = (
        sessions["prescribed_sets"].to_numpy()[rows] * sessions["prescribed_reps"].to_numpy()[rows]
    )
    done = sessions["completed_sets"].to_numpy()[rows] * sessions["completed_reps"].to_numpy()[rows]
    return {
        "pos": pos,
        "week": day // 7 + 1,
        "completed": sessions["completed_sets"].to_numpy()[rows] >= 1,
        "volume_prescribed": prescribed.astype("float64"),
        "volume_done": np.minimum(done, prescribed).astype("float64"),
        "stage": sessions["stage"].to_numpy()[rows],
        "load_kg": sessions["load_kg"].to_numpy(dtype="float64", na_value=np.nan)[rows],
    }


def _load_stagnant_arrays(w: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Longest stagnant-load run (see :func:`adherence`) for every timeline position; 0
    without load weeks."""
    out = np.zeros(n, dtype="int64")
    loaded = w["completed"] & np.isin(w["stage"], _LOAD_STAGES) & ~np.isnan(w["load_kg"])
    pos, week, load = w["pos"][loaded], w["week"][loaded], w["load_kg"][loaded]
    if len(pos) == 0:
        return out
    keys = day_keys(pos, week)
    order = sort_order(keys)
    if order is not None:
        keys, load = keys[order], load[order]
    starts = run_starts(keys)
    weekly_max = np.maximum.reduceat(load, starts)
    w_pos, w_week = key_participants(keys[starts]), key_days(keys[starts])
    first = np.r_[True, w_pos[1:] != w_pos[:-1]]
    best = pd.Series(weekly_max).groupby(w_pos).cummax().to_numpy()
    earlier_best = np.r_[np.nan, best[:-1]]
    earlier_best[first] = np.nan
    stagnant = weekly_max <= earlier_best  # NaN (first week) -> False
    gap = np.r_[True, np.diff(w_week) != 1] | first
    run = np.cumsum(~stagnant | gap) - 1
    length = np.bincount(run, weights=stagnant).astype("int64")
    run_pos = w_pos[np.r_[True, run[1:] != run[:-1]]]
    np.maximum.at(out, run_pos, length)
    return out
