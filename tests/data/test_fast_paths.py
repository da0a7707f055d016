"""The validation's happy paths agree with its general paths, value for value.

A valid column is parsed in one vectorised pass (Arrow for text dates, no copy for typed
numbers and dates) and anything else goes the general way, which names each broken value.
Each test runs the same input with the fast paths switched off (they then return ``None``,
"not for me", as they do for any column they cannot vouch for) and asserts the same tables,
problems and warnings: the fast paths may only ever decline, never decide differently.
"""

from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rehabstats.data import schema
from rehabstats.data.columnar import positions_in
from rehabstats.data.schema import validate_tables

LOADED_ON = "2300-01-01"

DATE_TEXT = [
    "2024-01-05",
    " 2024-01-06 ",
    "2024-02-29",
    "2024-02-30",  # no such day: a lenient parser would roll it to March 1
    "2023-02-29",
    "2024-04-31",
    "2024-13-01",
    "2024-00-10",
    "2024-1-05",
    "20240105",
    "2024-01-05T00:00",
    "0000-01-01",
    "1677-09-21",  # the day before datetime64[ns] begins
    "1677-09-22",
    "2262-04-11",
    "2262-04-12",  # the day after it ends
    "9999-12-31",
    "٢٠٢٤-٠١-٠٥",  # Arabic-Indic digits: \\d in Python, not in Arrow
    "",
    "   ",
    None,
]
FLOATS = [0.0, 1.0, 2.0, 4.0, 1.5, -1.0, np.nan, np.inf, -np.inf, 1e15, 999_999_999_999_999.0]
INTS = [0, 1, 2, 4, 5, -3, 10**15 - 1, 10**15, -(10**15), np.iinfo(np.int64).min]
NS = [
    pd.Timestamp("2024-01-05"),
    pd.Timestamp("2024-01-07"),
    pd.Timestamp("2024-01-05 12:00"),
    pd.Timestamp("2024-01-06 00:00:00.000001"),
    pd.NaT,
]


@contextmanager
def general_paths_only():
    with (
        mock.patch.object(schema, "_valid_dates_from_text", lambda values: None),
        mock.patch.object(schema, "_valid_typed_numbers", lambda values, **kw: None),
        mock.patch.object(schema, "_whole_days_only", lambda values: False),
    ):
        yield


def outcome(raw: dict[str, pd.DataFrame]):
    tables, report = validate_tables({k: v.copy() for k, v in raw.items()}, loaded_on=LOADED_ON)
    problems = [(p.table, p.row, p.column, p.value, p.rule, p.code) for p in report.problems]
    return tables, problems, [str(w) for w in report.warnings], report.ok


def assert_same(raw: dict[str, pd.DataFrame]) -> None:
    fast_tables, fast_problems, fast_warnings, ok = outcome(raw)
    with general_paths_only():
        tables, problems, warnings, ok_general = outcome(raw)
    assert fast_problems == problems
    assert fast_warnings == warnings
    assert ok == ok_general
    for name in tables:
        pd.testing.assert_frame_equal(fast_tables[name], tables[name], check_exact=True)


def participants(enrolled: list[object]) -> pd.DataFrame:
    n = len(enrolled)
    return pd.DataFrame(
        {
            "participant_id": [f"p{i}" for i in range(n)],
            "site": "A",
            "arm": "HSR",
            "tendinopathy_type": "midportion",
            "sex": "female",
            "enrolled_on": enrolled,
        }
    )


SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@example(enrolled=["2024-01-05"], dates=["0000-01-01"])  # year 0: Arrow reads it, pandas not
@given(
    enrolled=st.lists(st.sampled_from(DATE_TEXT), min_size=1, max_size=3),
    dates=st.lists(st.sampled_from(DATE_TEXT), min_size=1, max_size=6),
)
def test_text_dates_parse_alike(enrolled, dates):
    """CSV text: every date both ways, including impossible days and the datetime64 range."""
    people = participants(enrolled).astype("str")
    people["enrolled_on"] = pd.Series(enrolled, dtype="str")
    pain = pd.DataFrame(
        {
            "participant_id": [f"p{i % len(enrolled)}" for i in range(len(dates))],
            "recorded_on": pd.Series(dates, dtype="str"),
            "timing": "morning",
            "nrs": "3",
        },
        dtype="str",
    )
    sessions = pd.DataFrame(
        columns=[
            "participant_id",
            "session_date",
            "stage",
            "prescribed_sets",
            "prescribed_reps",
            "completed_sets",
            "completed_reps",
        ],
        dtype="str",
    )
    assert_same({"participants": people, "sessions": sessions, "pain": pain})


