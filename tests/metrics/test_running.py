"""Return to running and return-to-sport readiness (METRICS.md §11) on hand-built cohorts.

Every expected value is worked out in the comment next to it. Enrolment is 2024-01-01 (day 0)
and the cut-off 2024-04-10 (day 100) unless stated. Defaults: acute span 7 (lambda_a = 2/8 =
1/4), chronic span 28 (lambda_c = 2/29), spike > 1.5, weekly increase > 30%, spike window 28
days, pain_limit 4, rts_tests heel_raise_endurance and single_hop, rts_lsi_min 90.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows, tables_from_rows
from scipy import stats

from rehabstats import AnalysisConfig, Cohort, DataWarning
from rehabstats.metrics.outputs import participant_metrics, weekly_metrics
from rehabstats.metrics.relapse import relapse_rates
from rehabstats.metrics.running import (
    acwr_histogram,
    relapse_acwr,
    running_load,
    running_metrics,
    running_volume,
    weekly_running,
)

CUTOFF = "2024-04-10"  # day 100
LA, LC = 1 / 4, 2 / 29


def runs(pid: str, minutes_by_day: Mapping[int, float], **columns: object) -> list[dict]:
    return [
        {"participant_id": pid, "day": d, "minutes": m, **columns}
        for d, m in minutes_by_day.items()
    ]


def event(pid: str, day: int, kind: str = "return_to_running") -> dict:
    return {"participant_id": pid, "day": day, "event": kind}


def lsi_rows(pid: str, day: int, test: str, involved: float, uninvolved: float) -> list[dict]:
    return [
        {"participant_id": pid, "day": day, "test": test, "side": "involved", "value": involved},
        {"participant_id": pid, "day": day, "test": test, "side": "uninvolved",
         "value": uninvolved},
    ]  # fmt: skip


def cohort(people, *, data_cutoff=CUTOFF, **tables) -> Cohort:
    return cohort_from_rows(
        [{"participant_id": p} if isinstance(p, str) else p for p in people],
        data_cutoff=data_cutoff,
        **tables,
    )


def metrics(people, *, config=None, **tables) -> pd.DataFrame:
    return running_metrics(cohort(people, **tables), config=config).set_index("participant_id")


def naive_acwr(loads: np.ndarray, acute: int = 7, chronic: int = 28) -> tuple[np.ndarray, ...]:
    """The recurrences of §11 day by day (the test's own reference)."""
    la, lc = 2 / (acute + 1), 2 / (chronic + 1)
    a = c = 0.0
    out_a, out_c, out_r = [], [], []
    for offset, load in enumerate(loads):
        a = la * load + (1 - la) * a
        c = lc * load + (1 - lc) * c
        out_a.append(a)
        out_c.append(c)
        out_r.append(a / c if offset >= chronic - 1 and c > 0 else np.nan)
    return np.array(out_a), np.array(out_c), np.array(out_r)


# ---- the exponentially weighted averages -----------------------------------------------------


def test_acwr_matches_the_day_by_day_recurrence():
    # participants whose days span 1, 63, 64, 65 and 300 days to the cut-off on day 299 (rows
    # of the internal layout hold 64 days), with random loads from 0.5 to 600 minutes, long
    # breaks and late first runs, against a plain loop over the days
    rng = np.random.default_rng(7)
    people, rows = [], []
    for k, first in enumerate([299, 237, 236, 235, 0]):
        pid = f"p{k}"
        people.append(pid)
        days = np.union1d(rng.integers(first, 300, size=60), [first])
        minutes = rng.uniform(0.5, 600, days.size).round(1)
        rows += runs(pid, dict(zip(days.tolist(), minutes, strict=True)))
    c = cohort(people, running=rows, data_cutoff="2024-10-26")
    loaded = running_load(c).set_index("participant_id")
    worst = 0.0
    for pid in people:
        mine = loaded.loc[[pid]]
        first = int(mine["day"].iloc[0])
        assert mine["day"].tolist() == list(range(first, 300))  # every day to obs_end
        a, c, r = naive_acwr(mine["minutes"].to_numpy())
        for got, want in ((mine["acute"], a), (mine["chronic"], c), (mine["acwr"], r)):
            got = got.to_numpy()
            assert np.array_equal(np.isnan(got), np.isnan(want))
            ok = ~np.isnan(want)
            worst = max(worst, float(np.max(np.abs(got[ok] - want[ok]) / want[ok], initial=0)))
    assert worst < 1e-12


def test_participant_summaries_match_the_day_by_day_recurrence():
    # random logs ending with a big run (spikes right after it) and long follow-up after the
    # last run, some shorter than 27 days after the first run: acwr_max and acwr_spike_days
    # from a plain loop over every day to obs_end (day 299)
    rng = np.random.default_rng(11)
    people, rows, loads = [], [], {}
    for k in range(30):
        pid = f"p{k}"
        people.append(pid)
        first = int(rng.integers(0, 290))
        last = int(rng.integers(first, min(first + 120, 299) + 1))
        days = np.union1d(rng.integers(first, last + 1, size=25), [first, last])
        minutes = rng.uniform(1, 60, days.size).round(1)
        minutes[-1] = rng.choice([60.0, 200.0, 600.0])
        rows += runs(pid, dict(zip(days.tolist(), minutes, strict=True)))
        daily = np.zeros(300 - first)
        daily[days - first] = minutes
        loads[pid] = daily
    out = running_metrics(cohort(people, running=rows, data_cutoff="2024-10-26"))
    out = out.set_index("participant_id")
    spiky = 0
    for pid in people:
        _, _, r = naive_acwr(loads[pid])
        defined = ~np.isnan(r)
        if not defined.any():
            assert np.isnan(out.loc[pid, "acwr_max"]) and pd.isna(out.loc[pid, "acwr_spike_days"])
            continue
        assert out.loc[pid, "acwr_max"] == pytest.approx(r[defined].max(), rel=1e-12)
        spikes = int((np.round(r[defined], 10) > 1.5).sum())
        assert out.loc[pid, "acwr_spike_days"] == spikes
        spiky += spikes > 0
    assert spiky >= 5  # the case is about spikes


def test_single_run_acwr_is_undefined_before_day_27_and_decays_after():
    # one 60-minute run on day 10, follow-up to day 100. With A = C = 0 before it,
    # A_(10+k) = LA * 60 * (3/4)^k and C_(10+k) = LC * 60 * (27/29)^k, so
    # ACWR_(10+k) = (LA / LC) * ((3/4) / (27/29))^k = (29/8) * (29/36)^k: defined from k = 27
    # (day 37) on, and decreasing, so the largest is (29/8) * (29/36)^27 ~ 0.0106 < 1.5
    c = cohort(["one"], running=runs("one", {10: 60}))
    out = running_metrics(c).set_index("participant_id").loc["one"]
    assert out["first_run_day"] == 10 and out["run_days"] == 1
    assert out["acwr_max"] == pytest.approx((29 / 8) * (29 / 36) ** 27, rel=1e-12)
    assert out["acwr_spike_days"] == 0  # ACWR defined (days 37-100), never above 1.5
    assert out["volume_spike_weeks"] == 0  # one week with minutes: no previous week
    assert out["running_pain_days"] == 0
    load = running_load(c).set_index("day")
    assert np.isnan(load.loc[36, "acwr"])  # day 36 = first run + 26: not defined
    assert load.loc[37, "acwr"] == pytest.approx((29 / 8) * (29 / 36) ** 27, rel=1e-12)
    assert load.loc[100, "acwr"] == pytest.approx((29 / 8) * (29 / 36) ** 90, rel=1e-12)
    # the chronic load never reaches 0 after a run (minutes > 0): C_100 = LC*60*(27/29)^90
    assert load.loc[100, "chronic"] == pytest.approx(LC * 60 * (27 / 29) ** 90, rel=1e-12)


def test_acwr_needs_27_days_after_the_first_run():
    # daily 30-minute runs from day 5; cut-off day 31 = first run + 26: no ACWR is defined
    # -> acwr_max missing and acwr_spike_days missing (nothing to count), the rest present
    short = metrics(
        ["p"], data_cutoff="2024-02-01", running=runs("p", dict.fromkeys(range(5, 32), 30))
    )
    assert np.isnan(short.loc["p", "acwr_max"]) and pd.isna(short.loc["p", "acwr_spike_days"])
    assert short.loc["p", "run_days"] == 27
    # cut-off day 32 = first run + 27: ACWR is defined on that day only. With L = 30 on days
    # 5..32 (28 days, k = 27 days after the first): A = 30 (1 - (3/4)^28) and
    # C = 30 (1 - (27/29)^28)
    one = metrics(
        ["p"], data_cutoff="2024-02-02", running=runs("p", dict.fromkeys(range(5, 33), 30))
    )
    want = (1 - 0.75**28) / (1 - (27 / 29) ** 28)  # ~1.156
    assert one.loc["p", "acwr_max"] == pytest.approx(want, rel=1e-12)
    assert one.loc["p", "acwr_spike_days"] == 0


def test_chronic_load_only_vanishes_by_underflow():
    # C_d > 0 on every day after a run in exact arithmetic, so "C_d > 0" only matters when the
    # floating-point value underflows: one 1-minute run, then 35 years without running.
    # A = (1/4)(3/4)^k underflows to 0 after ~2590 days (ACWR 0, defined); C = (2/29)(27/29)^k
    # after ~10400 days (ACWR undefined, not a division error)
    people = [{"participant_id": "old", "enrolled_on": "1990-01-01"}]
    c = cohort(people, data_cutoff="2024-12-31", running=runs("old", {0: 1}))
    load = running_load(c).set_index("day")
    assert load.index[-1] == 12_783  # 1990-01-01 to 2024-12-31
    assert load.loc[3_000, "acute"] == 0 and load.loc[3_000, "chronic"] > 0
    assert load.loc[3_000, "acwr"] == 0
    assert load.loc[12_000, "chronic"] == 0 and np.isnan(load.loc[12_000, "acwr"])
    out = running_metrics(c).set_index("participant_id").loc["old"]
    assert out["acwr_max"] == pytest.approx((29 / 8) * (29 / 36) ** 27, rel=1e-12)


# ---- spikes -------------------------------------------------------------------------------


def spike_runs(pid: str) -> list[dict]:
    """10 minutes every day on days 0-39, 300 minutes on day 40, nothing after.

    Up to day 39 the ACWR falls from 1.156 (day 27) to 1.061 (day 39). Day 40:
    A = 300/4 + (3/4)(10(1 - (3/4)^40)) = 82.5, C = (2/29)300 + (27/29)(10(1 - (27/29)^40))
    = 29.47, ACWR = 2.80; then ACWR falls by (29/36) a day: 2.26 (day 41), 1.82 (day 42),
    1.46 (day 43): spike days 40, 41 and 42.
    """
    return runs(pid, {**dict.fromkeys(range(40), 10), 40: 300})


def test_spike_days_and_the_largest_acwr():
    out = metrics(["s"], running=spike_runs("s"))
    assert out.loc["s", "acwr_spike_days"] == 3
    a, c, _ = naive_acwr(np.r_[np.full(40, 10.0), 300.0])
    assert out.loc["s", "acwr_max"] == pytest.approx(a[-1] / c[-1], rel=1e-12)  # day 40
    assert out.loc["s", "acwr_max"] == pytest.approx(2.7998, abs=1e-4)
    # a spike threshold of 2.26 keeps day 40 (2.7998) and drops day 41 (2.2554)
    strict = metrics(["s"], running=spike_runs("s"), config=AnalysisConfig(acwr_spike=2.26))
    assert strict.loc["s", "acwr_spike_days"] == 1


def test_weekly_minutes_and_volume_spikes():
    # weeks: 1 (days 0-6) 30.4 min; 2: 39.52 = exactly 30.4 * 1.3 (the double 30.4 * 1.3 is
    # 39.519999999999996, below 39.52: compared to 10 decimals it is not a spike); 3: 52 > 39.52
    # * 1.3 = 51.376 -> spike; 4: none (0); 5: 20, previous week 0 -> not a spike; 6: 30 >
    # 20 * 1.3 = 26 -> spike. Two spike weeks. Cut-off day 50 (week 8): weeks 7 and 8 are 0.
    minutes = {0: 30.4, 7: 39.52, 14: 26, 16: 26, 28: 20, 35: 15, 36: 15}
    c = cohort(["w"], data_cutoff="2024-02-20", running=runs("w", minutes))
    out = running_metrics(c).set_index("participant_id").loc["w"]
    assert out["volume_spike_weeks"] == 2
    assert out["run_days"] == 7  # days 0, 7, 14, 16, 28, 35, 36
    weekly = weekly_running(c)
    assert weekly["week"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]  # first run's week to obs_end's
    assert weekly["running_minutes"].tolist() == [30.4, 39.52, 52, 0, 20, 30, 0, 0]
    assert weekly["volume_spike"].tolist() == [False, False, True, False, False, True, False, False]
    # with a 20% limit week 2 (+30%) is a spike too
    loose = running_metrics(c, config=AnalysisConfig(weekly_increase_max=0.2))
    assert loose["volume_spike_weeks"].iloc[0] == 3


def test_runs_after_obs_end_are_excluded():
    # w: withdrawn on day 40 (2024-02-10); runs on days 35 and 41 -> only day 35 counts.
    # late: every run after the cut-off -> no run within follow-up: running columns missing
    people = [{"participant_id": "w", "withdrawn_on": "2024-02-10"}, "late"]
    rows = runs("w", {35: 20, 41: 50}) + runs("late", {101: 30})
    with pytest.warns(DataWarning):  # rows after the withdrawal and after the cut-off
        c = cohort(people, running=rows)
        out = running_metrics(c).set_index("participant_id")
        weekly = weekly_running(c)
    assert out.loc["w", "run_days"] == 1 and out.loc["w", "first_run_day"] == 35
    for column in (
        "first_run_day", "run_days", "running_pain_days", "acwr_spike_days",
        "volume_spike_weeks",
    ):  # fmt: skip
        assert pd.isna(out.loc["late", column]), column
    assert np.isnan(out.loc["late", "acwr_max"])
    # w: week of day 35 = week 6, obs_end day 40 is in week 6 too -> one week of 20 minutes
    assert weekly[["participant_id", "week", "running_minutes"]].values.tolist() == [["w", 6, 20.0]]


def test_two_runs_on_one_day_make_one_run_day():
    # day 3: 20 + 25 = 45 minutes, pains 3 and 6 -> highest 6 > 4: a painful run day;
    # day 5: pain 4 (not above the limit); day 6: pain not recorded (unknown, not painful)
    rows = [
        {"participant_id": "p", "day": 3, "minutes": 20, "pain_nrs": 3},
        {"participant_id": "p", "day": 3, "minutes": 25, "pain_nrs": 6},
        {"participant_id": "p", "day": 5, "minutes": 30, "pain_nrs": 4},
        {"participant_id": "p", "day": 6, "minutes": 30},
    ]
    c = cohort(["p"], running=rows)
    out = running_metrics(c).set_index("participant_id").loc["p"]
    assert (out["run_days"], out["running_pain_days"]) == (3, 1)
    assert running_load(c).set_index("day").loc[3, "minutes"] == 45
    assert weekly_running(c)["running_minutes"].iloc[0] == 105  # week 1: 45 + 30 + 30
    # with pain_limit 3 the day-5 run (4) is painful too
    assert running_metrics(c, config=AnalysisConfig(pain_limit=3))["running_pain_days"][0] == 2


# ---- relapse after spikes ------------------------------------------------------------------


def test_relapse_after_spikes_splits_person_time_by_exposure():
    # Every participant runs spike_runs (spike days 40, 41, 42, so days 41..70 are exposed:
    # the union of 41-68, 42-69 and 43-70) except "calm" (10 minutes a day, no spike: its ACWR
    # stays near 1.16 and below), and returns to running on day 0 (at risk from day 0; the
    # person-time is days 1 .. end).
    #   late: relapse on day 50 -> 50 days: exposed 41-50 = 10, unexposed 40; exposed relapse
    #   edge: relapse on day 41, the day after the first spike (exposed) -> exposed 1,
    #         unexposed 40; exposed relapse
    #   same: relapse on day 40, the first spike day: no spike in days 12-39 -> unexposed
    #         relapse; 40 unexposed days
    #   gone: withdrawn on day 60 without relapse -> exposed 41-60 = 20, unexposed 40
    #   calm: relapse on day 80 -> 80 unexposed days, unexposed relapse
    people = ["late", "edge", "same", {"participant_id": "gone", "withdrawn_on": "2024-03-01"},
              "calm"]  # fmt: skip
    ids = ["late", "edge", "same", "gone", "calm"]
    rows = [r for pid in ids[:4] for r in spike_runs(pid)]
    rows += runs("calm", dict.fromkeys(range(100), 10))
    events = [event(pid, 0) for pid in ids]
    events += [event("late", 50, "relapse"), event("edge", 41, "relapse"),
               event("same", 40, "relapse"), event("calm", 80, "relapse")]  # fmt: skip
    c = cohort(people, running=rows, events=events)
    out = relapse_acwr(c).iloc[0]
    # exposed: relapses late + edge = 2; days 10 + 1 + 20 = 31
    # unexposed: relapses same + calm = 2; days 40 + 40 + 40 + 40 + 80 = 240
    assert (out["exposed_relapses"], out["unexposed_relapses"]) == (2, 2)
    assert out["exposed_person_weeks"] == pytest.approx(31 / 7)
    assert out["unexposed_person_weeks"] == pytest.approx(240 / 7)
    # together, the person-time of §8: 50 + 41 + 40 + 60 + 80 = 271 days
    total = relapse_rates(c)["person_weeks"].iloc[0]
    assert out["exposed_person_weeks"] + out["unexposed_person_weeks"] == pytest.approx(total)
    assert total == pytest.approx(271 / 7)
    # rate ratio (2 / 31) / (2 / 240); exact conditional CI: given 4 relapses, the exposed
    # count is binomial(4, p) with p = 31/271 under equal rates; Clopper-Pearson limits of p
    # for 2 of 4 (beta quantiles), mapped by p / (1 - p) * 240 / 31
    assert out["rate_ratio"] == pytest.approx((2 / 31) / (2 / 240))
    low = stats.beta.ppf(0.025, 2, 3)
    high = stats.beta.ppf(0.975, 3, 2)
    assert out["ci_low"] == pytest.approx(low / (1 - low) * 240 / 31, rel=1e-9)
    assert out["ci_high"] == pytest.approx(high / (1 - high) * 240 / 31, rel=1e-9)
    # a 10-day window: exposure 41..52; late's relapse on day 50 is still exposed
    # (late 10, edge 1, gone 12 exposed days)
    short = relapse_acwr(c, config=AnalysisConfig(spike_window_days=10)).iloc[0]
    assert short["exposed_person_weeks"] == pytest.approx(23 / 7)
    assert short["exposed_relapses"] == 2


def test_relapse_acwr_by_group_and_without_running_data():
    people = [{"participant_id": "a", "arm": "hsr"}, {"participant_id": "b", "arm": "staged"}]
    events = [event("a", 0), event("a", 50, "relapse"), event("b", 10)]
    c = cohort(people, running=spike_runs("a"), events=events)
    out = relapse_acwr(c, by="arm").set_index("group")
    assert list(out.index) == ["hsr", "staged"]
    # hsr: a relapses on day 50, exposed (days 41-50 exposed, 1-40 not)
    assert (out.loc["hsr", "exposed_relapses"], out.loc["hsr", "unexposed_relapses"]) == (1, 0)
    assert out.loc["hsr", "exposed_person_weeks"] == pytest.approx(10 / 7)
    # no unexposed relapse: the ratio is infinite, its lower limit finite
    assert out.loc["hsr", "rate_ratio"] == np.inf and np.isfinite(out.loc["hsr", "ci_low"])
    # staged: b has no runs: 90 unexposed days (10..100), no relapse -> no ratio
    assert out.loc["staged", "unexposed_person_weeks"] == pytest.approx(90 / 7)
    assert np.isnan(out.loc["staged", "rate_ratio"])
    # without a running table: everything unexposed, the ratio missing (not an error)
    tables = tables_from_rows(people, events=events)
    del tables["running"]
    plain = relapse_acwr(Cohort.from_tables(tables, data_cutoff=CUTOFF)).iloc[0]
    assert plain["exposed_person_weeks"] == 0 and plain["unexposed_relapses"] == 1
    assert np.isnan(plain["rate_ratio"]) and np.isnan(plain["ci_low"])


# ---- return-to-sport readiness -------------------------------------------------------------


def test_criteria_day_when_the_tests_cross_on_different_days():
    tests = (
        # x: heel raise 24/30 = 80 (day 10), then 27/30 = 90 (day 30); single hop 95/100 = 95
        # (day 20), then 80 (day 40). On day 20 the latest heel raise is 80: not yet; on day 30
        # both are >= 90 -> criteria day 30 (kept although the hop falls to 80 on day 40)
        lsi_rows("x", 10, "heel_raise_endurance", 24, 30)
        + lsi_rows("x", 20, "single_hop", 95, 100)
        + lsi_rows("x", 30, "heel_raise_endurance", 27, 30)
        + lsi_rows("x", 40, "single_hop", 80, 100)
        # y: heel raise 92 (day 10), hop 85 (day 12), hop 91 (day 50) -> criteria day 50
        + lsi_rows("y", 10, "heel_raise_endurance", 92, 100)
        + lsi_rows("y", 12, "single_hop", 85, 100)
        + lsi_rows("y", 50, "single_hop", 91, 100)
        # z: only the heel raise and a side hop: the single hop is never measured -> never
        + lsi_rows("z", 10, "heel_raise_endurance", 95, 100)
        + lsi_rows("z", 10, "side_hop", 95, 100)
        # u: heel raise 100 with an uninvolved side of 0 on day 5 (no LSI: not a
        # measurement), single hop 90 on day 6 -> the heel raise's latest LSI is missing: never
        + lsi_rows("u", 5, "heel_raise_endurance", 10, 0)
        + lsi_rows("u", 6, "single_hop", 90, 100)
    )
    people = ["x", "y", "z", "u", "n"]
    events = [event("x", 30), event("y", 45, "return_to_sport"), event("z", 20), event("u", 70)]
    out = metrics(people, function_tests=tests, events=events)
    assert out["rts_criteria_day"].tolist()[:2] == [30, 50]
    assert out["rts_criteria_day"].iloc[2:].isna().all()
    # returned before the criteria: x returned on day 30, the criteria day itself (met by
    # then) -> False; y returned (to sport) on day 45 < 50 -> True; z and u never met them ->
    # True; n never returned -> missing
    assert out["returned_before_criteria"].tolist()[:4] == [False, True, True, True]
    assert pd.isna(out.loc["n", "returned_before_criteria"])
    assert str(out["returned_before_criteria"].dtype) == "boolean"
    # the criteria tests are configurable: with the heel raise alone, y meets them on day 10
    heel = metrics(people, function_tests=tests, events=events,
                   config=AnalysisConfig(rts_tests=["heel_raise_endurance"]))  # fmt: skip
    assert heel.loc["y", "rts_criteria_day"] == 10 and heel.loc["z", "rts_criteria_day"] == 10


def test_criteria_compare_the_lsi_to_10_decimals():
    # 57 / 100 * 100 is 56.99999999999999 in floating point; an LSI of 57% meets a minimum
    # of 57 (rounded to 10 decimals). Both tests measured on day 8.
    tests = lsi_rows("p", 8, "heel_raise_endurance", 57, 100) + lsi_rows(
        "p", 8, "single_hop", 60, 100
    )
    out = metrics(["p"], function_tests=tests, config=AnalysisConfig(rts_lsi_min=57))
    assert out.loc["p", "rts_criteria_day"] == 8
    assert pd.isna(metrics(["p"], function_tests=tests).loc["p", "rts_criteria_day"])  # < 90


def test_tests_after_obs_end_do_not_meet_the_criteria():
    # both tests at 100% on day 101, after the cut-off (day 100) -> never met by obs_end
    tests = lsi_rows("p", 101, "heel_raise_endurance", 30, 30) + lsi_rows(
        "p", 101, "single_hop", 1, 1
    )
    with pytest.warns(DataWarning):
        out = metrics(["p"], function_tests=tests, events=[event("p", 50)])
    assert pd.isna(out.loc["p", "rts_criteria_day"])
    assert out.loc["p", "returned_before_criteria"] == True  # noqa: E712


# ---- outputs ---------------------------------------------------------------------------------


def test_a_cohort_without_running_data_leaves_the_running_columns_empty():
    tables = tables_from_rows([{"participant_id": "p"}], events=[event("p", 20)])
    del tables["running"]
    c = Cohort.from_tables(tables, data_cutoff=CUTOFF)
    assert c.running.empty and list(c.running.columns[:3]) == [
        "participant_id",
        "run_date",
        "minutes",
    ]
    pm = participant_metrics(c).set_index("participant_id").loc["p"]
    for column in ("first_run_day", "run_days", "running_pain_days", "acwr_spike_days",
                   "volume_spike_weeks", "rts_criteria_day"):  # fmt: skip
        assert pd.isna(pm[column]), column
    assert np.isnan(pm["acwr_max"])
    assert pm["returned_before_criteria"] == True  # noqa: E712  (returned, criteria never met)
    weekly = weekly_metrics(c)
    assert weekly["week"].tolist() == list(range(1, 13)) and weekly["running_minutes"].isna().all()


def test_weekly_metrics_carry_running_minutes_over_the_whole_follow_up():
    # a: sessions in week 1; runs on day 60 (week 9: 20 min) and day 100 (week 15: 30 min);
    #    cut-off day 110 (week 16). Window rows 1-12: running_minutes missing in weeks 1-8,
    #    20 in week 9, 0 in weeks 10-12; then rows for weeks 13-16 with 0, 0, 30, 0 and every
    #    window metric missing.
    # b: no runs: window rows only, running_minutes missing.
    c = cohort(
        ["a", "b"],
        data_cutoff="2024-04-20",
        sessions=[{"participant_id": "a", "day": 1}, {"participant_id": "b", "day": 1}],
        running=runs("a", {60: 20, 100: 30}),
    )
    weekly = weekly_metrics(c)
    a = weekly[weekly["participant_id"] == "a"].set_index("week")
    assert list(a.index) == list(range(1, 17))
    assert a.loc[1:8, "running_minutes"].isna().all()
    assert a.loc[9:16, "running_minutes"].tolist() == [20, 0, 0, 0, 0, 0, 30, 0]
    assert a.loc[1, "sessions_scheduled"] == 1 and a.loc[12, "sessions_scheduled"] == 0
    later = a.loc[13:16]
    for column in ("stage", "sessions_scheduled", "sessions_completed", "adherence_sessions",
                   "pain_morning_mean", "adherence_volume", "n_morning_records"):  # fmt: skip
        assert later[column].isna().all(), column
    b = weekly[weekly["participant_id"] == "b"]
    assert b["week"].tolist() == list(range(1, 13)) and b["running_minutes"].isna().all()
    assert weekly["participant_id"].tolist() == ["a"] * 16 + ["b"] * 12  # participant order


# ---- summaries for the report --------------------------------------------------------------


def test_running_volume_by_week_since_the_first_run():
    # a: first run on day 3 (study week 1), then 30, 60, 0 minutes in weeks 1-3 ... ;
    # b: first run on day 10 (study week 2): 40 then 50. Week since first run 1 = a's week 1
    # and b's week 2.
    weekly = pd.DataFrame({
        "participant_id": ["a", "a", "a", "b", "b"],
        "week": [1, 2, 3, 2, 3],
        "running_minutes": [30.0, 60.0, 0.0, 40.0, 50.0],
        "follow_up_days": [20, 20, 20, 20, 20],  # day 20: week 3 (days 14-20) is whole
        "arm": ["x", "x", "x", "y", "y"],
    })  # fmt: skip
    out = running_volume(weekly).set_index("week_since_first_run")
    # week 1: 30 and 40 -> median 35, Q1 = 30 + 0.25·10 = 32.5, Q3 37.5; week 2: 60 and 50;
    # week 3: only a (0 minutes)
    assert list(out["runners"]) == [2, 2, 1]
    assert list(out["median"]) == [35.0, 55.0, 0.0]
    assert (out.loc[1, "q1"], out.loc[1, "q3"]) == (32.5, 37.5)
    assert (out["group"] == "all").all()
    by_arm = running_volume(weekly, by="arm")
    assert list(by_arm["group"]) == ["x", "x", "x", "y", "y"]
    assert list(by_arm["week_since_first_run"]) == [1, 2, 3, 1, 2]
    # follow-up ending on day 19 leaves week 3 (days 14-20) part-observed: not summarised
    partial = running_volume(weekly.assign(follow_up_days=19))
    assert list(partial["week_since_first_run"]) == [1, 2]
    assert list(running_volume(weekly, weeks=1)["week_since_first_run"]) == [1]


def test_acwr_histogram_bins_and_shares():
    load = pd.DataFrame({
        "participant_id": ["a", "a", "a", "a", "b", "b"],
        "day": [30, 31, 32, 33, 40, 41],
        "minutes": [20.0, 20.0, 20.0, 20.0, 20.0, 20.0],
        # NaN: not defined, left out. 2.3 falls in [2.3, 2.4), not in [2.2, 2.3) through
        # floating point (2.3 / 0.1 = 22.999999999999996); 3.7 in the open last bin [3, inf)
        "acwr": [np.nan, 1.5, 0.95, 3.7, 2.3, 1.5],
        "arm": ["x", "x", "x", "x", "y", "y"],
    })  # fmt: skip
    out = acwr_histogram(load)
    assert len(out) == 31  # bins [0, 0.1) ... [2.9, 3.0) and [3.0, inf)
    days = out.set_index("bin_low")["days"]
    assert days[1.5] == 2 and days[1.4] == 0
    assert days[0.9] == 1 and days[2.3] == 1 and days[2.2] == 0 and days[3.0] == 1
    assert out["days"].sum() == 5  # the NaN day is not counted
    assert out["bin_high"].iloc[-1] == np.inf
    assert out.set_index("bin_low")["share"][1.5] == pytest.approx(2 / 5)
    assert (out["runners"] == 2).all()
    by_arm = acwr_histogram(load, by="arm")
    x = by_arm[by_arm["group"] == "x"].set_index("bin_low")
    # x: 1.5, 0.95 and 3.7 -> a third each; one runner
    assert x["share"][0.9] == pytest.approx(1 / 3) and (x["runners"] == 1).all()
    assert acwr_histogram(load.iloc[:1]).empty  # nothing defined: no rows
    # b stops running after day 40: its day 41 (ACWR 1.5) is after the last run, left out
    # unless asked for
    stopped = load.assign(minutes=[20.0, 20.0, 20.0, 20.0, 20.0, 0.0])
    assert acwr_histogram(stopped)["days"].sum() == 4
    assert acwr_histogram(stopped, through_last_run=False)["days"].sum() == 5
