"""Function tests: limb symmetry (``docs/metrics.md`` §6)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.data.cohort import Cohort
from rehabstats.time.keys import participant_positions
from rehabstats.time.timeline import computation, observe, participant_timeline

__all__ = ["limb_symmetry"]


@computation
def limb_symmetry(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Limb symmetry index of every test done on both sides on the same day.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``data_cutoff``; default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per analysed participant, day and test with a result on both sides, on or
        before ``obs_end``; participants in :func:`~rehabstats.time.timeline.participant_timeline`
        order, then by day and test (contract order). Columns

        participant_id : str
        assessed_on : Timestamp
        day : int
            Days from enrolment.
        test : categorical
            ``heel_raise_endurance``, ``sl_isometric_hold``, ``single_hop`` or ``side_hop``.
        involved, uninvolved : float
            The best (largest) result of each side that day.
        lsi : float
            Limb symmetry index in percent; NaN when ``uninvolved`` is 0.

    Notes
    -----
    ``docs/metrics.md`` §6::

        lsi = involved / uninvolved * 100      (same participant, test and day)

    Several results of one side for the same test and day (repeated trials): the best, i.e.
    the largest, is used — every contract test (reps, seconds, cm, count) is better when
    larger, and the best trial is the usual convention for hop and endurance LSI. External load
    is not considered (a hold's load matters for the stage-4 checkpoint, not for LSI). The whole
    follow-up counts (tests are not restricted to the remodelling window).
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    tests = observe(cohort.function_tests, "assessed_on", timeline)
    tests = tests.assign(_order=participant_positions(tests["participant_id"], timeline.index))
    best = tests.pivot_table(
        index=["_order", "day", "test"],
        columns="side",
        values="value",
        aggfunc="max",
        observed=True,
        sort=True,
    )
    best = best.reindex(columns=["involved", "uninvolved"])
    best = best[best.notna().all(axis=1)].reset_index()
    ids = timeline.index.astype("str").to_numpy()
    enrolled = timeline["enrolled_on"].to_numpy()
    position = best["_order"].to_numpy(dtype="int64")
    uninvolved = best["uninvolved"].to_numpy(dtype="float64")
    involved = best["involved"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        lsi = np.where(uninvolved > 0, involved / uninvolved * 100, np.nan)
    return pd.DataFrame(
        {
            "participant_id": pd.array(ids[position], dtype="str"),
            "assessed_on": enrolled[position] + best["day"].to_numpy().astype("timedelta64[D]"),
            "day": best["day"].to_numpy(dtype="int64"),
            "test": pd.Categorical(
                best["test"], categories=cohort.function_tests["test"].cat.categories
            ),
            "involved": involved,
            "uninvolved": uninvolved,
            "lsi": lsi,
        }
    )
