"""The metric files' CSV text: byte for byte what ``DataFrame.to_csv(index=False, na_rep="")``
writes (pandas is the reference), over every dtype and edge; Parquet output."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from cli_support import run_in_process

from rehabstats import simulate_cohort, write_metrics
from rehabstats.config import AnalysisConfig
from rehabstats.errors import ParameterError
from rehabstats.metrics import tables
from rehabstats.metrics.outputs import OUTPUT_FILES
from rehabstats.metrics.tables import csv_bytes


def pandas_csv(frame: pd.DataFrame) -> bytes:
    """The reference: what the metric files were (``to_csv`` writes os.linesep, "\\n" here)."""
    return frame.to_csv(index=False, na_rep="").encode("utf-8")


def assert_same_text(frame: pd.DataFrame) -> None:
    ours, theirs = csv_bytes(frame), pandas_csv(frame)
    if ours != theirs:  # show the first differing line, not two megabytes
        for a, b in zip(ours.split(b"\n"), theirs.split(b"\n"), strict=False):
            assert a == b
    assert ours == theirs


FLOATS = [
    0.0, -0.0, 1.0, -7.0, 0.5, 0.1 + 0.2, 1 / 3, 123456789.123, 2.5,
    1e-4, 0.00012, 9.999e-5, 1e-5, 2.5e-7, 5e-324, 2.2250738585072014e-308,  # Python: 1e-05 ...
    1e15, 1e15 + 0.5, 9999999999999998.0, 1e16, 1.234567e16, 1e21, 1e22, 1.7976931348623157e308,
    np.inf, -np.inf, np.nan, -1e-300, 4503599627370497.0, 12345678901234.5,
]  # fmt: skip


def every_dtype() -> pd.DataFrame:
    n = len(FLOATS)
    texts = ["a", "b,c", 'say "hi"', None, "two\nlines", "", "ünïcødé ✓", "cr\r", " lead",
             "trail ", "'", "\\", "x" * 300, "a;b", "tab\there", '"', ",", "\r\n"]  # fmt: skip
    texts = (texts * 2)[:n]
    rng = np.random.default_rng(0)
    with np.errstate(over="ignore"):  # 1e308 is inf in float32
        float32 = np.array(FLOATS, dtype="float32")
    return pd.DataFrame(
        {
            "float": FLOATS,
            "whole_floats": np.arange(n, dtype="float64") * 1000,
            "float32": float32,
            "int": np.arange(n, dtype="int64") - 10**17,
            "uint8": np.arange(n, dtype="uint8"),
            "bool": np.arange(n) % 3 == 0,
            "Int64": pd.array([None if i % 4 == 0 else i - 5 for i in range(n)], dtype="Int64"),
            "boolean": pd.array([[None, True, False][i % 3] for i in range(n)], dtype="boolean"),
            "Float64": pd.array(
                [None if i % 5 == 0 else v for i, v in enumerate(FLOATS)], dtype="Float64"
            ),
            "text": pd.Series(texts, dtype="str"),
            "object_text": pd.Series(texts, dtype=object),
            "category": pd.Categorical([["low", "high", None][i % 3] for i in range(n)]),
            "category_commas": pd.Categorical([["a,b", 'q"', "z"][i % 3] for i in range(n)]),
            "date": pd.to_datetime(["2024-01-01", None, "2024-02-29"] * (n // 3)),
            "datetime": pd.to_datetime(["2024-01-01 10:30", None, "2024-02-29 00:00"] * (n // 3)),
            "duration": pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
            "object_bool": pd.Series([True, np.nan, False] * (n // 3), dtype=object),
            "all_missing": np.full(n, np.nan),
        }
    )


def test_every_dtype_and_edge_as_pandas_writes_it():
    frame = every_dtype()
    assert_same_text(frame)
    # the edges are really there (the frame is what the test says it is)
    text = csv_bytes(frame).decode()
    for expected in ("1e-05", "1e+16", "-0.0", "inf", "-inf", '"b,c"', '"say ""hi"""'):
        assert expected in text
    assert "nan" not in text.lower().replace("ünïcødé", "")  # NaN is an empty field


