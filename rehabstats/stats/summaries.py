"""Summaries and comparisons of participant-level outcomes: Table 1, SMDs, CIs, group tests.

The numbers behind the report tables, as tidy DataFrames of unrounded floats (formatting is
:mod:`rehabstats.report.format`'s job): Table 1 (:func:`table_one`), standardised mean
differences, means and proportions with their confidence intervals (bounded quantities within
their bounds), per-group summaries (:func:`group_summary`), group comparisons
(:func:`compare_continuous`, :func:`compare_binary`) and the numbers at risk under a survival
plot (:func:`number_at_risk`). The whole cohort is the group :data:`rehabstats.constants.OVERALL`
(``all``), first.

Standardised mean differences (SMD) follow Yang & Dalton (2012), as R ``tableone`` computes them:

* continuous: ``|m1 − m2| / sqrt((s1² + s2²) / 2)`` with sample SDs (ddof 1);
* categorical with k levels: ``sqrt((p1 − p2)ᵀ S⁻¹ (p1 − p2))`` over levels 2..k, where p are the
  level proportions and ``S = (S1 + S2) / 2`` with ``S_g = diag(p_g) − p_g p_gᵀ`` (the
  multinomial covariance); S⁻¹ is the Moore–Penrose pseudo-inverse (``tableone`` uses
  ``MASS::ginv``). For a binary variable this is ``|p1 − p2| / sqrt((p1(1−p1) + p2(1−p2)) / 2)``.
* more than two groups: the **largest pairwise SMD** (``tableone``'s default summary is the mean
  of the pairwise SMDs; the maximum is the conservative choice for a balance check).

Missing values are left out of the SMD and of every mean, SD, median and percentage; they are
counted in their own ``Missing`` row.

References
----------
Yang D, Dalton JE. A unified approach to measuring the effect size between two groups using SAS.
SAS Global Forum 2012, paper 335.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rehabstats.constants import OVERALL
from rehabstats.lazy import lazy_module

stats = lazy_module("scipy.stats")  # imported by the first interval, not by importing this module

__all__ = [
    "TABLE_ONE_VARIABLES",
    "VALUE_BOUNDS",
    "Variable",
    "bounded_mean_ci",
    "compare_binary",
    "compare_continuous",
    "group_summary",
    "mean_ci",
    "number_at_risk",
    "proportion_ci",
    "smd_categorical",
    "smd_continuous",
    "table_one",
]

# ---- Table 1 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """One Table 1 row block.

    Attributes
    ----------
    column : str
        Column of the participant-level frame.
    label : str
        Label shown in the table, with its unit.
    kind : {"mean", "median", "categorical"}
        ``mean``: mean (SD), for roughly symmetric measurements; ``median``: median [Q1, Q3],
        for bounded or skewed scales; ``categorical``: n (%) per level.
    levels : tuple of str, optional
        Level order of a categorical variable (default: sorted observed levels).
    """

    column: str
    label: str
    kind: str
    levels: tuple[str, ...] | None = None


TABLE_ONE_VARIABLES: tuple[Variable, ...] = (
    Variable("age_years", "Age, years", "mean"),
    Variable("sex", "Sex", "categorical", ("female", "male", "other", "unknown")),
    Variable("body_mass_kg", "Body mass, kg", "mean"),
    Variable("tendinopathy_type", "Tendinopathy", "categorical", ("midportion", "insertional")),
    Variable("site", "Site", "categorical"),
    Variable("arm", "Arm", "categorical"),
    Variable("visa_a_baseline", "VISA-A at baseline, points (0-100)", "mean"),
    Variable("pain_morning_week1", "Morning pain in week 1, NRS (0-10)", "median"),
)
"""Default Table 1 rows. Age, body mass and VISA-A are summarised as mean (SD) (roughly
symmetric); morning pain as median [IQR] (a bounded 0-10 scale, skewed in most cohorts)."""

_T1_COLUMNS = [
    "variable",
    "label",
    "kind",
    "level",
    "group",
    "n",
    "mean",
    "sd",
    "median",
    "q1",
    "q3",
    "count",
    "percent",
    "missing",
]


def smd_continuous(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Absolute standardised mean difference of two samples (missing values dropped).

    ``|mean(a) − mean(b)| / sqrt((var(a) + var(b)) / 2)`` with sample variances (ddof 1).
    NaN when either sample has fewer than two values; 0 when both are constant and equal.
    """
    a = pd.Series(a, dtype="float64").dropna().to_numpy()
    b = pd.Series(b, dtype="float64").dropna().to_numpy()
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    diff = abs(a.mean() - b.mean())
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    if pooled == 0:
        return 0.0 if diff == 0 else float("inf")
    return float(diff / pooled)


