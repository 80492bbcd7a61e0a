"""Normalisation of a kernel before fitting (docs/methods.md section 3), :func:`normalise_for_fitting`.

``m = M(|h|)`` is the mean of ``|h|`` (:func:`masterkey.scalespace.spread.spread_moments`), responses
``R_f(h) = sum_p h(p) f(-p)`` as in docs/methods.md section 1
(:func:`masterkey.kernels.conventions.pattern_response`).

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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...kernels.conventions import kernel_coordinates, pattern_response
from ..spread import spread_moments
from ..templates import DERIVATIVE_ORDER, check_type
from .settings import DEFAULT_SETTINGS, SearchSettings, chunks

__all__ = [
    "FIRST_ORDER_AXIS",
    "DC_TYPES",
    "Normalised",
    "basic_degenerate",
    "dc_compensation",
    "normalise_for_fitting",
]

FIRST_ORDER_AXIS = {m: order.index(1) for m, order in DERIVATIVE_ORDER.items() if sorted(order) == [0, 1]}
"""Derivative axis (0 = x, 1 = y) of the first-difference types ``dx, dx+, dx-, dy, dy+, dy-``."""
DC_TYPES = ("T", "id-lap")
"""Types normalised by DC compensation and unit DC gain (all others by a pattern response)."""


@dataclass(frozen=True)
class Normalised:
    """Kernels normalised for fitting one type: ``kernels`` float64 ``(N, k, k)`` (NaN where
    ``degenerate``), ``degenerate`` bool ``(N,)`` and the subtracted DC constant ``dc_constant``
    ``(N,)`` (zeros for types without DC compensation)."""

    kernels: np.ndarray
    degenerate: np.ndarray
    dc_constant: np.ndarray


def basic_degenerate(kernels: np.ndarray) -> np.ndarray:
    """Mask of kernels that cannot be normalised: non-finite, or constant (all zero included).

    docs/methods.md section 3.5.

    Parameters
    ----------
    kernels : array ``(N, k, k)``

    Returns
    -------
    bool array ``(N,)``
        True for a kernel with a non-finite entry or with ``max h - min h <= 1e-12 max |h|``.

    >>> import numpy as np
    >>> basic_degenerate(np.stack([np.ones((3, 3)), np.eye(3), np.full((3, 3), np.nan)])).tolist()
    [True, False, True]
    """
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

    ``V`` as in :func:`masterkey.scalespace.spread.spread_moments`, from the six moments of ``|h - C|`` (one
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
    objective).  The DC compensation of ``T`` and ``id-lap`` before fitting ([B] Sec. 4;
    docs/methods.md section 3.5); ``V`` is the spatial covariance of docs/methods.md section 2.

    Parameters
    ----------
    kernels : array ``(N, k, k)``
    settings : SearchSettings
        Only ``chunk_elements`` is used (memory bound).

    Returns
    -------
    float64 array ``(N,)``
        The constant ``C`` per kernel, in the kernel's units; NaN for degenerate kernels
        (:func:`basic_degenerate`).

    Adding a constant to a kernel shifts its ``C`` by exactly that constant:

    >>> import numpy as np
    >>> h = np.random.default_rng(0).normal(size=(3, 7, 7))
    >>> (dc_compensation(h + 0.7) - dc_compensation(h)).round(9).tolist()
    [0.7, 0.7, 0.7]
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    n, k = len(kernels), kernels.shape[-1]
    out = np.full(n, np.nan)
    bad = basic_degenerate(kernels)
    good = np.flatnonzero(~bad)
    for sl in chunks(len(good), (65 + k * k) * k * k * 4, settings):
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


def _pattern_normaliser(kernels: np.ndarray, type_name: str) -> np.ndarray:
    """Response to the type's test pattern centred at ``m = M(|h|)`` (see module docstring)."""
    k = kernels.shape[-1]
    x, y = kernel_coordinates(k)
    mean, _ = spread_moments(np.abs(kernels))
    dx = x - mean[:, 0, None, None]
    dy = y - mean[:, 1, None, None]
    if type_name in FIRST_ORDER_AXIS:
        pattern = -(dx if FIRST_ORDER_AXIS[type_name] == 0 else dy)
    elif type_name == "dxx":
        pattern = dx**2 / 2
    elif type_name == "dyy":
        pattern = dy**2 / 2
    elif type_name == "dxy":
        pattern = dx * dy
    elif type_name == "lap":
        pattern = (dx**2 + dy**2) / 4
    else:
        raise ValueError(type_name)
    return pattern_response(kernels, pattern)  # pattern holds f(-(p - m))


def normalise_for_fitting(
    kernels: np.ndarray, type_name: str, settings: SearchSettings = DEFAULT_SETTINGS
) -> Normalised:
    """Normalise kernels for fitting type ``type_name`` (see the module docstring).

    [B] Sec. 4; docs/methods.md section 3.5.  Derivative types are divided by their response to the
    type's test pattern centred at ``m = M(|h|)`` (coordinates of docs/methods.md section 1),
    ``T`` and ``id-lap`` are DC-compensated (:func:`dc_compensation`) and scaled to unit DC gain.

    Parameters
    ----------
    kernels : array ``(N, k, k)``
    type_name : str
        One of :data:`~masterkey.scalespace.templates.TYPE_NAMES`.
    settings : SearchSettings
        Chunking of the DC compensation.

    Returns
    -------
    Normalised
        ``kernels`` float64 ``(N, k, k)`` (NaN where degenerate: non-finite, constant, or with a
        vanishing normaliser), ``degenerate`` bool ``(N,)``, ``dc_constant`` ``(N,)``.

    Raises
    ------
    ValueError
        For an unknown type.

    The normalised kernel has response 1 to the ramp centred at its own mean (here along x), and
    amplitude and sign are normalised away:

    >>> import numpy as np
    >>> from masterkey.kernels.conventions import kernel_coordinates
    >>> from masterkey.scalespace.spread import spread_moments
    >>> h = np.random.default_rng(0).normal(size=(1, 7, 7))
    >>> a, b = normalise_for_fitting(h, "dx").kernels, normalise_for_fitting(-4.0 * h, "dx").kernels
    >>> x, _ = kernel_coordinates(7)
    >>> m_x = spread_moments(np.abs(h))[0][0, 0]
    >>> round(float(-(a[0] * (x - m_x)).sum()), 9), bool(np.allclose(a, b))
    (1.0, True)
    """
    check_type(type_name)
    kernels = np.asarray(kernels, dtype=np.float64)
    degenerate = basic_degenerate(kernels)
    safe = np.where(degenerate[:, None, None], 0.0, kernels)
    safe = np.nan_to_num(safe)
    if type_name in DC_TYPES:
        constant = np.where(degenerate, 0.0, dc_compensation(safe, settings))
        constant = np.nan_to_num(constant)
        shifted = safe - constant[:, None, None]
        normaliser = shifted.sum(axis=(-2, -1))
    else:
        constant = np.zeros(len(kernels))
        shifted = safe
        normaliser = _pattern_normaliser(safe, type_name)
    scale = np.abs(shifted).sum(axis=(-2, -1))
    degenerate |= ~(np.abs(normaliser) > 1e-9 * scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = shifted / normaliser[:, None, None]
    normalised[degenerate] = np.nan
    return Normalised(normalised, degenerate, constant)
