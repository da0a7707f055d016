"""Pain monitoring (``docs/metrics.md`` §5): diary days, pain-monitoring rules, flares, trends.

Session-day rules, flares and weekly trends use the remodelling window (weeks
1..``window_weeks``) within follow-up (§3); a pain rating dated after ``obs_end`` does not exist
for the analysis. The trajectory model fits weekly mean morning NRS by REML with
:mod:`rehabstats.stats.mixed` (lme4's criterion, Satterthwaite degrees of freedom).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.data.cohort import Cohort
from rehabstats.errors import Note
from rehabstats.time.keys import (
    day_keys,
    key_days,
    key_participants,
    lookup,
    run_starts,
    sort_order,
)
from rehabstats.time.timeline import (
    computation,
    group_labels,
    observe,
    observed_rows,
    participant_timeline,
)

__all__ = [
    "morning_nrs",
    "next_morning_rise",
    "pain_model",
    "pain_model_data",
    "pain_model_from_stats",
    "pain_model_stats",
    "pain_monitoring",
    "session_day_rules",
    "weekly_pain",
    "weekly_pain_arrays",
]

_DECIMALS = 10
"""Differences of NRS values are rounded to this many decimals before being compared with a
threshold, so that float noise (5.3 - 3.3 = 1.9999999999999996) cannot decide a rule."""


def morning_nrs(
    cohort: Cohort,
    timeline: pd.DataFrame,
    *,
    window_weeks: int | None = None,
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """Morning NRS per participant-day within follow-up.

    Parameters
    ----------
    cohort : Cohort
    timeline : DataFrame
        :func:`~rehabstats.time.timeline.participant_timeline` output.
    window_weeks : int, optional
        Only the days in weeks 1..window_weeks.
    rows : array of int, optional
        Positions of the ``pain`` rows to read (default: all), for a caller that needs only
        some participant-days: give every rating of those days, so that their means are
        unchanged.

    Returns
    -------
    DataFrame with columns participant_id (categorical), day, week, nrs, sorted by participant
    and day; one row per day with a morning rating (several ratings on one day: their mean,
    flagged by a validation warning).
    """
    pain = cohort.pain
    if isinstance(pain["participant_id"].dtype, pd.CategoricalDtype):
        codes, day, nrs = _daily_morning(
            pain, timeline, window_weeks=window_weeks, by_code=True, rows=rows
        )
        return pd.DataFrame(
            {
                "participant_id": pd.Categorical.from_codes(
                    codes, dtype=pain["participant_id"].dtype
                ),
                "day": day,
                "week": day // 7 + 1,
                "nrs": nrs,
            }
        )
    if rows is not None:
        pain = pain.iloc[rows]
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


def _run_means(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of each run of ``values``, bit for bit as pandas' groupby ``mean``.

    pandas sums a group's values in row order with Kahan compensation, then divides by the
    count; the same float operations are done here, vectorised over the runs.
    """
    total = np.zeros(len(starts), dtype="float64")
    compensation = np.zeros(len(starts), dtype="float64")
    for k in range(int(counts.max(initial=0))):
        sel = np.flatnonzero(counts > k) if k else np.arange(len(starts))
        y = values[starts[sel] + k] - compensation[sel]
        t = total[sel] + y
        comp = (t - total[sel]) - y
        comp[np.isnan(comp)] = 0.0
        compensation[sel] = comp
        total[sel] = t
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / counts


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of equal values of sorted ``keys``."""
    starts = run_starts(keys)
    return starts, np.diff(np.r_[starts, len(keys)])


def _morning_rows(pain: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
    """Positions of the morning ratings (among ``rows`` when given)."""
    morning = (pain["timing"] == "morning").to_numpy(dtype=bool)
    return np.flatnonzero(morning) if rows is None else np.asarray(rows)[morning[rows]]


def _daily_morning(
    pain: pd.DataFrame,
    timeline: pd.DataFrame,
    *,
    window_weeks: int | None = None,
    by_code: bool = False,
    observed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Daily mean morning NRS as arrays ``(participant, day, nrs)`` sorted by both.

    ``participant`` is the category code of ``participant_id`` (``by_code``; the order of
    :func:`morning_nrs`) or the participant's position in ``timeline``. ``observed``: the
    :func:`~rehabstats.time.timeline.observed_rows` of the morning rows, when already known;
    ``rows``: the rows to read (see :func:`morning_nrs`).
    """
    if observed is None:
        observed = observed_rows(
            pain,
            "recorded_on",
            timeline,
            window_weeks=window_weeks,
            rows=_morning_rows(pain, rows),
        )
    rows, pos, day = observed
    who = pain["participant_id"].cat.codes.to_numpy()[rows].astype("int64") if by_code else pos
    nrs = pain["nrs"].to_numpy(dtype="float64")[rows]
    keys = day_keys(who, day)
    order = sort_order(keys)
    if order is not None:
        keys, who, day, nrs = keys[order], who[order], day[order], nrs[order]
    starts, counts = _runs(keys)
    if len(starts) == len(keys):
        return who, day, nrs
    return who[starts], day[starts], _run_means(nrs, starts, counts)


