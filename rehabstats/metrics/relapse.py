"""Relapse after returning to running or sport (``docs/metrics.md`` §8).

A participant is at risk from the first ``return_to_running`` or ``return_to_sport`` event;
the relapse is the earliest of a recorded relapse, a run of painful mornings and a regression
to an early stage (:mod:`rehabstats.time.tte` does the timing). Rates, cumulative incidence and the
stopped-early rate ratio are estimated with :mod:`rehabstats.stats.survival`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.data.cohort import Cohort
from rehabstats.metrics.pain import morning_nrs
from rehabstats.metrics.stages import stopped_loading
from rehabstats.stats.survival import cumulative_incidence, poisson_rate_ci, poisson_rate_ratio
from rehabstats.time.keys import on_participant_days, participant_day_keys, participant_positions
from rehabstats.time.timeline import (
    analysis_cutoff,
    computation,
    group_labels,
    observed_rows,
    participant_timeline,
)
from rehabstats.time.tte import EventSpec, derive

__all__ = [
    "RETURN_EVENTS",
    "at_risk_start",
    "relapse_incidence",
    "relapse_incidence_from_times",
    "relapse_incidence_times",
    "relapse_metrics",
    "relapse_person_time",
    "relapse_rate_ratio",
    "relapse_rate_ratio_from_metrics",
    "relapse_rates",
    "relapse_rates_from_person_time",
    "relapse_times",
]

RETURN_EVENTS = ("return_to_running", "return_to_sport")
"""Events that start the at-risk period (the first of them)."""

_PRECEDENCE = ("recorded", "pain", "regression")
"""Relapse rules in order of precedence when two give the same day."""


@computation
def relapse_metrics(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """First relapse after the return to running or sport, per participant.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``relapse_rules``, ``relapse_days``, ``pain_limit``, ``relapse_regression_stage`` and
        ``data_cutoff``; default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per analysed participant, in the order of
        :func:`~rehabstats.time.timeline.participant_timeline`, with columns

        participant_id : str
        at_risk_start_day : Int64
            Day of the first ``return_to_running`` or ``return_to_sport`` event within
            follow-up; NA when none (not at risk).
        relapsed : boolean (nullable)
            A relapse within follow-up after the at-risk start; NA when not at risk.
        days_to_relapse : Int64
            Relapse day minus ``at_risk_start_day``; NA without a relapse.
        relapse_source : str
            ``recorded``, ``pain`` or ``regression``: the rule that gave the (earliest)
            relapse; NA without a relapse.
        person_weeks_at_risk : float
            Days from the at-risk start to the relapse or ``obs_end``, divided by 7; NaN when
            not at risk.

    Notes
    -----
    ``docs/metrics.md`` §8. Only the rules in ``relapse_rules`` apply, and only data within
    follow-up (on or before ``obs_end``). Readings where the contract is silent:

    * "After the at-risk start" is strictly after: an event, session or painful morning on
      the at-risk start day does not count (a morning rating is taken on waking, before that
      day's return; a relapse on the day of return cannot be told apart from the reason for
      it). Time at risk is therefore > 0 for every relapse.
    * ``recorded``: a ``relapse`` event. ``regression``: a scheduled session (completed or
      not) with ``stage <= relapse_regression_stage``.
    * ``pain``: the first day of a run of at least ``relapse_days`` consecutive calendar days,
      all after the at-risk start, each with a morning NRS > ``pain_limit`` (several ratings
      on one day: their mean, :func:`rehabstats.metrics.pain.morning_nrs`). A day without a morning
      rating, or with one <= ``pain_limit``, ends the run; mornings on or before the at-risk
      start are not part of any run (the at-risk period starts afresh). The run must be
      complete by ``obs_end``.
    * Same-day ties between rules: ``recorded`` > ``pain`` > ``regression`` (the clinician's
      record, then the patient's report, then the programme's response to it).
    * The relapse counts when it falls on the withdrawal day (data on ``obs_end`` is
      observed); withdrawal is the competing event of :func:`relapse_incidence`.
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    relapse = relapse_times(cohort, config=config)
    at = participant_positions(relapse["participant_id"], timeline.index)
    n = len(timeline)
    start = np.full(n, np.nan)
    start[at] = relapse["start_day"].to_numpy()
    relapsed = np.full(n, np.nan)
    relapsed[at] = relapse["event"].to_numpy()
    days = np.full(n, np.nan)
    days[at] = np.where(relapse["event"], relapse["time"], np.nan)
    weeks = np.full(n, np.nan)
    weeks[at] = relapse["time"].to_numpy() / 7
    source = np.full(n, None, dtype=object)
    source[at] = relapse["event_source"].to_numpy(dtype=object, na_value=None)
    return pd.DataFrame(
        {
            "participant_id": timeline.index.astype("str").to_numpy(),
            "at_risk_start_day": pd.array(start, dtype="Int64"),
            "relapsed": pd.array(relapsed, dtype="boolean"),
            "days_to_relapse": pd.array(days, dtype="Int64"),
            "relapse_source": pd.array(source, dtype="str"),
            "person_weeks_at_risk": weeks,
        }
    )


