"""rehabstats.time.keys: rows to participants, and (participant, day) keys.

Expected values are worked out next to each case from the definitions in the module docstring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rehabstats.time.keys import (
    day_keys,
    key_days,
    key_participants,
    lookup,
    on_participant_days,
    participant_day_keys,
    participant_positions,
    per_row,
    run_starts,
    sort_order,
)


def test_participant_positions_categorical_and_text():
    index = pd.Index(["b", "c"], dtype="str")
    cat = pd.Series(pd.Categorical(["a", "c", "b", "c"], categories=["a", "b", "c"]))
    # a is not in the index (-1); c is position 1; b position 0
    assert participant_positions(cat, index).tolist() == [-1, 1, 0, 1]
    assert participant_positions(pd.Series(["c", "x", "b"]), index).tolist() == [1, -1, 0]


def test_participant_day_keys_and_membership():
    ids = pd.Series(pd.Categorical(["a", "a", "b", "b"], categories=["a", "b"]))
    dates = pd.Series(pd.to_datetime(["2024-01-31", "2024-02-01", "2024-01-31", "2024-03-01"]))
    keys = participant_day_keys(ids, dates)
    # a's 2024-02-01 is the day after its 2024-01-31; b's 2024-01-31 is another participant
    assert keys[1] == keys[0] + 1 and keys[2] != keys[0]
    assert participant_day_keys(ids, dates, np.array([3, 1])).tolist() == [keys[3], keys[1]]
    wanted = np.array([keys[0] + 1, keys[3]])
    # sorted keys (participant-date order) and unsorted keys give the same answer
    assert on_participant_days(keys, wanted).tolist() == [False, True, False, True]
    shuffled = keys[[3, 0, 2, 1]]
    assert on_participant_days(shuffled, wanted).tolist() == [True, False, False, True]
    assert not on_participant_days(keys, np.array([], dtype="int64")).any()


def test_participant_positions_of_chosen_rows():
    index = pd.Index(["b", "c"], dtype="str")
    cat = pd.Series(pd.Categorical(["a", "c", "b", None], categories=["a", "b", "c"]))
    # rows 3 (no participant: -1) and 1 (c: position 1), in that order
    assert participant_positions(cat, index, np.array([3, 1])).tolist() == [-1, 1]


def test_per_row_takes_each_rows_participant_value():
    values = pd.Series([10.0, 20.0], index=pd.Index(["b", "c"], dtype="str"))
    cat = pd.Series(pd.Categorical(["c", "a", "b"], categories=["a", "b", "c"]))
    # c -> 20, a is not among the values -> NaN, b -> 10
    out = per_row(cat, values)
    assert out[0] == 20 and np.isnan(out[1]) and out[2] == 10
    assert per_row(pd.Series(["b", "c"]), values).tolist() == [10, 20]


def test_day_keys_order_and_unpack():
    who = np.array([0, 0, 1, 0])
    day = np.array([-3, 5, 0, 6])  # a VISA-A before enrolment has a negative day
    keys = day_keys(who, day)
    # participant 0 day -3 < day 5 < day 6 < participant 1 day 0; day 6 is the day after 5
    assert np.argsort(keys).tolist() == [0, 1, 3, 2]
    assert keys[3] == keys[1] + 1
    assert key_participants(keys).tolist() == [0, 0, 1, 0]
    assert key_days(keys).tolist() == [-3, 5, 0, 6]


def test_sorted_key_helpers():
    assert sort_order(np.array([1, 2, 2, 5])) is None  # sorted already
    # stable: the two 2s keep their order (positions 1 and 3)
    assert sort_order(np.array([5, 2, 1, 2])).tolist() == [2, 1, 3, 0]
    # runs of equal values start at 0, 1 and 3
    assert run_starts(np.array([1, 2, 2, 5])).tolist() == [0, 1, 3]
    assert run_starts(np.array([], dtype="int64")).tolist() == []
    found = lookup(np.array([1, 4, 9]), np.array([10.0, 40.0, 90.0]), np.array([4, 5, 9, 0]))
    # 4 -> 40, 5 absent, 9 -> 90, 0 absent
    assert found[0] == 40 and np.isnan(found[1]) and found[2] == 90 and np.isnan(found[3])
    assert np.isnan(lookup(np.array([], dtype="int64"), np.array([]), np.array([1]))).all()