def smd_categorical(
    a: Sequence[object] | pd.Series,
    b: Sequence[object] | pd.Series,
    *,
    levels: Sequence[object] | None = None,
) -> float:
    """Multinomial SMD of Yang & Dalton (2012) between two samples of a categorical variable.

    ``sqrt((p_a − p_b)ᵀ S⁻¹ (p_a − p_b))`` over all levels but the first, with
    ``S = (S_a + S_b) / 2``, ``S_g = diag(p_g) − p_g p_gᵀ``, S⁻¹ the pseudo-inverse. Missing values
    are dropped; NaN when either sample is empty; 0 with a single level.
    """
    a = pd.Series(a, dtype="object").dropna()
    b = pd.Series(b, dtype="object").dropna()
    if a.empty or b.empty:
        return float("nan")
    if levels is None:
        levels = sorted(set(a) | set(b), key=str)
    levels = list(levels)
    if len(levels) < 2:
        return 0.0
    pa_ = a.value_counts(normalize=True).reindex(levels, fill_value=0.0).to_numpy()[1:]
    pb_ = b.value_counts(normalize=True).reindex(levels, fill_value=0.0).to_numpy()[1:]
    diff = pa_ - pb_
    cov = (np.diag(pa_) - np.outer(pa_, pa_) + np.diag(pb_) - np.outer(pb_, pb_)) / 2
    value = float(diff @ np.linalg.pinv(cov) @ diff)
    return math.sqrt(max(value, 0.0))


def _max_pairwise(values: dict[str, pd.Series], fn, **kwargs) -> float:
    pairs = [fn(values[g1], values[g2], **kwargs) for g1, g2 in itertools.combinations(values, 2)]
    pairs = [p for p in pairs if not math.isnan(p)]
    return max(pairs) if pairs else float("nan")


def _levels(frame: pd.DataFrame, var: Variable) -> list[str]:
    """Observed levels: in the declared order first, then any other level sorted."""
    observed = set(frame[var.column].dropna().astype("str"))
    declared = [lv for lv in (var.levels or ()) if lv in observed]
    return declared + sorted(observed - set(declared))


