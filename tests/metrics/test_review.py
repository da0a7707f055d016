"""rehabstats.metrics.review: the clinic review list and the audit summary against targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows, morning_pain

from rehabstats.config import AnalysisConfig
from rehabstats.constants import OVERALL
from rehabstats.metrics.review import REVIEW_REASONS, audit_summary, review_list, stuck_weeks

CUTOFF = "2024-03-01"  # day 60 for participants enrolled 2024-01-01
NOW = 60


def programme(pid: str, *, stages=((0, 1), (14, 2), (35, 3)), last: int = NOW, **extra) -> list:
    """Daily sessions from day 0 to ``last``; stage by start day; rising load in stages 2-3."""
    rows = []
    for day in range(last + 1):
        stage = max(s for start, s in stages if start <= day)
        row = {"participant_id": pid, "day": day, "stage": stage, **extra}
        if stage in (2, 3):
            row["load_kg"] = 0.5 * day
        rows.append(row)
    return rows


def flat_pain(pid: str, value: float = 2.0, days=range(NOW + 1)) -> list:
    return morning_pain(pid, dict.fromkeys(days, value))


@pytest.fixture(scope="module")
def cohort():
    people = [
        {"participant_id": "ok"},
        {"participant_id": "rise"},
        {"participant_id": "flare"},
        {"participant_id": "adh"},
        {"participant_id": "stuck"},
        {"participant_id": "ckpt"},
        {"participant_id": "ins", "tendinopathy_type": "insertional"},
        {"participant_id": "gone", "withdrawn_on": "2024-02-15", "withdrawal_reason": "moved"},
        {"participant_id": "old", "enrolled_on": "2023-06-01"},
    ]
    sessions = (
        programme("ok")
        + programme("rise")
        + programme("flare")
        + [
            {**row, "completed_sets": 0 if row["day"] >= 47 and row["day"] % 2 == 0 else 3}
            for row in programme("adh")
        ]
        + programme("stuck", stages=((0, 1), (14, 2)))
        + programme("ckpt", stages=((0, 1), (14, 2), (28, 3), (42, 4)))
        + programme("ins", stages=((0, 1), (14, 2), (35, 3)), surface="step")
        + programme("gone", stages=((0, 1), (14, 2)), last=45)
        + programme("old", stages=((0, 1), (14, 2)), last=274)
    )
    pain = (
        flat_pain("ok")
        + morning_pain("rise", {d: 2.0 if d <= 53 else 3.5 for d in range(NOW + 1)})
        + morning_pain("flare", {d: 5.0 if d == 58 else 2.0 for d in range(NOW + 1)})
        + flat_pain("adh")
        + flat_pain("stuck")
        + flat_pain("ckpt")
        + flat_pain("ins")
    )
    return cohort_from_rows(people, sessions=sessions, pain=pain, data_cutoff=CUTOFF)


@pytest.fixture(scope="module")
def reviewed(cohort):
    return review_list(cohort).set_index("participant_id")


def flags(reviewed, pid):
    row = reviewed.loc[pid]
    return {k for k in REVIEW_REASONS if row[k]}


def test_each_rule_flags_its_participant_only(reviewed):
    assert "ok" not in reviewed.index
    assert flags(reviewed, "rise") == {"pain_rising"}
    assert flags(reviewed, "flare") == {"recent_flare"}
    assert flags(reviewed, "adh") == {"adherence_low"}
    assert flags(reviewed, "stuck") == {"stuck_in_stage"}
    assert "progressed_without_checkpoint" in flags(reviewed, "ckpt")
    assert "insertional_step_deviation" in flags(reviewed, "ins")


def test_withdrawn_and_past_the_horizon_are_not_reviewed(reviewed):
    assert "gone" not in reviewed.index
    assert "old" not in reviewed.index


def test_numbers_behind_the_reasons(reviewed):
    rise = reviewed.loc["rise"]
    assert rise["pain_previous_7d"] == pytest.approx(2.0)
    assert rise["pain_last_7d"] == pytest.approx(3.5)
    assert "morning pain rising: 2.0 → 3.5 NRS" in rise["reasons"]
    flare = reviewed.loc["flare"]
    assert flare["days_since_flare"] == 3  # session day 57, next morning 5 vs 2
    assert "flare 3 days ago" in flare["reasons"]
    adh = reviewed.loc["adh"]
    assert adh["adherence_recent"] == pytest.approx(7 / 14)
    assert adh["adherence_before"] == pytest.approx(1.0)
    assert "adherence fell to 50% over the last 14 days (from 100%)" in adh["reasons"]
    stuck = reviewed.loc["stuck"]
    assert stuck["stage"] == 2
    assert stuck["weeks_in_stage"] == pytest.approx((NOW - 14) / 7)
    assert "in stage 2 for 7 weeks (expected ≤ 5)" in stuck["reasons"]
    assert (reviewed["day"] == NOW).all() and (reviewed["week"] == NOW // 7 + 1).all()


def test_sorted_by_number_of_reasons(reviewed):
    n = reviewed["n_reasons"].to_numpy()
    assert (np.diff(n) <= 0).all()
    assert (reviewed["n_reasons"] == reviewed[list(REVIEW_REASONS)].sum(axis=1)).all()


def test_thresholds_change_the_list(cohort):
    config = AnalysisConfig()
    strict = review_list(cohort, config=config.replace(review_pain_rise_points=2.0))
    assert "rise" not in set(strict["participant_id"])
    lenient = review_list(cohort, config=config.replace(review_stuck_weeks=(3, 8, 8)))
    assert "stuck" not in set(lenient["participant_id"])
    # the defaults: stage 1 three weeks, stage 2 five, stage 3 eight
    assert stuck_weeks(AnalysisConfig()) == {1: 3, 2: 5, 3: 8}


def test_empty_when_no_one_is_under_care(cohort):
    out = review_list(cohort.filter(participant_id=["gone"]))
    assert out.empty
    assert "reasons" in out.columns


# ---- audit summary ----------------------------------------------------------------------------


def test_audit_summary_against_targets():
    participants = pd.DataFrame(
        {
            "site": ["s1"] * 4 + ["s2"] * 2,
            "adherence_sessions": [0.9, 0.85, 0.95, 0.9, 0.5, 0.6],
            "visa_a_responder_12": pd.array([True, True, False, pd.NA, False, False]),
            "reached_stage_4": [True, True, True, False, True, False],
            "progressed_without_checkpoint": [False, False, False, False, True, False],
        }
    )
    km = pd.DataFrame(
        {
            "stage": [4, 4, 4, 4],
            "group": ["s1", "s1", "s2", "all"],
            "time_days": [50.0, 90.0, 60.0, 50.0],
            "survival": [0.5, 0.25, 0.5, 0.6],
            "ci_low": [0.3, 0.1, 0.2, 0.4],
            "ci_high": [0.8, 0.5, 0.9, 0.8],
        }
    )
    rates = pd.DataFrame(
        {
            "group": ["s1", "s2", "all"],
            "n_at_risk": [3, 1, 4],
            "relapses": [0, 1, 1],
            "person_weeks": [100.0, 50.0, 150.0],
            "rate_per_1000_pw": [0.0, 20.0, 6.7],
            "ci_low": [0.0, 0.5, 0.2],
            "ci_high": [36.9, 111.4, 37.1],
        }
    )
    config = AnalysisConfig(target_adherence=0.8, target_stage4_by_week12=0.5,
                            target_responders=0.5, target_checkpoint_fidelity=0.95,
                            target_relapse_rate=5.0)  # fmt: skip
    out = audit_summary(participants, km, rates, config=config).set_index(["site", "metric"])
    assert list(dict.fromkeys(out.index.get_level_values("site"))) == [OVERALL, "s1", "s2"]
    assert out.loc[("s1", "adherence"), "value"] == pytest.approx(0.9)
    assert bool(out.loc[("s1", "adherence"), "met"]) is True
    assert bool(out.loc[("s2", "adherence"), "met"]) is False
    # KM: the last time <= day 83, 1 - S
    assert out.loc[("s1", "stage4_by_week12"), "value"] == pytest.approx(0.5)
    assert out.loc[("s1", "stage4_by_week12"), "ci_low"] == pytest.approx(0.2)
    assert out.loc[(OVERALL, "stage4_by_week12"), "value"] == pytest.approx(0.4)
    assert out.loc[(OVERALL, "stage4_by_week12"), "target"] == 0.5  # from the configuration
    assert out.loc[("s1", "responders"), "value"] == pytest.approx(2 / 3)
    assert out.loc[("s1", "responders"), "n"] == 3
    assert out.loc[("s2", "checkpoint_fidelity"), "value"] == pytest.approx(0.0)
    assert bool(out.loc[("s1", "checkpoint_fidelity"), "met"]) is True
    assert bool(out.loc[("s1", "relapse_rate"), "met"]) is True  # at most 5
    assert bool(out.loc[("s2", "relapse_rate"), "met"]) is False
    assert out.loc[("s2", "relapse_rate"), "direction"] == "at_most"
    # every interval of a proportion stays within 0-1. Site s2's adherence 0.5 and 0.6 had the
    # t-interval 0.55 ± 12.71 · 0.05 = -0.09 to 1.19; now the logit interval: p = 0.55,
    # se(logit p) = sd / √n / (p (1 - p)) with sd = 0.0707, t(0.975; 1 df) = 12.706
    p, se = 0.55, np.std([0.5, 0.6], ddof=1) / np.sqrt(2) / (0.55 * 0.45)
    half = 12.706204736174698 * se
    expit = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    expected = (expit(np.log(p / (1 - p)) - half), expit(np.log(p / (1 - p)) + half))
    s2 = out.loc[("s2", "adherence")]
    assert (s2["ci_low"], s2["ci_high"]) == pytest.approx(expected, rel=1e-12)
    proportions = out[out["unit"] == "proportion"].dropna(subset=["ci_low"])
    assert len(proportions) >= 10
    assert ((proportions["ci_low"] >= 0) & (proportions["ci_high"] <= 1)).all()


def test_audit_summary_site_without_stage_4_entries():
    participants = pd.DataFrame(
        {
            "site": ["s1", "s1"],
            "adherence_sessions": [np.nan, np.nan],
            "visa_a_responder_12": pd.array([pd.NA, pd.NA], dtype="boolean"),
            "reached_stage_4": [False, False],
            "progressed_without_checkpoint": [False, False],
        }
    )
    empty_km = pd.DataFrame(columns=["stage", "group", "time_days", "survival", "ci_low",
                                     "ci_high"])  # fmt: skip
    rates = pd.DataFrame(columns=["group", "n_at_risk", "relapses", "person_weeks",
                                  "rate_per_1000_pw", "ci_low", "ci_high"])  # fmt: skip
    out = audit_summary(participants, empty_km, rates).set_index(["site", "metric"])
    assert out.loc[("s1", "stage4_by_week12"), "value"] == 0.0
    assert pd.isna(out.loc[("s1", "adherence"), "met"])
    assert pd.isna(out.loc[("s1", "relapse_rate"), "value"])


# ---- running and tempo reasons (METRICS §10-§11) ---------------------------------------------


def _ewma_acwr(loads: dict[int, float], first: int, last: int) -> dict[int, float]:
    """The ACWR of METRICS §11 written out day by day (λ = 2 / (N + 1), N = 7 and 28, both
    averages 0 the day before the first run), defined from first + 27 on."""
    la, lc = 2 / 8, 2 / 29
    a = c = 0.0
    out = {}
    for d in range(first, last + 1):
        load = loads.get(d, 0.0)
        a, c = la * load + (1 - la) * a, lc * load + (1 - lc) * c
        if d >= first + 27 and c > 0:
            out[d] = a / c
    return out


def _runs(pid: str, loads: dict[int, float]) -> list[dict]:
    return [{"participant_id": pid, "day": d, "minutes": m} for d, m in loads.items()]


# 10 minutes a day from day 10, and one 60-minute day: on day 58 (recent) or day 40 (long ago)
STEADY = dict.fromkeys(range(10, NOW + 1), 10.0)
RECENT_SPIKE = {**STEADY, 58: 60.0}
OLD_SPIKE = {**STEADY, 40: 60.0}


def _tempo_sessions(pid: str, fast_days) -> list[dict]:
    """Daily sessions, stage 2 from day 30 (4.3 weeks by the cut-off: not stuck) with the
    lowering logged: 2 s on ``fast_days``, 4 s on the others."""
    return [{"participant_id": pid, "day": d, "stage": 2 if d >= 30 else 1,
             "lowering_s": (2.0 if d in fast_days else 4.0) if d >= 30 else None}
            for d in range(NOW + 1)]  # fmt: skip


@pytest.fixture(scope="module")
def running_cohort():
    people = [{"participant_id": p} for p in
              ("spike", "oldspike", "early", "ready", "rushed", "half", "few")]  # fmt: skip
    sessions = (
        _tempo_sessions("rushed", range(50, NOW + 1))  # 11 of the last 14 days (47-60) fast
        + _tempo_sessions("half", range(54, NOW + 1))  # 7 of 14: exactly 50%
        # only two sessions logged in the last 14 days, both fast
        + [{"participant_id": "few", "day": d, "stage": 2, "lowering_s": 2.0} for d in (55, 58)]
    )
    running = _runs("spike", RECENT_SPIKE) + _runs("oldspike", OLD_SPIKE)
    events = [
        {"participant_id": "early", "day": 30, "event": "return_to_running"},
        {"participant_id": "ready", "day": 30, "event": "return_to_running"},
    ]
    tests = [
        # early: heel raises 20 / 30 = 67% on day 20, never a hop test: criteria never met
        {"participant_id": "early", "day": 20, "test": "heel_raise_endurance",
         "side": "involved", "value": 20},
        {"participant_id": "early", "day": 20, "test": "heel_raise_endurance",
         "side": "uninvolved", "value": 30},
        # ready: heel raises 28 / 30 = 93%, hop 95 / 100 = 95% on day 20, before the return
        {"participant_id": "ready", "day": 20, "test": "heel_raise_endurance",
         "side": "involved", "value": 28},
        {"participant_id": "ready", "day": 20, "test": "heel_raise_endurance",
         "side": "uninvolved", "value": 30},
        {"participant_id": "ready", "day": 20, "test": "single_hop", "side": "involved",
         "value": 95},
        {"participant_id": "ready", "day": 20, "test": "single_hop", "side": "uninvolved",
         "value": 100},
    ]  # fmt: skip
    return cohort_from_rows(people, sessions=sessions, running=running, events=events,
                            function_tests=tests, data_cutoff=CUTOFF)  # fmt: skip


@pytest.fixture(scope="module")
def running_reviewed(running_cohort):
    return review_list(running_cohort).set_index("participant_id")


def test_the_hand_worked_acwr_spikes_where_the_cases_say():
    # the cases rest on this: one 60-minute day after a steady 10 a day lifts the acute
    # average by 0.25 · 50 = 12.5 and the chronic one by only 0.069 · 50 = 3.4. On day 58
    # (chronic 9.68 the day before): 22.5 / 13.15 = 1.71, the next day 19.38 / 12.93 = 1.498,
    # just below 1.5. On day 40 the chronic average is lower still (the running began on day
    # 10), so the ratio stays above 1.5 for two days, 40 and 41
    recent = _ewma_acwr(RECENT_SPIKE, 10, NOW)
    assert {d for d, r in recent.items() if r > 1.5} == {58}
    assert recent[58] == pytest.approx(22.5 / 13.147, abs=1e-3)
    old = _ewma_acwr(OLD_SPIKE, 10, NOW)
    assert {d for d, r in old.items() if r > 1.5} == {40, 41}


def test_acwr_spike_in_the_last_days(running_reviewed):
    spike = running_reviewed.loc["spike"]
    assert flags(running_reviewed, "spike") == {"acwr_spike_recent"}
    assert spike["days_since_spike"] == 2  # day 58, cut-off day 60
    expected = _ewma_acwr(RECENT_SPIKE, 10, NOW)[58]
    assert spike["acwr_recent_max"] == pytest.approx(expected, rel=1e-12)
    assert f"ACWR {expected:.2f} (above 1.5) 2 days ago" in spike["reasons"]
    assert "oldspike" not in running_reviewed.index  # its spikes were 19-20 days ago


def test_acwr_spike_window_follows_the_configuration(running_cohort):
    # 21 days back reach day 40 (days 40-60); oldspike's latest spike is day 41
    wide = review_list(running_cohort, config=AnalysisConfig(review_acwr_days=21))
    assert {"spike", "oldspike"} <= set(wide.loc[wide["acwr_spike_recent"], "participant_id"])
    # 2 days back (days 59-60) miss day 58
    narrow = review_list(running_cohort, config=AnalysisConfig(review_acwr_days=2))
    assert "spike" not in set(narrow.loc[narrow["acwr_spike_recent"], "participant_id"])


def test_returned_before_meeting_the_criteria(running_reviewed):
    assert flags(running_reviewed, "early") == {"returned_before_criteria"}
    early = running_reviewed.loc["early"]
    assert early["return_day"] == 30 and pd.isna(early["rts_criteria_day"])
    assert ("returned to running or sport on day 30 before meeting the return-to-sport "
            "criteria (not met yet)") in early["reasons"]  # fmt: skip
    assert "ready" not in running_reviewed.index  # criteria met on day 20, returned on day 30


def test_rushed_lowering_in_recent_sessions(running_reviewed):
    rushed = running_reviewed.loc["rushed"]
    assert flags(running_reviewed, "rushed") == {"rushed_lowering"}
    # the last 14 days are days 47-60: 14 stage-2 sessions logged, days 50-60 (11) at 2 s
    assert (rushed["tempo_recent_known"], rushed["tempo_recent_fast"]) == (14, 11)
    assert ("lowering under 3 s in 11 of 14 stage 2-3 sessions of the last 14 days"
            in rushed["reasons"])  # fmt: skip
    # 7 of 14 is exactly the 50% threshold: at least it, so flagged
    assert flags(running_reviewed, "half") == {"rushed_lowering"}
    # two logged sessions, both fast, are fewer than the 3 needed
    assert "few" not in running_reviewed.index


def test_a_cohort_without_running_or_tempo_data_has_no_such_reason(cohort):
    out = review_list(cohort)
    assert not out[["acwr_spike_recent", "returned_before_criteria", "rushed_lowering"]].any(
        axis=None
    )
    assert out["acwr_recent_max"].isna().all() and (out["tempo_recent_known"] == 0).all()


def test_audit_readiness_for_the_return():
    from statsmodels.stats.proportion import proportion_confint

    participants = pd.DataFrame(
        {
            "site": ["s1"] * 4 + ["s2"] * 2,
            "adherence_sessions": [0.9] * 6,
            "visa_a_responder_12": pd.array([True] * 6),
            "reached_stage_4": [False] * 6,
            "progressed_without_checkpoint": [False] * 6,
            # s1: one returned early, two met the criteria first, one did not return
            "returned_before_criteria": pd.array([True, False, False, pd.NA, pd.NA, pd.NA]),
        }
    )
    empty_km = pd.DataFrame(columns=["stage", "group", "time_days", "survival", "ci_low",
                                     "ci_high"])  # fmt: skip
    rates = pd.DataFrame(columns=["group", "n_at_risk", "relapses", "person_weeks",
                                  "rate_per_1000_pw", "ci_low", "ci_high"])  # fmt: skip
    out = audit_summary(participants, empty_km, rates, config=AnalysisConfig())
    assert list(dict.fromkeys(out["metric"]))[-1] == "rts_readiness"
    out = out.set_index(["site", "metric"])
    s1 = out.loc[("s1", "rts_readiness")]
    assert (s1["value"], s1["n"]) == (pytest.approx(2 / 3), 3)
    assert (s1["ci_low"], s1["ci_high"]) == pytest.approx(
        proportion_confint(2, 3, method="wilson"), rel=1e-9
    )
    assert bool(s1["met"]) is False  # 67% < the default target of 80%
    assert pd.isna(out.loc[("s2", "rts_readiness"), "met"])  # no one in s2 returned
    assert out.loc[("s2", "rts_readiness"), "n"] == 0


def test_a_participant_without_sessions_can_be_listed():
    # morning pain rising (2 -> 3.5) with no session scheduled yet: the stage is unknown
    # (NaN), and the reasons text must not need one
    pain = morning_pain("nosess", {d: 2.0 if d <= 53 else 3.5 for d in range(NOW + 1)})
    cohort = cohort_from_rows([{"participant_id": "nosess"}], pain=pain, data_cutoff=CUTOFF)
    out = review_list(cohort).set_index("participant_id")
    assert flags(out, "nosess") == {"pain_rising"}
    assert pd.isna(out.loc["nosess", "stage"])
