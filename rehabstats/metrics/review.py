"""Clinic audit: who needs attention now, and the service's outcomes against its targets.

"Now" is the data cut-off (never the wall-clock date): for each participant still under care,
day ``F`` = ``follow_up_days`` is today in their programme. Every threshold is a key of
:class:`~rehabstats.config.AnalysisConfig` (``review_*`` for the review list, ``target_*`` for
the audit; defaults and meanings in ``data_schema/analysis_defaults.yaml``); a report prints
the values it used. Below, ``recent_days`` stands for ``review_recent_days`` and so on.

Review reasons (a participant is listed with every reason that applies):

=============================  ===============================================================
``pain_rising``                mean morning NRS of the last 7 days (days F−6..F) is at least
                               ``pain_rise_points`` above the mean of the 7 days before
                               (F−13..F−7), each window with ≥ ``pain_min_records`` ratings.
``recent_flare``               a flare (next-morning NRS ≥ that morning's + ``flare_delta``,
                               METRICS §5) on a session day in the last ``flare_days`` days.
``adherence_low``              adherence falling below the threshold: completed / scheduled
                               sessions over the last ``recent_days`` days below
                               ``adherent_threshold`` (0.80) and below the adherence of the
                               ``recent_days`` before (or nothing scheduled before), with at
                               least ``adherence_min_scheduled`` sessions scheduled.
``stuck_in_stage``             in the same stage (1-3) for longer than
                               ``stuck_weeks[stage]`` weeks, counted from the first session of
                               the current run of that stage, while still loading (a session
                               scheduled in the last ``recent_days`` days).
``load_stagnant``              METRICS §4: load not progressed for ≥ ``stagnation_weeks``.
``progressed_without_checkpoint``  METRICS §7: reached stage 4 without a passed checkpoint.
``insertional_step_deviation`` METRICS §7: insertional tendinopathy with a stage-2 session off
                               a step (eccentrics belong on flat ground).
``stopped_early``              METRICS §7: last completed session before day 70 (week 11)
                               with follow-up reaching day 83.
``acwr_spike_recent``          METRICS §11: a day with ACWR > ``acwr_spike`` in the last
                               ``acwr_days`` days (days F−``acwr_days``+1..F).
``returned_before_criteria``   METRICS §11: returned to running or sport before the
                               return-to-sport criteria were met (or without them met); the
                               reason says whether they have been met since.
``rushed_lowering``            METRICS §10 over recent sessions: of the completed stage 2-3
                               sessions of the last ``recent_days`` days with ``lowering_s``
                               logged (at least ``tempo_min_sessions``), the share lowered
                               faster than ``min_lowering_s`` is at least ``fast_tempo_rate``.
=============================  ===============================================================

``stuck_weeks`` (``review_stuck_weeks``) gives the longest expected stay in stages 1, 2 and 3,
in weeks (about the 95th percentile of the programme's stage durations; stage 4 is the last
stage). ``recent_days`` is two weeks by default (one missed week is a conversation, two is a
pattern); ``pain_rise_points`` one point (about the smallest change a patient notices on a 0-10
scale); ``pain_min_records`` as ``rising_min_records`` in METRICS §5.

Only participants under care are reviewed: not withdrawn, and follow-up of at most
``horizon_weeks`` weeks (the 12-week programme and its follow-up to the 26-week visit), so a
flag from long ago does not keep a former participant on the list.

The running reasons follow the programme's guidance: a return to running graded "avoiding
sudden spikes" (``acwr_days`` one week by default: the acute window of the ACWR), and functional
tests as the benchmarks of the return-to-play timeline. A cohort without a running log, function
tests or logged lowering times never meets these rules (nothing is known, nothing is flagged).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.constants import OVERALL
from rehabstats.data.cohort import Cohort
from rehabstats.metrics.quality import TEMPO_STAGES
from rehabstats.stats.summaries import mean_ci, proportion_ci
from rehabstats.time.keys import per_row
from rehabstats.time.timeline import computation, observe, participant_timeline

__all__ = [
    "AUDIT_METRICS",
    "REVIEW_REASONS",
    "audit_summary",
    "reason_labels",
    "review_list",
    "stuck_weeks",
    "under_care",
]

REVIEW_REASONS: dict[str, str] = {
    "pain_rising": "Morning pain rising",
    "recent_flare": "Flare in the last days",
    "adherence_low": "Adherence falling below threshold",
    "stuck_in_stage": "Stuck in a stage",
    "load_stagnant": "Load not progressing",
    "progressed_without_checkpoint": "Stage 4 without a passed checkpoint",
    "insertional_step_deviation": "Insertional: eccentrics off a step",
    "stopped_early": "Stopped loading before week 11",
    "acwr_spike_recent": "ACWR spike in the last {review_acwr_days} days",
    "returned_before_criteria": "Returned to running before meeting the criteria",
    "rushed_lowering": "Rushed lowering in recent sessions",
}
"""Review flags (columns of :func:`review_list`) and their short labels, in display order
(``{key}`` stands for a configuration value: :func:`reason_labels` fills it in)."""


def reason_labels(config: AnalysisConfig | None = None) -> dict[str, str]:
    """:data:`REVIEW_REASONS` with the configuration's values filled in."""
    values = dataclasses.asdict(config or AnalysisConfig())
    return {k: label.format(**values) for k, label in REVIEW_REASONS.items()}


