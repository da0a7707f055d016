"""Time each stage of the pipeline on a simulated cohort, with peak memory and the ratios to
DuckDB (loading + validation) and lme4 (the trajectory model) measured in the same run.

Usage::

    python benchmarks/bench_pipeline.py --participants 10000
    python benchmarks/bench_pipeline.py --participants 10000 100000 200000
    python benchmarks/bench_pipeline.py --participants 100000 --no-model --no-csv

Per size, prints one Markdown table: stage, seconds, peak resident memory of this process so
far, and the reference and ratio where there is one:

- ``load_cohort`` from Parquet and from CSV against :func:`bench_duckdb_load.duckdb_checks`
  (DuckDB reading the same files and running the same rules; skipped without duckdb);
- ``pain_model`` against ``lme4::lmer`` + lmerTest's Satterthwaite df on the same weekly data
  (``Rscript``; skipped when R, lme4 or lmerTest is absent);
- ``rehabstats metrics`` (the command, model included) run in a fresh process on the Parquet
  folder and on the CSV folder: its wall time and its own peak RSS (the memory target: ≤ 2.5 GB
  at 100,000 participants).

The figures are recorded in docs/performance.md. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import rehabstats as rs
from rehabstats.metrics.outputs import participant_metrics, weekly_metrics
from rehabstats.metrics.pain import pain_model, weekly_pain
from rehabstats.metrics.relapse import relapse_incidence, relapse_rates
from rehabstats.metrics.stages import stage_occupancy, time_to_stage, time_to_stage_summary

sys.path.insert(0, str(Path(__file__).parent))
import bench_duckdb_load
import bench_mixed


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_PEAK_OF_COMMAND = """
import re, sys
sys.argv = ["rehabstats", *sys.argv[1:]]
from rehabstats.cli import main
try:
    main()
finally:  # this process's own high-water mark (ru_maxrss would include the parent's, forked)
    status = open("/proc/self/status").read()
    print("VmHWM", re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), file=sys.stderr)
"""


def metrics_command(folder: Path, out: Path) -> tuple[float, float]:
    """``rehabstats metrics`` in a fresh process: (seconds, its peak RSS in MiB)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_COMMAND, "metrics", str(folder), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    found = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("VmHWM")]
    if done.returncode != 0 or not found:
        raise SystemExit(f"rehabstats metrics failed on {folder}:\n{done.stderr}")
    return seconds, int(found[-1]) / 1024


def model_data(cohort: rs.Cohort) -> object:
    """The trajectory model's data as lme4 gets it: participant, arm, t = week - 1, pain."""
    weekly = weekly_pain(cohort)
    arm = cohort.participants.set_index("participant_id")["arm"].astype("str")
    return weekly.assign(
        participant=weekly["participant_id"].astype("str"),
        arm=arm.reindex(weekly["participant_id"].astype("str")).to_numpy(),
        t=weekly["week"] - 1.0,
        pain=weekly["pain_morning_mean"].round(6),
    )[["participant", "arm", "t", "pain"]]


def run(n: int, args: argparse.Namespace) -> None:
    rows: list[tuple[str, float, float, str, str]] = []
    state: dict[str, object] = {}

    def stage(name: str, fn: Callable[[], object], *, reference: str = "") -> object:
        start = time.perf_counter()
        result = fn()
        rows.append((name, time.perf_counter() - start, peak_mib(), reference, ""))
        return result

    def compared(name: str, ours: float, what: str, theirs: float | None) -> None:
        label, seconds, mib, _, _ = rows[-1]
        if theirs is None:
            rows[-1] = (label, seconds, mib, f"{what}: not run", "")
        else:
            rows[-1] = (label, seconds, mib, f"{what} {theirs:.2f} s", f"{ours / theirs:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        tables = stage("simulate_tables", lambda: rs.simulate_tables(n, seed=args.seed))
        n_rows = sum(len(tables[t]) for t in ("sessions", "pain"))
        state["tables"] = tables
        del tables
        cohort = stage(
            "validate (Cohort.from_tables)", lambda: rs.Cohort.from_tables(state.pop("tables"))
        )
        formats = ["parquet", *(["csv"] if args.csv else [])]
        folders = {}
        for fmt in formats:
            folders[fmt] = Path(tmp) / fmt
            stage(f"write {fmt}", lambda fmt=fmt: rs.write_cohort(cohort, folders[fmt], format=fmt))
        cohort = None  # only the files from here
        for fmt in formats:
            loaded = stage(
                f"load_cohort ({fmt}: read + validate)",
                lambda fmt=fmt: rs.load_cohort(folders[fmt], loaded_on=bench_duckdb_load.LOADED_ON),
            )
            del loaded
            if args.duckdb:
                start = time.perf_counter()
                broken = bench_duckdb_load.duckdb_checks(folders[fmt])
                duck = time.perf_counter() - start
                if any(v for k, v in broken.items() if "(note)" not in k):
                    raise SystemExit(f"DuckDB found problems rehabstats did not: {broken}")
                compared("", rows[-1][1], "DuckDB", duck)
        cohort = rs.load_cohort(folders["parquet"], loaded_on=bench_duckdb_load.LOADED_ON)
        stage("participant_metrics", lambda: participant_metrics(cohort))
        stage("weekly_metrics", lambda: weekly_metrics(cohort))
        stage(
            "time_to_stage + summary (by arm)",
            lambda: (time_to_stage(cohort, by="arm"), time_to_stage_summary(cohort, by="arm")),
        )
        stage(
            "relapse_rates + incidence (by arm)",
            lambda: (relapse_rates(cohort, by="arm"), relapse_incidence(cohort, by="arm")),
        )
        stage("stage_occupancy (by arm)", lambda: stage_occupancy(cohort, by="arm"))
        if args.model:
            stage("pain_model (by arm)", lambda: pain_model(cohort, by="arm"))
            if args.r and bench_mixed.r_available():
                fit = bench_mixed.run_r(model_data(cohort), timeout=args.r_timeout)
                theirs = None if fit is None else fit["lmer"] + fit["df"]
                compared("", rows[-1][1], "lmer + lmerTest df", theirs)
            else:
                compared("", rows[-1][1], "lme4", None)
        cohort = None
        for fmt in formats:
            seconds, mib = metrics_command(folders[fmt], Path(tmp) / f"metrics_{fmt}")
            label = f"`rehabstats metrics` ({fmt} folder, model; fresh process)"
            rows.append((label, seconds, mib, "", ""))

    print(
        f"\n{n:,} participants, {n_rows:,} session + pain rows; "
        f"{platform.python_version()}, {platform.machine()}, rehabstats {rs.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    print("| stage | seconds | peak RSS (MiB) | reference (same run) | ratio |")
    print("|---|---:|---:|---|---:|")
    for name, seconds, mib, reference, ratio in rows:
        print(f"| {name} | {seconds:.2f} | {mib:,.0f} | {reference} | {ratio} |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[10_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--model",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also fit the pain trajectory mixed model",
    )
    parser.add_argument("--csv", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--duckdb", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--r", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--r-timeout", type=float, default=1800)
    args = parser.parse_args()
    warnings.simplefilter("ignore", rs.DataWarning)
    if args.duckdb:
        try:
            import duckdb  # noqa: F401
        except ImportError:
            args.duckdb = False
    for n in args.participants:
        if len(args.participants) > 1:  # each size in its own process: its own peak memory
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--participants",
                    str(n),
                    *sys.argv[sys.argv.index("--participants") + 1 + len(args.participants) :],
                ],
                check=True,
            )
        else:
            run(n, args)


if __name__ == "__main__":
    main()
