"""Spatial spread measures of kernels (methods.md section 2, [B] section 2).

For a non-negative weight ``w`` on the grid points ``p = (x, y)`` (coordinates of
:func:`masterkey.conventions.kernel_coordinates`: x to the right, y upwards)::

    M(w) = sum_p p w(p) / sum_p w(p)                      (2-vector: m_x, m_y)
    V(w) = sum_p p p^T w(p) / sum_p w(p) - M(w) M(w)^T    (2x2: V_xx, V_xy, V_yy)

Applied to ``|h|`` they give ``M(|h|)``, ``V(|h|)``.  The weighted versions use the product with
the absolute value of an idealized template ``g`` of the filter's model type at the reference
scale: ``M_g(h) = M(|h| |g|)``, ``V_g(h) = V(|h| |g|)``, ``sigma_ref = 1`` in both directions
(``1/sqrt(2)`` and ``alpha_ref = 1`` for ``id-lap``; the spec does not fix ``alpha_ref``).

Derived indicators: the correlation ``V_xy / sqrt(V_xx V_yy)`` (near 0 supports separability) and
the offset of the mean in the derivative direction (``m_x`` for ``dx, dx+, dx-, dxx``, ``m_y``
for ``dy, dy+, dy-, dyy``, NaN for the other types); near ``-1/2`` (``dx+``, ``dy+``) or ``+1/2``
(``dx-``, ``dy-``) supports the half-grid hypothesis (see :mod:`masterkey.scalespace` for the
sign of each offset).

All functions are batched over ``N`` kernels; a weight with zero or non-finite total gives NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .conventions import kernel_coordinates
from .scalespace import MODEL_NAMES, check_model, model_templates

__all__ = [
    "SIGMA_REF",
    "ALPHA_REF",
    "spread_moments",
    "reference_template",
    "reference_sigma",
    "derivative_axis",
    "separability_correlation",
    "spread_table",
]

SIGMA_REF = 1.0
"""Reference scale of the weighting template (both directions)."""
ALPHA_REF = 1.0
"""``alpha`` of the ``id-lap`` weighting template (not fixed by the spec; documented choice)."""

_DERIVATIVE_AXIS = {"dx": 0, "dx+": 0, "dx-": 0, "dxx": 0, "dy": 1, "dy+": 1, "dy-": 1, "dyy": 1}


def derivative_axis(model: str) -> int | None:
    """0 (x) or 1 (y) for types with a single derivative direction, else ``None``."""
    return _DERIVATIVE_AXIS.get(check_model(model))


def reference_sigma(model: str) -> float:
    """``sigma_ref``: 1, or ``1/sqrt(2)`` for the centre-surround type ``id-lap``."""
    return 1.0 / np.sqrt(2.0) if check_model(model) == "id-lap" else SIGMA_REF


def reference_template(model: str, k: int) -> np.ndarray:
    """Idealized template ``g`` of ``model`` at the reference scale (``k x k``)."""
    sigma = reference_sigma(model)
    alpha = ALPHA_REF if model == "id-lap" else None
    return model_templates(model, k, sigma, sigma, alpha=alpha)


def spread_moments(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``M(w)`` and ``V(w)`` of non-negative weights ``(..., k, k)``.

    Returns ``mean`` of shape ``(..., 2)`` (``m_x, m_y``) and ``variance`` of shape
    ``(..., 2, 2)`` (``[[V_xx, V_xy], [V_xy, V_yy]]``), float64; NaN where ``sum w`` is 0 or not finite.
    """
    weights = np.asarray(weights, dtype=np.float64)
    k = weights.shape[-1]
    x, y = kernel_coordinates(k)
    total = weights.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where((total > 0) & np.isfinite(total), 1.0 / total, np.nan)
        m_x = np.einsum("...ij,ij->...", weights, x) * inv
        m_y = np.einsum("...ij,ij->...", weights, y) * inv
        v_xx = np.einsum("...ij,ij->...", weights, x * x) * inv - m_x * m_x
        v_yy = np.einsum("...ij,ij->...", weights, y * y) * inv - m_y * m_y
        v_xy = np.einsum("...ij,ij->...", weights, x * y) * inv - m_x * m_y
    mean = np.stack([m_x, m_y], axis=-1)
    variance = np.stack([np.stack([v_xx, v_xy], -1), np.stack([v_xy, v_yy], -1)], -2)
    return mean, variance


def separability_correlation(variance: np.ndarray) -> np.ndarray:
    """``V_xy / sqrt(V_xx V_yy)`` for variances of shape ``(..., 2, 2)``."""
    variance = np.asarray(variance, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return variance[..., 0, 1] / np.sqrt(variance[..., 0, 0] * variance[..., 1, 1])


def spread_table(kernels: np.ndarray, types, filter_labels=None) -> pd.DataFrame:
    """Per-filter spread measures as a DataFrame.

    ``kernels``: ``(N, k, k)``; ``types``: ``N`` model names (``None`` entries give NaN weighted
    measures).  Columns: ``filter, type, m_x, m_y, V_xx, V_xy, V_yy, mg_x, mg_y, Vg_xx, Vg_xy,
    Vg_yy, correlation, correlation_g, offset, offset_g``; ``m``/``V`` from ``|h|``, ``mg``/``Vg``
    from ``|h| |g|``; ``offset`` is the mean of ``|h|`` in the derivative direction (``offset_g`` the
    same from the weighted mean).  ``filter_labels`` default to ``1..N``.
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    n, k = len(kernels), kernels.shape[-1]
    types = list(types)
    if len(types) != n:
        raise ValueError(f"got {len(types)} types for {n} kernels")
    magnitude = np.abs(kernels)
    mean, variance = spread_moments(magnitude)
    type_array = np.array(types, dtype=object)
    g = np.full_like(kernels, np.nan)
    for model in MODEL_NAMES:
        g[type_array == model] = np.abs(reference_template(model, k))
    unknown = set(type_array[pd.isna(g[:, 0, 0])]) - {None}
    if unknown:
        raise ValueError(f"unknown model types {sorted(map(str, unknown))}; choose from {MODEL_NAMES}")
    mean_g, variance_g = spread_moments(magnitude * g)
    axis = pd.Series(type_array).map(_DERIVATIVE_AXIS).to_numpy(dtype=np.float64)
    has_axis = np.isfinite(axis)
    rows = np.flatnonzero(has_axis)
    offset = np.full(n, np.nan)
    offset_g = np.full(n, np.nan)
    offset[rows] = mean[rows, axis[rows].astype(int)]
    offset_g[rows] = mean_g[rows, axis[rows].astype(int)]
    return pd.DataFrame(
        {
            "filter": np.arange(1, n + 1) if filter_labels is None else list(filter_labels),
            "type": types,
            "m_x": mean[:, 0],
            "m_y": mean[:, 1],
            "V_xx": variance[:, 0, 0],
            "V_xy": variance[:, 0, 1],
            "V_yy": variance[:, 1, 1],
            "mg_x": mean_g[:, 0],
            "mg_y": mean_g[:, 1],
            "Vg_xx": variance_g[:, 0, 0],
            "Vg_xy": variance_g[:, 0, 1],
            "Vg_yy": variance_g[:, 1, 1],
            "correlation": separability_correlation(variance),
            "correlation_g": separability_correlation(variance_g),
            "offset": offset,
            "offset_g": offset_g,
        }  # fmt: skip
    )
