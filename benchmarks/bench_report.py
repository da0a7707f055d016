"""How long ``rehabstats demo`` takes, against papermill + nbconvert on an empty notebook.

The target: ``rehabstats demo`` (both reports, default demo cohort) in at most 2.5× the time
papermill + nbconvert need for an empty notebook on the same machine. Both are timed the way a
user meets them: a fresh Python process each run (imports, kernel start, execution, HTML
conversion, writing the files), wall-clock, the median of ``--repeat`` runs after one warm-up
run of each (file-system caches), the two alternating.

Usage::

    python benchmarks/bench_report.py [--repeat 3] [--participants N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EMPTY_NOTEBOOK = r"""
import sys
import nbformat, papermill
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_notebook

work = sys.argv[1]
nb = new_notebook(cells=[new_code_cell("x = 1", metadata={"tags": ["parameters"]})],
                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                           "language": "python"}})
nbformat.write(nb, f"{work}/empty.ipynb")
papermill.execute_notebook(f"{work}/empty.ipynb", f"{work}/out.ipynb", progress_bar=False)
body, _ = HTMLExporter(exclude_input=True).from_filename(f"{work}/out.ipynb")
open(f"{work}/out.html", "w").write(body)
"""


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{result.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--participants", type=int, default=None,
                        help="demo cohort size (default: the reports' default)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rehabstats-bench-") as work:
        empty_cmd = [sys.executable, "-c", EMPTY_NOTEBOOK, work]
        demo_cmd = [sys.executable, "-m", "rehabstats", "demo", "--out", f"{work}/reports",
                    "--no-progress"]  # fmt: skip
        if args.participants is not None:
            demo_cmd += ["--participants", str(args.participants)]
        timed(empty_cmd)  # warm-up
        timed(demo_cmd)
        empty: list[float] = []
        demo: list[float] = []
        for _ in range(args.repeat):  # alternated, so that a drift in machine speed hits both
            empty.append(timed(empty_cmd))
            demo.append(timed(demo_cmd))
        sizes = {p.name: p.stat().st_size for p in Path(work, "reports").glob("*.html")}

    figures = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform(terse=True)}",
        "python": platform.python_version(),
        "repeat": args.repeat,
        "empty_notebook_seconds": statistics.median(empty),
        "demo_seconds": statistics.median(demo),
        "ratio": statistics.median(demo) / statistics.median(empty),
        "paired_ratio": statistics.median(d / e for d, e in zip(demo, empty, strict=True)),
        "empty_runs": empty,
        "demo_runs": demo,
        "html_bytes": sizes,
    }
    print(f"machine: {figures['machine']}, Python {figures['python']}")
    print(f"papermill + nbconvert, empty notebook: {figures['empty_notebook_seconds']:.2f} s "
          f"(median of {args.repeat}: {', '.join(f'{s:.2f}' for s in empty)})")  # fmt: skip
    print(f"rehabstats demo (both reports):        {figures['demo_seconds']:.2f} s "
          f"(median of {args.repeat}: {', '.join(f'{s:.2f}' for s in demo)})")  # fmt: skip
    print(f"ratio of the medians: {figures['ratio']:.2f}x; median of the paired ratios: "
          f"{figures['paired_ratio']:.2f}x (target <= 2.5x; load average "
          f"{os.getloadavg()[0]:.1f})")  # fmt: skip
    for name, size in sorted(sizes.items()):
        print(f"  {name}: {size / 1e6:.2f} MB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
