"""Fast exact REML fit of the pain trajectory model, with Satterthwaite degrees of freedom.

The model (METRICS.md §5) is ``y ~ t * group + (1 + t | participant)`` -- or ``y ~ t`` without
a group, or with a random intercept ``(1 | participant)`` only, the fallback::

    y_ij = x_ij' beta + u0_i + u1_i t_ij + e_ij,
    (u0_i, u1_i) ~ N(0, sigma^2 Lambda Lambda'),  e_ij ~ N(0, sigma^2)

with one grouping factor (the participant) and a 2x2 random-effects block. It is fitted by
restricted maximum likelihood exactly as lme4 defines it (Bates et al. 2015, §3): the profiled
REML deviance is minimised over the relative covariance factor ``theta`` (``Lambda`` lower
triangular, three parameters; one for the random intercept). Everything the deviance needs is a
sum over participants of small cross-products (:class:`TrajectoryStats`), computed once in one
vectorised pass over the rows; each evaluation of the deviance is then a batch of 2x2 blocks
over all participants in closed form (the 2x2 Cholesky factor's determinant and solves written
out: array operations, no loop over participants), sums within groups and one p x p Cholesky.
Fixed-effect inference uses Satterthwaite degrees of freedom as lmerTest computes them
(Kuznetsova et al. 2017).

This module depends on numpy, scipy and pandas only.

References
----------
Bates D, Mächler M, Bolker B, Walker S (2015). Fitting linear mixed-effects models using lme4.
*Journal of Statistical Software* 67(1). doi:10.18637/jss.v067.i01

Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package: tests in linear mixed
effects models. *Journal of Statistical Software* 82(13). doi:10.18637/jss.v082.i13

Satterthwaite FE (1946). An approximate distribution of estimates of variance components.
*Biometrics Bulletin* 2(6), 110-114.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from rehabstats.errors import ModelDataError, Note, ParameterError
from rehabstats.lazy import lazy_module

# imported by the first fit, not by importing this module (the metrics import it)
linalg = lazy_module("scipy.linalg")
optimize = lazy_module("scipy.optimize")
sps = lazy_module("scipy.stats")

__all__ = [
    "FIXED_COLUMNS",
    "MixedFit",
    "TrajectoryStats",
    "fit_stats",
    "fit_trajectory",
    "trajectory_stats",
]

FIXED_COLUMNS = ["term", "estimate", "std_err", "df", "t_value", "p_value", "ci_low", "ci_high"]
"""Columns of :attr:`MixedFit.fixed`."""

SINGULAR_TOL = 1e-4
"""lme4's ``isSingular`` tolerance: a fit is singular when a diagonal element of ``Lambda``
(a ``theta`` with lower bound 0) is below it."""

GRADIENT_TOL = 2e-3
"""lme4's ``check.conv.grad`` tolerance on the scaled gradient of the deviance."""

HESSIAN_TOL = 1e-6
"""lme4's ``check.conv.hess`` tolerance: an eigenvalue below ``-HESSIAN_TOL`` is negative."""

EIGEN_TOL = 1e-8
"""lmerTest's tolerance on the eigenvalues of the deviance Hessian: smaller ones (in absolute
value) are left out of its Moore-Penrose inverse."""

RANK_TOL = 1e-7
"""lme4's tolerance for a rank-deficient fixed-effects design (``check.rankX``)."""

_BOUNDED = np.array([True, False, True])
"""Which elements of theta = (Lambda_00, Lambda_10, Lambda_11) have lower bound 0."""


# --------------------------------------------------------------------------------------------
# Sufficient statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TrajectoryStats:
    """Per-participant sums: everything the REML fit of the trajectory model needs.

    With ``z_ij = (1, t_ij)`` the random-effects row of observation j of participant i, the
    statistics are ``S_i = Z_i'Z_i`` (2x2, stored as its three distinct elements) and
    ``b_i = Z_i'y_i`` for every participant, the participant's group, and ``y'y`` and the
    number of observations. The fixed-effects design is ``X_i = Z_i B_g`` (the group g's
    intercept and slope, in treatment coding), so ``Z_i'X_i = S_i B_g``, ``X'X = sum_i B_g'
    S_i B_g`` and ``X'y = sum_i B_g' b_i`` follow from these sums and need not be stored.

    All are sums over observations, so statistics of disjoint parts of a data set combine by
    addition (``a + b`` or :meth:`combine`): the rows of a participant seen in several parts
    are summed into one, and the fit of the combined statistics equals the fit of the whole
    data set up to floating-point summation order.

    Attributes
    ----------
    participants : ndarray, shape (m,)
        Participant labels, one per participant (unique).
    group : ndarray of int, shape (m,)
        Each participant's group as an index into ``levels`` (0, the reference, without
        groups).
    zz : ndarray, shape (m, 3)
        ``(n_i, sum t, sum t^2)`` per participant: the elements (0,0), (0,1), (1,1) of
        ``Z_i'Z_i``.
    zy : ndarray, shape (m, 2)
        ``Z_i'y_i = (sum y, sum t y)`` per participant.
    yy : float
        ``y'y`` over all observations.
    n_obs : int
        Number of observations.
    levels : tuple
        Group levels, the reference first; empty for ``y ~ t`` (no group terms).
    """

    participants: np.ndarray
    group: np.ndarray
    zz: np.ndarray
    zy: np.ndarray
    yy: float
    n_obs: int
    levels: tuple[Any, ...] = ()

    @property
    def n_groups(self) -> int:
        """Number of participants."""
        return len(self.participants)

    @property
    def terms(self) -> tuple[str, ...]:
        """Names of the fixed effects, as statsmodels/patsy name them: ``Intercept``, ``t``,
        then ``group[T.<level>]`` and ``t:group[T.<level>]`` for each non-reference level."""
        others = [f"group[T.{level}]" for level in self.levels[1:]]
        return ("Intercept", "t", *others, *[f"t:{name}" for name in others])

    def design(self) -> np.ndarray:
        """``B_g`` for each group g (shape (G, 2, p)): ``x_ij = B_g' z_ij``."""
        n_levels = max(len(self.levels), 1)
        p = 2 * n_levels
        maps = np.zeros((n_levels, 2, p))
        maps[:, 0, 0] = maps[:, 1, 1] = 1.0
        for k in range(1, n_levels):  # group levels, not participants
            maps[k, 0, 1 + k] = 1.0
            maps[k, 1, n_levels + k] = 1.0
        return maps

    def xtx(self) -> np.ndarray:
        """``X'X = sum_g B_g' (sum_{i in g} S_i) B_g`` (p x p)."""
        maps = self.design()
        s = np.stack(
            [np.bincount(self.group, weights=self.zz[:, k], minlength=len(maps)) for k in range(3)],
            axis=1,
        )
        blocks = s[:, [0, 1, 1, 2]].reshape(-1, 2, 2)
        return np.einsum("gai,gab,gbj->ij", maps, blocks, maps)

    def __add__(self, other: TrajectoryStats) -> TrajectoryStats:
        return TrajectoryStats.combine(self, other)

    @staticmethod
    def combine(*parts: TrajectoryStats) -> TrajectoryStats:
        """Statistics of the union of disjoint sets of observations.

        Parameters
        ----------
        *parts : TrajectoryStats
            Statistics of parts of one data set, built with the same ``levels`` (pass the
            same ``levels`` to :func:`trajectory_stats` for every part). A participant may
            appear in several parts (in the same group); its sums are added.

        Returns
        -------
        TrajectoryStats

        Raises
        ------
        ModelDataError
            The parts have different levels, or a participant is in different groups.
        """
        if not parts:
            raise ModelDataError("combine() needs at least one set of statistics")
        levels = parts[0].levels
        for part in parts[1:]:
            if part.levels != levels:
                raise ModelDataError(
                    f"cannot combine statistics with different group levels: {list(levels)} "
                    f"and {list(part.levels)}; pass the same `levels` to trajectory_stats() "
                    "for every part"
                )
        labels = np.concatenate([p.participants for p in parts])
        group = np.concatenate([p.group for p in parts])
        codes, uniques = pd.factorize(labels)
        m = len(uniques)
        first = np.full(m, -1)
        first[codes[::-1]] = group[::-1]
        clash = group != first[codes]
        if clash.any():
            shown = ", ".join(map(str, pd.unique(labels[clash])[:5]))
            raise ModelDataError(
                f"participant(s) {shown} are in different groups in different parts; the "
                "group must be a participant attribute"
            )
        zz = np.concatenate([p.zz for p in parts])
        zy = np.concatenate([p.zy for p in parts])
        if m < len(labels):
            zz = np.column_stack(
                [np.bincount(codes, weights=zz[:, k], minlength=m) for k in range(3)]
            )
            zy = np.column_stack(
                [np.bincount(codes, weights=zy[:, k], minlength=m) for k in range(2)]
            )
        else:
            order = np.empty(m, dtype=np.intp)
            order[codes] = np.arange(m)
            zz, zy = zz[order], zy[order]
        return TrajectoryStats(
            participants=np.asarray(uniques, dtype=object),
            group=first,
            zz=zz,
            zy=zy,
            yy=float(sum(p.yy for p in parts)),
            n_obs=int(sum(p.n_obs for p in parts)),
            levels=levels,
        )


