"""The pain trajectory model (METRICS.md §5) against lme4/lmerTest, its fallback and group terms.

References (tests/results/):

- ``r_reference.json`` (R 4.2.2, lme4 1.1-31), blocks ``lmer_sleepstudy`` =
  ``lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = TRUE)`` and
  ``lmer_sleepstudy_intercept_only`` = ``lmer(Reaction ~ Days + (1 | Subject), ...)``, with
  lme4's default optimiser settings;
- ``r_reference_2.json`` (R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, bobyqa to ``rhoend = 1e-12``):
  ``sleepstudy_satterthwaite``, ``sleepstudy_two_arms_satterthwaite`` (``Reaction ~ Days * arm
  + (Days | Subject)``) and ``singular_slope`` (a singular random-slope fit and its
  random-intercept refit) -- estimates, SE, Satterthwaite df, t-based CI and p, variance
  components, REML log-likelihood.

The data are rebuilt in the project's own schema: one participant per Subject, one morning NRS
rating per week on the first day of week Days + 1 (so that the week's mean is the rating and
t = week - 1 = Days). sleepstudy's Reaction is rescaled to Reaction / 50 to fit the NRS range:
that scales the fixed effects, SEs and CI limits by 1/50 and the variance components by 1/2500,
leaves df, t and p unchanged, and adds (n - p) log 50 to the REML log-likelihood (REML is the
likelihood of n - p error contrasts, whose density gains the Jacobian 50^(n - p)).
"""

from __future__ import annotations

import json
import math
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cohort_builder import cohort_from_rows
from scipy import stats

from rehabstats import AnalysisConfig, Cohort, ParameterError
from rehabstats.errors import Note
from rehabstats.metrics.pain import pain_model

RESULTS = Path(__file__).resolve().parents[1] / "results"
SCALE = 50.0
FIXED = ["estimate", "std_err", "df", "ci_low", "ci_high", "p_value"]
SCALED = {"estimate", "std_err", "ci_low", "ci_high"}  # in the response's units


@cache
def reference() -> dict:
    return json.loads((RESULTS / "r_reference.json").read_text())


@cache
def reference_2() -> dict:
    return json.loads((RESULTS / "r_reference_2.json").read_text())


def weekly_cohort(ids, weeks, values, arms=None) -> Cohort:
    """One morning rating per participant-week (t = week - 1 = ``weeks``)."""
    arm_of = dict(zip(ids, arms, strict=True)) if arms is not None else {}
    people = [
        {"participant_id": p, **({"arm": arm_of[p]} if arms is not None else {})}
        for p in dict.fromkeys(ids)
    ]
    pain = [
        {"participant_id": p, "day": 7 * int(t), "timing": "morning", "nrs": v}
        for p, t, v in zip(ids, weeks, values, strict=True)
    ]
    return cohort_from_rows(people, pain=pain, data_cutoff="2024-12-31")


@cache
def sleepstudy_cohort() -> Cohort:
    data = reference()["lmer_sleepstudy"]["data"]
    return weekly_cohort(data["subject"], data["days"], [r / SCALE for r in data["reaction"]])


@cache
def sleepstudy_two_arms_cohort() -> Cohort:
    data = reference_2()["sleepstudy_two_arms_data"]
    return weekly_cohort(
        data["subject"], data["days"], [r / SCALE for r in data["reaction"]], arms=data["arm"]
    )


def relative(a: float, b: float) -> float:
    return abs(a / b - 1)


def check_fixed_against_lmertest(out: pd.DataFrame, block: dict, names: dict, scale: float):
    """Fixed effects within 1e-6 relative (estimates), 1e-4 (SE, df, CI, p) of lmerTest."""
    for term, r_name in names.items():
        k = block["terms"].index(r_name)
        for column in FIXED:
            expected = block[column][k] / (scale if column in SCALED else 1.0)
            tol = 1e-6 if column == "estimate" else 1e-4
            assert relative(out.loc[term, column], expected) < tol, (term, column)