@computation
def relapse_rates(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """Relapse rate per 1000 person-weeks at risk, with its exact confidence interval.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    by : str, optional
        A participant column to estimate separately for; default one group, ``"all"``.
    config : AnalysisConfig, optional
        As :func:`relapse_metrics`, plus ``confidence_level``.

    Returns
    -------
    DataFrame
        One row per group (sorted), with columns

        group : str
        n_at_risk : int
            Participants at risk (with a return to running or sport within follow-up).
        relapses : int
            First relapses among them.
        person_weeks : float
            Sum of ``person_weeks_at_risk``.
        rate_per_1000_pw : float
            ``relapses / person_weeks * 1000``; NaN without person-time.
        ci_low, ci_high : float
            Exact (Garwood) limits, per 1000 person-weeks; NaN without person-time.

    Notes
    -----
    ``docs/metrics.md`` §8: with ``alpha = 1 - confidence_level`` and ``k`` relapses,
    ``lower = chi2(alpha/2; 2k) / 2`` (0 when ``k = 0``), ``upper = chi2(1 - alpha/2;
    2k + 2) / 2``, each divided by person-weeks and multiplied by 1000 (Garwood 1936; R
    ``poisson.test``), via :func:`rehabstats.stats.survival.poisson_rate_ci`.
    """
    config = config or AnalysisConfig()
    return relapse_rates_from_person_time(relapse_person_time(cohort, by=by, config=config), config)


@computation
def relapse_person_time(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """Per analysed participant: group, at_risk, relapsed and person_weeks (0 when not at
    risk), in timeline order: what :func:`relapse_rates` sums. Those of disjoint parts of a
    cohort concatenate into the cohort's (:func:`relapse_rates_from_person_time`)."""
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    metrics = relapse_metrics(cohort, config=config)
    return pd.DataFrame(
        {
            "participant_id": timeline.index.astype("str").to_numpy(),
            "group": group_labels(timeline, by).to_numpy(),
            "at_risk": metrics["relapsed"].notna().to_numpy(),
            "relapsed": metrics["relapsed"].fillna(False).to_numpy(dtype=bool),
            "person_weeks": np.nan_to_num(metrics["person_weeks_at_risk"].to_numpy("float64")),
        }
    )


def relapse_rates_from_person_time(
    person_time: pd.DataFrame, config: AnalysisConfig
) -> pd.DataFrame:
    """:func:`relapse_rates` from :func:`relapse_person_time` (any row order)."""
    groups = person_time["group"].to_numpy()
    at_risk = person_time["at_risk"].to_numpy(dtype=bool)
    relapsed = person_time["relapsed"].to_numpy(dtype=bool)
    weeks = person_time["person_weeks"].to_numpy(dtype="float64")
    names = sorted(pd.unique(groups))
    n_at_risk = np.array([(at_risk & (groups == g)).sum() for g in names], dtype="int64")
    relapses = np.array([(relapsed & (groups == g)).sum() for g in names], dtype="int64")
    person_weeks = np.array([weeks[groups == g].sum() for g in names], dtype="float64")
    low, high = poisson_rate_ci(relapses, person_weeks, confidence_level=config.confidence_level)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(person_weeks > 0, relapses / person_weeks, np.nan)
    return pd.DataFrame(
        {
            "group": pd.array(names, dtype="str"),
            "n_at_risk": n_at_risk,
            "relapses": relapses,
            "person_weeks": person_weeks,
            "rate_per_1000_pw": rate * 1000,
            "ci_low": low * 1000,
            "ci_high": high * 1000,
        }
    )


@computation
def relapse_incidence(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """Cumulative incidence of relapse since the at-risk start, withdrawal competing.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    by : str, optional
        A participant column to estimate separately for; default one group, ``"all"``.
    config : AnalysisConfig, optional
        As :func:`relapse_metrics`, plus ``incidence_weeks``.

    Returns
    -------
    DataFrame
        One row per group (sorted) and week of ``incidence_weeks``, with columns

        group : str
        week : int
            Weeks since the at-risk start.
        cumulative_incidence : float
            Aalen-Johansen probability of a relapse within ``7 * week`` days of the at-risk
            start; NaN when that is beyond every at-risk participant's follow-up in the group
            or the group has nobody at risk.

    Notes
    -----
    ``docs/metrics.md`` §8. Time = days since the at-risk start; a relapse is cause 1,
    withdrawal during the at-risk period without a relapse is the competing cause 2 (after it
    a relapse can no longer happen), and the data cut-off censors. Estimator:
    :func:`rehabstats.stats.survival.cumulative_incidence` (statsmodels ``CumIncidenceRight``,
    identical to R ``cmprsk::cuminc``), read as a step function at ``7 * week`` days.
    """
    config = config or AnalysisConfig()
    times = relapse_incidence_times(cohort, by=by, config=config)
    return relapse_incidence_from_times(times, config)


@computation
def relapse_incidence_times(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """What :func:`relapse_incidence` estimates from: one row per analysed participant (group
    only, for the groups) and per participant at risk (time since the at-risk start, status 1
    relapse, 2 withdrawal, 0 censored). Concatenating those of disjoint parts of a cohort gives
    the cohort's (:func:`relapse_incidence_from_times`)."""
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    relapse = relapse_times(cohort, config=config)
    groups = group_labels(timeline, by)
    row_group = groups.reindex(relapse["participant_id"]).to_numpy()
    status = np.where(relapse["event"], 1, np.where(relapse["competing"], 2, 0))
    return pd.DataFrame(
        {
            "group": np.concatenate([groups.to_numpy(), row_group]),
            "time": np.concatenate(
                [np.full(len(groups), np.nan), relapse["time"].to_numpy(dtype="float64")]
            ),
            "status": np.concatenate([np.full(len(groups), -1), status]).astype("int64"),
        }
    )


def relapse_incidence_from_times(times: pd.DataFrame, config: AnalysisConfig) -> pd.DataFrame:
    """:func:`relapse_incidence` from :func:`relapse_incidence_times` (any row order)."""
    names = sorted(pd.unique(times["group"].to_numpy()))
    timed = times["status"].to_numpy() >= 0
    row_group = times["group"].to_numpy()[timed]
    status = times["status"].to_numpy()[timed]
    time = times["time"].to_numpy(dtype="float64")[timed]
    weeks = np.asarray(config.incidence_weeks, dtype="int64")
    parts = [pd.DataFrame({"group": [], "week": [], "cumulative_incidence": []})]
    for g in names:
        mask = row_group == g
        cif = cumulative_incidence(time[mask], status[mask], 7 * weeks, cause=1)
        parts.append(pd.DataFrame({"group": g, "week": weeks, "cumulative_incidence": cif}))
    out = pd.concat(parts, ignore_index=True)
    return out.astype({"group": "str", "week": "int64", "cumulative_incidence": "float64"})


@computation
def relapse_rate_ratio(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Relapse rate ratio, participants who stopped loading early vs those who did not.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        As :func:`relapse_metrics` and :func:`rehabstats.metrics.stages.stage_metrics`
        (``stopped_early_*``), plus ``confidence_level``.

    Returns
    -------
    DataFrame
        One row, with columns

        n_stopped_early, n_completers : int
            At-risk participants with ``stopped_early`` True / False.
        relapses_stopped_early, relapses_completers : int
        person_weeks_stopped_early, person_weeks_completers : float
        rate_per_1000_pw_stopped_early, rate_per_1000_pw_completers : float
            NaN without person-time.
        rate_ratio : float
            Stopped-early rate / completers' rate (inf when completers had no relapse).
        ci_low, ci_high : float
            Exact conditional confidence limits of the ratio.
        p_value : float
            Two-sided exact conditional test of ratio = 1.
            The ratio, limits and p-value are NaN without any relapse.

    Notes
    -----
    ``docs/metrics.md`` §7-§8. Participants at risk whose ``stopped_early`` is NA (follow-up
    shorter than ``stopped_early_min_follow_up_days``) are in neither group. Conditional on
    the total ``n = x1 + x2``, ``x1`` is binomial with ``p = T1 / (T1 + T2)`` under equal rates;
    the Clopper-Pearson limits of ``p`` give the ratio's limits ``p / (1 - p) * T2 / T1``, as
    R ``poisson.test(c(x1, x2), c(T1, T2))`` (:func:`rehabstats.stats.survival.poisson_rate_ratio`).
    """
    config = config or AnalysisConfig()
    metrics = relapse_metrics(cohort, config=config)
    stopped = stopped_loading(cohort, config=config)["stopped_early"].array
    return relapse_rate_ratio_from_metrics(metrics.assign(stopped_early=stopped), config)


def relapse_rate_ratio_from_metrics(metrics: pd.DataFrame, config: AnalysisConfig) -> pd.DataFrame:
    """:func:`relapse_rate_ratio` from per-participant ``relapsed``, ``person_weeks_at_risk``
    and ``stopped_early`` (e.g. :func:`rehabstats.participant_metrics`; the sums run in the
    rows' order)."""
    stopped = metrics["stopped_early"].to_numpy(dtype=object, na_value=None)
    at_risk = metrics["relapsed"].notna().to_numpy()
    relapsed = metrics["relapsed"].fillna(False).to_numpy(dtype=bool)
    weeks = np.nan_to_num(metrics["person_weeks_at_risk"].to_numpy(dtype="float64"))
    row: dict[str, float] = {}
    totals = {}
    for label, flag in (("stopped_early", True), ("completers", False)):
        mask = at_risk & (stopped == flag)
        k, t = int(relapsed[mask].sum()), float(weeks[mask].sum())
        totals[label] = (k, t)
        row[f"n_{label}"] = int(mask.sum())
        row[f"relapses_{label}"] = k
        row[f"person_weeks_{label}"] = t
        row[f"rate_per_1000_pw_{label}"] = k / t * 1000 if t > 0 else float("nan")
    row.update(
        poisson_rate_ratio(
            *totals["stopped_early"],
            *totals["completers"],
            confidence_level=config.confidence_level,
        )
    )
    columns = [
        "n_stopped_early",
        "relapses_stopped_early",
        "person_weeks_stopped_early",
        "rate_per_1000_pw_stopped_early",
        "n_completers",
        "relapses_completers",
        "person_weeks_completers",
        "rate_per_1000_pw_completers",
        "rate_ratio",
        "ci_low",
        "ci_high",
        "p_value",
    ]
    return pd.DataFrame([row])[columns]


# ----------------------------------------------------------------------------------------------


@computation
def relapse_times(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Time from the return to running or sport to the first relapse (§8), per participant at
    risk: the time-to-event table behind every relapse output.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        As :func:`relapse_metrics`.

    Returns
    -------
    DataFrame
        :func:`rehabstats.time.tte.derive` output: one row per participant with a return to
        running or sport within follow-up (timeline order), with columns participant_id,
        start_day (the at-risk start), event_day, time (days since the start), event (a
        relapse), event_source (its rule) and competing (withdrawal without a relapse).

    Notes
    -----
    The rules are those of :func:`relapse_metrics`. Computed once per cohort, cut-off and
    configuration, for :func:`relapse_metrics`, :func:`relapse_rates`,
    :func:`relapse_incidence` and :func:`rehabstats.metrics.running.relapse_acwr`.
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    key = ("relapse_times", analysis_cutoff(cohort, config), config)
    return cohort.derived(key, lambda: _relapse_times(cohort, timeline, config)).copy(deep=False)


def at_risk_start(cohort: Cohort, timeline: pd.DataFrame) -> pd.Series:
    """Day of each participant's first return to running or sport within follow-up.

    Parameters
    ----------
    cohort : Cohort
    timeline : DataFrame
        :func:`~rehabstats.time.timeline.participant_timeline` output.

    Returns
    -------
    Series
        Indexed like ``timeline``; NaN when there is no return within follow-up (not at risk).
    """
    pos, day = _events(cohort, timeline, RETURN_EVENTS)
    first = np.full(len(timeline), np.inf)
    np.minimum.at(first, pos, day.astype("float64"))
    return pd.Series(np.where(np.isinf(first), np.nan, first), index=timeline.index)


def _events(
    cohort: Cohort, timeline: pd.DataFrame, names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Timeline position and day of the events named ``names`` within follow-up."""
    events = cohort.events
    rows, pos, day = observed_rows(events, "event_date", timeline)
    wanted = events["event"].isin(names).to_numpy(dtype=bool)[rows]
    return pos[wanted], day[wanted]


def _candidates(pos: np.ndarray, day: np.ndarray, timeline: pd.DataFrame) -> pd.DataFrame:
    """Candidate event rows for :func:`rehabstats.time.tte.derive` from timeline positions."""
    return pd.DataFrame(
        {"participant_id": pd.Categorical.from_codes(pos, categories=timeline.index), "day": day}
    )


def _relapse_times(cohort: Cohort, timeline: pd.DataFrame, config: AnalysisConfig) -> pd.DataFrame:
    """:func:`relapse_times` computed."""
    start = at_risk_start(cohort, timeline)
    sources = []
    for rule in _PRECEDENCE:
        if rule not in config.relapse_rules:
            continue
        if rule == "recorded":
            sources.append((rule, _candidates(*_events(cohort, timeline, ("relapse",)), timeline)))
        elif rule == "pain":
            sources.append((rule, _pain_runs(cohort, timeline, start, config)))
        else:
            rows, pos, day = observed_rows(cohort.sessions, "session_date", timeline)
            regress = cohort.sessions["stage"].to_numpy()[rows] <= config.relapse_regression_stage
            sources.append((rule, _candidates(pos[regress], day[regress], timeline)))
    withdrawal = timeline["follow_up_days"].where(timeline["withdrawn"]).astype("float64")
    spec = EventSpec(
        name="relapse",
        sources=tuple(sources),
        origin=start,
        origin_inclusive=False,
        competing=withdrawal,
    )
    return derive(spec, timeline)


def _pain_runs(
    cohort: Cohort, timeline: pd.DataFrame, start: pd.Series, config: AnalysisConfig
) -> pd.DataFrame:
    """First day of every run of >= relapse_days consecutive painful mornings after the start."""
    morning = morning_nrs(cohort, timeline, rows=_painful_diary_days(cohort, config))
    pos = participant_positions(morning["participant_id"], timeline.index)
    day = morning["day"].to_numpy(dtype="int64")
    origin = start.to_numpy(dtype="float64")[pos]
    painful = (morning["nrs"].to_numpy(dtype="float64") > config.pain_limit) & (day > origin)
    pos, day = pos[painful], day[painful]
    order = np.lexsort((day, pos)) if not _sorted(pos, day) else np.arange(len(pos))
    pos, day = pos[order], day[order]
    new_run = np.ones(len(pos), dtype=bool)
    new_run[1:] = (pos[1:] != pos[:-1]) | (day[1:] != day[:-1] + 1)
    run = np.cumsum(new_run) - 1
    length = np.bincount(run)[run] if len(run) else run
    first = new_run & (length >= config.relapse_days)
    return pd.DataFrame(
        {
            "participant_id": pd.Categorical.from_codes(pos[first], categories=timeline.index),
            "day": day[first],
        }
    )


def _painful_diary_days(cohort: Cohort, config: AnalysisConfig) -> np.ndarray:
    """The rows of the morning ratings of days having one > ``pain_limit``.

    Every rating of such a day is kept, so :func:`rehabstats.metrics.pain.morning_nrs` gives the same
    daily mean for them; the days left out average <= ``pain_limit`` and end a run anyway (the
    rest of the diary is not read, for speed).
    """
    pain = cohort.pain
    morning = np.flatnonzero((pain["timing"] == "morning").to_numpy(dtype=bool))
    keys = participant_day_keys(pain["participant_id"], pain["recorded_on"], morning)
    high = pain["nrs"].to_numpy(dtype="float64")[morning] > config.pain_limit
    return morning[on_participant_days(keys, keys[high])]


def _sorted(pos: np.ndarray, day: np.ndarray) -> bool:
    """Whether rows are ordered by participant position, then day."""
    if len(pos) < 2:
        return True
    dp = np.diff(pos)
    return bool(np.all((dp > 0) | ((dp == 0) & (np.diff(day) > 0))))