def trajectory_stats(
    frame: pd.DataFrame,
    *,
    participant: str,
    t: str,
    y: str,
    group: str | None = None,
    levels: list[Any] | None = None,
) -> TrajectoryStats:
    """Sufficient statistics of the trajectory model for a data frame (one vectorised pass).

    Parameters
    ----------
    frame : DataFrame
        One row per observation.
    participant : str
        Column identifying the participant (the grouping factor).
    t : str
        Column with the time of the observation (numeric; weeks since the first week).
    y : str
        Column with the response (numeric).
    group : str, optional
        Column with the participant's group (arm, site, ...; constant within a participant):
        the model gets the group main effects and group-by-time interactions (treatment
        coding). Without it, ``y ~ t``.
    levels : list, optional
        Group levels, the first one the reference. Default: the levels present in the data,
        sorted (the first alphabetically is the reference). Give the same list to every part
        of a data set whose statistics are combined later. A single level gives ``y ~ t``.

    Returns
    -------
    TrajectoryStats

    Raises
    ------
    ModelDataError
        A column is missing, ``t`` or ``y`` is not numeric, a column holds missing (or, for
        ``t`` and ``y``, infinite) values, ``group`` holds a level not in ``levels``, or a
        participant's rows are in more than one group. All problems are reported at once.
    """
    columns = [participant, t, y] + ([group] if group is not None else [])
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ModelDataError(
            "cannot fit the mixed model: the data lack column(s) "
            + ", ".join(repr(c) for c in absent)
        )
    problems: list[str] = []
    usable: set[str] = set()
    for name in dict.fromkeys(columns):
        column = frame[name]
        if name in (t, y):
            if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
                problems.append(f"column {name!r} must be numeric (found {column.dtype})")
                continue
            bad = ~np.isfinite(column.to_numpy(dtype="float64", na_value=np.nan))
        else:
            bad = column.isna().to_numpy()
        if bad.any():
            problems.append(
                f"column {name!r} has {int(bad.sum())} missing or non-finite value(s) "
                f"(rows {_rows(frame.index[bad])})"
            )
        else:
            usable.add(name)
    level_list: list[Any] = []
    if group is not None and group in usable:
        present = pd.unique(frame[group]).tolist()
        if levels is None:
            try:
                level_list = sorted(present)
            except TypeError:
                level_list = sorted(present, key=str)
        else:
            level_list = list(levels)
            unknown = [v for v in present if v not in set(level_list)]
            if unknown:
                problems.append(
                    f"column {group!r} holds level(s) {', '.join(map(str, unknown[:5]))} "
                    f"not in levels {level_list}"
                )
    codes, uniques = pd.factorize(frame[participant], sort=False)
    m = len(uniques)
    g = np.zeros(len(frame), dtype=np.intp)
    if len(level_list) >= 2 and not problems:
        g = pd.Categorical(frame[group], categories=level_list).codes.astype(np.intp)
        first = np.full(m, -1, dtype=np.intp)
        first[codes[::-1]] = g[::-1]
        clash = g != first[codes]
        if clash.any():
            names = pd.unique(frame[participant].to_numpy()[clash])
            problems.append(
                f"participant(s) {', '.join(map(str, names[:5]))}"
                f"{' ...' if len(names) > 5 else ''} have rows in more than one {group!r} "
                f"group (rows {_rows(frame.index[clash])}); the group must be a participant "
                "attribute"
            )
    if problems:
        raise ModelDataError("cannot fit the mixed model: " + "; ".join(problems))
    if len(level_list) < 2:
        level_list = []

    tt = frame[t].to_numpy(dtype="float64")
    yy = frame[y].to_numpy(dtype="float64")
    group_of = np.zeros(m, dtype=np.intp)
    group_of[codes] = g

    def per_participant(weights: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=weights, minlength=m)

    return TrajectoryStats(
        participants=np.asarray(uniques, dtype=object),
        group=group_of,
        zz=np.column_stack(
            [
                np.bincount(codes, minlength=m).astype("float64"),
                per_participant(tt),
                per_participant(tt * tt),
            ]
        ),
        zy=np.column_stack([per_participant(yy), per_participant(tt * yy)]),
        yy=float(yy @ yy),
        n_obs=len(frame),
        levels=tuple(level_list),
    )


