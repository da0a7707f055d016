"""The stage-4 checkpoint (``docs/metrics.md`` §6): a loaded single-leg isometric hold.

Before elastic/plyometric loading (stage 4) the programme asks for a single-leg isometric
heel-raise hold on the involved side at 1.5x bodyweight for 30 s, pain-free, with no flare the
next morning. Every such attempt within follow-up is assessed here; :mod:`rehabstats.metrics.stages`
uses the result for ``checkpoint_passed`` and ``progressed_without_checkpoint``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.data.cohort import Cohort
from rehabstats.metrics.pain import morning_nrs, next_morning_rise
from rehabstats.time.keys import (
    on_participant_days,
    participant_day_keys,
    participant_positions,
    per_row,
)
from rehabstats.time.timeline import computation, observe, participant_timeline

__all__ = ["checkpoint_attempts", "first_pass_day"]

CHECKPOINT_TEST = "sl_isometric_hold"
"""The ``function_tests.test`` that is the stage-4 checkpoint (on the ``involved`` side)."""


@computation
def checkpoint_attempts(
    cohort: Cohort,
    *,
    config: AnalysisConfig | None = None,
    timeline: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every stage-4 checkpoint attempt within follow-up, and whether it passed.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``checkpoint_load_ratio``, ``checkpoint_hold_s``, ``checkpoint_pain_max``,
        ``flare_delta`` and ``data_cutoff``; default ``AnalysisConfig()``.
    timeline : DataFrame, optional
        :func:`~rehabstats.time.timeline.participant_timeline` output, when the caller already has
        it (must match ``config``).

    Returns
    -------
    DataFrame
        One row per involved-side ``sl_isometric_hold`` of an analysed participant dated on or
        before ``obs_end``, ordered by participant (timeline order), day and source row, with
        columns

        participant_id : str
        day : int
            Days from enrolment.
        load_ratio : float
            ``(body_mass_kg + external_load_kg) / body_mass_kg``; a missing external load
            counts as 0 (bodyweight only); NaN when body mass is missing.
        hold_s : float
            The hold's ``value`` (seconds).
        pain_nrs : float
            Pain during the hold (NaN when not recorded).
        next_morning_flare : bool
            Next-morning NRS >= that day's morning NRS + ``flare_delta``; False when either
            morning rating is missing (or the next morning is after ``obs_end``).
        passed : bool
            Every condition in Notes holds.

    Notes
    -----
    ``docs/metrics.md`` §6. An attempt passes iff

    * ``load_ratio >= checkpoint_load_ratio`` (1.5; NaN ratio = not passed),
    * ``hold_s >= checkpoint_hold_s`` (30 s),
    * ``pain_nrs <= checkpoint_pain_max`` (2, the "safe" zone of Silbernagel's
      pain-monitoring model; missing pain = not passed: pain-free is not shown), and
    * no ``next_morning_flare`` (missing next-morning data = no flare, per the contract).

    Morning ratings are :func:`rehabstats.metrics.pain.morning_nrs` (several on one day: their mean);
    the rise is :func:`rehabstats.metrics.pain.next_morning_rise`. A missing ``external_load_kg`` is
    read as "no external load": the hold was done at bodyweight (ratio 1), which fails the
    default 1.5 threshold rather than being guessed to pass.
    """
    config = config or AnalysisConfig()
    if timeline is None:
        timeline = participant_timeline(cohort, config)
    tests = cohort.function_tests
    holds = tests[(tests["test"] == CHECKPOINT_TEST) & (tests["side"] == "involved")]
    holds = observe(holds, "assessed_on", timeline)
    pos = participant_positions(holds["participant_id"], timeline.index)
    order = np.lexsort((np.arange(len(holds)), holds["day"].to_numpy(), pos))
    holds = holds.iloc[order]
    body_mass = per_row(holds["participant_id"], timeline["body_mass_kg"]).astype("float64")
    external = holds["external_load_kg"].fillna(0).to_numpy(dtype="float64")
    load_ratio = (body_mass + external) / body_mass
    hold_s = holds["value"].to_numpy(dtype="float64")
    pain = holds["pain_nrs"].to_numpy(dtype="float64")
    rise = next_morning_rise(holds, _mornings_around(cohort, holds, timeline))
    rise = rise.to_numpy(dtype="float64")
    flare = rise >= config.flare_delta  # NaN (missing morning) compares False: no flare
    with np.errstate(invalid="ignore"):
        passed = (
            (load_ratio >= config.checkpoint_load_ratio)
            & (hold_s >= config.checkpoint_hold_s)
            & (pain <= config.checkpoint_pain_max)
            & ~flare
        )
    return pd.DataFrame(
        {
            "participant_id": holds["participant_id"].astype("str").to_numpy(),
            "day": holds["day"].to_numpy(dtype="int64"),
            "load_ratio": load_ratio,
            "hold_s": hold_s,
            "pain_nrs": pain,
            "next_morning_flare": flare,
            "passed": passed,
        }
    )


def _mornings_around(cohort: Cohort, holds: pd.DataFrame, timeline: pd.DataFrame) -> pd.DataFrame:
    """:func:`rehabstats.metrics.pain.morning_nrs` on the attempt days and the mornings after them.

    Only those participant-days are needed; every morning rating of them is kept, so the
    daily values are exactly morning_nrs's (the rest of the diary is not read, for speed).
    """
    pain = cohort.pain
    morning = np.flatnonzero((pain["timing"] == "morning").to_numpy(dtype=bool))
    keys = participant_day_keys(pain["participant_id"], pain["recorded_on"], morning)
    wanted = participant_day_keys(holds["participant_id"], holds["assessed_on"])
    keep = morning[on_participant_days(keys, np.concatenate([wanted, wanted + 1]))]
    return morning_nrs(cohort, timeline, rows=keep)


def first_pass_day(attempts: pd.DataFrame) -> pd.Series:
    """Day of each participant's first passed checkpoint.

    Parameters
    ----------
    attempts : DataFrame
        :func:`checkpoint_attempts` output.

    Returns
    -------
    Series
        ``first_pass_day`` (int) indexed by ``participant_id``, only for participants with a
        passed attempt.
    """
    passed = attempts[attempts["passed"]]
    return passed.groupby("participant_id", sort=False)["day"].min().rename("first_pass_day")
