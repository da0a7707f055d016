"""The REML trajectory fitter (rehabstats.stats.mixed) against lme4/lmerTest and statsmodels.

References (tests/results/, each block with the R call that produced it and its data):

- ``r_reference_2.json`` (``r_reference_2.R``; R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, bobyqa to
  ``rhoend = 1e-12``): ``sleepstudy_satterthwaite`` (``Reaction ~ Days + (Days | Subject)``),
  ``sleepstudy_two_arms_satterthwaite`` (``Reaction ~ Days * arm + (Days | Subject)``),
  ``large_three_arms`` / ``large_one_group`` (3,000 participants, ``lmm_large.csv.gz``) and
  ``singular_slope`` (a singular random-slope fit and its random-intercept refit).
- ``r_reference_mixed.json`` (``r_reference_mixed.R``, same versions): edge cases.

R names the terms ``(Intercept)``, ``Days``/``t``, ``arm<level>``, ``Days:arm<level>``; the
fitter names them as statsmodels/patsy: ``Intercept``, ``t``, ``group[T.<level>]``,
``t:group[T.<level>]``.

Tolerances. lme4's own estimates are not exact: bobyqa, a derivative-free method, stops where
deviance differences drown in rounding, about 1e-7 relative from the optimum in theta (the
gradient of the deviance at lme4's theta is of order 1e-5, at this fitter's 1e-13 -- see
``test_optimum_is_sharper_than_lme4``), and lmerTest differentiates numerically. The contract's
tolerances (1e-6 relative on fixed effects and the REML log-likelihood, 1e-4 on variance
components, degrees of freedom, SE, t, p and CI) hold on the reference blocks with room to
spare; where lme4's imprecision in theta moves a coefficient near zero by more than 1e-6 of its
value (an edge-case block), the fixed effects are compared within 1e-6 of their standard error.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rehabstats.errors import ModelDataError, ParameterError
from rehabstats.stats.mixed import (
    FIXED_COLUMNS,
    MixedFit,
    TrajectoryStats,
    _Deviance,
    fit_stats,
    fit_trajectory,
    trajectory_stats,
)

RESULTS = Path(__file__).resolve().parents[1] / "results"
INFERENCE = ["std_err", "df", "t_value", "p_value", "ci_low", "ci_high"]


@cache
def reference() -> dict:
    return json.loads((RESULTS / "r_reference_2.json").read_text())


@cache
def edge_reference() -> dict:
    return json.loads((RESULTS / "r_reference_mixed.json").read_text())


@cache
def large() -> pd.DataFrame:
    return pd.read_csv(RESULTS / "lmm_large.csv.gz")


def sleepstudy() -> pd.DataFrame:
    d = reference()["sleepstudy_two_arms_data"]
    return pd.DataFrame(
        {"subject": d["subject"], "days": d["days"], "reaction": d["reaction"], "arm": d["arm"]}
    )


def term_name(r_name: str) -> str:
    """R's coefficient name -> the fitter's."""
    for prefix in ("Days:arm", "t:arm"):
        if r_name.startswith(prefix):
            return f"t:group[T.{r_name[len(prefix) :]}]"
    if r_name.startswith("arm"):
        return f"group[T.{r_name[3:]}]"
    return {"(Intercept)": "Intercept", "Days": "t", "t": "t"}[r_name]


def simulate(n: int, *, seed: int, arms: tuple[str, ...] = ("a", "b", "c")) -> pd.DataFrame:
    """Weekly pain for ``n`` participants, weeks 0-11, about 30% of weeks missing."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(np.array(arms), n)
    b0, b1 = rng.normal(0, 1.2, n), rng.normal(0, 0.09, n)
    pid = np.repeat(np.arange(n), 12)
    t = np.tile(np.arange(12.0), n)
    keep = rng.random(n * 12) > 0.3
    pid, t = pid[keep], t[keep]
    shift = np.array([0.0, -0.3, 0.1, 0.2])[np.searchsorted(np.array(arms), arm[pid])]
    y = 4.6 + shift + b0[pid] + (-0.24 + shift / 10 + b1[pid]) * t + rng.normal(0, 0.63, t.size)
    return pd.DataFrame(
        {"participant": [f"P{i:05d}" for i in pid], "arm": arm[pid], "t": t, "pain": y}
    )


