"""rehabstats.metrics.checkpoint: the stage-4 checkpoint (docs/metrics.md §6).

Defaults: body mass 80 kg, load ratio >= 1.5 (so >= 40 kg external load), hold >= 30 s,
pain_nrs <= 2, no next-morning flare (next-morning NRS >= same-day morning NRS + 2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows, morning_pain

from rehabstats import AnalysisConfig
from rehabstats.metrics.checkpoint import checkpoint_attempts, first_pass_day

CUTOFF = "2024-03-31"  # day 90 for the default enrolment 2024-01-01


def _hold(pid: str, day: int, *, load=40, value=30, pain=1, **extra) -> dict:
    return {
        "participant_id": pid,
        "day": day,
        "test": "sl_isometric_hold",
        "value": value,
        "external_load_kg": load,
        "pain_nrs": pain,
        **extra,
    }


def _attempts(participants, tests, pain=(), config=None) -> pd.DataFrame:
    cohort = cohort_from_rows(
        participants, function_tests=tests, pain=list(pain), data_cutoff=CUTOFF
    )
    return checkpoint_attempts(cohort, config=config).set_index("participant_id")


def test_each_condition_pass_and_fail():
    people = [{"participant_id": p} for p in "abcdefgh"] + [
        {"participant_id": "i", "body_mass_kg": None}
    ]
    tests = [
        _hold("a", 10),  # (80 + 40) / 80 = 1.5 >= 1.5, 30 s, pain 1: passes
        _hold("b", 10, load=39),  # (80 + 39) / 80 = 1.4875 < 1.5: fails
        _hold("c", 10, load=None),  # no external load recorded: ratio 1.0: fails
        _hold("d", 10, value=29.9),  # 29.9 s < 30 s: fails
        _hold("e", 10, pain=2),  # pain 2 <= 2: passes (boundary)
        _hold("f", 10, pain=2.5),  # pain 2.5 > 2: fails
        _hold("g", 10, pain=None),  # pain not recorded: not passed
        _hold("h", 10, load=80, value=45, pain=0),  # ratio 2.0, 45 s, pain 0: passes
        _hold("i", 10),  # body mass missing: ratio NaN: not passed
    ]
    out = _attempts(people, tests)
    assert out.loc["a", "load_ratio"] == 1.5
    assert out.loc["b", "load_ratio"] == pytest.approx(119 / 80)
    assert out.loc["c", "load_ratio"] == 1.0
    assert np.isnan(out.loc["i", "load_ratio"])
    expected = {
        "a": True, "b": False, "c": False, "d": False, "e": True,
        "f": False, "g": False, "h": True, "i": False,
    }  # fmt: skip
    assert out["passed"].to_dict() == expected
    assert not out["next_morning_flare"].any()  # no diary at all: no flare


def test_next_morning_flare():
    people = [{"participant_id": p} for p in "abcde"]
    tests = [_hold(p, 10) for p in "abcde"]
    pain = (
        morning_pain("a", {10: 2, 11: 4})  # rise 2 >= flare_delta 2: flare, not passed
        + morning_pain("b", {10: 2, 11: 3.9})  # rise 1.9: no flare, passes
        + morning_pain("c", {10: 2})  # next morning missing: no flare, passes
        + morning_pain("d", {11: 9})  # same-day morning missing: no flare, passes
        + morning_pain("e", {10: 3.3, 11: 5.3})  # 5.3 - 3.3 is 2 (not 1.999...): flare
    )
    out = _attempts(people, tests, pain)
    assert out["next_morning_flare"].to_dict() == {
        "a": True, "b": False, "c": False, "d": False, "e": True,
    }  # fmt: skip
    assert out["passed"].to_dict() == {"a": False, "b": True, "c": True, "d": True, "e": False}


def test_flare_uses_mean_of_several_morning_ratings():
    # day 11 has two morning ratings, 3 and 5: mean 4 = day-10 morning 2 + 2: flare
    pain = morning_pain("a", {10: 2, 11: 3}) + morning_pain("a", {11: 5})
    with pytest.warns(UserWarning):
        out = _attempts([{"participant_id": "a"}], [_hold("a", 10)], pain)
    assert out.loc["a", "next_morning_flare"] and not out.loc["a", "passed"]


def test_only_involved_side_holds_within_follow_up():
    people = [{"participant_id": "a", "withdrawn_on": "2024-01-21"}]  # withdrawn day 20
    tests = [
        _hold("a", 5, side="uninvolved"),  # other side: not an attempt
        {"participant_id": "a", "day": 6, "test": "heel_raise_endurance", "value": 30},
        _hold("a", 15, load=0),  # an attempt (fails: ratio 1)
        _hold("a", 20),  # on the withdrawal day (obs_end): an attempt, passes
        _hold("a", 21),  # after withdrawal: excluded
    ]
    with pytest.warns(UserWarning, match="after the participant's withdrawn_on"):
        out = _attempts(people, tests).reset_index()
    assert out["day"].tolist() == [15, 20]
    assert out["passed"].tolist() == [False, True]


def test_flare_on_the_morning_after_obs_end_is_unknown():
    # data cut-off on day 90: the hold on day 90, its next morning (day 91) is after obs_end
    pain = morning_pain("a", {90: 1, 91: 9})
    out = _attempts([{"participant_id": "a"}], [_hold("a", 90)], pain)
    assert not out.loc["a", "next_morning_flare"] and out.loc["a", "passed"]


def test_thresholds_come_from_the_config():
    config = AnalysisConfig(checkpoint_load_ratio=2.0, checkpoint_hold_s=20, checkpoint_pain_max=0)
    people = [{"participant_id": p} for p in "ab"]
    tests = [
        _hold("a", 10, load=80, value=20, pain=0),  # 2.0, 20 s, pain 0: passes
        _hold("b", 10, load=40, value=60, pain=0),  # ratio 1.5 < 2.0: fails
    ]
    out = _attempts(people, tests, config=config)
    assert out["passed"].to_dict() == {"a": True, "b": False}


def test_order_and_first_pass_day():
    people = [{"participant_id": p} for p in "abc"]
    tests = [
        _hold("b", 30),
        _hold("a", 50),
        _hold("a", 20, pain=5),  # fails
        _hold("a", 40),
        _hold("c", 10, value=10),  # fails
    ]
    cohort = cohort_from_rows(people, function_tests=tests, data_cutoff=CUTOFF)
    attempts = checkpoint_attempts(cohort)
    # participant (timeline) order, then day
    assert list(zip(attempts["participant_id"], attempts["day"], strict=True)) == [
        ("a", 20), ("a", 40), ("a", 50), ("b", 30), ("c", 10),
    ]  # fmt: skip
    # a: first pass on day 40 (day 20 failed); b: day 30; c never passed: absent
    assert first_pass_day(attempts).to_dict() == {"a": 40, "b": 30}
    assert attempts.columns.tolist() == [
        "participant_id",
        "day",
        "load_ratio",
        "hold_s",
        "pain_nrs",
        "next_morning_flare",
        "passed",
    ]
