"""Prove that a change leaves every output unchanged: snapshot the outputs, then compare two.

Usage::

    python benchmarks/compare_outputs.py snapshot OUT [--participants 2000] [--seed 11]
    python benchmarks/compare_outputs.py compare BEFORE AFTER

``snapshot`` simulates a cohort (``rehabstats simulate``), runs ``rehabstats metrics`` on it
without and with ``--by arm``, and renders both reports (``rehabstats report``) on it, all through
the command line of the code on ``PYTHONPATH`` (a git worktree of the version to snapshot, e.g.
``PYTHONPATH=$PWD python benchmarks/compare_outputs.py snapshot /tmp/before``).

``compare`` then holds the two snapshots against each other: every metric CSV must be
byte-identical; each report's HTML must be identical once the values that change with every
render are masked (the render time, the platform line, temporary and package paths, durations).
Exit status 0 when everything matches, 1 with a list of the differences otherwise. Not part of the
test suite (it renders four reports); run it around a refactoring.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    # ISO timestamps (render time, papermill start/end)
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    # the platform line of the provenance block
    (re.compile(r"on (Linux|Darwin|Windows)[^<;)]*"), "on <platform>"),
    # absolute paths (temporary folders, site-packages)
    (re.compile(r"(/[\w.+-]+){2,}"), "<path>"),
    # per-render identifiers (random hex of 12 or more digits; nbformat's random cell ids)
    (re.compile(r"\b[0-9a-f]{12,}\b"), "<hex>"),
    (re.compile(r'id="cell-id=[0-9a-f-]+"'), 'id="cell-id=<id>"'),
    # durations
    (re.compile(r"\d+(\.\d+)? s\b"), "<seconds> s"),
)
"""What differs between two renders of the same report on the same data and code."""


def run(*args: str, cwd: Path | None = None) -> None:
    """Run ``python -m rehabstats ARGS``; stop with its output when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "rehabstats", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if done.returncode != 0:
        sys.exit(f"rehabstats {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def snapshot(out: Path, *, participants: int, seed: int) -> None:
    """Write the cohort, the metric files and both reports into ``out``."""
    out.mkdir(parents=True, exist_ok=False)
    cohort = out / "cohort"
    run("simulate", "--participants", str(participants), "--seed", str(seed), "--out", str(cohort))
    run("metrics", str(cohort), "--out", str(out / "metrics_all"))
    run("metrics", str(cohort), "--out", str(out / "metrics_arm"), "--by", "arm")
    for report, extra in (("cohort_report", ["-p", "group", "arm"]), ("clinic_audit", [])):
        html = out / "reports" / f"{report}.html"
        run("report", str(cohort), "--notebook", report, "--out", str(html), *extra)
    print(f"snapshot written to {out}")


def masked(text: str) -> str:
    """The text with every per-render value replaced by a placeholder."""
    for pattern, placeholder in MASKS:
        text = pattern.sub(placeholder, text)
    return text


def compare(before: Path, after: Path) -> int:
    """Print every difference between two snapshots; the number of differing files."""
    differing = 0
    for folder in ("metrics_all", "metrics_arm"):
        names = sorted({p.name for p in (before / folder).glob("*.csv")}
                       | {p.name for p in (after / folder).glob("*.csv")})  # fmt: skip
        for name in names:
            a, b = before / folder / name, after / folder / name
            if not (a.exists() and b.exists()):
                print(f"{folder}/{name}: only in {'before' if a.exists() else 'after'}")
                differing += 1
            elif a.read_bytes() != b.read_bytes():
                print(f"{folder}/{name}: differs")
                differing += 1
    for a in sorted((before / "reports").glob("*.html")):
        b = after / "reports" / a.name
        if not b.exists():
            print(f"reports/{a.name}: missing after")
            differing += 1
            continue
        left = masked(a.read_text()).splitlines()
        right = masked(b.read_text()).splitlines()
        if left != right:
            differing += 1
            print(f"reports/{a.name}: differs")
            diff = difflib.unified_diff(left, right, "before", "after", n=0, lineterm="")
            for line in list(diff)[:40]:
                print("   ", line[:300])
    print("identical" if differing == 0 else f"{differing} file(s) differ")
    return differing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot", help="write the outputs of the code on PYTHONPATH")
    snap.add_argument("out", type=Path)
    snap.add_argument("--participants", type=int, default=2000)
    snap.add_argument("--seed", type=int, default=11)
    comp = sub.add_parser("compare", help="compare two snapshots")
    comp.add_argument("before", type=Path)
    comp.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "snapshot":
        snapshot(args.out, participants=args.participants, seed=args.seed)
    else:
        sys.exit(1 if compare(args.before, args.after) else 0)


if __name__ == "__main__":
    main()