def check_against(fit: MixedFit, ref: dict, *, estimate_tol: float = 1e-6) -> None:
    """Every output of ``fit`` against an lmerTest block (tolerances: module docstring)."""
    fixed = fit.fixed.set_index("term")
    names = [term_name(r) for r in ref["terms"]]
    assert fixed.dropna().index.tolist() == names
    for i, name in enumerate(names):
        row = fixed.loc[name]
        assert row["estimate"] == pytest.approx(ref["estimate"][i], rel=estimate_tol)
        for column in INFERENCE:
            expected = ref[column][i]
            if column == "p_value" and expected == 0:  # R's pt() underflows to 0
                assert row[column] < 1e-300
            else:
                assert row[column] == pytest.approx(expected, rel=1e-4), (name, column)
    assert list(fit.variance.values()) == pytest.approx(ref["varcomp"]["vcov"], rel=1e-4)
    assert fit.loglik == pytest.approx(ref["reml_loglik"], rel=1e-6)
    assert fit.singular == ref["singular"]


# -- against lme4 / lmerTest ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "group"),
    [("sleepstudy_satterthwaite", None), ("sleepstudy_two_arms_satterthwaite", "arm")],
)
def test_sleepstudy_matches_lmertest(block, group):
    fit = fit_trajectory(sleepstudy(), participant="subject", t="days", y="reaction", group=group)
    check_against(fit, reference()[block])
    assert fit.converged and fit.model == "random_slope" and fit.notes == ()
    assert (fit.n_obs, fit.n_groups) == (180, 18)


@pytest.mark.parametrize(
    ("block", "group"), [("large_three_arms", "arm"), ("large_one_group", None)]
)
def test_large_unbalanced_cohort_matches_lmertest(block, group):
    fit = fit_trajectory(large(), participant="participant", t="t", y="pain", group=group)
    check_against(fit, reference()[block])
    assert fit.converged and fit.n_groups == 3000 and fit.n_obs == reference()["large_rows"]


def test_singular_random_slope_is_detected_and_the_random_intercept_refit_matches():
    ref = reference()["singular_slope"]
    data = pd.DataFrame(ref["data"])
    slope = fit_trajectory(data, participant="participant", t="t", y="pain")
    # lme4: isSingular() is TRUE -- the intercept-slope correlation is +1, Lambda_11 = 0
    assert slope.singular and ref["random_slope"]["singular"]
    assert slope.theta[2] < 1e-4
    check_against(slope, ref["random_slope"])
    intercept = fit_trajectory(data, participant="participant", t="t", y="pain", random_slope=False)
    assert intercept.model == "random_intercept" and not intercept.singular
    assert intercept.converged
    check_against(intercept, ref["random_intercept"])


@pytest.mark.parametrize("case", ["single_observations", "one_participant_group", "rank_deficient"])
@pytest.mark.parametrize("model", ["random_slope", "random_intercept"])
def test_edge_cases_match_lmertest(case, model):
    block = edge_reference()[case]
    ref = block[model]
    fit = fit_trajectory(
        pd.DataFrame(block["data"]),
        participant="participant",
        t="t",
        y="pain",
        group="arm",
        random_slope=model == "random_slope",
    )
    fixed = fit.fixed.set_index("term")
    names = [term_name(r) for r in ref["terms"]]
    se = fixed.loc[names, "std_err"].to_numpy()
    # estimates within 1e-6 of their SE (lme4's theta is ~1e-7 off, see the module docstring)
    assert np.all(np.abs(fixed.loc[names, "estimate"].to_numpy() - ref["estimate"]) <= 1e-6 * se)
    check_against(fit, ref, estimate_tol=1e-4)
    assert fit.converged
    assert fit.theta == pytest.approx(np.atleast_1d(ref["theta"]), rel=1e-5, abs=1e-6)


