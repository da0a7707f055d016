"""Exercise quality (METRICS.md §10): lowering tempo and back-to-back heavy days.

Hand-built cohorts; every expected value is worked out in the comment next to it. Enrolment
is 2024-01-01 (day 0); the window is weeks 1-12 = days 0-83; the cut-off is late unless a
test is about follow-up. Defaults: min_lowering_s 3, rest_day_stages [3, 4].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows, tables_from_rows

from rehabstats import AnalysisConfig, Cohort, DataWarning
from rehabstats.metrics.quality import exercise_quality

LATE = "2024-12-31"


def _s(pid: str, day: int, stage: int, **columns: object) -> dict:
    return {"participant_id": pid, "day": day, "stage": stage, **columns}


def _missed(pid: str, day: int, stage: int, **columns: object) -> dict:
    return _s(pid, day, stage, completed_sets=0, completed_reps=0, **columns)


def _quality(people, sessions, *, config=None, data_cutoff=LATE) -> pd.DataFrame:
    cohort = cohort_from_rows(
        [{"participant_id": p} if isinstance(p, str) else p for p in people],
        sessions=sessions,
        data_cutoff=data_cutoff,
    )
    return exercise_quality(cohort, config=config).set_index("participant_id")


def tempo_sessions() -> list[dict]:
    return [
        _s("p", 7, 2, lowering_s=3.0),  # known; 3.0 is not below 3: slow
        _s("p", 8, 2, lowering_s=2.5),  # known, fast
        _s("p", 8, 3, lowering_s=2.9),  # a second session that day: counted on its own, fast
        _s("p", 9, 1, lowering_s=1.0),  # stage 1 (holds): not a tempo session
        _s("p", 10, 4, lowering_s=1.0),  # stage 4 (plyometrics): not a tempo session
        _s("p", 11, 3),  # lowering not logged: unknown
        _missed("p", 12, 2, lowering_s=1.0),  # missed: no lowering done
        _s("p", 90, 2, lowering_s=1.0),  # day 90 is after the window (days 0-83)
        _s("none", 7, 2),  # no lowering logged at all
    ]


def test_tempo_counts_completed_stage_2_3_sessions_with_a_lowering_time():
    out = _quality(["p", "none"], tempo_sessions())
    # p: days 7, 8 (two sessions) are known -> 3; fast: 2.5 and 2.9 -> 2; rate 2/3
    assert out.loc["p", "tempo_sessions_known"] == 3
    assert out.loc["p", "fast_tempo_sessions"] == 2
    assert out.loc["p", "fast_tempo_rate"] == pytest.approx(2 / 3)
    # none: no known tempo -> 0 known, 0 fast and the rate missing (not 0)
    assert out.loc["none", "tempo_sessions_known"] == 0
    assert out.loc["none", "fast_tempo_sessions"] == 0
    assert np.isnan(out.loc["none", "fast_tempo_rate"])


def test_min_lowering_s_is_a_strict_lower_bound():
    # with min_lowering_s = 2.5: 2.5 is not below it; 2.9 and 3.0 neither -> 0 fast of 3
    out = _quality(["p", "none"], tempo_sessions(), config=AnalysisConfig(min_lowering_s=2.5))
    assert (out.loc["p", "tempo_sessions_known"], out.loc["p", "fast_tempo_sessions"]) == (3, 0)
    assert out.loc["p", "fast_tempo_rate"] == 0


def test_tempo_after_withdrawal_does_not_count():
    # withdrawn on day 10 (2024-01-11): the day-9 session counts, the day-11 one does not
    people = [{"participant_id": "w", "withdrawn_on": "2024-01-11"}]
    sessions = [_s("w", 9, 2, lowering_s=2.0), _s("w", 11, 2, lowering_s=2.0)]
    with pytest.warns(UserWarning, match="after the participant's withdrawn_on"):
        out = _quality(people, sessions)
    assert (out.loc["w", "tempo_sessions_known"], out.loc["w", "fast_tempo_sessions"]) == (1, 1)
    assert out.loc["w", "fast_tempo_rate"] == 1


def test_back_to_back_heavy_days():
    sessions = [
        # run: heavy days 20, 21, 22 (two sessions on 22 make one day) -> 21 and 22 follow a
        # heavy day: 2
        _s("run", 20, 3), _s("run", 21, 3), _s("run", 22, 3), _s("run", 22, 4),
        # missed: day 31's session was missed, so day 31 is not heavy -> 0
        _s("missed", 30, 3), _missed("missed", 31, 3),
        # light: day 40 is stage 2 (not a rest-day stage) -> day 41 does not follow a heavy day
        _s("light", 40, 2), _s("light", 41, 3),
        # mixed: stage 4 then stage 3 on consecutive days -> 1
        _s("mixed", 50, 4), _s("mixed", 51, 3),
        # edge: day 83 is the window's last day, day 84 is outside it -> 0
        _s("edge", 83, 3), _s("edge", 84, 3),
        # apart: heavy days 60 and 62, a rest day between -> 0
        _s("apart", 60, 3), _s("apart", 62, 3),
        # first: heavy on day 0 (no day before it in the window) and day 1 -> 1
        _s("first", 0, 3), _s("first", 1, 3),
    ]  # fmt: skip
    people = ["run", "missed", "light", "mixed", "edge", "apart", "first"]
    out = _quality(people, sessions)["back_to_back_days"]
    assert out.to_dict() == {
        "run": 2, "missed": 0, "light": 0, "mixed": 1, "edge": 0, "apart": 0, "first": 1,
    }  # fmt: skip
    # with stage 2 among the rest-day stages, light's days 40 and 41 are both heavy -> 1
    wider = _quality(people, sessions, config=AnalysisConfig(rest_day_stages=[2, 3, 4]))
    assert wider.loc["light", "back_to_back_days"] == 1


def test_back_to_back_days_end_at_obs_end():
    # cut-off on day 21 (2024-01-22): heavy days 20 and 21 count, day 22 is after it -> 1
    sessions = [_s("run", d, 3) for d in (20, 21, 22)]
    with pytest.warns(DataWarning, match="1 row dated after the data cut-off"):
        out = _quality(["run"], sessions, data_cutoff="2024-01-22")
    assert out.loc["run", "back_to_back_days"] == 1


def test_cohort_without_lowering_times():
    # the sessions table has no lowering_s column at all (as an older export)
    tables = tables_from_rows([{"participant_id": "p"}], sessions=[_s("p", 7, 2)])
    tables["sessions"] = tables["sessions"].drop(columns="lowering_s")
    cohort = Cohort.from_tables(tables, data_cutoff=LATE)
    assert cohort.sessions["lowering_s"].isna().all()  # an absent optional column is missing
    out = exercise_quality(cohort).set_index("participant_id").loc["p"]
    assert out["tempo_sessions_known"] == 0 and np.isnan(out["fast_tempo_rate"])