def next_morning_rise(days: pd.DataFrame, morning: pd.DataFrame) -> pd.Series:
    """Next-morning NRS minus same-day morning NRS for each (participant_id, day) of ``days``.

    ``morning`` is :func:`morning_nrs` output. NaN where either morning rating is missing (the
    rule using it is then unknown). The difference is rounded to 10 decimals, which removes
    float noise (5.3 − 3.3 gives exactly 2) and nothing an NRS can express.
    """
    if (
        isinstance(days["participant_id"].dtype, pd.CategoricalDtype)
        and isinstance(morning["participant_id"].dtype, pd.CategoricalDtype)
        and days["participant_id"].cat.categories.equals(morning["participant_id"].cat.categories)
    ):
        m_codes = morning["participant_id"].cat.codes.to_numpy().astype("int64")
        m_keys = day_keys(m_codes, morning["day"].to_numpy(dtype="int64"))
        m_nrs = morning["nrs"].to_numpy(dtype="float64")
        order = sort_order(m_keys)
        if order is not None:
            m_keys, m_nrs = m_keys[order], m_nrs[order]
        codes = days["participant_id"].cat.codes.to_numpy().astype("int64")
        wanted = day_keys(codes, days["day"].to_numpy(dtype="int64"))
        rise = lookup(m_keys, m_nrs, wanted + 1) - lookup(m_keys, m_nrs, wanted)
        rise[codes < 0] = np.nan
        return pd.Series(np.round(rise, _DECIMALS), index=days.index)
    by_day = pd.Series(
        morning["nrs"].to_numpy(),
        index=pd.MultiIndex.from_arrays(
            [morning["participant_id"].astype("str"), morning["day"].to_numpy()]
        ),
    )
    ids = days["participant_id"].astype("str").to_numpy()
    day = days["day"].to_numpy()
    same = by_day.reindex(pd.MultiIndex.from_arrays([ids, day])).to_numpy()
    following = by_day.reindex(pd.MultiIndex.from_arrays([ids, day + 1])).to_numpy()
    rise = np.asarray(following, dtype=float) - np.asarray(same, dtype=float)
    return pd.Series(np.round(rise, _DECIMALS), index=days.index)


# ----------------------------------------------------------------------------------------------
# Session-day rules


