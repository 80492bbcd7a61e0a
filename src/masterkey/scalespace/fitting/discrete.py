"""Criteria and searches on the fine grid of templates (docs/methods.md section 3).

The coarse searches of every method and the compass search of the type selection and of the joint fits
run on :class:`~.grid.TemplateGrid` indices; the continuous refinement is in :mod:`.continuous`.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.spatial.distance import cdist

from ..templates import AXIS_OPERATORS
from .grid import TemplateGrid
from .settings import ALPHA_BOUNDS, SearchSettings, chunks, clean

__all__ = [
    "weighted_median",
    "idlap_alpha",
    "idlap_cosine",
    "evaluate_criterion",
    "evaluate_product",
    "pairwise_l1",
    "is_2d",
    "coarse_search",
    "zoom",
]

def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Minimiser of ``sum_i w_i |v_i - a|`` along the last axis."""
    order = np.argsort(values, axis=-1)
    v = np.take_along_axis(values, order, -1)
    w = np.take_along_axis(weights, order, -1)
    cumulative = np.cumsum(w, axis=-1)
    index = np.argmax(cumulative >= 0.5 * cumulative[..., -1:], axis=-1)
    return np.take_along_axis(v, index[..., None], -1)[..., 0]


def idlap_alpha(residual: np.ndarray, lap: np.ndarray, criterion: str) -> np.ndarray:
    """Optimal clipped ``alpha`` for ``min || residual - alpha L ||`` (flattened last axis)."""
    lo, hi = ALPHA_BOUNDS
    if criterion == "l2":
        with np.errstate(invalid="ignore", divide="ignore"):
            alpha = (residual * lap).sum(-1) / (lap * lap).sum(-1)
    else:  # l1: weighted median of residual / L with weights |L|
        weights = np.abs(lap)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(weights > 0, residual / np.where(weights > 0, lap, 1.0), 0.0)
        alpha = weighted_median(ratio, weights)
    return np.clip(clean(alpha, lo), lo, hi)


def idlap_cosine(p, q, lap_sq_norm, lap_centre, kk):
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
    stationary = np.clip(clean(stationary, lo), lo, hi)
    best_value = np.full(np.shape(q), -np.inf)
    best_alpha = np.full(np.shape(q), lo)
    for alpha in (lo, hi, stationary):
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (p - alpha * q) ** 2 / (a_norm - 2 * alpha * lap_centre + alpha**2 * lap_sq_norm)
        value = clean(value, -np.inf)
        better = value > best_value
        best_value = np.where(better, value, best_value)
        best_alpha = np.where(better, alpha, best_alpha)
    return best_value, best_alpha


