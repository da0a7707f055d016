"""The pain trajectory model (METRICS.md §5) against lme4, and its fallback and group terms.

Reference: tests/results/r_reference.json (R 4.2.2, lme4 1.1-31), blocks
``lmer_sleepstudy`` = ``lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = TRUE)``
and ``lmer_sleepstudy_intercept_only`` = ``lmer(Reaction ~ Days + (1 | Subject), ...)``.

The sleepstudy data are rebuilt in the project's own schema: one participant per Subject, one
morning NRS rating of Reaction / 50 on the first day of week Days + 1 (so that the week's mean
is Reaction / 50 and t = week - 1 = Days). Rescaling the response by 1/50 scales the fixed
effects and their standard errors by 1/50 and the variance components by 1/2500.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows
from scipy import stats

from rehabstats import AnalysisConfig, Cohort, ParameterError
from rehabstats.pain import pain_model

REFERENCE = Path(__file__).resolve().parent / "results" / "r_reference.json"
SCALE = 50.0


@cache
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


@cache
def sleepstudy_cohort() -> Cohort:
    data = reference()["lmer_sleepstudy"]["data"]
    people = [{"participant_id": s} for s in dict.fromkeys(data["subject"])]
    pain = [
        {"participant_id": s, "day": 7 * d, "timing": "morning", "nrs": r / SCALE}
        for s, d, r in zip(data["subject"], data["days"], data["reaction"], strict=True)
    ]
    return cohort_from_rows(people, pain=pain, data_cutoff="2024-12-31")


def relative(a: float, b: float) -> float:
    return abs(a / b - 1)


def test_random_slope_model_matches_lme4():
    ref = reference()["lmer_sleepstudy"]
    out = pain_model(sleepstudy_cohort()).set_index("term")
    assert (out["model"] == "random_slope").all() and out["converged"].all()
    assert list(out.index) == [
        "Intercept",
        "t",
        "var_intercept",
        "var_slope",
        "cov_intercept_slope",
        "var_residual",
    ]
    fixed = {"Intercept": "(Intercept)", "t": "Days"}
    for term, r_name in fixed.items():
        assert relative(out.loc[term, "estimate"], ref["fixef"][r_name] / SCALE) < 1e-4
        assert relative(out.loc[term, "std_err"], ref["se"][r_name] / SCALE) < 1e-4
    for term in ("var_intercept", "var_slope", "cov_intercept_slope", "var_residual"):
        assert relative(out.loc[term, "estimate"], ref[term] / SCALE**2) < 1e-3
        assert np.isnan(out.loc[term, "std_err"]) and np.isnan(out.loc[term, "p_value"])


def test_wald_interval_and_p_value():
    out = pain_model(sleepstudy_cohort()).set_index("term")
    t = out.loc["t"]
    z = stats.norm.ppf(0.975)
    assert t["ci_low"] == pytest.approx(t["estimate"] - z * t["std_err"], rel=1e-9)
    assert t["ci_high"] == pytest.approx(t["estimate"] + z * t["std_err"], rel=1e-9)
    assert t["p_value"] == pytest.approx(2 * stats.norm.sf(t["estimate"] / t["std_err"]), rel=1e-6)
    # confidence_level = 0.9 narrows the interval to +-1.645 SE
    narrow = pain_model(sleepstudy_cohort(), config=AnalysisConfig(confidence_level=0.9))
    row = narrow.set_index("term").loc["t"]
    half = stats.norm.ppf(0.95) * row["std_err"]
    assert row["ci_high"] - row["ci_low"] == pytest.approx(2 * half, rel=1e-9)


def test_random_intercept_model_matches_lme4():
    ref = reference()["lmer_sleepstudy_intercept_only"]
    out = pain_model(sleepstudy_cohort(), random_slope=False).set_index("term")
    assert (out["model"] == "random_intercept").all() and out["converged"].all()
    assert list(out.index) == ["Intercept", "t", "var_intercept", "var_residual"]
    assert "random intercept only" in out["note"].iloc[0]
    for term, r_name in {"Intercept": "(Intercept)", "t": "Days"}.items():
        assert relative(out.loc[term, "estimate"], ref["fixef"][r_name] / SCALE) < 1e-4
        assert relative(out.loc[term, "std_err"], ref["se"][r_name] / SCALE) < 1e-4


def balanced_cohort(lines: dict[str, tuple[str, float, float]], weeks: int = 6) -> Cohort:
    """One morning rating per week: participant -> (arm, week-1 pain, change per week), plus a
    wiggle shared by every participant."""
    wiggle = [0.3, -0.2, 0.1, -0.3, 0.2, -0.1, 0.25, -0.15][:weeks]
    people = [{"participant_id": p, "arm": arm} for p, (arm, _, _) in lines.items()]
    pain = [
        {"participant_id": p, "day": 7 * w, "timing": "morning", "nrs": a + b * w + wiggle[w]}
        for p, (_, a, b) in lines.items()
        for w in range(weeks)
    ]
    return cohort_from_rows(people, pain=pain, data_cutoff="2024-12-31")


def test_slope_model_without_slope_variation_falls_back_to_random_intercept():
    # every participant has the same slope and the same week-to-week wiggle: the slope variance's
    # REML estimate is on the boundary (zero), the random-slope fit fails its checks and the
    # random intercept is used
    lines = {f"p{i}": ("staged", 3.0 + i * 0.7, -0.2) for i in range(6)}
    out = pain_model(balanced_cohort(lines)).set_index("term")
    assert (out["model"] == "random_intercept").all()
    assert "random-slope model not used" in out["note"].iloc[0]
    assert "refitted with a random intercept only" in out["note"].iloc[0]
    assert "var_slope" not in out.index
    # balanced complete data: the fixed effects are the least-squares line of the mean curve,
    # 3 + 0.7 * 2.5 = 4.75 at week 1 and -0.2 per week (the wiggle has zero mean but is not
    # orthogonal to t, so fit it exactly: slope of the wiggle over t = 0..5)
    wiggle = np.array([0.3, -0.2, 0.1, -0.3, 0.2, -0.1])
    slope, intercept = np.polyfit(np.arange(6), wiggle, 1)
    assert out.loc["t", "estimate"] == pytest.approx(-0.2 + slope, abs=1e-6)
    assert out.loc["Intercept", "estimate"] == pytest.approx(4.75 + intercept, abs=1e-6)


def test_grouped_model_terms_and_reference_level():
    # arms "hsr" and "alfredson": alfredson is the reference (first alphabetically)
    lines = {
        "a1": ("hsr", 6.0, -0.40),
        "a2": ("hsr", 5.0, -0.30),
        "a3": ("hsr", 6.5, -0.45),
        "a4": ("hsr", 5.5, -0.20),
        "b1": ("alfredson", 6.0, -0.10),
        "b2": ("alfredson", 7.0, -0.25),
        "b3": ("alfredson", 5.0, -0.05),
        "b4": ("alfredson", 6.5, -0.20),
    }
    out = pain_model(balanced_cohort(lines), by="arm")
    fixed = ["Intercept", "group[T.hsr]", "t", "t:group[T.hsr]"]
    assert set(fixed) <= set(out["term"])
    assert out.attrs["formula"] == "pain ~ t * group"
    assert out.attrs["n_participants"] == 8 and out.attrs["n_observations"] == 48
    est = out.set_index("term")["estimate"]
    # balanced data with random intercepts and slopes (Z = X): REML fixed effects equal least
    # squares on each arm's mean curve. Mean lines: alfredson 6.125 - 0.15 t, hsr 5.75 - 0.3375 t
    # (plus the shared wiggle, which cancels in the differences)
    wiggle = np.array([0.3, -0.2, 0.1, -0.3, 0.2, -0.1])
    w_slope, w_intercept = np.polyfit(np.arange(6), wiggle, 1)
    assert est["Intercept"] == pytest.approx(6.125 + w_intercept, abs=1e-5)
    assert est["t"] == pytest.approx(-0.15 + w_slope, abs=1e-5)
    assert est["group[T.hsr]"] == pytest.approx(5.75 - 6.125, abs=1e-5)
    assert est["t:group[T.hsr]"] == pytest.approx(-0.3375 - (-0.15), abs=1e-5)
    assert out["model"].iloc[0] in ("random_slope", "random_intercept")
    assert out["converged"].dtype == bool


def test_single_group_fits_without_group_terms():
    lines = {f"p{i}": ("staged", 3.0 + i, -0.1 * i) for i in range(4)}
    out = pain_model(balanced_cohort(lines), by="arm")
    assert not out["term"].str.startswith("group").any()
    assert "only one arm group" in out["note"].iloc[0]


def test_bad_group_column_is_an_error():
    with pytest.raises(ParameterError, match="cannot group by"):
        pain_model(balanced_cohort({"p1": ("staged", 3, 0)}), by="participant_id")


def test_no_pain_data_gives_no_model():
    cohort = cohort_from_rows([{"participant_id": "p1"}], data_cutoff="2024-12-31")
    out = pain_model(cohort)
    assert len(out) == 1 and out["model"].iloc[0] == "none"
    assert not out["converged"].iloc[0]
    assert "needs at least 2" in out["note"].iloc[0]
    assert list(out.columns) == [
        "term",
        "estimate",
        "std_err",
        "ci_low",
        "ci_high",
        "p_value",
        "model",
        "converged",
        "note",
    ]


def test_model_uses_weekly_means_within_the_window():
    # two ratings in week 1 (2 and 4: mean 3) count as one observation; week 13 is ignored
    people = [{"participant_id": p} for p in ("p1", "p2", "p3")]
    pain = [
        {"participant_id": p, "day": d, "timing": "morning", "nrs": v}
        for p in ("p1", "p2", "p3")
        for d, v in ((0, 2), (1, 4), (7, 3), (14, 2.5), (90, 9))
    ]
    out = pain_model(cohort_from_rows(people, pain=pain, data_cutoff="2024-12-31"))
    assert out.attrs["n_observations"] == 9  # 3 participants x weeks 1-3
    assert isinstance(out, pd.DataFrame)


def test_fit_reaches_the_maximum_where_statsmodels_default_stops_short():
    # On this simulated cohort statsmodels' default fit (BFGS from its own start) reports a REML
    # log-likelihood several units below the maximum. The reported random-slope model must be
    # the maximum: compare with an independent statsmodels fit by Powell, then BFGS from
    # Powell's estimate (the slow, thorough route), on the model data pain_model describes.
    import statsmodels.formula.api as smf

    from rehabstats.pain import weekly_pain
    from rehabstats.simulate import simulate_cohort

    with pytest.warns(Warning):
        cohort = simulate_cohort(500, seed=0)
    out = pain_model(cohort, by="arm").set_index("term")
    assert (out["model"] == "random_slope").all() and out["converged"].all()

    weekly = weekly_pain(cohort).dropna(subset=["pain_morning_mean"])
    arms = cohort.participants.set_index("participant_id")["arm"]
    data = pd.DataFrame(
        {
            "participant": weekly["participant_id"].astype(str).to_numpy(),
            "t": weekly["week"].to_numpy(dtype=float) - 1,
            "pain": weekly["pain_morning_mean"].to_numpy(dtype=float),
            "group": arms.reindex(weekly["participant_id"].astype(str)).to_numpy(),
        }
    )
    assert len(data) == out.attrs["n_observations"]
    model = smf.mixedlm("pain ~ t * group", data, groups=data["participant"], re_formula="~t")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = model.fit(reml=True)
        powell = model.fit(reml=True, method="powell")
        best = model.fit(reml=True, method="bfgs", start_params=powell.params_object, gtol=1e-6)
    assert best.llf - default.llf > 1  # the case this test is about
    for term in ("Intercept", "t", "group[T.hsr]", "t:group[T.staged]"):
        assert out.loc[term, "estimate"] == pytest.approx(best.fe_params[term], abs=1e-5)
        assert out.loc[term, "std_err"] == pytest.approx(best.bse_fe[term], rel=1e-4)
    assert out.loc["var_slope", "estimate"] == pytest.approx(best.cov_re.iloc[1, 1], rel=1e-4)
    assert out.loc["var_residual", "estimate"] == pytest.approx(best.scale, rel=1e-5)


def test_thorough_route_runs_when_the_quick_fit_falls_short():
    # _fit tries BFGS from the given start first; when that ends below the nested model's
    # log-likelihood (here: a floor set above any attainable value) it also runs Powell and
    # BFGS-from-Powell and keeps the highest converged maximum — still lme4's optimum here.
    from rehabstats import pain

    ref = reference()["lmer_sleepstudy"]
    data = pd.DataFrame(
        {
            "participant": ref["data"]["subject"],
            "t": np.asarray(ref["data"]["days"], dtype=float),
            "pain": np.asarray(ref["data"]["reaction"], dtype=float),
        }
    )
    fit = pain._fit(data, "pain ~ t", random_slope=True, floor=1e9)
    assert fit.result.converged
    assert relative(fit.result.fe_params["t"], ref["fixef"]["Days"]) < 1e-6
    assert relative(fit.result.cov_re.iloc[1, 1], ref["var_slope"]) < 1e-4
