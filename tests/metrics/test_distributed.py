"""The Dask engine on partitioned cohorts: the same files as the pandas engine (issue 14).

The reference is the pandas engine on the same cohort: every output file of ``--engine dask``
must hold the same rows (participant rows may come in another order: partition by partition),
exactly for counts, days, flags and text, and within 1e-9 relative for floats (sums of
person-time and the model's sufficient statistics are added in another order).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import environment_without_dask, run_in_process

from rehabstats import load_cohort, simulate_tables, write_cohort, write_metrics
from rehabstats.data.partitioned import (
    MANIFEST,
    open_partitioned,
    part_name,
    partition_of,
    write_partitioned,
)
from rehabstats.errors import DataWarning

pytest.importorskip("distributed")

FLOAT_RTOL = 1e-9


def _read(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    keys = [k for k in ("participant_id", "week") if k in frame.columns]
    if keys and "group" not in frame.columns:
        frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    return frame


def assert_same_file(expected: Path, actual: Path) -> None:
    """Same columns and rows; a field differs only when both are floats within 1e-9."""
    a, b = _read(expected), _read(actual)
    assert list(a.columns) == list(b.columns), expected.name
    assert a.shape == b.shape, expected.name
    for column in a.columns:
        x, y = a[column].to_numpy(), b[column].to_numpy()
        differ = x != y
        if not differ.any():
            continue
        # a differing field must be a float (a decimal point or exponent) on both sides
        xf = pd.to_numeric(pd.Series(x[differ]), errors="coerce").to_numpy()
        yf = pd.to_numeric(pd.Series(y[differ]), errors="coerce").to_numpy()
        assert np.isfinite(xf).all() and np.isfinite(yf).all(), (expected.name, column)
        assert all(("." in v or "e" in v) for v in x[differ]), (expected.name, column)
        np.testing.assert_allclose(yf, xf, rtol=FLOAT_RTOL, atol=0, err_msg=column)


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> tuple[Path, Path]:
    """A simulated cohort as a folder and as 5 partitions of the same tables."""
    root = tmp_path_factory.mktemp("dask")
    tables = simulate_tables(160, seed=21)
    write_cohort(tables, root / "folder", format="parquet")
    write_partitioned(tables, root / "parts", n_partitions=5)
    return root / "folder", root / "parts"


def test_partitions_hold_participants_whole(cohorts):
    folder, parts = cohorts
    part = open_partitioned(parts)
    assert part.n_partitions == 5
    assert part.n_participants == 160
    seen = []
    for i in part.non_empty:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            cohort = load_cohort(part.path(i))  # each partition is a valid cohort by itself
        ids = cohort.participants["participant_id"].astype(str)
        assert (partition_of(ids, 5) == i).all()
        for name, table in cohort.tables.items():
            if name != "participants":  # every child row sits with its participant
                assert set(table["participant_id"].astype(str)) <= set(ids), name
        seen.extend(ids)
    whole = load_cohort(folder)
    assert sorted(seen) == sorted(whole.participants["participant_id"].astype(str))
    rows = json.loads((parts / MANIFEST).read_text())["rows"]
    assert sum(rows["sessions"]) == len(whole.sessions)


def test_dask_engine_writes_the_pandas_engines_files(cohorts, tmp_path, dask_scheduler):
    """A LocalCluster of 2 workers (the shared one, tests/conftest.py), every file, by arm
    (groups, the grouped mixed model) -- the pandas engine's files on the same cohort are the
    reference."""
    from rehabstats.metrics.distributed import dask_client, write_metrics_dask

    folder, parts = cohorts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        expected = write_metrics(load_cohort(folder), tmp_path / "pandas", by="arm")
    with dask_client(dask_scheduler) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        # a local cluster without a dashboard: its workers do not sample their own stacks
        import dask

        profiling = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
        assert list(profiling.values()) == [False, False]
        written = write_metrics_dask(parts, tmp_path / "dask", by="arm")
    assert sorted(p.name for p in written) == sorted(p.name for p in expected)
    for path in expected:
        assert_same_file(path, tmp_path / "dask" / path.name)
    assert not [p for p in (tmp_path / "dask").iterdir() if p.name.startswith(".")]


def test_a_participant_in_the_wrong_partition_is_named(cohorts, tmp_path):
    """Moving a participant (with all its rows) into another partition breaks the placement
    rule; the error names its table, row, id and both partitions."""
    from rehabstats.metrics.distributed import partition_outputs

    _, parts = cohorts
    part = open_partitioned(parts)
    a, b = part.non_empty[:2]
    moved = parts.parent / "moved"
    import shutil

    shutil.copytree(parts, moved)
    source = pd.read_parquet(moved / part_name(a) / "participants.parquet")
    target = pd.read_parquet(moved / part_name(b) / "participants.parquet")
    victim = source.iloc[[0]]
    pid = str(victim["participant_id"].iloc[0])
    pd.concat([target, victim]).to_parquet(
        moved / part_name(b) / "participants.parquet", index=False
    )
    out = partition_outputs(open_partitioned(moved), b, by=None, config=_config(), model=False)
    (problem,) = out["problems"]
    assert (problem.table, problem.column, problem.value) == ("participants", "participant_id", pid)
    assert problem.row == len(target) + 1  # appended last: the 1-based row of the file
    assert f"partition {b} of 5" in problem.rule and f"= {a}" in problem.rule


def _config():
    from rehabstats import AnalysisConfig

    return AnalysisConfig()


def test_partition_command_and_missing_dask_message(cohorts, tmp_path):
    folder, _ = cohorts
    run = [sys.executable, "-m", "rehabstats"]
    done = run_in_process(
        "partition", str(folder), "--out", str(tmp_path / "p"), "--partitions", "3"
    )
    assert done.returncode == 0, done.stderr
    assert open_partitioned(tmp_path / "p").participants == [
        int((partition_of(load_cohort(folder).participants["participant_id"], 3) == i).sum())
        for i in range(3)
    ]
    # without dask installed (in a real process, where dask cannot be imported): one line
    # saying how to install it, no traceback
    env = environment_without_dask(tmp_path)
    done = subprocess.run(
        [*run, "metrics", str(tmp_path / "p"), "--out", str(tmp_path / "m"), "--engine", "dask"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 1
    assert "pip install" in done.stderr and "rehabstats[dask]" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "m").exists()


def test_a_partitioned_cohort_given_to_the_pandas_engine_says_what_to_do(cohorts, tmp_path):
    # the tables of a partitioned cohort are in its part-NNNNN/ folders: read as a cohort
    # folder it is one clear problem pointing at --engine dask, not "required table is missing"
    _, parts = cohorts
    done = run_in_process("metrics", str(parts), "--out", str(tmp_path / "m"))
    assert done.returncode == 1
    assert "is a partitioned cohort" in done.stderr and "--engine dask" in done.stderr
    assert "required table is missing" not in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "m").exists()


def test_a_work_folder_left_by_a_killed_client_is_removed_by_the_next_run(
    cohorts, tmp_path, dask_scheduler
):
    """A client killed while its workers write leaves its hidden work folder in the output
    folder; the next run removes it (its owner process is gone), and leaves alone a hidden
    folder of the same prefix that rehabstats did not make (no owner file, recent)."""
    from rehabstats.metrics.distributed import dask_client, write_metrics_dask

    _, parts = cohorts
    out = tmp_path / "m"
    # a client killed right after making its work folder: os._exit runs no clean-up
    killed = (
        "import os, sys\n"
        "import rehabstats.metrics.distributed as d\n"
        "def die(*a, **k):\n"
        "    os._exit(9)\n"
        "d.cohort_inputs = die\n"
        f"d.write_metrics_dask({str(parts)!r}, {str(out)!r}, model=False)\n"
    )
    done = subprocess.run([sys.executable, "-c", killed], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    left = [p for p in out.iterdir() if p.name.startswith(".rehabstats-dask-")]
    assert len(left) == 1 and left[0].is_dir()  # the defect's trace: a leftover work folder
    foreign = out / ".rehabstats-dask-notours"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("a user's file")
    with dask_client(dask_scheduler):
        write_metrics_dask(parts, out, model=False)
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert hidden == [foreign.name]  # the dead client's folder is gone, the user's stays
    assert (foreign / "keep.txt").read_text() == "a user's file"