@computation
def session_day_rules(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """The pain-monitoring rules and flares on every session day.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``pain_limit``, ``settle_tolerance``, ``flare_delta``, ``window_weeks`` and
        ``data_cutoff``; default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per session day (a day with at least one completed session, i.e.
        ``completed_sets >= 1``) in weeks 1..window_weeks on or before ``obs_end``; participants
        in :func:`~rehabstats.time.timeline.participant_timeline` order, then by day. Columns

        participant_id : str
        day, week : int
        during_violated : boolean (nullable)
            Highest ``during`` NRS that day > pain_limit; NA without a ``during`` rating.
        after_violated : boolean (nullable)
            Highest ``after`` NRS that day > pain_limit; NA without an ``after`` rating.
        not_settled : boolean (nullable)
            Next morning's NRS > that morning's NRS + settle_tolerance; NA when either
            morning rating is missing.
        violation : boolean (nullable)
            True when any rule is violated; False when none is violated and at least one is
            known; NA when all three are unknown.
        flare : boolean (nullable)
            Next morning's NRS >= that morning's NRS + flare_delta; NA when either morning
            rating is missing.

    Notes
    -----
    ``docs/metrics.md`` §5 (Silbernagel et al. 2007 pain-monitoring model)::

        during_violated = max(during NRS on day d) > pain_limit
        after_violated  = max(after NRS on day d) > pain_limit
        not_settled     = morning(d + 1) - morning(d) > settle_tolerance
        flare           = morning(d + 1) - morning(d) >= flare_delta

    A rule with missing data is unknown, not violated. Several morning ratings on one day count
    as their mean (see :func:`morning_nrs`). The next-morning rating may fall just after the
    window (the morning after a session on day 7·window_weeks − 1) but must be on or before
    ``obs_end``. Ratings on days without a completed session are not used here.
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    return _session_day_rules(cohort, timeline, config)


def _session_day_rules(
    cohort: Cohort, timeline: pd.DataFrame, config: AnalysisConfig
) -> pd.DataFrame:
    pos, day, highest, rise, _ = _session_day_arrays(cohort, timeline, config)
    ids = timeline.index.astype("str")
    out = pd.DataFrame(
        {
            "participant_id": ids.take(pos).array,
            "day": day,
            "week": day // 7 + 1,
        }
    )
    for timing in ("during", "after"):
        out[f"{timing}_violated"] = _nullable(
            highest[timing] > config.pain_limit, ~np.isnan(highest[timing])
        )
    rise_known = ~np.isnan(rise)
    out["not_settled"] = _nullable(rise > config.settle_tolerance, rise_known)
    violated, known = _violations(highest, rise, config)
    out["violation"] = _nullable(violated, known)
    out["flare"] = _nullable(rise >= config.flare_delta, rise_known)
    return out


def _violations(
    highest: dict[str, np.ndarray], rise: np.ndarray, config: AnalysisConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each session day violates a rule, and whether any rule is known."""
    with np.errstate(invalid="ignore"):
        violated = (
            (highest["during"] > config.pain_limit)
            | (highest["after"] > config.pain_limit)
            | (rise > config.settle_tolerance)
        )
    known = ~np.isnan(highest["during"]) | ~np.isnan(highest["after"]) | ~np.isnan(rise)
    return violated, known


def _session_day_arrays(
    cohort: Cohort,
    timeline: pd.DataFrame,
    config: AnalysisConfig,
    daily: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray, tuple[np.ndarray, ...]]:
    """Session days ``(position, day)`` in timeline order, the day's highest during/after
    NRS (NaN without a rating), the next-morning rise (NaN when unknown) and the daily
    morning NRS used (:func:`_daily_morning` by position, whole follow-up).

    ``daily``: :func:`_daily_morning` (by position, whole follow-up), when already known.
    """
    sessions = cohort.sessions
    rows, pos, day = observed_rows(
        sessions, "session_date", timeline, window_weeks=config.window_weeks
    )
    done = sessions["completed_sets"].to_numpy()[rows] >= 1
    keys = day_keys(pos[done], day[done])
    order = sort_order(keys)
    if order is not None:
        keys = keys[order]
    keys = keys[run_starts(keys)]
    pos, day = key_participants(keys), key_days(keys)

    pain = cohort.pain
    # the rows of one timing at a time (a third of the table each), not the whole table's
    # positions and days at once: the same rows in the same order, a third of the memory
    timing = _timing_of(pain, None)
    nrs_all = pain["nrs"].to_numpy(dtype="float64")
    highest = {}
    for name in ("during", "after"):
        t_rows, t_pos, t_day = observed_rows(
            pain, "recorded_on", timeline, rows=np.flatnonzero(timing(name))
        )
        p_keys = day_keys(t_pos, t_day)
        nrs = nrs_all[t_rows]
        del t_rows, t_pos, t_day
        order = sort_order(p_keys)
        if order is not None:
            p_keys, nrs = p_keys[order], nrs[order]
        starts = run_starts(p_keys)
        peak = np.fmax.reduceat(nrs, starts) if len(starts) else nrs[:0]
        highest[name] = lookup(p_keys[starts], peak, keys).astype("float64")
        del p_keys, nrs, order, starts, peak
    del nrs_all

    if daily is None:
        observed = observed_rows(
            pain, "recorded_on", timeline, rows=np.flatnonzero(timing("morning"))
        )
        daily = _daily_morning(pain, timeline, observed=observed)
        del observed
    m_pos, m_day, m_nrs = daily
    m_keys = day_keys(m_pos, m_day)
    rise = lookup(m_keys, m_nrs, keys + 1) - lookup(m_keys, m_nrs, keys)
    return pos, day, highest, np.round(rise, _DECIMALS), daily


def _timing_of(pain: pd.DataFrame, rows: np.ndarray | None):
    """A function giving, for a ``timing`` value, which of ``rows`` (default: every row) have
    it (bool array)."""
    timing = pain["timing"]
    if isinstance(timing.dtype, pd.CategoricalDtype):
        codes = timing.cat.codes.to_numpy()
        codes = codes if rows is None else codes[rows]
        categories = list(timing.cat.categories)
        return lambda name: (
            codes == categories.index(name)
            if name in categories
            else np.zeros(len(rows), dtype=bool)
        )
    values = timing.to_numpy() if rows is None else timing.to_numpy()[rows]
    return lambda name: np.asarray(values == name, dtype=bool)


def _nullable(flag: np.ndarray, known: np.ndarray) -> pd.arrays.BooleanArray:
    """A nullable boolean array: ``flag`` where ``known``, NA elsewhere."""
    known = np.asarray(known, dtype=bool)
    return pd.arrays.BooleanArray(np.asarray(flag, dtype=bool) & known, ~known)


# ----------------------------------------------------------------------------------------------
# Weekly morning pain and per-participant summary


@computation
def weekly_pain(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Mean morning NRS per participant-week of the remodelling window.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``window_weeks`` and ``data_cutoff``; default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per participant and week (1..window_weeks, on or before ``obs_end``) with at
        least one morning rating; participants in
        :func:`~rehabstats.time.timeline.participant_timeline` order, then by week. Columns

        participant_id : str
        week : int
        pain_morning_mean : float
            Mean of the week's daily morning NRS.
        n_records : int
            Days of the week with a morning rating.

    Notes
    -----
    ``docs/metrics.md`` §5 and §3 (``week = day // 7 + 1``). Several morning ratings on one day
    are first averaged into that day's rating (see :func:`morning_nrs`), so every day weighs the
    same and ``n_records`` counts days, not rows.
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    pos, week, mean, n_records = weekly_pain_arrays(cohort, timeline, config)
    return pd.DataFrame(
        {
            "participant_id": timeline.index.astype("str").take(pos).array,
            "week": week,
            "pain_morning_mean": mean,
            "n_records": n_records,
        }
    )


def weekly_pain_arrays(
    cohort: Cohort, timeline: pd.DataFrame, config: AnalysisConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`weekly_pain` as arrays, for a caller that places the weeks on its own grid.

    Returns
    -------
    position, week, pain_morning_mean, n_records : arrays
        Each participant-week with a morning rating: the participant's position in
        ``timeline`` (:func:`~rehabstats.time.timeline.participant_timeline` output for
        ``config``), the week, the mean daily morning NRS and the days rated; in timeline, then
        week order.
    """
    return _weekly_arrays(cohort, timeline, config)


def _weekly_arrays(
    cohort: Cohort,
    timeline: pd.DataFrame,
    config: AnalysisConfig,
    daily: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weekly morning pain as arrays (position, week, mean, days) in timeline, week order.

    ``daily``: :func:`_daily_morning` (by position, whole follow-up), when already known (the
    window's days are a subset of it: daily means are per day).
    """
    if daily is None:
        pos, day, nrs = _daily_morning(cohort.pain, timeline, window_weeks=config.window_weeks)
    else:
        pos, day, nrs = daily
        inside = (day >= 0) & (day < 7 * config.window_weeks)
        pos, day, nrs = pos[inside], day[inside], nrs[inside]
    week = day // 7 + 1
    starts, counts = _runs(day_keys(pos, week))
    mean = _run_means(nrs, starts, counts)
    return pos[starts], week[starts], mean, counts.astype("int64")


@computation
def pain_monitoring(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Pain-monitoring summary per participant.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``pain_limit``, ``settle_tolerance``, ``flare_delta``, ``rising_min_records``,
        ``window_weeks`` and ``data_cutoff``; default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per analysed participant, in
        :func:`~rehabstats.time.timeline.participant_timeline` order, with columns

        participant_id : str
        pain_morning_week1 : float
            Mean morning NRS in week 1 (NaN without a rating).
        pain_morning_week12 : float
            Mean morning NRS in the last window week, ``window_weeks`` (12 by default; the
            column keeps the contract's name whatever the window). NaN without a rating.
        pain_change : float
            pain_morning_week12 − pain_morning_week1.
        session_days : int
            Session days in the window (rows of :func:`session_day_rules`).
        pmm_violation_days : int
            Session days violating at least one rule.
        pmm_violation_rate : float
            pmm_violation_days / session days with at least one rule known; NaN when none.
        flares : int
            Session days with a flare (unknown flares are not counted).
        weeks_rising : int
            Weeks whose mean morning NRS exceeds the previous week's (see Notes).

    Notes
    -----
    ``docs/metrics.md`` §5::

        pmm_violation_rate = #(session days violating a rule) / #(session days with a rule known)
        weeks_rising       = #{w : n(w) >= m, n(w-1) >= m, mean(w) > mean(w-1)}

    with ``mean(w)`` the week's mean daily morning NRS, ``n(w)`` its days with a morning rating
    and ``m = rising_min_records``. The previous week is the calendar week w − 1, not the last
    earlier week with ratings, so week 1 is never rising and a week after a week with fewer
    than m ratings is not counted. A session day with every rule unknown is neither a violation
    nor in the rate's denominator. See :func:`session_day_rules` and :func:`weekly_pain`.
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    index = timeline.index.astype("str")
    n = len(timeline)

    pos, _, highest, rise, daily = _session_day_arrays(cohort, timeline, config)
    violated, known = _violations(highest, rise, config)
    with np.errstate(invalid="ignore"):
        flare = rise >= config.flare_delta
    session_days = np.bincount(pos, minlength=n).astype("int64")
    violation_days = np.bincount(pos[violated & known], minlength=n).astype("int64")
    known_days = np.bincount(pos[known], minlength=n).astype("int64")
    flares = np.bincount(pos[flare], minlength=n).astype("int64")

    w_pos, w_week, w_mean, w_records = _weekly_arrays(cohort, timeline, config, daily)
    first = np.full(n, np.nan)
    at = w_week == 1
    first[w_pos[at]] = w_mean[at]
    last = np.full(n, np.nan)
    at = w_week == config.window_weeks
    last[w_pos[at]] = w_mean[at]

    full = w_records >= config.rising_min_records
    f_pos, f_week, f_mean = w_pos[full], w_week[full], w_mean[full]
    pair = (f_pos[1:] == f_pos[:-1]) & (f_week[1:] == f_week[:-1] + 1)
    up = np.round(f_mean[1:] - f_mean[:-1], _DECIMALS) > 0
    weeks_rising = np.bincount(f_pos[1:][pair & up], minlength=n).astype("int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = violation_days / np.where(known_days > 0, known_days, np.nan)

    return pd.DataFrame(
        {
            "participant_id": index,
            "pain_morning_week1": first,
            "pain_morning_week12": last,
            "pain_change": last - first,
            "session_days": session_days,
            "pmm_violation_days": violation_days,
            "pmm_violation_rate": rate,
            "flares": flares,
            "weeks_rising": weeks_rising,
        }
    )


# ----------------------------------------------------------------------------------------------
# Trajectory model

_MODEL_COLUMNS = [
    "term",
    "estimate",
    "std_err",
    "df",
    "ci_low",
    "ci_high",
    "p_value",
    "model",
    "converged",
    "note",
]
"""Columns of :func:`pain_model`'s table, in order (documented in docs/metrics.md)."""

_FIXED_COLUMNS = _MODEL_COLUMNS[:7]

_LLF_TOL = 1e-8
"""Relative shortfall of the random-slope REML log-likelihood below the nested random-intercept
model's that counts as a failed optimisation (the larger model's maximum cannot be lower)."""


@computation
def pain_model(
    cohort: Cohort,
    *,
    by: str | None = None,
    config: AnalysisConfig | None = None,
    random_slope: bool = True,
) -> pd.DataFrame:
    r"""Linear mixed model of the weekly mean morning NRS over the remodelling window.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    by : str, optional
        Participant column defining the groups (``site``, ``arm``, ``tendinopathy_type`` or
        ``sex``); without it a single trajectory is fitted.
    config : AnalysisConfig, optional
        ``window_weeks``, ``confidence_level`` and ``data_cutoff``; default
        ``AnalysisConfig()``.
    random_slope : bool, default True
        Fit random intercepts and slopes (the contract's model). False fits random intercepts
        only (the fallback, e.g. for a sensitivity analysis).

    Returns
    -------
    DataFrame
        One row per model term, with columns (in this order)

        term : str
            Fixed effects, named and ordered as in patsy's model matrix (statsmodels):
            ``Intercept``, ``group[T.<level>]``, ``t``, ``t:group[T.<level>]`` (R's lmer
            names them ``(Intercept)``, ``<by><level>``, ``t``, ``t:<by><level>``); then
            ``var_intercept``, ``var_slope`` and ``cov_intercept_slope`` (random-slope model
            only) and ``var_residual``.
        estimate : float
            Fixed-effect coefficient (NRS points; per week for slopes) or variance component
            (NRS², per week² for the slope, per week for the covariance). NaN for a fixed effect
            the design cannot estimate (dropped as lme4 does, named in ``note``).
        std_err : float
            Standard error of a fixed effect, ``sqrt`` of the diagonal of
            ``cov(beta) = sigma^2 (X'V^-1 X)^-1`` (NaN for variance components).
        df : float
            Satterthwaite degrees of freedom of a fixed effect (as lmerTest; NaN for variance
            components).
        ci_low, ci_high : float
            Confidence interval at ``confidence_level``: ``estimate -/+ t_{1-alpha/2, df}
            std_err`` (NaN for variance components).
        p_value : float
            Two-sided p-value of the t test of ``estimate = 0`` with ``df`` degrees of freedom
            (NaN for variance components).
        model : str
            ``random_slope`` or ``random_intercept`` (the model reported); ``none`` when no
            model could be fitted (then a single row, term NA).
        converged : bool
            The reported model passed every check of "Convergence and fallback" below.
        note : str
            Why the model fell back to random intercepts, a failed check, terms dropped from a
            rank-deficient design and the fitter's warnings, joined by ``" | "``; empty when
            there is nothing to say.

        ``DataFrame.attrs`` holds ``formula``, ``n_observations``, ``n_participants``,
        ``reml_loglik`` (the reported model's REML log-likelihood; absent without a model) and
        ``notes``, the notes of ``note`` one by one (:class:`~rehabstats.errors.Note` objects
        where they hold counts or data values, for reports that leave the team).

    Notes
    -----
    ``docs/metrics.md`` §5. **Data**: one row per participant-week of the window (within
    follow-up) with at least one morning rating; the response is the week's mean daily morning
    NRS (see :func:`weekly_pain`), ``t = week − 1`` (weeks since the first week). Participants
    contribute whatever weeks they have; participants without morning ratings do not enter the
    model.

    **Model** (``pain ~ t * group + (1 + t | participant)`` in lme4 notation)::

        pain_ij = (b0 + u0_i) + (b1 + u1_i) t_ij + e_ij                   (without by)
        pain_ij = b0 + b1 t_ij + g_k + h_k t_ij + u0_i + u1_i t_ij + e_ij  (with by)

        (u0_i, u1_i) ~ N(0, [[var_intercept, cov_intercept_slope],
                             [cov_intercept_slope, var_slope]]),  e_ij ~ N(0, var_residual)

    Treatment coding with the **first group alphabetically as reference**: ``Intercept`` (b0)
    and ``t`` (b1) are the reference group's mean week-1 pain and weekly change;
    ``group[T.k]`` (g_k) is group k's difference in week-1 pain and ``t:group[T.k]`` (h_k) its
    difference in weekly change. With ``by`` but a single group holding pain data the group
    terms cannot be estimated and ``pain ~ t`` is fitted (said in ``note``). The fallback is
    the random intercept ``(1 | participant)``: ``u1_i = 0``.

    **Estimation: REML via the profiled deviance** (Bates et al. 2015, §3), by
    :func:`rehabstats.stats.mixed.fit_stats` (docs/mixed.md). With the random effects
    ``b_i ~ N(0, sigma^2 Lambda Lambda')``, ``Lambda`` lower triangular with
    ``theta = (Lambda_00, Lambda_10, Lambda_11)`` (``theta = Lambda_00`` for the random
    intercept), ``L_i L_i' = Lambda' Z_i'Z_i Lambda + I``, ``R_X'R_X = X'V^-1 X`` (``V = I + Z
    Lambda Lambda' Z'``, relative to ``sigma^2``) and ``r^2`` the penalised residual sum of
    squares, the profiled REML deviance::

        d_R(theta) = log|L|^2 + log|R_X|^2 + (n - p) (1 + log(2 pi r^2 / (n - p)))

    is minimised over ``theta`` with ``Lambda_00, Lambda_11 >= 0``: the REML maximum exactly as
    lme4's ``lmer`` defines it. Then ``sigma^2 = r^2 / (n - p)`` (``var_residual``), the
    random-effects covariance is ``sigma^2 Lambda Lambda'``, ``beta`` and ``cov(beta) =
    sigma^2 (R_X'R_X)^-1`` are the generalised least-squares estimates at ``theta``, and the
    REML log-likelihood is ``-d_R / 2`` (lme4's ``logLik``). Everything ``d_R`` needs is a sum
    over participants of 2x2 cross-products, computed once in one vectorised pass.

    **Satterthwaite degrees of freedom** (Kuznetsova et al. 2017, §3; Satterthwaite 1946), as
    lmerTest and SAS PROC MIXED ``ddfm=satterthwaite``: for fixed effect j, with
    ``varpar = (theta, sigma)``, ``A(varpar) = cov(beta)``, ``g = d A_jj / d varpar`` and ``W``
    the asymptotic covariance of ``varpar`` (twice the Moore–Penrose inverse of the Hessian of
    the REML deviance in ``varpar``)::

        df_j = 2 A_jj^2 / (g' W g)
        CI_j = estimate_j -/+ t_{1 - alpha/2, df_j} std_err_j,   alpha = 1 - confidence_level
        p_j  = 2 P(T_{df_j} > |estimate_j / std_err_j|)

    **Convergence and fallback.** The random-slope model is reported when all of these hold:
    it could be fitted (lme4 would not refuse it: at least 2 participants, more observations
    than random effects, residual variation left by the fixed effects); it passes lme4's
    convergence checks (``check.conv.grad``: scaled gradient of ``d_R`` at most 0.002;
    ``check.conv.hess``: no Hessian eigenvalue negative or below 1e-6 in absolute value); every
    estimate, standard error and degrees of freedom of an estimable term is finite; it is not
    singular by lme4's ``isSingular`` (every diagonal element of ``Lambda`` at least 1e-4: a
    zero variance or a ±1 intercept–slope correlation is singular); and its REML
    log-likelihood is not below the random-intercept model's (which it contains, so a lower
    value would mean the optimiser stopped short; a guard the exact fitter should never
    trip). Otherwise the random-intercept model is reported, ``note`` says why (with the
    random-slope fit's own messages), and ``converged`` reports the same checks (bar the last)
    on that fit. Without any fitted model: one row with ``model = none``.

    References
    ----------
    Bates D, Mächler M, Bolker B, Walker S (2015). Fitting linear mixed-effects models using
    lme4. *Journal of Statistical Software* 67(1). doi:10.18637/jss.v067.i01

    Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package: tests in linear mixed
    effects models. *Journal of Statistical Software* 82(13). doi:10.18637/jss.v082.i13

    Satterthwaite FE (1946). An approximate distribution of estimates of variance components.
    *Biometrics Bulletin* 2(6), 110–114.
    """
    config = config or AnalysisConfig()
    data = pain_model_data(cohort, by=by, config=config)
    levels = sorted(pd.unique(data["group"].to_numpy()))  # groups with pain data
    stats = pain_model_stats(data, by=by, levels=levels) if len(data) else None
    return pain_model_from_stats(
        stats, by=by, levels=levels, config=config, random_slope=random_slope
    )


@computation
def pain_model_data(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """The observations of :func:`pain_model`: participant (its id), t (week - 1), pain (the
    week's mean morning NRS) and group (the ``by`` label, ``"all"`` without it), one row per
    participant-week of the window with a morning rating, in participant-week order."""
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    labels = group_labels(timeline, by).to_numpy()
    pos, week, mean, _ = _weekly_arrays(cohort, timeline, config)
    return pd.DataFrame(
        {
            "participant": timeline.index.astype("str").to_numpy()[pos],
            "t": (week - 1).astype("float64"),
            "pain": mean,
            "group": labels[pos],
        }
    )


def pain_model_stats(data: pd.DataFrame, *, by: str | None, levels: list) -> Any:
    """The sufficient statistics (:func:`rehabstats.stats.mixed.trajectory_stats`) of
    :func:`pain_model_data` with the model's group ``levels`` (the sorted groups holding pain
    data in the whole cohort: the same for every part whose statistics are combined)."""
    from rehabstats.stats import mixed

    grouped = by is not None and len(levels) >= 2
    return mixed.trajectory_stats(
        data,
        participant="participant",
        t="t",
        y="pain",
        group="group" if grouped else None,
        levels=list(levels) if grouped else None,
    )


def pain_model_from_stats(
    stats: Any,
    *,
    by: str | None,
    levels: list,
    config: AnalysisConfig,
    random_slope: bool = True,
) -> pd.DataFrame:
    """:func:`pain_model` from the statistics of :func:`pain_model_stats` (None without any
    observation), e.g. the combined statistics of the parts of a partitioned cohort."""
    from rehabstats.stats import (
        mixed,  # scipy.optimize and scipy.stats: only when a model is fitted
    )

    notes: list[str] = []
    grouped = by is not None and len(levels) >= 2
    if grouped:
        formula = "pain ~ t * group"
    else:
        formula = "pain ~ t"
        if by is not None and levels:
            notes.append(
                Note(
                    "only one {by} group ({group}) has morning pain ratings; "
                    "fitted pain ~ t without group terms",
                    by=by,
                    group=str(levels[0]),
                )
            )
    n_participants = 0 if stats is None else int(stats.n_groups)
    attrs: dict[str, Any] = {
        "formula": formula,
        "n_observations": 0 if stats is None else int(stats.n_obs),
        "n_participants": n_participants,
    }
    if n_participants < 2:
        notes.append(
            Note(
                "{n} participants with morning pain ratings in the window; "
                "a mixed model needs at least {minimum}",
                counts={"n": n_participants},
                minimum=2,
            )
        )
        return _no_model(notes, attrs)

    confidence = config.confidence_level
    intercept = mixed.fit_stats(stats, random_slope=False, confidence=confidence)
    kind, fit = "random_intercept", intercept
    if not random_slope:
        notes.append("random intercept only, as requested (random_slope=False)")
    else:
        slope = mixed.fit_stats(stats, random_slope=True, confidence=confidence)
        problems = _problems(slope)
        if not problems and _short_of(slope, intercept):
            problems.append(
                f"REML log-likelihood {slope.loglik:.6g} below the nested random-intercept "
                f"model's {intercept.loglik:.6g}: the optimiser stopped short of the maximum"
            )
        if problems:
            notes.append(
                Note(
                    "random-slope model not used ({problems}); refitted with a random "
                    "intercept only",
                    problems="; ".join(problems),  # convergence checks: no counts
                )
            )
            notes.extend(
                _prefixed("random-slope fit: ", n) for n in slope.notes if n not in intercept.notes
            )
        else:
            kind, fit = "random_slope", slope
    if not np.isfinite(fit.loglik):
        notes.extend(fit.notes)
        return _no_model(notes, attrs)
    problems = _problems(fit)
    if problems:
        notes.append(
            Note("{kind} model: {problems}", kind=kind.replace("_", "-"),
                 problems="; ".join(problems))
        )  # fmt: skip
    notes.extend(fit.notes)
    table = _model_table(fit, stats)
    table["model"] = kind
    table["converged"] = not problems
    table["note"] = " | ".join(notes)
    table.attrs.update(attrs, reml_loglik=fit.loglik, notes=list(notes))
    return table[_MODEL_COLUMNS]


def _problems(fit: Any) -> list[str]:
    """The checks of :func:`pain_model` ("Convergence and fallback") that a fit fails, bar the
    comparison with the nested model."""
    if not np.isfinite(fit.loglik):
        return ["the model could not be fitted"]
    problems = []
    if not fit.converged:
        problems.append("failed lme4's convergence checks")
    estimable = fit.fixed.set_index("term").loc[list(fit.cov_beta.index)]
    values = np.r_[
        estimable[["estimate", "std_err"]].to_numpy(dtype="float64").ravel(),
        list(fit.variance.values()),
    ]
    df = estimable["df"].to_numpy(dtype="float64")
    if not (np.isfinite(values).all() and fit.sigma > 0 and (df > 0).all()):
        problems.append("non-finite estimates, standard errors or degrees of freedom")
    if fit.singular:
        problems.append(
            "singular random-effects covariance (a variance at zero or a correlation at ±1)"
        )
    return problems


def _short_of(fit: Any, nested: Any) -> bool:
    """``fit``'s REML log-likelihood is below the nested model's beyond the relative tolerance."""
    floor = nested.loglik
    if not (np.isfinite(floor) and np.isfinite(fit.loglik)):
        return False
    return bool(floor - fit.loglik > _LLF_TOL * max(1.0, abs(floor)))


def _prefixed(prefix: str, note: str) -> str:
    """``prefix + note``; a :class:`~rehabstats.errors.Note` keeps its counts apart."""
    if isinstance(note, Note) and (note.counts or note.values):
        escaped = prefix.replace("{", "{{").replace("}", "}}")
        return Note(escaped + note.template, counts=note.counts, **note.values)
    return prefix + str(note)


def _model_table(fit: Any, stats: Any) -> pd.DataFrame:
    """Fixed effects in patsy's order (intercept, group main effects, t, interactions), then
    the variance components."""
    terms = list(stats.terms)  # Intercept, t, group[T.*] ..., t:group[T.*] ...
    k = (len(terms) - 2) // 2
    order = [terms[0], *terms[2 : 2 + k], terms[1], *terms[2 + k :]]
    fixed = fit.fixed.set_index("term").loc[order].reset_index()
    variance = pd.DataFrame({"term": list(fit.variance), "estimate": list(fit.variance.values())})
    table = pd.concat([fixed[_FIXED_COLUMNS], variance], ignore_index=True)
    table["term"] = table["term"].astype("str")
    return table


def _no_model(notes: list[str], attrs: dict[str, object]) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "term": pd.Series([pd.NA], dtype="str"),
            "estimate": [np.nan],
            "std_err": [np.nan],
            "df": [np.nan],
            "ci_low": [np.nan],
            "ci_high": [np.nan],
            "p_value": [np.nan],
            "model": ["none"],
            "converged": [False],
            "note": [" | ".join(notes)],
        }
    )
    table.attrs.update(attrs, notes=list(notes))
    return table
