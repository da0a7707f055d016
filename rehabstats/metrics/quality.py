"""Exercise quality: slow lowering and rest days (``docs/metrics.md`` §10).

Like adherence (§4), within the remodelling window (weeks 1..``window_weeks``) and within
follow-up: sessions after ``obs_end`` or after the window do not count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.data.cohort import Cohort
from rehabstats.time.keys import day_keys, key_participants, run_starts, sort_order
from rehabstats.time.timeline import computation, observed_rows, participant_timeline

__all__ = ["TEMPO_STAGES", "exercise_quality"]

TEMPO_STAGES = (2, 3)
"""Stages whose lowering must be slow (slow isotonic, heavy slow resistance)."""


@computation
def exercise_quality(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Tempo of the lowering phase and back-to-back heavy days per participant.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``min_lowering_s``, ``rest_day_stages``, ``window_weeks`` and ``data_cutoff``; default
        ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per analysed participant, in the order of
        :func:`~rehabstats.time.timeline.participant_timeline`, with columns

        participant_id : str
        tempo_sessions_known : int
            Completed stage-2/3 sessions in the window with ``lowering_s`` recorded.
        fast_tempo_sessions : int
            Of those, sessions with ``lowering_s < min_lowering_s``.
        fast_tempo_rate : float
            fast_tempo_sessions / tempo_sessions_known; NaN when none is known.
        back_to_back_days : int
            Heavy days in the window whose previous calendar day is also a heavy day.

    Notes
    -----
    ``docs/metrics.md`` §10. A session is completed when ``completed_sets >= 1``.

    * **Tempo** ("three seconds up, three seconds down is a minimum"): every completed
      session of stage 2 or 3 with a recorded ``lowering_s`` is a tempo session, two sessions
      on one day count twice; a missing ``lowering_s`` is unknown (neither slow nor fast), so
      a cohort without the column has ``tempo_sessions_known = 0`` and a missing rate.
      Missed sessions (0 sets) had no lowering and do not count even when a time is logged.
    * **Rest days**: a *heavy day* is a calendar day of the window, within follow-up, with at
      least one completed session whose stage is in ``rest_day_stages`` (default 3 and 4);
      several sessions on one day make one heavy day. ``back_to_back_days`` counts heavy days
      whose previous calendar day is a heavy day, so three heavy days in a row count 2. Day 0
      has no previous day in the window and is never back to back.
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    n = len(timeline)
    sessions = cohort.sessions
    rows, pos, day = observed_rows(
        sessions, "session_date", timeline, window_weeks=config.window_weeks
    )
    completed = sessions["completed_sets"].to_numpy()[rows] >= 1
    stage = sessions["stage"].to_numpy()[rows]
    lowering = sessions["lowering_s"].to_numpy(dtype="float64", na_value=np.nan)[rows]

    tempo = completed & ((stage == TEMPO_STAGES[0]) | (stage == TEMPO_STAGES[1]))
    tempo &= ~np.isnan(lowering)
    known = np.bincount(pos[tempo], minlength=n).astype("int64")
    fast = np.bincount(pos[tempo & (lowering < config.min_lowering_s)], minlength=n).astype("int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(known > 0, fast / np.where(known > 0, known, 1), np.nan)

    heavy = completed & np.isin(stage, config.rest_day_stages)
    keys = day_keys(pos[heavy], day[heavy])
    order = sort_order(keys)  # None for sessions in participant-date order, the rule
    if order is not None:
        keys = keys[order]
    keys = keys[run_starts(keys)]  # one per heavy day
    after_heavy = np.zeros(len(keys), dtype=bool)
    after_heavy[1:] = keys[1:] == keys[:-1] + 1  # same participant, the next day
    back_to_back = np.bincount(key_participants(keys[after_heavy]), minlength=n).astype("int64")
    return pd.DataFrame(
        {
            "participant_id": timeline.index.astype("str"),
            "tempo_sessions_known": known,
            "fast_tempo_sessions": fast,
            "fast_tempo_rate": rate,
            "back_to_back_days": back_to_back,
        }
    )
