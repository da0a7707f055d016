"""Limb symmetry index (METRICS.md §6) on hand-built cohorts.

LSI = involved / uninvolved x 100, same participant, test and day. Expected values are worked
out in the comment next to them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows

from rehabstats import AnalysisConfig, DataWarning
from rehabstats.metrics.function_tests import limb_symmetry

LATE = "2024-12-31"


def result(day: int, test: str, side: str, value: float, participant_id: str = "p1") -> dict:
    return {
        "participant_id": participant_id,
        "day": day,
        "test": test,
        "side": side,
        "value": value,
    }


def lsi_of(rows: list[dict], participants=("p1",), **kw) -> pd.DataFrame:
    c = cohort_from_rows(
        [{"participant_id": p} for p in participants],
        function_tests=rows,
        data_cutoff=kw.pop("data_cutoff", LATE),
        **kw,
    )
    return limb_symmetry(c)


def test_lsi_is_involved_over_uninvolved_percent():
    rows = [
        result(10, "single_hop", "involved", 90),
        result(10, "single_hop", "uninvolved", 120),  # 90 / 120 x 100 = 75
        result(10, "heel_raise_endurance", "involved", 25),
        result(10, "heel_raise_endurance", "uninvolved", 20),  # 125 (involved side stronger)
    ]
    out = lsi_of(rows)
    assert list(out.columns) == [
        "participant_id",
        "assessed_on",
        "day",
        "test",
        "involved",
        "uninvolved",
        "lsi",
    ]
    by_test = out.set_index("test")
    assert by_test.loc["single_hop", "lsi"] == pytest.approx(75.0)
    assert by_test.loc["heel_raise_endurance", "lsi"] == pytest.approx(125.0)
    assert (out["day"] == 10).all()
    assert (out["assessed_on"] == pd.Timestamp("2024-01-11")).all()
    # contract order of tests: heel_raise_endurance before single_hop
    assert out["test"].tolist() == ["heel_raise_endurance", "single_hop"]


def test_best_trial_of_each_side_is_used():
    rows = [
        result(3, "side_hop", "involved", 20),
        result(3, "side_hop", "involved", 24),  # best involved: 24
        result(3, "side_hop", "uninvolved", 28),
        result(3, "side_hop", "uninvolved", 30),  # best uninvolved: 30 -> 24 / 30 = 80
    ]
    row = lsi_of(rows).iloc[0]
    assert row["involved"] == 24 and row["uninvolved"] == 30
    assert row["lsi"] == pytest.approx(80.0)


def test_only_same_day_same_test_pairs():
    rows = [
        result(3, "single_hop", "involved", 90),
        result(4, "single_hop", "uninvolved", 100),  # another day: no pair
        result(5, "side_hop", "involved", 20),
        result(5, "single_hop", "uninvolved", 100),  # another test: no pair
        result(6, "sl_isometric_hold", "involved", 30, "p2"),
        result(6, "sl_isometric_hold", "uninvolved", 40, "p1"),  # another participant: no pair
    ]
    assert lsi_of(rows, participants=("p1", "p2")).empty


def test_zero_uninvolved_gives_missing_lsi():
    rows = [result(1, "side_hop", "involved", 5), result(1, "side_hop", "uninvolved", 0)]
    row = lsi_of(rows).iloc[0]
    assert np.isnan(row["lsi"]) and row["uninvolved"] == 0


def test_tests_after_obs_end_are_excluded():
    rows = [
        result(1, "single_hop", "involved", 80),
        result(1, "single_hop", "uninvolved", 100),
        result(30, "single_hop", "involved", 95),
        result(30, "single_hop", "uninvolved", 100),
    ]
    with pytest.warns(DataWarning, match="withdrawn_on"):
        c = cohort_from_rows(
            [{"participant_id": "p1", "withdrawn_on": "2024-01-21"}],  # day 20
            function_tests=rows,
            data_cutoff=LATE,
        )
    assert limb_symmetry(c)["day"].tolist() == [1]
    # without withdrawal both days count; a cut-off on day 10 leaves day 1 only
    c2 = cohort_from_rows([{"participant_id": "p1"}], function_tests=rows, data_cutoff=LATE)
    assert limb_symmetry(c2)["day"].tolist() == [1, 30]
    assert limb_symmetry(c2, config=AnalysisConfig(data_cutoff="2024-01-11"))["day"].tolist() == [1]


def test_rows_follow_participant_order():
    rows = [
        result(2, "single_hop", "involved", 50, "p2"),
        result(2, "single_hop", "uninvolved", 100, "p2"),  # 50
        result(1, "single_hop", "involved", 75, "p1"),
        result(1, "single_hop", "uninvolved", 100, "p1"),  # 75
    ]
    out = lsi_of(rows, participants=("p2", "p1"))  # p2 is listed first
    assert out["participant_id"].tolist() == ["p2", "p1"]
    assert out["lsi"].tolist() == pytest.approx([50.0, 75.0])
