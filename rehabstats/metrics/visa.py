"""VISA-A scores, visit windows and 12-week outcomes (``docs/metrics.md`` §6).

The Victorian Institute of Sport Assessment – Achilles questionnaire (Robinson et al., BJSM
2001): 0–100, higher is better.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.data.cohort import Cohort
from rehabstats.data.schema import VISA_ITEMS, VISA_Q8
from rehabstats.errors import DataWarning, Note
from rehabstats.time.timeline import computation, observe, observed_rows, participant_timeline

__all__ = ["visa_a_outcomes", "visa_a_scores", "visa_a_visits"]

_DECIMALS = 10
"""Score changes are rounded to this many decimals before the MCID comparison (float noise)."""

_CHANGE_WEEK = 12
"""The week of ``visa_a_change_12`` and ``visa_a_responder_12``."""


def visa_a_scores(cohort: Cohort) -> pd.DataFrame:
    """The VISA-A score of every assessment.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.

    Returns
    -------
    DataFrame
        One row per row of ``cohort.visa_a``, in its order, with columns

        participant_id : str
        assessed_on : Timestamp
        score : float
            0–100; NaN when an item is missing and no ``total`` is given.

    Notes
    -----
    ``docs/metrics.md`` §6::

        score = q1 + q2 + q3 + q4 + q5 + q6 + q7 + (q8a or q8b or q8c)

    the one answered q8 branch. When any of q1–q7 is missing, or no q8 branch is answered, the
    score is ``total`` if given, else missing (no pro-rating). Validation guarantees at most one
    q8 branch and that ``total`` equals the item sum when every item is present. All assessments
    are scored, including those after ``obs_end`` (:func:`visa_a_visits` applies follow-up).
    """
    visa = cohort.visa_a
    items = visa[list(VISA_ITEMS)]
    q8 = visa[list(VISA_Q8)]
    complete = items.notna().all(axis=1) & q8.notna().sum(axis=1).eq(1)
    item_sum = items.sum(axis=1) + q8.sum(axis=1)
    score = item_sum.where(complete, visa["total"]).astype("float64")
    return pd.DataFrame(
        {
            "participant_id": pd.array(visa["participant_id"].astype("str"), dtype="str"),
            "assessed_on": visa["assessed_on"].to_numpy(),
            "score": score.to_numpy(),
        }
    )


def _visit_table(config: AnalysisConfig, weeks: tuple[int, ...]) -> pd.DataFrame:
    """Visit name, target day and window [low, high] in days from enrolment."""
    before, after = config.baseline_window_days
    half = config.visit_window_days
    return pd.DataFrame(
        {
            "visit": ["baseline", *(f"week_{w}" for w in weeks)],
            "target_day": [0, *(7 * w for w in weeks)],
            "low": [before, *(7 * w - half for w in weeks)],
            "high": [after, *(7 * w + half for w in weeks)],
        }
    )


@computation
def visa_a_visits(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """The assessment used for each visit (baseline and every ``visit_weeks`` week).

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``baseline_window_days``, ``visit_window_days``, ``visit_weeks`` and ``data_cutoff``;
        default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per analysed participant and visit (participants in
        :func:`~rehabstats.time.timeline.participant_timeline` order, visits in time order), also
        when no assessment falls in the visit's window. Columns

        participant_id : str
        visit : categorical (ordered)
            ``baseline``, ``week_6``, ``week_12``, ... (one per ``visit_weeks``).
        target_day : int
            0 for baseline, 7·N for week N.
        day : float
            Day of the assessment used (days from enrolment); NaN when none.
        score : float
            Its VISA-A score (:func:`visa_a_scores`); NaN when none.

    Notes
    -----
    ``docs/metrics.md`` §6. **Baseline** = the scored assessment closest to day 0 with day in
    ``baseline_window_days`` ([−14, 7]); **week N** = the scored assessment closest to day 7·N
    with ``|day − 7·N| <= visit_window_days`` (14). Ties (equal distance) go to the earlier
    assessment; two on the same day, to the first in the table. Only assessments on or before
    ``obs_end`` are candidates (§3).

    Only assessments with a score are candidates: a visit's purpose is its score, so a complete
    assessment in the window is used rather than a nearer one whose missing items (and missing
    total) leave no score. One assessment may serve two visits when configured windows overlap
    (the default windows do not).

    A VISA-A may be dated any time before enrolment (validation does not depend on the
    configured window); assessments dated before the baseline window are used for no visit,
    and a :class:`~rehabstats.errors.DataWarning` says how many.
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    return _visits(cohort, timeline, config, tuple(dict.fromkeys(config.visit_weeks)))