def table_one(
    frame: pd.DataFrame,
    *,
    by: str | None = None,
    variables: Sequence[Variable] = TABLE_ONE_VARIABLES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baseline characteristics by group (numbers only; :func:`rehabstats.report.format.format_table_one`
    shows them).

    Parameters
    ----------
    frame : DataFrame
        One row per participant with the variables' columns (missing columns are skipped) and
        the ``by`` column.
    by : str, optional
        Grouping column; without it only the overall column is built. The grouping variable
        itself is left out of the rows.
    variables : sequence of Variable
        Row blocks, in order (default :data:`TABLE_ONE_VARIABLES`).

    Returns
    -------
    summary : DataFrame
        One row per variable (continuous) or variable level (categorical) and group
        (the whole cohort, :data:`~rehabstats.constants.OVERALL`, first, then the groups sorted),
        with columns

        variable, label, kind, level : str (level NA for continuous variables)
        group : str
        n : int
            Participants in the group with a value (the denominator of ``percent``).
        mean, sd, median, q1, q3 : float
            Continuous variables (NaN otherwise); q1 and q3 are the 25th and 75th percentiles
            (linear interpolation, as R's default type 7).
        count : int
            Participants at that level (categorical; 0 for continuous).
        percent : float
            100 · count / n (categorical).
        missing : int
            Participants in the group without a value.

        ``attrs["groups"]`` lists the columns in order; ``attrs["n"]`` maps each to its size.
    smd : DataFrame
        One row per variable: variable, label, smd (NaN without groups; the largest pairwise
        SMD with more than two groups; see the module notes).
    """
    groups: dict[str, pd.DataFrame] = {OVERALL: frame}
    if by is not None:
        labels = frame[by].astype("str")
        for g in sorted(labels.dropna().unique()):
            groups[g] = frame[labels == g]
    rows: list[dict[str, object]] = []
    smd_rows: list[dict[str, object]] = []
    for var in variables:
        if var.column not in frame or var.column == by:
            continue
        if var.kind == "categorical":
            levels = _levels(frame, var)
            for name, part in groups.items():
                values = part[var.column].astype("str").where(part[var.column].notna())
                counts = values.value_counts().reindex(levels, fill_value=0)
                n = int(values.notna().sum())
                for level in levels:
                    count = int(counts[level])
                    rows.append(
                        {
                            "variable": var.column,
                            "label": var.label,
                            "kind": var.kind,
                            "level": level,
                            "group": name,
                            "n": n,
                            "count": count,
                            "percent": 100 * count / n if n else float("nan"),
                            "missing": int(len(part) - n),
                        }
                    )
            if by is not None:
                per_group = {
                    g: p[var.column].astype("str").where(p[var.column].notna())
                    for g, p in groups.items()
                    if g != OVERALL
                }
                smd = _max_pairwise(per_group, smd_categorical, levels=levels)
            else:
                smd = float("nan")
        else:
            for name, part in groups.items():
                values = pd.to_numeric(part[var.column], errors="coerce").astype("float64")
                present = values.dropna()
                rows.append(
                    {
                        "variable": var.column,
                        "label": var.label,
                        "kind": var.kind,
                        "level": pd.NA,
                        "group": name,
                        "n": int(len(present)),
                        "mean": present.mean() if len(present) else float("nan"),
                        "sd": present.std(ddof=1) if len(present) > 1 else float("nan"),
                        "median": present.median() if len(present) else float("nan"),
                        "q1": present.quantile(0.25) if len(present) else float("nan"),
                        "q3": present.quantile(0.75) if len(present) else float("nan"),
                        "count": 0,
                        "missing": int(len(values) - len(present)),
                    }
                )
            if by is not None:
                per_group = {
                    g: pd.to_numeric(p[var.column], errors="coerce")
                    for g, p in groups.items()
                    if g != OVERALL
                }
                smd = _max_pairwise(per_group, smd_continuous)
            else:
                smd = float("nan")
        smd_rows.append({"variable": var.column, "label": var.label, "smd": smd})
    summary = pd.DataFrame(rows, columns=_T1_COLUMNS)
    summary = summary.astype({"n": "int64", "count": "int64", "missing": "int64"})
    summary.attrs["groups"] = list(groups)
    summary.attrs["n"] = {g: len(p) for g, p in groups.items()}
    summary.attrs["by"] = by
    return summary, pd.DataFrame(smd_rows, columns=["variable", "label", "smd"])


# ---- summaries and comparisons -------------------------------------------------------------


VALUE_BOUNDS: dict[str, tuple[float, float]] = {
    "adherence_sessions": (0.0, 1.0),
    "adherence_volume": (0.0, 1.0),
    "pmm_violation_rate": (0.0, 1.0),
    "pmm_violation_pct": (0.0, 100.0),
    "fast_tempo_rate": (0.0, 1.0),
    "pain_morning_mean": (0.0, 10.0),
    "pain_morning_week1": (0.0, 10.0),
    "pain_morning_week12": (0.0, 10.0),
    "pain_change": (-10.0, 10.0),
    "visa_a_baseline": (0.0, 100.0),
    "visa_a_week6": (0.0, 100.0),
    "visa_a_week12": (0.0, 100.0),
    "visa_a_week26": (0.0, 100.0),
    "visa_a_week52": (0.0, 100.0),
    "visa_a_change_12": (-100.0, 100.0),
}
"""The range each bounded metric column can take (a change: ± the width of its scale).

:func:`mean_ci`, :func:`group_summary` and :func:`compare_continuous` use it by default, so
that the interval of a bounded quantity stays within its bounds (``docs/metrics.md``,
*Confidence intervals*)."""


def bounded_mean_ci(
    values: Sequence[float] | np.ndarray | pd.Series,
    *,
    bounds: tuple[float, float],
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Confidence interval of the mean of a quantity bounded in ``[a, b]``, within the bounds.

    Parameters
    ----------
    values : array-like of float
        The observations (missing values dropped); each must lie in ``[a, b]``.
    bounds : (a, b)
        The range of the quantity (e.g. ``(0, 1)`` for adherence, ``(0, 10)`` for NRS,
        ``(-100, 100)`` for a change in VISA-A).
    confidence : float
        Confidence level (default 0.95).

    Returns
    -------
    (ci_low, ci_high) : tuple of float
        NaN with fewer than two values.

    Notes
    -----
    The logit-transformed interval of R ``survey::svyciprop(method = "logit")`` for a simple
    random sample, applied to the values rescaled to ``[0, 1]``: with ``p = (mean − a) /
    (b − a)``, ``s`` the sample SD of the rescaled values (ddof 1) and ``t`` the
    ``1 − (1 − confidence) / 2`` quantile of Student's t with ``n − 1`` degrees of freedom,

    ``logit(p) ± t · s / (√n · p (1 − p))``, mapped back by ``expit`` and ``a + (b − a) x``

    (the delta-method standard error of ``logit(p)``, as the sandwich variance of R's
    intercept-only quasibinomial ``svyglm`` gives it). The interval lies strictly inside ``(a, b)`` whenever some value does, and it equals the
    t-interval's width to first order for a mean far from the bounds. Validated against R in
    ``tests/results/bounded_ci.R``.

    When every value lies at the same bound the logit interval has no width (R gives the
    point); the interval given is then the exact one for that outcome: all ``n`` values at
    ``a`` gives ``[a, a + (b − a)(1 − (α/2)^(1/n))]`` (and symmetrically at ``b``), the
    Clopper–Pearson interval of 0 (or n) of n. It holds for any distribution on ``[a, b]``:
    a value is at ``a`` with probability at most ``1 − p``, so all ``n`` are with probability
    at most ``(1 − p)^n``.
    """
    v = pd.Series(values, dtype="float64").dropna().to_numpy()
    n = np.array([len(v)], dtype="float64")
    mean = np.array([v.mean() if len(v) else np.nan])
    sd = np.array([v.std(ddof=1) if len(v) > 1 else np.nan])
    lo_v = np.array([v.min() if len(v) else np.nan])
    hi_v = np.array([v.max() if len(v) else np.nan])
    low, high = _bounded_interval(n, mean, sd, lo_v, hi_v, bounds, confidence)
    return float(low[0]), float(high[0])


def _bounded_interval(
    n: np.ndarray,
    mean: np.ndarray,
    sd: np.ndarray,
    smallest: np.ndarray,
    largest: np.ndarray,
    bounds: tuple[float, float],
    confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bounded_mean_ci` on per-group arrays (n, mean, SD, min and max of each group)."""
    a, b = (float(x) for x in bounds)
    if not b > a:
        raise ValueError(f"bounds must be (lower, upper) with lower < upper, got {bounds!r}")
    n = np.asarray(n, dtype="float64")
    outside = (np.asarray(smallest) < a) | (np.asarray(largest) > b)
    if np.any(outside):
        raise ValueError(f"values outside the bounds [{a:g}, {b:g}] of a bounded mean")
    width = b - a
    p = (np.asarray(mean, dtype="float64") - a) / width
    s = np.asarray(sd, dtype="float64") / width
    alpha = 1 - confidence
    enough = n > 1
    df = np.where(enough, n - 1, 1)
    tcrit = stats.t.ppf(1 - alpha / 2, df)
    # every value at one bound: the mean is exactly there (the values are at most b)
    at_low = np.asarray(largest, dtype="float64") <= a
    at_high = np.asarray(smallest, dtype="float64") >= b
    inside = enough & ~at_low & ~at_high
    with np.errstate(divide="ignore", invalid="ignore"):
        # a mean rounded onto a bound while some value lies inside stays (just) inside
        pi = np.clip(np.where(inside, p, 0.5), 1e-15, 1 - 1e-15)
        centre = np.log(pi / (1 - pi))
        half = tcrit * np.where(inside, s, 0.0) / np.sqrt(np.where(enough, n, 1)) / (pi * (1 - pi))
        low = stats.logistic.cdf(centre - half)
        high = stats.logistic.cdf(centre + half)
        exact = (alpha / 2) ** (1 / np.where(enough, n, 1))
    low = np.where(at_low, 0.0, np.where(at_high, exact, low))
    high = np.where(at_low, 1 - exact, np.where(at_high, 1.0, high))
    low = np.where(enough, a + width * low, np.nan)
    high = np.where(enough, a + width * high, np.nan)
    return low, high


def mean_ci(
    frame: pd.DataFrame,
    value: str,
    by: str | Sequence[str],
    *,
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Mean with its confidence interval of ``value`` per ``by`` cell.

    Parameters
    ----------
    bounds : (a, b), optional
        The range of ``value``; default ``VALUE_BOUNDS.get(value)``. A bounded quantity gets
        the logit-transformed interval of :func:`bounded_mean_ci` (within the bounds); an
        unbounded one the t-interval ``mean ± t(n − 1) · sd / √n``.

    Returns
    -------
    DataFrame
        The ``by`` columns, then n, mean, sd, ci_low, ci_high (CI NaN when n < 2).
    """
    keys = [by] if isinstance(by, str) else list(by)
    bounds = VALUE_BOUNDS.get(value) if bounds is None else bounds
    grouped = frame.groupby(keys, observed=True, sort=True)[value]
    out = grouped.agg(n="count", mean="mean", sd="std", _min="min", _max="max").reset_index()
    if bounds is not None:
        low, high = _bounded_interval(
            out["n"].to_numpy(),
            out["mean"].to_numpy(),
            out["sd"].to_numpy(),
            out["_min"].to_numpy(),
            out["_max"].to_numpy(),
            bounds,
            confidence,
        )
        out["ci_low"], out["ci_high"] = low, high
        return out.drop(columns=["_min", "_max"])
    se = out["sd"] / np.sqrt(out["n"])
    tcrit = stats.t.ppf(0.5 + confidence / 2, np.maximum(out["n"] - 1, 1))
    half = np.where(out["n"] > 1, tcrit * se, np.nan)
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out.drop(columns=["_min", "_max"])


def proportion_ci(
    count: int | np.ndarray, n: int | np.ndarray, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion (statsmodels ``proportion_confint``)."""
    from statsmodels.stats.proportion import proportion_confint

    count = np.asarray(count, dtype="float64")
    n = np.asarray(n, dtype="float64")
    safe = np.where(n > 0, n, 1)
    low, high = proportion_confint(count, safe, alpha=1 - confidence, method="wilson")
    low = np.where(n > 0, low, np.nan)
    high = np.where(n > 0, high, np.nan)
    return low, high


def group_summary(
    frame: pd.DataFrame,
    *,
    by: str | None,
    continuous: Sequence[str] = (),
    binary: Sequence[str] = (),
    confidence: float = 0.95,
    bounds: dict[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Per-group summary of several outcomes (numbers; :mod:`rehabstats.report.format` shows them).

    Parameters
    ----------
    bounds : dict of str to (a, b), optional
        Ranges of continuous outcomes, added to (and overriding) :data:`VALUE_BOUNDS`.

    Returns
    -------
    DataFrame
        One row per group (:data:`~rehabstats.constants.OVERALL` first) and outcome, columns group, outcome, kind
        (``continuous``/``binary``), n (non-missing), mean, sd, median, q1, q3 (continuous),
        count, proportion (binary), ci_low, ci_high (the interval of the mean: within the
        bounds for a bounded outcome, :func:`bounded_mean_ci`, else the t-interval; the Wilson
        interval of the proportion).
    """
    ranges = {**VALUE_BOUNDS, **(bounds or {})}
    parts = {OVERALL: frame}
    if by is not None:
        labels = frame[by].astype("str")
        for g in sorted(labels.unique()):
            parts[g] = frame[labels == g]
    rows = []
    for g, part in parts.items():
        for col in continuous:
            v = pd.to_numeric(part[col], errors="coerce").astype("float64").dropna()
            n = len(v)
            mean = v.mean() if n else np.nan
            sd = v.std(ddof=1) if n > 1 else np.nan
            if col in ranges and n:
                low, high = bounded_mean_ci(v, bounds=ranges[col], confidence=confidence)
            else:
                t_half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
                low, high = (mean - t_half, mean + t_half) if n > 1 else (np.nan, np.nan)
            rows.append(
                {
                    "group": g,
                    "outcome": col,
                    "kind": "continuous",
                    "n": n,
                    "mean": mean,
                    "sd": sd,
                    "median": v.median() if n else np.nan,
                    "q1": v.quantile(0.25) if n else np.nan,
                    "q3": v.quantile(0.75) if n else np.nan,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
        for col in binary:
            v = part[col].dropna().astype(bool)
            n, count = len(v), int(v.sum())
            low, high = proportion_ci(count, n, confidence=confidence)
            rows.append(
                {
                    "group": g,
                    "outcome": col,
                    "kind": "binary",
                    "n": n,
                    "count": count,
                    "proportion": count / n if n else np.nan,
                    "ci_low": float(low),
                    "ci_high": float(high),
                }
            )
    columns = [
        "group",
        "outcome",
        "kind",
        "n",
        "mean",
        "sd",
        "median",
        "q1",
        "q3",
        "count",
        "proportion",
        "ci_low",
        "ci_high",
    ]
    return pd.DataFrame(rows, columns=columns)


_COMPARISON_COLUMNS = [
    "outcome",
    "comparison",
    "test",
    "statistic",
    "dof",
    "p_value",
    "estimate_name",
    "estimate",
    "ci_low",
    "ci_high",
    "effect_size_name",
    "effect_size",
    "es_ci_low",
    "es_ci_high",
    "n",
]


def compare_continuous(
    frame: pd.DataFrame,
    value: str,
    by: str,
    *,
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Compare a continuous outcome between groups with pingouin.

    The reference group is the first alphabetically (as in the pain model). With more than two
    groups, a Welch ANOVA row (F, partial η²) comes first, then each group against the
    reference; p-values of the pairwise rows are not adjusted (the ANOVA row is the omnibus
    test).

    Returns
    -------
    DataFrame
        Columns outcome, comparison (``"B vs A"`` or ``"all groups"``), test, statistic, dof,
        p_value, estimate_name (``mean difference``), estimate (mean of B − mean of A), ci_low,
        ci_high (Welch interval), effect_size_name (``Hedges g``/``partial eta squared``),
        effect_size, es_ci_low, es_ci_high, n (participants with a value in the compared
        groups).

    Notes
    -----
    Welch's t-test (``pingouin.ttest(correction=True)``) does not assume equal variances. The
    CI of the mean difference is scipy's Welch interval (pingouin rounds its CI to 2
    decimals); Hedges g and its CI come from ``pingouin.compute_effsize`` and
    ``pingouin.compute_esci``.

    For a bounded outcome (``bounds``, default ``VALUE_BOUNDS.get(value)``: ``[a, b]``) a
    difference of two means lies in ``[−(b − a), b − a]``; the Welch interval is intersected
    with that range. The true difference always lies in it, so the intersection covers it
    exactly when the Welch interval does (same coverage), and the interval is unchanged
    unless tiny groups make it overflow.
    """
    bounds = VALUE_BOUNDS.get(value) if bounds is None else bounds
    span = float("inf") if bounds is None else float(bounds[1]) - float(bounds[0])
    import pingouin as pg

    data = frame[[by, value]].copy()
    data[by] = data[by].astype("str")
    data[value] = pd.to_numeric(data[value], errors="coerce")
    data = data.dropna()
    groups = sorted(data[by].unique())
    rows: list[dict[str, object]] = []
    if len(groups) > 2:
        aov = pg.welch_anova(data=data, dv=value, between=by)
        rows.append(
            {
                "outcome": value,
                "comparison": "all groups",
                "test": "Welch ANOVA",
                "statistic": float(aov["F"].iloc[0]),
                "dof": float(aov["ddof2"].iloc[0]),
                "p_value": float(aov["p_unc"].iloc[0]),
                "estimate_name": "",
                "effect_size_name": "partial eta squared",
                "effect_size": float(aov["np2"].iloc[0]),
                "n": len(data),
            }
        )
    if groups:
        ref = groups[0]
        x_ref = data.loc[data[by] == ref, value].to_numpy()
        for g in groups[1:]:
            x = data.loc[data[by] == g, value].to_numpy()
            row: dict[str, object] = {
                "outcome": value,
                "comparison": f"{g} vs {ref}",
                "test": "Welch t-test",
                "estimate_name": "mean difference",
                "effect_size_name": "Hedges g",
                "n": len(x) + len(x_ref),
            }
            if len(x) >= 2 and len(x_ref) >= 2:
                res = pg.ttest(x, x_ref, correction=True, confidence=confidence)
                welch = stats.ttest_ind(x, x_ref, equal_var=False)
                ci = welch.confidence_interval(confidence)
                g_es = float(pg.compute_effsize(x, x_ref, eftype="hedges"))
                es_ci = pg.compute_esci(
                    stat=g_es,
                    nx=len(x),
                    ny=len(x_ref),
                    eftype="hedges",
                    confidence=confidence,
                    decimals=12,
                )
                row.update(
                    statistic=float(res["T"].iloc[0]),
                    dof=float(res["dof"].iloc[0]),
                    p_value=float(res["p_val"].iloc[0]),
                    estimate=float(x.mean() - x_ref.mean()),
                    ci_low=max(float(ci.low), -span),
                    ci_high=min(float(ci.high), span),
                    effect_size=g_es,
                    es_ci_low=float(es_ci[0]),
                    es_ci_high=float(es_ci[1]),
                )
            rows.append(row)
    return pd.DataFrame(rows, columns=_COMPARISON_COLUMNS)


def compare_binary(
    frame: pd.DataFrame, value: str, by: str, *, confidence: float = 0.95
) -> pd.DataFrame:
    """Compare a binary outcome (e.g. responders) between groups.

    A chi-squared test of independence over all groups (``pingouin.chi2_independence``, Pearson,
    Yates-corrected for 2 × 2; effect size Cramér's V), then each group against the reference
    (first alphabetically) as a risk difference with Newcombe's hybrid-score CI (statsmodels
    ``confint_proportions_2indep``).

    Returns
    -------
    DataFrame
        Columns as :func:`compare_continuous`; pairwise rows carry the risk difference
        (proportion of B − proportion of A) as estimate, no test.
    """
    import pingouin as pg
    from statsmodels.stats.proportion import confint_proportions_2indep

    data = frame[[by, value]].dropna().copy()
    data[by] = data[by].astype("str")
    data[value] = data[value].astype(bool)
    groups = sorted(data[by].unique())
    rows: list[dict[str, object]] = []
    if len(groups) >= 2 and data[value].nunique() == 2:
        _, _, st = pg.chi2_independence(data, x=by, y=value)
        pearson = st[st["test"] == "pearson"].iloc[0]
        rows.append(
            {
                "outcome": value,
                "comparison": "all groups",
                "test": "chi-squared test",
                "statistic": float(pearson["chi2"]),
                "dof": float(pearson["dof"]),
                "p_value": float(pearson["pval"]),
                "estimate_name": "",
                "effect_size_name": "Cramér's V",
                "effect_size": float(pearson["cramer"]),
                "n": len(data),
            }
        )
    if groups:
        ref = groups[0]
        ref_v = data.loc[data[by] == ref, value]
        for g in groups[1:]:
            v = data.loc[data[by] == g, value]
            row: dict[str, object] = {
                "outcome": value,
                "comparison": f"{g} vs {ref}",
                "test": "",
                "estimate_name": "risk difference",
                "n": len(v) + len(ref_v),
            }
            if len(v) and len(ref_v):
                low, high = confint_proportions_2indep(
                    int(v.sum()),
                    len(v),
                    int(ref_v.sum()),
                    len(ref_v),
                    method="newcomb",
                    compare="diff",
                    alpha=1 - confidence,
                )
                row.update(estimate=v.mean() - ref_v.mean(), ci_low=float(low), ci_high=float(high))
            rows.append(row)
    return pd.DataFrame(rows, columns=_COMPARISON_COLUMNS)


def number_at_risk(
    durations: pd.DataFrame,
    times: Sequence[float],
    *,
    duration: str = "duration",
    group: str = "group",
) -> pd.DataFrame:
    """Number still at risk (duration ≥ t) at each time, per group, for a KM risk table.

    Returns
    -------
    DataFrame
        Columns group, time, n.
    """
    times = np.asarray(times, dtype="float64")
    rows = []
    for g, part in durations.groupby(group, sort=True, observed=True):
        d = np.sort(part[duration].dropna().to_numpy(dtype="float64"))
        n = len(d) - np.searchsorted(d, times, side="left")
        rows.append(pd.DataFrame({"group": str(g), "time": times, "n": n.astype("int64")}))
    if not rows:
        return pd.DataFrame(columns=["group", "time", "n"])
    return pd.concat(rows, ignore_index=True)
