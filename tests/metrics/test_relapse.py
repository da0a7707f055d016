"""rehabstats.metrics.relapse (docs/metrics.md §8): at-risk start, the three rules, rates, incidence.

Hand-built cohorts; each expected value is derived in the comment beside it. Enrolment is
2024-01-01 and the cut-off 2024-07-19 (day 200) unless stated. Default rules: pain_limit 4,
relapse_days 3, relapse_regression_stage 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows, morning_pain
from scipy.optimize import brentq

from rehabstats import AnalysisConfig
from rehabstats.metrics.relapse import (
    relapse_incidence,
    relapse_metrics,
    relapse_rate_ratio,
    relapse_rates,
    relapse_times,
)

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "r_reference.json"
CUTOFF = "2024-07-19"  # day 200


def _event(pid: str, day: int, event: str) -> dict:
    return {"participant_id": pid, "day": day, "event": event}


def _run(pid: str, day: int) -> dict:
    return _event(pid, day, "return_to_running")


def _s(pid: str, day: int, stage: int, **columns) -> dict:
    return {"participant_id": pid, "day": day, "stage": stage, **columns}


def _metrics(participants, *, config=None, data_cutoff=CUTOFF, **tables) -> pd.DataFrame:
    cohort = cohort_from_rows(participants, data_cutoff=data_cutoff, **tables)
    return relapse_metrics(cohort, config=config).set_index("participant_id")


def _ids(*names: str) -> list[dict]:
    return [{"participant_id": n} for n in names]


def test_at_risk_start_and_recorded_relapse():
    events = [
        _run("rec", 50), _event("rec", 60, "relapse"), _event("rec", 90, "relapse"),
        _event("sport", 40, "return_to_sport"), _run("sport", 45),
        _event("none", 60, "relapse"),  # a relapse without a return: not at risk
    ]  # fmt: skip
    out = _metrics(_ids("rec", "sport", "none"), events=events)
    # rec: at risk from 50; first relapse on 60 (the one on 90 is a second relapse): 10 days
    assert out.loc["rec", "at_risk_start_day"] == 50
    assert out.loc["rec", "relapsed"] == True  # noqa: E712
    assert out.loc["rec", "days_to_relapse"] == 10
    assert out.loc["rec", "relapse_source"] == "recorded"
    assert out.loc["rec", "person_weeks_at_risk"] == pytest.approx(10 / 7)
    # sport: the first of return_to_sport (40) and return_to_running (45); no relapse:
    # person-time to the cut-off, (200 - 40) / 7
    assert out.loc["sport", "at_risk_start_day"] == 40
    assert out.loc["sport", "relapsed"] == False  # noqa: E712
    assert pd.isna(out.loc["sport", "days_to_relapse"])
    assert pd.isna(out.loc["sport", "relapse_source"])
    assert out.loc["sport", "person_weeks_at_risk"] == pytest.approx(160 / 7)
    # none: never at risk: everything missing
    assert pd.isna(out.loc["none", "at_risk_start_day"]) and pd.isna(out.loc["none", "relapsed"])
    assert np.isnan(out.loc["none", "person_weeks_at_risk"])
    assert str(out["relapsed"].dtype) == "boolean"


def test_events_on_the_at_risk_start_day_do_not_count():
    events = [
        _run("a", 50), _event("a", 50, "relapse"), _event("a", 51, "relapse"),
    ]  # fmt: skip
    sessions = [_s("b", 50, 2), _s("b", 52, 2)]
    out = _metrics(_ids("a", "b"), events=events + [_run("b", 50)], sessions=sessions)
    # a: the relapse recorded on the return day is not after it; the next day's is: 1 day
    assert out.loc["a", "days_to_relapse"] == 1
    # b: a stage-2 session on the return day does not count; the one on day 52 does
    assert out.loc["b", "days_to_relapse"] == 2 and out.loc["b", "relapse_source"] == "regression"


def test_pain_rule_runs():
    def diary(pid, days, nrs=6):
        return morning_pain(pid, dict.fromkeys(days, nrs))

    pain = (
        diary("run", [55, 56, 57])  # three days > 4 from day 55: relapse on 55
        + diary("gap", [55, 56, 58, 59])  # day 57 missing breaks the run: 2 + 2 days
        + diary("low", [55, 56, 58, 59])
        + morning_pain("low", {57: 4})  # 4 is not > 4
        + diary("start", [49, 50, 51, 52])  # only 51, 52 are after the start: 2 days
        + diary("late", [49, 50, 51, 52, 53])  # 51, 52, 53 after the start: relapse on 51
        + diary("long", range(60, 70))  # ten days: the relapse is the run's first day, 60
        + diary("second", [55, 56])
        + diary("second", [70, 71, 72])  # 2 days, then 3: 70
    )
    people = ["run", "gap", "low", "start", "late", "long", "second"]
    out = _metrics(_ids(*people), events=[_run(p, 50) for p in people], pain=pain)
    relapsed = {"run": True, "gap": False, "low": False, "start": False, "late": True,
                "long": True, "second": True}  # fmt: skip
    assert out["relapsed"].astype(bool).to_dict() == relapsed
    assert out.loc["run", "days_to_relapse"] == 5  # day 55 - 50
    assert out.loc["late", "days_to_relapse"] == 1  # day 51 - 50
    assert out.loc["long", "days_to_relapse"] == 10
    assert out.loc["second", "days_to_relapse"] == 20
    assert (out.loc[out["relapsed"].astype(bool), "relapse_source"] == "pain").all()


def test_pain_rule_uses_the_daily_mean_and_the_configured_limit():
    # day 56 has two morning ratings, 6 and 2: mean 4, not > 4: the run 55-57 is broken
    pain = morning_pain("a", {55: 6, 56: 6, 57: 6}) + morning_pain("a", {56: 2})
    with pytest.warns(UserWarning):
        out = _metrics(_ids("a"), events=[_run("a", 50)], pain=pain)
    assert out.loc["a", "relapsed"] == False  # noqa: E712
    # with pain_limit 5 and relapse_days 2, mornings of 6 on 60, 61 are a relapse on 60
    pain = morning_pain("b", {60: 6, 61: 6, 62: 5})
    config = AnalysisConfig(pain_limit=5, relapse_days=2)
    out = _metrics(_ids("b"), events=[_run("b", 50)], pain=pain, config=config)
    assert out.loc["b", "days_to_relapse"] == 10


def test_pain_run_must_be_complete_by_obs_end():
    # withdrawn on day 56: mornings 55, 56 are observed, 57 is after obs_end: only 2 days
    people = [{"participant_id": "a", "withdrawn_on": "2024-02-26"}]
    pain = morning_pain("a", {55: 7, 56: 7, 57: 7})
    with pytest.warns(UserWarning, match="after the participant's withdrawn_on"):
        out = _metrics(people, events=[_run("a", 50)], pain=pain)
    assert out.loc["a", "relapsed"] == False  # noqa: E712
    assert out.loc["a", "person_weeks_at_risk"] == pytest.approx(6 / 7)  # 56 - 50


def test_regression_rule():
    sessions = [
        _s("s3", 60, 3),  # stage 3 > 2: not a relapse
        _s("s2", 60, 3), _s("s2", 70, 2, completed_sets=0),  # a scheduled stage 2, even missed
        _s("s1", 80, 1),
    ]  # fmt: skip
    out = _metrics(_ids("s3", "s2", "s1"), events=[_run(p, 50) for p in ("s3", "s2", "s1")],
                   sessions=sessions)  # fmt: skip
    assert out.loc["s3", "relapsed"] == False  # noqa: E712
    assert (
        out.loc["s2", "days_to_relapse"] == 20 and out.loc["s2", "relapse_source"] == "regression"
    )
    assert out.loc["s1", "days_to_relapse"] == 30
    config = AnalysisConfig(relapse_regression_stage=1)
    out = _metrics(_ids("s2"), events=[_run("s2", 50)], sessions=sessions[1:3], config=config)
    assert out.loc["s2", "relapsed"] == False  # noqa: E712  stage 2 > 1


def test_rule_precedence_on_the_same_day():
    pain_run = {60: 8, 61: 8, 62: 8}
    events = [_run(p, 50) for p in ("all3", "pain_reg", "pain_first")] + [
        _event("all3", 60, "relapse"),
    ]
    pain = (
        morning_pain("all3", pain_run)
        + morning_pain("pain_reg", pain_run)
        + morning_pain("pain_first", {59: 8, 60: 8, 61: 8})
    )
    sessions = [_s("all3", 60, 2), _s("pain_reg", 60, 1), _s("pain_first", 60, 1)]
    out = _metrics(_ids("all3", "pain_reg", "pain_first"), events=events, pain=pain,
                   sessions=sessions)  # fmt: skip
    # all three rules on day 60: recorded > pain > regression
    assert out.loc["all3", "relapse_source"] == "recorded"
    # pain and regression on day 60: pain
    assert out.loc["pain_reg", "relapse_source"] == "pain"
    # a pain run starting on 59 beats the regression on 60: the earliest wins
    assert out.loc["pain_first", "relapse_source"] == "pain"
    assert out.loc["pain_first", "days_to_relapse"] == 9


def test_relapse_rules_subset():
    events = [_run("a", 50), _event("a", 55, "relapse")]
    pain = morning_pain("a", {60: 8, 61: 8, 62: 8})
    sessions = [_s("a", 70, 2)]
    kw = {"events": events, "pain": pain, "sessions": sessions}
    # all rules: recorded on 55; without it: pain on 60; only regression: 70; only recorded: 55
    expected = {
        ("recorded", "pain", "regression"): ("recorded", 5),
        ("pain", "regression"): ("pain", 10),
        ("regression",): ("regression", 20),
        ("pain",): ("pain", 10),
    }
    for rules, (source, days) in expected.items():
        out = _metrics(_ids("a"), config=AnalysisConfig(relapse_rules=rules), **kw)
        assert (out.loc["a", "relapse_source"], out.loc["a", "days_to_relapse"]) == (source, days)
    out = _metrics(
        _ids("a"), config=AnalysisConfig(relapse_rules=("recorded",)), events=[_run("a", 50)]
    )
    assert out.loc["a", "relapsed"] == False  # noqa: E712


def test_withdrawal_and_data_after_obs_end():
    people = [
        {"participant_id": "w", "withdrawn_on": "2024-03-21"},  # withdrawn on day 80
        {"participant_id": "wday", "withdrawn_on": "2024-03-21"},
        {"participant_id": "late", "withdrawn_on": "2024-03-21"},
    ]
    events = [
        _run("w", 50), _event("w", 90, "relapse"),  # relapse after withdrawal: not seen
        _run("wday", 50), _event("wday", 80, "relapse"),  # relapse on the withdrawal day counts
        _run("late", 85),  # return after withdrawal: never at risk
    ]  # fmt: skip
    with pytest.warns(UserWarning, match="after the participant's withdrawn_on"):
        out = _metrics(people, events=events)
    assert out.loc["w", "relapsed"] == False  # noqa: E712
    assert out.loc["w", "person_weeks_at_risk"] == pytest.approx(30 / 7)  # 80 - 50
    assert out.loc["wday", "days_to_relapse"] == 30
    assert pd.isna(out.loc["late", "at_risk_start_day"])


def test_relapse_metrics_columns():
    out = relapse_metrics(cohort_from_rows(_ids("b", "a"), data_cutoff=CUTOFF))
    assert out["participant_id"].tolist() == ["b", "a"]
    assert out.columns.tolist() == [
        "participant_id", "at_risk_start_day", "relapsed", "days_to_relapse", "relapse_source",
        "person_weeks_at_risk",
    ]  # fmt: skip


# ---- rates ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def r_ref() -> dict:
    return json.loads(REFERENCE.read_text())


def test_relapse_rate_matches_r_poisson_test(r_ref):
    # cut-off 2024-12-31 = day 365. At risk from day 10:
    #   r1, r2 relapse on day 210 (200 days each), r3 on day 160 (150 days),
    #   c censored by the cut-off 150 days after its start (enrolled 2024-07-24, start day 10,
    #   follow-up 160 days), and x is never at risk.
    # person-time = 200 + 200 + 150 + 150 = 700 days = 100 person-weeks, 3 relapses:
    # R poisson.test(3, 100), per 1000 person-weeks
    ref = next(c for c in r_ref["poisson_exact"] if c["call"] == "poisson.test(3, 100)")
    people = _ids("r1", "r2", "r3", "x") + [{"participant_id": "c", "enrolled_on": "2024-07-24"}]
    events = [_run(p, 10) for p in ("r1", "r2", "r3", "c")] + [
        _event("r1", 210, "relapse"), _event("r2", 210, "relapse"), _event("r3", 160, "relapse"),
    ]  # fmt: skip
    cohort = cohort_from_rows(people, events=events, data_cutoff="2024-12-31")
    out = relapse_rates(cohort)
    assert out.columns.tolist() == [
        "group", "n_at_risk", "relapses", "person_weeks", "rate_per_1000_pw", "ci_low", "ci_high",
    ]  # fmt: skip
    row = out.iloc[0]
    assert (row["group"], row["n_at_risk"], row["relapses"]) == ("all", 4, 3)
    assert row["person_weeks"] == pytest.approx(100)
    assert row["rate_per_1000_pw"] == pytest.approx(ref["rate"] * 1000, abs=1e-8)
    assert row["ci_low"] == pytest.approx(ref["lower"] * 1000, abs=1e-8)
    assert row["ci_high"] == pytest.approx(ref["upper"] * 1000, abs=1e-8)


def test_relapse_rates_by_group_including_nobody_at_risk():
    people = [{"participant_id": "a"}, {"participant_id": "b", "arm": "hsr"}]
    events = [_run("a", 60)]  # a: at risk 60..200 = 20 weeks, no relapse
    out = relapse_rates(
        cohort_from_rows(people, events=events, data_cutoff=CUTOFF), by="arm"
    ).set_index("group")
    assert out.index.tolist() == ["hsr", "staged"]
    assert out.loc["staged", "person_weeks"] == pytest.approx(20)
    # 0 relapses: rate 0, lower limit 0, upper -log(0.025) / 20 * 1000 (chi2 2 df / 2)
    assert out.loc["staged", "rate_per_1000_pw"] == 0 and out.loc["staged", "ci_low"] == 0
    assert out.loc["staged", "ci_high"] == pytest.approx(-np.log(0.025) / 20 * 1000)
    # hsr: nobody at risk, no person-time: NaN rate
    assert out.loc["hsr", "n_at_risk"] == 0 and np.isnan(out.loc["hsr", "rate_per_1000_pw"])


def test_relapse_rate_ratio_stopped_early_vs_completers():
    # All followed to day 200 (>= 83). Stopped early (last completed session < day 70):
    #   s1: at risk 60..200, relapse on day 130 (70 days); s2: at risk 130..200 (70 days),
    #   relapse on day 200 -> 140 days, 2 relapses = 20 person-weeks
    # Completers (last completed session day 80): c1 at risk from 60, relapse on 130
    #   (70 days); c2 and c3 at risk 60..200 without relapse (140 days each):
    #   70 + 140 + 140 = 350 days = 50 person-weeks, 1 relapse
    # Not at risk (no return): n is excluded from both groups.
    people = _ids("s1", "s2", "c1", "c2", "c3", "n")
    sessions = (
        [_s(p, 0, 3) for p in ("s1", "s2", "c1", "c2", "c3", "n")]
        + [_s(p, 80, 3) for p in ("c1", "c2", "c3")]
    )  # fmt: skip
    events = [
        _run("s1", 60), _event("s1", 130, "relapse"),
        _run("s2", 130), _event("s2", 200, "relapse"),
        _run("c1", 60), _event("c1", 130, "relapse"),
        _run("c2", 60), _run("c3", 60),
    ]  # fmt: skip
    cohort = cohort_from_rows(people, events=events, sessions=sessions, data_cutoff=CUTOFF)
    out = relapse_rate_ratio(cohort).iloc[0]
    assert (out["n_stopped_early"], out["relapses_stopped_early"]) == (2, 2)
    assert (out["n_completers"], out["relapses_completers"]) == (3, 1)
    assert out["person_weeks_stopped_early"] == pytest.approx(20)
    assert out["person_weeks_completers"] == pytest.approx(50)
    assert out["rate_per_1000_pw_stopped_early"] == pytest.approx(100)  # 2 / 20 * 1000
    assert out["rate_per_1000_pw_completers"] == pytest.approx(20)  # 1 / 50 * 1000
    assert out["rate_ratio"] == pytest.approx(5)  # (2 / 20) / (1 / 50)
    # exact conditional test: x1 = 2 of n = 3 relapses, binomial with p0 = 20 / 70 = 2/7
    # P(X = k) for k = 0..3: (5/7)^3, 3 (2/7)(5/7)^2, 3 (2/7)^2 (5/7), (2/7)^3
    # = 125, 150, 60, 8 (/343); two-sided: P(X=k) <= P(X=2) = 60/343: k = 2, 3 -> 68/343
    assert out["p_value"] == pytest.approx(68 / 343, abs=1e-12)
    # Clopper-Pearson limits for p = x1 / n = 2/3, mapped by p / (1 - p) * T2 / T1 = * 50/20:
    # upper: Beta(3, 1) quantile 0.975 = 0.975^(1/3); lower: Beta(2, 2) quantile 0.025,
    # the root of 3x^2 - 2x^3 = 0.025
    upper_p = 0.975 ** (1 / 3)
    lower_p = brentq(lambda x: 3 * x**2 - 2 * x**3 - 0.025, 0, 1, xtol=1e-15)
    assert out["ci_high"] == pytest.approx(upper_p / (1 - upper_p) * 2.5, rel=1e-9)
    assert out["ci_low"] == pytest.approx(lower_p / (1 - lower_p) * 2.5, rel=1e-9)


def test_relapse_rate_ratio_needs_only_when_loading_stopped(monkeypatch):
    # stopped_early is all the ratio needs of the stage family: no checkpoint assessment
    from rehabstats.metrics import stages

    def no_checkpoints(*args, **kwargs):
        raise AssertionError("relapse_rate_ratio computed the whole stage_metrics")

    monkeypatch.setattr(stages, "checkpoint_attempts", no_checkpoints)
    # a stops loading at day 10 (< 70) with follow-up 181: stopped early, at risk from day 20,
    # relapse on day 27 -> 1 relapse in 1 person-week
    cohort = cohort_from_rows(
        _ids("a"),
        events=[_run("a", 20), _event("a", 27, "relapse")],
        sessions=[_s("a", 0, 1), _s("a", 10, 1)],
        data_cutoff=CUTOFF,
    )
    out = relapse_rate_ratio(cohort).iloc[0]
    assert (out["n_stopped_early"], out["relapses_stopped_early"]) == (1, 1)
    assert out["person_weeks_stopped_early"] == pytest.approx(1)


def test_relapse_times_is_the_table_behind_relapse_metrics():
    # a: return on day 20, relapse recorded on day 27 (7 days later); b: never returns
    cohort = cohort_from_rows(
        _ids("a", "b"), events=[_run("a", 20), _event("a", 27, "relapse")], data_cutoff=CUTOFF
    )
    times = relapse_times(cohort)
    assert times["participant_id"].tolist() == ["a"]  # only participants at risk
    row = times.iloc[0]
    assert (row["start_day"], row["event_day"], row["time"]) == (20, 27, 7)
    assert row["event"] and row["event_source"] == "recorded" and not row["competing"]
    metrics = relapse_metrics(cohort).set_index("participant_id")
    assert metrics.loc["a", "days_to_relapse"] == 7 and pd.isna(metrics.loc["b", "relapsed"])


def test_relapse_rate_ratio_excludes_unknown_stopped_early():
    # follow-up 60 days < 83: stopped_early NA: in neither group; no relapse at all: NaN ratio
    cohort = cohort_from_rows(
        _ids("a"), events=[_run("a", 10)], sessions=[_s("a", 0, 1)], data_cutoff="2024-03-01"
    )
    out = relapse_rate_ratio(cohort).iloc[0]
    assert out["n_stopped_early"] == 0 and out["n_completers"] == 0
    assert np.isnan(out["rate_ratio"]) and np.isnan(out["p_value"])


# ---- cumulative incidence ---------------------------------------------------------------------


def test_relapse_incidence_through_the_pipeline_matches_r_cmprsk(r_ref):
    # cmprsk's data as a cohort: everyone returns to running on day 10; time = ftime days later
    # status 1: a recorded relapse then; 2: withdrawal then (competing); 0: the data cut-off
    # then (enrolled so that the cut-off falls on day 10 + ftime). Weeks 2, 4, 8, 12 = the
    # reference times 14, 28, 56, 84 days.
    ref = r_ref["cuminc"]
    cutoff = pd.Timestamp("2025-01-01")
    people, events = [], []
    for i, (ftime, status) in enumerate(zip(ref["ftime"], ref["fstatus"], strict=True)):
        pid = f"C{i:02d}"
        end = 10 + ftime
        enrolled = cutoff - pd.Timedelta(days=end if status == 0 else 400)
        person = {"participant_id": pid, "enrolled_on": enrolled.strftime("%Y-%m-%d")}
        if status == 2:
            person["withdrawn_on"] = (enrolled + pd.Timedelta(days=end)).strftime("%Y-%m-%d")
        people.append(person)
        events.append(_run(pid, 10))
        if status == 1:
            events.append(_event(pid, end, "relapse"))
    cohort = cohort_from_rows(people, events=events, data_cutoff="2025-01-01")
    config = AnalysisConfig(incidence_weeks=(2, 4, 8, 12))
    out = relapse_incidence(cohort, config=config)
    assert out["week"].tolist() == [2, 4, 8, 12] and (out["group"] == "all").all()
    np.testing.assert_allclose(out["cumulative_incidence"], ref["cif_event1"], rtol=0, atol=1e-10)


def test_relapse_incidence_hand_case():
    # at risk from day 0 (return on enrolment day):
    #   a relapses on day 7 (time 7), b withdraws on day 14 (competing), c relapses on day 21,
    #   d is censored by the cut-off on day 200.
    # AJ: t=7: 4 at risk, F = 1/4, S = 3/4; t=14: competing, S = 3/4 * 2/3 = 1/2;
    #     t=21: 2 at risk, F = 1/4 + 1/2 * 1/2 = 1/2
    # weeks 1, 2, 3: 1/4, 1/4, 1/2; week 30 (210 days) is beyond every follow-up: NaN
    people = _ids("a", "c", "d") + [{"participant_id": "b", "withdrawn_on": "2024-01-15"}]
    events = [_run(p, 0) for p in "abcd"] + [
        _event("a", 7, "relapse"), _event("c", 21, "relapse"),
    ]  # fmt: skip
    cohort = cohort_from_rows(people, events=events, data_cutoff=CUTOFF)
    out = relapse_incidence(cohort, config=AnalysisConfig(incidence_weeks=(1, 2, 3, 30)))
    np.testing.assert_allclose(out["cumulative_incidence"][:3], [0.25, 0.25, 0.5], atol=1e-15)
    assert np.isnan(out["cumulative_incidence"].iloc[3])
    # by group: a group with nobody at risk gives NaN; sorted groups, every week
    people[1]["arm"] = "hsr"
    cohort = cohort_from_rows(people + _ids("z"), events=events, data_cutoff=CUTOFF)
    out = relapse_incidence(cohort, by="arm", config=AnalysisConfig(incidence_weeks=(1, 2)))
    assert out["group"].tolist() == ["hsr", "hsr", "staged", "staged"]
    # hsr: only c, relapsing at 21: 0 at weeks 1 and 2
    assert out["cumulative_incidence"].tolist()[:2] == [0, 0]


def test_nobody_analysed_gives_empty_tables():
    cohort = cohort_from_rows(
        [{"participant_id": "a", "enrolled_on": "2024-05-01"}], data_cutoff="2024-04-01"
    )
    for f in (relapse_metrics, relapse_rates, relapse_incidence):
        with pytest.warns(UserWarning, match="enrolled after the data cut-off"):
            assert f(cohort).empty