def _visits(
    cohort: Cohort, timeline: pd.DataFrame, config: AnalysisConfig, weeks: tuple[int, ...]
) -> pd.DataFrame:
    _note_before_baseline(cohort, timeline, config)
    visits = _visit_table(config, weeks)
    scored = cohort.visa_a.assign(score=visa_a_scores(cohort)["score"].to_numpy())
    scored = observe(scored[scored["score"].notna()], "assessed_on", timeline)
    candidates = pd.DataFrame(
        {
            "participant_id": scored["participant_id"].astype("str").to_numpy(),
            "day": scored["day"].to_numpy(dtype="int64"),
            "score": scored["score"].to_numpy(dtype="float64"),
            "_row": np.arange(len(scored)),
        }
    ).merge(visits, how="cross")
    candidates = candidates[
        (candidates["day"] >= candidates["low"]) & (candidates["day"] <= candidates["high"])
    ]
    candidates = candidates.assign(_distance=(candidates["day"] - candidates["target_day"]).abs())
    chosen = candidates.sort_values(["_distance", "day", "_row"], kind="stable").drop_duplicates(
        ["participant_id", "visit"]
    )

    ids = timeline.index.astype("str").to_numpy()
    grid = pd.DataFrame(
        {
            "participant_id": np.repeat(ids, len(visits)),
            "visit": np.tile(visits["visit"].to_numpy(), len(ids)),
            "target_day": np.tile(visits["target_day"].to_numpy(dtype="int64"), len(ids)),
        }
    )
    out = grid.merge(
        chosen[["participant_id", "visit", "day", "score"]],
        how="left",
        on=["participant_id", "visit"],
    )
    out["day"] = out["day"].astype("float64")
    out["visit"] = pd.Categorical(out["visit"], categories=visits["visit"], ordered=True)
    return out[["participant_id", "visit", "target_day", "day", "score"]]


def _note_before_baseline(cohort: Cohort, timeline: pd.DataFrame, config: AnalysisConfig) -> None:
    """Warn how many assessments of analysed participants are dated before the baseline window
    (validation allows any date before enrolment; the window is the analysis's choice)."""
    first = config.baseline_window_days[0]
    _, _, day = observed_rows(cohort.visa_a, "assessed_on", timeline)
    before = int((day < first).sum())
    if before:
        warnings.warn(
            Note(
                "visa_a: {n} {n:assessment|assessments} dated before the baseline window (which "
                "starts on day {first} from enrolment) {n:is|are} used for no visit.",
                counts={"n": before},
                first=first,
            ),
            DataWarning,
            stacklevel=4,
        )


@computation
def visa_a_outcomes(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """VISA-A at each visit, the 12-week change and responder status per participant.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        Visit windows (see :func:`visa_a_visits`), ``visa_a_mcid`` and ``data_cutoff``;
        default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per analysed participant, in
        :func:`~rehabstats.time.timeline.participant_timeline` order, with columns

        participant_id : str
        visa_a_baseline : float
        visa_a_week6, visa_a_week12, visa_a_week26, visa_a_week52 : float
            One column ``visa_a_week<N>`` per ``visit_weeks`` entry; ``visa_a_week12`` is
            always present (the contract's outcome) even when 12 is not configured.
        visa_a_change_12 : float
            visa_a_week12 − visa_a_baseline; NaN when either is missing.
        visa_a_responder_12 : boolean (nullable)
            ``visa_a_change_12 >= visa_a_mcid``; NA when the change is missing.

    Notes
    -----
    ``docs/metrics.md`` §6::

        visa_a_change_12    = VISA-A(week 12) - VISA-A(baseline)
        visa_a_responder_12 = visa_a_change_12 >= visa_a_mcid   (default 14 points)

    Visit scores as in :func:`visa_a_visits`. The change is compared with the MCID after
    rounding to 10 decimals, so float noise in sums of decimal items cannot decide it.
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    weeks = tuple(dict.fromkeys(config.visit_weeks))
    if _CHANGE_WEEK not in weeks:
        weeks = tuple(sorted({*weeks, _CHANGE_WEEK}))
    visits = _visits(cohort, timeline, config, weeks)
    wide = visits.pivot(index="participant_id", columns="visit", values="score")
    wide = wide.reindex(timeline.index.astype("str"))
    names = {"baseline": "visa_a_baseline", **{f"week_{w}": f"visa_a_week{w}" for w in weeks}}
    out = pd.DataFrame({"participant_id": wide.index.to_numpy()})
    for visit, column in names.items():
        out[column] = wide[visit].to_numpy(dtype="float64")
    change = out[f"visa_a_week{_CHANGE_WEEK}"] - out["visa_a_baseline"]
    out["visa_a_change_12"] = change
    known = change.notna().to_numpy()
    responder = np.round(change.to_numpy(), _DECIMALS) >= config.visa_a_mcid
    out["visa_a_responder_12"] = pd.arrays.BooleanArray(responder & known, ~known)
    return out
