"""Start-up costs: ``rehabstats validate --help`` and ``import rehabstats.metrics.outputs``
against ``import pandas``, each a fresh process, the commands alternating (paired runs).

``--before DIR`` also times a second source tree (e.g. an export of an earlier commit:
``git archive <commit> | tar -x -C DIR``) in the same rounds, so that the before/after ratio
comes from the same load on the machine.

Usage::

    python benchmarks/bench_imports.py [--repeat 7] [--before DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "import pandas": ["-c", "import pandas"],
    "import rehabstats.metrics.outputs": ["-c", "import rehabstats.metrics.outputs"],
    "rehabstats validate --help": ["-m", "rehabstats", "validate", "--help"],
}
SMALL_COHORT = 200
"""Participants of the cohort ``rehabstats validate`` and ``metrics --no-model`` run on (small:
what is timed is the fixed cost of a command)."""


def timed(args: list[str], tree: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: {args}\n{result.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--before", type=Path, default=None, help="an earlier source tree")
    args = parser.parse_args()
    trees = {"after": Path(__file__).resolve().parent.parent}
    if args.before is not None:
        trees = {"before": args.before.resolve(), **trees}
    work = Path(tempfile.mkdtemp(prefix="bench_imports_"))
    cohort = work / "cohort"
    timed(["-m", "rehabstats", "simulate", "--participants", str(SMALL_COHORT), "--out",
           str(cohort)], trees["after"])  # fmt: skip
    COMMANDS[f"rehabstats validate ({SMALL_COHORT})"] = [
        "-m",
        "rehabstats",
        "validate",
        str(cohort),
    ]
    COMMANDS[f"rehabstats metrics --no-model ({SMALL_COHORT})"] = [
        "-m", "rehabstats", "metrics", str(cohort), "--out", str(work / "m"), "--no-model"
    ]  # fmt: skip
    times: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.repeat + 1):  # round 0 warms the file-system caches
        for label, tree in trees.items():
            for name, command in COMMANDS.items():
                if name == "import pandas" and label == "before":
                    continue  # the same command in both trees
                seconds = timed(command, tree)
                if round_:
                    times.setdefault((label, name), []).append(seconds)
    pandas = statistics.median(times[("after", "import pandas")])
    print(f"load average {os.getloadavg()[0]:.1f}; median of {args.repeat} paired runs")
    for (label, name), values in times.items():
        median = statistics.median(values)
        print(
            f"{label:>6}  {name:<36} median {median:5.2f} s  "
            f"(min {min(values):.2f}, max {max(values):.2f})  {median / pandas:4.2f}x pandas"
        )


if __name__ == "__main__":
    main()
