"""Adherence and load stagnation (METRICS.md §4) on hand-built cohorts.

Every expected value is worked out in the comment next to it. Participants are enrolled on
2024-01-01 (day 0); week = day // 7 + 1, so week 1 = days 0-6, week 12 = days 77-83.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows, sessions_on

from rehabstats import AnalysisConfig, DataWarning
from rehabstats.metrics.adherence import adherence, weekly_adherence

# a cut-off far after the window unless a test is about follow-up
LATE = "2024-12-31"


def one(frame: pd.DataFrame, participant_id: str = "p1") -> pd.Series:
    return frame.set_index("participant_id").loc[participant_id]


def stagnant_weeks(sessions: list[dict], **config: object) -> int:
    cohort = cohort_from_rows([{"participant_id": "p1"}], sessions=sessions, data_cutoff=LATE)
    return int(one(adherence(cohort, config=AnalysisConfig(**config)))["load_stagnant_weeks"])


def loads(by_week: dict[int, float | None], stage: int = 2) -> list[dict]:
    """One completed session on the first day of each given week with that load."""
    return [
        {"participant_id": "p1", "day": 7 * (w - 1), "stage": stage, "load_kg": kg}
        for w, kg in by_week.items()
    ]


# ---- sessions and volume ---------------------------------------------------------------------


def test_session_adherence_counts_sessions_with_a_completed_set():
    sessions = sessions_on("p1", [0, 2, 4]) + sessions_on("p1", [6], completed_sets=0)
    cohort = cohort_from_rows([{"participant_id": "p1"}], sessions=sessions, data_cutoff=LATE)
    row = one(adherence(cohort))
    assert row["sessions_scheduled"] == 4
    assert row["sessions_completed"] == 3  # the day-6 session has completed_sets = 0
    assert row["adherence_sessions"] == pytest.approx(0.75)  # 3 of 4 sessions completed
    assert row["adherent"] is not pd.NA and not row["adherent"]  # 0.75 < 0.80


def test_adherent_threshold_is_inclusive():
    # 4 of 5 completed = 0.80 >= 0.80 -> adherent; with threshold 0.81 -> not adherent
    sessions = sessions_on("p1", [0, 1, 2, 3]) + sessions_on("p1", [4], completed_sets=0)
    cohort = cohort_from_rows([{"participant_id": "p1"}], sessions=sessions, data_cutoff=LATE)
    assert one(adherence(cohort))["adherent"] is not pd.NA
    assert one(adherence(cohort))["adherent"]
    strict = adherence(cohort, config=AnalysisConfig(adherent_threshold=0.81))
    assert not one(strict)["adherent"]


def test_volume_caps_over_completion_and_counts_partial_sessions():
    # prescribed 3 x 15 = 45 reps each session
    sessions = [
        {"participant_id": "p1", "day": 0, "completed_sets": 2, "completed_reps": 15},  # 30
        {"participant_id": "p1", "day": 1, "completed_sets": 4, "completed_reps": 15},  # 60 -> 45
        {"participant_id": "p1", "day": 2, "completed_sets": 3, "completed_reps": 10},  # 30
        {"participant_id": "p1", "day": 3, "completed_sets": 0, "completed_reps": 0},  # 0
    ]
    cohort = cohort_from_rows([{"participant_id": "p1"}], sessions=sessions, data_cutoff=LATE)
    row = one(adherence(cohort))
    # (30 + 45 + 30 + 0) / (4 * 45) = 105 / 180
    assert row["adherence_volume"] == pytest.approx(105 / 180)
    assert row["adherence_sessions"] == pytest.approx(3 / 4)  # partial sessions are completed


def test_participant_without_scheduled_sessions_has_missing_adherence():
    cohort = cohort_from_rows(
        [{"participant_id": "p1"}, {"participant_id": "p2"}],
        sessions=sessions_on("p1", [0]),
        data_cutoff=LATE,
    )
    out = adherence(cohort)
    assert list(out["participant_id"]) == ["p1", "p2"]  # every analysed participant, in order
    row = one(out, "p2")
    assert row["sessions_scheduled"] == 0 and row["sessions_completed"] == 0
    assert np.isnan(row["adherence_sessions"]) and np.isnan(row["adherence_volume"])
    assert row["adherent"] is pd.NA  # nothing to adhere to: neither adherent nor not
    assert str(out["adherent"].dtype) == "boolean"
    assert row["load_stagnant_weeks"] == 0 and not row["load_stagnant"]


def test_sessions_after_withdrawal_are_excluded():
    # withdrawn on day 10: sessions on days 0 and 10 count, day 12 does not
    sessions = sessions_on("p1", [0, 10]) + sessions_on("p1", [12], completed_sets=0)
    with pytest.warns(DataWarning, match="after the participant's withdrawn_on"):
        cohort = cohort_from_rows(
            [{"participant_id": "p1", "withdrawn_on": "2024-01-11"}],
            sessions=sessions,
            data_cutoff=LATE,
        )
    row = one(adherence(cohort))
    assert row["sessions_scheduled"] == 2
    assert row["adherence_sessions"] == pytest.approx(1.0)  # the missed day-12 session is gone


def test_sessions_after_data_cutoff_are_excluded():
    # cut-off 2024-01-21 = day 20: the day-25 session is not yet known
    sessions = sessions_on("p1", [0, 20]) + sessions_on("p1", [25], completed_sets=0)
    cohort = cohort_from_rows([{"participant_id": "p1"}], sessions=sessions)
    row = one(adherence(cohort, config=AnalysisConfig(data_cutoff="2024-01-21")))
    assert row["sessions_scheduled"] == 2  # days 0 and 20
    assert row["adherence_sessions"] == pytest.approx(1.0)


def test_only_window_weeks_count():
    # day 83 is the last day of week 12 (counts); day 84 is week 13 (does not)
    sessions = sessions_on("p1", [83]) + sessions_on("p1", [84], completed_sets=0)
    cohort = cohort_from_rows([{"participant_id": "p1"}], sessions=sessions, data_cutoff=LATE)
    row = one(adherence(cohort))
    assert row["sessions_scheduled"] == 1 and row["adherence_sessions"] == pytest.approx(1.0)
    # an 8-week window leaves no session at all (both are after day 55)
    short = one(adherence(cohort, config=AnalysisConfig(window_weeks=8)))
    assert short["sessions_scheduled"] == 0


# ---- load stagnation -------------------------------------------------------------------------


def test_constant_load_is_stagnant_from_the_second_week():
    # weeks 1-5 at 10 kg: week 1 has no earlier maximum; weeks 2-5 do not exceed 10 -> 4 weeks
    assert stagnant_weeks(loads({1: 10, 2: 10, 3: 10, 4: 10, 5: 10})) == 4
    cohort = cohort_from_rows(
        [{"participant_id": "p1"}],
        sessions=loads({1: 10, 2: 10, 3: 10, 4: 10, 5: 10}),
        data_cutoff=LATE,
    )
    assert bool(one(adherence(cohort))["load_stagnant"])  # 4 >= stagnation_weeks (4)
    # 4 < 5 when stagnation_weeks = 5
    assert not bool(
        one(adherence(cohort, config=AnalysisConfig(stagnation_weeks=5)))["load_stagnant"]
    )


def test_single_week_is_never_stagnant():
    assert stagnant_weeks(loads({3: 20})) == 0  # no earlier maximum


def test_progression_resets_the_run():
    # 10, 12 (up), 12 (stagnant: 1), 14 (up), 14, 14 (stagnant: 2) -> longest run 2
    assert stagnant_weeks(loads({1: 10, 2: 12, 3: 12, 4: 14, 5: 14, 6: 14})) == 2


def test_lower_load_than_earlier_best_is_stagnant():
    # 20, 15 (<= 20), 18 (<= 20): the reference is the highest earlier maximum -> 2
    assert stagnant_weeks(loads({1: 20, 2: 15, 3: 18})) == 2


def test_gap_week_breaks_the_run_but_keeps_the_reference():
    # 10, 10 (run 1) | week 3 without a session | 10, 10, 10 (new run 3, each <= 10) -> 3
    assert stagnant_weeks(loads({1: 10, 2: 10, 4: 10, 5: 10, 6: 10})) == 3
    # after a gap the earlier best still counts: 20 | gap | 15 <= 20 -> a run of 1
    assert stagnant_weeks(loads({1: 20, 3: 15})) == 1


def test_missed_session_week_is_a_gap():
    # week 3's only stage-2 session is missed (completed_sets = 0): weeks 1-2 run 1, 4-5 run 2
    sessions = loads({1: 10, 2: 10, 4: 10, 5: 10}) + [
        {"participant_id": "p1", "day": 14, "stage": 2, "load_kg": 10, "completed_sets": 0}
    ]
    assert stagnant_weeks(sessions) == 2


def test_only_stage_2_and_3_sessions_count():
    # week 2 is stage 1 only (a gap): week 1 = 10, week 3 = 10 (<= 10, run 1) -> 1
    assert stagnant_weeks(loads({1: 10, 3: 10}) + loads({2: 10}, stage=1)) == 1
    # stage 3 counts like stage 2: 10 (stage 2), 10, 10 (stage 3) -> 2
    assert stagnant_weeks(loads({1: 10}) + loads({2: 10, 3: 10}, stage=3)) == 2
    # stage-4 sessions are ignored: only week 1 is a load week -> 0
    assert stagnant_weeks(loads({1: 10}) + loads({2: 5, 3: 5}, stage=4)) == 0


def test_weekly_maximum_and_missing_loads():
    # week 1: 10 and 12 -> max 12; week 2: 12 and a session without load -> max 12 -> 1
    sessions = loads({1: 10, 2: 12}) + [
        {"participant_id": "p1", "day": 3, "stage": 2, "load_kg": 12},
        {"participant_id": "p1", "day": 9, "stage": 2},
    ]
    assert stagnant_weeks(sessions) == 1
    # a week whose stage-2 sessions all lack a load is unknown and breaks the run:
    # 10, 10 (run 1) | week 3 no load | 10 (new run 1) -> 1
    assert stagnant_weeks(loads({1: 10, 2: 10, 3: None, 4: 10})) == 1


def test_stagnation_only_within_the_window():
    # weeks 10-14 at 10 kg; only weeks 10-12 are in the window: 11 and 12 stagnant -> 2
    assert stagnant_weeks(loads({10: 10, 11: 10, 12: 10, 13: 10, 14: 10})) == 2


def test_participants_are_independent():
    # p1 constant for 3 weeks (2 stagnant); p2's first week must not compare with p1's loads
    sessions = loads({1: 10, 2: 10, 3: 10}) + [
        {"participant_id": "p2", "day": 0, "stage": 2, "load_kg": 5},
        {"participant_id": "p2", "day": 7, "stage": 2, "load_kg": 6},
    ]
    cohort = cohort_from_rows(
        [{"participant_id": "p1"}, {"participant_id": "p2"}], sessions=sessions, data_cutoff=LATE
    )
    out = adherence(cohort)
    assert one(out, "p1")["load_stagnant_weeks"] == 2
    assert one(out, "p2")["load_stagnant_weeks"] == 0  # 5 then 6: progressing


# ---- weekly adherence ------------------------------------------------------------------------


def test_weekly_adherence_covers_every_week_in_follow_up():
    sessions = (
        sessions_on("p1", [0], completed_sets=0)  # day 0 missed
        + sessions_on("p1", [3])  # day 3 done
        + sessions_on("p1", [15])  # week 3
    )
    cohort = cohort_from_rows(
        [{"participant_id": "p1"}, {"participant_id": "p2", "withdrawn_on": "2024-01-09"}],
        sessions=sessions,
        data_cutoff="2024-01-21",  # day 20 = week 3
    )
    out = weekly_adherence(cohort)
    p1 = out[out["participant_id"] == "p1"].set_index("week")
    assert list(p1.index) == [1, 2, 3]  # day 20 is in week 3; nothing after the cut-off
    assert p1.loc[1, "sessions_scheduled"] == 2 and p1.loc[1, "sessions_completed"] == 1
    assert p1.loc[1, "adherence_sessions"] == pytest.approx(0.5)  # 1 of 2
    assert p1.loc[1, "adherence_volume"] == pytest.approx(45 / 90)  # 0 + 45 of 2 x 45
    assert p1.loc[2, "sessions_scheduled"] == 0  # a week without sessions is kept
    assert np.isnan(p1.loc[2, "adherence_sessions"]) and np.isnan(p1.loc[2, "adherence_volume"])
    assert p1.loc[3, "adherence_sessions"] == pytest.approx(1.0)
    # p2 withdrew on day 8 (week 2): weeks 1-2, no sessions
    p2 = out[out["participant_id"] == "p2"]
    assert list(p2["week"]) == [1, 2] and (p2["sessions_scheduled"] == 0).all()
    assert list(out.columns) == [
        "participant_id",
        "week",
        "sessions_scheduled",
        "sessions_completed",
        "adherence_sessions",
        "adherence_volume",
    ]


def test_weekly_adherence_stops_at_the_window():
    cohort = cohort_from_rows(
        [{"participant_id": "p1"}], sessions=sessions_on("p1", [0, 100]), data_cutoff=LATE
    )
    out = weekly_adherence(cohort)
    assert list(out["week"]) == list(range(1, 13))  # weeks 1-12, the day-100 session ignored
    assert out["sessions_scheduled"].sum() == 1
    assert list(weekly_adherence(cohort, config=AnalysisConfig(window_weeks=4))["week"]) == [
        1,
        2,
        3,
        4,
    ]


def test_weekly_totals_match_participant_totals():
    sessions = sessions_on("p1", range(0, 84, 3)) + sessions_on(
        "p1", range(1, 84, 5), completed_sets=0
    )
    cohort = cohort_from_rows([{"participant_id": "p1"}], sessions=sessions, data_cutoff=LATE)
    weekly = weekly_adherence(cohort)
    row = one(adherence(cohort))
    assert weekly["sessions_scheduled"].sum() == row["sessions_scheduled"] == 28 + 17
    assert weekly["sessions_completed"].sum() == row["sessions_completed"] == 28