def test_rank_deficient_design_drops_the_collinear_term_as_lme4():
    # Arm c holds one participant observed once (t = 4): its rows of group[T.c] and
    # t:group[T.c] are 1 and 4, collinear; lme4 keeps the first and drops t:armc.
    block = edge_reference()["rank_deficient"]
    fit = fit_trajectory(
        pd.DataFrame(block["data"]), participant="participant", t="t", y="pain", group="arm"
    )
    row = fit.fixed.set_index("term").loc["t:group[T.c]"]
    assert row.isna().all()
    assert "t:armc" not in block["random_slope"]["terms"]
    assert any("t:group[T.c]" in note and "rank deficient" in note for note in fit.notes)
    assert list(fit.cov_beta.index) == [term_name(r) for r in block["random_slope"]["terms"]]


def test_optimum_is_sharper_than_lme4():
    # The profiled deviance's gradient at lme4's theta (bobyqa, rhoend = 1e-12) is of order
    # 1e-5; at the fitter's theta it vanishes to rounding, and the deviance is no higher.
    data = pd.DataFrame(reference()["singular_slope"]["data"])
    ref = reference()["singular_slope"]["random_intercept"]
    stats_ = trajectory_stats(data, participant="participant", t="t", y="pain")
    dev = _Deviance(stats_, np.ones(2, dtype=bool))
    fit = fit_stats(stats_, random_slope=False)
    var_intercept, var_residual = ref["varcomp"]["vcov"]
    lme4_theta = np.array([np.sqrt(var_intercept / var_residual), 0.0, 0.0])
    ours = np.array([fit.theta[0], 0.0, 0.0])
    grad_lme4 = dev.profiled_hessian(dev.solve(lme4_theta))[0][0]
    grad_ours = dev.profiled_hessian(dev.solve(ours))[0][0]
    assert abs(grad_ours) < 1e-9 < abs(grad_lme4)
    # the two deviances differ only by rounding (the optimum is flat)
    assert dev(ours) == pytest.approx(dev(lme4_theta), rel=1e-13)


# -- against statsmodels ----------------------------------------------------------------------


def _statsmodels_model(frame: pd.DataFrame, formula: str, random_slope: bool = True):
    import statsmodels.formula.api as smf

    model = smf.mixedlm(
        formula, frame, groups=frame["participant"], re_formula="~t" if random_slope else None
    )
    # what fit() sets before it evaluates the likelihood
    model.reml, model.cov_pen, model.fe_pen, model._cov_sing, model._freepat = (
        True,
        None,
        None,
        0,
        None,
    )
    return model


def _statsmodels_params(fit: MixedFit, fe_params: np.ndarray):
    """statsmodels' parameters at the fit: the random-effects covariance relative to sigma^2."""
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    v = fit.variance
    if fit.model == "random_slope":
        cov = np.array(
            [
                [v["var_intercept"], v["cov_intercept_slope"]],
                [v["cov_intercept_slope"], v["var_slope"]],
            ]
        )
    else:
        cov = np.array([[v["var_intercept"]]])
    return MixedLMParams.from_components(fe_params=fe_params, cov_re=cov / v["var_residual"])


def test_deviance_equals_statsmodels_reml_likelihood_at_any_theta():
    # statsmodels' MixedLM.loglike (REML, fixed effects and scale profiled out) is an
    # independent implementation of the same criterion: -d_R(theta) / 2 at D = Lambda Lambda'.
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    frame = simulate(120, seed=5)
    model = _statsmodels_model(frame, "pain ~ t * arm")
    stats_ = trajectory_stats(frame, participant="participant", t="t", y="pain", group="arm")
    dev = _Deviance(stats_, np.ones(6, dtype=bool))
    rng = np.random.default_rng(1)
    # (statsmodels inverts the covariance, so only regular ones: no zero on Lambda's diagonal)
    thetas = [*rng.normal(0, 1, (6, 3)), [1.0, 0.3, 0.05], [0.05, 0.0, 0.05], [3.0, -0.5, 0.2]]
    for theta in thetas:
        a, b, c = theta
        relative_cov = np.array([[a * a, a * b], [a * b, b * b + c * c]])
        params = MixedLMParams.from_components(fe_params=np.zeros(6), cov_re=relative_cov)
        expected = model.loglike(params, profile_fe=True)
        assert -dev(np.asarray(theta)) / 2 == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("random_slope", [True, False])
