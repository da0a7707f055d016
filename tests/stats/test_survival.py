"""rehabstats.stats.survival against R (tests/results/r_reference.json) and small hand cases.

R 4.2.2 with survival 3.5-3 and cmprsk 2.2-11; each block of the reference file carries the R
call that produced it (``r_reference.R``):

* ``km_lung_log`` / ``km_lung_loglog``: ``summary(survfit(Surv(time, status == 2) ~ 1,
  data = lung, conf.type = ...))`` and its median with 95% CI;
* ``poisson_exact``: ``poisson.test(k, T)``; ``poisson_rate_ratio``:
  ``poisson.test(c(11, 4), c(300.2, 412.7))``;
* ``cuminc``: ``cuminc(ftime, fstatus, cencode = 0); timepoints(ci, c(14, 28, 56, 84))``.

``r_reference_2.json`` (``r_reference_2.R``, same R and survival): ``km_median_cases``, the
median and its CI from ``summary(survfit(Surv(time, event) ~ 1))$table`` for curves that end
exactly at 0.5 or never reach it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rehabstats.errors import ParameterError
from rehabstats.stats.survival import (
    KM_COLUMNS,
    cumulative_incidence,
    kaplan_meier,
    km_median,
    km_survival_at,
    poisson_rate_ci,
    poisson_rate_ratio,
)

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "r_reference.json"
REFERENCE_2 = Path(__file__).resolve().parents[1] / "results" / "r_reference_2.json"


@pytest.fixture(scope="module")
def r_ref() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.mark.parametrize(
    ("block", "transform"), [("km_lung_log", "log"), ("km_lung_loglog", "log-log")]
)
def test_kaplan_meier_matches_r_survfit_on_lung(r_ref, block, transform):
    ref = r_ref[block]
    time = np.array(r_ref["lung_data"]["time"], dtype=float)
    event = np.array(r_ref["lung_data"]["event"]) == 1
    km = kaplan_meier(time, event, confidence_level=0.95, ci_transform=transform)
    assert km.columns.tolist() == KM_COLUMNS
    np.testing.assert_array_equal(km["time_days"], ref["time"])
    np.testing.assert_array_equal(km["at_risk"], ref["n_risk"])
    np.testing.assert_array_equal(km["events"], ref["n_event"])
    np.testing.assert_array_equal(km["censored"], ref["n_censor"])
    for ours, theirs in (("survival", "surv"), ("ci_low", "lower"), ("ci_high", "upper")):
        np.testing.assert_allclose(km[ours], ref[theirs], rtol=0, atol=1e-10)
    median = km_median(km)
    assert median == pytest.approx(
        (ref["median"], ref["median_lower"], ref["median_upper"]), abs=1e-10
    )


def test_poisson_rate_ci_matches_r_poisson_test(r_ref):
    for case in r_ref["poisson_exact"]:
        low, high = poisson_rate_ci(case["events"], case["exposure"], confidence_level=0.95)
        assert float(low) == pytest.approx(case["lower"], abs=1e-8), case["call"]
        assert float(high) == pytest.approx(case["upper"], abs=1e-8), case["call"]


def test_poisson_rate_ci_is_vectorised_and_nan_without_exposure():
    low, high = poisson_rate_ci(np.array([0, 3]), np.array([0.0, 100.0]))
    assert np.isnan(low[0]) and np.isnan(high[0])
    # k = 0: the lower limit is 0 and the upper one is -log(alpha/2) / T (chi2 with 2 df / 2)
    low, high = poisson_rate_ci(0, 10.0)
    assert float(low) == 0.0 and float(high) == pytest.approx(-np.log(0.025) / 10, abs=1e-12)


def test_poisson_rate_ratio_matches_r_poisson_test(r_ref):
    ref = r_ref["poisson_rate_ratio"]
    out = poisson_rate_ratio(11, 300.2, 4, 412.7, confidence_level=0.95)
    assert out["rate_ratio"] == pytest.approx(ref["ratio"], abs=1e-8)
    assert out["ci_low"] == pytest.approx(ref["lower"], abs=1e-8)
    assert out["ci_high"] == pytest.approx(ref["upper"], abs=1e-8)
    assert out["p_value"] == pytest.approx(ref["p_value"], abs=1e-8)


def test_poisson_rate_ratio_edge_cases():
    assert all(np.isnan(v) for v in poisson_rate_ratio(0, 10.0, 0, 20.0).values())
    # no event in the second group: ratio and upper limit infinite, lower limit finite
    out = poisson_rate_ratio(3, 10.0, 0, 20.0)
    assert out["rate_ratio"] == np.inf and out["ci_high"] == np.inf and out["ci_low"] > 0


@pytest.mark.parametrize(("cause", "key"), [(1, "cif_event1"), (2, "cif_event2")])
def test_cumulative_incidence_matches_r_cmprsk(r_ref, cause, key):
    ref = r_ref["cuminc"]
    out = cumulative_incidence(ref["ftime"], ref["fstatus"], ref["times"], cause=cause)
    np.testing.assert_allclose(out, ref[key], rtol=0, atol=1e-10)


def test_cumulative_incidence_hand_case():
    # times 1 (cause 1), 2 (censored), 3 (cause 2), 4 (cause 1); n = 4
    # t=1: S(0-) = 1, 4 at risk, 1 event of cause 1 -> F1 = 1/4; S = 3/4
    # t=3: 2 at risk, cause 2 -> F2 = 3/4 * 1/2 = 3/8; S = 3/8
    # t=4: 1 at risk, cause 1 -> F1 = 1/4 + 3/8 * 1 = 5/8
    time, status = [1, 2, 3, 4], [1, 0, 2, 1]
    out = cumulative_incidence(time, status, [0.5, 1, 3.5, 4])
    np.testing.assert_allclose(out, [0, 1 / 4, 1 / 4, 5 / 8], atol=1e-15)
    np.testing.assert_allclose(cumulative_incidence(time, status, [3], cause=2), [3 / 8])
    # beyond the largest observed time (4): not estimated
    assert np.isnan(cumulative_incidence(time, status, [5])[0])
    # a cause that never occurs has incidence 0; nobody at all gives NaN
    assert cumulative_incidence([1, 2], [0, 2], [2])[0] == 0
    assert np.isnan(cumulative_incidence([], [], [2])[0])


def test_kaplan_meier_hand_case_and_helpers():
    # times 5 (event), 7 (censored), 10 (event), 20 (censored)
    # t=5: 4 at risk, S = 3/4; t=10: 2 at risk (7 censored in between), S = 3/4 * 1/2 = 3/8
    km = kaplan_meier([5, 7, 10, 20], [True, False, True, False])
    assert km["time_days"].tolist() == [5, 10]
    assert km["at_risk"].tolist() == [4, 2]
    assert km["censored"].tolist() == [0, 1]  # the censoring at 20 follows the last event
    np.testing.assert_allclose(km["survival"], [0.75, 0.375])
    assert km_survival_at(km, 4) == 1.0
    assert km_survival_at(km, 9.5) == 0.75
    assert km_survival_at(km, 10) == 0.375
    assert km_survival_at(km, 20, last_time=20) == 0.375
    assert np.isnan(km_survival_at(km, 21, last_time=20))
    # the median: first time S <= 0.5 -> 10
    assert km_median(km)[0] == 10


@pytest.fixture(scope="module")
def r_ref_2() -> dict:
    return json.loads(REFERENCE_2.read_text())


def test_km_median_matches_r_summary_table_on_curves_ending_at_one_half(r_ref_2):
    # r_reference_2.R: summary(survfit(Surv(time, event) ~ 1))$table; three curves end flat at
    # exactly 0.5 (statsmodels computes S = 0.5000000000000001 there), one never reaches it
    cases = r_ref_2["km_median_cases"]
    assert len(cases) == 4
    for case in cases:
        km = kaplan_meier(case["time"], np.array(case["event"]) == 1)
        expected = [
            np.nan if case[k] is None else case[k]
            for k in ("median", "median_lower", "median_upper")
        ]
        np.testing.assert_array_equal(km_median(km), expected, err_msg=str(case["time"]))


def test_km_median_flat_at_one_half_then_dropping_is_the_midpoint():
    # R survival's summary(survfit)$table (survmean's rule): where S is 0.5 (within
    # sqrt(machine epsilon)) on a stretch and drops below later, the median is the midpoint of
    # the stretch's start and the time of that drop.
    # four events at 1..4: S = 0.75, 0.5, 0.25, 0; S is 0.5 on [2, 3): median 2.5;
    # R 4.2.2: median 2.5, 0.95LCL 1, 0.95UCL NA
    km = kaplan_meier([1, 2, 3, 4], [True] * 4)
    np.testing.assert_array_equal(km_median(km), [2.5, 1.0, np.nan])
    # events at 10, 20, 40, censoring at 30: S = 0.75, 0.5 (0.5000000000000001 in statsmodels),
    # then 0 at 40: midpoint (20 + 40) / 2 = 30; R 4.2.2: median 30, 0.95LCL 10, 0.95UCL NA
    km = kaplan_meier([10, 20, 30, 40], [True, True, False, True])
    np.testing.assert_array_equal(km_median(km), [30.0, 10.0, np.nan])


def test_km_median_of_a_curve_ending_flat_at_one_half_is_where_it_gets_there():
    # an event at 2, a censoring at 9: S = 0.5 from day 2 to the end of the curve. R's
    # summary(survfit)$table gives median 2, 0.95LCL 2, 0.95UCL NA (quantile.survfit would give
    # the midpoint (2 + 9) / 2; the contract follows the table, METRICS.md §7)
    km = kaplan_meier([2, 9], [True, False])
    np.testing.assert_array_equal(km_median(km), [2.0, 2.0, np.nan])


def test_km_median_not_reached_is_nan():
    km = kaplan_meier([1, 5, 6, 7], [True, False, False, False])
    assert np.isnan(km_median(km)[0])


def test_kaplan_meier_without_events_is_empty():
    km = kaplan_meier([3, 4], [False, False])
    assert km.empty and km.columns.tolist() == KM_COLUMNS
    assert km_survival_at(km, 3) == 1.0 and np.isnan(km_median(km)[0])


def test_kaplan_meier_rejects_unknown_transform():
    with pytest.raises(ParameterError, match="log-log"):
        kaplan_meier([1], [True], ci_transform="plain")


def test_log_log_limits_follow_the_formula():
    # one event among 4 at t=1: S = 3/4, Greenwood var(log S) = 1 / (4 * 3)
    km = kaplan_meier([1, 2, 3, 4], [True, False, False, False], ci_transform="log-log")
    s, se = 0.75, np.sqrt(1 / 12)
    z = 1.959963984540054
    # log(-log S) +/- z se / |log S|, back-transformed: the larger exponent is the lower limit
    assert km.loc[0, "ci_low"] == pytest.approx(s ** np.exp(z * se / -np.log(s)), abs=1e-12)
    assert km.loc[0, "ci_high"] == pytest.approx(s ** np.exp(-z * se / -np.log(s)), abs=1e-12)
