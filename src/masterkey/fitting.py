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
* ``lap`` has a single scale (C1 = C2, D1 = D2).  ``id-lap`` is fitted in ``(sigma, alpha)``:
  ``alpha`` is profiled out exactly for every sigma (l2: clipped least squares
  ``alpha = <delta - h_n, L> / ||L||^2``; l1: clipped weighted median of ``(delta - h_n)/L`` with
  weights ``|L|``; ``L = lap5 T``), so C1 = C2 is the l1 fit and D1 = D2 the l2 fit; the
  variance methods A, B report the l2 fit.

Search: ``sigma`` on a fine log grid of 4097 points over ``[0.01, 3]`` (relative step 0.14 %).
A coarse sub-grid (33 x 33 for l2, 17 x 17 for l1 and cosine, 65 points in 1-D) is evaluated for
all filters at once (l2 and cosine by one matrix product, l1 by ``cdist``), then a zoom refines
each filter on the fine grid (3 x 3 or 3-point neighbourhoods, step halving from half the coarse
spacing; a compass search whose per-filter step halves only when no neighbour is better; for the
l1 searches restart once from step 16 after converging, in 2-D with a 32-direction stencil, all
primitive moves up to radius 3, for the narrow kinked valleys of l1).  The l1
searches also try the l2 optimum as a starting point (kinks and curved valleys of the l1 objective
can trap a pattern search started far away).  ``alpha`` is continuous in ``[0.05, 2]``.
``on_bound`` is set when an optimum sits on a bound of sigma or alpha.

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
    caps the pattern-search iterations of the refinement.
    ``chunk_elements`` bounds the size (in float64 numbers) of the largest temporary array.
    """

    fine_points: int = 4097
    coarse_l2: int = 33
    coarse_l1: int = 17
    coarse_cos: int = 17
    coarse_1d: int = 65
    max_iterations: int = 60
    chunk_elements: int = 4_000_000


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
        self._phi: dict = {}

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


def _sqrt_det_spread(kernels: np.ndarray, constants: np.ndarray) -> np.ndarray:
    """``sqrt(det V(|h - C|))`` for kernels ``(n, k, k)`` and constants ``(n, m)`` -> ``(n, m)``."""
    _, v = spread_moments(np.abs(kernels[:, None] - constants[:, :, None, None]))
    det = v[..., 0, 0] * v[..., 1, 1] - v[..., 0, 1] ** 2
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


def _evaluate(grid: _Grid, model: str, h: np.ndarray, i1: np.ndarray, i2: np.ndarray, criterion: str):
    """Criterion for filters ``h`` ``(n, k*k)`` at candidates ``(n, m)``; returns ``(value, alpha)``.

    ``criterion``: ``'l1'`` (sum |t - h|), ``'l2'`` (sum (t - h)^2) or ``'cos'`` (minus the squared
    cosine between centred template and ``h``, which must be centred with unit norm).  l2 and cos
    use bilinear forms of the separable factors; l1 builds the templates.  ``alpha`` is NaN except
    for id-lap (profiled out exactly).  NaN criteria (degenerate templates) become ``+inf``.
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
    square = h.reshape(n, grid.k, grid.k)
    inner = grid.inner(model, square, i1, i2)
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
        for sl in _chunks(n, len(c1) * kk * 3, settings):
            shape = (sl.stop - sl.start, len(c1))
            value, _ = _evaluate(grid, model, h[sl], np.broadcast_to(c1, shape), np.broadcast_to(c2, shape),
                                 criterion)  # fmt: skip
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
            value = sq_norm[None, :] - 2.0 * (block @ templates.T)
        else:
            value = -np.abs(block @ templates.T)
        best[sl] = value.argmin(axis=1)
        best_value[sl] = value[rows_all[: len(value)], best[sl]]
    if criterion == "l2":
        best_value = np.maximum(best_value + (h * h).sum(-1), 0.0)
    elif criterion == "cos":
        best_value = -(best_value**2)
    return c1[best], c2[best], spacing, best_value


_L1_STENCIL = np.array(
    [(0, 0)] + [(a, b) for a in range(-3, 4) for b in range(-3, 4) if (a, b) != (0, 0) and np.gcd(a, b) == 1]
)  # 32 primitive directions up to radius 3 (compass, knight and (1, 3), (2, 3) moves)