def test_fit_is_the_maximum_statsmodels_finds_or_better(random_slope):
    import warnings

    frame = simulate(150, seed=8)
    model = _statsmodels_model(frame, "pain ~ t * arm", random_slope)
    fit = fit_trajectory(
        frame, participant="participant", t="t", y="pain", group="arm", random_slope=random_slope
    )
    # statsmodels' GLS fixed effects at the fitted covariance are the fitted fixed effects
    params = _statsmodels_params(fit, np.zeros(6))
    fe_params, _ = model.get_fe_params(params.cov_re, params.vcomp)
    order = [0, 3, 1, 2, 4, 5]  # statsmodels: Intercept, arm[T.b], arm[T.c], t, t:arm[T.b], ...
    np.testing.assert_allclose(fit.fixed["estimate"], fe_params[order], rtol=1e-9)
    # its REML log-likelihood there is the fit's, and its score (gradient) vanishes there
    params = _statsmodels_params(fit, fe_params)
    assert model.loglike(params, profile_fe=True) == pytest.approx(fit.loglik, rel=1e-10)
    score = model.score(params, profile_fe=True)
    assert np.max(np.abs(score)) < 1e-5
    # statsmodels' own optimiser (Powell, then BFGS) does not find a higher maximum
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(reml=True, method=["powell", "bfgs"])
    assert result.llf <= fit.loglik + 1e-8
    assert result.llf == pytest.approx(fit.loglik, abs=0.01)
    np.testing.assert_allclose(result.fe_params.to_numpy()[order], fit.fixed["estimate"], atol=1e-3)


# -- Satterthwaite: analytic derivatives against lmerTest's numerical route -------------------


def richardson(f, x: float, h: float, order: int = 4) -> float:
    """Central-difference derivative of f at x with Richardson extrapolation (steps h / 2^k),
    the scheme of numDeriv::grad(method = "Richardson") that lmerTest uses."""
    table = [(f(x + h / 2**k) - f(x - h / 2**k)) / (2 * h / 2**k) for k in range(order)]
    for level in range(1, order):
        table = [
            (4**level * table[k + 1] - table[k]) / (4**level - 1) for k in range(len(table) - 1)
        ]
    return table[0]


@pytest.mark.parametrize("random_slope", [True, False])
def test_satterthwaite_df_equals_numerical_differentiation(random_slope):
    # lmerTest: H = Hessian of devfun_vp(varpar) and J = Jacobian of cov(beta)(varpar) by
    # numerical differentiation; df_j = 2 var_j^2 / (g' (2 H^-1) g), g_k = dvar_j/dvarpar_k.
    # Rebuilt here from deviance evaluations only (derivatives of derivatives by Richardson).
    frame = simulate(80, seed=21)
    fit = fit_trajectory(
        frame, participant="participant", t="t", y="pain", group="arm", random_slope=random_slope
    )
    stats_ = trajectory_stats(frame, participant="participant", t="t", y="pain", group="arm")
    dev = _Deviance(stats_, np.ones(6, dtype=bool))
    free = [0, 1, 2] if random_slope else [0]
    varpar = np.append(fit.theta, fit.sigma)
    k = len(varpar)

    def unpack(v: np.ndarray) -> tuple[np.ndarray, float]:
        theta = np.zeros(3)
        theta[free] = v[:-1]
        return theta, float(v[-1])

    def devfun_vp(v: np.ndarray) -> float:
        theta, sigma = unpack(v)
        sol = dev.solve(theta)
        return (
            sol["logdet_l"]
            + sol["logdet_x"]
            + sol["r2"] / sigma**2
            + dev.dof * np.log(2 * np.pi * sigma**2)
        )

    def cov_beta(v: np.ndarray) -> np.ndarray:
        theta, sigma = unpack(v)
        upper = np.triu(dev.solve(theta)["chol"][0])  # R_X, with R_X'R_X = X'V^-1X
        return sigma**2 * np.linalg.inv(upper.T @ upper)

    def along(f, i: int):
        return lambda s: f(varpar + s * np.eye(k)[i])

    hess = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            hess[i, j] = richardson(
                lambda s, i=i, j=j: richardson(
                    lambda r: devfun_vp(varpar + s * np.eye(k)[i] + r * np.eye(k)[j]), 0.0, 1e-2
                ),
                0.0,
                1e-2,
            )
    hess = (hess + hess.T) / 2
    w = 2 * np.linalg.inv(hess)
    var = np.diag(cov_beta(varpar))
    grads = np.array(
        [richardson(lambda s, i=i: np.diag(along(cov_beta, i)(s)), 0.0, 1e-2) for i in range(k)]
    )
    df = 2 * var**2 / np.einsum("kj,kl,lj->j", grads, w, grads)
    assert fit.fixed["df"].to_numpy() == pytest.approx(df, rel=1e-6)


