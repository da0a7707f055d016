"""Realistic synthetic cohorts for an Achilles tendinopathy loading programme.

`simulate_tables` draws a cohort of any size and returns the seven tables of the data contract
(METRICS.md §2) as DataFrames. Everything is drawn with array operations over participants,
participant × day grids and long-format rows; nothing loops over participants or rows.

Generative model, in the order it is drawn (every number lives in `SimulationParameters`):

1. **Participants**: site, arm, tendinopathy type, sex, age, body mass, enrolment day (uniform
   over the enrolment period), a latent "response" ``z`` (positive = does well) that links pain
   improvement, progression speed, adherence, VISA-A change, withdrawal and stopping early.
2. **Timeline**: withdrawal (mostly within the 12-week window), stopping loading early (before
   week 10), stage-entry days 2/3/4 (log-normal gaps scaled by a participant speed), end of
   maintenance loading, return to running / sport, and relapse within a year of return (twice as
   likely after stopping early). Late enrolees are censored at the study end
   (``start + enrolment_days + study_tail_days``).
3. **Remodelling window (days 0–83)** on a participant × day grid: scheduled sessions by arm
   weekday pattern, completion (participant logit intercept falling by week), morning pain
   (random intercept + slope + AR(1) day noise), flares after session days, short stage regressions
   after some flares, during/after pain on completed-session days.
4. **After the window**: maintenance sessions (2/week, stage 4 once reached), a block of stage-2
   sessions after some relapses, a sparse morning diary, and runs of high morning pain at relapses.
5. **VISA-A** at baseline and weeks 6, 12, 26 with items generated to match a target total;
   **function tests** (heel-raise endurance, hop tests, stage-4 checkpoint holds); **events**.
6. **Exercise quality and running** (METRICS.md §10–§11), from a second random stream so that
   the tables above are those of earlier versions for the same seed: the logged lowering time
   of completed stage-2/3 sessions (most 3–5 s, a minority rushed, more so in some
   participants); a return-to-running assessment (heel-raise endurance and hop tests on both
   sides) a few days before some completers' return; and a running log from the return to the
   diary horizon: three runs a week building up gradually to a plateau, some participants
   faster, some weeks with a sudden jump in volume, a pause after a relapse, pain during some
   runs. The relapses themselves are drawn in step 2; the running log and the assessment are
   drawn given them, so that a relapse is more often preceded by a jump in volume within the
   previous weeks and by a return without meeting the criteria — the joint distribution of a
   model in which load spikes and premature returns raise the relapse risk.

The simulated truth is kept consistent with the metric definitions: a participant at risk
(after a return to running) who does not relapse has no stage ≤ 2 session, no run of 3 days of
morning NRS above 4 and no ``relapse`` event after the return; a relapse shows as at least one
of them. Within the window, a passed checkpoint is never followed by a next-morning flare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.signal import lfilter

from rehabstats.data.cohort import Cohort
from rehabstats.data.schema import TABLES, table_spec

__all__ = [
    "DEFAULT_PARAMETERS",
    "TABLE_COLUMNS",
    "SimulationParameters",
    "simulate_cohort",
    "simulate_tables",
]

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(table_spec(name).columns) for name in TABLES
}
"""Column names of each table, in order, read from the data contract (data_schema/)."""

_STR = pd.StringDtype(storage="pyarrow", na_value=np.nan)
_NO_DAY = -(10**6)  # "no such day" marker in integer day arrays
_FAR = 10**6  # "never" marker for day bounds
_NS_PER_DAY = 86_400 * 10**9
_SECOND_STREAM = 15  # spawn key of the random stream of the exercise-quality and running draws

_TIMINGS = ("morning", "during", "after")
_TESTS = ("heel_raise_endurance", "sl_isometric_hold", "single_hop", "side_hop")
_SIDES = ("involved", "uninvolved")
_EVENTS = (
    "return_to_running",
    "return_to_sport",
    "relapse",
    "surgery",
    "injection",
    "adverse_event",
)
_SURFACES = ("step", "flat")
_Q7_VALUES = (0, 4, 7, 10)
_Q8_VALUES = ((0, 7, 14, 21, 30), (0, 4, 10, 14, 20), (0, 2, 5, 7, 10))  # branches a, b, c


@dataclass(frozen=True)
class SimulationParameters:
    """Every realism parameter of the simulated cohort, in one place.

    Days are counted from enrolment (day 0); probabilities are per participant unless stated.
    The defaults describe a three-arm trial (``staged`` = four-stage programme, ``alfredson`` =
    daily eccentric heel drops, ``hsr`` = heavy slow resistance) at five unequal sites.

    Attributes
    ----------
    sites, site_weights
        Site labels and their share of participants.
    arms
        Arm labels; assigned with equal probability.
    p_insertional
        Share with insertional tendinopathy (the rest midportion).
    sex_levels, sex_weights
        Sex categories and their shares.
    age_mean, age_sd, age_range, p_age_missing
        Age in whole years: normal, clipped to ``age_range``; a share left missing.
    body_mass_mean, body_mass_sd, body_mass_range
        Body mass in kg (0.1 kg precision): normal, clipped.
    study_tail_days
        The study ends this many days after the last possible enrolment day.
    window_days
        Length of the remodelling window (weeks 1–12 = days 0–83).
    session_weekdays
        Per arm (same order as ``arms``), the days ``day % 7`` with a scheduled session in the
        window: 4/week, 7/week (one row per day), 3/week.
    maintenance_weekdays
        Days ``day % 7`` of the lighter schedule after the window.
    maintenance_mean_days
        Mean (exponential) length of maintenance loading after the window; loading also lasts at
        least ``min_stage4_days`` beyond stage-4 entry when that is before ``stage4_late_day``.
    min_stage4_days, stage4_late_day
        See ``maintenance_mean_days``.
    diary_horizon_day
        Last day of maintenance loading and of the sparse morning diary (one year).
    prescribed_sets, prescribed_reps
        Per arm × stage 1–4 prescriptions (sets, reps or holds per set).
    hsr_taper_arms, hsr_reps_start, hsr_reps_end
        Arms whose stage-3 reps fall by one per week from 15RM to 6RM (Beyer 2015).
    adherence_logit_mean, adherence_logit_sd, adherence_weekly_logit_change
        Session completion: participant logit intercept (week 1), change per week.
    adherence_arm_logit_shift
        Per arm shift of the completion logit (daily eccentrics are harder to keep up).
    adherence_response_effect
        Completion logit change per SD of the response latent.
    maintenance_logit_shift
        Completion logit shift after the window, relative to week 12.
    p_partial, p_partial_fewer_sets
        Share of completed sessions done partially; of those, share with fewer sets (else fewer
        reps per set).
    stage2_median_day, stage3_median_gap, stage4_median_gap
        Median day of stage-2 entry and median gaps to stages 3 and 4 (days).
    stage_gap_log_sd, speed_log_sd, speed_response_effect
        Log-scale spread of each gap, of the participant speed factor, and the speed's
        dependence on the response latent.
    stage2_load_step, stage2_load_cap
        Stage-2 external load: +step kg per calendar week in stage 2, capped (backpack).
    stage3_load_start_mean, stage3_load_start_sd, stage3_load_rate_mean, stage3_load_rate_sd
        Stage-3 load: participant start load and weekly increase (kg), rounded to 2.5 kg.
    p_load_stagnation, load_stagnation_weeks
        Share of participants whose stage-3 load stays flat for this many weeks (from their
        first to third week in stage 3); their stage-4 entry is delayed by as many weeks.
    p_step_deviation, step_deviation_days
        Share of insertional participants doing their first stage-2 days on a step.
    pain_week1_mean, pain_intercept_sd, pain_slope_mean, pain_slope_sd, pain_response_corr
        Morning NRS latent: intercept at day 0, slope per week, correlation of the slope with
        (minus) the response latent.
    pain_noise_sd, pain_noise_ar
        Day-level AR(1) noise of the morning latent.
    p_morning_record_a, p_morning_record_b
        Beta distribution of each participant's share of window days with a morning record.
    post_window_records_per_week, post_window_weekly_change, post_window_noise_sd
        Sparse diary after the window: records per week (uniform range per participant), drift
        of the latent per week, and day noise.
    p_flare, flare_size, flare_session_pain
        Chance that a completed session is followed by a flare, the size (NRS) of the
        next-morning rise (half of it persists one more day), and the extra during/after pain
        of that session.
    p_regression_after_flare, regression_days
        Chance that a flare leads to a temporary regression by one stage, and its length.
    p_during_after, during_offset, after_offset, session_pain_sd, stage4_pain_offset
        During/after ratings on completed-session days of the window (the diary is sparse
        afterwards): recording chance, offsets from the morning latent (after: from during),
        noise, extra pain for plyometrics.
    at_risk_pain_cap
        Morning NRS cap between return to running and relapse (the programme's pain limit).
    relapse_pain_after
        Extra morning NRS after a relapse (or its pain run) and its decay time in days.
    p_withdraw_window, withdraw_window_days, p_withdraw_later, withdraw_later_days
        Withdrawal within and after the window, with day ranges.
    withdraw_response_effect
        Withdrawal logit change per SD of (minus) the response latent.
    withdrawal_reasons, withdrawal_reason_weights
        Reasons recorded at withdrawal.
    p_stop_early, stop_day_range, stop_response_effect
        Stopping loading before week 10 (no further sessions), its day range and dependence on
        the response latent (those whose pain settles stop more).
    p_rtr_completer, rtr_day_range, rtr_gap_days, p_rtr_stopped, rtr_after_stop_days
        Return to running: for participants still loading after stage-4 entry (within the day
        range), and for those who stopped early (days after stopping).
    p_rts, rts_gap_days
        Return to sport after running.
    p_relapse_completer, p_relapse_stopped, relapse_mean_days, relapse_min_days
        Relapse within a year of return to running (truncated exponential timing).
    p_relapse_event, p_relapse_pain_run, p_relapse_regression
        How a relapse shows: a ``relapse`` event, a run of high morning pain, a block of stage-2
        sessions (only for participants still loading, after the window).
    relapse_run_days, relapse_run_nrs, relapse_event_delay_days
        Length and NRS of the pain run; delay of the event when another sign comes first.
    relapse_regression_delay_days, relapse_regression_weeks, relapse_regression_weekdays
        Stage-2 block after a relapse: start delay, length in weeks, weekdays.
    p_injection, p_adverse_event, p_surgery
        Other events; day ranges below.
    injection_days, adverse_event_days, surgery_days, injection_notes, adverse_event_notes
        Day ranges and notes of other events.
    p_no_checkpoint, p_no_checkpoint_attempt, checkpoint_fail_attempt_weights
        Checkpoint attempts near stage-4 entry: share of stage-4 entrants without a passed
        attempt (of whom a share never attempt, the rest fail 1–2 times), and the weights of
        0, 1, 2 failed weekly attempts before a pass.
    checkpoint_load_ratio, checkpoint_hold_range, checkpoint_fail_ratio_range
        Passing attempts use the smallest 2.5 kg load reaching the ratio and hold for a time in
        the range (s); failed low-load attempts use a ratio in the fail range.
    visa_baseline_mean, visa_baseline_sd, visa_change12_mean, visa_change12_sd
        VISA-A target total at baseline and its change by week 12.
    visa_visit_weeks, visa_change_fraction, visa_noise_sd, visa_relapse_penalty
        Visits, share of the 12-week change reached at each, visit noise, and the drop after a
        relapse.
    visa_visit_jitter_days, p_visit_missed
        Follow-up visit jitter (±days) and chance a follow-up visit (or test visit) is missed.
    visa_baseline_day_sd, p_visa_baseline_early
        Baseline day spread around day 0 (within ±7) and share done 4–14 days before enrolment.
    visa_branch_cuts
        Noisy target totals above the first cut answer q8a, above the second q8b, else q8c.
    p_visa_missing_item, p_visa_total_only
        Share of assessments with one missing item, and with only the total recorded.
    heel_raise_reps, heel_raise_lsi_start, heel_raise_lsi_gain
        Heel-raise endurance: uninvolved-side reps (mean, SD), involved/uninvolved ratio at
        baseline (mean, SD) and its gain per visit (baseline, 6, 12 weeks).
    single_hop_cm, side_hop_count, hop_lsi_week12, hop_lsi_gain_week26
        Hop tests (weeks 12 and 26, from stage 3): uninvolved-side mean and SD, involved ratio
        at week 12 (single, side) and its gain by week 26.
    test_pain_offset
        Pain during a test relative to the morning latent.
    p_lowering_logged, lowering_slow_s, lowering_rushed_s, rushed_share_beta
        Lowering (eccentric) time of completed stage-2/3 sessions: share logged, range of a
        slow lowering and of a rushed one (seconds, to 0.5 s), and the Beta distribution of
        each participant's share of rushed sessions (mean about 0.1; a few rush often).
        Stage-1 holds and stage-4 plyometrics have no lowering time.
    p_rtr_assessment, rtr_assessment_days, rtr_assessment_lead_days, p_assessment_pass
        Return-to-running assessment (heel-raise endurance, single and side hop) of completers
        returning within the day range: its share, range of days and days before the return;
        the chance that both criterion tests reach an LSI of 90% without and with a later
        relapse.
    p_running_log, run_offsets, run_shares, p_run_done
        Share of returners keeping a running log; the runs of each week (days after the
        week's start, counted from the return day) and their shares of the weekly volume;
        chance a planned run is done (the first run, on the return day, always is).
    running_start_minutes, running_plateau_minutes, running_growth
        Weekly minutes in the first week, the plateau, and the weekly growth towards it.
    p_fast_builder, fast_growth
        Share of runners building up fast, and their weekly growth.
    run_minutes_log_sd, run_pace_min_per_km, p_run_distance_missing
        Log-scale spread of a run's minutes around its share, pace (min/km) for the distance,
        share of runs without a distance.
    p_run_pain, run_pain_jump, run_pain_before_relapse
        Share of runs with pain recorded; extra pain in a jump week and in the two weeks before
        a relapse.
    p_jump_week, p_jump_before_relapse, jump_multiplier, jump_lead_days
        A week of sudden extra volume: chance of one at a random week, chance that a relapse is
        preceded by one starting this many days earlier, and its volume multiplier.
    relapse_running_pause_days, relapse_restart_share
        Days without running after a relapse, then a restart at this share of the plateau.
    """

    sites: tuple[str, ...] = ("site_a", "site_b", "site_c", "site_d", "site_e")
    site_weights: tuple[float, ...] = (0.32, 0.25, 0.19, 0.14, 0.10)
    arms: tuple[str, ...] = ("staged", "alfredson", "hsr")
    p_insertional: float = 0.25
    sex_levels: tuple[str, ...] = ("female", "male", "other", "unknown")
    sex_weights: tuple[float, ...] = (0.46, 0.52, 0.01, 0.01)
    age_mean: float = 45.0
    age_sd: float = 11.0
    age_range: tuple[float, float] = (18.0, 75.0)
    p_age_missing: float = 0.015
    body_mass_mean: float = 78.0
    body_mass_sd: float = 14.0
    body_mass_range: tuple[float, float] = (40.0, 160.0)
    study_tail_days: int = 365

    window_days: int = 84
    session_weekdays: tuple[tuple[int, ...], ...] = ((0, 2, 4, 5), (0, 1, 2, 3, 4, 5, 6), (0, 2, 4))
    maintenance_weekdays: tuple[int, ...] = (0, 3)
    maintenance_mean_days: float = 42.0
    min_stage4_days: int = 14
    stage4_late_day: int = 140
    diary_horizon_day: int = 364
    prescribed_sets: tuple[tuple[int, ...], ...] = ((3, 3, 3, 3), (3, 3, 3, 3), (3, 3, 3, 3))
    prescribed_reps: tuple[tuple[int, ...], ...] = (
        (5, 15, 15, 10),
        (15, 15, 15, 15),
        (5, 15, 15, 10),
    )
    hsr_taper_arms: tuple[str, ...] = ("staged", "hsr")
    hsr_reps_start: int = 15
    hsr_reps_end: int = 6

    adherence_logit_mean: float = 2.1
    adherence_logit_sd: float = 0.9
    adherence_weekly_logit_change: float = -0.11
    adherence_arm_logit_shift: tuple[float, ...] = (0.0, -0.35, 0.1)
    adherence_response_effect: float = 0.2
    maintenance_logit_shift: float = -0.3
    p_partial: float = 0.15
    p_partial_fewer_sets: float = 0.6

    stage2_median_day: float = 10.0
    stage3_median_gap: float = 19.0
    stage4_median_gap: float = 28.0
    stage_gap_log_sd: float = 0.3
    speed_log_sd: float = 0.2
    speed_response_effect: float = 0.15
    stage2_load_step: float = 2.5
    stage2_load_cap: float = 10.0
    stage3_load_start_mean: float = 12.0
    stage3_load_start_sd: float = 3.0
    stage3_load_rate_mean: float = 4.5
    stage3_load_rate_sd: float = 1.0
    p_load_stagnation: float = 0.06
    load_stagnation_weeks: int = 5
    p_step_deviation: float = 0.10
    step_deviation_days: int = 7

    pain_week1_mean: float = 4.5
    pain_intercept_sd: float = 1.2
    pain_slope_mean: float = -0.24
    pain_slope_sd: float = 0.1
    pain_response_corr: float = 0.6
    pain_noise_sd: float = 0.9
    pain_noise_ar: float = 0.6
    p_morning_record_a: float = 16.0
    p_morning_record_b: float = 4.0
    post_window_records_per_week: tuple[float, float] = (0.3, 0.8)
    post_window_weekly_change: float = -0.02
    post_window_noise_sd: float = 0.9
    p_flare: float = 0.03
    flare_size: tuple[float, float] = (2.5, 4.0)
    flare_session_pain: float = 1.5
    p_regression_after_flare: float = 0.3
    regression_days: tuple[int, int] = (5, 10)
    p_during_after: float = 0.7
    during_offset: float = -0.4
    after_offset: float = 0.2
    session_pain_sd: float = 1.0
    stage4_pain_offset: float = 0.4
    at_risk_pain_cap: int = 4
    relapse_pain_after: tuple[float, float] = (2.0, 28.0)

    p_withdraw_window: float = 0.14
    withdraw_window_days: tuple[int, int] = (3, 83)
    p_withdraw_later: float = 0.05
    withdraw_later_days: tuple[int, int] = (84, 420)
    withdraw_response_effect: float = 0.4
    withdrawal_reasons: tuple[str, ...] = (
        "lost to follow-up",
        "no improvement",
        "time constraints",
        "pain increased",
        "moved away",
        "unrelated illness or injury",
        "adverse event",
    )
    withdrawal_reason_weights: tuple[float, ...] = (0.25, 0.18, 0.2, 0.12, 0.08, 0.12, 0.05)
    p_stop_early: float = 0.19
    stop_day_range: tuple[int, int] = (14, 62)
    stop_response_effect: float = 0.3

    p_rtr_completer: float = 0.85
    rtr_day_range: tuple[int, int] = (49, 111)
    rtr_gap_days: tuple[int, int] = (0, 21)
    p_rtr_stopped: float = 0.65
    rtr_after_stop_days: tuple[int, int] = (7, 42)
    p_rts: float = 0.5
    rts_gap_days: tuple[int, int] = (14, 90)
    p_relapse_completer: float = 0.26
    p_relapse_stopped: float = 0.55
    relapse_mean_days: float = 90.0
    relapse_min_days: int = 7
    p_relapse_event: float = 0.75
    p_relapse_pain_run: float = 0.6
    p_relapse_regression: float = 0.45
    relapse_run_days: tuple[int, int] = (3, 6)
    relapse_run_nrs: tuple[int, int] = (5, 8)
    relapse_event_delay_days: tuple[int, int] = (0, 7)
    relapse_regression_delay_days: tuple[int, int] = (2, 7)
    relapse_regression_weeks: tuple[int, int] = (2, 4)
    relapse_regression_weekdays: tuple[int, ...] = (0, 2, 4)
    p_injection: float = 0.03
    p_adverse_event: float = 0.05
    p_surgery: float = 0.01
    injection_days: tuple[int, int] = (30, 300)
    adverse_event_days: tuple[int, int] = (1, 83)
    surgery_days: tuple[int, int] = (150, 400)
    injection_notes: tuple[str, ...] = (
        "corticosteroid injection",
        "high-volume injection",
        "PRP injection",
    )
    adverse_event_notes: tuple[str, ...] = (
        "calf muscle strain",
        "plantar heel pain",
        "knee pain",
        "delayed-onset muscle soreness",
    )

    p_no_checkpoint: float = 0.10
    p_no_checkpoint_attempt: float = 0.5
    checkpoint_load_ratio: float = 1.5
    checkpoint_fail_ratio_range: tuple[float, float] = (1.2, 1.45)
    checkpoint_fail_attempt_weights: tuple[float, ...] = (0.5, 0.35, 0.15)
    checkpoint_hold_range: tuple[int, int] = (30, 45)

    visa_baseline_mean: float = 55.0
    visa_baseline_sd: float = 16.0
    visa_change12_mean: float = 17.0
    visa_change12_sd: float = 11.0
    visa_visit_weeks: tuple[int, ...] = (0, 6, 12, 26)
    visa_change_fraction: tuple[float, ...] = (0.0, 0.55, 1.0, 1.15)
    visa_noise_sd: float = 4.0
    visa_relapse_penalty: float = 10.0
    visa_visit_jitter_days: int = 7
    visa_baseline_day_sd: float = 2.0
    p_visa_baseline_early: float = 0.05
    visa_branch_cuts: tuple[float, float] = (72.0, 40.0)
    p_visit_missed: float = 0.05
    p_visa_missing_item: float = 0.02
    p_visa_total_only: float = 0.01

    heel_raise_reps: tuple[float, float] = (24.0, 7.0)
    heel_raise_lsi_start: tuple[float, float] = (0.70, 0.12)
    heel_raise_lsi_gain: float = 0.08
    single_hop_cm: tuple[float, float] = (115.0, 25.0)
    side_hop_count: tuple[float, float] = (38.0, 10.0)
    hop_lsi_week12: tuple[float, float] = (0.83, 0.78)
    hop_lsi_gain_week26: float = 0.07
    test_pain_offset: float = 0.3

    p_lowering_logged: float = 0.85
    lowering_slow_s: tuple[float, float] = (3.0, 5.0)
    lowering_rushed_s: tuple[float, float] = (1.0, 2.5)
    rushed_share_beta: tuple[float, float] = (0.7, 6.0)

    p_rtr_assessment: float = 0.8
    rtr_assessment_days: tuple[int, int] = (70, 91)
    rtr_assessment_lead_days: tuple[int, int] = (1, 3)
    p_assessment_pass: tuple[float, float] = (0.7, 0.3)

    p_running_log: float = 0.9
    run_offsets: tuple[int, ...] = (0, 2, 4)
    run_shares: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)
    p_run_done: float = 0.9
    running_start_minutes: tuple[float, float] = (45.0, 75.0)
    running_plateau_minutes: tuple[float, float] = (90.0, 240.0)
    running_growth: tuple[float, float] = (0.03, 0.12)
    p_fast_builder: float = 0.1
    fast_growth: tuple[float, float] = (0.25, 0.4)
    run_minutes_log_sd: float = 0.1
    run_pace_min_per_km: tuple[float, float] = (5.0, 7.0)
    p_run_distance_missing: float = 0.1
    p_run_pain: float = 0.7
    run_pain_jump: float = 1.5
    run_pain_before_relapse: float = 2.5
    p_jump_week: float = 0.2
    p_jump_before_relapse: float = 0.1
    jump_multiplier: tuple[float, float] = (2.5, 3.5)
    jump_lead_days: tuple[int, int] = (8, 24)
    relapse_running_pause_days: tuple[int, int] = (14, 42)
    relapse_restart_share: float = 0.3


DEFAULT_PARAMETERS = SimulationParameters()
"""The parameters `simulate_tables` uses unless given others."""


def simulate_tables(
    n_participants: int = 500,
    *,
    seed: int = 0,
    start: str = "2024-01-08",
    enrolment_days: int = 540,
    parameters: SimulationParameters | None = None,
) -> dict[str, pd.DataFrame]:
    """Simulate a synthetic Achilles tendinopathy loading-programme cohort.

    Parameters
    ----------
    n_participants : int, default 500
        Number of participants (ids ``P000001`` …, zero-padded so they sort).
    seed : int, default 0
        Seed of `numpy.random.default_rng`; the same arguments give identical tables.
    start : str, default "2024-01-08"
        ISO date of the first possible enrolment.
    enrolment_days : int, default 540
        Enrolment is spread uniformly over this many days from `start`. The study ends
        ``parameters.study_tail_days`` (365) days after the enrolment period, so late enrolees
        are administratively censored.
    parameters : SimulationParameters, optional
        Realism parameters; `DEFAULT_PARAMETERS` when omitted.

    Returns
    -------
    dict of str to pandas.DataFrame
        The seven tables of METRICS.md §2, rows sorted by participant then date:

        ``participants``
            participant_id, site, arm, tendinopathy_type, sex, age_years (float, some NaN),
            body_mass_kg, enrolled_on, withdrawn_on (NaT if not withdrawn), withdrawal_reason.
        ``sessions``
            participant_id, session_date, stage, prescribed_sets, prescribed_reps,
            completed_sets, completed_reps (int64; 0 sets = missed), load_kg (NaN in stage 4),
            surface (``step``/``flat``; NaN in stages 1 and 4), lowering_s (NaN unless a
            completed stage-2/3 session with a logged time).
        ``pain``
            participant_id, recorded_on, timing (``morning``/``during``/``after``), nrs.
        ``visa_a``
            participant_id, assessed_on, q1–q6, q7, q8a, q8b, q8c (float, NaN when absent),
            total (NaN unless only the total was recorded).
        ``function_tests``
            participant_id, assessed_on, test, side, value, external_load_kg, pain_nrs.
        ``events``
            participant_id, event_date, event, note.
        ``running``
            participant_id, run_date, minutes, distance_km, pain_nrs (NaN when not recorded).

        Strings have the pandas ``str`` dtype, dates ``datetime64[ns]`` (whole days), required
        integers ``int64``, optional integers and numbers ``float64``.

    Notes
    -----
    The generative model is described in the module docstring and every parameter in
    `SimulationParameters`. No data falls before enrolment (except VISA-A baselines, up to 14
    days before), on or after withdrawal, or after the study end.

    Examples
    --------
    >>> tables = simulate_tables(50, seed=1)
    >>> sorted(tables)
    ['events', 'function_tests', 'pain', 'participants', 'running', 'sessions', 'visa_a']
    """
    if n_participants < 1:
        raise ValueError(f"n_participants must be at least 1, got {n_participants}.")
    if enrolment_days < 1:
        raise ValueError(f"enrolment_days must be at least 1, got {enrolment_days}.")
    prm = DEFAULT_PARAMETERS if parameters is None else parameters
    rng = np.random.default_rng(seed)
    start_day = np.datetime64(pd.Timestamp(start).date(), "D")

    c = _draw_cohort(rng, n_participants, enrolment_days, prm)
    attempts = _draw_checkpoint_attempts(rng, c, prm)
    runs = _relapse_pain_runs(rng, c, prm)
    window = _simulate_window(rng, c, prm, runs)
    after = _simulate_after_window(rng, c, prm, runs)
    sessions = _session_rows(
        rng,
        c,
        prm,
        **{
            key: np.concatenate([window.pop(f"s_{key}"), after.pop(f"s_{key}")])
            for key in ("owner", "day", "stage", "completed")
        },
    )
    pain = {
        key: np.concatenate([window.pop(f"p_{key}"), after.pop(f"p_{key}"), runs[key]])
        for key in ("owner", "day", "timing", "nrs")
    }
    del window, after
    visa = _visa_rows(rng, c, prm)
    function_tests = _function_test_rows(rng, c, prm, attempts)
    events = _event_rows(rng, c, prm)

    # exercise quality and running (step 6): a second stream, so that the draws above and the
    # tables built from them are unchanged for a seed
    more = np.random.default_rng([seed, _SECOND_STREAM])
    sessions["lowering_s"] = _lowering_times(
        more, c, prm, sessions["owner"], sessions["stage"], sessions["completed_sets"] > 0
    )
    assessment = _return_assessment_rows(more, c, prm)
    function_tests = {
        key: np.concatenate([function_tests[key], assessment[key]]) for key in function_tests
    }
    running = _running_rows(more, c, prm)

    # build the frames; _long_frame consumes each row dict so large arrays are freed early
    ids = _participant_ids(n_participants)
    labels = {
        "timing": _TIMINGS,
        "test": _TESTS,
        "side": _SIDES,
        "event": _EVENTS,
        "surface": _SURFACES,
        "note": _event_notes(prm),
    }
    tables = {"participants": _participants_frame(c, prm, ids, start_day)}
    for table, rows, keys in (
        ("sessions", sessions, ("day",)),
        ("pain", pain, ("day", "timing")),
        ("visa_a", visa, ("day",)),
        ("function_tests", function_tests, ("day", "test", "side")),
        ("events", events, ("day", "event")),
        ("running", running, ("day",)),
    ):
        tables[table] = _long_frame(
            table, rows, ids=ids, start_day=start_day, enrol=c.enrol, sort_keys=keys, labels=labels
        )
    return tables


# --------------------------------------------------------------------------------------------
# participant-level draws


@dataclass
class _Cohort:
    """Participant-level draws (arrays of length n; days from enrolment)."""

    n: int
    site: np.ndarray
    arm: np.ndarray
    insertional: np.ndarray
    sex: np.ndarray
    age: np.ndarray
    body_mass: np.ndarray
    enrol: np.ndarray  # day of enrolment counted from `start`
    end: np.ndarray  # exclusive: no data on or after this day (withdrawal or study end + 1)
    withdrawn: np.ndarray
    reason: np.ndarray
    z: np.ndarray  # response latent, N(0, 1); positive = does well
    pain_a: np.ndarray
    pain_b: np.ndarray
    morning_rate: np.ndarray
    post_rate: np.ndarray
    adherence_logit: np.ndarray
    stopped: np.ndarray
    stop_day: np.ndarray
    d2: np.ndarray
    d3: np.ndarray
    d4: np.ndarray
    sess_end: np.ndarray  # exclusive end of scheduled sessions (maintenance included)
    reach4: np.ndarray
    step_deviation: np.ndarray
    load_start: np.ndarray
    load_rate: np.ndarray
    stagnation_start: np.ndarray  # stage-3 week from which the load stays flat; -1 = never
    rtr: np.ndarray  # return to running day, _NO_DAY if none
    rts: np.ndarray
    relapse: np.ndarray  # relapse day, _NO_DAY if none observed
    relapse_event: np.ndarray
    relapse_run: np.ndarray
    relapse_regression: np.ndarray
    pass_day: np.ndarray  # day of the passed checkpoint, _NO_DAY if none


def simulate_cohort(
    n_participants: int = 500,
    *,
    seed: int = 0,
    start: str = "2024-01-08",
    enrolment_days: int = 540,
    parameters: SimulationParameters | None = None,
) -> Cohort:
    """A validated synthetic cohort: :func:`simulate_tables` through the data contract.

    The tables pass the same validation as a loaded folder (:meth:`Cohort.from_tables`); the
    source is recorded as ``simulated(n=…, seed=…)`` for reports.
    """
    tables = simulate_tables(
        n_participants,
        seed=seed,
        start=start,
        enrolment_days=enrolment_days,
        parameters=parameters,
    )
    return Cohort.from_tables(tables, source=f"simulated(n={n_participants}, seed={seed})")


def _draw_cohort(
    rng: np.random.Generator, n: int, enrolment_days: int, prm: SimulationParameters
) -> _Cohort:
    """Draw participant characteristics and each participant's timeline."""
    site = rng.choice(len(prm.sites), size=n, p=_normalised(prm.site_weights))
    arm = rng.integers(0, len(prm.arms), size=n)
    insertional = rng.random(n) < prm.p_insertional
    sex = rng.choice(len(prm.sex_levels), size=n, p=_normalised(prm.sex_weights))
    age = np.round(np.clip(rng.normal(prm.age_mean, prm.age_sd, n), *prm.age_range))
    age[rng.random(n) < prm.p_age_missing] = np.nan
    body_mass = np.round(
        np.clip(rng.normal(prm.body_mass_mean, prm.body_mass_sd, n), *prm.body_mass_range), 1
    )
    enrol = rng.integers(0, enrolment_days, size=n)
    last_day = enrolment_days + prm.study_tail_days - enrol  # study end, inclusive

    z = rng.standard_normal(n)
    shocks = rng.standard_normal((n, 3))
    rho = prm.pain_response_corr
    pain_a = prm.pain_week1_mean + prm.pain_intercept_sd * shocks[:, 0]
    pain_b = prm.pain_slope_mean + prm.pain_slope_sd * (
        -rho * z + np.sqrt(1 - rho**2) * shocks[:, 1]
    )
    morning_rate = rng.beta(prm.p_morning_record_a, prm.p_morning_record_b, size=n)
    post_rate = rng.uniform(*prm.post_window_records_per_week, size=n) / 7.0
    adherence_logit = (
        rng.normal(prm.adherence_logit_mean, prm.adherence_logit_sd, n)
        + np.asarray(prm.adherence_arm_logit_shift)[arm]
        + prm.adherence_response_effect * z
    )

    # withdrawal: mostly within the window, more likely for poor responders
    u = rng.random(n)
    p_early = _expit(_logit(prm.p_withdraw_window) - prm.withdraw_response_effect * z)
    early_day = rng.integers(prm.withdraw_window_days[0], prm.withdraw_window_days[1] + 1, n)
    late_day = rng.integers(prm.withdraw_later_days[0], prm.withdraw_later_days[1] + 1, n)
    wd = np.where(
        u < p_early, early_day, np.where(u < p_early + prm.p_withdraw_later, late_day, _FAR)
    )
    withdrawn = wd <= last_day
    end = np.where(withdrawn, wd, last_day + 1)
    reason = rng.choice(
        len(prm.withdrawal_reasons), size=n, p=_normalised(prm.withdrawal_reason_weights)
    )

    # stopping loading early: good responders whose pain settles stop more often
    p_stop = _expit(_logit(prm.p_stop_early) + prm.stop_response_effect * z)
    stop_day = rng.integers(prm.stop_day_range[0], prm.stop_day_range[1] + 1, n)
    stopped = (rng.random(n) < p_stop) & (stop_day < end)

    # stage entry days
    speed = np.exp(-prm.speed_response_effect * z + prm.speed_log_sd * shocks[:, 2])
    gaps = np.exp(prm.stage_gap_log_sd * rng.standard_normal((n, 3))) * speed[:, None]
    d2 = np.maximum(np.round(prm.stage2_median_day * gaps[:, 0]), 2).astype(np.int64)
    d3 = d2 + np.maximum(np.round(prm.stage3_median_gap * gaps[:, 1]), 5).astype(np.int64)
    d4 = d3 + np.maximum(np.round(prm.stage4_median_gap * gaps[:, 2]), 7).astype(np.int64)

    # insertional step deviation and load progression; a stagnating load delays stage 4
    step_deviation = insertional & (rng.random(n) < prm.p_step_deviation)
    load_start = np.clip(rng.normal(prm.stage3_load_start_mean, prm.stage3_load_start_sd, n), 5, 25)
    load_rate = np.clip(rng.normal(prm.stage3_load_rate_mean, prm.stage3_load_rate_sd, n), 2.5, 8)
    stagnates = rng.random(n) < prm.p_load_stagnation
    stagnation_start = np.where(stagnates, rng.integers(0, 3, n), -1)
    d4 = d4 + np.where(stagnates, 7 * prm.load_stagnation_weeks, 0)

    # how long loading lasts
    w = prm.window_days
    maintenance = np.round(rng.exponential(prm.maintenance_mean_days, n)).astype(np.int64)
    loading_end = np.maximum(
        w + maintenance, np.minimum(d4, prm.stage4_late_day) + prm.min_stage4_days
    )
    loading_end = np.minimum(loading_end, prm.diary_horizon_day + 1)
    sess_end = np.where(stopped, stop_day, np.minimum(end, loading_end))
    reach4 = d4 < sess_end

    # return to running (at-risk start): after stage-4 entry, or some time after stopping early
    draws = rng.random((n, 5))
    rtr_c = np.maximum(
        prm.rtr_day_range[0], d4 + rng.integers(prm.rtr_gap_days[0], prm.rtr_gap_days[1] + 1, n)
    )
    ok_c = ~stopped & reach4 & (rtr_c <= prm.rtr_day_range[1]) & (draws[:, 0] < prm.p_rtr_completer)
    rtr_s = stop_day + rng.integers(prm.rtr_after_stop_days[0], prm.rtr_after_stop_days[1] + 1, n)
    ok_s = stopped & (draws[:, 1] < prm.p_rtr_stopped)
    rtr = np.where(ok_c, rtr_c, np.where(ok_s, rtr_s, _NO_DAY))
    rtr = np.where(rtr < end, rtr, _NO_DAY)
    at_risk = rtr != _NO_DAY

    # relapse within a year of return: truncated exponential timing; seen only before obs end
    p_rel = np.where(stopped, prm.p_relapse_stopped, prm.p_relapse_completer)
    # every sign of the relapse (event, pain run, stage-2 block) falls within a year of return
    # (+3: the stage-2 block starts on its first scheduled weekday)
    delay = max(prm.relapse_event_delay_days[1], prm.relapse_regression_delay_days[1] + 3)
    span = 365 - prm.relapse_min_days - delay
    m = prm.relapse_mean_days
    t_rel = np.floor(-m * np.log1p(-draws[:, 3] * (1 - np.exp(-span / m)))).astype(np.int64)
    relapse_day = rtr + prm.relapse_min_days + t_rel
    relapsed = at_risk & (draws[:, 2] < p_rel) & (relapse_day + delay < end)
    relapse_day = np.where(relapsed, relapse_day, _NO_DAY)
    signs = rng.random((n, 3))
    relapse_run = relapsed & (signs[:, 1] < prm.p_relapse_pain_run)
    relapse_regression = (
        relapsed & ~stopped & (relapse_day >= w) & (signs[:, 2] < prm.p_relapse_regression)
    )
    relapse_event = relapsed & (
        (signs[:, 0] < prm.p_relapse_event) | ~(relapse_run | relapse_regression)
    )
    # a block of stage-2 sessions after a relapse replaces maintenance loading
    sess_end = np.where(relapse_regression, np.minimum(sess_end, relapse_day), sess_end)

    rts = rtr + rng.integers(prm.rts_gap_days[0], prm.rts_gap_days[1] + 1, n)
    rts_ok = at_risk & (draws[:, 4] < prm.p_rts) & (rts < end) & (~relapsed | (rts < relapse_day))
    rts = np.where(rts_ok, rts, _NO_DAY)

    return _Cohort(
        n=n,
        site=site,
        arm=arm,
        insertional=insertional,
        sex=sex,
        age=age,
        body_mass=body_mass,
        enrol=enrol,
        end=end,
        withdrawn=withdrawn,
        reason=reason,
        z=z,
        pain_a=pain_a,
        pain_b=pain_b,
        morning_rate=morning_rate,
        post_rate=post_rate,
        adherence_logit=adherence_logit,
        stopped=stopped,
        stop_day=stop_day,
        d2=d2,
        d3=d3,
        d4=d4,
        sess_end=sess_end,
        reach4=reach4,
        step_deviation=step_deviation,
        load_start=load_start,
        load_rate=load_rate,
        stagnation_start=stagnation_start,
        rtr=rtr,
        rts=rts,
        relapse=relapse_day,
        relapse_event=relapse_event,
        relapse_run=relapse_run,
        relapse_regression=relapse_regression,
        pass_day=np.full(n, _NO_DAY),
    )


def _draw_checkpoint_attempts(
    rng: np.random.Generator, c: _Cohort, prm: SimulationParameters
) -> dict[str, np.ndarray]:
    """Single-leg isometric hold attempts near stage-4 entry; sets ``c.pass_day``.

    Participants who reach stage 4 pass on their last attempt, on or up to 3 days before
    stage-4 entry, after 0–2 failed weekly attempts; a share (`p_no_checkpoint`) has no attempt
    or only failed ones. A failed attempt breaks one rule: load ratio below 1.5, hold under 30 s,
    pain above 2, or pain not recorded.
    """
    n = c.n
    no_cp = c.reach4 & (rng.random(n) < prm.p_no_checkpoint)
    has_pass = c.reach4 & ~no_cp
    n_fail = rng.choice(
        len(prm.checkpoint_fail_attempt_weights),
        size=n,
        p=_normalised(prm.checkpoint_fail_attempt_weights),
    )
    # without a passed checkpoint: half never attempt, half fail 1-2 times
    n_fail = np.where(
        no_cp,
        np.where(rng.random(n) < prm.p_no_checkpoint_attempt, 0, rng.integers(1, 3, n)),
        n_fail,
    )
    last_day = np.maximum(c.d4 - rng.integers(0, 4, n), 0)
    count = np.where(has_pass, n_fail + 1, np.where(no_cp, n_fail, 0))
    c.pass_day = np.where(has_pass, last_day, _NO_DAY)

    owner, pos = _expand(count)
    day = last_day[owner] - 7 * (count[owner] - 1 - pos)
    keep = day >= 0
    owner, pos, day = owner[keep], pos[keep], day[keep]
    passed = has_pass[owner] & (pos == count[owner] - 1)
    m = owner.size

    bm = c.body_mass[owner]
    pass_load = np.ceil((prm.checkpoint_load_ratio - 1) * bm / 2.5) * 2.5
    hold = rng.integers(prm.checkpoint_hold_range[0], prm.checkpoint_hold_range[1] + 1, m).astype(
        float
    )
    pain = rng.integers(0, 3, m).astype(float)
    load = pass_load.copy()
    kind = rng.integers(0, 4, m)  # failure kind for failed attempts
    fail = ~passed
    low = fail & (kind == 0)
    ratio = rng.uniform(*prm.checkpoint_fail_ratio_range, low.sum())
    load[low] = np.floor(bm[low] * (ratio - 1) / 2.5) * 2.5
    short = fail & (kind == 1)
    hold[short] = rng.integers(10, 30, short.sum())
    painful = fail & (kind == 2)
    pain[painful] = rng.integers(3, 5, painful.sum())
    pain[fail & (kind == 3)] = np.nan
    return {"owner": owner, "day": day, "value": hold, "load": load, "pain": pain}


def _relapse_pain_runs(
    rng: np.random.Generator, c: _Cohort, prm: SimulationParameters
) -> dict[str, np.ndarray]:
    """Runs of consecutive mornings with NRS above the pain limit, starting on relapse day."""
    length = np.where(
        c.relapse_run, rng.integers(prm.relapse_run_days[0], prm.relapse_run_days[1] + 1, c.n), 0
    )
    owner, pos = _expand(length)
    day = c.relapse[owner] + pos
    nrs = rng.integers(prm.relapse_run_nrs[0], prm.relapse_run_nrs[1] + 1, owner.size).astype(float)
    return {
        "owner": owner.astype(np.int32),
        "day": day.astype(np.int32),
        "timing": np.zeros(owner.size, dtype=np.int8),
        "nrs": nrs.astype(np.float32),
        "end": c.relapse + length,  # per participant: first day after the run
    }


# --------------------------------------------------------------------------------------------
# remodelling window (participant x day grid)


def _simulate_window(
    rng: np.random.Generator,
    c: _Cohort,
    prm: SimulationParameters,
    runs: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Sessions and pain diary for days 0 … window_days − 1 on a participant × day grid.

    Grids are float32/int8 and row outputs int32/int8/float32 to keep memory modest.
    """
    n, w = c.n, prm.window_days
    days = np.arange(w, dtype=np.int32)
    f32 = np.float32

    pattern = np.zeros((len(prm.arms), 7), dtype=bool)
    for a, weekdays in enumerate(prm.session_weekdays):
        pattern[a, list(weekdays)] = True
    scheduled = pattern[c.arm][:, days % 7] & (days < c.sess_end[:, None])
    p_done = _expit(
        c.adherence_logit.astype(f32)[:, None]
        + f32(prm.adherence_weekly_logit_change) * (days // 7).astype(f32)
    )
    done = scheduled & (rng.random((n, w), dtype=f32) < p_done)
    del p_done
    base_stage = (
        1
        + (days >= c.d2[:, None]).astype(np.int8)
        + (days >= c.d3[:, None])
        + (days >= c.d4[:, None])
    )

    # morning pain latent: random intercept + slope, AR(1) day noise
    rho = prm.pain_noise_ar
    eps = rng.standard_normal((n, w), dtype=f32)
    eps *= f32(prm.pain_noise_sd * np.sqrt(1 - rho**2))
    eps[:, 0] /= f32(np.sqrt(1 - rho**2))
    latent = lfilter(np.array([1.0], f32), np.array([1.0, -rho], f32), eps, axis=1)
    del eps
    latent += c.pain_a.astype(f32)[:, None] + c.pain_b.astype(f32)[:, None] * (days / f32(7))

    # flares after some completed sessions (never on a passed-checkpoint day)
    flare = np.zeros((n, w), dtype=bool)
    fi, fd = np.nonzero(done[:, : w - 1])
    hit = rng.random(fi.size) < prm.p_flare
    hit &= fd != c.pass_day[fi]
    fi, fd = fi[hit], fd[hit]
    flare[fi, fd] = True
    size = rng.uniform(*prm.flare_size, fi.size).astype(f32)
    bump = np.zeros((n, w), dtype=f32)
    bump[fi, fd + 1] += size
    two = fd + 2 < w
    bump[fi[two], fd[two] + 2] += f32(0.5) * size[two]
    bump += latent
    morning = np.clip(np.rint(bump), 0, 10).astype(np.int8)
    del bump
    nxt = morning[:, 1:]
    morning[:, 1:] = np.where(
        flare[:, :-1], np.maximum(nxt, np.minimum(morning[:, :-1] + 2, 10)), nxt
    )

    # a flare sometimes leads to a short regression by one stage; it ends before the next
    # stage entry, so no stage is skipped
    start = (base_stage[fi, fd] >= 2) & (rng.random(fi.size) < prm.p_regression_after_flare)
    ri, rd = fi[start], fd[start]
    length = rng.integers(prm.regression_days[0], prm.regression_days[1] + 1, ri.size)
    next_entry = np.column_stack([c.d2, c.d3, c.d4, np.full(n, _FAR)])[ri, base_stage[ri, rd] - 1]
    until = np.full((n, w), -1, dtype=np.int16)
    until[ri, rd] = np.minimum(rd + length, next_entry - 1)
    reach = np.maximum.accumulate(until, axis=1)
    in_regression = np.zeros((n, w), dtype=bool)
    in_regression[:, 1:] = reach[:, :-1] >= days[1:]
    stage = base_stage - in_regression
    del until, reach, in_regression, base_stage

    # a passed checkpoint is not followed by a flare
    cp = np.flatnonzero((c.pass_day >= 0) & (c.pass_day < w - 1))
    a = c.pass_day[cp]
    morning[cp, a + 1] = np.minimum(morning[cp, a + 1], morning[cp, a] + 1)

    # between return to running and relapse, morning pain stays within the pain limit
    lo = np.where(c.rtr != _NO_DAY, c.rtr, _FAR)[:, None]
    hi = np.where(c.relapse != _NO_DAY, c.relapse, _FAR)[:, None]
    capped = (days >= lo) & (days < hi)
    np.minimum(morning, prm.at_risk_pain_cap, out=morning, where=capped)
    del capped

    recorded = (rng.random((n, w), dtype=f32) < c.morning_rate[:, None]) & (days < c.end[:, None])
    in_win = runs["day"] < w
    recorded[runs["owner"][in_win], runs["day"][in_win]] = False  # run rows replace these
    mi, md = _cells(recorded)
    morning_nrs = morning[mi, md].astype(f32)
    del recorded, morning

    # during/after ratings on completed-session days
    di, dd = _cells(done)
    m = di.size
    during = (
        latent[di, dd]
        + f32(prm.stage4_pain_offset) * (stage[di, dd] == 4)
        + f32(prm.flare_session_pain) * flare[di, dd]
        + rng.normal(prm.during_offset, prm.session_pain_sd, m).astype(f32)
    )
    del latent, flare
    after = during + rng.normal(prm.after_offset, prm.session_pain_sd * 0.9, m).astype(f32)
    rec_during = rng.random(m) < prm.p_during_after
    rec_after = rng.random(m) < prm.p_during_after

    si, sd = _cells(scheduled)
    return {
        "s_owner": si,
        "s_day": sd,
        "s_stage": stage[si, sd],
        "s_completed": done[si, sd],
        "p_owner": np.concatenate([mi, di[rec_during], di[rec_after]]),
        "p_day": np.concatenate([md, dd[rec_during], dd[rec_after]]),
        "p_timing": np.concatenate(
            [
                np.zeros(mi.size, np.int8),
                np.ones(int(rec_during.sum()), np.int8),
                np.full(int(rec_after.sum()), 2, np.int8),
            ]
        ),
        "p_nrs": np.concatenate(
            [
                morning_nrs,
                np.clip(np.rint(during[rec_during]), 0, 10),
                np.clip(np.rint(after[rec_after]), 0, 10),
            ]
        ),
    }


# --------------------------------------------------------------------------------------------
# after the window


def _simulate_after_window(
    rng: np.random.Generator,
    c: _Cohort,
    prm: SimulationParameters,
    runs: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Maintenance sessions, post-relapse stage-2 blocks and the sparse morning diary."""
    n, w = c.n, prm.window_days

    # maintenance: lighter schedule at the participant's current stage
    m_owner, m_day = _weekday_days(np.full(n, w), c.sess_end, prm.maintenance_weekdays)
    m_stage = _base_stage(c, m_owner, m_day)
    week = np.minimum(m_day // 7, w // 7 - 1)
    p_done = _expit(
        c.adherence_logit[m_owner]
        + prm.adherence_weekly_logit_change * week
        + prm.maintenance_logit_shift
    )
    m_done = rng.random(m_owner.size) < p_done

    # stage-2 block after a relapse (participants still loading)
    first = np.where(
        c.relapse_regression,
        c.relapse
        + rng.integers(
            prm.relapse_regression_delay_days[0], prm.relapse_regression_delay_days[1] + 1, n
        ),
        0,
    )
    weeks = rng.integers(prm.relapse_regression_weeks[0], prm.relapse_regression_weeks[1] + 1, n)
    last = np.where(c.relapse_regression, np.minimum(first + 7 * weeks, c.end), 0)
    r_owner, r_day = _weekday_days(first, last, prm.relapse_regression_weekdays)
    r_done = rng.random(r_owner.size) < _expit(c.adherence_logit[r_owner])

    # sparse morning diary to the diary horizon
    horizon = prm.diary_horizon_day + 1
    days = np.arange(w, horizon)
    recorded = (rng.random((n, horizon - w), dtype=np.float32) < c.post_rate[:, None]) & (
        days < c.end[:, None]
    )
    in_post = (runs["day"] >= w) & (runs["day"] < horizon)
    recorded[runs["owner"][in_post], runs["day"][in_post] - w] = False
    pi, p_day = _cells(recorded)
    del recorded
    p_day += w
    level = c.pain_a[pi] + c.pain_b[pi] * (w / 7.0)
    latent = (
        level
        + prm.post_window_weekly_change * (p_day - w) / 7.0
        + rng.normal(0.0, prm.post_window_noise_sd, pi.size)
    )
    after_run = (c.relapse[pi] != _NO_DAY) & (p_day >= runs["end"][pi])
    size, decay = prm.relapse_pain_after
    latent += np.where(after_run, size * np.exp(-(p_day - runs["end"][pi]) / decay), 0.0)
    nrs = np.clip(np.round(latent), 0, 10)
    capped = (c.rtr[pi] != _NO_DAY) & (p_day >= c.rtr[pi])
    capped &= (c.relapse[pi] == _NO_DAY) | (p_day < c.relapse[pi])
    nrs = np.where(capped, np.minimum(nrs, prm.at_risk_pain_cap), nrs)

    return {
        "s_owner": np.concatenate([m_owner, r_owner]).astype(np.int32),
        "s_day": np.concatenate([m_day, r_day]).astype(np.int32),
        "s_stage": np.concatenate([m_stage, np.full(r_owner.size, 2)]).astype(np.int8),
        "s_completed": np.concatenate([m_done, r_done]),
        "p_owner": pi,
        "p_day": p_day,
        "p_timing": np.zeros(pi.size, np.int8),
        "p_nrs": nrs.astype(np.float32),
    }


def _session_rows(
    rng: np.random.Generator,
    c: _Cohort,
    prm: SimulationParameters,
    *,
    owner: np.ndarray,
    day: np.ndarray,
    stage: np.ndarray,
    completed: np.ndarray,
) -> dict[str, np.ndarray]:
    """Prescriptions, completion, load and surface for scheduled sessions."""
    m = owner.size
    arm = c.arm[owner]
    sets = np.asarray(prm.prescribed_sets, dtype=np.int64)[arm, stage - 1]
    reps = np.asarray(prm.prescribed_reps, dtype=np.int64)[arm, stage - 1]
    week = day // 7
    weeks_in_3 = np.maximum(week - c.d3[owner] // 7, 0)
    taper = np.isin(arm, [prm.arms.index(a) for a in prm.hsr_taper_arms]) & (stage == 3)
    reps = np.where(taper, np.maximum(prm.hsr_reps_start - weeks_in_3, prm.hsr_reps_end), reps)

    partial = completed & (rng.random(m) < prm.p_partial)
    fewer_sets = partial & (rng.random(m) < prm.p_partial_fewer_sets) & (sets > 1)
    fewer_reps = partial & ~fewer_sets & (reps > 1)
    done_sets = np.where(completed, sets, 0)
    done_sets[fewer_sets] = rng.integers(1, sets[fewer_sets])
    done_reps = np.where(completed, reps, 0)
    done_reps[fewer_reps] = rng.integers(np.maximum(reps[fewer_reps] // 2, 1), reps[fewer_reps])

    # load: body weight in stage 1, small backpack loads in stage 2, HSR progression in stage 3
    weeks_in_2 = np.maximum(week - c.d2[owner] // 7, 0)
    load2 = np.minimum(prm.stage2_load_step * weeks_in_2, prm.stage2_load_cap)
    s0 = c.stagnation_start[owner]
    effective = np.where(
        s0 >= 0,
        np.minimum(weeks_in_3, s0) + np.maximum(weeks_in_3 - s0 - prm.load_stagnation_weeks, 0),
        weeks_in_3,
    )
    load3 = np.round((c.load_start[owner] + c.load_rate[owner] * effective) / 2.5) * 2.5
    load = np.select([stage == 1, stage == 2, stage == 3], [0.0, load2, load3], np.nan)

    # surface: heel drops on a step (midportion) or flat ground (insertional)
    insertional = c.insertional[owner]
    surface = np.where((stage == 2) | (stage == 3), np.where(insertional, 1, 0), -1)
    deviation = (
        c.step_deviation[owner] & (stage == 2) & (day < c.d2[owner] + prm.step_deviation_days)
    )
    surface = np.where(deviation, 0, surface)
    return {
        "owner": owner,
        "day": day,
        "stage": stage,
        "prescribed_sets": sets,
        "prescribed_reps": reps,
        "completed_sets": done_sets,
        "completed_reps": done_reps,
        "load_kg": load,
        "surface": surface,
    }


# --------------------------------------------------------------------------------------------
# VISA-A, function tests, events


def _visa_rows(
    rng: np.random.Generator, c: _Cohort, prm: SimulationParameters
) -> dict[str, np.ndarray]:
    """VISA-A assessments at baseline and weeks 6, 12, 26 with items matching a target total."""
    n = c.n
    k = len(prm.visa_visit_weeks)
    target_day = 7 * np.asarray(prm.visa_visit_weeks)
    jitter = prm.visa_visit_jitter_days
    day = target_day + rng.integers(-jitter, jitter + 1, (n, k))
    baseline = np.clip(np.round(rng.normal(0.0, prm.visa_baseline_day_sd, n)), -7, 7)
    early = rng.random(n) < prm.p_visa_baseline_early
    baseline[early] = rng.integers(-14, -3, early.sum())
    day[:, 0] = baseline
    present = (day < c.end[:, None]) & (rng.random((n, k)) >= prm.p_visit_missed)
    present[:, 0] = day[:, 0] < c.end

    e = rng.standard_normal((n, 2))
    # baseline severity correlates with baseline pain; change with the response latent
    pain_std = (c.pain_a - prm.pain_week1_mean) / prm.pain_intercept_sd
    baseline_total = prm.visa_baseline_mean + prm.visa_baseline_sd * (
        -0.5 * pain_std + np.sqrt(0.75) * e[:, 0]
    )
    baseline_total = np.clip(baseline_total, 0, 100)
    change = prm.visa_change12_mean + prm.visa_change12_sd * (0.6 * c.z + 0.8 * e[:, 1])
    target = (
        baseline_total[:, None]
        + np.asarray(prm.visa_change_fraction) * change[:, None]
        + rng.normal(0.0, prm.visa_noise_sd, (n, k)) * (np.arange(k) > 0)
    )
    relapsed_before = (c.relapse[:, None] != _NO_DAY) & (c.relapse[:, None] < day)
    target = np.clip(target - prm.visa_relapse_penalty * relapsed_before, 0, 100)

    oi, vk = np.nonzero(present)
    items = _visa_items(rng, target[oi, vk], prm.visa_branch_cuts)
    m = oi.size
    total = np.full(m, np.nan)
    u = rng.random(m)
    total_only = u < prm.p_visa_total_only
    missing_one = (u >= prm.p_visa_total_only) & (
        u < prm.p_visa_total_only + prm.p_visa_missing_item
    )
    item_names = ("q1", "q2", "q3", "q4", "q5", "q6", "q7")
    drop = rng.integers(0, len(item_names) + 1, m)  # which item is missing (7 = the q8 branch)
    for j, name in enumerate(item_names):
        items[name][missing_one & (drop == j)] = np.nan
    q8_missing = missing_one & (drop == len(item_names))
    for name in ("q8a", "q8b", "q8c"):
        items[name][q8_missing] = np.nan
    for name in items:
        items[name][total_only] = np.nan
    total[total_only] = np.round(target[oi, vk][total_only])
    return {"owner": oi, "day": day[oi, vk], **items, "total": total}


def _visa_items(
    rng: np.random.Generator, target: np.ndarray, cuts: tuple[float, float]
) -> dict[str, np.ndarray]:
    """VISA-A items (q1–q6, q7, one q8 branch) whose sum is close to ``target`` (0–100).

    The q8 branch follows the level (8a pain-free sport at high scores, 8c no sport at low);
    q7 and q8 take the allowed value nearest to the target's fraction of their maximum; q1–q6
    share the remainder with noise and are then adjusted one point at a time to sum to it.
    """
    m = target.size
    frac = target / 100.0
    noisy = target + rng.normal(0.0, 8.0, m)
    branch = np.where(noisy >= cuts[0], 0, np.where(noisy >= cuts[1], 1, 2))
    branch = np.where(target > 90, 0, np.where((target > 80) & (branch == 2), 1, branch))
    values = np.asarray(_Q8_VALUES, dtype=float)[branch]
    desired = frac * values[:, -1] + rng.normal(0.0, 0.12, m) * values[:, -1]
    q8 = values[np.arange(m), np.argmin(np.abs(values - desired[:, None]), axis=1)]
    q7_values = np.asarray(_Q7_VALUES, dtype=float)
    q7 = q7_values[
        np.argmin(np.abs(q7_values - (10 * frac + rng.normal(0, 1.5, m))[:, None]), axis=1)
    ]

    rest = np.clip(np.round(target) - q7 - q8, 0, 60)
    q = np.clip(np.round(rest[:, None] / 6 + rng.normal(0.0, 1.3, (m, 6))), 0, 10)
    diff = rest - q.sum(axis=1)
    while np.any(diff != 0):  # at most a few passes: each pass moves every row by up to 6 points
        for j in range(6):
            step = np.sign(diff)
            ok = ((step > 0) & (q[:, j] < 10)) | ((step < 0) & (q[:, j] > 0))
            q[ok, j] += step[ok]
            diff[ok] -= step[ok]
    out = {f"q{j + 1}": q[:, j].copy() for j in range(6)}
    out["q7"] = q7
    for b, name in enumerate(("q8a", "q8b", "q8c")):
        out[name] = np.where(branch == b, q8, np.nan)
    return out


def _function_test_rows(
    rng: np.random.Generator,
    c: _Cohort,
    prm: SimulationParameters,
    attempts: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Heel-raise endurance (baseline, 6, 12 weeks), hop tests (12, 26 weeks), checkpoints."""
    n = c.n
    parts = []

    def both_sides(owner, day, test, involved, uninvolved, pain):
        m = owner.size
        parts.append(
            {
                "owner": np.concatenate([owner, owner]),
                "day": np.concatenate([day, day]),
                "test": np.full(2 * m, test),
                "side": np.repeat([0, 1], m),
                "value": np.maximum(np.round(np.concatenate([involved, uninvolved])), 0),
                "external_load_kg": np.full(2 * m, np.nan),
                "pain_nrs": np.concatenate([pain, np.full(m, np.nan)]),
            }
        )

    def visit_pain(owner, day):
        latent = c.pain_a[owner] + c.pain_b[owner] * np.minimum(day, prm.window_days) / 7.0
        noise = rng.normal(prm.test_pain_offset, prm.session_pain_sd, owner.size)
        return np.clip(np.round(latent + noise), 0, 10)

    # heel-raise endurance: involved side recovers towards the uninvolved side
    visit_day = np.column_stack(
        [rng.integers(0, 4, n), 42 + rng.integers(-7, 8, n), 84 + rng.integers(-7, 8, n)]
    )
    present = (visit_day < c.end[:, None]) & (rng.random((n, 3)) >= prm.p_visit_missed)
    capacity = np.clip(rng.normal(*prm.heel_raise_reps, n), 5, None)
    lsi0 = np.clip(rng.normal(*prm.heel_raise_lsi_start, n), 0.3, 1.05)
    oi, vk = np.nonzero(present)
    lsi = np.clip(lsi0[oi] + vk * (prm.heel_raise_lsi_gain + 0.03 * c.z[oi]), 0.2, 1.2)
    uninvolved = capacity[oi] * (1 + 0.03 * vk + rng.normal(0, 0.05, oi.size))
    involved = capacity[oi] * lsi * (1 + rng.normal(0, 0.05, oi.size))
    day = visit_day[oi, vk]
    both_sides(oi, day, 0, involved, uninvolved, visit_pain(oi, day))

    # hop tests at weeks 12 and 26 for participants who reached stage 3
    hop_day = np.column_stack([84 + rng.integers(-7, 8, n), 182 + rng.integers(-7, 8, n)])
    hop_present = (
        (hop_day < c.end[:, None])
        & (hop_day >= c.d3[:, None])
        & (rng.random((n, 2)) >= prm.p_visit_missed)
    )
    oi, vk = np.nonzero(hop_present)
    day = hop_day[oi, vk]
    pain = visit_pain(oi, day)
    for test, (mean, sd), lsi_mean in zip(
        (2, 3), (prm.single_hop_cm, prm.side_hop_count), prm.hop_lsi_week12, strict=True
    ):
        capacity = np.clip(rng.normal(mean, sd, n), mean / 4, None)
        gain = prm.hop_lsi_gain_week26 * vk + 0.03 * c.z[oi]
        lsi = np.clip(rng.normal(lsi_mean, 0.1, oi.size) + gain, 0.3, 1.2)
        uninvolved = capacity[oi] * (1 + rng.normal(0, 0.05, oi.size))
        both_sides(oi, day, test, capacity[oi] * lsi, uninvolved, pain)

    # stage-4 checkpoint attempts (involved side)
    m = attempts["owner"].size
    parts.append(
        {
            "owner": attempts["owner"],
            "day": attempts["day"],
            "test": np.full(m, 1),
            "side": np.zeros(m, np.int64),
            "value": attempts["value"],
            "external_load_kg": attempts["load"],
            "pain_nrs": attempts["pain"],
        }
    )
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _event_rows(
    rng: np.random.Generator, c: _Cohort, prm: SimulationParameters
) -> dict[str, np.ndarray]:
    """Return to running/sport, relapse, injection, adverse event and surgery events."""
    n = c.n
    owners, days, codes, notes = [], [], [], []

    def add(mask, day, code, note=None):
        i = np.flatnonzero(mask & (day >= 0) & (day < c.end))
        owners.append(i)
        days.append(day[i])
        codes.append(np.full(i.size, code))
        notes.append(np.full(i.size, -1) if note is None else note[i])

    add(c.rtr != _NO_DAY, c.rtr, 0)
    add(c.rts != _NO_DAY, c.rts, 1)
    other_sign = c.relapse_run | c.relapse_regression
    delay = rng.integers(prm.relapse_event_delay_days[0], prm.relapse_event_delay_days[1] + 1, n)
    add(c.relapse_event, c.relapse + np.where(other_sign, delay, 0), 2, np.zeros(n, np.int64))

    n_inj = len(prm.injection_notes)
    u = rng.random((n, 3))
    note_draw = rng.integers(0, 1000, n)
    surgery_p = prm.p_surgery * 2 * _expit(-c.z)  # poor responders more likely
    add(u[:, 0] < surgery_p, rng.integers(*prm.surgery_days, n), 3)
    add(u[:, 1] < prm.p_injection, rng.integers(*prm.injection_days, n), 4, 1 + note_draw % n_inj)
    add(
        u[:, 2] < prm.p_adverse_event,
        rng.integers(*prm.adverse_event_days, n),
        5,
        1 + n_inj + note_draw % len(prm.adverse_event_notes),
    )
    return {
        "owner": np.concatenate(owners),
        "day": np.concatenate(days),
        "event": np.concatenate(codes),
        "note": np.concatenate(notes),
    }


# --------------------------------------------------------------------------------------------
# exercise quality, return assessment, running log


def _lowering_times(
    rng: np.random.Generator,
    c: _Cohort,
    prm: SimulationParameters,
    owner: np.ndarray,
    stage: np.ndarray,
    completed: np.ndarray,
) -> np.ndarray:
    """Logged lowering time (s) of completed stage-2/3 sessions; NaN for the others.

    Each participant rushes a share of sessions (Beta-distributed: most rarely, a few often);
    a rushed lowering takes 1-2.5 s, a slow one 3-5 s, logged to 0.5 s.
    """
    rushed_share = rng.beta(*prm.rushed_share_beta, size=c.n)
    m = owner.size
    logged = completed & ((stage == 2) | (stage == 3)) & (rng.random(m) < prm.p_lowering_logged)
    rushed = rng.random(m) < rushed_share[owner]
    seconds = np.where(
        rushed,
        rng.uniform(*prm.lowering_rushed_s, size=m),
        rng.uniform(*prm.lowering_slow_s, size=m),
    )
    return np.where(logged, np.round(seconds * 2) / 2, np.nan)


def _return_assessment_rows(
    rng: np.random.Generator, c: _Cohort, prm: SimulationParameters
) -> dict[str, np.ndarray]:
    """Heel-raise endurance, single and side hop on both sides shortly before the return.

    For completers returning to running with the assessment day in ``rtr_assessment_days``.
    Both criterion tests (heel raise, single hop) reach an LSI of at least 90% with chance
    ``p_assessment_pass`` (lower for those who relapse later); otherwise one or both fall
    short. The side hop is drawn around 90% either way.
    """
    n = c.n
    day = c.rtr - rng.integers(
        prm.rtr_assessment_lead_days[0], prm.rtr_assessment_lead_days[1] + 1, n
    )
    relapses = c.relapse != _NO_DAY
    assessed = (
        (c.rtr != _NO_DAY)
        & ~c.stopped
        & (day >= prm.rtr_assessment_days[0])
        & (day <= prm.rtr_assessment_days[1])
        & (rng.random(n) < prm.p_rtr_assessment)
    )
    p_pass = np.where(relapses, prm.p_assessment_pass[1], prm.p_assessment_pass[0])
    passed = rng.random(n) < p_pass
    fails = rng.integers(0, 3, n)  # 0: heel raise short, 1: single hop short, 2: both
    i = np.flatnonzero(assessed)
    m = i.size
    parts = []
    for test, (mean, sd), short in (
        (0, prm.heel_raise_reps, ~passed[i] & (fails[i] != 1)),
        (2, prm.single_hop_cm, ~passed[i] & (fails[i] != 0)),
        (3, prm.side_hop_count, None),
    ):
        uninvolved = np.maximum(np.round(np.clip(rng.normal(mean, sd, m), mean / 4, None)), 1)
        if short is None:  # side hop: not a criterion
            involved = np.round(uninvolved * rng.uniform(0.8, 1.02, m))
        else:  # whole units, rounded away from the 90% boundary: a pass is a pass
            ratio = np.where(short, rng.uniform(0.65, 0.88, m), rng.uniform(0.9, 1.05, m))
            involved = np.where(short, np.floor(uninvolved * ratio), np.ceil(uninvolved * ratio))
        pain = np.clip(np.round(rng.normal(1.0, 1.0, m)), 0, 10)
        parts.append(
            {
                "owner": np.concatenate([i, i]),
                "day": np.concatenate([day[i], day[i]]),
                "test": np.full(2 * m, test),
                "side": np.repeat([0, 1], m),
                "value": np.concatenate([involved, uninvolved]),
                "external_load_kg": np.full(2 * m, np.nan),
                "pain_nrs": np.concatenate([pain, np.full(m, np.nan)]),
            }
        )
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _running_rows(
    rng: np.random.Generator, c: _Cohort, prm: SimulationParameters
) -> dict[str, np.ndarray]:
    """Runs from the return to running to the diary horizon (or withdrawal, study end).

    Weeks are counted from the return day; each has three planned runs (``run_offsets``)
    sharing the week's volume, which grows from ``running_start_minutes`` by a participant's
    weekly growth up to a plateau. A jump week multiplies the volume; after a relapse the
    runner pauses, then restarts at a share of the plateau. See the module docstring.
    """
    n = c.n
    logs = (c.rtr != _NO_DAY) & (rng.random(n) < prm.p_running_log)
    log_end = np.minimum(c.end, prm.diary_horizon_day + 1)
    weeks = np.where(logs, -(-(log_end - c.rtr) // 7), 0)
    start = rng.uniform(*prm.running_start_minutes, n)
    plateau = rng.uniform(*prm.running_plateau_minutes, n)
    growth = np.where(
        rng.random(n) < prm.p_fast_builder,
        rng.uniform(*prm.fast_growth, n),
        rng.uniform(*prm.running_growth, n),
    )
    pace = rng.uniform(*prm.run_pace_min_per_km, n)
    relapsed = c.relapse != _NO_DAY
    pause_end = c.relapse + rng.integers(
        prm.relapse_running_pause_days[0], prm.relapse_running_pause_days[1] + 1, n
    )
    restart_week = np.where(relapsed, -(-(pause_end - c.rtr) // 7), _FAR)
    # jump weeks: one before some relapses (so the spike falls in the weeks before it), one at
    # a random week for others; never in the first four weeks (no ACWR is defined there)
    lead = rng.integers(prm.jump_lead_days[0], prm.jump_lead_days[1] + 1, n)
    before = (c.relapse - lead - c.rtr) // 7
    random_week = rng.integers(4, np.maximum(weeks, 5))
    jump = np.where(
        relapsed & (rng.random(n) < prm.p_jump_before_relapse) & (before >= 4),
        before,
        np.where(rng.random(n) < prm.p_jump_week, random_week, -1),
    )
    multiplier = rng.uniform(*prm.jump_multiplier, n)
    base_pain = 0.6 * np.clip(c.pain_a + c.pain_b * 12, 0, 10)

    # per runner-week: the planned volume, and whether the week may hold days that are not
    # logged (the log's last week, weeks meeting a pause after a relapse)
    w_owner, week = _expand(weeks)
    w_owner, week = w_owner.astype(np.int32), week.astype(np.int32)
    restart = restart_week[w_owner]
    rebuilt = week >= restart
    since = np.where(rebuilt, week - restart, week)
    level = np.where(rebuilt, prm.relapse_restart_share * plateau[w_owner], start[w_owner])
    volume = np.minimum(level * np.exp(since * np.log1p(growth[w_owner])), plateau[w_owner])
    jumped_week = week == jump[w_owner]
    volume[jumped_week] *= multiplier[w_owner[jumped_week]]
    week_start = (c.rtr[w_owner] + 7 * week).astype(np.int32)
    partial = relapsed[w_owner] & (week_start + 6 >= c.relapse[w_owner])
    partial &= week_start < pause_end[w_owner]
    partial |= week == weeks[w_owner] - 1
    del restart, rebuilt, since, level

    # per planned run: done or not (the first run, on the return day, always is), then the
    # runs done, before the end of the log and outside a pause after a relapse
    k = len(prm.run_offsets)
    done = rng.random(w_owner.size * k, dtype=np.float32) < prm.p_run_done
    done[np.flatnonzero(week == 0) * k] = True
    cell = np.flatnonzero(done).astype(np.int32)
    del done
    of_week, slot = cell // k, cell % k
    del cell
    day = week_start[of_week] + np.asarray(prm.run_offsets, dtype=np.int32)[slot]
    check = np.flatnonzero(partial[of_week])
    who = w_owner[of_week[check]]
    late = day[check] >= log_end[who]
    late |= relapsed[who] & (day[check] >= c.relapse[who]) & (day[check] < pause_end[who])
    if late.any():
        keep = np.ones(day.size, dtype=bool)
        keep[check[late]] = False
        of_week, slot, day = of_week[keep], slot[keep], day[keep]
    owner = w_owner[of_week]
    m = owner.size
    noise = rng.standard_normal(m, dtype=np.float32) * np.float32(prm.run_minutes_log_sd)
    minutes = volume[of_week] * np.asarray(prm.run_shares)[slot] * np.exp(noise)
    minutes = np.clip(np.round(minutes), 5, 600)
    jumped = jumped_week[of_week]
    del noise, volume, week_start, w_owner, week, slot
    distance = np.round(minutes / (pace[owner] * np.exp(rng.normal(0.0, 0.05, m))), 1)
    distance[rng.random(m, dtype=np.float32) < prm.p_run_distance_missing] = np.nan
    soon = relapsed[owner] & (day < c.relapse[owner]) & (day >= c.relapse[owner] - 14)
    pain = (
        base_pain[owner]
        + rng.standard_normal(m, dtype=np.float32)
        + prm.run_pain_jump * jumped
        + prm.run_pain_before_relapse * soon
    )
    recorded = rng.random(m, dtype=np.float32) < prm.p_run_pain
    pain = np.where(recorded, np.clip(np.round(pain), 0, 10), np.nan)
    return {
        "owner": owner,
        "day": day,
        "minutes": minutes,
        "distance_km": distance,
        "pain_nrs": pain,
    }


# --------------------------------------------------------------------------------------------
# frames


def _event_notes(prm: SimulationParameters) -> tuple[str, ...]:
    """Event note labels by code: relapse note, injection notes, adverse-event notes."""
    return ("relapse reported by participant", *prm.injection_notes, *prm.adverse_event_notes)


def _participants_frame(
    c: _Cohort, prm: SimulationParameters, ids: pa.Array, start_day: np.datetime64
) -> pd.DataFrame:
    owner = np.arange(c.n)
    withdrawn_day = np.where(c.withdrawn, c.end, 0)
    enrolled_on = _dates(start_day, c.enrol)
    withdrawn_on = np.where(
        c.withdrawn, _dates(start_day, c.enrol, withdrawn_day), np.datetime64("NaT", "ns")
    )
    return pd.DataFrame(
        {
            "participant_id": _strings(ids, owner),
            "site": _strings(prm.sites, c.site),
            "arm": _strings(prm.arms, c.arm),
            "tendinopathy_type": _strings(("midportion", "insertional"), c.insertional.astype(int)),
            "sex": _strings(prm.sex_levels, c.sex),
            "age_years": c.age.astype(float),
            "body_mass_kg": c.body_mass.astype(float),
            "enrolled_on": enrolled_on,
            "withdrawn_on": withdrawn_on,
            "withdrawal_reason": _strings(
                prm.withdrawal_reasons, np.where(c.withdrawn, c.reason, -1)
            ),
        }
    )


_INT_COLUMNS = {
    "stage",
    "prescribed_sets",
    "prescribed_reps",
    "completed_sets",
    "completed_reps",
}


def _long_frame(
    table: str,
    rows: dict[str, np.ndarray],
    *,
    ids: pa.Array,
    start_day: np.datetime64,
    enrol: np.ndarray,
    sort_keys: tuple[str, ...],
    labels: dict[str, tuple[str, ...]],
) -> pd.DataFrame:
    """Sort rows by participant then ``sort_keys`` and build the table with contract dtypes.

    ``rows`` is emptied as its columns are used, so that large arrays are freed early.
    """
    owner = rows.pop("owner")
    key = owner.astype(np.int64)
    for k in sort_keys:
        v = rows[k].astype(np.int64)
        lo, hi = (int(v.min()), int(v.max())) if v.size else (0, 0)
        key *= hi - lo + 1
        key += v - lo
        del v
    order = np.argsort(key, kind="stable")
    del key
    owner = owner[order]
    day = rows.pop("day")[order]
    data: dict[str, object] = {
        "participant_id": _strings(ids, owner),
        TABLE_COLUMNS[table][1]: _dates(start_day, enrol[owner], day),
    }
    del owner, day
    for col in TABLE_COLUMNS[table][2:]:
        values = rows.pop(col)[order]
        if col in labels:
            data[col] = _strings(labels[col], values)
        elif col in _INT_COLUMNS:
            data[col] = values.astype(np.int64, copy=False)
        else:
            data[col] = values.astype(np.float64, copy=False)
        del values
    del order
    return pd.DataFrame(data)


# --------------------------------------------------------------------------------------------
# small helpers


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _normalised(weights: tuple[float, ...]) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def _expand(count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Owner index and 0-based position for ``count[i]`` rows per participant ``i``."""
    count = np.asarray(count, dtype=np.int64)
    owner = np.repeat(np.arange(count.size), count)
    offsets = np.cumsum(count) - count
    pos = np.arange(owner.size) - offsets[owner]
    return owner, pos


def _weekday_days(
    first: np.ndarray, stop: np.ndarray, weekdays: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """All days ``d`` in ``[first, stop)`` with ``d % 7`` in ``weekdays``, per participant."""
    wd = np.sort(np.asarray(weekdays, dtype=np.int64))
    first_week = first // 7
    n_weeks = np.maximum(-(-stop // 7) - first_week, 0)
    owner, pos = _expand(n_weeks * wd.size)
    day = (first_week[owner] + pos // wd.size) * 7 + wd[pos % wd.size]
    keep = (day >= first[owner]) & (day < stop[owner])
    return owner[keep], day[keep]


def _cells(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row (participant) and column (day) of the True cells of a grid, as int32."""
    i, j = np.nonzero(mask)
    return i.astype(np.int32), j.astype(np.int32)


def _base_stage(c: _Cohort, owner: np.ndarray, day: np.ndarray) -> np.ndarray:
    return 1 + (day >= c.d2[owner]).astype(np.int64) + (day >= c.d3[owner]) + (day >= c.d4[owner])


def _participant_ids(n: int) -> pa.Array:
    width = max(6, len(str(n)))
    digits = np.char.zfill(np.arange(1, n + 1).astype(str), width)
    return pa.array(np.char.add("P", digits), type=pa.large_string())


def _strings(
    labels: pa.Array | tuple[str, ...], codes: np.ndarray
) -> pd.api.extensions.ExtensionArray:
    """Labels taken by integer code (code < 0 → missing) as a pandas ``str`` array."""
    dictionary = (
        labels if isinstance(labels, pa.Array) else pa.array(labels, type=pa.large_string())
    )
    codes = np.asarray(codes, dtype=np.int64)
    taken = dictionary.take(pa.array(codes, mask=codes < 0))
    return pd.array(taken, dtype=_STR)


def _dates(start_day: np.datetime64, *days: np.ndarray) -> np.ndarray:
    """``start_day`` plus the sum of whole-day offsets, as ``datetime64[ns]``."""
    total = np.zeros(np.shape(days[0]), dtype=np.int64)
    for d in days:
        total += d
    total *= _NS_PER_DAY
    total += start_day.astype("datetime64[ns]").astype(np.int64)
    return total.view("datetime64[ns]")
