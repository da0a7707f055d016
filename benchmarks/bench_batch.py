"""A night's clinic audits: 4 jobs x 5 sites = 20 reports on one cohort, 2 workers.

Simulates the cohort (``--participants``, default 2,000) into a folder, writes a job file of
four ``clinic_audit`` jobs fanned out over the five sites (different targets and titles, one
external), then times ``rehabstats batch JOBS --force`` as an operator runs it (a fresh
process; wall-clock). With ``--before DIR`` (an earlier source tree: ``git archive <commit> |
tar -x -C DIR``) the earlier code runs the same batch too, the two alternating, and the
ratio is printed. With ``--reuse`` this tree runs it twice per round, alternating: with a new
kernel for every report (``--reports-per-kernel 1``, "reuse off") and with each worker
keeping its kernel (the default ``reports_per_kernel``, "reuse on").

Usage::

    python benchmarks/bench_batch.py [--participants 2000] [--workers 2] [--repeat 1]
                                     [--before DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOBS = """\
output_dir: {out}
workers: {workers}
defaults:
  data: {data}
  audience: internal
jobs:
  - name: audit
    report: clinic_audit
    for_each: site
    output: audit/{{site}}.html
  - name: audit-strict
    report: clinic_audit
    for_each: site
    output: strict/{{site}}.html
    parameters: {{target_adherence: 0.9, target_relapse_rate: 3, title: "Strict audit {{site}}"}}
  - name: audit-external
    report: clinic_audit
    for_each: site
    output: external/{{site}}.html
    audience: external
    parameters: {{pseudonym_key_file: {key}}}
  - name: audit-short
    report: clinic_audit
    for_each: site
    output: short/{{site}}.html
    parameters: {{swimmer_limit: 20, title: "Audit {{site}} (short)"}}
"""


def run_batch(tree: Path, jobs: Path, extra: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "rehabstats", "batch", str(jobs), "--force", *extra],
        env=env,
        cwd=tree,  # `python -m` puts the working folder first on sys.path, before PYTHONPATH
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"batch failed ({tree}):\n{result.stdout}\n{result.stderr}")
    if "20 ok" not in result.stdout:
        raise SystemExit(f"not 20 reports rendered ({tree}):\n{result.stdout}")
    return seconds


def where_the_time_goes(out: Path) -> str:
    """Per report: the worker's time (manifests) and the notebook's execution (papermill)."""
    worker = [json.loads(p.read_text())["seconds"] for p in out.rglob("*.manifest.json")]
    executing = [
        json.loads(p.read_text())["metadata"]["papermill"]["duration"]
        for p in out.rglob("*.ipynb")
        if not p.name.endswith(".failed.ipynb")
    ]
    if not worker or not executing:
        return "no manifests"
    return (
        f"per report {statistics.mean(worker):.1f} s in its worker, "
        f"{statistics.mean(executing):.1f} s executing the notebook"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--before", type=Path, default=None, help="an earlier source tree")
    parser.add_argument(
        "--reuse", action="store_true", help="this tree with and without kernel reuse"
    )
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    trees: dict[str, tuple[Path, list[str]]] = {"after": (here, [])}
    if args.reuse:
        trees = {"reuse off": (here, ["--reports-per-kernel", "1"]), "reuse on": (here, [])}
    if args.before is not None:
        trees = {"before": (args.before.resolve(), []), **trees}
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        work = Path(tmp)
        data = work / "cohort"
        subprocess.run(
            [sys.executable, "-m", "rehabstats", "simulate", "--participants",
             str(args.participants), "--seed", "11", "--out", str(data)],
            env={**os.environ, "PYTHONPATH": str(here)}, check=True, capture_output=True,
        )  # fmt: skip
        key = work / "pseudonym.key"
        key.write_text("a-pseudonym-key-of-at-least-32-characters-0123456789\n")
        key.chmod(0o600)
        times: dict[str, list[float]] = {label: [] for label in trees}
        for _ in range(args.repeat):
            for label, (tree, extra) in trees.items():
                slug = label.replace(" ", "-")
                jobs = work / f"jobs-{slug}.yaml"
                out = work / f"out-{slug}"
                jobs.write_text(JOBS.format(out=out, workers=args.workers, data=data, key=key))
                before_load = os.getloadavg()[0]
                seconds = run_batch(tree, jobs, extra)
                times[label].append(seconds)
                print(
                    f"{label}: {seconds:.1f} s (load average {before_load:.1f} before, "
                    f"{os.getloadavg()[0]:.1f} after); {where_the_time_goes(out)}",
                    flush=True,
                )
    print(f"{args.participants:,} participants, 20 clinic audits, {args.workers} workers")
    medians = {label: statistics.median(v) for label, v in times.items()}
    for label, median in medians.items():
        print(f"  {label:>6}: median {median:.1f} s ({median / 20:.2f} s per report)")
    if "before" in medians and "after" in medians:
        print(f"  before / after: {medians['before'] / medians['after']:.2f}x")
    if "reuse on" in medians:
        ratio = medians["reuse off"] / medians["reuse on"]
        print(f"  reuse off / reuse on: {ratio:.2f}x")
        paired = [a / b for a, b in zip(times["reuse off"], times["reuse on"], strict=True)]
        print("  paired ratios: " + ", ".join(f"{r:.2f}x" for r in paired))
        if "before" in medians:
            print(f"  before / reuse on: {medians['before'] / medians['reuse on']:.2f}x")


if __name__ == "__main__":
    main()