# -- sufficient statistics --------------------------------------------------------------------


def test_statistics_are_sums_over_rows():
    # Z_i'Z_i = (n_i, sum t, sum t^2), Z_i'y_i = (sum y, sum t y), by hand for two participants
    frame = pd.DataFrame(
        {"id": ["p", "p", "q", "p"], "t": [0.0, 1.0, 2.0, 3.0], "y": [5.0, 4.0, 6.0, 2.0]}
    )
    s = trajectory_stats(frame, participant="id", t="t", y="y")
    assert list(s.participants) == ["p", "q"]
    assert s.zz.tolist() == [[3.0, 4.0, 10.0], [1.0, 2.0, 4.0]]
    assert s.zy.tolist() == [[11.0, 10.0], [6.0, 12.0]]
    assert (s.yy, s.n_obs, s.terms) == (25.0 + 16 + 36 + 4, 4, ("Intercept", "t"))
    # X'X of y ~ t: [[n, sum t], [sum t, sum t^2]]
    assert s.xtx().tolist() == [[4.0, 6.0], [6.0, 14.0]]


def test_statistics_of_parts_combine_to_the_whole():
    frame = simulate(300, seed=3)
    whole = trajectory_stats(frame, participant="participant", t="t", y="pain", group="arm")
    # rows dealt at random to three parts: most participants are split across parts
    part = np.random.default_rng(0).integers(0, 3, len(frame))
    parts = [
        trajectory_stats(
            frame[part == k],
            participant="participant",
            t="t",
            y="pain",
            group="arm",
            levels=["a", "b", "c"],
        )
        for k in range(3)
    ]
    combined = TrajectoryStats.combine(*parts)
    assert combined.n_groups == whole.n_groups and combined.n_obs == whole.n_obs
    order = pd.Index(combined.participants).get_indexer(whole.participants)
    np.testing.assert_allclose(combined.zz[order], whole.zz, rtol=1e-12)
    np.testing.assert_allclose(combined.zy[order], whole.zy, rtol=1e-12)
    assert (combined.group[order] == whole.group).all()
    a, b = fit_stats(whole), fit_stats(parts[0] + parts[1] + parts[2])
    for column in FIXED_COLUMNS[1:]:
        np.testing.assert_allclose(b.fixed[column], a.fixed[column], rtol=1e-9)
    assert b.loglik == pytest.approx(a.loglik, rel=1e-12)
    # disjoint participants concatenate
    ids = frame["participant"].unique()
    left = frame["participant"].isin(ids[:100])
    halves = [
        trajectory_stats(
            frame[mask],
            participant="participant",
            t="t",
            y="pain",
            group="arm",
            levels=["a", "b", "c"],
        )
        for mask in (left, ~left)
    ]
    c = fit_stats(halves[1] + halves[0])
    np.testing.assert_allclose(c.fixed["estimate"], a.fixed["estimate"], rtol=1e-9)


