"""Time ``--engine dask`` on a simulated partitioned cohort with bounded worker memory.

    python benchmarks/bench_dask.py --participants 1000000 --partitions 64 \
        --workers 2 --memory-limit 3GiB --work /tmp/bench_dask

Simulates the cohort straight into partitions (a chunk at a time; skipped when the folder
exists), measures the tables' in-memory size partition by partition, then runs
``write_metrics_dask`` on a LocalCluster of single-threaded workers with the given memory limit,
sampling every worker's resident memory twice a second. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GiB")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_dask"))
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    import pandas as pd
    import psutil

    from rehabstats.data.partitioned import open_partitioned, simulate_partitioned
    from rehabstats.errors import DataWarning
    from rehabstats.metrics.distributed import dask_client, write_metrics_dask

    warnings.simplefilter("ignore", DataWarning)
    cohort = args.work / f"cohort_{args.participants}_{args.partitions}"
    generated = None
    if not cohort.exists():
        start = time.perf_counter()
        simulate_partitioned(
            args.participants, cohort, n_partitions=args.partitions, seed=args.seed
        )
        generated = time.perf_counter() - start
    part = open_partitioned(cohort)
    rows = sum(sum(v) for v in part.rows.values())
    in_memory = 0
    for i in part.non_empty:  # one partition at a time
        for table in part.path(i).glob("*.parquet"):
            in_memory += int(pd.read_parquet(table).memory_usage(deep=True).sum())

    out = args.work / f"out_{args.participants}"
    peaks: dict[str, int] = {}
    with dask_client(n_workers=args.workers, memory_limit=args.memory_limit) as client:
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    rss = client.run(lambda: psutil.Process().memory_info().rss)
                except Exception:
                    rss = {}
                for worker, value in rss.items():
                    peaks[worker] = max(peaks.get(worker, 0), int(value))
                stop.wait(0.5)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        start = time.perf_counter()
        write_metrics_dask(cohort, out)
        elapsed = time.perf_counter() - start
        stop.set()
        thread.join()
    print(
        json.dumps(
            {
                "participants": part.n_participants,
                "rows": rows,
                "partitions": part.n_partitions,
                "workers": args.workers,
                "memory_limit": args.memory_limit,
                "cohort_in_memory_mb": round(in_memory / 2**20),
                "generate_s": None if generated is None else round(generated, 1),
                "metrics_s": round(elapsed, 1),
                "peak_worker_rss_mb": sorted(round(v / 2**20) for v in peaks.values()),
                "participants_per_s_per_core": round(
                    part.n_participants / elapsed / args.workers, 1
                ),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
