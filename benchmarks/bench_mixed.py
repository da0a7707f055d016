"""Time the REML trajectory fitter against lme4 + lmerTest on the same simulated weekly data.

Usage::

    python benchmarks/bench_mixed.py                          # 1,000 / 10,000 / 100,000
    python benchmarks/bench_mixed.py --participants 1000 10000 --no-r

For each size, simulates weekly pain (12 weeks, about 30% of participant-weeks missing, three
arms), fits ``pain ~ t * arm + (1 + t | participant)`` by REML with Satterthwaite degrees of
freedom (``rehabstats.stats.mixed.fit_trajectory``: sufficient statistics, optimisation,
Satterthwaite), and -- when ``Rscript`` with lme4 and lmerTest is available -- writes the same
data to a temporary CSV and times, inside R with ``system.time``, ``lme4::lmer`` alone (default
control, as a user would run it) and separately lmerTest's degrees of freedom
(``as_lmerModLmerTest`` + ``summary``). Reading the CSV is not timed on either side. Prints one
Markdown table with the ratio and the agreement of the two fits (largest relative difference
of the fixed effects and of the df, difference of the REML log-likelihoods). Not part of the
test suite; the figures are recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rehabstats.stats.mixed import fit_stats, trajectory_stats

R_SCRIPT = r"""
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], colClasses = c("character", "character", "numeric", "numeric"))
d$arm <- factor(d$arm)
lmer_time <- system.time(m <- lme4::lmer(pain ~ t * arm + (t | participant), data = d,
                                         REML = TRUE))[["elapsed"]]
df_time <- system.time({
  mt <- lmerTest::as_lmerModLmerTest(m)
  s <- summary(mt)$coefficients
})[["elapsed"]]
cat(toJSON(list(lmer = lmer_time, df = df_time, estimate = unname(s[, 1]),
                df_values = unname(s[, 3]), loglik = as.numeric(logLik(m)),
                lme4 = as.character(packageVersion("lme4")),
                lmerTest = as.character(packageVersion("lmerTest"))),
           digits = NA, auto_unbox = TRUE))
"""


def simulate(n: int, *, seed: int = 1) -> pd.DataFrame:
    """Weekly mean pain for ``n`` participants: weeks 0-11, about 30% missing, three arms."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(np.array(["alfredson", "hsr", "staged"]), n)
    b0, b1 = rng.normal(0, 1.2, n), rng.normal(0, 0.09, n)
    pid = np.repeat(np.arange(n), 12)
    t = np.tile(np.arange(12.0), n)
    keep = rng.random(n * 12) > (0.19 + 0.02 * t)  # more missing late than early, ~30% overall
    pid, t = pid[keep], t[keep]
    a = arm[pid]
    shift0 = np.select([a == "hsr", a == "staged"], [-0.3, 0.1], 0.0)
    shift1 = np.select([a == "hsr", a == "staged"], [0.02, -0.03], 0.0)
    pain = 4.6 + shift0 + b0[pid] + (-0.24 + shift1 + b1[pid]) * t + rng.normal(0, 0.63, t.size)
    return pd.DataFrame(
        {
            "participant": np.char.add("P", pid.astype(str)),
            "arm": a,
            "t": t,
            "pain": np.round(pain, 6),  # what the CSV for R holds
        }
    )


def r_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    check = subprocess.run(
        ["Rscript", "-e", "library(lme4); library(lmerTest); library(jsonlite)"],
        capture_output=True,
    )
    return check.returncode == 0


def run_r(frame: pd.DataFrame, timeout: float) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "weekly.csv"
        script = Path(tmp) / "fit.R"
        frame.to_csv(csv, index=False, float_format="%.6f")
        script.write_text(R_SCRIPT)
        try:
            done = subprocess.run(
                ["Rscript", str(script), str(csv)],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return None
    if done.returncode != 0:
        raise RuntimeError(f"Rscript failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="Python fits per size (best kept)")
    parser.add_argument("--r", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--r-timeout", type=float, default=3600.0, help="seconds per R fit")
    args = parser.parse_args()
    use_r = args.r and r_available()

    print(
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}"
    )
    header = (
        "| participants | rows | statistics (s) | fit + df (s) | total (s) | lmer (s) "
        "| lmerTest df (s) | total / lmer | total / (lmer + df) | max rel. diff estimate "
        "| max rel. diff df | loglik diff |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    versions = ""
    for n in args.participants:
        frame = simulate(n, seed=args.seed)
        best = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            stats = trajectory_stats(frame, participant="participant", t="t", y="pain", group="arm")
            t1 = time.perf_counter()
            fit = fit_stats(stats)
            t2 = time.perf_counter()
            if best is None or t2 - t0 < best[2]:
                best = (t1 - t0, t2 - t1, t2 - t0)
        assert best is not None
        cells = [f"{n:,}", f"{len(frame):,}", f"{best[0]:.2f}", f"{best[1]:.2f}", f"{best[2]:.2f}"]
        r = run_r(frame, args.r_timeout) if use_r else None
        if r is not None:
            versions = f"lme4 {r['lme4']}, lmerTest {r['lmerTest']}"
            est = fit.fixed["estimate"].to_numpy()
            dfs = fit.fixed["df"].to_numpy()
            cells += [
                f"{r['lmer']:.2f}",
                f"{r['df']:.2f}",
                f"{best[2] / r['lmer']:.3f}",
                f"{best[2] / (r['lmer'] + r['df']):.3f}",
                f"{np.max(np.abs(est / np.array(r['estimate']) - 1)):.1e}",
                f"{np.max(np.abs(dfs / np.array(r['df_values']) - 1)):.1e}",
                f"{fit.loglik - r['loglik']:.1e}",
            ]
        else:
            cells += ["not run" if not use_r else "timed out"] + [""] * 6
        print("| " + " | ".join(cells) + " |", flush=True)
    if versions:
        print(f"\nR: {versions}; lmer with its default control (nloptwrap)")


if __name__ == "__main__":
    main()
