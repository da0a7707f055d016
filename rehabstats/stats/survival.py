"""Thin wrappers over statsmodels and scipy: Kaplan-Meier, Aalen-Johansen, exact Poisson.

rehabstats turns events into durations (:mod:`rehabstats.time.tte`); the estimators come from
statsmodels (``SurvfuncRight``, ``CumIncidenceRight``) and the exact limits from scipy. What is
written here is only the presentation R users expect: R ``survfit``'s pointwise confidence
transforms and median confidence limits, and R ``poisson.test``'s exact intervals. Every
function is validated against R in ``tests/stats/test_survival.py`` (reference results in
``tests/results/``, each under the R call that produced it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rehabstats.errors import ParameterError
from rehabstats.lazy import lazy_module

stats = lazy_module("scipy.stats")  # imported by the first estimate, not by importing this module

__all__ = [
    "KM_COLUMNS",
    "cumulative_incidence",
    "kaplan_meier",
    "km_median",
    "km_interval_at",
    "km_survival_at",
    "poisson_rate_ci",
    "poisson_rate_ratio",
]

KM_COLUMNS = ["time_days", "at_risk", "events", "censored", "survival", "ci_low", "ci_high"]
"""Columns of :func:`kaplan_meier`."""

_TOLERANCE = np.sqrt(np.finfo(float).eps)
"""R ``survfit``'s tolerance for a survival curve lying exactly on the median (0.5)."""


def kaplan_meier(
    time: Sequence[float] | np.ndarray,
    event: Sequence[bool] | np.ndarray,
    *,
    confidence_level: float = 0.95,
    ci_transform: str = "log",
) -> pd.DataFrame:
    """Kaplan-Meier estimate with pointwise confidence limits, at each event time.

    Parameters
    ----------
    time : array-like of float
        Event or censoring time of each subject.
    event : array-like of bool
        True for an event, False for a right-censored time.
    confidence_level : float
        Pointwise confidence level (default 0.95).
    ci_transform : {"log", "log-log"}
        Scale on which the normal interval is built (R ``survfit``'s ``conf.type``).

    Returns
    -------
    DataFrame
        One row per distinct event time, ascending, with columns

        time_days : float
            The event time.
        at_risk : int
            Subjects at risk just before it (R ``n.risk``).
        events : int
            Events at it (R ``n.event``).
        censored : int
            Subjects censored after the previous event time and up to and including this one
            (R ``summary.survfit``'s ``n.censor``); censorings after the last event time are
            in no row.
        survival : float
            Kaplan-Meier S(t).
        ci_low, ci_high : float
            Pointwise confidence limits; NaN where S(t) = 0.

    Notes
    -----
    The estimate and Greenwood's standard error ``se(S)`` come from
    ``statsmodels.duration.survfunc.SurvfuncRight``. With ``z`` the standard-normal quantile
    at ``1 - (1 - confidence_level) / 2`` and ``s = se(S) / S`` (the standard error of
    ``log S``), the limits are those of R ``survival::survfit`` (Therneau, survival package,
    ``survfit_confint``):

    * ``log`` (R's default): ``S exp(-z s)``, ``min(1, S exp(z s))``;
    * ``log-log``: ``S^exp(z s / |log S|)``, ``S^exp(-z s / |log S|)``, i.e. a normal
      interval for ``log(-log S)`` with standard error ``s / |log S|``, transformed back
      (Kalbfleisch and Prentice 1980).
    """
    if ci_transform not in ("log", "log-log"):
        raise ParameterError(f"ci_transform must be 'log' or 'log-log', got {ci_transform!r}")
    time = np.asarray(time, dtype="float64")
    event = np.asarray(event, dtype=bool)
    if not (event.any()):
        return _empty_km()
    from statsmodels.duration.survfunc import SurvfuncRight

    fit = SurvfuncRight(time, event.astype("float64"))
    times = np.asarray(fit.surv_times, dtype="float64")
    surv = np.asarray(fit.surv_prob, dtype="float64")
    se_log = np.asarray(fit.surv_prob_se, dtype="float64") / np.where(surv > 0, surv, np.nan)
    low, high = _confint(surv, se_log, confidence_level, ci_transform)
    censor_times = np.sort(time[~event])
    censored_by = np.searchsorted(censor_times, times, side="right")
    return pd.DataFrame(
        {
            "time_days": times,
            "at_risk": np.asarray(fit.n_risk, dtype="int64"),
            "events": np.asarray(fit.n_events, dtype="int64"),
            "censored": np.diff(censored_by, prepend=0).astype("int64"),
            "survival": surv,
            "ci_low": low,
            "ci_high": high,
        }
    )


def km_survival_at(km: pd.DataFrame, t: float, *, last_time: float | None = None) -> float:
    """S(t) from a :func:`kaplan_meier` table: the value at the last event time <= t.

    1 before the first event. With ``last_time`` (the largest observed time, event or
    censored), NaN when ``t > last_time`` unless the curve has reached 0: the estimate is not
    defined beyond the follow-up.
    """
    return km_interval_at(km, t, last_time=last_time)[0]