def _rows(index: pd.Index) -> str:
    """The first few row labels, for a message."""
    return ", ".join(map(str, index[:5])) + (" ..." if len(index) > 5 else "")


# --------------------------------------------------------------------------------------------
# The REML deviance and its derivatives
# --------------------------------------------------------------------------------------------

_BASIS = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]])
"""``E_k = dD / d delta_k`` for ``delta = (D_00, D_01, D_11)``."""


class _Deviance:
    """The REML deviance of the trajectory model as a function of theta (and sigma).

    For ``theta = (a, b, c)``, ``Lambda = [[a, 0], [b, c]]`` and ``D = Lambda Lambda'`` (the
    random effects' covariance relative to sigma^2), the penalised least-squares quantities
    of Bates et al. (2015, §3) reduce per participant to closed forms in the 2x2 block
    ``M_i = I + Lambda' S_i Lambda`` (``S_i = Z_i'Z_i``)::

        |L_i|^2 = det M_i = 1 + tr(S_i D) + det(S_i) det(D)
        W_i = Z_i'V_i^-1 Z_i = (S_i + det(S_i) adj(D)) / det M_i
        Z_i'V_i^-1 y_i = (I + S_i D)^-1 b_i,   y_i'V_i^-1 y_i = y_i'y_i - b_i'D (I + S_i D)^-1 b_i

    with ``V_i = I + Z_i D Z_i'`` (relative to sigma^2) -- the Woodbury identity; for a 2x2
    block these are the Cholesky factor's determinant and solves written out. Then
    ``R_X'R_X = X'V^-1X = sum_g B_g' (sum_{i in g} W_i) B_g``, ``X'V^-1y`` likewise,
    ``beta = (X'V^-1X)^-1 X'V^-1y`` and ``r^2 = y'V^-1y - beta'X'V^-1y``: array operations
    over participants, sums within groups, and one p x p Cholesky.
    """

    def __init__(self, stats: TrajectoryStats, keep: np.ndarray) -> None:
        order = np.argsort(stats.group, kind="stable")
        group = stats.group[order]
        self.n_levels = max(len(stats.levels), 1)
        self.counts = np.bincount(group, minlength=self.n_levels)
        nonempty = self.counts > 0
        self.nonempty = nonempty
        self.starts = (np.cumsum(self.counts) - self.counts)[nonempty]
        zz, zy = stats.zz[order], stats.zy[order]
        self.s00, self.s01, self.s11 = (np.ascontiguousarray(zz[:, k]) for k in range(3))
        self.det_s = np.maximum(self.s00 * self.s11 - self.s01 * self.s01, 0.0)
        self.b0, self.b1 = (np.ascontiguousarray(zy[:, k]) for k in range(2))
        self.maps = stats.design()[:, :, keep]
        self.yy = stats.yy
        self.n = stats.n_obs
        self.p = int(keep.sum())
        self.dof = self.n - self.p  # n - p of the REML criterion

    def group_sums(self, *values: np.ndarray) -> np.ndarray:
        """Sums of per-participant arrays within each group: shape (G, len(values))."""
        if self.n_levels == 1:
            return np.array([[v.sum() for v in values]])
        out = np.zeros((self.n_levels, len(values)))
        for k, v in enumerate(values):  # a handful of statistics, not participants
            out[self.nonempty, k] = np.add.reduceat(v, self.starts)
        return out

    def per_participant(self, values: np.ndarray) -> np.ndarray:
        """Per-group values (shape (G,)) repeated for each participant of the group."""
        if self.n_levels == 1:
            return np.full(len(self.s00), values[0])
        return np.repeat(values, self.counts)

    def crossprod(self, sym: np.ndarray) -> np.ndarray:
        """``sum_g B_g' X_g B_g`` for symmetric 2x2 blocks ``X_g`` given as (G, 3) arrays of
        their elements (0,0), (0,1), (1,1)."""
        blocks = sym[:, [0, 1, 1, 2]].reshape(-1, 2, 2)
        return np.einsum("gai,gab,gbj->ij", self.maps, blocks, self.maps)

    # -- one evaluation ---------------------------------------------------------------------

    def solve(self, theta: np.ndarray) -> dict[str, Any]:
        """Generalised least squares at ``theta``: W_i, beta, r^2 and the log-determinants.

        ``ok`` is False when ``X'V^-1X`` is not positive definite or ``r^2`` is not positive
        (the deviance is then +inf).
        """
        a, b, c = (float(v) for v in theta)
        d00, d01, d11 = a * a, a * b, b * b + c * c
        s00, s01, s11, det_s, b0, b1 = self.s00, self.s01, self.s11, self.det_s, self.b0, self.b1
        det = 1.0 + s00 * d00 + 2.0 * s01 * d01 + s11 * d11 + det_s * (a * c) ** 2
        inv = 1.0 / det
        w00 = (s00 + d11 * det_s) * inv
        w01 = (s01 - d01 * det_s) * inv
        w11 = (s11 + d00 * det_s) * inv
        # Z_i'V_i^-1 y_i = adj(I + S_i D) b_i / det M_i
        wy0 = ((1.0 + s01 * d01 + s11 * d11) * b0 - (s00 * d01 + s01 * d11) * b1) * inv
        wy1 = ((1.0 + s00 * d00 + s01 * d01) * b1 - (s01 * d00 + s11 * d01) * b0) * inv
        yvy = self.yy - ((d00 * b0 + d01 * b1) @ wy0 + (d01 * b0 + d11 * b1) @ wy1)
        sums = self.group_sums(w00, w01, w11, wy0, wy1)
        xvx = self.crossprod(sums[:, :3])
        xvy = np.einsum("gai,ga->i", self.maps, sums[:, 3:])
        out: dict[str, Any] = {"ok": False, "theta": (a, b, c)}
        try:
            chol = linalg.cho_factor(xvx, lower=False, check_finite=True)
        except (linalg.LinAlgError, ValueError):
            return out
        beta = linalg.cho_solve(chol, xvy)
        r2 = yvy - xvy @ beta
        if not (np.isfinite(r2) and r2 > 0 and np.all(det > 0)):
            return out
        out.update(
            ok=True,
            w=(w00, w01, w11),
            wy=(wy0, wy1),
            chol=chol,
            beta=beta,
            r2=float(r2),
            logdet_l=float(np.log(det).sum()),
            logdet_x=float(2.0 * np.log(np.abs(np.diag(chol[0]))).sum()),
        )
        return out

    def profiled(self, sol: dict[str, Any]) -> float:
        """Profiled REML deviance
        ``log|L|^2 + log|R_X|^2 + (n - p) (1 + log(2 pi r^2 / (n - p)))``."""
        if not sol["ok"]:
            return np.inf
        nu = self.dof
        return sol["logdet_l"] + sol["logdet_x"] + nu * (1.0 + np.log(2.0 * np.pi * sol["r2"] / nu))

    def __call__(self, theta: np.ndarray) -> float:
        return self.profiled(self.solve(theta))

    # -- derivatives ------------------------------------------------------------------------

    def derivatives(self, sol: dict[str, Any], *, second: bool = True) -> dict[str, Any]:
        """Derivatives of ``f = log|V| + log|X'V^-1 X|`` and ``r^2 = y'Py`` in
        ``delta = (D_00, D_01, D_11)``, and of ``X'V^-1X`` (V relative to sigma^2).

        With ``V_k = dV / d delta_k = Z E_k Z'`` and ``P = V^-1 - V^-1 X (X'V^-1X)^-1
        X'V^-1`` (the REML projection)::

            df/d delta_k = tr(P V_k)                 d2f = -tr(P V_k P V_l)
            dr2/d delta_k = -y'P V_k P y             d2r2 = 2 y'P V_k P V_l P y
            d(X'V^-1X)/d delta_k = -sum_i K_i' E_k K_i = -H_k

        reduced to per-participant 2x2 blocks through ``Z_i'P Z_j = [i = j] W_i - K_i A^-1
        K_j'`` and ``Z_i'P y = e_i``, where ``K_i = Z_i'V_i^-1 X_i = W_i B_g``, ``A =
        X'V^-1X`` and ``e_i = Z_i'V_i^-1 (y_i - X_i beta)``::

            tr(P V_k) = sum_i tr((W_i - U_i) E_k),   U_i = K_i A^-1 K_i'
            y'P V_k P y = sum_i e_i'E_k e_i
            tr(P V_k P V_l) = sum_i [tr(W_i E_k W_i E_l) - 2 tr(W_i E_k U_i E_l)]
                              + tr(A^-1 H_k A^-1 H_l)
            y'P V_k P V_l P y = sum_i e_i'E_k W_i E_l e_i - h_k'A^-1 h_l,
                                h_k = sum_i K_i'E_k e_i
        """
        w00, w01, w11 = sol["w"]
        wy0, wy1 = sol["wy"]
        a_inv = linalg.cho_solve(sol["chol"], np.eye(self.p))
        line = self.maps @ sol["beta"]  # each group's line B_g beta, (G, 2)
        l0, l1 = self.per_participant(line[:, 0]), self.per_participant(line[:, 1])
        e0 = wy0 - (w00 * l0 + w01 * l1)
        e1 = wy1 - (w01 * l0 + w11 * l1)
        cg = self.maps @ a_inv @ self.maps.transpose(0, 2, 1)  # C_g = B_g A^-1 B_g'
        c00, c01, c11 = (self.per_participant(cg[:, i, j]) for i, j in ((0, 0), (0, 1), (1, 1)))
        x00, x01 = w00 * c00 + w01 * c01, w00 * c01 + w01 * c11  # W_i C_g
        x10, x11 = w01 * c00 + w11 * c01, w01 * c01 + w11 * c11
        u00, u01, u11 = x00 * w00 + x01 * w01, x00 * w01 + x01 * w11, x10 * w01 + x11 * w11
        q = np.array([(w00 - u00).sum(), (w01 - u01).sum(), (w11 - u11).sum()])
        f1 = q * [1.0, 2.0, 1.0]  # tr(Q E_k) for symmetric Q
        ee = np.array([e0 @ e0, e0 @ e1, e1 @ e1])
        r1 = -ee * [1.0, 2.0, 1.0]
        # per-group sums of the products of W's elements give H_k = sum_g B_g'(W E_k W)_g B_g
        wmat = np.stack([w00, w01, w11], axis=1)
        prod = self.group_sums(w00 * w00, w00 * w01, w01 * w01, w00 * w11, w01 * w11, w11 * w11)
        p00, p01, p0101, p0011, p11x, p1111 = prod.T
        wew = [
            np.stack([p00, p01, p0101], axis=1),  # W E_00 W = col0 col0'
            np.stack([2 * p01, p0011 + p0101, 2 * p11x], axis=1),  # W E_01 W
            np.stack([p0101, p11x, p1111], axis=1),  # W E_11 W = col1 col1'
        ]
        h = np.stack([self.crossprod(x) for x in wew])
        out: dict[str, Any] = {"f1": f1, "r1": r1, "h": h, "a_inv": a_inv}
        if not second:
            return out
        full = [[0, 1], [1, 2]]  # (a, b) -> index of the symmetric element
        idx = np.array(full)

        def tensor(left: np.ndarray, right: np.ndarray) -> np.ndarray:
            """``sum_i X_ab Y_cd`` as a (2, 2, 2, 2) array from (m, 3) element arrays."""
            small = left.T @ right
            return small[idx[:, :, None, None], idx[None, None, :, :]]

        umat = np.stack([u00, u01, u11], axis=1)
        quad = tensor(wmat, wmat) - tensor(wmat, umat) - tensor(umat, wmat)
        trace = np.einsum("abcd,kbc,lda->kl", quad, _BASIS, _BASIS)
        ah = a_inv @ h
        trace += np.einsum("kij,lji->kl", ah, ah)
        # sum_i e_a W_bc e_d, from the products e_a e_d (symmetric in a, d)
        emat = np.stack([e0 * e0, e0 * e1, e1 * e1], axis=1)
        ewe = tensor(emat, wmat).transpose(0, 2, 3, 1)  # [a, d, b, c] -> [a, b, c, d]
        ypy = np.einsum("abcd,kba,lcd->kl", ewe, _BASIS, _BASIS)
        # h_k = sum_g B_g' sum_{i in g} W_i E_k e_i
        we = self.group_sums(w00 * e0, w01 * e0, w11 * e0, w00 * e1, w01 * e1, w11 * e1)
        a0, b0_, c0_, a1, b1_, c1_ = we.T
        wek = np.stack(
            [
                np.stack([a0, b0_], axis=1),  # W E_00 e = col0 e0
                np.stack([a1 + b0_, b1_ + c0_], axis=1),  # W E_01 e = col0 e1 + col1 e0
                np.stack([b1_, c1_], axis=1),  # W E_11 e = col1 e1
            ]
        )  # (3, G, 2)
        hv = np.einsum("gai,kga->ki", self.maps, wek)
        ypy -= hv @ a_inv @ hv.T
        out.update(f2=-trace, r2_2=2.0 * ypy)
        return out

    @staticmethod
    def delta_jacobian(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``d delta / d theta`` (3x3) and the second derivatives (3, 3, 3) of
        ``delta = (a^2, a b, b^2 + c^2)``."""
        a, b, c = theta
        jac = np.array([[2 * a, 0.0, 0.0], [b, a, 0.0], [0.0, 2 * b, 2 * c]])
        second = np.zeros((3, 3, 3))
        second[0, 0, 0] = 2.0
        second[1, 0, 1] = second[1, 1, 0] = 1.0
        second[2, 1, 1] = second[2, 2, 2] = 2.0
        return jac, second

    def profiled_hessian(
        self, sol: dict[str, Any], d: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian of the profiled REML deviance in theta (3 and 3x3)::

            d d_R / d delta_k = tr(P V_k) - (n - p) y'P V_k P y / r^2

        and its derivative, through ``delta(theta)`` by the chain rule.
        """
        d = self.derivatives(sol) if d is None else d
        r2, nu = sol["r2"], self.dof
        g_delta = d["f1"] + nu * d["r1"] / r2
        h_delta = d["f2"] + nu * (d["r2_2"] / r2 - np.outer(d["r1"], d["r1"]) / r2**2)
        jac, second = self.delta_jacobian(np.asarray(sol["theta"]))
        hess = jac.T @ h_delta @ jac + np.einsum("k,kij->ij", g_delta, second)
        return jac.T @ g_delta, hess

    def varpar_derivatives(
        self, sol: dict[str, Any], d: dict[str, Any] | None = None
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Residual SD, the Hessian of the REML deviance in ``varpar = (theta, sigma)`` (4x4)
        and the Jacobian of ``cov(beta) = sigma^2 (X'V^-1X)^-1`` in varpar (4, p, p).

        The deviance here is lmerTest's ``devfun_vp``: ``f(theta) + r^2(theta) / sigma^2 +
        (n - p) log(2 pi sigma^2)``, not profiled in sigma; sigma is evaluated at the REML
        estimate ``sqrt(r^2 / (n - p))``.
        """
        d = self.derivatives(sol) if d is None else d
        r2, nu = sol["r2"], self.dof
        sigma = float(np.sqrt(r2 / nu))
        s2 = sigma * sigma
        g_delta = d["f1"] + d["r1"] / s2
        h_delta = d["f2"] + d["r2_2"] / s2
        jac, second = self.delta_jacobian(np.asarray(sol["theta"]))
        hess = np.empty((4, 4))
        hess[:3, :3] = jac.T @ h_delta @ jac + np.einsum("k,kij->ij", g_delta, second)
        hess[:3, 3] = hess[3, :3] = -2.0 / sigma**3 * (jac.T @ d["r1"])
        hess[3, 3] = 6.0 * r2 / s2**2 - 2.0 * nu / s2
        a_inv = d["a_inv"]
        # d cov(beta) / d delta_k = sigma^2 A^-1 H_k A^-1; d / d sigma = 2 sigma A^-1
        dcov_delta = s2 * np.einsum("ij,kjl,lm->kim", a_inv, d["h"], a_inv)
        dcov = np.empty((4, self.p, self.p))
        dcov[:3] = np.einsum("kj,kil->jil", jac, dcov_delta)
        dcov[3] = 2.0 * sigma * a_inv
        return sigma, hess, dcov


# --------------------------------------------------------------------------------------------
# Optimisation
# --------------------------------------------------------------------------------------------


def _expand(x: np.ndarray, free: np.ndarray) -> np.ndarray:
    theta = np.zeros(3)
    theta[free] = x
    return theta


def _minimise(dev: _Deviance, free: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Minimise the profiled REML deviance over theta[free] (the other elements are 0).

    The deviance depends on theta only through ``D = Lambda Lambda'``, which is unchanged by
    flipping the sign of a column of ``Lambda``; every positive semi-definite D is reached
    with ``Lambda_00, Lambda_11 >= 0``. So the minimum over the bounded region (lme4's
    problem) is the minimum over all of R^3, found here without bounds -- by a trust-region
    Newton method with the analytic gradient and Hessian (``scipy.optimize.minimize``,
    ``method="trust-exact"``) from lme4's start ``theta = (1, 0, 1)`` -- and folded back
    (``Lambda_00, Lambda_11 >= 0``). Searching without bounds also avoids a trap of the
    bounded problem: at ``Lambda_11 = 0`` the gradient along it vanishes by symmetry, so a
    bounded quasi-Newton search that reaches that bound stays there even where it is a
    saddle.
    """
    cache: dict[bytes, tuple[float, np.ndarray, np.ndarray]] = {}

    def evaluate(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        key = np.asarray(x, dtype=float).tobytes()
        if key not in cache:
            sol = dev.solve(_expand(x, free))
            if sol["ok"]:
                grad, hess = dev.profiled_hessian(sol)
                cache[key] = (dev.profiled(sol), grad[free], hess[np.ix_(free, free)])
            else:
                k = int(free.sum())
                cache[key] = (np.inf, np.zeros(k), np.eye(k))
        return cache[key]

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad, _ = evaluate(x)
        return value, grad

    def hess(x: np.ndarray) -> np.ndarray:
        return evaluate(x)[2]

    x = np.array([1.0, 0.0, 1.0])[free]
    message = ""
    for _restart in range(5):
        res = optimize.minimize(
            fun,
            x,
            jac=True,
            hess=hess,
            method="trust-exact",
            options={"gtol": 1e-10, "maxiter": 500},
        )
        x, message = _polish(evaluate, np.asarray(res.x, dtype=float)), str(res.message)
        # Second-order check: the deviance is even in Lambda_11 (and in Lambda's first
        # column), so its gradient vanishes on those planes even where they hold a saddle or
        # a maximum, and a step can land there exactly (theta_0 = 1 minus a unit trust
        # radius is 0). Leave along the direction of negative curvature and search again.
        value, _, hessian = evaluate(x)
        evals, evecs = np.linalg.eigh(hessian)
        if not np.isfinite(value) or evals[0] >= -1e-8 * max(1.0, abs(evals[-1])):
            break
        scale = max(1.0, float(np.max(np.abs(x))))
        trials = [x + step * scale * evecs[:, 0] for step in (0.1, -0.1, 0.5, -0.5)]
        x = min(trials, key=lambda v: evaluate(v)[0])
    theta = _expand(x, free)
    if theta[0] < 0:  # flip the first column of Lambda
        theta[:2] = -theta[:2]
    theta[2] = abs(theta[2])
    return theta, {"message": message, "evaluations": len(cache)}


def _polish(evaluate: Any, x: np.ndarray) -> np.ndarray:
    """Newton steps from the analytic gradient: the trust region stops where deviance
    differences drown in rounding (relative 1e-16 of a deviance of order n), while the
    gradient still locates the minimum to near machine precision."""
    for _step in range(4):
        _, grad, hessian = evaluate(x)
        try:
            step = -linalg.solve(hessian, grad, assume_a="pos")
        except (linalg.LinAlgError, ValueError):
            break
        scale = 1.0 + np.abs(x)
        if not np.all(np.isfinite(step)) or np.any(np.abs(step) > 1e-4 * scale):
            break
        x = x + step
        if np.all(np.abs(step) <= 1e-15 * scale):
            break
    return x


# --------------------------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MixedFit:
    """A REML fit of the trajectory model.

    Attributes
    ----------
    fixed : DataFrame
        One row per fixed effect, columns

        term : str
            ``Intercept``, ``t``, ``group[T.<level>]``, ``t:group[T.<level>]``.
        estimate : float
            REML estimate (NaN for a term dropped from a rank-deficient design).
        std_err : float
            ``sqrt`` of the diagonal of ``cov(beta) = sigma^2 (X'V^-1 X)^-1``.
        df : float
            Satterthwaite degrees of freedom (as lmerTest).
        t_value : float
            ``estimate / std_err``.
        p_value : float
            Two-sided, from a t distribution with ``df`` degrees of freedom.
        ci_low, ci_high : float
            ``estimate -/+ t_{1 - (1 - confidence) / 2, df} std_err``.
    variance : dict of str to float
        ``var_intercept``, ``var_slope``, ``cov_intercept_slope`` (random-slope model only)
        and ``var_residual``: ``sigma^2 Lambda Lambda'`` and ``sigma^2``.
    loglik : float
        REML log-likelihood, ``-d_R(theta) / 2`` (lme4's ``logLik(fit)`` for a REML fit).
    converged : bool
        The fit passed lme4's convergence checks (see :func:`fit_stats`); False when the model
        could not be fitted at all (then every estimate is NaN and ``notes`` says why).
    singular : bool
        lme4's ``isSingular``: an element of ``theta`` with lower bound 0 (a diagonal element
        of ``Lambda``) is below 1e-4.
    model : {"random_slope", "random_intercept"}
        The random-effects structure fitted.
    n_obs, n_groups : int
        Observations and participants.
    confidence : float
        Confidence level of ``ci_low`` / ``ci_high``.
    theta : ndarray
        Relative covariance factor at the optimum: ``(Lambda_00, Lambda_10, Lambda_11)``, or
        ``(Lambda_00,)`` for the random intercept (lme4's ``getME(fit, "theta")``).
    sigma : float
        Residual standard deviation ``sqrt(r^2 / (n - p))``.
    cov_beta : DataFrame
        ``cov(beta)``, indexed by the estimable terms.
    cov_varpar : ndarray
        Asymptotic covariance of ``varpar = (theta, sigma)``: twice the Moore-Penrose inverse
        of the Hessian of the REML deviance (lmerTest's ``vcov_varpar``).
    evaluations : int
        Deviance evaluations the optimiser used.
    notes : tuple of str
        Dropped terms, failed checks, near-zero Hessian eigenvalues; empty when all is well.
        Notes that show numbers of participants or observations are :class:`~rehabstats.
        errors.Note` objects (strings that keep their counts apart, for small-cell rules).
    """

    fixed: pd.DataFrame
    variance: dict[str, float]
    loglik: float
    converged: bool
    singular: bool
    model: Literal["random_slope", "random_intercept"]
    n_obs: int
    n_groups: int
    confidence: float
    theta: np.ndarray
    sigma: float
    cov_beta: pd.DataFrame
    cov_varpar: np.ndarray
    evaluations: int = 0
    notes: tuple[str, ...] = field(default=())

    def table(self) -> pd.DataFrame:
        """Fixed effects, then the variance components, as one tidy table.

        Returns
        -------
        DataFrame
            Columns of :attr:`fixed` (:data:`FIXED_COLUMNS`); the variance components are
            rows named ``var_intercept``, ... with only ``estimate`` set (NaN elsewhere).
        """
        variance = pd.DataFrame(
            {"term": list(self.variance), "estimate": list(self.variance.values())}
        )
        return pd.concat([self.fixed, variance], ignore_index=True)[FIXED_COLUMNS]


def _variance_names(random_slope: bool) -> list[str]:
    if random_slope:
        return ["var_intercept", "var_slope", "cov_intercept_slope", "var_residual"]
    return ["var_intercept", "var_residual"]


def _unfitted(stats: TrajectoryStats, model: str, confidence: float, notes: list[str]) -> MixedFit:
    nan = np.nan
    fixed = pd.DataFrame({"term": list(stats.terms)})
    for column in FIXED_COLUMNS[1:]:
        fixed[column] = nan
    q = 3 if model == "random_slope" else 1
    return MixedFit(
        fixed=fixed,
        variance=dict.fromkeys(_variance_names(model == "random_slope"), nan),
        loglik=nan,
        converged=False,
        singular=False,
        model=model,  # type: ignore[arg-type]
        n_obs=stats.n_obs,
        n_groups=stats.n_groups,
        confidence=confidence,
        theta=np.full(q, nan),
        sigma=nan,
        cov_beta=pd.DataFrame(dtype=float),
        cov_varpar=np.full((q + 1, q + 1), nan),
        notes=tuple(notes),
    )


def _estimable(xx: np.ndarray) -> np.ndarray:
    """Columns of X kept by lme4's rank check (R's ``qr`` with limited pivoting, tolerance
    1e-7): in order, a column is dropped when the norm of its part orthogonal to the kept
    columns is below 1e-7 times its own norm -- computed here from ``X'X`` (Schur
    complements) since X itself is not kept."""
    p = xx.shape[0]
    keep = np.zeros(p, dtype=bool)
    for j in range(p):  # fixed effects (a handful), not participants
        norm2 = xx[j, j]
        if not norm2 > 0:
            continue
        idx = np.flatnonzero(keep)
        resid = norm2
        if idx.size:
            sub = xx[np.ix_(idx, idx)]
            resid = norm2 - xx[j, idx] @ linalg.solve(sub, xx[idx, j], assume_a="pos")
        keep[j] = resid > RANK_TOL**2 * norm2
    return keep


def fit_stats(
    stats: TrajectoryStats, *, random_slope: bool = True, confidence: float = 0.95
) -> MixedFit:
    r"""Fit the trajectory model by REML from its sufficient statistics.

    Parameters
    ----------
    stats : TrajectoryStats
        From :func:`trajectory_stats` (possibly combined over parts of the data).
    random_slope : bool, default True
        Random intercept and slope per participant (``(1 + t | participant)``); False fits
        the random intercept only (``(1 | participant)``).
    confidence : float, default 0.95
        Confidence level of the fixed effects' intervals.

    Returns
    -------
    MixedFit

    Notes
    -----
    **Profiled REML deviance** (Bates et al. 2015, §3, eqs. 34 and 41). With ``Lambda`` the
    relative covariance factor (random effects ``b_i ~ N(0, sigma^2 Lambda Lambda')``),
    ``L_i L_i' = Lambda' Z_i'Z_i Lambda + I`` the per-participant Cholesky factor, ``R_X'R_X =
    X'V^-1X`` (``V = I + Z Lambda Lambda' Z'``, relative to sigma^2) and ``r^2`` the
    penalised residual sum of squares at the conditional estimates::

        d_R(theta) = log|L|^2 + log|R_X|^2 + (n - p) (1 + log(2 pi r^2 / (n - p)))

    minimised over ``theta = (Lambda_00, Lambda_10, Lambda_11)`` with ``Lambda_00, Lambda_11
    >= 0`` (random intercept: ``theta = Lambda_00``). The REML log-likelihood is
    ``-d_R / 2``, ``sigma^2 = r^2 / (n - p)`` and ``cov(beta) = sigma^2 (R_X'R_X)^-1``. Each
    evaluation takes the 2x2 blocks in closed form from the per-participant sums (see
    ``_Deviance``). The minimum is found by a trust-region Newton method with the analytic
    gradient and Hessian (``tr(P V_k)``, ``y'P V_k P y`` and their second-order forms, ``P``
    the REML projection, reduced to per-participant 2x2 blocks) from lme4's start ``(1, 0,
    1)``, then Newton steps from the analytic gradient: the exact optimum that lme4
    approaches with a tight ``rhoend`` (lme4's own estimates, with bobyqa's ``rhoend =
    1e-12``, are within about 1e-7 relative of it). As lme4 (``boundary.tol = 1e-5``), a
    bounded ``theta`` within 1e-5 of 0 is set to 0 when that does not increase the deviance.

    **Checks, as lme4.** The model is not fitted (``converged`` False, estimates NaN) when
    lme4 would refuse it: fewer than 2 participants; observations not more than the random
    effects (``n <= m`` for the random intercept, ``n <= 2 m`` with random slopes --
    e.g. every participant observed once); ``n <= p``. Fixed effects that the design cannot
    estimate (collinear columns, e.g. a group whose participants are all observed at one time)
    are dropped as lme4 does (``check.rankX``) and reported with NaN. ``converged`` is False
    when a non-singular fit fails ``check.conv.grad`` (largest of ``min(|g|, |H^{-1/2} g|)``
    above 0.002, g and H the gradient and Hessian of ``d_R`` in theta) or ``check.conv.hess``
    (a Hessian eigenvalue below 1e-6 in absolute value, or negative); lme4 skips both checks
    for a singular fit, and so does this function.

    **Satterthwaite degrees of freedom** (Kuznetsova et al. 2017, §3; Satterthwaite 1946), as
    lmerTest computes them: with ``varpar = (theta, sigma)``, ``A(varpar) = cov(beta) =
    sigma^2 (X'V(theta)^-1 X)^-1`` and ``W = 2 H^+`` where ``H`` is the Hessian of the REML
    deviance ``d(theta, sigma) = log|L|^2 + log|R_X|^2 + r^2 / sigma^2 + (n - p) log(2 pi
    sigma^2)`` at the optimum and ``H^+`` its Moore-Penrose inverse over the eigenvalues
    above 1e-8, for each fixed effect (contrast ``c`` a unit vector)::

        df = 2 (c' A c)^2 / (g' W g),   g_k = c' (dA / d varpar_k) c

    lmerTest differentiates ``d`` and ``A`` numerically (Richardson extrapolation); here
    the derivatives are analytic, so the two agree to the accuracy of lmerTest's numerical
    derivatives. t and p use a t distribution with ``df`` degrees of freedom.
    """
    if not 0 < confidence < 1:
        raise ParameterError(f"confidence must be between 0 and 1 (got {confidence!r})")
    model = "random_slope" if random_slope else "random_intercept"
    free = np.array([True, True, True]) if random_slope else np.array([True, False, False])
    n, m = stats.n_obs, stats.n_groups
    q = 2 * m if random_slope else m
    refusal = None
    if m < 2:
        refusal = Note("{m} participant(s); a mixed model needs at least 2", counts={"m": m})
    elif n <= q:
        refusal = Note(
            "number of observations ({n}) <= number of random effects ({q}) for "
            "({term} | participant); the variance components are not identifiable "
            "(lme4 refuses this model)",
            counts={"n": n, "q": q},
            term="1 + t" if random_slope else "1",
        )
    if refusal is not None:
        return _unfitted(stats, model, confidence, [refusal])
    keep = _estimable(stats.xtx())
    notes: list[str] = []
    dropped = [term for term, k in zip(stats.terms, keep, strict=True) if not k]
    if dropped:
        notes.append(
            "fixed-effect design is rank deficient; not estimable (dropped as lme4 does): "
            + ", ".join(dropped)
        )
    if n <= keep.sum():
        return _unfitted(
            stats,
            model,
            confidence,
            [*notes, Note("{n} observations for {p} fixed effects", counts={"n": n}, p=keep.sum())],
        )

    dev = _Deviance(stats, keep)
    ols = dev.solve(np.zeros(3))  # ordinary least squares (X'X is regular after `keep`)
    if not ols["ok"] or ols["r2"] <= 1e-12 * stats.yy:
        return _unfitted(
            stats,
            model,
            confidence,
            [*notes, "no residual variation: the fixed effects fit the response exactly"],
        )
    theta, info = _minimise(dev, free)
    for k in np.flatnonzero(free & _BOUNDED):  # lme4's check.boundary
        if 0 < theta[k] < 1e-5:
            trial = theta.copy()
            trial[k] = 0.0
            if dev(trial) <= dev(theta):
                theta = trial
    sol = dev.solve(theta)
    if not sol["ok"]:
        return _unfitted(
            stats, model, confidence, [*notes, "the REML deviance could not be evaluated"]
        )
    deviance = dev.profiled(sol)
    singular = bool(np.any(theta[free & _BOUNDED] < SINGULAR_TOL))
    derivatives = dev.derivatives(sol)
    converged = True
    if not singular:
        grad, hess = dev.profiled_hessian(sol, derivatives)
        grad, hess = grad[free], hess[np.ix_(free, free)]
        problem = _convergence_problem(grad, hess)
        if problem:
            converged = False
            notes.append(problem)

    sigma, h_vp, dcov = dev.varpar_derivatives(sol, derivatives)
    idx = np.append(np.flatnonzero(free), 3)
    h_vp, dcov = h_vp[np.ix_(idx, idx)], dcov[idx]
    evals, evecs = np.linalg.eigh(h_vp)
    pos = evals > EIGEN_TOL
    cov_varpar = 2.0 * (evecs[:, pos] / evals[pos]) @ evecs[:, pos].T
    if np.any(evals < -EIGEN_TOL):
        notes.append(
            f"Hessian of the REML deviance has {int(np.sum(evals < -EIGEN_TOL))} negative "
            "eigenvalue(s) (lmerTest: model failed to converge)"
        )
    if np.any(np.abs(evals) <= EIGEN_TOL):
        notes.append(
            f"Hessian of the REML deviance has {int(np.sum(np.abs(evals) <= EIGEN_TOL))} "
            "eigenvalue(s) close to zero (lmerTest: model may not have converged); left out "
            "of the Satterthwaite degrees of freedom"
        )
    cov_beta = sigma**2 * linalg.cho_solve(sol["chol"], np.eye(dev.p))
    var = np.diag(cov_beta)
    grad_var = np.einsum("kjj->kj", dcov)  # d var_j / d varpar_k
    denom = np.einsum("kj,kl,lj->j", grad_var, cov_varpar, grad_var)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2.0 * var**2 / denom
    estimate = sol["beta"]
    std_err = np.sqrt(var)
    t_value = estimate / std_err
    p_value = 2.0 * sps.t.sf(np.abs(t_value), df)
    half = sps.t.ppf(0.5 + confidence / 2.0, df) * std_err
    terms = list(stats.terms)
    kept_terms = [t for t, k in zip(terms, keep, strict=True) if k]
    fixed = pd.DataFrame(
        {
            "term": kept_terms,
            "estimate": estimate,
            "std_err": std_err,
            "df": df,
            "t_value": t_value,
            "p_value": p_value,
            "ci_low": estimate - half,
            "ci_high": estimate + half,
        }
    )
    fixed = fixed.set_index("term").reindex(terms).rename_axis("term").reset_index()

    s2 = sigma**2
    a, b, c = theta
    if random_slope:
        variance = {
            "var_intercept": s2 * a * a,
            "var_slope": s2 * (b * b + c * c),
            "cov_intercept_slope": s2 * a * b,
            "var_residual": s2,
        }
    else:
        variance = {"var_intercept": s2 * a * a, "var_residual": s2}
    return MixedFit(
        fixed=fixed[FIXED_COLUMNS],
        variance={k: float(v) for k, v in variance.items()},
        loglik=float(-deviance / 2.0),
        converged=converged,
        singular=singular,
        model=model,  # type: ignore[arg-type]
        n_obs=n,
        n_groups=m,
        confidence=confidence,
        theta=theta[free].copy(),
        sigma=sigma,
        cov_beta=pd.DataFrame(cov_beta, index=kept_terms, columns=kept_terms),
        cov_varpar=cov_varpar,
        evaluations=int(info["evaluations"]),
        notes=tuple(notes),
    )


def _convergence_problem(grad: np.ndarray, hess: np.ndarray) -> str:
    """lme4's ``check.conv.grad`` and ``check.conv.hess`` on the profiled deviance; the failed
    check's message, or an empty string."""
    try:
        upper = linalg.cholesky(hess, lower=False)
        scaled = linalg.solve_triangular(upper, grad, trans="T")
    except (linalg.LinAlgError, ValueError):
        return "unable to evaluate scaled gradient (Hessian not positive definite)"
    worst = float(np.max(np.minimum(np.abs(scaled), np.abs(grad))))
    if worst > GRADIENT_TOL:
        return f"failed to converge with max|grad| = {worst:.3g} (tol = {GRADIENT_TOL})"
    evals = np.linalg.eigvalsh(hess)
    if np.any(evals < -HESSIAN_TOL):
        return f"degenerate Hessian with {int(np.sum(evals < -HESSIAN_TOL))} negative eigenvalues"
    if np.any(np.abs(evals) < HESSIAN_TOL):
        return "Hessian is numerically singular: parameters are not uniquely determined"
    return ""


def fit_trajectory(
    frame: pd.DataFrame,
    *,
    participant: str,
    t: str,
    y: str,
    group: str | None = None,
    random_slope: bool = True,
    confidence: float = 0.95,
) -> MixedFit:
    """Fit ``y ~ t * group + (1 + t | participant)`` by REML (lme4's criterion, exactly).

    Parameters
    ----------
    frame : DataFrame
        One row per observation; no missing values in the columns used.
    participant, t, y : str
        Columns: grouping factor, time (numeric), response (numeric).
    group : str, optional
        Column with the participant's group. Treatment coding with the first level
        alphabetically as reference: ``Intercept`` and ``t`` are the reference group's level
        at ``t = 0`` and slope, ``group[T.k]`` and ``t:group[T.k]`` group k's differences.
        Without it (or with a single level), ``y ~ t``.
    random_slope : bool, default True
        False fits ``(1 | participant)`` (the fallback).
    confidence : float, default 0.95
        Confidence level of the fixed effects' intervals.

    Returns
    -------
    MixedFit

    Raises
    ------
    ModelDataError
        Missing columns, non-numeric or missing/non-finite values (all reported at once).

    Notes
    -----
    :func:`trajectory_stats` then :func:`fit_stats` (formulas and sources there).
    With a single group level, a note says the group terms were left out.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"id": list("aaabbbccc"), "week": [0, 1, 2] * 3,
    ...                       "nrs": [5, 4, 4, 6, 6, 5, 3, 3, 1]})
    >>> fit = fit_trajectory(frame, participant="id", t="week", y="nrs", random_slope=False)
    >>> fit.fixed[["term", "estimate"]].round(4)
            term  estimate
    0  Intercept    4.7778
    1          t   -0.6667
    """
    stats = trajectory_stats(frame, participant=participant, t=t, y=y, group=group)
    fit = fit_stats(stats, random_slope=random_slope, confidence=confidence)
    if group is not None and len(stats.terms) == 2:
        levels = pd.unique(frame[group]).tolist()
        note = (
            f"a single {group} level ({levels[0]}) in the data; fitted without group terms"
            if levels
            else f"no {group} level in the data"
        )
        fit = _with_note(fit, note)
    return fit


def _with_note(fit: MixedFit, note: str) -> MixedFit:
    return replace(fit, notes=(note, *fit.notes))
