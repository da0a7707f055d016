"""Programme stages (``docs/metrics.md`` §7): entry days, regressions, checkpoint, occupancy.

Stage metrics use the whole follow-up (not only the remodelling window) and the *scheduled*
sessions (a session row is the stage prescribed that day, whether or not it was completed),
except ``last_session_day``, which is about loading actually done (completed sessions). Times
to stage entry go through :mod:`rehabstats.time.tte` and are estimated with
:func:`rehabstats.stats.survival.kaplan_meier`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.data.cohort import Cohort
from rehabstats.metrics.checkpoint import checkpoint_attempts, first_pass_day
from rehabstats.stats.survival import KM_COLUMNS, kaplan_meier, km_interval_at, km_median
from rehabstats.time.keys import day_keys, sort_order
from rehabstats.time.timeline import (
    analysis_cutoff,
    computation,
    group_labels,
    observed_rows,
    participant_timeline,
    stage_on,
)
from rehabstats.time.tte import EventSpec, derive

__all__ = [
    "KM_SUMMARY_ESTIMATES",
    "OCCUPANCY_STATES",
    "stage_entry_durations",
    "stage_metrics",
    "stage_occupancy",
    "stage_occupancy_counts",
    "stage_occupancy_from_counts",
    "stopped_loading",
    "time_to_stage",
    "time_to_stage_from_durations",
    "time_to_stage_summary",
    "time_to_stage_summary_from_durations",
]

STAGES = (1, 2, 3, 4)
ENTRY_STAGES = (2, 3, 4)
"""Stages whose entry is timed (stage 1 is where everyone starts)."""

KM_SUMMARY_ESTIMATES = (
    "median_days",
    "median_ci_low",
    "median_ci_high",
    "reached_by_week_12",
    "reached_by_week_12_ci_low",
    "reached_by_week_12_ci_high",
)
"""The Kaplan-Meier estimates of :func:`time_to_stage_summary` (after stage, group, n, events)."""

OCCUPANCY_STATES = ("not_started", "stage_1", "stage_2", "stage_3", "stage_4", "withdrawn")
"""The states of :func:`stage_occupancy`, in reporting order."""


@computation
def stage_metrics(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """Stage progression per participant over the whole follow-up.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``checkpoint_*``, ``flare_delta``, ``stopped_early_day``,
        ``stopped_early_min_follow_up_days`` and ``data_cutoff``; default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per analysed participant, in the order of
        :func:`~rehabstats.time.timeline.participant_timeline`, with columns

        participant_id : str
        highest_stage : Int64
            Highest stage of a scheduled session within follow-up; NA without any session.
        reached_stage_2, reached_stage_3, reached_stage_4 : bool
            A scheduled session with stage >= s within follow-up.
        days_to_stage_2, days_to_stage_3, days_to_stage_4 : Int64
            Day of the first scheduled session with stage >= s; NA when not reached.
        time_in_stage_1, time_in_stage_2, time_in_stage_3 : Int64
            ``days_to_stage_(s+1) - days_to_stage_s`` when both are reached, with
            ``days_to_stage_1`` the day of the first scheduled session (any stage); NA
            otherwise.
        regressions : int
            Scheduled sessions whose stage is lower than the previous scheduled session's.
        checkpoint_passed : bool
            A passed stage-4 checkpoint (:func:`rehabstats.metrics.checkpoint.checkpoint_attempts`)
            anywhere within follow-up.
        progressed_without_checkpoint : bool
            Reached stage 4 with no passed checkpoint on or before ``days_to_stage_4``.
        insertional_step_deviation : bool
            Insertional tendinopathy with a scheduled stage-2 session on ``surface = step``.
        last_session_day : Int64
            Day of the last completed session (``completed_sets >= 1``); NA when none.
        stopped_early : boolean (nullable)
            ``last_session_day < stopped_early_day`` while ``follow_up_days >=
            stopped_early_min_follow_up_days``; NA when follow-up is shorter.

    Notes
    -----
    ``docs/metrics.md`` §7, with these readings where it is silent:

    * Sessions are ordered by day and, on the same day, by source row (the later row is the
      later session, as in :func:`rehabstats.time.timeline.stage_on`); ``regressions`` counts the
      drops in that order, including a drop between two sessions of the same day.
    * ``days_to_stage_1`` is the first scheduled session of any stage: a participant who
      starts directly in stage 2 has ``time_in_stage_1 = 0``. Skipping a stage (1 -> 3)
      reaches stage 2 on the same day as stage 3 (``time_in_stage_2 = 0``).
    * ``checkpoint_passed`` is any pass within follow-up, before or after stage-4 entry (it
      answers "was the checkpoint ever passed"); the timing matters only for
      ``progressed_without_checkpoint``, where a pass on the day of stage-4 entry counts as
      before it (the hold is done before the session is progressed).
    * ``insertional_step_deviation`` uses scheduled sessions (the prescription is the
      deviation) of stage exactly 2 (the eccentric heel drops), within follow-up.
    * ``stopped_early`` is True for a participant with follow-up >= 83 days and no completed
      session at all (they stopped before starting: ``last_session_day`` NA counts as
      earlier than every day).
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    scheduled = _scheduled(cohort, timeline)
    rows, pos, day, stage = scheduled
    n = len(timeline)

    entries = _entry_times(cohort, config, timeline, scheduled)
    days = {s: entries[s]["event_day"].to_numpy(dtype="float64", na_value=np.nan) for s in STAGES}

    highest = np.zeros(n, dtype="int64")
    np.maximum.at(highest, pos, stage)

    order = sort_order(day_keys(pos, day))  # by participant, day, then source row
    p_sorted, s_sorted = (pos, stage) if order is None else (pos[order], stage[order])
    drop = (p_sorted[1:] == p_sorted[:-1]) & (s_sorted[1:] < s_sorted[:-1])
    regressions = np.bincount(p_sorted[1:][drop], minlength=n)

    last = _last_session_day(cohort, scheduled, n)

    surface = (cohort.sessions["surface"] == "step").to_numpy(dtype=bool, na_value=False)
    step = (stage == 2) & surface[rows]
    insertional = (timeline["tendinopathy_type"] == "insertional").to_numpy(dtype=bool)
    deviation = insertional & (np.bincount(pos[step], minlength=n) > 0)

    attempts = checkpoint_attempts(cohort, config=config, timeline=timeline)
    first_pass = (
        first_pass_day(attempts).reindex(timeline.index).to_numpy(dtype="float64", na_value=np.nan)
    )
    reached_4 = ~np.isnan(days[4])
    passed_by_4 = first_pass <= days[4]  # NaN compares False

    out = pd.DataFrame({"participant_id": timeline.index.astype("str").to_numpy()})
    out["highest_stage"] = _int_or_na(np.where(highest > 0, highest, np.nan))
    for s in ENTRY_STAGES:
        out[f"reached_stage_{s}"] = ~np.isnan(days[s])
    for s in ENTRY_STAGES:
        out[f"days_to_stage_{s}"] = _int_or_na(days[s])
    for s in (1, 2, 3):
        out[f"time_in_stage_{s}"] = _int_or_na(days[s + 1] - days[s])
    out["regressions"] = regressions.astype("int64")
    out["checkpoint_passed"] = ~np.isnan(first_pass)
    out["progressed_without_checkpoint"] = reached_4 & ~passed_by_4
    out["insertional_step_deviation"] = deviation
    out["last_session_day"] = _int_or_na(np.where(last >= 0, last, np.nan))
    out["stopped_early"] = _stopped_early(last, timeline, config)
    return out