def km_interval_at(
    km: pd.DataFrame, t: float, *, last_time: float | None = None
) -> tuple[float, float, float]:
    """S(t) and its pointwise confidence limits from a :func:`kaplan_meier` table.

    The step function read at the last event time <= t, as R's
    ``summary(survfit(...), times = t)`` reports ``surv``, ``lower`` and ``upper``: before the
    first event S = 1 with limits 1 and 1; NaN limits where the table has them (S = 0). With
    ``last_time``, all three are NaN when ``t > last_time`` unless the curve has reached 0
    (then its limits are the table's).

    Returns
    -------
    (survival, ci_low, ci_high) : tuple of float
    """
    at = np.searchsorted(km["time_days"].to_numpy(), t, side="right")
    row = None if at == 0 else km.iloc[at - 1]
    value = 1.0 if row is None else float(row["survival"])
    if last_time is not None and t > last_time and value > 0:
        return float("nan"), float("nan"), float("nan")
    if row is None:
        return 1.0, 1.0, 1.0
    return value, float(row["ci_low"]), float(row["ci_high"])


def km_median(km: pd.DataFrame) -> tuple[float, float, float]:
    """Median time and its confidence limits from a :func:`kaplan_meier` table, as R reports them.

    Parameters
    ----------
    km : DataFrame
        :func:`kaplan_meier` output.

    Returns
    -------
    (median, ci_low, ci_high) : tuple of float
        NaN where the curve (or band) does not reach 0.5.

    Notes
    -----
    ``docs/metrics.md`` §7, as R ``survival``'s ``summary(survfit(...))$table`` (and
    ``print(fit)``; internal function ``survmean``): the median is the first time the curve
    is at or below 0.5, compared with a tolerance of ``sqrt(machine epsilon)`` so that a curve
    computed as 0.5000000000000001 counts as 0.5. Where the curve is 0.5 (within the
    tolerance) at that time and drops below it later, the median is the midpoint between that
    time and the time of the drop; a curve that ends at 0.5 has its median where it reached
    0.5. The lower limit is the same quantity for the lower pointwise band ``ci_low``, the
    upper limit for ``ci_high`` (Brookmeyer and Crowley 1982's reflection of the band, as in
    R). ``quantile(fit, 0.5)`` differs in one case only: for a curve that ends at 0.5 it
    gives the midpoint of the flat stretch up to the last observed time; the contract follows
    the table.
    """
    times = km["time_days"].to_numpy(dtype="float64")
    return tuple(
        _first_at_or_below_half(times, km[column].to_numpy(dtype="float64"))
        for column in ("survival", "ci_low", "ci_high")
    )