def test_random_slope_model_matches_lmertest():
    ref = reference_2()["sleepstudy_satterthwaite"]
    out = pain_model(sleepstudy_cohort())
    assert list(out.columns) == [
        "term", "estimate", "std_err", "df", "ci_low", "ci_high", "p_value",
        "model", "converged", "note",
    ]  # fmt: skip
    out = out.set_index("term")
    assert (out["model"] == "random_slope").all() and out["converged"].all()
    assert (out["note"] == "").all()
    assert list(out.index) == [
        "Intercept",
        "t",
        "var_intercept",
        "var_slope",
        "cov_intercept_slope",
        "var_residual",
    ]
    check_fixed_against_lmertest(out, ref, {"Intercept": "(Intercept)", "t": "Days"}, SCALE)
    # lmerTest: 17.0 df for both (18 subjects, balanced)
    assert out.loc["t", "df"] == pytest.approx(17.0, abs=1e-4)
    names = ["var_intercept", "var_slope", "cov_intercept_slope", "var_residual"]
    for term, expected in zip(names, ref["varcomp"]["vcov"], strict=True):
        assert relative(out.loc[term, "estimate"], expected / SCALE**2) < 1e-4
        assert out.loc[term, ["std_err", "df", "ci_low", "ci_high", "p_value"]].isna().all()
    n, p = 180, 2
    loglik = ref["reml_loglik"] + (n - p) * math.log(SCALE)  # see the module docstring
    attrs = pain_model(sleepstudy_cohort()).attrs
    assert attrs["reml_loglik"] == pytest.approx(loglik, rel=1e-6)
    assert (attrs["formula"], attrs["n_observations"], attrs["n_participants"]) == (
        "pain ~ t",
        180,
        18,
    )


def test_random_slope_model_matches_lme4_with_default_settings():
    # lme4's default bobyqa stops about 1e-6 (relative) short of the optimum in the SEs and
    # 1e-5 in the variance components, hence the looser tolerance against this block
    ref = reference()["lmer_sleepstudy"]
    out = pain_model(sleepstudy_cohort()).set_index("term")
    for term, r_name in {"Intercept": "(Intercept)", "t": "Days"}.items():
        assert relative(out.loc[term, "estimate"], ref["fixef"][r_name] / SCALE) < 1e-6
        assert relative(out.loc[term, "std_err"], ref["se"][r_name] / SCALE) < 1e-4
    for term in ("var_intercept", "var_slope", "cov_intercept_slope", "var_residual"):
        assert relative(out.loc[term, "estimate"], ref[term] / SCALE**2) < 1e-4


def test_grouped_model_matches_lmertest_with_patsy_term_order():
    # arm a (subjects 1st, 3rd, ... in level order) is the reference: R's armb is group[T.b]
    ref = reference_2()["sleepstudy_two_arms_satterthwaite"]
    out = pain_model(sleepstudy_two_arms_cohort(), by="arm")
    # the earlier statsmodels/patsy row order: intercept, group main effects, t, interactions
    assert list(out["term"]) == [
        "Intercept", "group[T.b]", "t", "t:group[T.b]",
        "var_intercept", "var_slope", "cov_intercept_slope", "var_residual",
    ]  # fmt: skip
    out = out.set_index("term")
    assert (out["model"] == "random_slope").all() and out["converged"].all()
    names = {"Intercept": "(Intercept)", "t": "Days", "group[T.b]": "armb"}
    check_fixed_against_lmertest(out, ref, {**names, "t:group[T.b]": "Days:armb"}, SCALE)
    assert out.attrs["formula"] == "pain ~ t * group"


def test_t_based_interval_and_p_value():
    out = pain_model(sleepstudy_cohort()).set_index("term")
    t = out.loc["t"]
    # lmerTest's t-based limits at df = 17: about 2.11 SE either side, wider than the normal
    # +-1.96 SE of the earlier Wald interval
    half = stats.t.ppf(0.975, 17.0) * t["std_err"]
    assert t["ci_high"] - t["ci_low"] == pytest.approx(2 * half, rel=1e-6)
    assert (t["ci_high"] - t["ci_low"]) / (2 * t["std_err"]) > stats.norm.ppf(0.975) + 0.1
    assert t["p_value"] == pytest.approx(
        2 * stats.t.sf(t["estimate"] / t["std_err"], 17.0), rel=1e-4
    )
    # confidence_level = 0.9 narrows the interval to +-t_{0.95, 17} = +-1.740 SE
    narrow = pain_model(sleepstudy_cohort(), config=AnalysisConfig(confidence_level=0.9))
    row = narrow.set_index("term").loc["t"]
    half = 1.7396067 * row["std_err"]  # qt(0.95, 17) in R
    assert row["ci_high"] - row["ci_low"] == pytest.approx(2 * half, rel=1e-6)
    assert row["p_value"] == pytest.approx(t["p_value"], rel=1e-12)  # p does not change