def evaluate_criterion(grid: TemplateGrid, type_name: str, h: np.ndarray, i1: np.ndarray, i2: np.ndarray,
                       criterion: str,
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
        templates = grid.templates(type_name, i1, i2).reshape(i1.shape + (kk,))
        target = h[:, None, :]
        if type_name == "id-lap":
            residual = grid.delta.reshape(kk) - target
            alpha = idlap_alpha(residual, templates, "l1")
            difference = residual - alpha[..., None] * templates
        else:
            difference = templates - target
        return np.abs(difference).sum(-1), alpha
    if inner is None:
        inner = grid.inner(type_name, h.reshape(n, grid.k, grid.k), i1, i2)
    sq_norm, total = grid.norms(type_name, i1, i2)
    h_sq = (h * h).sum(-1)[:, None]
    if type_name == "id-lap":
        centre = h[:, grid.c * grid.k + grid.c][:, None]
        lap_centre = grid.lap_centre[i1]
        if criterion == "cos":
            value, alpha = idlap_cosine(centre, inner, sq_norm, lap_centre, kk)
            return -value, alpha
        # residual r = delta - h: <r, L> = L[centre] - <h, L>, ||r||^2 = 1 - 2 h[centre] + ||h||^2
        r_dot = lap_centre - inner
        with np.errstate(invalid="ignore", divide="ignore"):
            alpha = np.clip(clean(r_dot / sq_norm, ALPHA_BOUNDS[0]), *ALPHA_BOUNDS)
        value = 1.0 - 2.0 * centre + h_sq - 2.0 * alpha * r_dot + alpha**2 * sq_norm
        return np.maximum(value, 0.0), alpha
    if criterion == "cos":
        with np.errstate(invalid="ignore", divide="ignore"):
            value = inner**2 / (sq_norm - total**2 / kk)
        return -clean(value, 0.0), alpha
    return np.maximum(sq_norm - 2.0 * inner + h_sq, 0.0), alpha


def evaluate_product(grid: TemplateGrid, type_name: str, h: np.ndarray, ix: np.ndarray, iy: np.ndarray,
                     criterion: str):  # fmt: skip
    """Like :func:`evaluate_criterion` for a separable type on the product of per-filter candidate sets.

    ``ix`` ``(n, a)`` (sigma_x indices) and ``iy`` ``(n, b)`` (sigma_y indices); returns values of
    shape ``(n, a * b)``, x-major (entry ``u * b + v`` is ``(ix[:, u], iy[:, v])``).
    """
    n, kk = h.shape
    op_x, op_y = AXIS_OPERATORS[type_name]
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
        return clean(value, np.inf).reshape(n, -1)
    h_sq = (h * h).sum(-1)[:, None, None]
    return np.maximum(sq_norm - 2.0 * inner + h_sq, 0.0).reshape(n, -1)


def pairwise_l1(h: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """All l1 distances ``(n, m)``: ``torch.cdist`` for large blocks (about 2x faster on CPU, but
    importing torch costs seconds), else ``scipy.spatial.distance.cdist``."""
    if h.shape[0] * templates.shape[0] >= 2_000_000 or "torch" in sys.modules:
        try:
            import torch

            return torch.cdist(torch.from_numpy(h), torch.from_numpy(templates), p=1).numpy()
        except ImportError:  # pragma: no cover - torch is a project dependency
            pass
    return cdist(h, templates, metric="cityblock")


def is_2d(type_name: str, mode: str) -> bool:
    return type_name in AXIS_OPERATORS and mode == "separate"


def _coarse_candidates(grid: TemplateGrid, type_name: str, mode: str, criterion: str,
                       settings: SearchSettings):  # fmt: skip
    if is_2d(type_name, mode):
        points = {"l2": settings.coarse_l2, "l1": settings.coarse_l1, "cos": settings.coarse_cos}[criterion]
        axis = np.round(np.linspace(0, grid.size - 1, points)).astype(int)
        i1, i2 = np.meshgrid(axis, axis, indexing="ij")
        return i1.ravel(), i2.ravel(), (grid.size - 1) // (points - 1)
    axis = np.round(np.linspace(0, grid.size - 1, settings.coarse_1d)).astype(int)
    return axis, axis.copy(), (grid.size - 1) // (settings.coarse_1d - 1)


def coarse_search(grid, type_name, h, criterion, mode, settings):
    """Best coarse-grid candidate for every filter: ``(i1, i2, spacing, value)``.

    ``value`` is the criterion at the best candidate (convention of :func:`evaluate_criterion`).
    """
    c1, c2, spacing = _coarse_candidates(grid, type_name, mode, criterion, settings)
    n, kk = h.shape
    best = np.zeros(n, dtype=np.int64)
    best_value = np.full(n, np.inf)
    rows_all = np.arange(n)
    if type_name == "id-lap":  # alpha is profiled per filter: evaluate candidates directly
        lap = grid.lap.reshape(grid.size, kk)[c1]
        for sl in chunks(n, len(c1) * (kk * 3 if criterion == "l1" else 8), settings):
            shape = (sl.stop - sl.start, len(c1))
            inner = None if criterion == "l1" else h[sl] @ lap.T  # <h, L>: one matrix product
            value, _ = evaluate_criterion(grid, type_name, h[sl], np.broadcast_to(c1, shape),
                                          np.broadcast_to(c2, shape),
                                 criterion, inner)  # fmt: skip
            value = clean(value, np.inf)
            best[sl] = value.argmin(axis=1)
            best_value[sl] = value[rows_all[: len(value)], best[sl]]
        return c1[best], c2[best], spacing, best_value
    templates = grid.templates(type_name, c1, c2).reshape(len(c1), kk)
    if criterion == "cos":
        templates = templates - templates.mean(-1, keepdims=True)
        norm = np.sqrt((templates * templates).sum(-1))
        templates = templates / np.where(norm > 0, norm, np.inf)[:, None]
    sq_norm = (templates * templates).sum(-1)
    per_item = len(c1) * (kk if criterion == "l1" else 2)
    for sl in chunks(n, per_item, settings):
        block = h[sl]
        if criterion == "l1":
            value = pairwise_l1(block, templates)
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


def zoom(grid, type_name, h, i1, i2, criterion, mode, start_step, settings):
    """Refine indices on the fine grid by a vectorised compass (pattern) search (type selection).

    Each filter has its own step, starting at half the coarse spacing.  Every iteration evaluates
    the 3 x 3 (2-D) or 3-point (1-D) neighbourhood at the filter's step around its current best
    (centre first, so ties keep it): if the centre is best the step halves (a filter whose unit
    step keeps the centre is done), otherwise the filter moves and keeps its step, so it can follow
    curved valleys.  At most ``settings.max_iterations`` iterations.  Returns
    ``(i1, i2, value, alpha)``.
    """
    two_d = is_2d(type_name, mode)
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
            v = evaluate_product(grid, type_name, h[rows], c1, c2, criterion)
            j = v.argmin(axis=1)
            return c1[local, j // 3], c2[local, j % 3], v[local, j], np.full(len(rows), np.nan), j == 0
        v, a = evaluate_criterion(grid, type_name, h[rows], c1, c1, criterion)
        v = clean(v, np.inf)
        j = v.argmin(axis=1)
        return c1[local, j], c1[local, j], v[local, j], a[local, j], j == 0

    for _ in range(settings.max_iterations):
        done = np.zeros(n, dtype=bool)
        for sl in chunks(len(active), per_item, settings):
            rows = active[sl]
            new1, new2, v, a, stay = move(rows)
            done[rows] = stay & (step[rows] == 1)
            step[rows] = np.where(stay, np.maximum(step[rows] // 2, 1), step[rows])
            i1[rows], i2[rows], value[rows], alpha[rows] = new1, new2, v, a
        active = active[~done[active]]
        if len(active) == 0:
            break
    return i1, i2, value, alpha