def test_combining_needs_the_same_levels_and_groups():
    frame = simulate(40, seed=4)
    a = trajectory_stats(frame, participant="participant", t="t", y="pain", group="arm")
    b = trajectory_stats(
        frame, participant="participant", t="t", y="pain", group="arm", levels=["c", "b", "a"]
    )
    with pytest.raises(ModelDataError, match="same `levels`"):
        a + b
    moved = frame.assign(arm=frame["arm"].map({"a": "b", "b": "c", "c": "a"}))
    c = trajectory_stats(moved, participant="participant", t="t", y="pain", group="arm")
    with pytest.raises(ModelDataError, match="different groups"):
        a + c


# -- terms, groups, intervals ------------------------------------------------------------------


def test_reference_group_is_the_first_alphabetically_and_terms_are_named_like_patsy():
    frame = simulate(60, seed=6, arms=("b", "c", "a"))
    fit = fit_trajectory(frame, participant="participant", t="t", y="pain", group="arm")
    assert fit.fixed["term"].tolist() == [
        "Intercept",
        "t",
        "group[T.b]",
        "group[T.c]",
        "t:group[T.b]",
        "t:group[T.c]",
    ]
    assert list(fit.fixed.columns) == FIXED_COLUMNS
    assert list(fit.variance) == [
        "var_intercept",
        "var_slope",
        "cov_intercept_slope",
        "var_residual",
    ]
    table = fit.table()
    assert table["term"].tolist()[6:] == list(fit.variance)
    assert table["estimate"].tolist()[6:] == list(fit.variance.values())
    assert table.iloc[6:, 2:].isna().all().all() and list(table.columns) == FIXED_COLUMNS
    # explicit levels choose the reference: c first gives group[T.a] and group[T.b]
    s = trajectory_stats(
        frame, participant="participant", t="t", y="pain", group="arm", levels=["c", "a", "b"]
    )
    assert s.terms[2:4] == ("group[T.a]", "group[T.b]")
    # the same model in another coding: the reference group's line is the same
    other = fit_stats(s).fixed.set_index("term")["estimate"]
    ours = fit.fixed.set_index("term")["estimate"]
    assert other["Intercept"] == pytest.approx(ours["Intercept"] + ours["group[T.c]"], rel=1e-8)
    assert other["t"] == pytest.approx(ours["t"] + ours["t:group[T.c]"], rel=1e-8)


def test_a_single_group_level_fits_without_group_terms_and_says_so():
    frame = simulate(50, seed=7, arms=("only",))
    fit = fit_trajectory(frame, participant="participant", t="t", y="pain", group="arm")
    plain = fit_trajectory(frame, participant="participant", t="t", y="pain")
    assert fit.fixed["term"].tolist() == ["Intercept", "t"]
    np.testing.assert_allclose(fit.fixed["estimate"], plain.fixed["estimate"], rtol=1e-12)
    assert "single arm level (only)" in fit.notes[0]


def test_an_empty_level_is_not_estimable():
    frame = simulate(50, seed=9, arms=("a", "b"))
    s = trajectory_stats(
        frame, participant="participant", t="t", y="pain", group="arm", levels=["a", "b", "z"]
    )
    fit = fit_stats(s)
    assert fit.fixed.set_index("term").loc[["group[T.z]", "t:group[T.z]"], "estimate"].isna().all()
    assert "group[T.z], t:group[T.z]" in fit.notes[0]


def test_intervals_and_p_values_use_the_t_distribution_with_satterthwaite_df():
    fit = fit_trajectory(
        sleepstudy(), participant="subject", t="days", y="reaction", confidence=0.9
    )
    row = fit.fixed.set_index("term").loc["t"]
    # t_{0.95, df}: about 1.74 at df = 17 (normal: 1.645)
    half = stats.t.ppf(0.95, row["df"]) * row["std_err"]
    assert row["ci_high"] - row["ci_low"] == pytest.approx(2 * half, rel=1e-12)
    assert 1.73 < half / row["std_err"] < 1.75
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(row["t_value"], row["df"]), rel=1e-12)
    with pytest.raises(ParameterError, match="confidence"):
        fit_trajectory(sleepstudy(), participant="subject", t="days", y="reaction", confidence=95)