def test_random_intercept_model_matches_lme4():
    ref = reference()["lmer_sleepstudy_intercept_only"]
    out = pain_model(sleepstudy_cohort(), random_slope=False).set_index("term")
    assert (out["model"] == "random_intercept").all() and out["converged"].all()
    assert list(out.index) == ["Intercept", "t", "var_intercept", "var_residual"]
    assert "random intercept only" in out["note"].iloc[0]
    for term, r_name in {"Intercept": "(Intercept)", "t": "Days"}.items():
        assert relative(out.loc[term, "estimate"], ref["fixef"][r_name] / SCALE) < 1e-6
        assert relative(out.loc[term, "std_err"], ref["se"][r_name] / SCALE) < 1e-4
    # balanced data with a random intercept: t's df is the within-subject residual df,
    # 180 - 18 - 1 = 161, as lmerTest gives for this model
    assert out.loc["t", "df"] == pytest.approx(161.0, rel=1e-6)


def test_singular_random_slope_falls_back_to_the_random_intercept_as_lmertest():
    # lme4 fits the random-slope model with an intercept-slope correlation of +1 (isSingular
    # TRUE); the contract's fallback then reports lmer's random-intercept fit
    block = reference_2()["singular_slope"]
    assert block["random_slope"]["singular"]
    data = block["data"]
    out = pain_model(weekly_cohort(data["participant"], data["t"], data["pain"]))
    out = out.set_index("term")
    assert (out["model"] == "random_intercept").all() and out["converged"].all()
    note = out["note"].iloc[0]
    assert "random-slope model not used (singular random-effects covariance" in note
    assert "refitted with a random intercept only" in note
    ref = block["random_intercept"]
    check_fixed_against_lmertest(out, ref, {"Intercept": "(Intercept)", "t": "t"}, 1.0)
    for term, expected in zip(
        ["var_intercept", "var_residual"], ref["varcomp"]["vcov"], strict=True
    ):
        assert relative(out.loc[term, "estimate"], expected) < 1e-4
    assert out.attrs["reml_loglik"] == pytest.approx(ref["reml_loglik"], rel=1e-6)
    assert "var_slope" not in out.index


def test_a_random_slope_fit_below_the_nested_model_is_not_used(monkeypatch):
    # the guard against an optimiser that stops short: the random-slope model contains the
    # random intercept (Lambda_10 = Lambda_11 = 0), so its REML maximum cannot be lower. The
    # exact fitter never gets there; simulate a random-slope fit that ended 0.01 below the
    # random-intercept model's maximum (on sleepstudy the true random-slope maximum is about
    # 21 units above it)
    import dataclasses

    from rehabstats.stats import mixed

    fit_stats = mixed.fit_stats

    def short_of_the_maximum(stats, *, random_slope=True, **options):
        fit = fit_stats(stats, random_slope=random_slope, **options)
        if not random_slope:
            return fit
        nested = fit_stats(stats, random_slope=False, **options)
        assert fit.loglik > nested.loglik + 20
        return dataclasses.replace(fit, loglik=nested.loglik - 0.01)

    monkeypatch.setattr(mixed, "fit_stats", short_of_the_maximum)
    out = pain_model(sleepstudy_cohort()).set_index("term")
    assert (out["model"] == "random_intercept").all() and out["converged"].all()
    note = out["note"].iloc[0]
    assert "random-slope model not used (REML log-likelihood" in note
    assert "below the nested random-intercept model's" in note
    assert "var_slope" not in out.index


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
    # REML estimate is on the boundary (zero), the random-slope fit is singular and the
    # random intercept is used
    lines = {f"p{i}": ("staged", 3.0 + i * 0.7, -0.2) for i in range(6)}
    out = pain_model(balanced_cohort(lines)).set_index("term")
    assert (out["model"] == "random_intercept").all()
    assert "random-slope model not used (singular" in out["note"].iloc[0]
    assert "refitted with a random intercept only" in out["note"].iloc[0]
    assert "var_slope" not in out.index
    # balanced complete data: the fixed effects are the least-squares line of the mean curve,
    # 3 + 0.7 * 2.5 = 4.75 at week 1 and -0.2 per week (the wiggle has zero mean but is not
    # orthogonal to t, so fit it exactly: slope of the wiggle over t = 0..5)
    wiggle = np.array([0.3, -0.2, 0.1, -0.3, 0.2, -0.1])
    slope, intercept = np.polyfit(np.arange(6), wiggle, 1)
    assert out.loc["t", "estimate"] == pytest.approx(-0.2 + slope, abs=1e-6)
    assert out.loc["Intercept", "estimate"] == pytest.approx(4.75 + intercept, abs=1e-6)
    # balanced data with a random intercept: t varies only within participants, so its
    # Satterthwaite df are the within-participant residual df, 36 - 6 - 1 = 29 (36 weekly
    # means, 6 participant means, 1 slope)
    assert out.loc["t", "df"] == pytest.approx(29.0, rel=1e-6)


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
    assert list(out["term"])[:4] == ["Intercept", "group[T.hsr]", "t", "t:group[T.hsr]"]
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
        "df",
        "ci_low",
        "ci_high",
        "p_value",
        "model",
        "converged",
        "note",
    ]
    assert "reml_loglik" not in out.attrs