@SETTINGS
@given(
    data=st.data(),
    n=st.integers(1, 6),
    ints_typed=st.booleans(),
)
def test_typed_numbers_and_dates_parse_alike(data, n, ints_typed):
    """Parquet-like typed columns: float or integer columns, whole and broken, and timestamps
    with and without a time of day."""
    pool = INTS if ints_typed else FLOATS
    dtype = "int64" if ints_typed else "float64"

    def column(required: bool = True) -> pd.Series:
        values = data.draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
        return pd.Series(values, dtype=dtype)

    sessions = pd.DataFrame(
        {
            "participant_id": "p0",
            "session_date": pd.Series(
                data.draw(st.lists(st.sampled_from(NS), min_size=n, max_size=n)),
                dtype="datetime64[ns]",
            ),
            "stage": column(),
            "prescribed_sets": column(),
            "prescribed_reps": column(),
            "completed_sets": column(),
            "completed_reps": column(),
            "load_kg": column(),
            "lowering_s": column(),
        }
    )
    people = participants([pd.Timestamp("2024-01-01")])
    people["age_years"] = pd.Series([data.draw(st.sampled_from(pool))], dtype=dtype)
    visa = pd.DataFrame(
        {
            "participant_id": "p0",
            "assessed_on": pd.Timestamp("2024-01-02"),
            **{f"q{i}": pd.Series([5] * n, dtype=dtype) for i in range(1, 7)},
            "q7": column(False),  # an optional integer: float64 with NaN when missing
            "q8a": column(False),
        }
    )
    assert_same({"participants": people, "sessions": sessions, "visa_a": visa})


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "ä", " a", "", "c"]))),
    keys=st.lists(st.sampled_from(["a", "b", "ä", " a", "", "z"]), unique=True),
)
def test_positions_in_is_get_indexer(values, keys):
    """The Arrow lookup of participant ids equals pandas' (missing and absent values: -1)."""
    series = pd.Series(values, dtype="str")
    expected = pd.Index(keys, dtype="str").get_indexer(series)
    expected = np.where(series.isna().to_numpy(), -1, expected)
    assert positions_in(series, keys).tolist() == expected.tolist()


@settings(max_examples=100, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0, 1, np.iinfo(np.int64).min])))
)
def test_repeated_pairs_is_duplicated_keep_false(pairs):
    frame = pd.DataFrame(pairs, columns=["a", "b"], dtype="int64")
    expected = frame.duplicated(keep=False).to_numpy()
    got = schema._repeated_pairs(frame["a"].to_numpy(), frame["b"].to_numpy())
    assert got.tolist() == expected.tolist()


TEXT_VALUES = ["p0", " p1 ", "p2", "", "   ", None, "morning", "after", "mor\x01ning", "é"]


@pytest.mark.parametrize("shift", [0, 3])
def test_categorical_text_parses_as_text(shift):
    """Text columns that arrive dictionary-encoded (a Parquet file written from a cohort: ids
    and enums as categoricals) are decoded by Arrow instead of through one Python string per
    row; the tables, problems (values, rows, rules) and warnings must be those of the same
    values given as plain text (every value of TEXT_VALUES in both columns, paired
    differently)."""
    ids = TEXT_VALUES
    timing = TEXT_VALUES[shift:] + TEXT_VALUES[:shift]
    n = len(ids)
    pain = pd.DataFrame(
        {
            "participant_id": ids,
            "recorded_on": ["2024-01-06"] * n,
            "timing": timing[:n],
            "nrs": ["3"] * n,
        }
    )
    raw = {
        "participants": participants(["2024-01-05"] * 3),
        "sessions": pd.DataFrame(
            {
                "participant_id": ["p0"],
                "session_date": ["2024-01-06"],
                "stage": ["1"],
                "prescribed_sets": ["3"],
                "prescribed_reps": ["15"],
                "completed_sets": ["3"],
                "completed_reps": ["15"],
                "load_kg": ["0"],
            }
        ),
    }
    as_text = outcome({**raw, "pain": pain.astype({"participant_id": "str", "timing": "str"})})
    as_categories = outcome(
        {**raw, "pain": pain.astype({"participant_id": "category", "timing": "category"})}
    )
    assert as_categories[1:] == as_text[1:]
    for name in as_text[0]:
        pd.testing.assert_frame_equal(as_categories[0][name], as_text[0][name], check_exact=True)
