"""Spatial spread measures of kernels ([B] section 2; docs/methods.md section 2).

For a non-negative weight ``w`` on the grid points ``p = (x, y)`` (coordinates of
:func:`masterkey.kernels.conventions.kernel_coordinates`: x to the right, y upwards)::

    M(w) = sum_p p w(p) / sum_p w(p)                      (2-vector: m_x, m_y)
    V(w) = sum_p p p^T w(p) / sum_p w(p) - M(w) M(w)^T    (2x2: V_xx, V_xy, V_yy)

Applied to ``|h|`` they give ``M(|h|)``, ``V(|h|)``.  The weighted versions use the product with
the absolute value of an idealized template ``g`` of the filter's scale-space type at the reference
scale: ``M_g(h) = M(|h| |g|)``, ``V_g(h) = V(|h| |g|)``, ``sigma_ref = 1`` in both directions
(``1/sqrt(2)`` and ``alpha_ref = 1`` for ``id-lap``; [B] does not fix ``alpha_ref``, see
docs/methods.md section 2).

Derived indicators: the correlation ``V_xy / sqrt(V_xx V_yy)`` (near 0 supports separability) and
the offset of the mean in the derivative direction (``m_x`` for ``dx, dx+, dx-, dxx``, ``m_y``
for ``dy, dy+, dy-, dyy``, NaN for the other types); near ``-1/2`` (``dx+``, ``dy+``) or ``+1/2``
(``dx-``, ``dy-``) supports the half-grid hypothesis (see :mod:`masterkey.scalespace.templates` for the
sign of each offset).

Band kernels (``kh x kw``, e.g. ``1 x 9``) get the same unweighted measures on their own grid
(:func:`masterkey.kernels.conventions.grid_coordinates`): a ``1 x k`` band has ``m_y = 0``,
``V_yy = V_xy = 0`` and ``V_xx`` its 1-D variance, so its correlation is undefined (NaN).  They have
no scale-space type, hence NaN weighted measures and offsets (docs/methods.md section 2).

All functions are batched over ``N`` kernels; a weight with zero or non-finite total gives NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..kernels.conventions import grid_coordinates
from .templates import DERIVATIVE_ORDER, TYPE_NAMES, check_type, idealized_templates

__all__ = [
    "SIGMA_REF",
    "ALPHA_REF",
    "spread_moments",
    "reference_template",
    "reference_sigma",
    "separability_correlation",
    "spread_table",
]

SIGMA_REF = 1.0
"""Reference scale of the weighting template (both directions)."""
ALPHA_REF = 1.0
"""``alpha`` of the ``id-lap`` weighting template (not fixed by [B]; choice of docs/methods.md section 2)."""

_DERIVATIVE_AXIS = {m: int(o[0] == 0) for m, o in DERIVATIVE_ORDER.items() if (o[0] == 0) != (o[1] == 0)}
"""Axis (0 = x, 1 = y) of the types differentiated along one direction only (dx, dx+, ..., dyy)."""


def reference_sigma(type_name: str) -> float:
    """Reference scale ``sigma_ref`` of the weighting template (docs/methods.md section 2, [B] Sec. 2).

    Parameters
    ----------
    type_name : str
        One of :data:`~masterkey.scalespace.templates.TYPE_NAMES`.

    Returns
    -------
    float
        ``sigma_ref`` in grid spacings (``s = sigma^2``): 1, or ``1/sqrt(2)`` (``s = 1/2``) for
        the centre-surround type ``id-lap``.

    Raises
    ------
    ValueError
        For an unknown type.

    >>> reference_sigma("dx"), round(float(reference_sigma("id-lap")) ** 2, 12)
    (1.0, 0.5)
    """
    return 1.0 / np.sqrt(2.0) if check_type(type_name) == "id-lap" else SIGMA_REF


def reference_template(type_name: str, k: int) -> np.ndarray:
    """Idealized template ``g`` of ``type_name`` at the reference scale, the weight of ``M_g``, ``V_g``.

    docs/methods.md section 2 ([B] Sec. 2): ``sigma_ref`` of :func:`reference_sigma` in both
    directions, and ``alpha = ALPHA_REF`` for ``id-lap``.

    Parameters
    ----------
    type_name : str
        One of :data:`~masterkey.scalespace.templates.TYPE_NAMES`.
    k : int
        Odd kernel size.

    Returns
    -------
    float64 array ``(k, k)``
        The template, ``h[row, col]`` in the convention of docs/methods.md section 1.

    Raises
    ------
    ValueError
        For an unknown type or an invalid ``k``.

    The ``T`` reference on a wide support has unit mass and the variance ``s_ref I = I``:

    >>> import numpy as np
    >>> g = reference_template("T", 21)
    >>> round(float(g.sum()), 6), (spread_moments(g)[1].round(6) + 0.0).tolist()
    (1.0, [[1.0, 0.0], [0.0, 1.0]])
    """
    sigma = reference_sigma(type_name)
    alpha = ALPHA_REF if type_name == "id-lap" else None
    return idealized_templates(type_name, k, sigma, sigma, alpha=alpha)


def spread_moments(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spatial mean ``M(w)`` and covariance ``V(w)`` of non-negative weights ([B] Sec. 2).

    ``M(w) = sum_p p w(p) / sum_p w(p)`` and ``V(w) = sum_p p p^T w(p) / sum_p w(p) - M M^T`` with
    ``p = (x, y)`` the coordinates of docs/methods.md section 1 (y upwards); docs/methods.md
    section 2.

    Parameters
    ----------
    weights : array ``(..., kh, kw)``
        Non-negative weights, e.g. ``|h|`` or ``|h| |g|``; square (``k x k``) or a band
        (:func:`masterkey.kernels.conventions.grid_coordinates`), odd sizes.

    Returns
    -------
    mean : float64 array ``(..., 2)``
        ``(m_x, m_y)`` in grid spacings.
    variance : float64 array ``(..., 2, 2)``
        ``[[V_xx, V_xy], [V_xy, V_yy]]`` in squared grid spacings; NaN (like ``mean``) where
        ``sum w`` is 0 or not finite.

    The discrete Gaussian on a wide support has ``V = diag(s_x, s_y)``, and mass in the top-left
    corner has ``m = (-c, +c)``:

    >>> import numpy as np
    >>> from masterkey.scalespace.templates import idealized_templates
    >>> (spread_moments(idealized_templates("T", 31, 1.5, 0.8))[1].round(9) + 0.0).tolist()
    [[2.25, 0.0], [0.0, 0.64]]
    >>> corner = np.zeros((5, 5)); corner[0, 0] = 1.0
    >>> spread_moments(corner)[0].tolist()
    [-2.0, 2.0]

    A vertical band spreads along y only:

    >>> (spread_moments(np.ones((5, 1)))[1] + 0.0).tolist()
    [[0.0, 0.0], [0.0, 2.0]]
    """
    weights = np.asarray(weights, dtype=np.float64)
    x, y = grid_coordinates(*weights.shape[-2:])
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
    """Correlation ``V_xy / sqrt(V_xx V_yy)`` of spatial covariances (docs/methods.md section 2).

    Near 0 for separable filters ([B] Sec. 2).

    Parameters
    ----------
    variance : array ``(..., 2, 2)``
        Covariances ``[[V_xx, V_xy], [V_xy, V_yy]]`` from :func:`spread_moments`.

    Returns
    -------
    float64 array ``(...)``
        Values in [-1, 1]; NaN where a variance is 0 or NaN.

    >>> import numpy as np
    >>> separability_correlation(np.array([[[4.0, 1.0], [1.0, 1.0]], [[2.0, 0.0], [0.0, 3.0]]])).tolist()
    [0.5, 0.0]
    """
    variance = np.asarray(variance, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return variance[..., 0, 1] / np.sqrt(variance[..., 0, 0] * variance[..., 1, 1])


def spread_table(kernels: np.ndarray, types, filter_labels=None) -> pd.DataFrame:
    """Per-filter spread measures as a DataFrame ([B] Sec. 2; docs/methods.md section 2).

    ``m``/``V`` come from ``|h|``, ``mg``/``Vg`` from ``|h| |g|`` with ``g`` the
    :func:`reference_template` of the filter's type; ``offset`` is the mean of ``|h|`` in the
    derivative direction (``offset_g`` the same from the weighted mean).  Coordinates and units:
    docs/methods.md section 1 (grid spacings, y upwards).

    Parameters
    ----------
    kernels : array ``(N, kh, kw)``
        Filters ``h[row, col]``, square or band kernels (odd sizes).
    types : sequence of ``N`` str or None
        Model names; ``None`` entries give NaN weighted measures and offsets.  Band kernels have
        no scale-space type: their types must all be ``None``.
    filter_labels : sequence of ``N`` labels, optional
        The ``filter`` column (default ``1..N``).

    Returns
    -------
    pandas.DataFrame
        ``N`` rows with the columns ``filter, type, m_x, m_y, V_xx, V_xy, V_yy, mg_x, mg_y, Vg_xx,
        Vg_xy, Vg_yy, correlation, correlation_g, offset, offset_g``.

    Raises
    ------
    ValueError
        If the number of types differs from the number of kernels, a type is unknown, or band
        kernels are given a type.

    The non-centred templates sit exactly half a grid step off the centre:

    >>> from masterkey.scalespace.templates import idealized_templates
    >>> kernels = idealized_templates("dx+", 7, 1.0)[None].repeat(2, 0)
    >>> kernels[1] = idealized_templates("dy-", 7, 1.0)
    >>> spread_table(kernels, ["dx+", "dy-"])[["offset", "offset_g"]].round(12).values.tolist()
    [[-0.5, -0.5], [0.5, 0.5]]
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    n, (kh, kw) = len(kernels), kernels.shape[-2:]
    types = list(types)
    if len(types) != n:
        raise ValueError(f"got {len(types)} types for {n} kernels")
    magnitude = np.abs(kernels)
    mean, variance = spread_moments(magnitude)
    type_array = np.array(types, dtype=object)
    typed = sorted({str(t) for t in types if t is not None and not pd.isna(t)})
    if kh != kw and typed:
        raise ValueError(f"band kernels {kh}x{kw} have no scale-space type, got {typed}")
    g = np.full_like(kernels, np.nan)
    for type_name in TYPE_NAMES if kh == kw else ():
        g[type_array == type_name] = np.abs(reference_template(type_name, kh))
    # None / NaN: no type (band kernels; degenerate kernels, e.g. the all-zero ones of dead channels)
    unknown = {str(t) for t in type_array[pd.isna(g[:, 0, 0])] if t is not None and not pd.isna(t)}
    if unknown:
        raise ValueError(f"unknown scale-space types {sorted(map(str, unknown))}; choose from {TYPE_NAMES}")
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
