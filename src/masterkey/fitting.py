"""Fitting idealized scale-space models to learned kernels (methods.md section 3, [B] sections 3-4).

Everything here is batched array maths over filters (NumPy; ``torch.cdist`` for the coarse l1 stage
when torch is importable, else ``scipy.spatial.distance.cdist``); the only Python loops run over
model types, methods, chunks of filters and refinement levels, never over filters.  Memory is
bounded by processing filters in chunks (:attr:`SearchSettings.chunk_elements`).

Normalisation before fitting (no free amplitude in the fit), :func:`normalise_for_fitting`
---------------------------------------------------------------------------------------------
``m = M(|h|)`` is the mean of ``|h|`` (:mod:`masterkey.spread`).

* First-difference types (``dx, dy, dx+, dx-, dy+, dy-``, derivative direction ``d``): divide ``h``
  by its response to the unit ramp centred at the filter's own mean,
  ``R = sum_p h(p) f(-(p - m))`` with ``f(q) = q_d``, i.e. ``R = -sum_p h(p) (p_d - m_d)``.
  (We read "the ramp shifted to the filter's own mean" in the kernel's own coordinates, so that a
  DC component of ``h`` sitting around ``m`` contributes nothing; for zero-sum filters, including
  the 8 published ones, the shift is irrelevant.)
* Second-order types, the same rule with ``(x - m_x)^2/2`` (``dxx``), ``(y - m_y)^2/2`` (``dyy``),
  ``(x - m_x)(y - m_y)`` (``dxy``) and ``((x - m_x)^2 + (y - m_y)^2)/4`` (``lap``).
* ``T`` and ``id-lap``: subtract the constant ``C`` minimising ``sqrt(det V(|h - C|))`` (grid of 65
  values over ``[min h, max h]`` plus the kernel's own values, zoom rounds, then a parabolic step
  through the best three points, :func:`dc_compensation`), then divide by the response to the
  constant 1 (unit DC gain).

A negative normaliser flips the filter, so negated filters fit the same template.  The filter is
*degenerate* (NaN outputs, ``degenerate=True``) when it has non-finite entries, is constant
(including all zero), or its normaliser vanishes (``|R| <= 1e-9 sum |h|``).

Residuals between template ``t`` and the normalised filter ``h_n``: ``l1 = sum |t - h_n|``,
``l2 = sqrt(sum (t - h_n)^2)``, ``rel_l2 = l2 / ||h_n||``.

Methods (per filter)
--------------------
* ``A``: variance matching through continuous relations.  From ``V_g = V(|h_n| |g|)`` with ``g``
  the template at ``sigma_ref`` (:func:`masterkey.spread.reference_template`):
  ``sigma = sqrt(V_g / kappa)`` per axis with ``kappa = 1/2`` along a smoothing direction and
  ``3/2`` along a first-derivative direction (the spec's ``sqrt(2 V_g)`` and ``sqrt(2 V_g/3)``).
  Not fixed by the spec, derived the same way for the continuous Gaussian weighted by itself:
  ``kappa = 7/6`` along a second-derivative direction (``dxx``, ``dyy``) and, for ``lap``,
  ``V_xx = V_yy = sigma^2/2``, hence ``sigma = sqrt(V_xx + V_yy)``.  These relations are exact
  only for a continuous filter with ``sigma = sigma_ref``; elsewhere A is an approximation
  (e.g. a filter with sigma 1.5 gives about 1.2).  No search, so ``on_bound`` flags a value
  outside ``[0.01, 3]`` (values are not clipped).
* ``B``: variance matching against the discrete templates: ``sigma_x`` solves
  ``V_xx(|t(sigma_x, sigma_ref)| |t(sigma_ref, sigma_ref)|) = V_g,xx(h_n)`` (likewise y); for
  separable templates this is a 1-D relation, tabulated on the fine sigma grid (monotone for
  ``k = 7``; otherwise its increasing branch up to its maximum is used) and inverted by linear
  interpolation in ``log sigma``.  Near sigma -> 0 the relation is flat (the template tends to the
  bare difference mask), so small scales are poorly determined by B.  ``lap`` matches the mean of
  ``V_xx`` and ``V_yy`` with a single sigma.  ``on_bound`` when the target is out of reach.
* ``C1`` / ``C2``: minimise ``l1`` with separate / the same scale along x and y.
* ``D1`` / ``D2``: minimise ``l2`` with separate / the same scale.
* ``lap`` has a single scale (C1 = C2, D1 = D2).  ``id-lap`` is fitted in ``(sigma, alpha)``
  (C1 = C2 is the l1 fit, D1 = D2 the l2 fit; the variance methods A, B report the l2 fit); the
  search runs over both, and at the final sigma ``alpha`` is profiled out exactly with the exact
  template (l2: clipped least squares ``alpha = <delta - h_n, L> / ||L||^2``; l1: clipped weighted
  median of ``(delta - h_n)/L`` with weights ``|L|``; ``L = lap5 T``).

Search (C and D methods)
------------------------
Scales are continuous in ``[0.01, 3]`` (``alpha`` in ``[0.05, 2]``).  The templates are tabulated
on a fine log grid of 4097 scales (relative step 0.14 %) and, for the local searches, linearly
interpolated between nodes in the *grid index* ``u`` (``sigma = 0.01 exp(u * 0.00139)``), together
with their first and second index derivatives (central differences; interpolation error ~1e-7
relative), see :class:`_Continuous`.  Reported l1 and l2 are recomputed with exact templates.

* l2 (``D1``, ``D2``; A and B for id-lap), :func:`_search_l2`: the best point of a coarse sub-grid
  (33 x 33, or 65 points in 1-D; all filters at once by one matrix product), then damped Newton
  iterations on ``sum r^2`` (exact Hessian where positive definite, else Gauss-Newton;
  Levenberg-Marquardt damping; projected at the bounds), :func:`_lm_step`.  The l2 objective is
  smooth, so this converges in ~3-5 iterations.
* l1 (``C1``, ``C2``), :func:`_search_l1`: l1 at every point of a coarse sub-grid (33 x 33, or 65
  points in 1-D; ``cdist`` against the shared templates) gives up to ``l1_starts`` = 2 starts: the
  best point, and the best point outside +-2 coarse cells around it (another basin) if its l1 is
  within 10 % of the best.  Each start is refined by trust-region sequential linear programming
  (:func:`_slp_step`): the residual ``r = t(u) - h_n`` is linearised, ``r + J d``, and the l1 norm
  of the linear model is minimised *exactly* in the trust box (a weighted median for one
  parameter; a simplex-like walk along kink lines for two, :func:`_linear_l1_2d`).  The l1
  objective is piecewise smooth, with kinks where a template entry crosses the filter's, and its
  minimum sits on kinks, often at the end of narrow, curved, slanted valleys along a kink line;
  a pattern search on the grid stalls there (the former compass search ended more than 0.1 %
  above the optimum for ~5 % of random-plus-planted filters, by up to 6 %), while the
  Gauss-Newton-type l1 method (Osborne & Watson 1971) follows the kink lines and converges
  quadratically at a vertex.  The lower of the two results wins.
* ``on_bound`` is set when a scale lies within half a fine-grid step of a bound of sigma, or alpha
  on a bound of alpha.
* Type selection (cosine) and the joint fits still search on the fine grid itself: coarse
  sub-grid (17 x 17 for cosine), then a compass search (3 x 3 or 3-point neighbourhoods whose
  per-filter step halves when no neighbour is better), :func:`_zoom`.

Agreement with a per-filter reference (dense exact-template grid + multi-start Nelder-Mead,
``benchmarks/bench_fitting.py``): on random-plus-planted 7x7 filters, C1/C2/D1/D2 sigma within 1 %
of the reference for ~97-100 % of filters; the rest are filters with a flat objective (or two
near-equal minima) whose criterion agrees to 0.1 %.

Joint (pooled) variants, :func:`fit_joint`
-------------------------------------------
One scale ``sigma_joint`` (``sigma_x = sigma_y``) is shared by the filters of a group:

* ``A-joint``, ``B-joint``: ``sigma_joint = sqrt(geomean_n(sigma_x,n sigma_y,n))`` over the
  members' own A (resp. B) fits, i.e. the geometric mean of the per-filter ``sigma_x sigma_y`` is
  taken as ``sigma_joint^2``.
* ``C-joint``: minimiser of the summed l1 residuals; ``D-joint``: minimiser of the summed squared
  l2 residuals (same fine grid, 1-D coarse + zoom, vectorised across groups).
* ``id-lap`` members keep their own ``alpha`` (profiled at ``sigma_joint``: l1 for C, l2 otherwise).

Type selection, :func:`select_types`
-------------------------------------
The type whose template, at its best scales, leaves the smallest l2 residual in a free fit
``a t + b``, i.e. the largest ``|cosine|`` between the centred filter and the centred template.
The absolute value matters: negated filters (two of the 8 published ones) keep their type.  All
types are scored on the coarse grid, the best ``refine_top`` (default 2) are refined by zoom.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist

from .conventions import check_kernel_size, kernel_coordinates
from .scalespace import (
    AXIS_OPERATORS,
    DERIVATIVE_ORDER,
    MODEL_NAMES,
    axis_profiles,
    check_model,
    model_templates,
)
from .spread import reference_template, spread_moments

__all__ = [
    "SIGMA_BOUNDS",
    "ALPHA_BOUNDS",
    "METHODS",
    "JOINT_METHODS",
    "SearchSettings",
    "dc_compensation",
    "normalise_for_fitting",
    "select_types",
    "fit_filters",
    "fit_joint",
    "residuals",
]

SIGMA_BOUNDS = (0.01, 3.0)
ALPHA_BOUNDS = (0.05, 2.0)
METHODS = ("A", "B", "C1", "C2", "D1", "D2")
JOINT_METHODS = ("A-joint", "B-joint", "C-joint", "D-joint")
_FIRST_ORDER_AXIS = {"dx": 0, "dx+": 0, "dx-": 0, "dy": 1, "dy+": 1, "dy-": 1}
_DC_TYPES = ("T", "id-lap")
_OPERATORS = ("identity", "central", "forward", "backward", "second")
_KAPPA = {0: 0.5, 1: 1.5, 2: 7.0 / 6.0}  # V_g = kappa sigma^2 at sigma = sigma_ref, per derivative order
_FIT_COLUMNS = ["filter", "type", "method", "sigma_x", "sigma_y", "alpha", "l1", "l2", "rel_l2",
                "on_bound", "degenerate"]  # fmt: skip


@dataclass(frozen=True)
class SearchSettings:
    """Grid and chunking parameters of the batched searches.

    ``fine_points - 1`` must be divisible by ``coarse_* - 1`` (powers of two); ``max_iterations``
    caps the compass-search iterations (cosine searches of type selection).
    ``chunk_elements`` bounds the size (in float64 numbers) of the largest temporary array.
    l1 searches (:func:`_search_l1`): up to ``l1_starts`` coarse-grid starts (the best point, then the
    best outside ``+-l1_exclusion`` coarse cells around earlier starts, kept when its l1 is within
    the fraction ``l1_start_gap`` of the best start's) are refined by trust-region sequential linear
    programming of at most ``l1_iterations`` iterations, initial trust radius ``l1_radius`` and
    stopping radius ``l1_tolerance`` (fine-grid index units, 1 unit = 0.14 % in sigma), with
    ``l1_pivots`` line minimisations per two-parameter linear subproblem (warm-started along the
    previous iteration's kink line).  l2 searches: at most ``l2_iterations`` damped Newton
    iterations, stopping at a step below ``l2_tolerance`` units.  The local iterations run on blocks
    of ``l1_block`` filters (small enough to stay in cache).
    """

    fine_points: int = 4097
    coarse_l2: int = 33
    coarse_l1: int = 33
    coarse_cos: int = 17
    coarse_1d: int = 65
    max_iterations: int = 60
    chunk_elements: int = 4_000_000
    l1_starts: int = 2
    l1_iterations: int = 40
    l1_pivots: int = 2
    l1_radius: float = 64.0
    l1_tolerance: float = 0.1
    l1_block: int = 1024
    l1_start_gap: float = 0.1
    l1_exclusion: int = 2
    l2_iterations: int = 30
    l2_tolerance: float = 0.05


DEFAULT_SETTINGS = SearchSettings()


# --------------------------------------------------------------------------------------------------
# fine grid of templates
# --------------------------------------------------------------------------------------------------
class _Grid:
    """Profiles of every 1-D operator at every fine-grid sigma, for one kernel size ``k``."""

    def __init__(self, k: int, points: int):
        self.k = check_kernel_size(k)
        self.c = (k - 1) // 2
        self.size = points
        self.sigma = np.logspace(np.log10(SIGMA_BOUNDS[0]), np.log10(SIGMA_BOUNDS[1]), points)
        # x profiles in column order == coordinate order; y profiles reversed to row order
        self.px = {op: axis_profiles(k, self.sigma, op) for op in _OPERATORS}
        self.py = {op: p[:, ::-1].copy() for op, p in self.px.items()}
        smooth, second = self.px["identity"], self.px["second"]
        self.lap = smooth[:, ::-1, None] * second[:, None, :] + second[:, ::-1, None] * smooth[:, None, :]
        self.sq_norm = {op: (p * p).sum(-1) for op, p in self.px.items()}
        self.total = {op: p.sum(-1) for op, p in self.px.items()}
        self.lap_sq_norm = (self.lap * self.lap).sum(axis=(-2, -1))
        self.lap_centre = self.lap[:, self.c, self.c].copy()
        self.delta = np.zeros((k, k))
        self.delta[self.c, self.c] = 1.0
        self.log_step = np.log(SIGMA_BOUNDS[1] / SIGMA_BOUNDS[0]) / (points - 1)
        self._phi: dict = {}
        self._derivatives: dict = {}

    def interpolation_table(self, name: str, order: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(values, differences)`` for :func:`_interpolate` of ``px[op]`` (``name = 'x:op'``),
        ``py[op]`` (``'y:op'``) or the flattened Laplacian table (``'lap'``), the columns followed by
        the first ``order`` derivatives with respect to the grid index (repeated central differences,
        one-sided at the ends)."""
        key = (name, order)
        if key not in self._derivatives:
            if name == "lap":
                table = self.lap.reshape(self.size, -1)
            else:
                axis, op = name.split(":")
                table = (self.px if axis == "x" else self.py)[op]
            blocks = [table]
            for _ in range(order):
                blocks.append(np.gradient(blocks[-1], axis=0))
            table = np.concatenate(blocks, axis=1)
            table = np.ascontiguousarray(table)
            differences = np.zeros_like(table)
            differences[:-1] = table[1:] - table[:-1]
            self._derivatives[key] = (table, differences)
        return self._derivatives[key]

    def templates(self, model: str, i1, i2) -> np.ndarray:
        """Templates at fine-grid indices (``i1`` = sigma_x or sigma, ``i2`` = sigma_y); id-lap gives L."""
        if model in AXIS_OPERATORS:
            op_x, op_y = AXIS_OPERATORS[model]
            return self.py[op_y][i2][..., :, None] * self.px[op_x][i1][..., None, :]
        return self.lap[i1]  # lap, and the L of id-lap (template = delta - alpha L)

    def inner(self, model: str, h: np.ndarray, i1, i2) -> np.ndarray:
        """``<h, t>`` for kernels ``h`` ``(n, k, k)`` and templates at indices ``(n, m)`` (L for id-lap).

        Bilinear form ``p_y^T h p_x`` of the separable factors, no ``k x k`` template is built.
        """
        if model in AXIS_OPERATORS:
            op_x, op_y = AXIS_OPERATORS[model]
            return _bilinear(h, self.py[op_y][i2], self.px[op_x][i1])
        return _bilinear(h, self.py["identity"][i1], self.px["second"][i1]) + _bilinear(
            h, self.py["second"][i1], self.px["identity"][i1]
        )

    def norms(self, model: str, i1, i2) -> tuple[np.ndarray, np.ndarray]:
        """``||t||^2`` and ``sum t`` of the templates at indices (L for id-lap)."""
        if model in AXIS_OPERATORS:
            op_x, op_y = AXIS_OPERATORS[model]
            sq_norm = self.sq_norm[op_x][i1] * self.sq_norm[op_y][i2]
            return sq_norm, self.total[op_x][i1] * self.total[op_y][i2]
        return self.lap_sq_norm[i1], np.zeros(np.shape(i1))

    def variance_relation(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """Method B: ``phi_x(sigma), phi_y(sigma)`` on the fine grid (weighted template variances)."""
        if model not in self._phi:
            if model in AXIS_OPERATORS:
                coordinate = np.arange(self.k) - self.c
                phis = []
                for op in AXIS_OPERATORS[model]:
                    ref_profile = np.abs(axis_profiles(self.k, 1.0, op))
                    w = np.abs(self.px[op]) * ref_profile
                    m = (w * coordinate).sum(-1) / w.sum(-1)
                    phis.append((w * coordinate**2).sum(-1) / w.sum(-1) - m * m)
                self._phi[model] = tuple(phis)
            else:  # lap: mean of V_xx and V_yy, single sigma
                w = np.abs(self.lap) * np.abs(model_templates("lap", self.k, 1.0))
                _, v = spread_moments(w)
                phi = 0.5 * (v[:, 0, 0] + v[:, 1, 1])
                self._phi[model] = (phi, phi)
        return self._phi[model]


@lru_cache(maxsize=8)
def _grid(k: int, points: int) -> _Grid:
    return _Grid(k, points)


# --------------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------------
def _chunks(n: int, per_item: int, settings: SearchSettings):
    size = max(1, settings.chunk_elements // max(1, per_item))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _basic_degenerate(kernels: np.ndarray) -> np.ndarray:
    """Non-finite, or constant (all zero included) kernels."""
    flat = kernels.reshape(len(kernels), -1)
    finite = np.isfinite(flat).all(axis=1)
    safe = np.where(np.isfinite(flat), flat, 0.0)
    spread = safe.max(axis=1) - safe.min(axis=1)
    scale = np.abs(safe).max(axis=1)
    return ~finite | (spread <= 1e-12 * np.maximum(scale, 1e-300))


@lru_cache(maxsize=8)
def _moment_matrix(k: int) -> np.ndarray:
    """Columns ``1, x, y, x^2, y^2, x y`` over the flattened ``k x k`` support, ``(k*k, 6)``."""
    x, y = (c.ravel() for c in kernel_coordinates(k))
    return np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)


def _sqrt_det_spread(kernels: np.ndarray, constants: np.ndarray) -> np.ndarray:
    """``sqrt(det V(|h - C|))`` for kernels ``(n, k, k)`` and constants ``(n, m)`` -> ``(n, m)``.

    ``V`` as in :func:`masterkey.spread.spread_moments`, from the six moments of ``|h - C|`` (one
    matrix product); infinite where ``sum |h - C|`` vanishes."""
    n, k = len(kernels), kernels.shape[-1]
    weights = np.abs(kernels.reshape(n, 1, k * k) - constants[:, :, None])
    s0, sx, sy, sxx, syy, sxy = np.moveaxis(weights @ _moment_matrix(k), -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(s0 > 0, 1.0 / s0, np.nan)
        m_x, m_y = sx * inv, sy * inv
        det = (sxx * inv - m_x * m_x) * (syy * inv - m_y * m_y) - (sxy * inv - m_x * m_y) ** 2
    return np.sqrt(np.clip(np.nan_to_num(det, nan=np.inf), 0.0, None))


def dc_compensation(kernels: np.ndarray, settings: SearchSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """Constant ``C`` minimising ``sqrt(det V(|h - C|))`` for each kernel ``(N, k, k)`` -> ``(N,)``.

    1-D search over ``[min h, max h]``: a 65-point grid plus the kernel's own values (the
    objective has kinks there, where minima often sit), then 8 zoom rounds of 9 points over the
    two cells around the best (each round 4x finer, final resolution about ``2e-7 (max h - min h)``),
    then one parabolic step through the best point and its neighbours (kept only if it lowers the
    objective).  NaN for degenerate kernels.
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    n, k = len(kernels), kernels.shape[-1]
    out = np.full(n, np.nan)
    bad = _basic_degenerate(kernels)
    good = np.flatnonzero(~bad)
    for sl in _chunks(len(good), (65 + k * k) * k * k * 4, settings):
        h = kernels[good[sl]]
        rows = np.arange(len(h))
        lo = h.min(axis=(1, 2))
        width = h.max(axis=(1, 2)) - lo
        candidates = np.concatenate([lo[:, None] + width[:, None] * np.linspace(0.0, 1.0, 65),
                                     h.reshape(len(h), -1)], axis=1)  # fmt: skip
        values = _sqrt_det_spread(h, candidates)
        best = candidates[rows, values.argmin(axis=1)]
        cell = width / 64
        for _ in range(8):  # zoom: 9 points over the two cells around the best
            candidates = best[:, None] + cell[:, None] * np.linspace(-1.0, 1.0, 9)
            values = _sqrt_det_spread(h, candidates)
            best = candidates[rows, values.argmin(axis=1)]
            cell = cell / 4
        # parabolic step through the best point of the last round and its two neighbours
        j = np.clip(values.argmin(axis=1), 1, 7)
        c0, c1, c2 = candidates[rows, j - 1], candidates[rows, j], candidates[rows, j + 1]
        f0, f1, f2 = values[rows, j - 1], values[rows, j], values[rows, j + 1]
        denom = f0 - 2 * f1 + f2
        with np.errstate(invalid="ignore", divide="ignore"):
            vertex = c1 + 0.5 * (c1 - c0) * (f0 - f2) / denom
        vertex = np.where(np.isfinite(vertex) & (denom > 0), np.clip(vertex, c0, c2), best)
        better = _sqrt_det_spread(h, vertex[:, None])[:, 0] < _sqrt_det_spread(h, best[:, None])[:, 0]
        out[good[sl]] = np.where(better, vertex, best)
    return out


def _pattern_normaliser(kernels: np.ndarray, model: str) -> np.ndarray:
    """Response to the type's test pattern centred at ``m = M(|h|)`` (see module docstring)."""
    k = kernels.shape[-1]
    x, y = kernel_coordinates(k)
    mean, _ = spread_moments(np.abs(kernels))
    dx = x - mean[:, 0, None, None]
    dy = y - mean[:, 1, None, None]
    if model in _FIRST_ORDER_AXIS:
        pattern = -(dx if _FIRST_ORDER_AXIS[model] == 0 else dy)
    elif model == "dxx":
        pattern = dx**2 / 2
    elif model == "dyy":
        pattern = dy**2 / 2
    elif model == "dxy":
        pattern = dx * dy
    elif model == "lap":
        pattern = (dx**2 + dy**2) / 4
    else:
        raise ValueError(model)
    return (kernels * pattern).sum(axis=(-2, -1))


def normalise_for_fitting(kernels: np.ndarray, model: str, settings: SearchSettings = DEFAULT_SETTINGS):
    """Normalise kernels ``(N, k, k)`` for fitting type ``model`` (see module docstring).

    Returns ``(normalised, degenerate, dc_constant)``; ``normalised`` is NaN where ``degenerate``;
    ``dc_constant`` is the subtracted ``C`` (zeros for types without DC compensation).
    """
    check_model(model)
    kernels = np.asarray(kernels, dtype=np.float64)
    degenerate = _basic_degenerate(kernels)
    safe = np.where(degenerate[:, None, None], 0.0, kernels)
    safe = np.nan_to_num(safe)
    if model in _DC_TYPES:
        constant = np.where(degenerate, 0.0, dc_compensation(safe, settings))
        constant = np.nan_to_num(constant)
        shifted = safe - constant[:, None, None]
        normaliser = shifted.sum(axis=(-2, -1))
    else:
        constant = np.zeros(len(kernels))
        shifted = safe
        normaliser = _pattern_normaliser(safe, model)
    scale = np.abs(shifted).sum(axis=(-2, -1))
    degenerate |= ~(np.abs(normaliser) > 1e-9 * scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = shifted / normaliser[:, None, None]
    normalised[degenerate] = np.nan
    return normalised, degenerate, constant


# --------------------------------------------------------------------------------------------------
# criteria at per-filter candidate indices
# --------------------------------------------------------------------------------------------------
def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Minimiser of ``sum_i w_i |v_i - a|`` along the last axis."""
    order = np.argsort(values, axis=-1)
    v = np.take_along_axis(values, order, -1)
    w = np.take_along_axis(weights, order, -1)
    cumulative = np.cumsum(w, axis=-1)
    index = np.argmax(cumulative >= 0.5 * cumulative[..., -1:], axis=-1)
    return np.take_along_axis(v, index[..., None], -1)[..., 0]


def _idlap_alpha(residual: np.ndarray, lap: np.ndarray, criterion: str) -> np.ndarray:
    """Optimal clipped ``alpha`` for ``min || residual - alpha L ||`` (flattened last axis)."""
    lo, hi = ALPHA_BOUNDS
    if criterion == "l2":
        with np.errstate(invalid="ignore", divide="ignore"):
            alpha = (residual * lap).sum(-1) / (lap * lap).sum(-1)
    else:  # l1: weighted median of residual / L with weights |L|
        weights = np.abs(lap)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(weights > 0, residual / np.where(weights > 0, lap, 1.0), 0.0)
        alpha = _weighted_median(ratio, weights)
    return np.clip(_clean(alpha, lo), lo, hi)


def _bilinear(h: np.ndarray, row_profiles: np.ndarray, col_profiles: np.ndarray) -> np.ndarray:
    """``sum_ij py[i] h[i, j] px[j]`` for ``h`` ``(n, k, k)`` and profiles ``(n, m, k)`` -> ``(n, m)``."""
    h_px = np.matmul(col_profiles, h.transpose(0, 2, 1))  # (n, m, k): sum_j h[i, j] px[j]
    return np.einsum("nmi,nmi->nm", row_profiles, h_px)


def _clean(value: np.ndarray, fill: float) -> np.ndarray:
    return np.where(np.isnan(value), fill, value)


def _idlap_cosine(p, q, lap_sq_norm, lap_centre, kk):
    """Best squared cosine over alpha of a centred unit ``h`` with the centred ``delta - alpha L``.

    ``p = h[centre]``, ``q = <h, L>``.  With ``a = delta - 1/kk`` and ``b = L`` (zero sum) the
    ratio ``(p - alpha q)^2 / ||a - alpha b||^2`` has a single interior stationary point
    ``alpha* = (q A - p B) / (q B - p C)`` (``A = ||a||^2, B = L[centre], C = ||L||^2``); the maximum over
    ``[alpha_lo, alpha_hi]`` is at ``alpha*`` (clipped) or at a bound.
    """
    lo, hi = ALPHA_BOUNDS
    a_norm = 1.0 - 1.0 / kk
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        stationary = (q * a_norm - p * lap_centre) / (q * lap_centre - p * lap_sq_norm)
    stationary = np.clip(_clean(stationary, lo), lo, hi)
    best_value = np.full(np.shape(q), -np.inf)
    best_alpha = np.full(np.shape(q), lo)
    for alpha in (lo, hi, stationary):
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (p - alpha * q) ** 2 / (a_norm - 2 * alpha * lap_centre + alpha**2 * lap_sq_norm)
        value = _clean(value, -np.inf)
        better = value > best_value
        best_value = np.where(better, value, best_value)
        best_alpha = np.where(better, alpha, best_alpha)
    return best_value, best_alpha


def _evaluate(grid: _Grid, model: str, h: np.ndarray, i1: np.ndarray, i2: np.ndarray, criterion: str,
              inner: np.ndarray | None = None):  # fmt: skip
    """Criterion for filters ``h`` ``(n, k*k)`` at candidates ``(n, m)``; returns ``(value, alpha)``.

    ``criterion``: ``'l1'`` (sum |t - h|), ``'l2'`` (sum (t - h)^2) or ``'cos'`` (minus the squared
    cosine between centred template and ``h``, which must be centred with unit norm).  l2 and cos
    use bilinear forms of the separable factors (or the given ``inner = <h, t>``); l1 builds the
    templates.  ``alpha`` is NaN except for id-lap (profiled out exactly).  NaN criteria
    (degenerate templates) become ``+inf``.
    """
    kk = grid.k * grid.k
    n = len(h)
    alpha = np.full(i1.shape, np.nan)
    if criterion == "l1":
        templates = grid.templates(model, i1, i2).reshape(i1.shape + (kk,))
        target = h[:, None, :]
        if model == "id-lap":
            residual = grid.delta.reshape(kk) - target
            alpha = _idlap_alpha(residual, templates, "l1")
            difference = residual - alpha[..., None] * templates
        else:
            difference = templates - target
        return np.abs(difference).sum(-1), alpha
    if inner is None:
        inner = grid.inner(model, h.reshape(n, grid.k, grid.k), i1, i2)
    sq_norm, total = grid.norms(model, i1, i2)
    h_sq = (h * h).sum(-1)[:, None]
    if model == "id-lap":
        centre = h[:, grid.c * grid.k + grid.c][:, None]
        lap_centre = grid.lap_centre[i1]
        if criterion == "cos":
            value, alpha = _idlap_cosine(centre, inner, sq_norm, lap_centre, kk)
            return -value, alpha
        # residual r = delta - h: <r, L> = L[centre] - <h, L>, ||r||^2 = 1 - 2 h[centre] + ||h||^2
        r_dot = lap_centre - inner
        with np.errstate(invalid="ignore", divide="ignore"):
            alpha = np.clip(_clean(r_dot / sq_norm, ALPHA_BOUNDS[0]), *ALPHA_BOUNDS)
        value = 1.0 - 2.0 * centre + h_sq - 2.0 * alpha * r_dot + alpha**2 * sq_norm
        return np.maximum(value, 0.0), alpha
    if criterion == "cos":
        with np.errstate(invalid="ignore", divide="ignore"):
            value = inner**2 / (sq_norm - total**2 / kk)
        return -_clean(value, 0.0), alpha
    return np.maximum(sq_norm - 2.0 * inner + h_sq, 0.0), alpha


def _evaluate_product(grid: _Grid, model: str, h: np.ndarray, ix: np.ndarray, iy: np.ndarray, criterion: str):
    """Like :func:`_evaluate` for a separable ``model`` on the product of per-filter candidate sets.

    ``ix`` ``(n, a)`` (sigma_x indices) and ``iy`` ``(n, b)`` (sigma_y indices); returns values of
    shape ``(n, a * b)``, x-major (entry ``u * b + v`` is ``(ix[:, u], iy[:, v])``).
    """
    n, kk = h.shape
    op_x, op_y = AXIS_OPERATORS[model]
    px, py = grid.px[op_x][ix], grid.py[op_y][iy]  # (n, a, k), (n, b, k)
    if criterion == "l1":
        templates = py[:, None, :, :, None] * px[:, :, None, None, :]  # (n, a, b, k, k)
        difference = templates.reshape(n, -1, kk) - h[:, None, :]
        return np.abs(difference).sum(-1)
    square = h.reshape(n, grid.k, grid.k)
    h_px = np.matmul(px, square.transpose(0, 2, 1))  # (n, a, k)
    inner = np.einsum("nbi,nai->nab", py, h_px)
    sq_norm = grid.sq_norm[op_x][ix][:, :, None] * grid.sq_norm[op_y][iy][:, None, :]
    if criterion == "cos":
        total = grid.total[op_x][ix][:, :, None] * grid.total[op_y][iy][:, None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            value = -(inner**2) / (sq_norm - total**2 / kk)
        return _clean(value, np.inf).reshape(n, -1)
    h_sq = (h * h).sum(-1)[:, None, None]
    return np.maximum(sq_norm - 2.0 * inner + h_sq, 0.0).reshape(n, -1)


def _pairwise_l1(h: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """All l1 distances ``(n, m)``: ``torch.cdist`` for large blocks (about 2x faster on CPU, but
    importing torch costs seconds), else ``scipy.spatial.distance.cdist``."""
    if h.shape[0] * templates.shape[0] >= 2_000_000 or "torch" in sys.modules:
        try:
            import torch

            return torch.cdist(torch.from_numpy(h), torch.from_numpy(templates), p=1).numpy()
        except ImportError:  # pragma: no cover - torch is a project dependency
            pass
    return cdist(h, templates, metric="cityblock")


def _is_2d(model: str, mode: str) -> bool:
    return model in AXIS_OPERATORS and mode == "separate"


def _coarse_candidates(grid: _Grid, model: str, mode: str, criterion: str, settings: SearchSettings):
    if _is_2d(model, mode):
        points = {"l2": settings.coarse_l2, "l1": settings.coarse_l1, "cos": settings.coarse_cos}[criterion]
        axis = np.round(np.linspace(0, grid.size - 1, points)).astype(int)
        i1, i2 = np.meshgrid(axis, axis, indexing="ij")
        return i1.ravel(), i2.ravel(), (grid.size - 1) // (points - 1)
    axis = np.round(np.linspace(0, grid.size - 1, settings.coarse_1d)).astype(int)
    return axis, axis.copy(), (grid.size - 1) // (settings.coarse_1d - 1)


def _coarse_search(grid, model, h, criterion, mode, settings):
    """Best coarse-grid candidate for every filter: ``(i1, i2, spacing, value)``.

    ``value`` is the criterion at the best candidate (convention of :func:`_evaluate`).
    """
    c1, c2, spacing = _coarse_candidates(grid, model, mode, criterion, settings)
    n, kk = h.shape
    best = np.zeros(n, dtype=np.int64)
    best_value = np.full(n, np.inf)
    rows_all = np.arange(n)
    if model == "id-lap":  # alpha is profiled per filter: evaluate candidates directly
        lap = grid.lap.reshape(grid.size, kk)[c1]
        for sl in _chunks(n, len(c1) * (kk * 3 if criterion == "l1" else 8), settings):
            shape = (sl.stop - sl.start, len(c1))
            inner = None if criterion == "l1" else h[sl] @ lap.T  # <h, L>: one matrix product
            value, _ = _evaluate(grid, model, h[sl], np.broadcast_to(c1, shape), np.broadcast_to(c2, shape),
                                 criterion, inner)  # fmt: skip
            value = _clean(value, np.inf)
            best[sl] = value.argmin(axis=1)
            best_value[sl] = value[rows_all[: len(value)], best[sl]]
        return c1[best], c2[best], spacing, best_value
    templates = grid.templates(model, c1, c2).reshape(len(c1), kk)
    if criterion == "cos":
        templates = templates - templates.mean(-1, keepdims=True)
        norm = np.sqrt((templates * templates).sum(-1))
        templates = templates / np.where(norm > 0, norm, np.inf)[:, None]
    sq_norm = (templates * templates).sum(-1)
    per_item = len(c1) * (kk if criterion == "l1" else 2)
    for sl in _chunks(n, per_item, settings):
        block = h[sl]
        if criterion == "l1":
            value = _pairwise_l1(block, templates)
        elif criterion == "l2":
            value = block @ (-2.0 * templates.T)
            value += sq_norm
        else:
            value = block @ templates.T
            np.abs(value, out=value)
            np.negative(value, out=value)
        best[sl] = value.argmin(axis=1)
        best_value[sl] = value[rows_all[: len(value)], best[sl]]
    if criterion == "l2":
        best_value = np.maximum(best_value + (h * h).sum(-1), 0.0)
    elif criterion == "cos":
        best_value = -(best_value**2)
    return c1[best], c2[best], spacing, best_value


def _zoom(grid, model, h, i1, i2, criterion, mode, start_step, settings):
    """Refine indices on the fine grid by a vectorised compass (pattern) search (type selection).

    Each filter has its own step, starting at half the coarse spacing.  Every iteration evaluates
    the 3 x 3 (2-D) or 3-point (1-D) neighbourhood at the filter's step around its current best
    (centre first, so ties keep it): if the centre is best the step halves (a filter whose unit
    step keeps the centre is done), otherwise the filter moves and keeps its step, so it can follow
    curved valleys.  At most ``settings.max_iterations`` iterations.  Returns
    ``(i1, i2, value, alpha)``.
    """
    two_d = _is_2d(model, mode)
    shifts = np.array([0, -1, 1])
    n, kk = h.shape
    i1, i2 = i1.copy(), i2.copy()
    step = np.maximum(np.broadcast_to(np.asarray(start_step) // 2, (n,)), 1).astype(np.int64)
    value = np.full(n, np.inf)
    alpha = np.full(n, np.nan)
    active = np.arange(n)
    last = grid.size - 1
    per_item = (9 if two_d else 3) * kk * 4

    def move(rows):
        """Best neighbour of each row: ``(new_i1, new_i2, value, alpha, centre_is_best)``."""
        local = np.arange(len(rows))
        offsets = step[rows, None] * shifts
        c1 = np.clip(i1[rows, None] + offsets, 0, last)
        if two_d:
            c2 = np.clip(i2[rows, None] + offsets, 0, last)
            v = _evaluate_product(grid, model, h[rows], c1, c2, criterion)
            j = v.argmin(axis=1)
            return c1[local, j // 3], c2[local, j % 3], v[local, j], np.full(len(rows), np.nan), j == 0
        v, a = _evaluate(grid, model, h[rows], c1, c1, criterion)
        v = _clean(v, np.inf)
        j = v.argmin(axis=1)
        return c1[local, j], c1[local, j], v[local, j], a[local, j], j == 0

    for _ in range(settings.max_iterations):
        done = np.zeros(n, dtype=bool)
        for sl in _chunks(len(active), per_item, settings):
            rows = active[sl]
            new1, new2, v, a, stay = move(rows)
            done[rows] = stay & (step[rows] == 1)
            step[rows] = np.where(stay, np.maximum(step[rows] // 2, 1), step[rows])
            i1[rows], i2[rows], value[rows], alpha[rows] = new1, new2, v, a
        active = active[~done[active]]
        if len(active) == 0:
            break
    return i1, i2, value, alpha


# --------------------------------------------------------------------------------------------------
# l1 searches: multi-start trust-region sequential linear programming on continuous coordinates
# --------------------------------------------------------------------------------------------------
def _interpolate(table: tuple[np.ndarray, np.ndarray], u: np.ndarray) -> np.ndarray:
    """Rows of a table ``(values, differences)`` (both ``(points, width)``, ``differences[i] =
    values[i + 1] - values[i]``) linearly interpolated at continuous indices ``u`` ``(n,)``."""
    values, differences = table
    i = np.minimum(u.astype(np.intp), len(values) - 2)
    return values[i] + (u - i)[:, None] * differences[i]


class _Continuous:
    """Templates of one model at continuous coordinates ``u`` (``(n, dim)``), with their Jacobian.

    Coordinates are fine-grid index units: ``sigma(u) = sigma_min exp(u * log_step)``, so integer
    ``u`` are grid nodes and one unit is a relative change of 0.14 % in sigma.  id-lap has a second
    coordinate ``w`` with ``alpha(w) = alpha_min exp(w * log_step)``.  The 1-D profiles (or the
    Laplacian tables) and their index derivatives (central differences of the tables) are linearly
    interpolated between nodes (relative interpolation error ~1e-7).  ``kind``: ``'separate'``
    ``(u_x, u_y)``, ``'same'`` ``(u,)`` with ``u_x = u_y``, ``'lap'`` ``(u,)``, ``'id-lap'`` ``(u, w)``.
    """

    def __init__(self, grid: _Grid, model: str, mode: str):
        self.grid = grid
        last = float(grid.size - 1)
        if model == "id-lap":
            self.kind = "id-lap"
            self.upper = np.array([last, np.log(ALPHA_BOUNDS[1] / ALPHA_BOUNDS[0]) / grid.log_step])
        elif model == "lap":
            self.kind, self.upper = "lap", np.array([last])
        else:
            self.kind = "separate" if mode == "separate" else "same"
            self.upper = np.array([last, last] if mode == "separate" else [last])
        self.dim = len(self.upper)
        # interpolation tables: values only, and values followed by their index derivatives
        if model in AXIS_OPERATORS:
            op_x, op_y = AXIS_OPERATORS[model]
            self.x = tuple(grid.interpolation_table(f"x:{op_x}", d) for d in range(3))
            self.y = tuple(grid.interpolation_table(f"y:{op_y}", d) for d in range(3))
        else:
            self.lap = tuple(grid.interpolation_table("lap", d) for d in range(3))
        self.width = grid.k
        self.centre = grid.c * grid.k + grid.c

    def alpha(self, w: np.ndarray) -> np.ndarray:
        return ALPHA_BOUNDS[0] * np.exp(w * self.grid.log_step)

    def templates(self, u: np.ndarray) -> np.ndarray:
        """Templates ``(n, k*k)`` at coordinates ``u``."""
        n = len(u)
        if self.kind in ("separate", "same"):
            a, b = _interpolate(self.y[0], u[:, -1]), _interpolate(self.x[0], u[:, 0])
            return (a[:, :, None] * b[:, None, :]).reshape(n, self.width * self.width)
        lap = _interpolate(self.lap[0], u[:, 0])
        if self.kind == "lap":
            return lap
        template = -self.alpha(u[:, 1])[:, None] * lap
        template[:, self.centre] += 1.0
        return template

    def value(self, h: np.ndarray, u: np.ndarray, criterion: str = "l1") -> np.ndarray:
        """``sum |t(u) - h|`` (l1) or ``sum (t(u) - h)^2`` (l2) for filters ``h`` ``(n, k*k)``."""
        difference = self.templates(u)
        difference -= h
        if criterion == "l1":
            np.abs(difference, out=difference)
        else:
            np.multiply(difference, difference, out=difference)
        return difference.sum(axis=1)

    def linearise(self, h: np.ndarray, u: np.ndarray):
        """Residual ``r = t(u) - h`` ``(n, k*k)`` and the columns ``dr/du_d`` of its Jacobian."""
        n = len(u)
        k = self.width
        if self.kind in ("separate", "same"):
            ya, xb = _interpolate(self.y[1], u[:, -1]), _interpolate(self.x[1], u[:, 0])
            a, da, b, db = ya[:, :k], ya[:, k:], xb[:, :k], xb[:, k:]
            residual = (a[:, :, None] * b[:, None, :]).reshape(n, self.width * self.width) - h
            d_x = (a[:, :, None] * db[:, None, :]).reshape(n, self.width * self.width)
            d_y = (da[:, :, None] * b[:, None, :]).reshape(n, self.width * self.width)
            return residual, ((d_x, d_y) if self.kind == "separate" else (d_x + d_y,))
        both = _interpolate(self.lap[1], u[:, 0])
        lap, dlap = both[:, : k * k], both[:, k * k :]
        if self.kind == "lap":
            return lap - h, (dlap,)
        alpha = self.alpha(u[:, 1])[:, None]
        residual = -alpha * lap - h
        residual[:, self.centre] += 1.0
        return residual, (-alpha * dlap, (-self.grid.log_step * alpha) * lap)

    def newton_terms(self, h: np.ndarray, u: np.ndarray):
        """Gradient ``g = J^T r`` ``(n, dim)``, Gauss-Newton matrix ``A = J^T J`` and Hessian
        ``H = A + sum_p r_p d^2 t_p / du^2`` ``(n, dim, dim)`` of ``sum r^2 / 2``, ``r = t(u) - h``.

        Separable templates ``t = a (x) b`` use bilinear forms with the residual matrix ``R``:
        ``g_x = a^T R b'``, ``A_xx = |a|^2 |b'|^2``, ``A_xy = (a.a') (b.b')``, ``H_xx - A_xx = a^T R b''``,
        ``H_xy - A_xy = a'^T R b'`` (``x <-> y`` likewise; the same-scale model sums all four blocks).
        """
        n = len(u)
        k = self.width
        if self.kind in ("separate", "same"):
            a = _interpolate(self.y[2], u[:, -1]).reshape(n, 3, k)  # rows a, a', a''
            b = _interpolate(self.x[2], u[:, 0]).reshape(n, 3, k)  # rows b, b', b''
            residual = a[:, 0, :, None] * b[:, 0, None, :] - h.reshape(n, k, k)
            forms = a @ residual @ b.transpose(0, 2, 1)  # forms[:, i, j] = a^(i)T R b^(j)
            aa, bb = a[:, :2] @ a[:, :2].transpose(0, 2, 1), b[:, :2] @ b[:, :2].transpose(0, 2, 1)
            g = np.stack([forms[:, 0, 1], forms[:, 1, 0]], axis=1)
            a_xx, a_yy, a_xy = aa[:, 0, 0] * bb[:, 1, 1], aa[:, 1, 1] * bb[:, 0, 0], aa[:, 0, 1] * bb[:, 0, 1]
            h_xx, h_yy, h_xy = a_xx + forms[:, 0, 2], a_yy + forms[:, 2, 0], a_xy + forms[:, 1, 1]
            if self.kind == "same":
                g = g.sum(axis=1, keepdims=True)
                gn = (a_xx + a_yy + 2 * a_xy)[:, None, None]
                return g, gn, (h_xx + h_yy + 2 * h_xy)[:, None, None]
            gn = np.stack([np.stack([a_xx, a_xy], 1), np.stack([a_xy, a_yy], 1)], 1)
            return g, gn, np.stack([np.stack([h_xx, h_xy], 1), np.stack([h_xy, h_yy], 1)], 1)
        kk = k * k
        table = _interpolate(self.lap[2], u[:, 0])
        lap, d1, d2 = table[:, :kk], table[:, kk : 2 * kk], table[:, 2 * kk :]
        if self.kind == "lap":
            residual = lap - h
            g = (d1 * residual).sum(axis=1)[:, None]
            gn = (d1 * d1).sum(axis=1)[:, None, None]
            return g, gn, gn + (d2 * residual).sum(axis=1)[:, None, None]
        s = self.grid.log_step
        alpha = self.alpha(u[:, 1])[:, None]
        residual = -alpha * lap - h
        residual[:, self.centre] += 1.0
        ju, jw = -alpha * d1, (-s * alpha) * lap
        g = np.stack([(ju * residual).sum(1), (jw * residual).sum(1)], axis=1)
        a_uu, a_uw, a_ww = (ju * ju).sum(1), (ju * jw).sum(1), (jw * jw).sum(1)
        r_uu = -(alpha[:, 0]) * (d2 * residual).sum(1)
        r_uw = s * (ju * residual).sum(1)
        r_ww = s * g[:, 1]
        gn = np.stack([np.stack([a_uu, a_uw], 1), np.stack([a_uw, a_ww], 1)], 1)
        second = np.stack([np.stack([r_uu, r_uw], 1), np.stack([r_uw, r_ww], 1)], 1)
        return g, gn, gn + second


def _line_l1(base: np.ndarray, slope: np.ndarray, t_low: np.ndarray, t_high: np.ndarray):
    """Minimiser of ``sum_p |base_p + t slope_p|`` over ``t`` in ``[t_low, t_high]`` (rows independent).

    The unconstrained minimiser is the weighted median of the kinks ``z_p = -base_p / slope_p`` with
    weights ``|slope_p|``; the function is convex, so clipping it to the interval gives the constrained
    minimiser.  Returns ``(t, p, clipped)``: ``p`` the term whose kink is the median.
    """
    n, terms = base.shape
    rows = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kink = base / slope  # terms with slope 0 give +-inf or NaN: sorted to the ends, weight 0
    np.negative(kink, out=kink)
    order = np.argsort(kink, axis=1)
    cumulative = np.abs(slope.ravel()[order + (rows * terms)[:, None]])
    np.cumsum(cumulative, axis=1, out=cumulative)
    median = np.minimum(np.count_nonzero(cumulative < 0.5 * cumulative[:, -1:], axis=1), terms - 1)
    term = order[rows, median]
    t = kink[rows, term]
    t = np.where(np.isfinite(t), t, 0.0)  # all slopes 0: nothing to gain, stay
    clipped = np.minimum(np.maximum(t, t_low), t_high)
    return clipped, term, clipped != t


def _linear_l1_2d(residual, jacobian_x, jacobian_y, low, high, pivots: int, direction=None):
    """Minimise the linear model ``sum_p |r_p + J_p . d|`` over the box ``low <= d <= high`` (2 columns).

    A convex piecewise-linear function of two variables is minimised at a vertex where two kink lines
    ``r_p + J_p . d = 0`` cross (or on the box).  Starting at ``d = 0`` we minimise exactly along
    ``direction`` (default the first axis; the SLP passes the previous iteration's last kink line),
    a weighted median (:func:`_line_l1`), which lands on the kink line of some term ``p``; then along
    that line, which lands on a vertex ``(p, q)``; then along the line of ``q``, and so on
    (``pivots`` line minimisations, box faces taking the role of kink lines when the box is hit).
    A vertex at which neither of its two lines descends is the minimum (the function is linear on
    the four sectors around it), so this simplex-like walk reaches the exact minimiser in a few pivots
    (the tests check it against linear programming); each pivot never increases the model, so fewer
    pivots give a descent step.  Returns ``(d, model value, direction of the last kink line)``.
    """
    n = len(residual)
    rows = np.arange(n)
    delta = np.zeros((n, 2))
    if direction is None:
        direction = np.zeros((n, 2))
        direction[:, 0] = 1.0
    base = residual
    for _ in range(pivots):
        slope = jacobian_x * direction[:, :1]
        slope += jacobian_y * direction[:, 1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            first = (low - delta) / direction
            second = (high - delta) / direction
        moving = direction != 0
        t_low = np.where(moving, np.minimum(first, second), -np.inf).max(axis=1)
        t_high = np.where(moving, np.maximum(first, second), np.inf).min(axis=1)
        t, term, clipped = _line_l1(base, slope, np.minimum(t_low, 0.0), np.maximum(t_high, 0.0))
        delta = np.minimum(np.maximum(delta + t[:, None] * direction, low), high)
        base = base + t[:, None] * slope
        # next: along the kink line of `term` (normal J_term), or along the box face that stopped us
        gx, gy = jacobian_x[rows, term], jacobian_y[rows, term]
        norm = np.hypot(gx, gy)
        safe = np.where(norm > 0, norm, 1.0)
        direction = np.where((norm > 0)[:, None], np.stack([-gy / safe, gx / safe], axis=1), (0.0, 1.0))
        tol = 1e-9 * (1.0 + np.abs(delta[:, 0]))
        on_x_face = clipped & ((delta[:, 0] <= low[:, 0] + tol) | (delta[:, 0] >= high[:, 0] - tol))
        direction[on_x_face] = (0.0, 1.0)
        direction[clipped & ~on_x_face] = (1.0, 0.0)
    return delta, np.abs(base).sum(axis=1), direction


def _refine(cont: _Continuous, h: np.ndarray, u: np.ndarray, criterion: str, settings: SearchSettings):
    """Local minimisation of the l1 or squared l2 residual from starts ``u`` ``(n, dim)``.

    l1: trust-region sequential linear programming (:func:`_slp_step`); l2: damped Newton
    (:func:`_lm_step`).  Rows are iterated in cache-sized blocks of the still active rows; a row
    stops when converged or after ``l1_iterations`` (``l2_iterations``).  Returns ``(u, value)``.
    """
    n = len(h)
    u = np.array(u, dtype=np.float64)
    value = cont.value(h, u, criterion)
    if criterion == "l1":
        state = np.zeros((n, 3))  # trust radius and the direction of the last kink line
        state[:, 0], state[:, 1] = settings.l1_radius, 1.0
        step_function, iterations = _slp_step, settings.l1_iterations
    else:
        state, step_function, iterations = np.full(n, 1e-3), _lm_step, settings.l2_iterations
    active = np.flatnonzero(np.isfinite(value))
    for _ in range(iterations):
        if active.size == 0:
            break
        done = np.zeros(n, dtype=bool)
        for start in range(0, active.size, settings.l1_block):
            rows = active[start : start + settings.l1_block]
            done[rows] = step_function(cont, h[rows], u, value, state, rows, settings)
        active = active[~done[active]]
    return u, value


def _slp_step(cont: _Continuous, h: np.ndarray, u, value, state, rows, settings: SearchSettings):
    """One trust-region SLP iteration for min l1 (updates ``u``, ``value`` and ``state`` = (trust
    radius, direction of the last kink line) at ``rows`` in place); returns the convergence flags.

    The residual is linearised, ``r(u + d) ~ r + J d``, and the l1 norm of the linear model is
    minimised inside the box ``|d_i| <= radius`` (and the bounds): exactly by a weighted median for
    one parameter, by ``l1_pivots`` pivots of :func:`_linear_l1_2d` for two (near convergence the
    warm-started walk is exact; early on a descent step is enough).  The step is accepted when the
    true l1 decreases; the radius doubles when the step reached it and the decrease is at least 3/4
    of the predicted one, and becomes a quarter of the step when the decrease is below 1/4 of it
    (or negative).  This is the Gauss-Newton method for nonlinear l1 fitting (Osborne & Watson
    1971) with a trust region: the minimum of an l1 objective sits on kinks (``dim`` residuals
    vanish), where it converges quadratically, and it follows the narrow, curved, kinked valleys of
    the l1 objective along which pattern searches stall.  A row stops when its radius falls below
    ``l1_tolerance`` or the linear model predicts no decrease.
    """
    ua, va, ra = u[rows], value[rows], state[rows, 0]
    residual, jacobian = cont.linearise(h, ua)
    low = np.maximum(-ra[:, None], -ua)
    high = np.minimum(ra[:, None], cont.upper - ua)
    if cont.dim == 1:
        t, _, _ = _line_l1(residual, jacobian[0], low[:, 0], high[:, 0])
        delta = t[:, None]
        model = np.abs(residual + t[:, None] * jacobian[0]).sum(axis=1)
    else:
        delta, model, direction = _linear_l1_2d(
            residual, jacobian[0], jacobian[1], low, high, settings.l1_pivots, state[rows, 1:]
        )
        state[rows, 1:] = direction
    predicted = va - model
    trial = np.minimum(np.maximum(ua + delta, 0.0), cont.upper)
    trial_value = cont.value(h, trial, "l1")
    actual = va - trial_value
    accept = actual > 0
    u[rows] = np.where(accept[:, None], trial, ua)
    value[rows] = np.where(accept, trial_value, va)
    step = np.abs(delta).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(predicted > 0, actual / predicted, -1.0)
    ra = np.where((ratio > 0.75) & (step >= 0.99 * ra), 2.0 * ra, np.where(ratio < 0.25, 0.25 * step, ra))
    state[rows, 0] = np.minimum(ra, cont.upper.max())
    return (ra < settings.l1_tolerance) | ~(predicted > 1e-12 * va)


def _lm_step(cont: _Continuous, h: np.ndarray, u, value, damping, rows, settings: SearchSettings):
    """One damped Newton iteration for min ``F = sum r^2`` (updates in place, returns convergence).

    Step ``d = -(M + mu diag M)^-1 g`` with ``g = J^T r`` and ``M`` the exact Hessian of ``F / 2``
    (:meth:`_Continuous.newton_terms`) where it is positive definite, else the Gauss-Newton matrix
    ``J^T J`` (the residuals of learned filters are not small, so Gauss-Newton alone converges only
    linearly).  Bounds: a coordinate on a bound whose descent direction leaves the box is held fixed
    (the other one takes a 1-D Newton step); the step is scaled to at most 256 index units, then
    projected onto the bounds, or, where the projection spoils the model decrease, shortened to the
    bound along its direction.  Accepted when ``F`` decreases; ``mu`` (Levenberg-Marquardt) is
    divided by 3 when the decrease is at least 3/4 of the predicted ``-(2 g.d + d.M d)``, multiplied
    by 4 when below 1/4.  A row stops when its step is below ``l2_tolerance`` (index units) or
    ``mu > 1e10``.
    """
    ua, va, mu = u[rows], value[rows], damping[rows]
    g, gauss_newton, hessian = cont.newton_terms(h, ua)
    if cont.dim == 1:
        positive = hessian[:, 0, 0] > 0
    else:
        positive = (hessian[:, 0, 0] > 0) & (hessian[:, 0, 0] * hessian[:, 1, 1] - hessian[:, 0, 1] ** 2 > 0)
    matrix = np.where(positive[:, None, None], hessian, gauss_newton)
    # projected step: a coordinate on a bound whose descent direction leaves the box stays fixed
    fixed = ((ua <= 0.0) & (g > 0)) | ((ua >= cont.upper) & (g < 0))
    diagonal = np.diagonal(matrix, axis1=1, axis2=2) * (1.0 + mu[:, None]) + 1e-300
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(fixed, 0.0, -g / diagonal)  # one free coordinate: 1-D Newton step
        if cont.dim == 2:
            b11, b22, a12 = diagonal[:, 0], diagonal[:, 1], matrix[:, 0, 1]
            det = b11 * b22 - a12 * a12
            joint = np.stack(
                [(-b22 * g[:, 0] + a12 * g[:, 1]) / det, (a12 * g[:, 0] - b11 * g[:, 1]) / det], axis=1
            )
            delta = np.where(fixed.any(axis=1)[:, None], delta, joint)
    delta = np.nan_to_num(delta, nan=0.0, posinf=0.0, neginf=0.0)
    delta *= np.minimum(1.0, 256.0 / np.maximum(np.abs(delta).max(axis=1), 1e-300))[:, None]

    def decrease(d):  # of the quadratic model
        return -(2.0 * (g * d).sum(axis=1) + np.einsum("ni,nij,nj->n", d, matrix, d))

    # projection onto the bounds; if that spoils the model decrease, shorten the step to the bound
    projected = np.minimum(np.maximum(delta, -ua), cont.upper - ua)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(delta < 0, -ua / delta, np.where(delta > 0, (cont.upper - ua) / delta, np.inf))
    shortened = delta * np.minimum(1.0, room.min(axis=1))[:, None]
    predicted = decrease(projected)
    use_projected = predicted > 0
    delta = np.where(use_projected[:, None], projected, shortened)
    predicted = np.where(use_projected, predicted, decrease(shortened))
    trial = ua + delta
    trial_value = cont.value(h, trial, "l2")
    actual = va - trial_value
    accept = actual > 0
    u[rows] = np.where(accept[:, None], trial, ua)
    value[rows] = np.where(accept, trial_value, va)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(predicted > 0, actual / predicted, -1.0)
    mu = np.where(ratio > 0.75, mu / 3.0, np.where(ratio < 0.25, np.maximum(mu, 1e-3) * 4.0, mu))
    damping[rows] = mu
    small = np.abs(delta).max(axis=1) < settings.l2_tolerance
    return small | (mu > 1e10)


def _coarse_l1_starts(grid: _Grid, model: str, h: np.ndarray, mode: str, settings: SearchSettings):
    """Coarse-grid starts of the l1 search for filters ``h`` ``(n, k*k)``.

    l1 at every point of the coarse grid (``coarse_l1`` squared, or ``coarse_1d`` points) for all
    filters at once (``cdist`` against the shared templates; for id-lap with alpha profiled per filter
    and point by a weighted median).  Start 1 is the best point; start ``j + 1`` the best point
    outside the windows of ``+-l1_exclusion`` coarse cells around the earlier starts (another basin),
    repeating the best when there is none.  Returns fine-grid indices ``(n, l1_starts, 2)``
    (``(i_x, i_y)``, or ``(i, i)`` in 1-D).
    """
    n, kk = h.shape
    two_d = _is_2d(model, mode)
    points = settings.coarse_l1 if two_d else settings.coarse_1d
    axis = np.round(np.linspace(0, grid.size - 1, points)).astype(np.int64)
    if two_d:
        i1, i2 = (a.ravel() for a in np.meshgrid(axis, axis, indexing="ij"))
    else:
        i1 = i2 = axis
    count = max(1, settings.l1_starts)
    cell = np.arange(len(i1))
    cell_x, cell_y = (cell // points, cell % points) if two_d else (cell, np.zeros_like(cell))
    picks = np.empty((n, count), dtype=np.int64)
    templates = None if model == "id-lap" else grid.templates(model, i1, i2).reshape(len(i1), kk)
    for sl in _chunks(n, len(i1) * (kk * 3 if model == "id-lap" else 4), settings):
        if model == "id-lap":
            shape = (sl.stop - sl.start, len(i1))
            values = _evaluate(
                grid, model, h[sl], np.broadcast_to(i1, shape), np.broadcast_to(i2, shape), "l1"
            )[0]
        else:
            values = _pairwise_l1(h[sl], templates)
        values = _clean(values, np.inf)
        rows = np.arange(len(values))
        for j in range(count):
            best = values.argmin(axis=1)
            found = np.isfinite(values[rows, best])
            picks[sl, j] = np.where(found | (j == 0), best, picks[sl, 0])
            if j + 1 < count:  # exclude the window around this start
                near = (np.abs(cell_x - cell_x[best][:, None]) <= settings.l1_exclusion) & (
                    np.abs(cell_y - cell_y[best][:, None]) <= settings.l1_exclusion
                )
                values[near] = np.inf
    return np.stack([i1[picks], i2[picks]], axis=-1)


def _start_coordinates(grid: _Grid, cont: _Continuous, model: str, h: np.ndarray, index: np.ndarray,
                       criterion: str, settings: SearchSettings) -> np.ndarray:  # fmt: skip
    """Continuous coordinates ``(n, dim)`` of starts at fine-grid indices ``index`` ``(n, dim or 1)``;
    for id-lap the second coordinate is the alpha profiled (exactly, for ``criterion``) at the start's
    sigma."""
    if model != "id-lap":
        return index[:, : cont.dim].astype(np.float64)
    sigma_index = index[:, :1]
    alpha = np.concatenate(
        [
            _evaluate(grid, model, h[sl], sigma_index[sl], sigma_index[sl], criterion)[1][:, 0]
            for sl in _chunks(len(h), 3 * h.shape[1], settings)
        ]
    )
    w = np.log(np.clip(alpha, *ALPHA_BOUNDS) / ALPHA_BOUNDS[0]) / grid.log_step
    return np.stack([sigma_index[:, 0].astype(np.float64), w], axis=1)


def _finish(grid: _Grid, cont: _Continuous, model: str, h: np.ndarray, u: np.ndarray, criterion: str):
    """``(sigma_x, sigma_y, alpha, on_bound)`` from continuous coordinates ``u`` ``(n, dim)``.

    For id-lap, alpha is re-profiled exactly (for ``criterion``) at the final sigma with the exact
    template.  ``on_bound``: a scale within half a fine-grid step of a bound of sigma, or alpha on a
    bound of alpha."""
    n, kk = h.shape
    last = grid.size - 1
    scale_u = u[:, :2] if cont.kind == "separate" else u[:, :1]
    sigma = np.clip(SIGMA_BOUNDS[0] * np.exp(scale_u * grid.log_step), *SIGMA_BOUNDS)
    on_bound = ((scale_u <= 0.5) | (scale_u >= last - 0.5)).any(axis=1)
    sigma_x, sigma_y = sigma[:, 0], sigma[:, -1]
    alpha = np.full(n, np.nan)
    if model == "id-lap":
        lap = _templates_exact("lap", grid.k, sigma_x, None, None).reshape(n, kk)
        alpha = _idlap_alpha(grid.delta.reshape(kk) - h, lap, criterion)
        on_bound |= (alpha <= ALPHA_BOUNDS[0]) | (alpha >= ALPHA_BOUNDS[1])
    return sigma_x, sigma_y, alpha, on_bound


def _search_l2(grid: _Grid, model: str, h: np.ndarray, mode: str, settings: SearchSettings):
    """Minimise the l2 residual for filters ``h`` ``(n, k*k)``: coarse grid, then Levenberg-Marquardt.

    The coarse grid (``coarse_l2`` squared, or ``coarse_1d`` points; all filters at once, one matrix
    product) gives the start; :func:`_lm_step` refines it on continuous coordinates (the l2 objective
    is smooth, so Gauss-Newton converges in a few iterations).  Returns
    ``(sigma_x, sigma_y, alpha, on_bound, u)``, ``u`` the final coordinates (a start for l1).
    """
    cont = _Continuous(grid, model, mode)
    if len(h) == 0:
        empty = np.zeros(0)
        return empty, empty, empty, np.zeros(0, dtype=bool), np.zeros((0, cont.dim))
    i1, i2, _, _ = _coarse_search(grid, model, h, "l2", mode, settings)
    start = _start_coordinates(grid, cont, model, h, np.stack([i1, i2], axis=1), "l2", settings)
    u = np.empty_like(start)
    for sl in _chunks(len(h), h.shape[1], settings):
        u[sl], _ = _refine(cont, h[sl], start[sl], "l2", settings)
    return (*_finish(grid, cont, model, h, u, "l2"), u)


def _search_l1(grid: _Grid, model: str, h: np.ndarray, mode: str, settings: SearchSettings):
    """Minimise the l1 residual for filters ``h`` ``(n, k*k)``: coarse grid, then multi-start SLP.

    Starts from :func:`_coarse_l1_starts` (a start identical to an earlier one, or whose l1 exceeds
    the best start's by more than the fraction ``l1_start_gap``, is not refined); each is refined by
    :func:`_slp_step` iterations; the lowest l1 wins (the first start on ties).  The scales are
    continuous (not restricted to the fine grid).  Returns ``(sigma_x, sigma_y, alpha, on_bound)``
    (see :func:`_finish`).
    """
    n, kk = h.shape
    cont = _Continuous(grid, model, mode)
    if n == 0:
        empty = np.zeros(0)
        return empty, empty, empty, np.zeros(0, dtype=bool)
    index = _coarse_l1_starts(grid, model, h, mode, settings)
    starts = [
        _start_coordinates(grid, cont, model, h, index[:, j], "l1", settings) for j in range(index.shape[1])
    ]
    starts = np.stack(starts, axis=1)  # (n, S, dim)
    count = starts.shape[1]
    # a start equal to an earlier one of the same filter is not refined, nor one whose l1 exceeds the
    # lowest start's by more than the fraction `l1_start_gap` (not a competing basin)
    duplicate = np.zeros((n, count), dtype=bool)
    for j in range(1, count):
        for i in range(j):
            duplicate[:, j] |= (starts[:, j] == starts[:, i]).all(axis=1)
    if count > 1:
        start_value = _clean(
            np.stack([cont.value(h, starts[:, j], "l1") for j in range(count)], axis=1), np.inf
        )
        duplicate |= start_value > start_value.min(axis=1, keepdims=True) * (1.0 + settings.l1_start_gap)
    u = starts.reshape(n * count, cont.dim).copy()
    value = np.full(n * count, np.inf)
    flat_rows = np.flatnonzero(~duplicate.ravel())
    for sl in _chunks(len(flat_rows), kk, settings):
        rows = flat_rows[sl]
        u[rows], value[rows] = _refine(cont, h[rows // count], u[rows], "l1", settings)
    value = _clean(value.reshape(n, count), np.inf)
    best = value.argmin(axis=1)
    u = u.reshape(n, count, cont.dim)[np.arange(n), best]
    return _finish(grid, cont, model, h, u, "l1")


# --------------------------------------------------------------------------------------------------
# type selection
# --------------------------------------------------------------------------------------------------
def _centred_unit(kernels: np.ndarray):
    flat = kernels.reshape(len(kernels), -1)
    degenerate = _basic_degenerate(kernels)
    centred = np.where(degenerate[:, None], 0.0, np.nan_to_num(flat))
    centred = centred - centred.mean(axis=1, keepdims=True)
    norm = np.sqrt((centred * centred).sum(axis=1))
    degenerate |= ~(norm > 0)
    centred = centred / np.where(degenerate, 1.0, norm)[:, None]
    return centred, degenerate


def select_types(kernels: np.ndarray, candidates=MODEL_NAMES, refine_top: int = 2,
                 settings: SearchSettings = DEFAULT_SETTINGS):  # fmt: skip
    """Automatic model type of each kernel ``(N, k, k)``.

    The type whose template at its best scales has the largest ``|cosine|`` with the centred
    kernel (equivalently the smallest residual of a free fit ``a t + b``); see module docstring.
    Returns ``(types, abs_cosine)``: a list of ``N`` names (``None`` for degenerate kernels) and
    an array of ``N`` values in [0, 1] (NaN for degenerate kernels).
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    candidates = [check_model(c) for c in candidates]
    n, k = len(kernels), kernels.shape[-1]
    grid = _grid(k, settings.fine_points)
    h, degenerate = _centred_unit(kernels)
    good = np.flatnonzero(~degenerate)
    hg = h[good]
    # coarse score of every candidate type
    scores = np.full((len(good), len(candidates)), np.inf)
    coarse = {}
    for column, model in enumerate(candidates):
        if len(hg) == 0:
            break
        i1, i2, spacing, scores[:, column] = _coarse_search(grid, model, hg, "cos", "separate", settings)
        coarse[model] = (i1, i2, spacing)
    # zoom-refine the best few types per filter, starting from their coarse optimum
    top = np.argsort(scores, axis=1)[:, : max(1, refine_top)]
    for column, model in enumerate(candidates):
        rows = np.flatnonzero((top == column).any(axis=1))
        if len(rows):
            i1, i2, spacing = coarse[model]
            _, _, value, _ = _zoom(grid, model, hg[rows], i1[rows], i2[rows], "cos", "separate", spacing,
                                   settings)  # fmt: skip
            scores[rows, column] = np.minimum(scores[rows, column], value)
    types: list = [None] * n
    abs_cosine = np.full(n, np.nan)
    if len(good):
        best = scores.argmin(axis=1)
        names = np.array(candidates, dtype=object)[best]
        for index, name in zip(good.tolist(), names.tolist(), strict=True):
            types[index] = name
        abs_cosine[good] = np.sqrt(np.clip(-scores[np.arange(len(good)), best], 0.0, 1.0))
    return types, abs_cosine


# --------------------------------------------------------------------------------------------------
# per-filter fits
# --------------------------------------------------------------------------------------------------
def residuals(templates: np.ndarray, normalised: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``l1 = sum |t - h_n|`` and ``l2 = sqrt(sum (t - h_n)^2)`` over the last two axes."""
    difference = templates - normalised
    return np.abs(difference).sum(axis=(-2, -1)), np.sqrt((difference * difference).sum(axis=(-2, -1)))


def _templates_exact(model: str, k: int, sigma_x, sigma_y, alpha) -> np.ndarray:
    if model in ("lap", "id-lap"):
        sigma_y = None
    return model_templates(model, k, sigma_x, sigma_y, alpha=alpha if model == "id-lap" else None)


def _variance_method(method: str, model: str, h_n: np.ndarray, grid: _Grid):
    """Methods A and B for non-id-lap types: returns ``(sigma_x, sigma_y, on_bound)``."""
    k = grid.k
    _, variance = spread_moments(np.abs(h_n) * np.abs(reference_template(model, k)))
    v_xx, v_yy = variance[:, 0, 0], variance[:, 1, 1]
    lo, hi = SIGMA_BOUNDS
    if method == "A":
        if model == "lap":
            sigma_x = sigma_y = np.sqrt(v_xx + v_yy)
        else:
            order_x, order_y = DERIVATIVE_ORDER[model]
            sigma_x = np.sqrt(v_xx / _KAPPA[order_x])
            sigma_y = np.sqrt(v_yy / _KAPPA[order_y])
        on_bound = (sigma_x <= lo) | (sigma_x >= hi) | (sigma_y <= lo) | (sigma_y >= hi)
        return sigma_x, sigma_y, on_bound
    phi_x, phi_y = grid.variance_relation(model)
    targets = (0.5 * (v_xx + v_yy), 0.5 * (v_xx + v_yy)) if model == "lap" else (v_xx, v_yy)
    log_sigma = np.log(grid.sigma)
    out, on_bound = [], np.zeros(len(h_n), dtype=bool)
    for phi, target in zip((phi_x, phi_y), targets, strict=True):
        # invert the increasing branch up to the maximum of phi (phi is monotone for k = 7; for larger k
        # the second-difference relation turns down beyond sigma ~ 1.7)
        top = int(np.argmax(phi)) + 1
        branch = np.maximum.accumulate(phi[:top])
        value = np.exp(np.interp(target, branch, log_sigma[:top]))
        on_bound |= (target <= branch[0]) | (target >= branch[-1]) | ~np.isfinite(target)
        out.append(value)
    return out[0], out[1], on_bound


def _fit_model(model: str, h_n: np.ndarray, methods, grid: _Grid, settings: SearchSettings):
    """All ``methods`` for filters of one type.

    Returns a dict method -> ``(sigma_x, sigma_y, alpha, on_bound)``.
    """
    flat = h_n.reshape(len(h_n), grid.k * grid.k)
    results = {}
    cache = {}

    def search(criterion, mode):
        if model not in AXIS_OPERATORS:
            mode = "same"
        if (criterion, mode) not in cache:  # continuous scales; the l2 optimum is one of the l1 starts
            if criterion == "l1":
                cache[criterion, mode] = (*_search_l1(grid, model, flat, mode, settings), None)
            else:
                sx, sy, alpha, bound, u = _search_l2(grid, model, flat, mode, settings)
                cache[criterion, mode] = (sx, sy, alpha, bound, u)
        return cache[criterion, mode]

    for method in methods:
        if method in ("A", "B"):
            if model == "id-lap":
                results[method] = search("l2", "same")[:4]
            else:
                sx, sy, bound = _variance_method(method, model, h_n, grid)
                results[method] = (sx, sy, np.full(len(h_n), np.nan), bound)
        elif method in ("C1", "C2", "D1", "D2"):
            criterion = "l1" if method[0] == "C" else "l2"
            results[method] = search(criterion, "separate" if method[1] == "1" else "same")[:4]
        else:
            raise ValueError(f"unknown fitting method {method!r}; choose from {METHODS}")
    return results


def _as_type_array(types, n: int) -> np.ndarray:
    types = np.array([None] * n if types is None else list(types), dtype=object)
    if len(types) != n:
        raise ValueError(f"got {len(types)} types for {n} kernels")
    for name in set(types.tolist()) - {None}:
        check_model(name)
    return types


def fit_filters(kernels: np.ndarray, types=None, methods=METHODS,
                settings: SearchSettings = DEFAULT_SETTINGS) -> pd.DataFrame:  # fmt: skip
    """Fit every kernel ``(N, k, k)`` with every method (see module docstring).

    ``types``: ``N`` model names (``None`` entries are selected automatically), or ``None`` to
    select all automatically with :func:`select_types`.  Returns a long DataFrame, one row per
    (filter, method), filter-major: ``filter`` (0-based index), ``type``, ``method``, ``sigma_x``,
    ``sigma_y``, ``alpha`` (NaN except id-lap), ``l1``, ``l2``, ``rel_l2`` (``l2 / ||h_n||``),
    ``on_bound``, ``degenerate``.  Degenerate kernels get NaN numbers and ``degenerate=True``.
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2]:
        raise ValueError(f"kernels must have shape (N, k, k), got {kernels.shape}")
    methods = list(methods)
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown fitting method {method!r}; choose from {METHODS}")
    n, k = len(kernels), kernels.shape[-1]
    type_array = _as_type_array(types, n)
    missing = np.flatnonzero(pd.isna(type_array))
    if len(missing):
        selected, _ = select_types(kernels[missing], settings=settings)
        type_array[missing] = np.array(selected, dtype=object)
    grid = _grid(k, settings.fine_points)
    shape = (n, len(methods))
    columns = {name: np.full(shape, np.nan) for name in ("sigma_x", "sigma_y", "alpha", "l1", "l2", "rel_l2")}
    on_bound = np.zeros(shape, dtype=bool)
    degenerate = np.ones(n, dtype=bool)
    for model in MODEL_NAMES:
        rows = np.flatnonzero(type_array == model)
        if len(rows) == 0:
            continue
        h_n, bad, _ = normalise_for_fitting(kernels[rows], model, settings)
        degenerate[rows] = bad
        rows, h_n = rows[~bad], h_n[~bad]
        if len(rows) == 0:
            continue
        norm = np.sqrt((h_n * h_n).sum(axis=(1, 2)))
        fits = _fit_model(model, h_n, methods, grid, settings)
        for method, (sx, sy, alpha, bound) in fits.items():
            l1 = np.empty(len(rows))
            l2 = np.empty(len(rows))
            for sl in _chunks(len(rows), 4 * k * k, settings):  # exact templates at the fitted scales
                template = _templates_exact(model, k, sx[sl], sy[sl], alpha[sl])
                l1[sl], l2[sl] = residuals(template, h_n[sl])
            column = methods.index(method)
            for name, values in (("sigma_x", sx), ("sigma_y", sy), ("alpha", alpha), ("l1", l1), ("l2", l2),
                                 ("rel_l2", l2 / norm)):  # fmt: skip
                columns[name][rows, column] = values
            on_bound[rows, column] = bound
    frame = pd.DataFrame(
        {
            "filter": np.repeat(np.arange(n), len(methods)),
            "type": np.repeat(type_array, len(methods)),
            "method": np.tile(np.array(methods, dtype=object), n),
            **{name: values.ravel() for name, values in columns.items()},
            "on_bound": on_bound.ravel(),
            "degenerate": np.repeat(degenerate, len(methods)),
        }
    )
    return frame[_FIT_COLUMNS]


# --------------------------------------------------------------------------------------------------
# joint (pooled) fits
# --------------------------------------------------------------------------------------------------
def _group_membership(groups, n: int):
    """``(group_labels, member_group, member_filter)`` from a dict or a sequence of index lists."""
    items = list(groups.items()) if isinstance(groups, dict) else list(enumerate(groups))
    labels, member_group, member_filter = [], [], []
    for position, (label, indices) in enumerate(items):
        indices = np.asarray(list(indices), dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"group {label!r} has filter indices outside 0..{n - 1}")
        labels.append(label)
        member_group.append(np.full(len(indices), position))
        member_filter.append(indices)
    if not labels:
        return [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return labels, np.concatenate(member_group), np.concatenate(member_filter)


def fit_joint(
    kernels: np.ndarray,
    types,
    groups,
    methods=JOINT_METHODS,
    settings: SearchSettings = DEFAULT_SETTINGS,
    per_filter: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Pooled fits: one scale ``sigma_joint`` (``sigma_x = sigma_y``) per group of filters.

    ``types``: ``N`` model names or ``None`` (automatic); ``groups``: a sequence of index lists
    (0-based) or a dict ``label -> indices``; ``methods`` from :data:`JOINT_METHODS`.
    ``per_filter`` may pass an existing :func:`fit_filters` result (needed for A-/B-joint; computed
    if missing).  Returns one row per (group, member, method): ``group``, ``filter``, ``type``,
    ``method``, ``sigma_x``, ``sigma_y``, ``alpha``, ``l1``, ``l2``, ``rel_l2``, ``on_bound``,
    ``degenerate``; ``l1``/``l2`` are each member's residuals at ``sigma_joint``.  ``on_bound``
    flags a joint optimum on a search bound (A-/B-joint: ``sigma_joint`` outside the bounds, or any
    member's own fit on a bound).  Degenerate members are ignored in the pooling.
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    n, k = len(kernels), kernels.shape[-1]
    methods = list(methods)
    for method in methods:
        if method not in JOINT_METHODS:
            raise ValueError(f"unknown joint method {method!r}; choose from {JOINT_METHODS}")
    type_array = _as_type_array(types, n)
    missing = np.flatnonzero(pd.isna(type_array))
    if len(missing):
        selected, _ = select_types(kernels[missing], settings=settings)
        type_array[missing] = np.array(selected, dtype=object)
    labels, member_group, member_filter = _group_membership(groups, n)
    n_groups, n_members = len(labels), len(member_filter)
    grid = _grid(k, settings.fine_points)
    kk = k * k

    # normalised members (each for its own type)
    member_type = type_array[member_filter]
    h_n = np.full((n_members, k, k), np.nan)
    bad = np.ones(n_members, dtype=bool)
    for model in MODEL_NAMES:
        rows = np.flatnonzero(member_type == model)
        if len(rows):
            h_n[rows], bad[rows], _ = normalise_for_fitting(kernels[member_filter[rows]], model, settings)
    flat = np.nan_to_num(h_n.reshape(n_members, kk))

    def member_values(index: np.ndarray, criterion: str):
        """Criterion and alpha of every member at its group's candidate indices ``(n_members, m)``."""
        value = np.zeros(index.shape)
        alpha = np.full(index.shape, np.nan)
        for model in MODEL_NAMES:
            rows = np.flatnonzero((member_type == model) & ~bad)
            for sl in _chunks(len(rows), index.shape[1] * kk * 3, settings):
                r = rows[sl]
                value[r], alpha[r] = _evaluate(grid, model, flat[r], index[r], index[r], criterion)
        return value, alpha

    def pooled(value: np.ndarray) -> np.ndarray:
        total = np.zeros((n_groups, value.shape[1]))
        np.add.at(total, member_group[~bad], value[~bad])
        return total

    sigma_joint = {}
    bound_joint = {}
    need_variance = [m for m in methods if m in ("A-joint", "B-joint")]
    if need_variance and per_filter is None:
        variance_methods = [m[0] for m in need_variance]
        per_filter = fit_filters(kernels, type_array, methods=variance_methods, settings=settings)
    for method in methods:
        if method in ("A-joint", "B-joint"):
            table = per_filter[per_filter["method"] == method[0]].set_index("filter")
            product = table["sigma_x"].to_numpy() * table["sigma_y"].to_numpy()
            own = product[member_filter]
            own_bound = table["on_bound"].to_numpy()[member_filter]
            usable = ~bad & np.isfinite(own) & (own > 0)
            log_sum = np.zeros(n_groups)
            count = np.zeros(n_groups)
            any_bound = np.zeros(n_groups, dtype=bool)
            np.add.at(log_sum, member_group[usable], np.log(own[usable]))
            np.add.at(count, member_group[usable], 1.0)
            np.logical_or.at(any_bound, member_group[usable], own_bound[usable])
            with np.errstate(invalid="ignore", divide="ignore"):
                sigma = np.sqrt(np.exp(log_sum / count))
            sigma_joint[method] = sigma
            bound_joint[method] = any_bound | (sigma <= SIGMA_BOUNDS[0]) | (sigma >= SIGMA_BOUNDS[1])
        else:
            criterion = "l1" if method == "C-joint" else "l2"
            axis = np.round(np.linspace(0, grid.size - 1, settings.coarse_1d)).astype(int)
            value, _ = member_values(np.broadcast_to(axis, (n_members, len(axis))), criterion)
            best = axis[pooled(value).argmin(axis=1)] if n_groups else np.zeros(0, dtype=int)
            # compass search per group (same rule as _zoom), all groups at once
            step = np.full(n_groups, max(1, ((grid.size - 1) // (settings.coarse_1d - 1)) // 2))
            done = np.zeros(n_groups, dtype=bool)
            for _ in range(settings.max_iterations):
                if done.all():
                    break
                candidates = np.clip(best[:, None] + step[:, None] * np.array([0, -1, 1]), 0, grid.size - 1)
                value, _ = member_values(candidates[member_group], criterion)
                j = pooled(value).argmin(axis=1)
                j[done] = 0
                done |= (j == 0) & (step == 1)
                step = np.where(j == 0, np.maximum(step // 2, 1), step)
                best = candidates[np.arange(n_groups), j]
            sigma_joint[method] = grid.sigma[best]
            bound_joint[method] = (best == 0) | (best == grid.size - 1)

    frames = []
    for method in methods:
        sigma = sigma_joint[method][member_group]
        alpha = np.full(n_members, np.nan)
        l1 = np.full(n_members, np.nan)
        l2 = np.full(n_members, np.nan)
        criterion = "l1" if method == "C-joint" else "l2"
        for model in MODEL_NAMES:
            rows = np.flatnonzero((member_type == model) & ~bad & np.isfinite(sigma))
            if not len(rows):
                continue
            if model == "id-lap":
                lap = _templates_exact("lap", k, sigma[rows], None, None).reshape(len(rows), kk)
                residual = grid.delta.reshape(kk) - flat[rows]
                alpha[rows] = _idlap_alpha(residual, lap, criterion)
            template = _templates_exact(model, k, sigma[rows], sigma[rows], alpha[rows])
            l1[rows], l2[rows] = residuals(template, h_n[rows])
        norm = np.sqrt(np.nansum(h_n * h_n, axis=(1, 2)))
        frames.append(
            pd.DataFrame(
                {
                    "group": np.array(labels, dtype=object)[member_group] if n_members else [],
                    "filter": member_filter,
                    "type": member_type,
                    "method": method,
                    "sigma_x": np.where(bad, np.nan, sigma),
                    "sigma_y": np.where(bad, np.nan, sigma),
                    "alpha": alpha,
                    "l1": l1,
                    "l2": l2,
                    "rel_l2": l2 / np.where(bad, np.nan, norm),
                    "on_bound": bound_joint[method][member_group] & ~bad,
                    "degenerate": bad,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["group"] + _FIT_COLUMNS)
    return pd.concat(frames, ignore_index=True)