# -- edge cases ---------------------------------------------------------------------------------


def test_every_participant_observed_once_is_not_identifiable():
    # One observation per participant: n = m <= 2m random effects (slope) and n = m <= m
    # (intercept); lme4 refuses both ("number of observations <= number of random effects").
    frame = simulate(80, seed=10).groupby("participant").head(1)
    slope = fit_trajectory(frame, participant="participant", t="t", y="pain", group="arm")
    assert not slope.converged and slope.fixed["estimate"].isna().all()
    assert "number of observations (80) <= number of random effects (160)" in slope.notes[0]
    assert slope.notes[0].counts == {"n": 80, "q": 160}  # a Note: counts kept for small cells
    intercept = fit_trajectory(
        frame, participant="participant", t="t", y="pain", random_slope=False
    )
    assert not intercept.converged and np.isnan(intercept.loglik)
    assert "(80) <= number of random effects (80)" in intercept.notes[0]


def test_random_slope_needs_more_observations_than_random_effects():
    # two weeks each: n = 2m, the slope model is refused; one more row and it is fitted
    frame = simulate(40, seed=11)
    two = frame.groupby("participant").head(2)
    assert not fit_trajectory(two, participant="participant", t="t", y="pain").converged
    three = pd.concat([two, frame.groupby("participant").nth(2).head(1)])
    fit = fit_trajectory(three, participant="participant", t="t", y="pain")
    assert np.isfinite(fit.fixed["estimate"]).all()
    assert fit_trajectory(
        two, participant="participant", t="t", y="pain", random_slope=False
    ).converged


def test_one_participant_is_not_a_mixed_model():
    frame = simulate(5, seed=12)
    fit = fit_trajectory(
        frame[frame["participant"] == frame["participant"].iloc[0]],
        participant="participant",
        t="t",
        y="pain",
    )
    assert not fit.converged and "at least 2" in fit.notes[0]


def test_a_response_without_residual_variation_is_not_fitted():
    frame = simulate(20, seed=13).assign(pain=3.0)
    fit = fit_trajectory(frame, participant="participant", t="t", y="pain")
    assert not fit.converged and fit.fixed["estimate"].isna().all()
    assert "no residual variation" in fit.notes[0]


def test_missing_values_and_bad_columns_are_refused_up_front_all_at_once():
    frame = simulate(10, seed=14)
    frame.loc[3, "pain"] = np.nan
    frame.loc[5, "t"] = np.inf
    frame.loc[8, "arm"] = None
    with pytest.raises(ModelDataError) as info:
        fit_trajectory(frame, participant="participant", t="t", y="pain", group="arm")
    message = str(info.value)
    for text in (
        "'pain' has 1 missing",
        "(rows 3)",
        "'t' has 1 missing",
        "(rows 5)",
        "'arm' has 1 missing",
        "(rows 8)",
    ):
        assert text in message
    with pytest.raises(ModelDataError, match="lack column.*'week'"):
        fit_trajectory(frame, participant="participant", t="week", y="pain")
    with pytest.raises(ModelDataError, match="'t' must be numeric"):
        fit_trajectory(frame.assign(t="x"), participant="participant", t="t", y="pain")


def test_a_participant_in_two_groups_is_refused():
    frame = simulate(10, seed=15)
    first = frame["participant"].iloc[0]
    frame.loc[frame.index[frame["participant"] == first][:2], "arm"] = ["a", "b"]
    with pytest.raises(ModelDataError, match=f"participant.*{first}.*more than one 'arm'"):
        fit_trajectory(frame, participant="participant", t="t", y="pain", group="arm")