def poisson_rate_ci(
    events: float | np.ndarray,
    exposure: float | np.ndarray,
    *,
    confidence_level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) confidence limits of a Poisson rate ``events / exposure``.

    Returns
    -------
    (ci_low, ci_high) : tuple of ndarray
        Rate limits per unit of exposure; NaN where exposure is not positive.

    Notes
    -----
    Garwood (1936), as R ``poisson.test(k, T)``: with ``alpha = 1 - confidence_level``,
    ``lower = chi2(alpha/2; 2k) / 2 / T`` (0 when ``k = 0``) and
    ``upper = chi2(1 - alpha/2; 2k + 2) / 2 / T``, ``chi2(p; df)`` the chi-squared quantile
    (``scipy.stats.chi2.ppf``).
    """
    k = np.asarray(events, dtype="float64")
    t = np.asarray(exposure, dtype="float64")
    alpha = 1 - confidence_level
    t = np.where(t > 0, t, np.nan)
    with np.errstate(invalid="ignore"):
        lower = np.where(k > 0, stats.chi2.ppf(alpha / 2, 2 * k) / 2, 0.0) / t
    upper = stats.chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2 / t
    return lower, upper


def poisson_rate_ratio(
    events1: int,
    exposure1: float,
    events2: int,
    exposure2: float,
    *,
    confidence_level: float = 0.95,
) -> dict[str, float]:
    """Ratio of two Poisson rates with the exact conditional CI and p-value.

    Returns
    -------
    dict
        ``rate_ratio`` = (events1 / exposure1) / (events2 / exposure2), ``ci_low``,
        ``ci_high``, ``p_value`` (two-sided, H0: ratio = 1). All NaN without any event.

    Notes
    -----
    As R ``poisson.test(c(x1, x2), c(t1, t2))``: given ``n = x1 + x2``, ``x1`` is binomial
    with ``p = t1 / (t1 + t2)`` under H0. The p-value is the two-sided exact binomial test
    (``scipy.stats.binomtest``, same rule as R ``binom.test``); the Clopper-Pearson limits
    ``(pl, pu)`` for ``p`` map to the ratio as ``p / (1 - p) * t2 / t1``.
    """
    n = int(events1) + int(events2)
    if n == 0 or exposure1 <= 0 or exposure2 <= 0:
        nan = float("nan")
        return {"rate_ratio": nan, "ci_low": nan, "ci_high": nan, "p_value": nan}
    test = stats.binomtest(int(events1), n, exposure1 / (exposure1 + exposure2))
    ci = test.proportion_ci(confidence_level=confidence_level, method="exact")
    scale = exposure2 / exposure1

    def odds(p: float) -> float:
        return float("inf") if p >= 1 else p / (1 - p) * scale

    with np.errstate(divide="ignore"):
        ratio = (events1 / exposure1) / (events2 / exposure2) if events2 else float("inf")
    return {
        "rate_ratio": float(ratio),
        "ci_low": odds(ci.low),
        "ci_high": odds(ci.high),
        "p_value": float(test.pvalue),
    }


def cumulative_incidence(
    time: Sequence[float] | np.ndarray,
    status: Sequence[int] | np.ndarray,
    at: Sequence[float] | np.ndarray,
    *,
    cause: int = 1,
) -> np.ndarray:
    """Aalen-Johansen cumulative incidence of one cause, evaluated at given times.

    Parameters
    ----------
    time : array-like of float
        Time of each subject's event or censoring.
    status : array-like of int
        0 = censored, 1, 2, ... = the cause of the event.
    at : array-like of float
        Times at which to report the cumulative incidence.
    cause : int
        The cause of interest (default 1); the other causes compete.

    Returns
    -------
    ndarray
        The cumulative incidence of ``cause`` at each time of ``at``: a step function, the
        value at the last observed time <= t (0 before the first event); NaN when ``t`` is
        beyond the largest observed time (no estimate beyond the follow-up) or without
        subjects.

    Notes
    -----
    ``statsmodels.duration.survfunc.CumIncidenceRight`` (Aalen and Johansen 1978):
    ``F_k(t) = sum over t_j <= t of S(t_j-) d_kj / n_j`` with ``S`` the all-cause Kaplan-Meier
    survival; identical to R ``cmprsk::cuminc`` (checked in the tests).
    """
    time = np.asarray(time, dtype="float64")
    status = np.asarray(status, dtype="int64")
    at = np.asarray(at, dtype="float64")
    if len(time) == 0:
        return np.full(len(at), np.nan)
    if not (status == cause).any():
        values = np.zeros(len(at))
    else:
        from statsmodels.duration.survfunc import CumIncidenceRight

        with np.errstate(divide="ignore", invalid="ignore"):  # standard errors, unused
            fit = CumIncidenceRight(time, status)
        curve = np.asarray(fit.cinc[cause - 1], dtype="float64")
        idx = np.searchsorted(np.asarray(fit.times, dtype="float64"), at, side="right")
        values = np.where(idx > 0, curve[np.maximum(idx - 1, 0)], 0.0)
    return np.where(at <= time.max(), values, np.nan)


# ----------------------------------------------------------------------------------------------


def _empty_km() -> pd.DataFrame:
    return pd.DataFrame(
        {
            column: pd.Series(
                dtype="int64" if column in ("at_risk", "events", "censored") else "float64"
            )
            for column in KM_COLUMNS
        }
    )


def _confint(
    surv: np.ndarray, se_log: np.ndarray, confidence_level: float, transform: str
) -> tuple[np.ndarray, np.ndarray]:
    """R ``survfit_confint`` for the log and log-log transforms (se_log = se of log S)."""
    z = stats.norm.ppf(1 - (1 - confidence_level) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        if transform == "log":
            s = np.where(surv > 0, surv, np.nan)
            return s * np.exp(-z * se_log), np.minimum(s * np.exp(z * se_log), 1.0)
        s = np.where((surv > 0) & (surv < 1), surv, np.nan)
        shift = z * se_log / np.log(s)
        loglog = np.log(-np.log(s))
        return np.exp(-np.exp(loglog - shift)), np.exp(-np.exp(loglog + shift))


def _first_at_or_below_half(times: np.ndarray, curve: np.ndarray) -> float:
    """R ``survival:::survmean``'s median rule (``minmin``) on one curve (see :func:`km_median`).

    ``times`` are the event times and ``curve`` the survival (or a band) there; NaN values of
    a band (where S = 0) are skipped, as R skips its NA.
    """
    below = ~np.isnan(curve) & (curve < 0.5 + _TOLERANCE)
    if not below.any():
        return float("nan")
    first = int(np.argmax(below))
    level = curve[first]
    if abs(level - 0.5) < _TOLERANCE:
        drop = below & (curve < level)
        if drop.any():
            return float((times[first] + times[int(np.argmax(drop))]) / 2)
    return float(times[first])
