"""Loading a cohort from PostgreSQL against loading it from Parquet.

Usage::

    python benchmarks/bench_sources.py --participants 100000
    python benchmarks/bench_sources.py --participants 10000 --read-sql   # also pandas.read_sql

Simulates a cohort, writes it once as a Parquet folder and once into a throwaway PostgreSQL
cluster that the script starts (``.ci/postgres``; or ``--url`` for a server of your own, a
superuser URL whose database gets the tables), then times ``load_cohort`` from each (read +
validate, and the read alone: ``read_source``) and checks the fingerprints are equal. With
``--read-sql`` it also times reading the same tables row by row through ``pandas.read_sql``
with a server-side cursor in chunks (the generic path), to compare with the ``COPY`` the
PostgreSQL reader uses. Prints one Markdown table; the figures are recorded in
docs/performance.md. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import rehabstats as rs
from rehabstats.data.schema import TABLES
from rehabstats.data.sources import read_source, redact
from rehabstats.data.sql import write_database

ROOT = Path(__file__).resolve().parents[1]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_sql_seconds(url: str) -> float:
    """Every table through pandas.read_sql, streamed in chunks (no validation)."""
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    start = time.perf_counter()
    with engine.connect().execution_options(stream_results=True) as conn:
        for name in TABLES:
            chunks = pd.read_sql(f"SELECT * FROM {name} ORDER BY id", conn, chunksize=65_536)
            pd.concat(list(chunks), ignore_index=True)
    engine.dispose()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--url", help="a PostgreSQL superuser URL (default: start a cluster)")
    parser.add_argument("--read-sql", action="store_true", help="also time pandas.read_sql")
    args = parser.parse_args()
    warnings.simplefilter("ignore", rs.DataWarning)

    rows: list[tuple[str, float, float]] = []

    def stage(name: str, fn: Callable[[], object]) -> object:
        start = time.perf_counter()
        result = fn()
        rows.append((name, time.perf_counter() - start, peak_mib()))
        return result

    with tempfile.TemporaryDirectory() as tmp:
        # the cluster's folder must be reachable by the postgres user: not inside tmp (private)
        cluster = Path(tempfile.mkdtemp(prefix="rehabstats-pg."))
        url = args.url
        if url is None:
            url = subprocess.run(
                [str(ROOT / ".ci" / "postgres"), "start", str(cluster)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        try:
            n = args.participants
            tables = stage("simulate_tables", lambda: rs.simulate_tables(n, seed=args.seed))
            total = sum(len(t) for t in tables.values())
            folder = Path(tmp) / "cohort"
            stage("write Parquet", lambda: rs.write_cohort(tables, folder, format="parquet"))
            stage("write PostgreSQL (COPY)", lambda: write_database(tables, url, overwrite=True))
            tables.clear()  # free the simulated frames before reading back
            stage("read Parquet (read_source)", lambda: read_source(folder))
            stage("read PostgreSQL (read_source)", lambda: read_source(url))
            if args.read_sql:
                seconds = read_sql_seconds(url)
                rows.append(("read PostgreSQL (pandas.read_sql)", seconds, peak_mib()))
            parquet = stage("load_cohort Parquet", lambda: rs.load_cohort(folder))
            fingerprint = parquet.fingerprint()
            del parquet
            postgres = stage("load_cohort PostgreSQL", lambda: rs.load_cohort(url))
            same = postgres.fingerprint() == fingerprint
        finally:
            if args.url is None:
                subprocess.run([str(ROOT / ".ci" / "postgres"), "stop", str(cluster)], check=False)
    print(
        f"{n:,} participants, {total:,} rows; Python {platform.python_version()}; "
        f"PostgreSQL at {redact(url)}; fingerprints equal: {same}\n"
    )
    print("| stage | seconds | peak memory (MiB) |")
    print("|---|---:|---:|")
    for name, seconds, peak in rows:
        print(f"| {name} | {seconds:.1f} | {peak:,.0f} |")


if __name__ == "__main__":
    main()
