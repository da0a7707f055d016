"""Return to running and return-to-sport readiness (``docs/metrics.md`` §11).

Running load from the optional ``running`` table: the exponentially weighted acute:chronic
workload ratio (ACWR; Williams et al., BJSM 2017;51:209), weekly volume and its spikes (Nielsen
et al., JOSPT 2014), pain during runs; the relapse rate after ACWR spikes (person-time of §8
split by exposure); and the day the return-to-sport criteria (limb symmetry of chosen tests)
were first met. A cohort without running data gives missing running columns, not an error.

Every participant's days are computed in one array pass: the daily loads of all participants
with a run are laid out in rows of :data:`_WIDTH` days (each participant's days in consecutive
rows), the exponentially weighted averages are filtered along the rows from a zero state with
:func:`scipy.signal.lfilter`, and the state carried from one row into the next of the same
participant is added back exactly (see :func:`_ewma`). Nothing loops over participants or days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.constants import OVERALL
from rehabstats.data.cohort import Cohort
from rehabstats.metrics.function_tests import limb_symmetry
from rehabstats.metrics.relapse import at_risk_start, relapse_times
from rehabstats.stats.survival import poisson_rate_ratio
from rehabstats.time.keys import (
    day_keys,
    key_days,
    key_participants,
    participant_positions,
    run_starts,
    sort_order,
)
from rehabstats.time.timeline import (
    computation,
    group_labels,
    observed_rows,
    participant_timeline,
)

__all__ = [
    "RELAPSE_ACWR_COLUMNS",
    "acwr_histogram",
    "relapse_acwr",
    "relapse_acwr_from_exposure",
    "relapse_exposure",
    "running_load",
    "running_metrics",
    "running_volume",
    "weekly_running",
    "weekly_running_arrays",
]

RELAPSE_ACWR_COLUMNS = (
    "group", "exposed_relapses", "exposed_person_weeks", "unexposed_relapses",
    "unexposed_person_weeks", "rate_ratio", "ci_low", "ci_high",
)  # fmt: skip
"""The columns of ``relapse_acwr.csv`` in the order of the contract (§11)."""

_WIDTH = 64
"""Days per row of the load grid (a participant's days fill consecutive rows)."""

_DECIMALS = 10
"""Computed ratios are rounded to this many decimals before they meet a threshold."""


@computation
def running_metrics(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Running load, its spikes and return-to-sport readiness per participant.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``acwr_acute_days``, ``acwr_chronic_days``, ``acwr_spike``, ``weekly_increase_max``,
        ``pain_limit``, ``rts_tests``, ``rts_lsi_min`` and ``data_cutoff``; default
        ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per analysed participant, in the order of
        :func:`~rehabstats.time.timeline.participant_timeline`, with columns

        participant_id : str
        first_run_day : Int64
            Day of the first run within follow-up. NA without a run within follow-up, and so
            are the five running columns below.
        run_days : Int64
            Days with a run.
        running_pain_days : Int64
            Run days whose highest ``pain_nrs`` > ``pain_limit``.
        acwr_max : float
            The largest defined ACWR; NaN when none is defined.
        acwr_spike_days : Int64
            Days with a defined ACWR > ``acwr_spike``; NA when no ACWR is defined.
        volume_spike_weeks : Int64
            Weeks whose running minutes exceed the previous week's by more than
            ``weekly_increase_max`` (the previous week having > 0 minutes).
        rts_criteria_day : Int64
            First day on which the latest LSI of every test of ``rts_tests`` is at least
            ``rts_lsi_min``; NA when never within follow-up.
        returned_before_criteria : boolean (nullable)
            ``at_risk_start_day`` (§8) before ``rts_criteria_day``, or the criteria never met
            by then; NA without a return to running or sport.

    Notes
    -----
    ``docs/metrics.md`` §11. Runs dated after ``obs_end`` are excluded. Daily load ``L_d`` =
    total minutes run on day d (0 without a run), from ``first_run_day`` to ``obs_end``::

        A_d = la * L_d + (1 - la) * A_(d-1),   la = 2 / (acwr_acute_days + 1)
        C_d = lc * L_d + (1 - lc) * C_(d-1),   lc = 2 / (acwr_chronic_days + 1)
        A = C = 0 on the day before first_run_day;  ACWR_d = A_d / C_d

    ACWR is defined from ``first_run_day + acwr_chronic_days - 1`` on (day 27 after the first
    run by default: the chronic average needs 28 days) and where ``C_d > 0``. Weeks are study
    weeks (§3); the week holding ``obs_end`` counts with the minutes observed in it.

    * A run day's pain is the highest ``pain_nrs`` of its runs; a day whose runs have no
      pain recorded is not a painful day (unknown, not violated, as in §5).
    * ACWR and weekly increases are compared with their thresholds after rounding to 10
      decimals (an increase of exactly 30% is not a spike even when the floating-point
      product is a hair below the sum), and so is the LSI with ``rts_lsi_min`` (27 / 30 × 100
      meets 90).
    * LSI as :func:`rehabstats.metrics.function_tests.limb_symmetry` computes it (best trial per side, same
      test and day); an LSI that cannot be computed (uninvolved side 0) is not a measurement.
      The criteria day is the first day a test is measured on which every test's most recent
      LSI meets the minimum; it is kept even if a later LSI falls below it.
    * ``returned_before_criteria``: criteria met on the day of the return count as met by
      then (False).
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    n = len(timeline)
    runs = _run_days(cohort, timeline)
    grid = _load_grid(runs, timeline, config)

    first = np.full(n, np.nan)
    run_days = np.full(n, np.nan)
    pain_days = np.full(n, np.nan)
    acwr_max = np.full(n, np.nan)
    spike_days = np.full(n, np.nan)
    volume_spikes = np.full(n, np.nan)
    runner = grid.runner
    first[runner] = grid.first
    run_days[runner] = np.bincount(runs.pos, minlength=n)[runner]
    painful = runs.pain > config.pain_limit  # NaN (unknown) compares False
    pain_days[runner] = np.bincount(runs.pos[painful], minlength=n)[runner]
    row_max, row_defined, row_spikes = grid.row_summaries()
    if len(runner):
        starts = grid.row_start
        acwr_max[runner] = np.fmax.reduceat(row_max, starts)
        defined = np.add.reduceat(row_defined, starts)
        spike_days[runner] = np.where(defined > 0, np.add.reduceat(row_spikes, starts), np.nan)
    week_pos, week, minutes = _weekly_sums(runs)
    spike_week = _volume_spike(week_pos, week, minutes, config.weekly_increase_max)
    volume_spikes[runner] = np.bincount(week_pos[spike_week], minlength=n)[runner]

    criteria = _rts_criteria_day(cohort, timeline, config)
    start = at_risk_start(cohort, timeline).to_numpy(dtype="float64")
    returned = ~np.isnan(start)
    before = returned & ~(criteria <= start)  # NaN criteria (never met) compares False
    return pd.DataFrame(
        {
            "participant_id": timeline.index.astype("str"),
            "first_run_day": pd.array(first, dtype="Int64"),
            "run_days": pd.array(run_days, dtype="Int64"),
            "running_pain_days": pd.array(pain_days, dtype="Int64"),
            "acwr_max": acwr_max,
            "acwr_spike_days": pd.array(spike_days, dtype="Int64"),
            "volume_spike_weeks": pd.array(volume_spikes, dtype="Int64"),
            "rts_criteria_day": pd.array(criteria, dtype="Int64"),
            "returned_before_criteria": pd.arrays.BooleanArray(before, ~returned),
        }
    )


@computation
def running_load(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Daily running load, its exponentially weighted averages and the ACWR.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        As :func:`running_metrics`.

    Returns
    -------
    DataFrame
        One row per participant with a run within follow-up and every day from their
        ``first_run_day`` to ``obs_end`` (participants in
        :func:`~rehabstats.time.timeline.participant_timeline` order, then by day), with columns

        participant_id : str
        day : int
            Days from enrolment.
        minutes : float
            ``L_d``, total minutes run that day (0 without a run).
        acute, chronic : float
            ``A_d`` and ``C_d`` (see :func:`running_metrics`).
        acwr : float
            ``A_d / C_d`` where defined, else NaN.
        spike : bool
            ACWR > ``acwr_spike`` (after rounding to 10 decimals).

    Notes
    -----
    One row per participant-day: for the report's distribution of ACWR and for checking
    the recurrences; :func:`running_metrics` does not build this table.
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    runs = _run_days(cohort, timeline)
    grid = _load_grid(runs, timeline, config, keep_averages=True)
    cells = grid.valid_cells()
    rows, cols = cells
    day = grid.first[grid.runner_of_row[rows]] + grid.row_in_runner[rows] * _WIDTH + cols
    acwr = grid.acwr[cells]
    return pd.DataFrame(
        {
            "participant_id": timeline.index.astype("str").take(
                grid.runner[grid.runner_of_row[rows]]
            ),
            "day": day.astype("int64"),
            "minutes": grid.load[cells],
            "acute": grid.acute[cells],
            "chronic": grid.chronic[cells],
            "acwr": acwr,
            "spike": grid.spike[cells],
        }
    )


@computation
def weekly_running(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Running minutes per participant-week, from the week of the first run to ``obs_end``.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``weekly_increase_max`` and ``data_cutoff``; default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per participant with a run within follow-up and every study week (§3) from the
        week of ``first_run_day`` to the week holding ``obs_end`` (participants in
        :func:`~rehabstats.time.timeline.participant_timeline` order, then by week), with columns

        participant_id : str
        week : int
        running_minutes : float
            Total minutes run in the week (0 for a followed week without a run; the week
            holding ``obs_end`` counts the minutes up to it).
        volume_spike : bool
            ``running_minutes`` > previous week's × (1 + ``weekly_increase_max``) with the
            previous week > 0 minutes (compared after rounding to 10 decimals).
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    pos, week, minutes = weekly_running_arrays(cohort, timeline)
    spike = _volume_spike(pos, week, minutes, config.weekly_increase_max)
    return pd.DataFrame(
        {
            "participant_id": timeline.index.astype("str").take(pos),
            "week": week,
            "running_minutes": minutes,
            "volume_spike": spike,
        }
    )


def weekly_running_arrays(
    cohort: Cohort, timeline: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`weekly_running`'s weeks as arrays, for a caller that places them on its own grid.

    Returns
    -------
    position, week, running_minutes : arrays
        Every week from each runner's first run to the week holding ``obs_end``: the
        participant's position in ``timeline``
        (:func:`~rehabstats.time.timeline.participant_timeline` output), the study week and the
        minutes run (0 without a run); in timeline, then week order.
    """
    return _weekly_rows(_run_days(cohort, timeline), timeline)


@computation
def relapse_acwr(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """Relapse rate after ACWR spikes vs otherwise, with the exact conditional CI.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    by : str, optional
        A participant column to estimate separately for; default one group, ``"all"``.
    config : AnalysisConfig, optional
        As :func:`running_metrics` and :func:`rehabstats.metrics.relapse.relapse_metrics`, plus
        ``spike_window_days`` and ``confidence_level``.

    Returns
    -------
    DataFrame
        One row per group (sorted), with columns

        group : str
        exposed_relapses, unexposed_relapses : int
            First relapses (§8) on exposed / unexposed days.
        exposed_person_weeks, unexposed_person_weeks : float
            Person-time at risk on exposed / unexposed days, in weeks (days / 7); their sum
            is the group's ``person_weeks`` of :func:`rehabstats.metrics.relapse.relapse_rates`.
        rate_ratio : float
            Exposed rate / unexposed rate (inf when no unexposed relapse).
        ci_low, ci_high : float
            Exact conditional confidence limits of the ratio.
        p_value : float
            Two-sided exact conditional test of ratio = 1.
            The ratio, limits and p-value are NaN without any relapse or without exposed or
            unexposed person-time.

    Notes
    -----
    ``docs/metrics.md`` §11 and §8. Person-time at risk is the days after
    ``at_risk_start_day`` up to and including the relapse day, or ``obs_end``. A day ``d`` is
    *exposed* when an ACWR spike day (ACWR > ``acwr_spike``, see :func:`running_metrics`) lies
    in ``d - spike_window_days .. d - 1`` (a spike day is exposed only through an earlier
    spike). A relapse counts in the state of its own day. The ratio and its limits are those of R
    ``poisson.test(c(x1, x2), c(T1, T2))`` (:func:`rehabstats.stats.survival.poisson_rate_ratio`,
    as :func:`rehabstats.metrics.relapse.relapse_rate_ratio`).
    """
    config = config or AnalysisConfig()
    return relapse_acwr_from_exposure(relapse_exposure(cohort, by=by, config=config), config)


@computation
def relapse_exposure(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """What :func:`relapse_acwr` sums, per analysed participant (group only) and per
    participant at risk: ``at_risk``, ``event`` (first relapse), ``exposed_event`` (on an
    exposed day), ``exposed_days`` and ``total_days`` at risk. Those of disjoint parts of a
    cohort concatenate into the cohort's (:func:`relapse_acwr_from_exposure`)."""
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    groups = group_labels(timeline, by).to_numpy()
    relapse = relapse_times(cohort, config=config)
    at = participant_positions(relapse["participant_id"], timeline.index)
    start = relapse["start_day"].to_numpy(dtype="int64")
    end = start + relapse["time"].to_numpy(dtype="int64")
    event = relapse["event"].to_numpy(dtype=bool)

    runs = _run_days(cohort, timeline)
    grid = _load_grid(runs, timeline, config)
    block_pos, block_lo, block_hi = _exposure_blocks(grid, config)
    # exposed days in (start, end], and whether the relapse day itself is exposed
    exposed_days = _days_in_blocks(block_pos, block_lo, block_hi, at, start + 1, end)
    exposed_event = event & (_days_in_blocks(block_pos, block_lo, block_hi, at, end, end) > 0)
    n = len(groups)
    return pd.DataFrame(
        {
            "group": np.concatenate([groups, groups[at]]),
            "at_risk": np.concatenate([np.zeros(n, dtype=bool), np.ones(len(at), dtype=bool)]),
            "event": np.concatenate([np.zeros(n, dtype=bool), event]),
            "exposed_event": np.concatenate([np.zeros(n, dtype=bool), exposed_event]),
            "exposed_days": np.concatenate([np.zeros(n, dtype="int64"), exposed_days]),
            "total_days": np.concatenate([np.zeros(n, dtype="int64"), end - start]),
        }
    )


def relapse_acwr_from_exposure(exposure: pd.DataFrame, config: AnalysisConfig) -> pd.DataFrame:
    """:func:`relapse_acwr` from :func:`relapse_exposure` (any row order)."""
    names = sorted(pd.unique(exposure["group"].to_numpy()))
    risk = exposure["at_risk"].to_numpy(dtype=bool)
    group_of = exposure["group"].to_numpy()[risk]
    event = exposure["event"].to_numpy(dtype=bool)[risk]
    exposed_event = exposure["exposed_event"].to_numpy(dtype=bool)[risk]
    exposed_days = exposure["exposed_days"].to_numpy(dtype="int64")[risk]
    total_days = exposure["total_days"].to_numpy(dtype="int64")[risk]
    rows = []
    for g in names:  # a handful of groups
        mask = group_of == g
        x1, x2 = int(exposed_event[mask].sum()), int((event & ~exposed_event)[mask].sum())
        t1 = float(exposed_days[mask].sum()) / 7
        t2 = float((total_days - exposed_days)[mask].sum()) / 7
        ratio = poisson_rate_ratio(x1, t1, x2, t2, confidence_level=config.confidence_level)
        rows.append(
            {
                "group": g,
                "exposed_relapses": x1,
                "exposed_person_weeks": t1,
                "unexposed_relapses": x2,
                "unexposed_person_weeks": t2,
                **ratio,
            }
        )
    out = pd.DataFrame(rows, columns=[*RELAPSE_ACWR_COLUMNS, "p_value"])
    counts = ("exposed_relapses", "unexposed_relapses")
    types = {c: "int64" if c in counts else "float64" for c in out.columns[1:]}
    return out.astype({"group": "str", **types})


# ----------------------------------------------------------------------------------------------
# summaries for reports


def _group_column(frame: pd.DataFrame, by: str | None) -> pd.Series:
    if by is None:
        return pd.Series(OVERALL, index=frame.index, dtype="str")
    return frame[by].astype("str")


def running_volume(weekly: pd.DataFrame, *, by: str | None = None, weeks: int = 26) -> pd.DataFrame:
    """Weekly running minutes by week since the first run: median, quartiles and mean per group.

    Parameters
    ----------
    weekly : DataFrame
        :func:`weekly_running` output (participant_id, week, running_minutes) with each
        participant's ``follow_up_days`` and the ``by`` column added.
    by : str, optional
        Grouping column; default one group, ``"all"``.
    weeks : int
        Weeks since the first run summarised (1 to ``weeks``).

    Returns
    -------
    DataFrame
        One row per group and week since the first run with at least one runner followed
        through it (groups sorted, then weeks), with columns

        group : str
        week_since_first_run : int
            1 = the study week of ``first_run_day``, 2 = the next, ...
        runners : int
            Participants followed through the whole week (their minutes count, 0 included).
        median, q1, q3, mean : float
            Of ``running_minutes`` across those participants (quartiles as
            :meth:`pandas.Series.quantile`, linear interpolation).

    Notes
    -----
    Study weeks (§3) are aligned on each participant's first run, so that the graded build-up
    of the return reads from left to right whatever the week it began in. The week holding
    ``obs_end`` is left out unless follow-up reaches its last day (day ``7·week − 1``): its
    minutes cover only part of the week and would pull the weekly summaries down.
    """
    data = weekly.assign(_group=_group_column(weekly, by))
    first = data.groupby("participant_id", sort=False)["week"].transform("min")
    data = data.assign(week_since_first_run=(data["week"] - first + 1).astype("int64"))
    whole = data["follow_up_days"].to_numpy() >= 7 * data["week"].to_numpy() - 1
    data = data[whole & (data["week_since_first_run"] <= weeks).to_numpy()]
    grouped = data.groupby(["_group", "week_since_first_run"], sort=True)["running_minutes"]
    out = grouped.agg(runners="size", median="median", mean="mean")
    out["q1"] = grouped.quantile(0.25)
    out["q3"] = grouped.quantile(0.75)
    out = out.reset_index().rename(columns={"_group": "group"})
    columns = ["group", "week_since_first_run", "runners", "median", "q1", "q3", "mean"]
    return out[columns].astype({"group": "str", "runners": "int64"})


def acwr_histogram(
    load: pd.DataFrame,
    *,
    by: str | None = None,
    width: float = 0.1,
    top: float = 3.0,
    through_last_run: bool = True,
) -> pd.DataFrame:
    """The distribution of the daily ACWR per group: shares of participant-days in bins.

    Parameters
    ----------
    load : DataFrame
        :func:`running_load` output (participant_id, day, minutes, acwr) with the ``by``
        column added.
    by : str, optional
        Grouping column; default one group, ``"all"``.
    width : float
        Bin width (ACWR units).
    top : float
        Upper edge of the last closed bin; the last bin is open (ACWR ≥ ``top``).
    through_last_run : bool
        Only the days up to each participant's last run (the running period). After the last
        run both averages decay, the acute one faster, so the ratio falls towards 0 for the
        rest of follow-up: days of stopping, not of building up a load, which would otherwise
        fill the lowest bin.

    Returns
    -------
    DataFrame
        One row per group with a defined ACWR and bin from 0 to ``top`` (groups sorted), with
        columns

        group : str
        bin_low, bin_high : float
            The bin ``[bin_low, bin_high)``; ``bin_high`` is inf for the last, open bin.
        days : int
            Participant-days with a defined ACWR in the bin.
        share : float
            ``days`` / the group's participant-days with a defined ACWR.
        runners : int
            Participants of the group with at least one defined ACWR (the same on every row).

    Notes
    -----
    Days without a defined ACWR (before ``first_run_day + acwr_chronic_days − 1`` or with a
    chronic load of 0) are left out, and with ``through_last_run`` the days after a
    participant's last run. A value is placed by ``floor(acwr / width)`` after
    rounding to 10 decimals, so that 1.5 falls in [1.5, 1.6).
    """
    keep = load["acwr"].notna()
    if through_last_run:
        run_day = load["day"].where(load["minutes"] > 0)
        last = run_day.groupby(load["participant_id"], sort=False).transform("max")
        keep &= load["day"] <= last
    defined = load[keep]
    groups = _group_column(defined, by)
    n_bins = int(round(top / width)) + 1
    index = np.floor(np.round(defined["acwr"].to_numpy() / width, 10)).astype("int64")
    index = np.minimum(index, n_bins - 1)
    names = sorted(pd.unique(groups))
    code = pd.Categorical(groups, categories=names).codes
    days = np.bincount(code * n_bins + index, minlength=len(names) * n_bins)
    runners = defined.groupby(groups.to_numpy())["participant_id"].nunique()
    low = np.arange(n_bins) * width
    high = np.append(low[1:], np.inf)
    totals = days.reshape(len(names), n_bins).sum(axis=1)
    return pd.DataFrame(
        {
            "group": np.repeat(np.array(names, dtype=object), n_bins),
            "bin_low": np.tile(low, len(names)).round(10),
            "bin_high": np.tile(high, len(names)).round(10),
            "days": days.astype("int64"),
            "share": days / np.repeat(np.maximum(totals, 1), n_bins),
            "runners": np.repeat(runners.reindex(names).to_numpy(dtype="int64"), n_bins),
        }
    ).astype({"group": "str"})


# ----------------------------------------------------------------------------------------------
# run days and weeks


@dataclass(frozen=True)
class _Runs:
    """One entry per participant-day with a run within follow-up, by participant then day."""

    pos: np.ndarray  # timeline position
    day: np.ndarray  # days from enrolment
    minutes: np.ndarray  # total minutes that day
    pain: np.ndarray  # highest pain_nrs that day (NaN when none recorded)


def _run_days(cohort: Cohort, timeline: pd.DataFrame) -> _Runs:
    """Runs on or before ``obs_end``, summed per participant-day."""
    running = cohort.running
    rows, pos, day = observed_rows(running, "run_date", timeline)
    minutes = running["minutes"].to_numpy(dtype="float64")[rows]
    pain = running["pain_nrs"].to_numpy(dtype="float64", na_value=np.nan)[rows]
    keys = day_keys(pos, day)
    order = sort_order(keys)  # None for a log in participant-date order, the rule
    if order is not None:
        keys, pos, day, minutes, pain = (
            keys[order],
            pos[order],
            day[order],
            minutes[order],
            pain[order],
        )
    starts = run_starts(keys)
    if len(starts) == 0:
        empty = np.zeros(0, dtype="int64")
        return _Runs(empty, empty, np.zeros(0), np.zeros(0))
    return _Runs(
        pos=pos[starts].astype("int64"),
        day=day[starts].astype("int64"),
        minutes=np.add.reduceat(minutes, starts),
        pain=np.fmax.reduceat(pain, starts),
    )


def _weekly_sums(runs: _Runs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minutes per participant-week with a run: (position, week, minutes), sorted."""
    week = runs.day // 7 + 1
    starts = run_starts(day_keys(runs.pos, week))  # runs are sorted
    if len(starts) == 0:
        empty = np.zeros(0, dtype="int64")
        return empty, empty, np.zeros(0)
    return runs.pos[starts], week[starts], np.add.reduceat(runs.minutes, starts)


def _weekly_rows(runs: _Runs, timeline: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every week from the first run's to the one holding ``obs_end``: (position, week,
    minutes), 0 minutes for a week without a run."""
    pos, week, minutes = _weekly_sums(runs)
    if len(pos) == 0:
        return pos, week, minutes
    new = np.r_[True, pos[1:] != pos[:-1]]
    runner = pos[new]
    first_week = week[new]
    last_week = timeline["follow_up_days"].to_numpy(dtype="int64")[runner] // 7 + 1
    count = last_week - first_week + 1
    row_pos = np.repeat(runner, count)
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    row_week = np.repeat(first_week, count) + offset
    row_minutes = np.zeros(len(row_pos))
    at = np.searchsorted(day_keys(row_pos, row_week), day_keys(pos, week))
    row_minutes[at] = minutes
    return row_pos, row_week, row_minutes


def _volume_spike(
    pos: np.ndarray, week: np.ndarray, minutes: np.ndarray, increase: float
) -> np.ndarray:
    """Whether each (sorted) participant-week's minutes exceed the previous week's by more than
    ``increase``, the previous calendar week having > 0 minutes. Weeks absent from the
    arrays count as 0 minutes."""
    if len(pos) == 0:
        return np.zeros(0, dtype=bool)
    follows = np.r_[False, (pos[1:] == pos[:-1]) & (week[1:] == week[:-1] + 1)]
    previous = np.r_[0.0, minutes[:-1]]
    excess = np.round(minutes - previous * (1 + increase), _DECIMALS)
    return follows & (previous > 0) & (excess > 0)


# ----------------------------------------------------------------------------------------------
# the load grid and the exponentially weighted averages


@dataclass
class _LoadGrid:
    """Daily loads of every participant with a run, ``_WIDTH`` days per row.

    Runner ``r`` (timeline position ``runner[r]``) has ``length[r]`` days, ``first[r]`` to
    ``obs_end``, in rows ``row_start[r]`` .. ``row_start[r] + n_rows[r] - 1``; cell ``(row,
    t)`` is day ``first + row_in_runner * _WIDTH + t``. Cells after ``obs_end`` are padding.
    """

    runner: np.ndarray
    first: np.ndarray
    length: np.ndarray
    row_start: np.ndarray
    n_rows: np.ndarray
    runner_of_row: np.ndarray
    row_in_runner: np.ndarray
    acwr: np.ndarray  # NaN where undefined
    spike: np.ndarray  # ACWR > acwr_spike (after rounding to _DECIMALS)
    load: np.ndarray | None = None
    acute: np.ndarray | None = None
    chronic: np.ndarray | None = None

    def valid_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of every day within follow-up, in runner-day order."""
        offset = self.row_in_runner[:, None] * _WIDTH + np.arange(_WIDTH)[None, :]
        return np.nonzero(offset < self.length[self.runner_of_row][:, None])

    def row_summaries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: the largest defined ACWR (NaN if none), defined days, spike days."""
        defined = self.acwr.shape[1] - np.isnan(self.acwr).sum(axis=1)
        return np.fmax.reduce(self.acwr, axis=1), defined, self.spike.sum(axis=1)


def _load_grid(
    runs: _Runs, timeline: pd.DataFrame, config: AnalysisConfig, *, keep_averages: bool = False
) -> _LoadGrid:
    """Lay out the daily loads and compute the ACWR of every day (see :func:`running_metrics`).

    Without ``keep_averages`` each runner's days end, when follow-up lasts longer, at the
    later of ``first_run_day + acwr_chronic_days - 1`` (the first day with an ACWR) and the
    last day after the last run on which the ACWR can still exceed ``acwr_spike``: on days
    without a run the ACWR falls by the factor ``q = (1 - la) / (1 - lc) < 1`` a day, and it
    never exceeds ``la / lc`` (``A_d <= (la / lc) C_d`` term by term), so ``tail`` days after
    the last run, with ``(la / lc) q^tail`` below the threshold, no later day is a spike and
    no later ACWR is the largest. The days left out change no output.
    """
    new = np.r_[True, runs.pos[1:] != runs.pos[:-1]] if len(runs.pos) else np.zeros(0, bool)
    runner = runs.pos[new]
    first = runs.day[new]
    follow = timeline["follow_up_days"].to_numpy(dtype="int64")
    length = follow[runner] - first + 1
    if not keep_averages and len(runner):
        last = runs.day[np.r_[new[1:], True]]
        needed = np.maximum(last - first + _spike_tail(config), config.acwr_chronic_days) + 1
        length = np.minimum(length, needed)
    n_rows = -(-length // _WIDTH)
    row_start = np.cumsum(n_rows) - n_rows
    runner_of_row = np.repeat(np.arange(len(runner)), n_rows)
    row_in_runner = np.arange(int(n_rows.sum())) - row_start[runner_of_row]

    load = np.zeros((int(n_rows.sum()), _WIDTH))
    which = np.cumsum(new) - 1  # runner of each run day
    load.reshape(-1)[row_start[which] * _WIDTH + runs.day - first[which]] = runs.minutes

    chronic = _ewma(load, n_rows, 2 / (config.acwr_chronic_days + 1))
    acute = _ewma(load, n_rows, 2 / (config.acwr_acute_days + 1))
    acwr = acute.copy() if keep_averages else acute  # in place when the averages are not kept
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(acute, chronic, out=acwr)
    # undefined: C = 0 (possible only by underflow, long after a run), the first
    # acwr_chronic_days - 1 days after the first run, and the padding after obs_end
    zero = chronic <= 0
    if zero.any():
        acwr[zero] = np.nan
    del zero
    base = row_in_runner * _WIDTH
    _blank_columns(acwr, np.flatnonzero(base < config.acwr_chronic_days - 1), 0,
                   config.acwr_chronic_days - 1 - base)  # fmt: skip
    end = length[runner_of_row] - base
    _blank_columns(acwr, np.flatnonzero(end < _WIDTH), end, _WIDTH)
    # spikes: ACWR > acwr_spike after rounding to _DECIMALS, rounding only the candidates
    spike = acwr > config.acwr_spike  # NaN compares False
    near = np.flatnonzero(spike.reshape(-1))
    spike.reshape(-1)[near] = np.round(acwr.reshape(-1)[near], _DECIMALS) > config.acwr_spike
    grid = _LoadGrid(
        runner=runner,
        first=first,
        length=length,
        row_start=row_start,
        n_rows=n_rows,
        runner_of_row=runner_of_row,
        row_in_runner=row_in_runner,
        acwr=acwr,
        spike=spike,
    )
    if keep_averages:
        grid.load, grid.acute, grid.chronic = load, acute, chronic
    return grid


def _spike_tail(config: AnalysisConfig) -> int:
    """Days after a last run beyond which the ACWR is below ``acwr_spike`` (see
    :func:`_load_grid`), with a margin of two days."""
    la, lc = 2 / (config.acwr_acute_days + 1), 2 / (config.acwr_chronic_days + 1)
    ceiling = la / lc
    if config.acwr_spike >= ceiling:
        return 2
    q = (1 - la) / (1 - lc)
    return int(np.ceil(np.log(config.acwr_spike / ceiling) / np.log(q))) + 2


def _blank_columns(
    grid: np.ndarray, rows: np.ndarray, low: np.ndarray | int, high: np.ndarray | int
) -> None:
    """Set ``grid[row, low <= t < high]`` to NaN for the given rows (bounds per row)."""
    if len(rows) == 0:
        return
    column = np.arange(grid.shape[1])[None, :]
    low = np.broadcast_to(np.asarray(low), (grid.shape[0],))[rows][:, None]
    high = np.broadcast_to(np.asarray(high), (grid.shape[0],))[rows][:, None]
    part = grid[rows]
    part[(column >= low) & (column < high)] = np.nan
    grid[rows] = part


def _ewma(load: np.ndarray, n_rows: np.ndarray, lam: float) -> np.ndarray:
    """``y_t = lam * x_t + (1 - lam) * y_(t-1)`` along each runner's days, from ``y = 0``.

    ``load`` holds each runner's days in ``n_rows[r]`` consecutive rows of width ``W``. The
    value a row would end with from a zero state is ``Z_j = sum_t lam (1 - lam)^(W-1-t) x_t``
    (one matrix-vector product for all rows); the true state at the end of row ``j`` of a
    runner is then ``S_j = Z_j + (1 - lam)^W S_(j-1)``, a first-order recurrence solved by one
    :func:`scipy.signal.lfilter` call over a small (runners × rows) array; finally every row
    is filtered from its true initial state (``lfilter`` with ``zi = (1 - lam) S_(j-1)``), in
    one call over the 2-D array. Every term is non-negative, so nothing cancels: the result
    agrees with the day-by-day recurrence to a few units in the last place.
    """
    rows, width = load.shape
    if rows == 0:
        return np.zeros_like(load)
    from scipy.signal import lfilter

    decay = 1.0 - lam
    ends = load @ (lam * decay ** np.arange(width - 1, -1, -1))
    runner_of_row = np.repeat(np.arange(len(n_rows)), n_rows)
    row_in_runner = np.arange(rows) - (np.cumsum(n_rows) - n_rows)[runner_of_row]
    by_runner = np.zeros((len(n_rows), int(n_rows.max())))
    by_runner[runner_of_row, row_in_runner] = ends
    state = lfilter([1.0], [1.0, -(decay**width)], by_runner, axis=1)
    carried = np.zeros(rows)
    later = row_in_runner > 0
    carried[later] = state[runner_of_row[later], row_in_runner[later] - 1]
    out, _ = lfilter([lam], [1.0, -decay], load, axis=1, zi=(decay * carried)[:, None])
    return out


def _exposure_blocks(
    grid: _LoadGrid, config: AnalysisConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exposed stretches: (timeline position, first day, last day), merged, sorted.

    A spike on day ``s`` exposes days ``s + 1 .. s + spike_window_days``; overlapping or
    adjacent stretches of one participant are merged.
    """
    rows, cols = np.nonzero(grid.spike)  # by runner, then day
    runner = grid.runner_of_row[rows]
    day = grid.first[runner] + grid.row_in_runner[rows] * _WIDTH + cols
    pos = grid.runner[runner]
    if len(pos) == 0:
        empty = np.zeros(0, dtype="int64")
        return empty, empty, empty
    window = config.spike_window_days
    new = np.r_[True, (pos[1:] != pos[:-1]) | (day[1:] - day[:-1] > window)]
    last = np.r_[new[1:], True]
    return pos[new], day[new] + 1, day[last] + window


def _days_in_blocks(
    block_pos: np.ndarray,
    block_lo: np.ndarray,
    block_hi: np.ndarray,
    pos: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """For each (pos, lo, hi), the number of days of ``lo .. hi`` inside the exposed blocks.

    Blocks of one participant are disjoint and sorted; the overlap is summed over the blocks
    of each participant (one pass over the blocks joined to their participant's interval).
    """
    out = np.zeros(len(pos), dtype="int64")
    if len(block_pos) == 0 or len(pos) == 0:
        return out
    order = np.argsort(pos, kind="stable")
    sorted_pos = pos[order]
    # each block meets the interval of its participant (each participant has one at most)
    at = np.searchsorted(sorted_pos, block_pos)
    hit = at < len(sorted_pos)
    hit[hit] = sorted_pos[at[hit]] == block_pos[hit]
    which = order[at[hit]]
    overlap = np.minimum(block_hi[hit], hi[which]) - np.maximum(block_lo[hit], lo[which]) + 1
    np.add.at(out, which, np.maximum(overlap, 0))
    return out


def _rts_criteria_day(cohort: Cohort, timeline: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
    """First day the return-to-sport criteria are met, per timeline position (NaN: never)."""
    n = len(timeline)
    out = np.full(n, np.inf)
    lsi = limb_symmetry(cohort, config=config)
    keep = lsi["test"].isin(config.rts_tests).to_numpy(dtype=bool) & lsi["lsi"].notna().to_numpy()
    lsi = lsi[keep]
    pos = participant_positions(lsi["participant_id"], timeline.index)
    day = lsi["day"].to_numpy(dtype="int64")
    value = np.round(lsi["lsi"].to_numpy(dtype="float64"), _DECIMALS)
    tests = lsi["test"].cat.categories
    code = lsi["test"].cat.codes.to_numpy()
    keys = day_keys(pos, day)  # rows are sorted by participant, day, test
    candidates = keys[run_starts(keys)]  # test days
    met = np.ones(len(candidates), dtype=bool)
    for name in config.rts_tests:  # a few tests
        mine = code == tests.get_loc(name)
        own_keys, own_value = keys[mine], value[mine]
        if len(own_keys) == 0:
            met[:] = False
            break
        # the most recent LSI of this test on or before each candidate day
        at = np.searchsorted(own_keys, candidates, side="right") - 1
        safe = np.maximum(at, 0)
        same = (at >= 0) & (key_participants(own_keys[safe]) == key_participants(candidates))
        met &= same & (own_value[safe] >= config.rts_lsi_min)
    hits = candidates[met]
    np.minimum.at(out, key_participants(hits), key_days(hits))
    return np.where(np.isinf(out), np.nan, out)