def _zoom(grid, model, h, i1, i2, criterion, mode, start_step, settings):
    """Refine indices on the fine grid by a vectorised compass (pattern) search.

    Each filter has its own step, starting at half the coarse spacing.  Every iteration evaluates
    the 3 x 3 (2-D) or 3-point (1-D) neighbourhood at the filter's step around its current best
    (centre first, so ties keep it): if the centre is best the step halves (a filter whose unit
    step keeps the centre is done), otherwise the filter moves and keeps its step, so it can follow
    curved valleys.  At most ``settings.max_iterations`` iterations.
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
    rich_phase = two_d and criterion == "l1"  # after the first convergence: 32-direction stencil
    restarts = np.full(n, 1 if criterion == "l1" else 0)
    per_item = (len(_L1_STENCIL) if rich_phase else 9 if two_d else 3) * kk * 4

    def move(rows, rich):
        """Best neighbour of each row: ``(new_i1, new_i2, value, alpha, centre_is_best)``."""
        local = np.arange(len(rows))
        if rich:
            c1 = np.clip(i1[rows, None] + step[rows, None] * _L1_STENCIL[:, 0], 0, last)
            c2 = np.clip(i2[rows, None] + step[rows, None] * _L1_STENCIL[:, 1], 0, last)
            v, a = _evaluate(grid, model, h[rows], c1, c2, criterion)
            j = v.argmin(axis=1)
            return c1[local, j], c2[local, j], v[local, j], a[local, j], j == 0
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
            chunk = active[sl]
            rich = rich_phase & (restarts[chunk] == 0)
            for rows, use_rich in ((chunk[~rich], False), (chunk[rich], True)):
                if len(rows) == 0:
                    continue
                new1, new2, v, a, stay = move(rows, use_rich)
                converged = stay & (step[rows] == 1)
                restart = converged & (restarts[rows] > 0)  # l1: re-expand once (kinked valleys)
                restarts[rows] -= restart
                done[rows] = converged & ~restart
                step[rows] = np.where(restart, 16, np.where(stay, np.maximum(step[rows] // 2, 1), step[rows]))
                i1[rows], i2[rows], value[rows], alpha[rows] = new1, new2, v, a
        active = active[~done[active]]
        if len(active) == 0:
            break
    return i1, i2, value, alpha


def _search(grid, model, h, criterion, mode, settings, hint=None):
    """Coarse grid + zoom for filters ``h`` ``(n, k*k)``.

    ``hint``: optional per-filter start indices ``(i1, i2)`` (the l2 optimum for an l1 search);
    where the criterion is lower there than at the best coarse point, the zoom starts from the hint
    with a small step (the l1 objective has kinks and curved valleys where a pattern search started
    far away can stall).  Returns ``(sigma_x, sigma_y, alpha, value, on_bound, (i1, i2))``.
    """
    n = len(h)
    if n == 0:
        empty = np.zeros(0)
        none = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, np.zeros(0, dtype=bool), (none, none)
    i1, i2, spacing, value = _coarse_search(grid, model, h, criterion, mode, settings)
    start_step = np.full(n, spacing)
    if hint is not None:
        hint1, hint2 = hint[0][:, None], (hint[1] if _is_2d(model, mode) else hint[0])[:, None]
        hint_value = np.concatenate(
            [_evaluate(grid, model, h[sl], hint1[sl], hint2[sl], criterion)[0][:, 0]
             for sl in _chunks(n, 4 * h.shape[1], settings)]
        )  # fmt: skip
        use = hint_value < value
        i1, i2 = np.where(use, hint1[:, 0], i1), np.where(use, hint2[:, 0], i2)
        start_step = np.where(use, 32, start_step)
    i1, i2, value, alpha = _zoom(grid, model, h, i1, i2, criterion, mode, start_step, settings)
    last = grid.size - 1
    on_bound = (i1 == 0) | (i1 == last)
    if _is_2d(model, mode):
        on_bound |= (i2 == 0) | (i2 == last)
    if model == "id-lap" and criterion != "cos":
        on_bound |= (alpha <= ALPHA_BOUNDS[0]) | (alpha >= ALPHA_BOUNDS[1])
    if model not in AXIS_OPERATORS:
        i2 = i1
    return grid.sigma[i1], grid.sigma[i2], alpha, value, on_bound, (i1, i2)


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

    Returns a dict method -> ``(sigma_x, sigma_y, alpha, on_bound, indices)``; ``indices`` are the
    fine-grid indices ``(i1, i2)`` of searched fits, ``None`` for closed-form (A, B) ones.
    """
    flat = h_n.reshape(len(h_n), grid.k * grid.k)
    results = {}
    cache = {}

    def search(criterion, mode):
        if model not in AXIS_OPERATORS:
            mode = "same"
        if (criterion, mode) not in cache:
            hint = search("l2", mode)[4] if criterion == "l1" else None  # l1 starts from the l2 fit too
            sx, sy, alpha, _, bound, indices = _search(grid, model, flat, criterion, mode, settings, hint)
            cache[criterion, mode] = (sx, sy, alpha, bound, indices)
        return cache[criterion, mode]

    for method in methods:
        if method in ("A", "B"):
            if model == "id-lap":
                results[method] = search("l2", "same")
            else:
                sx, sy, bound = _variance_method(method, model, h_n, grid)
                results[method] = (sx, sy, np.full(len(h_n), np.nan), bound, None)
        elif method in ("C1", "C2", "D1", "D2"):
            criterion = "l1" if method[0] == "C" else "l2"
            results[method] = search(criterion, "separate" if method[1] == "1" else "same")
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
        for method, (sx, sy, alpha, bound, indices) in fits.items():
            l1 = np.empty(len(rows))
            l2 = np.empty(len(rows))
            for sl in _chunks(len(rows), 4 * k * k, settings):
                if indices is None:  # closed-form scales: exact templates
                    template = _templates_exact(model, k, sx[sl], sy[sl], alpha[sl])
                else:  # grid nodes: tabulated (exact at the nodes)
                    template = grid.templates(model, indices[0][sl], indices[1][sl])
                    if model == "id-lap":
                        template = grid.delta - alpha[sl, None, None] * template
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
