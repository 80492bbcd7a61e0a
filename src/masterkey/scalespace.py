"""Idealized receptive-field templates from discrete scale-space theory (methods.md section 3, [B]).

Scale parameter ``s = sigma**2``; the public functions take ``sigma`` (tables report sigma).

Discrete analogue of the Gaussian (not the sampled Gaussian)::

    T(n; s) = exp(-s) I_n(s)          (scipy.special.ive(n, s), I_n the modified Bessel function)

with ``sum_n T(n; s) = 1`` and ``sum_n n^2 T(n; s) = s`` on the infinite grid.  In 2-D it is separable,
``T(x, y; s_x, s_y) = T(x; s_x) T(y; s_y)``.  Templates are evaluated on the kernel's own ``k`` taps
(``n = -c .. c``, ``c = (k - 1) / 2``) *without renormalisation*.

One-dimensional difference operators act on a profile ``f(n)`` ordered by the coordinate ``n``
(x to the right, y upwards, see :mod:`masterkey.conventions`):

=========== ================= =================================== ==============================
operator     correlation mask  value at n                          centre of its response
=========== ================= =================================== ==============================
central      [-1/2, 0, +1/2]   (f(n+1) - f(n-1)) / 2               0
forward      [0, -1, +1]       f(n+1) - f(n)                       the kernel mass sits at -1/2
backward     [-1, +1, 0]       f(n) - f(n-1)                       the kernel mass sits at +1/2
second       [1, -2, 1]        f(n+1) - 2 f(n) + f(n-1)            0
=========== ================= =================================== ==============================

They are applied with ``scipy.ndimage.correlate1d(..., mode="reflect")`` to the ``k``-tap truncated
``T`` and ``k`` taps are kept; this half-sample mirror extension reproduces the published numbers of
[B] and makes every difference template sum to exactly zero.  Because the operators act on the
profile in *coordinate* order, the y-operators are automatically flipped with respect to the row
index (rows run downwards, y upwards).

Signs (methods.md section 1, responses ``R_f(h) = sum_p h(p) f(-p)``): with these operators a
first-difference template has response ``+1`` (up to truncation) to the unit ramp in its direction
(``dx`` is positive for ``x < 0``, ``dy`` is positive for ``y < 0``, i.e. in the *lower* half);
second-order templates have response 1 to the matching quadratic: ``x^2/2`` (``dxx``), ``y^2/2``
(``dyy``), ``x y`` (``dxy``) and ``(x^2 + y^2)/4`` (``lap``).  ``T`` and ``id-lap`` have DC gain 1
(``T`` up to truncation).

Half-grid offsets of the non-centred types (the mean of ``|template|`` in the derivative direction):

* ``dx+`` = forward difference along x: offset ``-1/2`` (mass left of the centre),
* ``dx-`` = backward difference along x: offset ``+1/2`` (mass right of the centre),
* ``dy+`` = forward difference along y: offset ``-1/2`` (mass *below* the centre, y upwards),
* ``dy-`` = backward difference along y: offset ``+1/2`` (mass *above* the centre).

(The *output* of the convolution with ``dx+`` is the derivative at ``x + 1/2`` of the smoothed image,
since ``(h * f)(x) = sum_p h(p) f(x - p)`` reads the image at ``x - p``.)

Model family (:data:`MODEL_NAMES`):

* ``T``: ``T(x; s_x) T(y; s_y)``
* ``dx``, ``dy``: central first difference of ``T``
* ``dx+``, ``dx-``, ``dy+``, ``dy-``: non-centred first differences of ``T``
* ``dxx``, ``dyy``: second difference; ``dxy = delta_x delta_y T`` (central in both)
* ``lap``: ``lap5 T = delta_xx T + delta_yy T`` with ``s_x = s_y = s``
* ``id-lap``: ``delta - alpha lap5 T(.; s)`` with ``delta`` the unit impulse at the centre
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d
from scipy.special import ive

from .conventions import check_kernel_size

__all__ = [
    "MODEL_NAMES",
    "SEPARABLE_MODELS",
    "AXIS_OPERATORS",
    "DERIVATIVE_ORDER",
    "DIFFERENCE_MASKS",
    "discrete_gaussian",
    "gaussian_profiles",
    "apply_difference",
    "axis_profiles",
    "model_templates",
    "model_template",
    "check_model",
]

MODEL_NAMES: tuple[str, ...] = (
    "T", "dx", "dy", "dx+", "dx-", "dy+", "dy-", "dxx", "dyy", "dxy", "lap", "id-lap",
)  # fmt: skip
"""All model types, in the order used in tables."""

DIFFERENCE_MASKS: dict[str, np.ndarray] = {
    "identity": np.array([0.0, 1.0, 0.0]),
    "central": np.array([-0.5, 0.0, 0.5]),
    "forward": np.array([0.0, -1.0, 1.0]),
    "backward": np.array([-1.0, 1.0, 0.0]),
    "second": np.array([1.0, -2.0, 1.0]),
}
"""Correlation masks (``out[n] = sum_j mask[j] f(n + j - 1)``) in coordinate order."""

AXIS_OPERATORS: dict[str, tuple[str, str]] = {
    "T": ("identity", "identity"),
    "dx": ("central", "identity"),
    "dy": ("identity", "central"),
    "dx+": ("forward", "identity"),
    "dx-": ("backward", "identity"),
    "dy+": ("identity", "forward"),
    "dy-": ("identity", "backward"),
    "dxx": ("second", "identity"),
    "dyy": ("identity", "second"),
    "dxy": ("central", "central"),
}
"""Separable models: (operator along x, operator along y) applied to ``T``."""

SEPARABLE_MODELS: tuple[str, ...] = tuple(AXIS_OPERATORS)

DERIVATIVE_ORDER: dict[str, tuple[int, int]] = {
    "T": (0, 0), "dx": (1, 0), "dy": (0, 1), "dx+": (1, 0), "dx-": (1, 0), "dy+": (0, 1),
    "dy-": (0, 1), "dxx": (2, 0), "dyy": (0, 2), "dxy": (1, 1), "lap": (2, 2), "id-lap": (0, 0),
}  # fmt: skip
"""Order of differentiation along (x, y) of each model (``lap`` counts as second order in both)."""


def check_model(model: str) -> str:
    """Return ``model`` if it is one of :data:`MODEL_NAMES`, else raise ``ValueError``."""
    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model type {model!r}; choose one of {', '.join(MODEL_NAMES)}")
    return model


def discrete_gaussian(n, s) -> np.ndarray:
    """Discrete analogue of the Gaussian ``T(n; s) = exp(-s) I_n(s)`` (broadcasting ``n`` and ``s``).

    ``T(n; 0)`` is the unit impulse.  ``sum_n T = 1`` and ``sum_n n^2 T = s`` over all integers ``n``.
    """
    n = np.abs(np.asarray(n, dtype=np.float64))
    s = np.asarray(s, dtype=np.float64)
    return ive(n, s)


def gaussian_profiles(k: int, sigma) -> np.ndarray:
    """``T(n; sigma^2)`` on ``n = -c .. c`` for every ``sigma``: shape ``sigma.shape + (k,)``."""
    k = check_kernel_size(k)
    c = (k - 1) // 2
    sigma = np.asarray(sigma, dtype=np.float64)
    half = discrete_gaussian(np.arange(c + 1, dtype=np.float64), sigma[..., None] ** 2)  # n = 0..c
    return np.concatenate([half[..., :0:-1], half], axis=-1)  # T(-n) = T(n)


def apply_difference(profiles: np.ndarray, operator: str) -> np.ndarray:
    """Apply a 1-D difference ``operator`` (key of :data:`DIFFERENCE_MASKS`) along the last axis.

    ``profiles`` are in coordinate order (``n`` increasing); mirror-reflect extension at the
    border (``scipy.ndimage.correlate1d`` mode ``'reflect'``), the number of taps is kept.
    """
    profiles = np.asarray(profiles, dtype=np.float64)
    if operator == "identity":
        return profiles.copy()
    mask = DIFFERENCE_MASKS[operator]
    return correlate1d(profiles, mask, axis=-1, mode="reflect")


def axis_profiles(k: int, sigma, operator: str) -> np.ndarray:
    """``operator`` applied to the truncated ``T(.; sigma^2)``, coordinate order, shape ``(..., k)``."""
    return apply_difference(gaussian_profiles(k, sigma), operator)


def _separable(profile_x: np.ndarray, profile_y: np.ndarray) -> np.ndarray:
    """Kernel ``h[row, col] = p_y(y(row)) p_x(x(col))`` from coordinate-ordered profiles.

    Row ``r`` has ``y = c - r``, so the y profile is reversed to row order.
    """
    return profile_y[..., ::-1, None] * profile_x[..., None, :]


def model_templates(model: str, k: int, sigma_x, sigma_y=None, alpha=None) -> np.ndarray:
    """Templates of ``model`` on a ``k x k`` support for arrays of scales.

    ``sigma_x``, ``sigma_y`` (``s = sigma^2``) and ``alpha`` broadcast against each other; the
    result has shape ``broadcast_shape + (k, k)``, float64.  ``sigma_y`` defaults to ``sigma_x``.
    ``lap`` and ``id-lap`` have a single scale (``sigma_y`` must be omitted or equal);
    ``id-lap`` needs ``alpha`` (``delta - alpha lap5 T``).  See the module docstring for formulas
    and signs.
    """
    check_model(model)
    k = check_kernel_size(k)
    sigma_x = np.asarray(sigma_x, dtype=np.float64)
    sigma_y = sigma_x if sigma_y is None else np.asarray(sigma_y, dtype=np.float64)
    if model in AXIS_OPERATORS:
        sigma_x, sigma_y = np.broadcast_arrays(sigma_x, sigma_y)
        op_x, op_y = AXIS_OPERATORS[model]
        return _separable(axis_profiles(k, sigma_x, op_x), axis_profiles(k, sigma_y, op_y))
    if not np.allclose(sigma_x, sigma_y, rtol=0, atol=0):
        raise ValueError(f"model {model!r} has a single scale; sigma_y must equal sigma_x")
    smooth = gaussian_profiles(k, sigma_x)
    second = apply_difference(smooth, "second")
    laplacian = _separable(second, smooth) + _separable(smooth, second)
    if model == "lap":
        return laplacian
    if alpha is None:
        raise ValueError("model 'id-lap' needs alpha (delta - alpha * lap5 T)")
    alpha = np.asarray(alpha, dtype=np.float64)
    laplacian, alpha = np.broadcast_arrays(laplacian, alpha[..., None, None])
    out = -alpha * laplacian
    c = (k - 1) // 2
    out[..., c, c] += 1.0
    return out


def model_template(model: str, k: int, sigma_x: float, sigma_y: float | None = None,
                   alpha: float | None = None) -> np.ndarray:  # fmt: skip
    """A single ``k x k`` template; see :func:`model_templates`."""
    return model_templates(model, k, float(sigma_x), None if sigma_y is None else float(sigma_y),
                           None if alpha is None else float(alpha))  # fmt: skip