def test_one_week_per_participant_is_not_a_mixed_model_and_the_counts_stay_apart():
    # three participants with one weekly mean each: 3 observations for 3 random intercepts,
    # which lme4 refuses ("number of observations (=3) <= number of random effects (=3)"),
    # and the random-slope model (6 random effects) even more so: no model
    out = pain_model(weekly_cohort(["p1", "p2", "p3"], [0, 1, 2], [3.0, 4.0, 6.0]))
    assert len(out) == 1 and out["model"].iloc[0] == "none" and not out["converged"].iloc[0]
    note = out["note"].iloc[0]
    assert "random-slope model not used (the model could not be fitted)" in note
    assert "number of observations (3) <= number of random effects (3)" in note
    # the notes that show counts are Note objects, so that external reports can suppress them
    counted = [n for n in out.attrs["notes"] if "number of observations" in n]
    assert len(counted) == 2 and all(isinstance(n, Note) for n in counted)
    slope_note = next(n for n in counted if n.startswith("random-slope fit: "))
    assert slope_note.counts == {"n": 3, "q": 6}
    assert slope_note.with_counts(lambda k: "<5") == (
        "random-slope fit: number of observations (<5) <= number of random effects (<5) for "
        "(1 + t | participant); the variance components are not identifiable (lme4 refuses "
        "this model)"
    )


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


# -- cross-checks against statsmodels' MixedLM (the earlier production route) -----------------


def _statsmodels_data(cohort: Cohort, by: str | None = None) -> pd.DataFrame:
    """The model data as pain_model describes it, built independently from weekly_pain."""
    from rehabstats.metrics.pain import weekly_pain

    weekly = weekly_pain(cohort)
    ids = weekly["participant_id"].astype(str)
    frame = pd.DataFrame(
        {
            "participant": ids.to_numpy(),
            "t": weekly["week"].to_numpy(dtype=float) - 1,
            "pain": weekly["pain_morning_mean"].to_numpy(dtype=float),
        }
    )
    if by is not None:
        groups = cohort.participants.set_index("participant_id")[by].astype(str)
        frame["group"] = groups.reindex(ids).to_numpy()
    return frame