def test_a_small_intercept_variance_is_not_mistaken_for_zero():
    # The deviance depends on theta only through Lambda Lambda', so its gradient vanishes at
    # Lambda_00 = 0 whatever the data; a search that lands there (here: the first trust-region
    # step from lme4's start theta = 1 has length 1) must not stop. With an intercept SD of
    # 0.3 against a residual SD of 1.5, the maximum is inside (0, 1): the fit must be at the
    # minimum of the profiled deviance over a fine grid of theta, not at theta = 0.
    rng = np.random.default_rng(4)
    m = 10
    pid = np.repeat(np.arange(m), 12)
    t = np.tile(np.arange(12.0), m)
    y = 5 + rng.normal(0, 0.3, m)[pid] - 0.2 * t + rng.normal(0, 1.5, t.size)
    frame = pd.DataFrame({"participant": pid, "t": t, "pain": y})
    fit = fit_trajectory(frame, participant="participant", t="t", y="pain", random_slope=False)
    dev = _Deviance(
        trajectory_stats(frame, participant="participant", t="t", y="pain"), np.ones(2, dtype=bool)
    )
    grid = np.linspace(0, 3, 3001)
    best = grid[np.argmin([dev(np.array([a, 0.0, 0.0])) for a in grid])]
    assert 0.01 < best < 1
    assert fit.theta[0] == pytest.approx(best, abs=1e-3)
    assert not fit.singular
    assert -2 * fit.loglik <= min(dev(np.array([a, 0.0, 0.0])) for a in grid) + 1e-9


@pytest.mark.parametrize("random_slope", [True, False])
def test_fit_is_equivariant_under_shifts_and_scalings(random_slope):
    # Reasoning, not reference values: the REML criterion is invariant to adding a constant to
    # y (in the span of X) and to moving the time origin (the model with an unstructured 2x2
    # covariance -- or a random intercept -- is the same model in a shifted time); scaling y by
    # k scales estimates and SEs by k, variances by k^2, leaves df alone and shifts the REML
    # log-likelihood by -(n - p) log k. Row order is irrelevant.
    frame = simulate(90, seed=31)

    def fit(data: pd.DataFrame) -> MixedFit:
        return fit_trajectory(
            data,
            participant="participant",
            t="t",
            y="pain",
            group="arm",
            random_slope=random_slope,
        )

    base = fit(frame)
    est = base.fixed.set_index("term")["estimate"]

    shifted = fit(frame.assign(pain=frame["pain"] + 7.5)).fixed.set_index("term")
    assert shifted.loc["Intercept", "estimate"] == pytest.approx(est["Intercept"] + 7.5, rel=1e-8)
    np.testing.assert_allclose(shifted["estimate"].iloc[1:], est.iloc[1:], rtol=1e-6, atol=1e-9)

    k = 3.0
    scaled = fit(frame.assign(pain=frame["pain"] * k))
    np.testing.assert_allclose(scaled.fixed["estimate"], k * base.fixed["estimate"], rtol=1e-7)
    np.testing.assert_allclose(scaled.fixed["std_err"], k * base.fixed["std_err"], rtol=1e-7)
    np.testing.assert_allclose(scaled.fixed["df"], base.fixed["df"], rtol=1e-6)
    np.testing.assert_allclose(
        list(scaled.variance.values()), k**2 * np.array(list(base.variance.values())), rtol=1e-6
    )
    assert scaled.loglik == pytest.approx(base.loglik - (base.n_obs - 6) * np.log(k), rel=1e-10)

    later = fit(frame.assign(t=frame["t"] - 5.0))  # time origin moved to week 5
    moved = later.fixed.set_index("term")["estimate"]
    assert later.loglik == pytest.approx(base.loglik, rel=1e-10)
    for level in ("", "group[T.b]", "group[T.c]"):
        intercept = level or "Intercept"
        slope = f"t:{level}" if level else "t"
        assert moved[slope] == pytest.approx(est[slope], rel=1e-6)
        assert moved[intercept] == pytest.approx(est[intercept] + 5.0 * est[slope], rel=1e-6)
    if random_slope:
        assert later.variance["var_slope"] == pytest.approx(base.variance["var_slope"], rel=1e-6)

    shuffled = fit(frame.sample(frac=1.0, random_state=2))
    np.testing.assert_allclose(shuffled.fixed["estimate"], base.fixed["estimate"], rtol=1e-9)
    assert shuffled.loglik == pytest.approx(base.loglik, rel=1e-12)
