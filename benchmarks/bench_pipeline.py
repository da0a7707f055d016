"""Time each stage of the pipeline on a simulated cohort and report peak memory.

Usage::

    python benchmarks/bench_pipeline.py --participants 10000
    python benchmarks/bench_pipeline.py --participants 100000 --no-model

Prints one Markdown table (stage, seconds, peak resident memory so far); the figures are
recorded in docs/performance.md. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import rehabstats as rs
from rehabstats.metrics.outputs import participant_metrics, weekly_metrics
from rehabstats.metrics.pain import pain_model
from rehabstats.metrics.relapse import relapse_incidence, relapse_rates
from rehabstats.metrics.stages import stage_occupancy, time_to_stage, time_to_stage_summary


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--model",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also fit the pain trajectory mixed model",
    )
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    args = parser.parse_args()
    warnings.simplefilter("ignore", rs.DataWarning)

    rows: list[tuple[str, float, float]] = []
    state: dict[str, object] = {}

    def stage(name: str, fn: Callable[[], object]) -> object:
        start = time.perf_counter()
        result = fn()
        rows.append((name, time.perf_counter() - start, peak_mib()))
        return result

    n = args.participants
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cohort"
        state["tables"] = stage("simulate_tables", lambda: rs.simulate_tables(n, seed=args.seed))
        tables = state["tables"]
        n_rows = sum(len(tables[t]) for t in ("sessions", "pain"))
        state["cohort"] = stage(
            "validate (Cohort.from_tables)", lambda: rs.Cohort.from_tables(state.pop("tables"))
        )
        del tables  # only the validated cohort is kept
        stage(
            f"write {args.format}",
            lambda: rs.write_cohort(state["cohort"], folder, format=args.format),
        )
        cohort = stage(
            f"load_cohort ({args.format}, parse + validate)", lambda: rs.load_cohort(folder)
        )
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

    print(
        f"\n{n:,} participants, {n_rows:,} session + pain rows; "
        f"{platform.python_version()}, {platform.machine()}, rehabstats {rs.__version__}\n"
    )
    print("| stage | seconds | peak RSS so far (MiB) |")
    print("|---|---:|---:|")
    for name, seconds, mib in rows:
        print(f"| {name} | {seconds:.2f} | {mib:,.0f} |")


if __name__ == "__main__":
    main()