@computation
def stopped_loading(cohort: Cohort, *, config: AnalysisConfig | None = None) -> pd.DataFrame:
    """When each participant stopped loading: :func:`stage_metrics`' last two columns alone.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    config : AnalysisConfig, optional
        ``stopped_early_day``, ``stopped_early_min_follow_up_days`` and ``data_cutoff``;
        default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per analysed participant, in the order of
        :func:`~rehabstats.time.timeline.participant_timeline`, with columns participant_id,
        ``last_session_day`` and ``stopped_early``, as in :func:`stage_metrics` (which
        computes much more: :func:`rehabstats.metrics.relapse.relapse_rate_ratio` needs only
        these).
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    last = _last_session_day(cohort, _scheduled(cohort, timeline), len(timeline))
    return pd.DataFrame(
        {
            "participant_id": timeline.index.astype("str").to_numpy(),
            "last_session_day": _int_or_na(np.where(last >= 0, last, np.nan)),
            "stopped_early": _stopped_early(last, timeline, config),
        }
    )


@computation
def time_to_stage(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """Kaplan-Meier estimates of the time from enrolment to entering stages 2, 3 and 4.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    by : str, optional
        A participant column to estimate separately for (``site``, ``arm``,
        ``tendinopathy_type``, ``sex``); default one group, ``"all"``.
    config : AnalysisConfig, optional
        ``confidence_level``, ``km_ci_transform`` and ``data_cutoff``; default
        ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per stage, group and event time (stages ascending, groups sorted, times
        ascending), with columns

        stage : int
            2, 3 or 4.
        group : str
        time_days : float
            Days from enrolment at which at least one participant entered the stage.
        at_risk : int
            Participants not yet in the stage and still followed just before that day.
        events : int
            Participants entering the stage that day.
        censored : int
            Participants whose follow-up ended, without entering, after the previous event
            time and up to this one.
        survival : float
            Kaplan-Meier probability of not yet having entered the stage.
        ci_low, ci_high : float
            Pointwise confidence limits (``confidence_level``, ``km_ci_transform``).

    Notes
    -----
    ``docs/metrics.md`` §7. Duration = ``days_to_stage_s`` when reached, else
    ``follow_up_days`` (censored at ``obs_end``: withdrawal or the data cut-off). Estimator
    and limits: :func:`rehabstats.stats.survival.kaplan_meier` (statsmodels ``SurvfuncRight``;
    limits as R ``survfit``). A participant entering on day 0 counts as an event at time 0.
    """
    config = config or AnalysisConfig()
    return time_to_stage_from_durations(stage_entry_durations(cohort, by=by, config=config), config)


def time_to_stage_from_durations(durations: pd.DataFrame, config: AnalysisConfig) -> pd.DataFrame:
    """:func:`time_to_stage` from :func:`stage_entry_durations` (of a whole cohort, or the
    concatenated durations of its parts: the estimate does not depend on the row order)."""
    parts = []
    for s, group, _, _, km in _entry_curves(durations, config):
        km.insert(0, "group", pd.Series(group, index=km.index, dtype="str"))
        km.insert(0, "stage", s)
        parts.append(km)
    columns = ["stage", "group", *KM_COLUMNS]
    empty = kaplan_meier([], []).assign(stage=pd.Series(dtype="int64"), group="")
    return pd.concat([empty[columns], *parts], ignore_index=True)[columns].astype(
        {"stage": "int64", "group": "str"}
    )


@computation
def time_to_stage_summary(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """Median time to stages 2, 3 and 4 and the proportion reaching each by week 12.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    by : str, optional
        A participant column to summarise separately for; default one group, ``"all"``.
    config : AnalysisConfig, optional
        ``window_weeks``, ``confidence_level``, ``km_ci_transform`` and ``data_cutoff``;
        default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per stage and group, with columns

        stage : int
        group : str
        n : int
            Participants analysed.
        events : int
            Participants who entered the stage within follow-up.
        median_days : float
            Kaplan-Meier median time to entry; NaN when the curve does not reach 0.5.
        median_ci_low, median_ci_high : float
            Its confidence limits; NaN when the band does not reach 0.5.
        reached_by_week_12 : float
            ``1 - S(7 * window_weeks - 1)`` (day 83 by default: the end of the remodelling
            window); NaN when every participant's follow-up ended earlier (S is not
            estimated there) unless the curve already reached 0.
        reached_by_week_12_ci_low, reached_by_week_12_ci_high : float
            Its pointwise confidence limits: 1 minus the limits of S at the same time (the
            ``km_ci_transform`` band; R ``summary(survfit, times=)``'s ``upper``/``lower``).

    Notes
    -----
    ``docs/metrics.md`` §7. The median and its limits are R ``survfit``'s (see
    :func:`rehabstats.stats.survival.km_median`): the first time the curve, or its lower/upper
    pointwise band, drops to 0.5 or below (Brookmeyer and Crowley 1982). With a
    ``window_weeks`` other than 12 the column keeps its contract name but is read at the end
    of the configured window.
    """
    config = config or AnalysisConfig()
    durations = stage_entry_durations(cohort, by=by, config=config)
    return time_to_stage_summary_from_durations(durations, config)


def time_to_stage_summary_from_durations(
    durations: pd.DataFrame, config: AnalysisConfig
) -> pd.DataFrame:
    """:func:`time_to_stage_summary` from :func:`stage_entry_durations` (any row order)."""
    end_of_window = 7 * config.window_weeks - 1
    rows = []
    for s, group, time, event, km in _entry_curves(durations, config):
        median, low, high = km_median(km)
        surv, s_low, s_high = km_interval_at(km, end_of_window, last_time=float(time.max()))
        rows.append(
            {
                "stage": s,
                "group": group,
                "n": len(time),
                "events": int(event.sum()),
                "median_days": median,
                "median_ci_low": low,
                "median_ci_high": high,
                "reached_by_week_12": 1.0 - surv,
                # 1 - S's limits, swapped: the upper limit of S gives the lower one of 1 - S
                "reached_by_week_12_ci_low": 1.0 - s_high,
                "reached_by_week_12_ci_high": 1.0 - s_low,
            }
        )
    columns = ["stage", "group", "n", "events", *KM_SUMMARY_ESTIMATES]
    out = pd.DataFrame(rows, columns=columns)
    floats = dict.fromkeys(KM_SUMMARY_ESTIMATES, "float64")
    return out.astype({"stage": "int64", "group": "str", "n": "int64", "events": "int64", **floats})


@computation
def stage_occupancy(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """Where participants are at the end of each week of the remodelling window.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort.
    by : str, optional
        A participant column to tabulate separately for; default one group, ``"all"``.
    config : AnalysisConfig, optional
        ``window_weeks`` and ``data_cutoff``; default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per group, week (1..``window_weeks``) and state, every combination present
        (groups sorted, then weeks, then states in :data:`OCCUPANCY_STATES` order), with
        columns

        group : str
        week : int
        state : str
            ``not_started``, ``stage_1`` ... ``stage_4`` or ``withdrawn``.
        n : int
            Participants in that state at the end of the week (0 when none).
        proportion : float
            ``n`` / participants observed at the end of the week (the group-week's total
            over all states); NaN when nobody is.

    Notes
    -----
    ``docs/metrics.md`` §7. At the end of week ``w`` (day ``d = 7w - 1``):

    * ``withdrawn``: withdrawn on or before day ``d`` (a withdrawal on day ``d`` itself
      counts: the snapshot is at the end of that day, when the participant has left);
    * censored (left out of the denominator): follow-up ended before day ``d`` without
      withdrawal (enrolled less than ``d`` days before the data cut-off);
    * otherwise the stage on day ``d`` (:func:`rehabstats.time.timeline.stage_on`: the stage of
      the latest scheduled session on or before it), ``not_started`` before the first
      scheduled session.
    """
    config = config or AnalysisConfig()
    return stage_occupancy_from_counts(stage_occupancy_counts(cohort, by=by, config=config))


@computation
def stage_occupancy_counts(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """:func:`stage_occupancy`'s counts alone: group, week, state and n (every combination of
    the groups present). Counts of disjoint parts of a cohort add up to the cohort's
    (:func:`stage_occupancy_from_counts`)."""
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    _, s_pos, s_day, s_stage = _scheduled(cohort, timeline)
    labels = group_labels(timeline, by)
    group_names = np.array(sorted(pd.unique(labels.to_numpy())), dtype=object)
    group_idx = np.searchsorted(group_names, labels.to_numpy())
    weeks = np.arange(1, config.window_weeks + 1)
    n, n_weeks, n_states = len(timeline), len(weeks), len(OCCUPANCY_STATES)

    day = np.tile(7 * weeks - 1, n)
    stage = stage_on(s_pos, s_day, s_stage, np.repeat(np.arange(n), n_weeks), day)
    follow = np.repeat(timeline["follow_up_days"].to_numpy(dtype="int64"), n_weeks)
    withdrawn = np.repeat(timeline["withdrawn"].to_numpy(dtype=bool), n_weeks)
    state = np.where(np.isnan(stage), 0, np.nan_to_num(stage)).astype("int64")
    state = np.where(withdrawn & (follow <= day), n_states - 1, state)
    observed = (follow >= day) | withdrawn
    cell = (np.repeat(group_idx, n_weeks) * n_weeks + np.tile(weeks - 1, n)) * n_states + state
    counts = np.bincount(cell[observed], minlength=len(group_names) * n_weeks * n_states)
    return pd.DataFrame(
        {
            "group": pd.array(np.repeat(group_names, n_weeks * n_states), dtype="str"),
            "week": np.tile(np.repeat(weeks, n_states), len(group_names)).astype("int64"),
            "state": pd.array(
                np.tile(np.array(OCCUPANCY_STATES, dtype=object), len(group_names) * n_weeks),
                dtype="str",
            ),
            "n": counts.astype("int64"),
        }
    )


def stage_occupancy_from_counts(counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`stage_occupancy` from :func:`stage_occupancy_counts` of a cohort or of disjoint
    parts of it (concatenated; the counts of a group, week and state are summed).

    ``proportion`` = n / the group-week's total over all states (NaN when it is 0).
    """
    group_names = np.array(sorted(pd.unique(counts["group"].to_numpy())), dtype=object)
    weeks = np.array(sorted(pd.unique(counts["week"].to_numpy())), dtype="int64")
    n_weeks, n_states = len(weeks), len(OCCUPANCY_STATES)
    state = pd.Categorical(counts["state"], categories=OCCUPANCY_STATES).codes.astype("int64")
    cell = (
        np.searchsorted(group_names, counts["group"].to_numpy()) * n_weeks
        + np.searchsorted(weeks, counts["week"].to_numpy())
    ) * n_states + state
    summed = np.zeros(len(group_names) * n_weeks * n_states, dtype="int64")
    np.add.at(summed, cell, counts["n"].to_numpy(dtype="int64"))
    counts = summed.reshape(len(group_names), n_weeks, n_states)
    total = counts.sum(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        proportion = np.where(total > 0, counts / np.where(total > 0, total, 1), np.nan)
    return pd.DataFrame(
        {
            "group": pd.array(np.repeat(group_names, n_weeks * n_states), dtype="str"),
            "week": np.tile(np.repeat(weeks, n_states), len(group_names)).astype("int64"),
            "state": pd.array(
                np.tile(np.array(OCCUPANCY_STATES, dtype=object), len(group_names) * n_weeks),
                dtype="str",
            ),
            "n": counts.ravel().astype("int64"),
            "proportion": proportion.ravel().astype("float64"),
        }
    )


# ----------------------------------------------------------------------------------------------


def _scheduled(
    cohort: Cohort, timeline: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scheduled sessions within follow-up (whole follow-up, §3), in table order: their rows
    in ``cohort.sessions``, timeline positions, days and stages."""
    rows, pos, day = observed_rows(cohort.sessions, "session_date", timeline)
    return rows, pos, day, cohort.sessions["stage"].to_numpy(dtype="int64")[rows]


def _first_day_per_stage(
    pos: np.ndarray, day: np.ndarray, stage: np.ndarray, timeline: pd.DataFrame
) -> pd.DataFrame:
    """The first scheduled session day of each participant in each stage they had.

    A pre-reduction of the candidate rows for stage entry (the earliest session with stage
    >= s is the earliest of these first days), so that :func:`_stage_spec` gets at most four
    rows per participant instead of every session.
    """
    n = len(timeline)
    first = np.full((n, len(STAGES)), np.iinfo(np.int64).max, dtype="int64")
    np.minimum.at(first, (pos, stage - 1), day)
    who, which = np.nonzero(first != np.iinfo(np.int64).max)
    return pd.DataFrame(
        {
            "participant_id": pd.Categorical.from_codes(who, categories=timeline.index),
            "stage": which + 1,
            "day": first[who, which],
        }
    )


def _stage_spec(stage: int, candidates: pd.DataFrame) -> EventSpec:
    """Entering ``stage``: the first scheduled session with stage >= it, from enrolment.

    ``candidates`` has columns participant_id, stage and day (sessions, or their
    :func:`_first_day_per_stage` reduction).
    """
    mask = candidates["stage"] >= stage
    return EventSpec(
        name=f"stage_{stage}",
        sources=(("session", candidates.loc[mask, ["participant_id", "day"]]),),
    )


def _entry_times(
    cohort: Cohort,
    config: AnalysisConfig,
    timeline: pd.DataFrame,
    scheduled: tuple[np.ndarray, ...] | None = None,
) -> dict[int, pd.DataFrame]:
    """Per stage (1-4), :func:`rehabstats.time.tte.derive` output for entering it.

    Computed once per cohort and cut-off (shared by :func:`stage_metrics`,
    :func:`time_to_stage` and :func:`time_to_stage_summary`); ``scheduled`` is
    :func:`_scheduled` when the caller has it. Read only.
    """

    def compute() -> dict[int, pd.DataFrame]:
        _, pos, day, stage = scheduled or _scheduled(cohort, timeline)
        firsts = _first_day_per_stage(pos, day, stage, timeline)
        return {s: derive(_stage_spec(s, firsts), timeline) for s in STAGES}

    return cohort.derived(("stage_entry_times", analysis_cutoff(cohort, config)), compute)


@computation
def stage_entry_durations(
    cohort: Cohort, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """Per analysed participant, the durations the time-to-stage estimates are made of.

    Returns
    -------
    DataFrame
        participant_id, group (the ``by`` label, ``"all"`` without it), and for each entry
        stage s (2, 3, 4) ``time_<s>`` (days to entering it, else to ``obs_end``) and
        ``event_<s>`` (entered within follow-up), in timeline order. Durations of disjoint
        parts of a cohort concatenate into the cohort's (the partitioned engine's input to
        :func:`time_to_stage_from_durations`).
    """
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    entries = _entry_times(cohort, config, timeline)
    columns: dict[str, object] = {
        "participant_id": timeline.index.astype("str").to_numpy(),
        "group": group_labels(timeline, by).to_numpy(),
    }
    for s in ENTRY_STAGES:
        columns[f"time_{s}"] = entries[s]["time"].to_numpy()
        columns[f"event_{s}"] = entries[s]["event"].to_numpy()
    return pd.DataFrame(columns)


def _entry_curves(
    durations: pd.DataFrame, config: AnalysisConfig
) -> Iterator[tuple[int, str, np.ndarray, np.ndarray, pd.DataFrame]]:
    """Per entry stage (2-4) and group (sorted): the durations, whether each ended with entry,
    and the Kaplan-Meier table (``confidence_level``, ``km_ci_transform``)."""
    groups = durations["group"].to_numpy()
    for s in ENTRY_STAGES:
        for group in sorted(pd.unique(groups)):
            mask = groups == group
            time = durations[f"time_{s}"].to_numpy()[mask]
            event = durations[f"event_{s}"].to_numpy()[mask]
            km = kaplan_meier(
                time,
                event,
                confidence_level=config.confidence_level,
                ci_transform=config.km_ci_transform,
            )
            yield s, group, time, event, km


def _last_session_day(cohort: Cohort, scheduled: tuple[np.ndarray, ...], n: int) -> np.ndarray:
    """Day of each participant's last completed session (``completed_sets >= 1``); -1 when
    none."""
    rows, pos, day, _ = scheduled
    completed = cohort.sessions["completed_sets"].to_numpy()[rows] >= 1
    last = np.full(n, -1, dtype="int64")
    np.maximum.at(last, pos[completed], day[completed])
    return last


def _stopped_early(
    last: np.ndarray, timeline: pd.DataFrame, config: AnalysisConfig
) -> pd.arrays.BooleanArray:
    """``last_session_day < stopped_early_day`` (no completed session counts as earlier than
    every day); NA when follow-up is shorter than ``stopped_early_min_follow_up_days``."""
    follow = timeline["follow_up_days"].to_numpy(dtype="int64")
    stopped = (last < config.stopped_early_day).astype(object)
    stopped[follow < config.stopped_early_min_follow_up_days] = pd.NA
    return pd.array(stopped, dtype="boolean")


def _int_or_na(values: np.ndarray) -> pd.arrays.IntegerArray:
    """Whole days as nullable integers (NaN -> NA)."""
    values = np.asarray(values, dtype="float64")
    missing = np.isnan(values)
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype("int64"), missing)
