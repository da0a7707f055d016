"""rehabstats.time.tte: the time-to-event layer shared by stage timing and relapse.

Each expected value is worked out next to the case from the rules in the module docstring:
earliest candidate on or after (or strictly after) the origin, on or before follow_up_days;
ties named by the first listed source; a competing event ends observation unless the event
comes on or before its day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rehabstats.time.tte import EventSpec, derive


def _timeline(follow_up: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        {"follow_up_days": list(follow_up.values())},
        index=pd.Index(list(follow_up), name="participant_id", dtype="str"),
    )


def _rows(*pairs: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"participant_id": [p for p, _ in pairs], "day": [d for _, d in pairs]})


def _by_id(out: pd.DataFrame) -> pd.DataFrame:
    return out.set_index("participant_id")


def test_earliest_candidate_across_sources_and_censoring():
    timeline = _timeline({"a": 100, "b": 100, "c": 30, "d": 100})
    spec = EventSpec(
        name="x",
        sources=(
            ("first", _rows(("a", 40), ("a", 20), ("c", 31))),
            ("second", _rows(("a", 25), ("b", 60), ("b", 10))),
        ),
    )
    out = _by_id(derive(spec, timeline))
    # a: candidates 40, 20 (first) and 25 (second): earliest is day 20 from "first"
    assert out.loc["a", "event_day"] == 20 and out.loc["a", "event_source"] == "first"
    # b: earliest is day 10 ("second"); time from origin 0 = 10
    assert out.loc["b", "time"] == 10 and out.loc["b", "event_source"] == "second"
    # c: its only candidate (31) is after follow-up (30): censored at 30
    assert not out.loc["c", "event"] and out.loc["c", "time"] == 30
    assert pd.isna(out.loc["c", "event_day"]) and pd.isna(out.loc["c", "event_source"])
    # d: no candidate: censored at follow-up 100; every participant at risk from day 0
    assert not out.loc["d", "event"] and out.loc["d", "time"] == 100
    assert list(out.index) == ["a", "b", "c", "d"]  # timeline order
    assert (out["start_day"] == 0).all() and not out["competing"].any()


def test_same_day_tie_named_by_first_listed_source():
    timeline = _timeline({"a": 100})
    rows = _rows(("a", 15))
    # both sources have day 15: the first listed names the event, whatever the order
    ab = derive(EventSpec("x", (("p", rows), ("q", rows))), timeline)
    ba = derive(EventSpec("x", (("q", rows), ("p", rows))), timeline)
    assert ab.loc[0, "event_source"] == "p" and ba.loc[0, "event_source"] == "q"
    assert ab.loc[0, "event_day"] == ba.loc[0, "event_day"] == 15


def test_origin_inclusive_and_exclusive():
    timeline = _timeline({"a": 100, "b": 100})
    origin = pd.Series({"a": 10.0, "b": 10.0})
    rows = _rows(("a", 10), ("a", 12), ("b", 9), ("b", 11))
    inclusive = _by_id(derive(EventSpec("x", (("s", rows),), origin=origin), timeline))
    exclusive = _by_id(
        derive(EventSpec("x", (("s", rows),), origin=origin, origin_inclusive=False), timeline)
    )
    # a: a candidate on the origin day counts when inclusive (time 0), not when exclusive
    assert inclusive.loc["a", "event_day"] == 10 and inclusive.loc["a", "time"] == 0
    assert exclusive.loc["a", "event_day"] == 12 and exclusive.loc["a", "time"] == 2
    # b: day 9 is before the origin in both readings; day 11 is the event, time 1
    assert inclusive.loc["b", "event_day"] == exclusive.loc["b", "event_day"] == 11
    assert (inclusive["start_day"] == 10).all()


def test_participants_not_at_risk_get_no_row():
    timeline = _timeline({"a": 100, "b": 100, "c": 20, "d": 20})
    # b: NaN origin; c: origin 25 > follow-up 20; d: absent from the origin series
    origin = pd.Series({"a": 5.0, "b": np.nan, "c": 25.0})
    out = derive(EventSpec("x", (("s", _rows(("b", 30), ("c", 10))),), origin=origin), timeline)
    assert out["participant_id"].tolist() == ["a"]
    # a: at risk from 5, no candidate, censored at 100: time 95
    assert out.loc[0, "time"] == 95 and not out.loc[0, "event"]


def test_origin_on_last_day_of_follow_up_is_at_risk_with_time_zero():
    timeline = _timeline({"a": 20})
    out = derive(EventSpec("x", (("s", _rows()),), origin=pd.Series({"a": 20.0})), timeline)
    assert out.loc[0, "time"] == 0 and not out.loc[0, "event"]


def test_competing_event():
    timeline = _timeline({"a": 50, "b": 50, "c": 50, "d": 100})
    # the competing event here is a withdrawal at obs_end (day 50) for a, b, c
    competing = pd.Series({"a": 50.0, "b": 50.0, "c": 50.0, "d": np.nan})
    rows = _rows(("a", 30), ("b", 50), ("d", 60))
    out = _by_id(derive(EventSpec("x", (("s", rows),), competing=competing), timeline))
    # a: event on day 30 before the competing event: event, not competing
    assert out.loc["a", "event"] and not out.loc["a", "competing"] and out.loc["a", "time"] == 30
    # b: event on the competing event's day: the event wins
    assert out.loc["b", "event"] and not out.loc["b", "competing"]
    # c: no event: the competing event ends observation at 50
    assert out.loc["c", "competing"] and not out.loc["c", "event"] and out.loc["c", "time"] == 50
    # d: no competing event: event at 60
    assert out.loc["d", "event"] and out.loc["d", "time"] == 60


def test_competing_event_before_the_event_hides_it():
    timeline = _timeline({"a": 100})
    spec = EventSpec("x", (("s", _rows(("a", 60))),), competing=pd.Series({"a": 40.0}))
    out = derive(spec, timeline)
    # competing on day 40, the candidate on day 60 comes after it: not observed
    assert out.loc[0, "competing"] and not out.loc[0, "event"] and out.loc[0, "time"] == 40


def test_callable_sources_and_origin():
    timeline = _timeline({"a": 100})
    spec = EventSpec(
        "x",
        (("s", lambda tl: _rows(("a", 7), ("a", 3))),),
        origin=lambda tl: pd.Series(3.0, index=tl.index),
        origin_inclusive=False,
    )
    out = derive(spec, timeline)
    # origin 3 exclusive: day 3 is ignored, day 7 is the event, time 4
    assert out.loc[0, "event_day"] == 7 and out.loc[0, "time"] == 4


def test_candidates_of_unknown_participants_are_ignored():
    timeline = _timeline({"a": 100})
    out = derive(EventSpec("x", (("s", _rows(("zz", 1), ("a", 9))),)), timeline)
    assert out["participant_id"].tolist() == ["a"] and out.loc[0, "event_day"] == 9


def test_output_dtypes():
    timeline = _timeline({"a": 100, "b": 100})
    out = derive(EventSpec("x", (("s", _rows(("a", 3))),)), timeline)
    assert out.columns.tolist() == [
        "participant_id",
        "start_day",
        "event_day",
        "time",
        "event",
        "event_source",
        "competing",
    ]
    assert str(out["event_day"].dtype) == "Int64"
    assert out["time"].dtype == "int64" and out["event"].dtype == bool


@pytest.mark.parametrize("inclusive", [True, False])
def test_derive_matches_a_plain_reading_on_random_data(inclusive):
    rng = np.random.default_rng(3)
    n = 200
    ids = [f"p{i}" for i in range(n)]
    follow = rng.integers(0, 60, n)
    timeline = _timeline(dict(zip(ids, follow.tolist(), strict=True)))
    origin = pd.Series(np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 30, n)), index=ids)
    rows = [
        pd.DataFrame({"participant_id": rng.choice(ids, 300), "day": rng.integers(0, 80, 300)})
        for _ in range(2)
    ]
    spec = EventSpec(
        "x", (("r0", rows[0]), ("r1", rows[1])), origin=origin, origin_inclusive=inclusive
    )
    out = _by_id(derive(spec, timeline))
    # the plain reading, participant by participant (test only)
    for i, pid in enumerate(ids):
        o = origin[pid]
        if np.isnan(o) or o > follow[i]:
            assert pid not in out.index
            continue
        best = None
        for rank, frame in enumerate(rows):
            days = frame.loc[frame["participant_id"] == pid, "day"]
            days = days[(days >= o) if inclusive else (days > o)]
            days = days[days <= follow[i]]
            if len(days) and (best is None or (days.min(), rank) < best):
                best = (days.min(), rank)
        if best is None:
            assert not out.loc[pid, "event"] and out.loc[pid, "time"] == follow[i] - o
        else:
            assert out.loc[pid, "event_day"] == best[0]
            assert out.loc[pid, "event_source"] == f"r{best[1]}"
            assert out.loc[pid, "time"] == best[0] - o