def test_estimates_equal_statsmodels_mixedlm():
    import statsmodels.formula.api as smf

    cohort = sleepstudy_two_arms_cohort()
    data = _statsmodels_data(cohort, "arm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.mixedlm("pain ~ t * group", data, groups=data["participant"], re_formula="~t")
        result = model.fit(reml=True)
    assert result.converged
    out = pain_model(cohort, by="arm").set_index("term")
    for term in ("Intercept", "group[T.b]", "t", "t:group[T.b]"):
        assert out.loc[term, "estimate"] == pytest.approx(result.fe_params[term], abs=1e-6)
        assert out.loc[term, "std_err"] == pytest.approx(result.bse_fe[term], rel=1e-4)
    cov = result.cov_re.to_numpy()
    assert out.loc["var_intercept", "estimate"] == pytest.approx(cov[0, 0], rel=1e-4)
    assert out.loc["var_slope", "estimate"] == pytest.approx(cov[1, 1], rel=1e-4)
    assert out.loc["cov_intercept_slope", "estimate"] == pytest.approx(cov[0, 1], rel=1e-3)
    assert out.loc["var_residual", "estimate"] == pytest.approx(result.scale, rel=1e-5)
    assert out.attrs["reml_loglik"] == pytest.approx(result.llf, rel=1e-8)


def test_fit_reaches_at_least_statsmodels_best_maximum():
    # On this simulated cohort statsmodels' default fit (BFGS from its own start) stops short:
    # it ends at REML log-likelihood -6715.653 (not converged); its slow thorough route, Powell
    # then BFGS from Powell's estimate (gtol 1e-6), reaches -6706.267994217458 -- both run
    # once with statsmodels 0.15.0 on exactly these data (5,678 participant-weeks, the weekly
    # means summing to 18262.171428571...), recorded here because the thorough route takes
    # about 25 s. The fitted model must be at that maximum or above it, and statsmodels'
    # own likelihood, evaluated at the fit, must agree and be stationary there.
    import statsmodels.formula.api as smf
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    from rehabstats.data.simulate import simulate_cohort

    with pytest.warns(Warning):
        cohort = simulate_cohort(500, seed=0)
    data = _statsmodels_data(cohort, "arm")
    assert len(data) == 5678 and data["pain"].sum() == pytest.approx(18262.171428571, rel=1e-12)
    statsmodels_best = -6706.267994217458

    out = pain_model(cohort, by="arm")
    assert (out["model"] == "random_slope").all() and out["converged"].all()
    assert out.attrs["n_observations"] == 5678
    assert out.attrs["reml_loglik"] >= statsmodels_best - 1e-9

    # statsmodels' REML log-likelihood at the fitted estimates (fixed effects and scale
    # profiled) is the reported one, and its score vanishes there
    est = out.set_index("term")["estimate"]
    cov = np.array(
        [
            [est["var_intercept"], est["cov_intercept_slope"]],
            [est["cov_intercept_slope"], est["var_slope"]],
        ]
    )
    fixed = ["Intercept", "group[T.hsr]", "group[T.staged]", "t", "t:group[T.hsr]",
             "t:group[T.staged]"]  # fmt: skip
    params = MixedLMParams.from_components(
        fe_params=est[fixed].to_numpy(dtype=float), cov_re=cov / est["var_residual"]
    )
    model = smf.mixedlm("pain ~ t * group", data, groups=data["participant"], re_formula="~t")
    model.reml, model.cov_pen, model.fe_pen, model._cov_sing, model._freepat = (
        True, None, None, 0, None,
    )  # fmt: skip  # what MixedLM.fit sets before it evaluates the likelihood
    assert model.loglike(params, profile_fe=True) == pytest.approx(
        out.attrs["reml_loglik"], rel=1e-10
    )
    assert np.max(np.abs(model.score(params, profile_fe=True))) < 1e-4


# -- the report's section -----------------------------------------------------------------------


def test_report_section_shows_df_and_says_the_intervals_are_t_based():
    import re

    from rehabstats.report import sections
    from rehabstats.report.sections.common import definition_items

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = sections.prepare("cohort_report", demo_participants=40)
    model = analysis.pain_model.set_index("term")
    html = sections.pain_model(analysis)._repr_html_()
    caption = re.search(r"<caption>(.*?)</caption>", html).group(1)
    assert "from t distributions with Satterthwaite degrees of freedom, df" in caption
    headers = re.findall(r'<th [^>]*class="col_heading[^>]*>(.*?)</th>', html)
    assert headers == ["term", "estimate", "df", "95% CI", "p"]
    # the reference group's slope: its df with one decimal, its t-based interval
    row = model.loc["t"]
    assert f">{row['df']:.1f}<" in html
    assert f">{row['ci_low']:.2f} to {row['ci_high']:.2f}<" in html
    assert "Satterthwaite degrees of freedom (df), as R&#x27;s lmerTest" in html
    definition = dict(definition_items(analysis.config))["Pain trajectory model"]
    assert "t distributions with Satterthwaite degrees of freedom" in definition
    assert "statsmodels" not in definition and "statsmodels" not in html
