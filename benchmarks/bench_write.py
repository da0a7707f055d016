"""Writing the metric files: ``DataFrame.to_csv`` (before) against the column-wise writer of
``rehabstats.metrics.tables`` (after) and Parquet, on the same computed tables.

The tables of ``rehabstats metrics`` (all of them, the pain model included) are computed once
for a simulated cohort; each writer then writes them all into a temporary folder, the writers
alternating, ``--repeat`` times; the CSV bytes are checked identical.

Usage::

    python benchmarks/bench_write.py --participants 100000 [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from rehabstats import simulate_cohort
from rehabstats.config import AnalysisConfig
from rehabstats.metrics.outputs import OUTPUT_FILES
from rehabstats.metrics.tables import table_writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        cohort = simulate_cohort(args.participants, seed=args.seed)
        config = AnalysisConfig()
        frames = {name: fn(cohort, None, config) for name, fn in OUTPUT_FILES.items()}
    print(f"{args.participants:,} participants: tables in {time.perf_counter() - start:.1f} s")
    for name, frame in frames.items():
        print(f"  {name}: {frame.shape[0]:,} rows x {frame.shape[1]} columns")
    writers = {
        "pandas to_csv": lambda f, p: f.to_csv(p, index=False, na_rep=""),
        "tables csv": lambda f, p: table_writer(f, "csv")(p),
        "tables parquet": lambda f, p: table_writer(f, "parquet")(p),
    }
    times: dict[str, list[float]] = {w: [] for w in writers}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for label, write in writers.items():
                folder = Path(tmp, label.replace(" ", "_"))
                folder.mkdir(exist_ok=True)
                start = time.perf_counter()
                for name, frame in frames.items():
                    write(frame, folder / name)
                times[label].append(time.perf_counter() - start)
                sizes[label] = sum(p.stat().st_size for p in folder.iterdir())
        for name in frames:
            before = Path(tmp, "pandas_to_csv", name).read_bytes()
            after = Path(tmp, "tables_csv", name).read_bytes()
            assert before == after, f"{name} differs"
    print(f"load average {os.getloadavg()[0]:.1f}; every CSV file byte-identical")
    base = statistics.median(times["pandas to_csv"])
    for label, values in times.items():
        median = statistics.median(values)
        print(
            f"  {label:<15} median {median:6.2f} s (min {min(values):.2f}, max {max(values):.2f})"
            f"  {base / median:4.1f}x faster than to_csv  {sizes[label] / 1e6:7.1f} MB"
        )


if __name__ == "__main__":
    main()
