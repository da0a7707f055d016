"""rehabstats.metrics.stages (docs/metrics.md §7): stage metrics, time to stage, occupancy.

Hand-built cohorts; each expected value is derived in the comment beside it. Enrolment is
2024-01-01 unless stated, so ``day`` d is 2024-01-01 + d days.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import AnalysisConfig
from rehabstats.metrics.stages import (
    OCCUPANCY_STATES,
    stage_metrics,
    stage_occupancy,
    stopped_loading,
    time_to_stage,
    time_to_stage_summary,
)

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "r_reference.json"
CUTOFF = "2024-06-30"  # day 181


def _metrics(participants, *, data_cutoff=CUTOFF, config=None, **tables) -> pd.DataFrame:
    cohort = cohort_from_rows(participants, data_cutoff=data_cutoff, **tables)
    return stage_metrics(cohort, config=config).set_index("participant_id")


def _s(pid: str, day: int, stage: int, **columns) -> dict:
    return {"participant_id": pid, "day": day, "stage": stage, **columns}


def _ids(*names: str) -> list[dict]:
    return [{"participant_id": n} for n in names]


def test_progression_entry_days_and_time_in_stage():
    sessions = [_s("a", 0, 1), _s("a", 7, 2), _s("a", 14, 3), _s("a", 21, 2), _s("a", 28, 4)]
    out = _metrics(_ids("a"), sessions=sessions)
    row = out.loc["a"]
    # first session with stage >= 2 / 3 / 4: days 7, 14, 28
    assert (row["days_to_stage_2"], row["days_to_stage_3"], row["days_to_stage_4"]) == (7, 14, 28)
    assert row["reached_stage_2"] and row["reached_stage_3"] and row["reached_stage_4"]
    # time in stage 1 = 7 - 0 (first session), stage 2 = 14 - 7, stage 3 = 28 - 14
    assert (row["time_in_stage_1"], row["time_in_stage_2"], row["time_in_stage_3"]) == (7, 7, 14)
    assert row["highest_stage"] == 4
    assert row["regressions"] == 1  # 3 -> 2 on day 21


def test_skipped_and_direct_start_stages():
    sessions = [
        _s("skip", 0, 1), _s("skip", 10, 3),  # 1 -> 3: stage 2 reached with stage 3, day 10
        _s("direct", 3, 2), _s("direct", 9, 2),  # starts in stage 2 on day 3
    ]  # fmt: skip
    out = _metrics(_ids("skip", "direct"), sessions=sessions)
    assert out.loc["skip", "days_to_stage_2"] == 10 and out.loc["skip", "days_to_stage_3"] == 10
    assert out.loc["skip", "time_in_stage_1"] == 10  # 10 - 0
    assert out.loc["skip", "time_in_stage_2"] == 0  # 10 - 10
    assert pd.isna(out.loc["skip", "time_in_stage_3"])  # stage 4 not reached
    # days_to_stage_1 = first session (day 3) = days_to_stage_2: time in stage 1 is 0
    assert out.loc["direct", "days_to_stage_2"] == 3 and out.loc["direct", "time_in_stage_1"] == 0
    assert not out.loc["direct", "reached_stage_3"]
    assert pd.isna(out.loc["direct", "days_to_stage_3"])
    assert pd.isna(out.loc["direct", "time_in_stage_2"])


def test_regressions_same_day_and_source_order():
    sessions = [
        # same day, listed 3 then 2: the later row is the later session: one regression
        _s("same", 0, 1), _s("same", 5, 3), _s("same", 5, 2),
        # same day listed 2 then 3: no drop
        _s("rise", 0, 1), _s("rise", 5, 2), _s("rise", 5, 3),
        # rows out of date order: by day it is 2 (day 0) then 1 (day 10): one regression
        _s("order", 10, 1), _s("order", 0, 2),
        # 4 -> 2 -> 1 -> 3 -> 2: three drops
        _s("many", 0, 4), _s("many", 1, 2), _s("many", 2, 1), _s("many", 3, 3), _s("many", 4, 2),
    ]  # fmt: skip
    out = _metrics(_ids("same", "rise", "order", "many"), sessions=sessions)
    assert out["regressions"].to_dict() == {"same": 1, "rise": 0, "order": 1, "many": 3}
    assert out.loc["order", "days_to_stage_2"] == 0


def test_missed_sessions_count_for_stages_not_for_last_session_day():
    sessions = [
        _s("a", 0, 1),
        _s("a", 20, 1, completed_sets=0),
        _s("a", 50, 2, completed_sets=0),  # missed, but scheduled: stage 2 entered day 50
    ]
    out = _metrics(_ids("a"), sessions=sessions)
    assert out.loc["a", "days_to_stage_2"] == 50
    assert out.loc["a", "last_session_day"] == 0  # last *completed* session


def test_sessions_after_obs_end_are_excluded():
    people = [
        {"participant_id": "w", "withdrawn_on": "2024-01-21"},  # withdrawn on day 20
        {"participant_id": "c"},
    ]
    sessions = [
        _s("w", 0, 1), _s("w", 20, 2), _s("w", 30, 4), _s("w", 31, 1),
        _s("c", 0, 1), _s("c", 40, 3),  # day 40 is after the cut-off (day 30)
    ]  # fmt: skip
    with pytest.warns(UserWarning, match="after the participant's withdrawn_on"):
        out = _metrics(people, sessions=sessions, data_cutoff="2024-01-31")
    # w: the stage-2 session on the withdrawal day counts; day 30/31 sessions do not
    assert out.loc["w", "days_to_stage_2"] == 20 and not out.loc["w", "reached_stage_4"]
    assert out.loc["w", "highest_stage"] == 2 and out.loc["w", "regressions"] == 0
    assert out.loc["w", "last_session_day"] == 20
    assert out.loc["c", "highest_stage"] == 1 and not out.loc["c", "reached_stage_3"]


def test_no_sessions():
    out = _metrics(_ids("none"), sessions=[])
    row = out.loc["none"]
    assert pd.isna(row["highest_stage"]) and pd.isna(row["last_session_day"])
    assert not row["reached_stage_2"] and row["regressions"] == 0
    # follow-up 181 >= 83 and no completed session at all: stopped early
    assert row["stopped_early"] is True or row["stopped_early"] == True  # noqa: E712


def test_stopped_early():
    people = [
        {"participant_id": "p69"},
        {"participant_id": "p70"},
        {"participant_id": "fu82", "enrolled_on": "2024-04-09"},  # 2024-06-30 - 82 days
        {"participant_id": "fu83", "enrolled_on": "2024-04-08"},  # 2024-06-30 - 83 days
    ]
    sessions = (
        sessions_on("p69", [0, 69])  # last completed day 69 < 70: stopped early
        + sessions_on("p70", [0, 70])  # day 70 is not < 70: not stopped early
        + sessions_on("fu82", [0, 10])  # follow-up 82 < 83: NA
        + sessions_on("fu83", [0, 10])  # follow-up 83: defined, 10 < 70: True
        + [_s("p70", 75, 1, completed_sets=0)]  # missed session: does not move the last day
    )
    out = _metrics(people, sessions=sessions)
    assert out.loc["p69", "stopped_early"] == True  # noqa: E712
    assert out.loc["p70", "stopped_early"] == False  # noqa: E712
    assert out.loc["p70", "last_session_day"] == 70
    assert pd.isna(out.loc["fu82", "stopped_early"])
    assert out.loc["fu83", "stopped_early"] == True  # noqa: E712
    assert str(out["stopped_early"].dtype) == "boolean"


def test_stopped_loading_alone():
    # the p69, p70 and fu82 cases of test_stopped_early, without the rest of stage_metrics
    people = [{"participant_id": "p69"}, {"participant_id": "p70"},
              {"participant_id": "fu82", "enrolled_on": "2024-04-09"}]  # fmt: skip
    sessions = sessions_on("p69", [0, 69]) + sessions_on("p70", [0, 70]) + sessions_on("fu82", [0])
    cohort = cohort_from_rows(people, sessions=sessions, data_cutoff=CUTOFF)
    out = stopped_loading(cohort).set_index("participant_id")
    assert out.columns.tolist() == ["last_session_day", "stopped_early"]
    assert out["last_session_day"].tolist() == [69, 70, 0]
    # 69 < 70: stopped early; 70: not; fu82: follow-up 82 < 83: NA
    assert out["stopped_early"].tolist()[:2] == [True, False]
    assert pd.isna(out.loc["fu82", "stopped_early"])
    pd.testing.assert_frame_equal(
        out, stage_metrics(cohort).set_index("participant_id")[out.columns.tolist()]
    )


def _hold(pid: str, day: int, **columns) -> dict:
    return {
        "participant_id": pid,
        "day": day,
        "test": "sl_isometric_hold",
        "value": 30,
        "external_load_kg": 40,
        "pain_nrs": 0,
        **columns,
    }


def test_checkpoint_passed_and_progressed_without_checkpoint():
    sessions = [_s(p, 0, 1) for p in ("same", "after", "never", "no4", "before")] + [
        _s("same", 40, 4), _s("after", 40, 4), _s("never", 40, 4), _s("before", 40, 4),
    ]  # fmt: skip
    tests = [
        _hold("same", 40),  # passed on the day of stage-4 entry: counts as before it
        _hold("after", 41),  # passed only after entering stage 4
        _hold("never", 30, pain_nrs=5),  # failed attempt only
        _hold("no4", 30),  # passed, never reached stage 4
        _hold("before", 10),
        _hold("before", 50, pain_nrs=5),
    ]
    out = _metrics(
        _ids("same", "after", "never", "no4", "before"), sessions=sessions, function_tests=tests
    )
    assert out["checkpoint_passed"].to_dict() == {
        "same": True, "after": True, "never": False, "no4": True, "before": True,
    }  # fmt: skip
    assert out["progressed_without_checkpoint"].to_dict() == {
        "same": False, "after": True, "never": True, "no4": False, "before": False,
    }  # fmt: skip


def test_insertional_step_deviation():
    people = [
        {"participant_id": "ins_step", "tendinopathy_type": "insertional"},
        {"participant_id": "ins_flat", "tendinopathy_type": "insertional"},
        {"participant_id": "ins_s3", "tendinopathy_type": "insertional"},
        {"participant_id": "ins_late", "tendinopathy_type": "insertional"},
        {"participant_id": "mid_step", "tendinopathy_type": "midportion"},
    ]
    sessions = [
        _s("ins_step", 5, 2, surface="step"),  # insertional, stage 2 off a step: deviation
        _s("ins_flat", 5, 2, surface="flat"),  # flat ground: fine
        _s("ins_s3", 5, 3, surface="step"),  # a stage-3 session on a step: not the rule
        _s("ins_late", 5, 2, surface="flat"),
        _s("ins_late", 200, 2, surface="step"),  # after the cut-off (day 181): excluded
        _s("mid_step", 5, 2, surface="step"),  # midportion does its eccentrics off a step
    ]
    out = _metrics(people, sessions=sessions)
    assert out["insertional_step_deviation"].to_dict() == {
        "ins_step": True, "ins_flat": False, "ins_s3": False, "ins_late": False,
        "mid_step": False,
    }  # fmt: skip


def test_stage_metrics_columns_and_order():
    out = stage_metrics(cohort_from_rows(_ids("b", "a"), sessions=sessions_on("a", [0])))
    assert out["participant_id"].tolist() == ["b", "a"]  # participants' order
    assert out.columns.tolist() == [
        "participant_id", "highest_stage", "reached_stage_2", "reached_stage_3",
        "reached_stage_4", "days_to_stage_2", "days_to_stage_3", "days_to_stage_4",
        "time_in_stage_1", "time_in_stage_2", "time_in_stage_3", "regressions",
        "checkpoint_passed", "progressed_without_checkpoint", "insertional_step_deviation",
        "last_session_day", "stopped_early",
    ]  # fmt: skip


# ---- time to stage ----------------------------------------------------------------------------


def _km_cohort():
    # stage 2 on days 5 and 10; two never reach it, followed 7 and 20 days (enrolled so that
    # the cut-off 2024-06-30 falls on day 7 / 20)
    people = [
        {"participant_id": "e5"},
        {"participant_id": "e10"},
        {"participant_id": "c7", "enrolled_on": "2024-06-23", "arm": "hsr"},
        {"participant_id": "c20", "enrolled_on": "2024-06-10", "arm": "hsr"},
    ]
    sessions = [_s("e5", 0, 1), _s("e5", 5, 2), _s("e10", 10, 3), _s("c7", 0, 1), _s("c20", 0, 1)]
    return cohort_from_rows(people, sessions=sessions, data_cutoff=CUTOFF)


def test_time_to_stage_hand_case():
    out = time_to_stage(_km_cohort())
    s2 = out[out["stage"] == 2]
    # t=5: 4 at risk, 1 event, S = 3/4; t=10: 2 at risk (7 censored), S = 3/4 * 1/2 = 3/8
    assert s2["time_days"].tolist() == [5, 10]
    assert s2["at_risk"].tolist() == [4, 2] and s2["events"].tolist() == [1, 1]
    assert s2["censored"].tolist() == [0, 1]
    np.testing.assert_allclose(s2["survival"], [0.75, 0.375])
    assert (s2["group"] == "all").all()
    # stage 3: only e10 (day 10, via its stage-3 session); e5 is censored at day 181
    s3 = out[out["stage"] == 3]
    assert s3["time_days"].tolist() == [10] and s3["at_risk"].tolist() == [3]
    assert out[out["stage"] == 4].empty  # nobody reached stage 4: no event time
    assert out.columns.tolist() == [
        "stage", "group", "time_days", "at_risk", "events", "censored", "survival",
        "ci_low", "ci_high",
    ]  # fmt: skip


def test_time_to_stage_summary_hand_case():
    out = time_to_stage_summary(_km_cohort()).set_index("stage")
    assert out.loc[2, "n"] == 4 and out.loc[2, "events"] == 2
    assert out.loc[2, "median_days"] == 10  # first time S <= 0.5
    # stage 2: the largest observed time is 20 (c20) < 83 and S there is 3/8 > 0: S(83) is
    # not estimated (nobody is followed that long), so reached_by_week_12 is NaN
    assert np.isnan(out.loc[2, "reached_by_week_12"])
    # stage 3: e10 enters on day 10 with 3 at risk (e5 censored at 181, e10, c20; c7 left at
    # 7): S(10) = 2/3; e5 is followed to 181 >= 83, so S(83) = 2/3 and 1/3 reached it
    assert out.loc[3, "events"] == 1
    assert out.loc[3, "reached_by_week_12"] == pytest.approx(1 / 3)
    # its interval is 1 minus S(83)'s limits, swapped. R: summary(survfit(Surv(c(181, 10, 20,
    # 7), c(0, 1, 0, 0)) ~ 1), times = 83) gives surv 2/3, lower 0.299507130359022, upper 1
    # (the log band, capped at 1): 1 - 1 = 0 and 1 - 0.299507130359022
    assert out.loc[3, "reached_by_week_12_ci_low"] == pytest.approx(0.0, abs=1e-12)
    assert out.loc[3, "reached_by_week_12_ci_high"] == pytest.approx(1 - 0.299507130359022)
    # stage 2: not estimated at 83, so neither are its limits
    assert np.isnan(out.loc[2, ["reached_by_week_12_ci_low", "reached_by_week_12_ci_high"]]
                    .astype(float)).all()  # fmt: skip
    # stage 4: no event: median not reached, nobody reached it by day 83 (S = 1 with limits
    # 1 and 1, as R reports S before the first event)
    assert np.isnan(out.loc[4, "median_days"]) and out.loc[4, "reached_by_week_12"] == 0
    assert out.loc[4, "reached_by_week_12_ci_low"] == 0
    assert out.loc[4, "reached_by_week_12_ci_high"] == 0


def test_reached_by_week_12_interval_follows_the_transform_and_level():
    from rehabstats.config import AnalysisConfig

    config = AnalysisConfig(km_ci_transform="log-log", confidence_level=0.9)
    out = time_to_stage_summary(_km_cohort(), config=config).set_index("stage")
    # R: summary(survfit(Surv(c(181, 10, 20, 7), c(0, 1, 0, 0)) ~ 1, conf.type = "log-log",
    # conf.int = 0.9), times = 83): lower 0.119521324634113, upper 0.925526458642097
    assert out.loc[3, "reached_by_week_12_ci_low"] == pytest.approx(1 - 0.925526458642097)
    assert out.loc[3, "reached_by_week_12_ci_high"] == pytest.approx(1 - 0.119521324634113)


def test_time_to_stage_by_group():
    out = time_to_stage_summary(_km_cohort(), by="arm")
    out = out[out["stage"] == 2].set_index("group")
    # staged: e5 (day 5) and e10 (day 10) reach stage 2: S = 1/2 exactly from day 5 to 10,
    # so the median is the midpoint of that flat stretch, (5 + 10) / 2 (R's rule)
    assert out.loc["staged", "events"] == 2 and out.loc["staged", "median_days"] == 7.5
    # hsr: follow-up ends on day 20 < 83 with S = 1: not estimated at 83
    assert out.loc["hsr", "events"] == 0 and np.isnan(out.loc["hsr", "reached_by_week_12"])
    assert out.index.tolist() == ["hsr", "staged"]  # sorted


@pytest.fixture(scope="module")
def r_ref() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def lung_cohort(r_ref):
    """survival::lung as a cohort: events are stage-2 entries on day `time`; censored
    participants are followed exactly `time` days (enrolled `time` days before the cut-off)."""
    cutoff = pd.Timestamp("2026-01-01")
    people, sessions = [], []
    data = r_ref["lung_data"]
    for i, (time, event) in enumerate(zip(data["time"], data["event"], strict=True)):
        pid = f"L{i:03d}"
        follow_up = 1100 if event else time
        enrolled = (cutoff - pd.Timedelta(days=follow_up)).strftime("%Y-%m-%d")
        people.append({"participant_id": pid, "enrolled_on": enrolled})
        sessions.append(_s(pid, 0, 1))
        if event:
            sessions.append(_s(pid, time, 2))
    return cohort_from_rows(people, sessions=sessions, data_cutoff="2026-01-01")


@pytest.mark.parametrize(
    ("block", "transform"), [("km_lung_log", "log"), ("km_lung_loglog", "log-log")]
)
def test_time_to_stage_through_the_pipeline_matches_r(r_ref, lung_cohort, block, transform):
    ref = r_ref[block]
    config = AnalysisConfig(km_ci_transform=transform)
    km = time_to_stage(lung_cohort, config=config)
    km = km[km["stage"] == 2]
    np.testing.assert_array_equal(km["time_days"], ref["time"])
    np.testing.assert_array_equal(km["at_risk"], ref["n_risk"])
    np.testing.assert_array_equal(km["events"], ref["n_event"])
    np.testing.assert_array_equal(km["censored"], ref["n_censor"])
    for ours, theirs in (("survival", "surv"), ("ci_low", "lower"), ("ci_high", "upper")):
        np.testing.assert_allclose(km[ours], ref[theirs], rtol=0, atol=1e-10)
    summary = time_to_stage_summary(lung_cohort, config=config).set_index("stage")
    assert summary.loc[2, "n"] == 228 and summary.loc[2, "events"] == 165
    got = summary.loc[2, ["median_days", "median_ci_low", "median_ci_high"]].tolist()
    assert got == pytest.approx([ref["median"], ref["median_lower"], ref["median_upper"]])


# ---- occupancy --------------------------------------------------------------------------------


def _occupancy_cohort():
    # cut-off 2024-03-01 = day 60 for the default enrolment; window of 2 weeks: days 6 and 13
    people = [
        {"participant_id": "a"},
        {"participant_id": "b", "arm": "hsr"},
        {"participant_id": "c", "withdrawn_on": "2024-01-07"},  # withdrawn on day 6
        {"participant_id": "d", "enrolled_on": "2024-02-20"},  # follow-up 10 days
        {"participant_id": "e", "enrolled_on": "2024-02-17", "arm": "hsr"},  # follow-up 13
        {"participant_id": "f", "withdrawn_on": "2024-01-08"},  # withdrawn on day 7
    ]
    sessions = [
        _s("a", 0, 1), _s("a", 8, 2),
        _s("b", 7, 1),
        _s("c", 0, 2),
        _s("d", 0, 3),
        _s("e", 2, 4),
        _s("f", 0, 1),
    ]  # fmt: skip
    return cohort_from_rows(people, sessions=sessions, data_cutoff="2024-03-01")


def test_stage_occupancy_withdrawal_and_censoring():
    config = AnalysisConfig(window_weeks=2)
    out = stage_occupancy(_occupancy_cohort(), config=config)
    n = out.set_index(["week", "state"])["n"]
    # week 1 (day 6): a stage_1, b not_started (first session day 7), c withdrawn (on day 6
    # itself), d stage_3, e stage_4, f stage_1 (withdraws on day 7): 6 observed
    week1 = {"not_started": 1, "stage_1": 2, "stage_2": 0, "stage_3": 1, "stage_4": 1,
             "withdrawn": 1}  # fmt: skip
    assert n.loc[1].to_dict() == week1
    # week 2 (day 13): a stage_2, b stage_1, c and f withdrawn, d censored (follow-up 10 < 13),
    # e observed exactly to day 13 (cut-off on that day): stage_4: 5 observed
    week2 = {"not_started": 0, "stage_1": 1, "stage_2": 1, "stage_3": 0, "stage_4": 1,
             "withdrawn": 2}  # fmt: skip
    assert n.loc[2].to_dict() == week2
    proportion = out.set_index(["week", "state"])["proportion"]
    assert proportion.loc[(1, "stage_1")] == pytest.approx(2 / 6)
    assert proportion.loc[(2, "withdrawn")] == pytest.approx(2 / 5)
    assert out["state"].tolist() == list(OCCUPANCY_STATES) * 2  # every state, every week
    assert (out["group"] == "all").all()
    assert out.groupby("week")["proportion"].sum().tolist() == pytest.approx([1.0, 1.0])


def test_stage_occupancy_by_group_has_every_row():
    config = AnalysisConfig(window_weeks=2)
    out = stage_occupancy(_occupancy_cohort(), by="arm", config=config)
    assert len(out) == 2 * 2 * len(OCCUPANCY_STATES)  # groups x weeks x states
    hsr = out[(out["group"] == "hsr") & (out["week"] == 1)].set_index("state")["n"]
    # hsr: b not_started, e stage_4 on day 6
    assert hsr.to_dict() == {"not_started": 1, "stage_1": 0, "stage_2": 0, "stage_3": 0,
                             "stage_4": 1, "withdrawn": 0}  # fmt: skip
    assert out["group"].unique().tolist() == ["hsr", "staged"]


def test_stage_occupancy_group_with_nobody_observed_is_nan():
    # one participant followed 3 days: censored at day 6, so week 1 has no denominator
    cohort = cohort_from_rows(
        [{"participant_id": "a", "enrolled_on": "2024-02-27"}],
        sessions=[_s("a", 0, 1)],
        data_cutoff="2024-03-01",
    )
    out = stage_occupancy(cohort, config=AnalysisConfig(window_weeks=1))
    assert (out["n"] == 0).all() and out["proportion"].isna().all()


def test_nobody_analysed_gives_empty_tables():
    # enrolled after the data cut-off: not analysed (with a warning); every table is empty
    cohort = cohort_from_rows(
        [{"participant_id": "a", "enrolled_on": "2024-05-01"}],
        sessions=[_s("a", 0, 1)],
        data_cutoff="2024-04-01",
    )
    with pytest.warns(UserWarning, match="enrolled after the data cut-off"):
        assert stage_metrics(cohort).empty
    for f in (time_to_stage, time_to_stage_summary, stage_occupancy):
        with pytest.warns(UserWarning):
            out = f(cohort)
        assert out.empty and "group" in out.columns