def test_rows_written_in_several_chunks(monkeypatch):
    monkeypatch.setattr(tables, "_ROWS_PER_CHUNK", 7)
    assert_same_text(every_dtype())


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"only": ["a", None, "", "b"]}),  # a line of one empty field is quoted
        pd.DataFrame({"only": [np.nan, 1.5]}),
        pd.DataFrame({"a": pd.Series([], dtype="float64"), "b": pd.Series([], dtype="str")}),
        pd.DataFrame({"a,b": [1], 'q"': [2]}),  # header fields quoted as data fields
        pd.DataFrame({"mixed": pd.Series([1, "a", 2.5, None], dtype=object), "x": 1}),
        pd.DataFrame({"complex": [1 + 2j, 3j], "x": [1, 2]}),
        pd.DataFrame({1: [1.5], "b": [2]}),  # a column name that is not text
        pd.DataFrame({"f_cat": pd.Categorical([0.1, 1e-5, None]), "x": 1}),
        pd.DataFrame({"tz": pd.to_datetime(["2024-01-01 10:00", None], utc=True), "x": 1}),
    ],
)
def test_edge_frames_as_pandas_writes_them(frame):
    assert_same_text(frame)


def test_random_floats_as_pandas_writes_them():
    # 60,000 values: every bit pattern class (random bits: huge, tiny, subnormal), rounded
    # decimals (whole numbers, one decimal) and values spread over 40 orders of magnitude
    rng = np.random.default_rng(17)
    n = 20_000
    bits = rng.integers(0, 2**63 - 2**52, size=n, dtype=np.int64).view(np.float64)
    decimals = np.round(rng.normal(size=n) * 1000, rng.integers(0, 4))
    spread = rng.normal(size=n) * 10.0 ** rng.integers(-20, 20, n)
    frame = pd.DataFrame({"bits": bits * rng.choice([-1, 1], n), "dec": decimals, "s": spread})
    assert_same_text(frame)


@pytest.fixture(scope="module")
def cohort():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate_cohort(120, seed=5)


@pytest.mark.parametrize("by", [None, "arm"])
def test_every_metric_file_as_pandas_writes_it(cohort, by, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written = write_metrics(cohort, tmp_path, by=by)
        frames = {n: f(cohort, by, AnalysisConfig()) for n, f in OUTPUT_FILES.items()}
    assert sorted(p.name for p in written) == sorted(OUTPUT_FILES)
    for name, frame in frames.items():
        assert (tmp_path / name).read_bytes() == pandas_csv(frame), name


def test_parquet_holds_the_same_tables_and_replaces_the_csv_set(cohort, tmp_path):
    (tmp_path / "notes.csv").write_text("mine\n")  # not ours: left alone
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_metrics(cohort, tmp_path, model=False)
        written = write_metrics(cohort, tmp_path, format="parquet", model=False)
        frames = {n: f(cohort, None, AnalysisConfig()) for n, f in OUTPUT_FILES.items()}
    names = sorted(n.replace(".csv", ".parquet") for n in OUTPUT_FILES if n != "pain_model.csv")
    assert sorted(p.name for p in written) == names
    # the CSV files of the earlier run are gone (one set in the folder); other files stay
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, "notes.csv"])
    for name in names:
        expected = frames[name.replace(".parquet", ".csv")]
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / name), expected)


def test_unknown_format_is_refused(cohort, tmp_path):
    with pytest.raises(ParameterError, match="csv, parquet"):
        write_metrics(cohort, tmp_path / "out", format="xlsx")
    assert not (tmp_path / "out").exists()


def test_dates_formatted_in_the_chunks_pandas_formats(monkeypatch):
    # to_csv formats 100,000 // 2 = 50,000 rows at a time and writes a chunk's datetimes as
    # dates only when all of them are at midnight: one time of day in the second chunk gives
    # times there, dates only in the first
    days = pd.Series(pd.date_range("2020-01-01", periods=60_000, freq="D").astype("M8[s]"))
    days.iloc[55_000] += pd.Timedelta(hours=9)
    frame = pd.DataFrame({"day": days, "n": np.arange(60_000)})
    lines = csv_bytes(frame).split(b"\n")
    assert lines[1] == b"2020-01-01,0"
    assert lines[50_001].endswith(b" 00:00:00,50000")
    monkeypatch.setattr(tables, "_ROWS_PER_CHUNK", 7_000)  # our chunks differ from pandas'
    assert_same_text(frame)


def test_command_line_writes_parquet(cohort, tmp_path):

    from rehabstats import write_cohort

    folder = write_cohort(cohort, tmp_path / "cohort")
    out = tmp_path / "m"
    result = run_in_process(
        "metrics", str(folder), "--out", str(out), "--format", "parquet", "--no-model"
    )
    assert result.returncode == 0, result.stderr
    assert "participant_metrics.parquet" in result.stdout
    assert len(pd.read_parquet(out / "participant_metrics.parquet")) == 120
    assert not list(out.glob("*.csv"))