@computation
def review_list(
    cohort: Cohort,
    *,
    config: AnalysisConfig | None = None,
    participants: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Participants who need a clinician's attention at the data cut-off, with the reasons.

    Parameters
    ----------
    cohort : Cohort
    config : AnalysisConfig, optional
        The ``review_*`` thresholds, ``adherent_threshold``, ``flare_delta``,
        ``data_cutoff`` ...; default ``AnalysisConfig()``.
    participants : DataFrame, optional
        ``participant_metrics(cohort, config=config)`` if already computed.

    Returns
    -------
    DataFrame
        One row per participant with at least one reason, most reasons first (then site,
        participant_id), with columns

        participant_id, site, arm, tendinopathy_type : str
        day : int
            Days since enrolment at the cut-off (``follow_up_days``).
        week : int
            Programme week at the cut-off (``day // 7 + 1``).
        stage : float
            Current stage (of the latest scheduled session); NaN before any session.
        weeks_in_stage : float
            Weeks since the first session of the current run of that stage.
        pain_last_7d, pain_previous_7d : float
            Mean morning NRS in days F−6..F and F−13..F−7 (NaN with too few ratings).
        adherence_recent, adherence_before : float
            Completed / scheduled sessions in the last ``recent_days`` days and in the
            ``recent_days`` before them (NaN when none was scheduled).
        days_since_flare : float
            Days since the latest flare (NaN without one in follow-up).
        acwr_recent_max, days_since_spike : float
            The largest ACWR on a spike day of the last ``acwr_days`` days and the days since
            the latest such day (NaN without one).
        return_day, rts_criteria_day : float
            ``at_risk_start_day`` (the return to running or sport) and ``rts_criteria_day``
            (METRICS §11; NaN when none).
        tempo_recent_known, tempo_recent_fast : float
            Completed stage 2-3 sessions of the last ``recent_days`` days with ``lowering_s``
            logged, and of those the ones below ``min_lowering_s``.
        one bool column per :data:`REVIEW_REASONS` key
        n_reasons : int
        reasons : str
            Every reason, with its numbers, separated by "; ".

    Notes
    -----
    Withdrawn participants and those with follow-up over ``horizon_weeks`` are not listed.
    """
    from rehabstats.metrics.outputs import participant_metrics
    from rehabstats.metrics.pain import morning_nrs, session_day_rules

    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    pm = participants if participants is not None else participant_metrics(cohort, config=config)
    pm = pm.set_index(pm["participant_id"].astype("str"))
    care = timeline[under_care(timeline, config)]
    care = care.copy()
    care.index = care.index.astype("str")
    day_now = care["follow_up_days"].astype("int64")
    out = pd.DataFrame(
        {
            "participant_id": care.index,
            "site": care["site"].astype("str").to_numpy(),
            "arm": care["arm"].astype("str").to_numpy(),
            "tendinopathy_type": care["tendinopathy_type"].astype("str").to_numpy(),
            "day": day_now.to_numpy(),
            "week": (day_now // 7 + 1).to_numpy(),
        }
    )
    out.index = pd.Index(out["participant_id"].to_numpy(), name=None)
    if care.empty:
        return _finish(out.iloc[0:0], config)

    # --- current stage and time in it (sessions on or before the cut-off) -------------------
    sessions = observe(cohort.sessions, "session_date", timeline)
    sessions = sessions.assign(participant_id=sessions["participant_id"].astype("str"))
    sessions = sessions[sessions["participant_id"].isin(out.index)]
    s = sessions.sort_values(["participant_id", "day"], kind="stable")
    new_run = (s["stage"] != s["stage"].shift()) | (
        s["participant_id"] != s["participant_id"].shift()
    )
    run_start = s["day"].where(new_run).ffill()
    last = s.assign(run_start=run_start).groupby("participant_id", sort=False).tail(1)
    last = last.set_index("participant_id")
    out["stage"] = last["stage"].reindex(out.index).astype("float64")
    out["weeks_in_stage"] = (out["day"] - last["run_start"].reindex(out.index)) / 7

    # --- recent adherence --------------------------------------------------------------------
    now = pd.Series(out["day"].to_numpy(), index=out.index)
    s_now = per_row(sessions["participant_id"], now)
    age_s = s_now - sessions["day"].to_numpy()
    done = (sessions["completed_sets"] >= 1).to_numpy()
    adherence_in: dict[str, pd.Series] = {}
    scheduled_in: dict[str, pd.Series] = {}
    recent_days = config.review_recent_days
    for name, lo in (("recent", 0), ("before", recent_days)):
        mask = (age_s >= lo) & (age_s < lo + recent_days)
        frame = pd.DataFrame({"participant_id": sessions["participant_id"][mask],
                              "done": done[mask]})  # fmt: skip
        counts = frame.groupby("participant_id", sort=False)["done"].agg(["size", "sum"])
        scheduled_in[name] = counts["size"].reindex(out.index).fillna(0)
        completed = counts["sum"].reindex(out.index).fillna(0)
        adherence_in[name] = completed / scheduled_in[name].where(scheduled_in[name] > 0)
    scheduled = scheduled_in["recent"]
    out["adherence_recent"] = adherence_in["recent"].astype("float64")
    out["adherence_before"] = adherence_in["before"].astype("float64")
    still_loading = scheduled > 0

    # --- morning pain: last 7 days vs the 7 before ---------------------------------------------
    morning = morning_nrs(cohort, timeline)
    morning = morning.assign(participant_id=morning["participant_id"].astype("str"))
    morning = morning[morning["participant_id"].isin(out.index)]
    m_now = per_row(morning["participant_id"], now)
    age = m_now - morning["day"].to_numpy()
    windows = {
        "pain_last_7d": (age >= 0) & (age <= 6),
        "pain_previous_7d": (age >= 7) & (age <= 13),
    }
    for name, mask in windows.items():
        agg = morning[mask].groupby("participant_id", sort=False)["nrs"].agg(["mean", "count"])
        mean = agg["mean"].where(agg["count"] >= config.review_pain_min_records)
        out[name] = mean.reindex(out.index).astype("float64")

    # --- flares over the whole follow-up (not only the 12-week window) -----------------------
    long_config = config.replace(window_weeks=min(104, config.review_horizon_weeks + 1))
    rules = session_day_rules(cohort, config=long_config)
    rules = rules[rules["flare"].fillna(False).astype(bool)]
    rules = rules.assign(participant_id=rules["participant_id"].astype("str"))
    last_flare = rules.groupby("participant_id", sort=False)["day"].max()
    out["days_since_flare"] = (out["day"] - last_flare.reindex(out.index)).astype("float64")

    # --- running (§11) and tempo (§10) ---------------------------------------------------------
    _running_measures(out, cohort, config, now)
    lowering = sessions["lowering_s"].to_numpy(dtype="float64", na_value=np.nan)
    recent = (age_s >= 0) & (age_s < recent_days)
    tempo = recent & done & sessions["stage"].isin(TEMPO_STAGES).to_numpy() & ~np.isnan(lowering)
    frame = pd.DataFrame({"participant_id": sessions["participant_id"][tempo],
                          "fast": lowering[tempo] < config.min_lowering_s})  # fmt: skip
    tempo_counts = frame.groupby("participant_id", sort=False)["fast"].agg(["size", "sum"])
    out["tempo_recent_known"] = tempo_counts["size"].reindex(out.index).fillna(0).astype("float64")
    out["tempo_recent_fast"] = tempo_counts["sum"].reindex(out.index).fillna(0).astype("float64")
    out["return_day"] = pm["at_risk_start_day"].reindex(out.index).astype("float64")
    out["rts_criteria_day"] = pm["rts_criteria_day"].reindex(out.index).astype("float64")

    # --- flags -------------------------------------------------------------------------------
    stuck_limit = out["stage"].map({float(k): v for k, v in stuck_weeks(config).items()})
    out["pain_rising"] = (out["pain_last_7d"] - out["pain_previous_7d"]).round(
        10
    ) >= config.review_pain_rise_points
    out["recent_flare"] = out["days_since_flare"] <= config.review_flare_days - 1
    falling = out["adherence_before"].isna() | (out["adherence_recent"] < out["adherence_before"])
    out["adherence_low"] = (
        (scheduled >= config.review_adherence_min_scheduled)
        & (out["adherence_recent"] < config.adherent_threshold)
        & falling
    )
    out["stuck_in_stage"] = (out["weeks_in_stage"] > stuck_limit) & still_loading
    for flag in (
        "load_stagnant",
        "progressed_without_checkpoint",
        "insertional_step_deviation",
        "stopped_early",
    ):
        out[flag] = pm[flag].reindex(out.index).fillna(False).astype(bool)
    out["acwr_spike_recent"] = out["days_since_spike"].notna()
    out["returned_before_criteria"] = (
        pm["returned_before_criteria"].reindex(out.index).fillna(False).astype(bool)
    )
    known = out["tempo_recent_known"]
    out["rushed_lowering"] = (known >= config.review_tempo_min_sessions) & (
        (out["tempo_recent_fast"] / known.where(known > 0)).round(10)
        >= config.review_fast_tempo_rate
    )
    return _finish(out, config)


def _running_measures(
    out: pd.DataFrame, cohort: Cohort, config: AnalysisConfig, now: pd.Series
) -> None:
    """``acwr_recent_max`` and ``days_since_spike`` of the participants of ``out`` (in place):
    spike days (METRICS §11) in the last ``review_acwr_days`` days of follow-up."""
    from rehabstats.metrics.running import running_load

    load = running_load(cohort, config=config)
    load = load[load["spike"].to_numpy() & load["participant_id"].isin(out.index).to_numpy()]
    age = now.reindex(load["participant_id"]).to_numpy() - load["day"].to_numpy()
    spikes = load[(age >= 0) & (age < config.review_acwr_days)]
    latest = spikes.groupby("participant_id", sort=False).agg(acwr=("acwr", "max"),
                                                               day=("day", "max"))  # fmt: skip
    out["acwr_recent_max"] = latest["acwr"].reindex(out.index).astype("float64")
    out["days_since_spike"] = (out["day"] - latest["day"].reindex(out.index)).astype("float64")


def under_care(participants: pd.DataFrame, config: AnalysisConfig) -> pd.Series:
    """Which participants are under care: not withdrawn, follow-up of at most
    ``review_horizon_weeks`` weeks (``participants`` has withdrawn and follow_up_days, as the
    participant timeline and ``participant_metrics`` do)."""
    horizon = 7 * config.review_horizon_weeks
    return ~participants["withdrawn"].astype(bool) & (participants["follow_up_days"] <= horizon)


def stuck_weeks(config: AnalysisConfig) -> dict[int, int]:
    """``review_stuck_weeks`` by stage: the longest expected stay in stages 1, 2 and 3, weeks."""
    return dict(zip((1, 2, 3), config.review_stuck_weeks, strict=True))


_MEASURES = (
    "stage",
    "weeks_in_stage",
    "pain_last_7d",
    "pain_previous_7d",
    "adherence_recent",
    "adherence_before",
    "days_since_flare",
    "acwr_recent_max",
    "days_since_spike",
    "return_day",
    "rts_criteria_day",
    "tempo_recent_known",
    "tempo_recent_fast",
)
"""The measures :func:`review_list` shows beside the reasons (NaN where not computed)."""


def _finish(out: pd.DataFrame, config: AnalysisConfig) -> pd.DataFrame:
    columns = [
        "participant_id",
        "site",
        "arm",
        "tendinopathy_type",
        "day",
        "week",
        *_MEASURES,
        *REVIEW_REASONS,
        "n_reasons",
        "reasons",
    ]
    for flag in REVIEW_REASONS:
        if flag not in out:
            out[flag] = pd.Series(dtype=bool)
        out[flag] = out[flag].fillna(False).astype(bool)
    for col in _MEASURES:
        if col not in out:
            out[col] = pd.Series(dtype="float64")
    out["n_reasons"] = out[list(REVIEW_REASONS)].sum(axis=1).astype("int64")
    out = out[out["n_reasons"] > 0].copy()
    out["reasons"] = _reason_text(out, config) if len(out) else pd.Series(dtype="str")
    out = out.sort_values(["n_reasons", "site", "participant_id"], ascending=[False, True, True])
    return out.reset_index(drop=True)[columns]


def _days_ago(days: float) -> str:
    if pd.isna(days):
        return ""
    return "today" if days == 0 else ("yesterday" if days == 1 else f"{days:.0f} days ago")


def _reason_text(out: pd.DataFrame, config: AnalysisConfig) -> pd.Series:
    def fmt(x: float, digits: int = 1) -> str:
        return f"{x:.{digits}f}"

    texts: dict[str, pd.Series] = {
        "pain_rising": "morning pain rising: "
        + out["pain_previous_7d"].map(fmt)
        + " → "
        + out["pain_last_7d"].map(fmt)
        + " NRS (7-day means)",
        "recent_flare": "flare " + out["days_since_flare"].map(_days_ago),
        "adherence_low": "adherence fell to "
        + out["adherence_recent"].map(lambda a: f"{100 * a:.0f}%")
        + f" over the last {config.review_recent_days} days"
        + out["adherence_before"].map(lambda a: "" if pd.isna(a) else f" (from {100 * a:.0f}%)"),
        "stuck_in_stage": "in stage "
        + out["stage"].map(lambda v: f"{v:.0f}")
        + " for "
        + out["weeks_in_stage"].map(lambda v: f"{v:.0f}")
        + " weeks (expected ≤ "
        + out["stage"].map(lambda v: str(stuck_weeks(config).get(v, "?")))
        + ")",
        "load_stagnant": pd.Series(
            f"load not progressed for ≥ {config.stagnation_weeks} weeks", index=out.index
        ),
        "progressed_without_checkpoint": pd.Series(
            "reached stage 4 without a passed checkpoint", index=out.index
        ),
        "insertional_step_deviation": pd.Series(
            "insertional: stage-2 eccentrics off a step (use flat ground)", index=out.index
        ),
        "stopped_early": pd.Series("stopped loading before week 11", index=out.index),
        "acwr_spike_recent": "ACWR "
        + out["acwr_recent_max"].map(lambda v: fmt(v, 2))
        + f" (above {config.acwr_spike:g}) "
        + out["days_since_spike"].map(_days_ago),
        "returned_before_criteria": "returned to running or sport on day "
        + out["return_day"].map(lambda v: f"{v:.0f}")
        + " before meeting the return-to-sport criteria"
        + out["rts_criteria_day"].map(
            lambda v: " (not met yet)" if pd.isna(v) else f" (met on day {v:.0f})"
        ),
        "rushed_lowering": "lowering under "
        + f"{config.min_lowering_s:g} s in "
        + out["tempo_recent_fast"].map(lambda v: f"{v:.0f}")
        + " of "
        + out["tempo_recent_known"].map(lambda v: f"{v:.0f}")
        + f" stage 2-3 sessions of the last {config.review_recent_days} days",
    }
    parts = pd.DataFrame(
        {flag: text.where(out[flag], "") for flag, text in texts.items()}, index=out.index
    )
    return parts.apply(lambda row: "; ".join(t for t in row if t), axis=1)


# ---- audit targets and summary --------------------------------------------------------------


AUDIT_METRICS: dict[str, tuple[str, str, str, str]] = {
    # metric: (label, unit, direction, axis label)
    "adherence": ("Session adherence, weeks 1-12", "proportion", "at_least",
                  "mean % of scheduled sessions completed"),
    "stage4_by_week12": ("Reached stage 4 by week 12", "proportion", "at_least",
                         "% (Kaplan-Meier)"),
    "responders": ("VISA-A responders at 12 weeks", "proportion", "at_least",
                   "% with change ≥ MCID"),
    "checkpoint_fidelity": ("Checkpoint passed before stage 4", "proportion", "at_least",
                            "% of those reaching stage 4"),
    "relapse_rate": ("Relapse rate", "rate", "at_most",
                     "relapses per 1,000 person-weeks at risk"),
    "rts_readiness": ("Return-to-sport criteria met before the return", "proportion",
                      "at_least", "% of those returning to running or sport"),
}  # fmt: skip
"""Audit metrics: label, unit (proportion/rate), direction of the target, axis label."""


def audit_summary(
    participants: pd.DataFrame,
    time_to_stage: pd.DataFrame,
    relapse_rates: pd.DataFrame,
    *,
    by: str | None = "site",
    config: AnalysisConfig | None = None,
) -> pd.DataFrame:
    """Audit metrics per site (and over all sites) against their targets.

    Parameters
    ----------
    participants : DataFrame
        ``participant_metrics`` output (with the ``by`` column).
    time_to_stage : DataFrame
        ``time_to_stage(cohort, by=by)`` rows followed by ``time_to_stage(cohort)`` rows (group
        ``all``, the whole cohort). A group without any row had no stage-4 entry (value 0, no
        interval).
    relapse_rates : DataFrame
        ``relapse_rates(cohort, by=by)`` rows and the ``relapse_rates(cohort)`` row (``all``).
    by : str, optional
        The column the sites are in; None gives the whole cohort's rows only.
    config : AnalysisConfig, optional
        The ``target_*`` keys, ``confidence_level`` and ``window_weeks`` (stage 4 is read at
        the window's end, ``window_end_day``); default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per site (the whole cohort, site :data:`~rehabstats.constants.OVERALL`,
        first) and metric of :data:`AUDIT_METRICS`, columns site, metric, label, unit,
        unit_label, value, ci_low, ci_high (logit-transformed t-interval of the mean
        adherence, KM pointwise interval, Wilson interval of proportions, exact Poisson
        interval of the rate), target, direction, met (boolean: the point estimate meets the
        target; NA when it cannot be estimated), n (participants behind the estimate; at risk
        for the relapse rate).

    Notes
    -----
    ``rts_readiness`` (readiness for the return, METRICS §11): of the participants who returned
    to running or sport (``returned_before_criteria`` known), the proportion who met the
    return-to-sport criteria on or before the day of the return (``returned_before_criteria``
    False), with the Wilson interval. Missing (NA ``met``) when no one returned, or when
    ``participants`` has no ``returned_before_criteria`` column.
    """
    config = config or AnalysisConfig()
    confidence = config.confidence_level
    parts = {OVERALL: participants}
    if by is not None:
        parts.update(list(participants.groupby(participants[by].astype("str"), sort=True)))
    rows: list[dict[str, object]] = []
    for site, part in parts.items():
        adh = part["adherence_sessions"].dropna()
        stats_ = mean_ci(
            part.assign(_k=0).dropna(subset=["adherence_sessions"]),
            "adherence_sessions",
            "_k",
            confidence=confidence,
        )
        lo, hi = (
            (stats_["ci_low"].iloc[0], stats_["ci_high"].iloc[0])
            if len(stats_)
            else (np.nan, np.nan)
        )
        rows.append(
            _row(site, "adherence", adh.mean() if len(adh) else np.nan, lo, hi, len(adh), config)
        )

        km = time_to_stage[
            (time_to_stage["stage"] == 4) & (time_to_stage["group"].astype("str") == site)
        ]
        upto = km[km["time_days"] <= config.window_end_day]
        if upto.empty:  # no one reached stage 4 by the window's end: S = 1, no interval
            value, lo, hi = (0.0, np.nan, np.nan) if len(part) else (np.nan, np.nan, np.nan)
        else:
            last = upto.iloc[-1]
            value, lo, hi = 1 - last["survival"], 1 - last["ci_high"], 1 - last["ci_low"]
        rows.append(_row(site, "stage4_by_week12", value, lo, hi, len(part), config))

        resp = part["visa_a_responder_12"].dropna().astype(bool)
        reached = part[part["reached_stage_4"].fillna(False).astype(bool)]
        ok = ~reached["progressed_without_checkpoint"].fillna(False).astype(bool)
        early = part.get("returned_before_criteria", pd.Series(dtype="boolean")).dropna()
        rows.append(_share(site, "responders", resp, config))
        rows.append(_share(site, "checkpoint_fidelity", ok, config))
        rows.append(_row(site, "relapse_rate", *_rate(relapse_rates, site), config))
        rows.append(_share(site, "rts_readiness", ~early.astype(bool), config))
    out = pd.DataFrame(rows)
    out["met"] = out["met"].astype("boolean")
    return out


def _share(site: str, metric: str, passed: pd.Series, config: AnalysisConfig) -> dict:
    """A proportion of participants (``passed``: one bool each) with its Wilson interval."""
    lo, hi = proportion_ci(int(passed.sum()), len(passed), confidence=config.confidence_level)
    value = passed.mean() if len(passed) else np.nan
    return _row(site, metric, value, float(lo), float(hi), len(passed), config)


def _rate(relapse_rates: pd.DataFrame, site: str) -> tuple[float, float, float, int]:
    """A site's relapse rate per 1000 person-weeks, its limits and number at risk (NaN and 0
    without a row)."""
    rate = relapse_rates[relapse_rates["group"].astype("str") == site]
    if rate.empty:
        return np.nan, np.nan, np.nan, 0
    r = rate.iloc[0]
    return r["rate_per_1000_pw"], r["ci_low"], r["ci_high"], int(r["n_at_risk"])


def _row(
    site: str, metric: str, value: float, lo: float, hi: float, n: int, config: AnalysisConfig
) -> dict[str, object]:
    label, unit, direction, unit_label = AUDIT_METRICS[metric]
    target = getattr(config, f"target_{metric}")
    if pd.isna(value):
        met: object = pd.NA
    else:
        met = bool(value >= target) if direction == "at_least" else bool(value <= target)
    return {
        "site": site,
        "metric": metric,
        "label": label,
        "unit": unit,
        "unit_label": unit_label,
        "value": float(value) if pd.notna(value) else np.nan,
        "ci_low": float(lo) if pd.notna(lo) else np.nan,
        "ci_high": float(hi) if pd.notna(hi) else np.nan,
        "target": float(target),
        "direction": direction,
        "met": met,
        "n": int(n),
    }
