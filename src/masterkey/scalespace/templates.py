"""Idealized receptive fields from discrete scale-space theory ([B] sections 3-4; docs/methods.md section 3).

Scale parameter ``s = sigma**2``; the public functions take ``sigma`` (tables report sigma).

Discrete analogue of the Gaussian (not the sampled Gaussian)::

    T(n; s) = exp(-s) I_n(s)          (scipy.special.ive(n, s), I_n the modified Bessel function)

with ``sum_n T(n; s) = 1`` and ``sum_n n^2 T(n; s) = s`` on the infinite grid.  In 2-D it is separable,
``T(x, y; s_x, s_y) = T(x; s_x) T(y; s_y)``.  Templates are evaluated on the kernel's own ``k`` taps
(``n = -c .. c``, ``c = (k - 1) / 2``) *without renormalisation*.

One-dimensional difference operators act on a profile ``f(n)`` ordered by the coordinate ``n``
(x to the right, y upwards: docs/methods.md section 1, :mod:`masterkey.kernels.conventions`):

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

Signs (docs/methods.md section 1, responses ``R_f(h) = sum_p h(p) f(-p)``): with these operators a
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

Model family (:data:`TYPE_NAMES`):

* ``T``: ``T(x; s_x) T(y; s_y)``
* ``dx``, ``dy``: central first difference of ``T``
* ``dx+``, ``dx-``, ``dy+``, ``dy-``: non-centred first differences of ``T``
* ``dxx``, ``dyy``: second difference; ``dxy = delta_x delta_y T`` (central in both)
* ``lap``: ``lap5 T = delta_xx T + delta_yy T`` with ``s_x = s_y = s``
* ``id-lap``: ``delta - alpha lap5 T(.; s)`` with ``delta`` the unit impulse at the centre
"""

from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np
from scipy.ndimage import correlate1d
from scipy.special import ive

from ..kernels.conventions import check_kernel_size

__all__ = [
    "TYPE_NAMES",
    "SEPARABLE_TYPES",
    "AXIS_OPERATORS",
    "DERIVATIVE_ORDER",
    "DIFFERENCE_MASKS",
    "discrete_gaussian",
    "gaussian_profiles",
    "apply_difference",
    "axis_profiles",
    "difference_matrix",
    "templates_from_profiles",
    "idealized_templates",
    "check_type",
]

TYPE_NAMES: tuple[str, ...] = (
    "T", "dx", "dy", "dx+", "dx-", "dy+", "dy-", "dxx", "dyy", "dxy", "lap", "id-lap",
)  # fmt: skip
"""All scale-space types, in the order used in tables."""

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

SEPARABLE_TYPES: tuple[str, ...] = tuple(AXIS_OPERATORS)

DERIVATIVE_ORDER: dict[str, tuple[int, int]] = {
    "T": (0, 0), "dx": (1, 0), "dy": (0, 1), "dx+": (1, 0), "dx-": (1, 0), "dy+": (0, 1),
    "dy-": (0, 1), "dxx": (2, 0), "dyy": (0, 2), "dxy": (1, 1), "lap": (2, 2), "id-lap": (0, 0),
}  # fmt: skip
"""Order of differentiation along (x, y) of each type (``lap`` counts as second order in both)."""


def check_type(type_name: str) -> str:
    """Validate a scale-space type name (docs/methods.md section 3.3).

    Parameters
    ----------
    type_name : str
        Candidate name.

    Returns
    -------
    str
        ``type_name`` itself.

    Raises
    ------
    ValueError
        If ``type_name`` is not one of :data:`TYPE_NAMES`.

    >>> check_type("id-lap")
    'id-lap'
    >>> check_type("dz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown scale-space type 'dz'; choose one of T, dx, dy, ..., lap, id-lap
    """
    if type_name not in TYPE_NAMES:
        raise ValueError(f"unknown scale-space type {type_name!r}; choose one of {', '.join(TYPE_NAMES)}")
    return type_name


def discrete_gaussian(n, s) -> np.ndarray:
    """Discrete analogue of the Gaussian ``T(n; s) = exp(-s) I_n(s)`` ([B] Sec. 3; docs/methods.md s. 3.1).

    ``I_n`` is the modified Bessel function of integer order (``scipy.special.ive``).  ``T(n; 0)`` is
    the unit impulse; over all integers ``n``, ``sum_n T = 1`` and ``sum_n n^2 T = s``.

    Parameters
    ----------
    n : array_like
        Integer grid positions (grid spacings); ``T`` is even in ``n``.
    s : array_like
        Scale parameter ``s = sigma^2`` (``sigma`` in grid spacings), ``s >= 0``; broadcasts
        against ``n``.

    Returns
    -------
    float64 array
        ``T(n; s)`` of the broadcast shape of ``n`` and ``s``.

    On a support wide enough for truncation not to matter, the mass is 1 and the variance is ``s``:

    >>> import numpy as np
    >>> n = np.arange(-40, 41)
    >>> t = discrete_gaussian(n, 2.5)
    >>> round(float(t.sum()), 12), round(float((n**2 * t).sum()), 12)
    (1.0, 2.5)
    """
    n = np.abs(np.asarray(n, dtype=np.float64))
    s = np.asarray(s, dtype=np.float64)
    return ive(n, s)


def gaussian_profiles(k: int, sigma) -> np.ndarray:
    """``T(n; sigma^2)`` on the ``k`` taps ``n = -c .. c`` of a kernel, without renormalisation.

    docs/methods.md section 3.1 ([B] Sec. 3); ``n`` in coordinate order (x to the right, y upwards,
    docs/methods.md section 1).

    Parameters
    ----------
    k : int
        Odd number of taps.
    sigma : array_like
        Scales in grid spacings (``s = sigma^2``).

    Returns
    -------
    float64 array ``sigma.shape + (k,)``
        One truncated profile per scale.

    Raises
    ------
    ValueError
        If ``k`` is not an odd positive integer.

    The profiles are symmetric and lose only the truncated tails of the unit mass:

    >>> import numpy as np
    >>> p = gaussian_profiles(7, np.array([0.5, 1.0]))
    >>> p.shape, bool(np.allclose(p, p[:, ::-1])), p.sum(axis=1).round(4).tolist()
    ((2, 7), True, [1.0, 0.9978])
    """
    k = check_kernel_size(k)
    c = (k - 1) // 2
    sigma = np.asarray(sigma, dtype=np.float64)
    half = discrete_gaussian(np.arange(c + 1, dtype=np.float64), sigma[..., None] ** 2)  # n = 0..c
    return np.concatenate([half[..., :0:-1], half], axis=-1)  # T(-n) = T(n)


def apply_difference(profiles: np.ndarray, operator: str) -> np.ndarray:
    """Apply a 1-D difference ``operator`` (key of :data:`DIFFERENCE_MASKS`) along the last axis.

    ``profiles`` are in coordinate order (``n`` increasing, docs/methods.md section 1);
    half-sample mirror extension at the border (``scipy.ndimage.correlate1d`` mode ``'reflect'``),
    the number of taps is kept (docs/methods.md section 3.2, [B] Sec. 3).

    Parameters
    ----------
    profiles : array ``(..., k)``
        Profiles in coordinate order.
    operator : str
        ``'identity'``, ``'central'``, ``'forward'``, ``'backward'`` or ``'second'``.

    Returns
    -------
    float64 array ``(..., k)``
        ``out[n] = sum_j mask[j] profiles[n + j - 1]``.

    Raises
    ------
    KeyError
        For an unknown ``operator``.

    The forward difference of an impulse at ``n = 0`` puts its mass at ``n = -1, 0``, i.e.
    centred at ``-1/2``, and its response ``-sum_n n d(n)`` to the unit ramp is 1:

    >>> import numpy as np
    >>> d = apply_difference(np.array([0.0, 0.0, 1.0, 0.0, 0.0]), "forward")
    >>> d.tolist(), float(-(np.arange(-2, 3) * d).sum())
    ([0.0, 1.0, -1.0, 0.0, 0.0], 1.0)
    """
    profiles = np.asarray(profiles, dtype=np.float64)
    if operator == "identity":
        return profiles.copy()
    mask = DIFFERENCE_MASKS[operator]
    return correlate1d(profiles, mask, axis=-1, mode="reflect")


def axis_profiles(k: int, sigma, operator: str) -> np.ndarray:
    """``operator`` applied to the truncated ``T(.; sigma^2)`` (docs/methods.md sections 3.1-3.2).

    Parameters
    ----------
    k : int
        Odd number of taps.
    sigma : array_like
        Scales in grid spacings (``s = sigma^2``).
    operator : str
        Key of :data:`DIFFERENCE_MASKS`.

    Returns
    -------
    float64 array ``sigma.shape + (k,)``
        Profiles in coordinate order (docs/methods.md section 1).

    Raises
    ------
    ValueError, KeyError
        For an invalid ``k`` or an unknown ``operator``.

    On a wide support the central difference has response 1 to the ramp ``n`` and the second
    difference response 1 to ``n^2 / 2`` (both read at ``-n``, docs/methods.md section 1):

    >>> import numpy as np
    >>> n = np.arange(-20, 21)
    >>> d1, d2 = axis_profiles(41, 2.0, "central"), axis_profiles(41, 2.0, "second")
    >>> round(float(-(n * d1).sum()), 9), round(float((n**2 / 2 * d2).sum()), 9)
    (1.0, 1.0)
    """
    return apply_difference(gaussian_profiles(k, sigma), operator)


@lru_cache(maxsize=256)
def _matrix(k: int, operator: str, reverse: bool) -> np.ndarray:
    """Read-only ``(k, k)`` matrix ``M`` with ``profiles @ M`` = the ``operator``'s profiles, reversed
    into row order when ``reverse`` (row ``r`` has ``y = c - r``, docs/methods.md section 1)."""
    matrix = difference_matrix(k, operator).T
    matrix = np.ascontiguousarray(matrix[:, ::-1] if reverse else matrix)
    matrix.flags.writeable = False
    return matrix


def _is_tensor(value) -> bool:
    """True for a torch tensor (without importing torch for numpy users)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _backend(value, like):
    """``value`` as an array of the backend, dtype and device of ``like`` (numpy array or torch tensor);
    a torch tensor keeps its autograd graph."""
    if not _is_tensor(like):
        return np.asarray(value, dtype=like.dtype)
    torch = sys.modules["torch"]
    if isinstance(value, torch.Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    return torch.tensor(np.asarray(value), dtype=like.dtype, device=like.device)


def _operator_profiles(profiles, operator: str, reverse: bool = False):
    """``operator`` applied to coordinate-ordered ``profiles`` ``(..., k)`` as one matrix product."""
    if operator == "identity" and not reverse:
        return profiles
    return profiles @ _backend(_matrix(profiles.shape[-1], operator, reverse), profiles)


def difference_matrix(k: int, operator: str) -> np.ndarray:
    """The linear map of :func:`apply_difference` on ``k`` taps (docs/methods.md section 3.2).

    Built column by column by applying :func:`apply_difference` to the unit vectors, so it carries
    the half-sample mirror boundary: ``apply_difference(f, operator) = f @ D.T`` for profiles ``f``
    ``(..., k)`` in coordinate order.

    Parameters
    ----------
    k : int
        Odd number of taps.
    operator : str
        Key of :data:`DIFFERENCE_MASKS`.

    Returns
    -------
    float64 array ``(k, k)``
        ``D[n, m]``: weight of ``f(m)`` in the output at ``n`` (indices ``0 .. k-1`` for ``-c .. c``).

    Raises
    ------
    ValueError, KeyError
        For an invalid ``k`` or an unknown ``operator``.

    The mirror boundary keeps every row of the second difference summing to zero:

    >>> difference_matrix(3, "second").tolist()
    [[-1.0, 1.0, 0.0], [1.0, -2.0, 1.0], [0.0, 1.0, -1.0]]
    """
    k = check_kernel_size(k)
    return apply_difference(np.eye(k), operator).T


def templates_from_profiles(type_name: str, profile_x, profile_y, alpha=None):
    """Templates of ``type_name`` from 1-D smoothing profiles, for numpy arrays or torch tensors.

    The one implementation of the model family of [B] Secs. 3-4 (docs/methods.md section 3.3; the
    formulas of the module docstring): the operators of :data:`AXIS_OPERATORS` are applied to the
    profiles as matrix products with :func:`difference_matrix` (half-sample mirror boundary), the
    y profile is reversed into row order and the template is the outer product
    ``h[row, col] = p_y(y(row)) p_x(x(col))`` (docs/methods.md section 1).  Only out-of-place
    operations are used, so torch tensors that need gradients pass through (the learnable layer
    :class:`masterkey.nets.scalespace_conv.ScaleSpaceConv2d`).

    Parameters
    ----------
    type_name : str
        One of :data:`TYPE_NAMES`.
    profile_x, profile_y : array ``(..., k)`` or torch tensor
        Smoothing profiles in coordinate order (``n = -c .. c``; x to the right, y upwards), e.g.
        :func:`gaussian_profiles` or
        :func:`masterkey.scalespace.differentiable.discrete_gaussian_profiles`; their leading shapes
        broadcast.  ``lap`` and ``id-lap`` have a single scale in [B]: pass the same profile twice
        (different profiles give ``delta2_x T_x T_y + T_x delta2_y T_y``, which the callers never build).
    alpha : array_like or tensor, optional
        Weight of the Laplacian in ``id-lap = delta - alpha lap5 T`` (required for ``id-lap``,
        ignored otherwise); broadcasts against the profiles' leading shape.

    Returns
    -------
    array ``(..., k, k)``
        Of the profiles' backend, dtype and device (numpy profiles are read as float64).

    Raises
    ------
    ValueError
        For an unknown type, profiles of different or even lengths, or ``id-lap`` without ``alpha``.

    >>> import numpy as np
    >>> p = gaussian_profiles(5, 0.8)
    >>> bool(np.array_equal(templates_from_profiles("T", p, p), np.outer(p, p)))
    True
    """
    check_type(type_name)
    if not _is_tensor(profile_x):
        profile_x = np.asarray(profile_x, dtype=np.float64)
    profile_y = _backend(profile_y, profile_x)
    k = profile_x.shape[-1]
    if profile_y.shape[-1] != k or k % 2 == 0:
        raise ValueError(f"profiles need one odd length, got {k} (x) and {profile_y.shape[-1]} (y)")
    if type_name in AXIS_OPERATORS:
        op_x, op_y = AXIS_OPERATORS[type_name]
        rows = _operator_profiles(profile_y, op_y, reverse=True)
        return rows[..., :, None] * _operator_profiles(profile_x, op_x)[..., None, :]
    smooth_rows = _operator_profiles(profile_y, "identity", reverse=True)
    second_rows = _operator_profiles(profile_y, "second", reverse=True)
    laplacian = (
        smooth_rows[..., :, None] * _operator_profiles(profile_x, "second")[..., None, :]
        + second_rows[..., :, None] * profile_x[..., None, :]
    )
    if type_name == "lap":
        return laplacian
    if alpha is None:
        raise ValueError("type 'id-lap' needs alpha (delta - alpha * lap5 T)")
    delta = np.zeros((k, k))
    delta[(k - 1) // 2, (k - 1) // 2] = 1.0
    return _backend(delta, laplacian) - _backend(alpha, laplacian)[..., None, None] * laplacian


def idealized_templates(type_name: str, k: int, sigma_x, sigma_y=None, alpha=None) -> np.ndarray:
    """Templates of ``type_name`` on a ``k x k`` support for arrays of scales.

    The model family of [B] Secs. 3-4 (docs/methods.md section 3.3); see the module docstring for
    formulas and signs.  Arrays are ``h[row, col]`` in the convention of docs/methods.md section 1.

    Parameters
    ----------
    type_name : str
        One of :data:`TYPE_NAMES`.
    k : int
        Odd kernel size.
    sigma_x, sigma_y : array_like
        Scales along x and y in grid spacings (``s = sigma^2``); ``sigma_y`` defaults to
        ``sigma_x``.  ``lap`` and ``id-lap`` have a single scale (``sigma_y`` omitted or equal).
    alpha : array_like, optional
        Weight of the Laplacian in ``id-lap = delta - alpha lap5 T`` (required for ``id-lap``,
        ignored otherwise).  ``sigma_x``, ``sigma_y`` and ``alpha`` broadcast against each other.

    Returns
    -------
    float64 array ``broadcast_shape + (k, k)``

    Raises
    ------
    ValueError
        For an unknown type, an invalid ``k``, two different scales for ``lap`` / ``id-lap``, or
        ``id-lap`` without ``alpha``.

    Every derivative template has response 1 to its test pattern (docs/methods.md section 3.3) up
    to truncation, here negligible on a 15 x 15 support:

    >>> from masterkey.kernels.conventions import pattern_response
    >>> patterns = {"dx": lambda x, y: x, "dy-": lambda x, y: y, "dyy": lambda x, y: y * y / 2,
    ...             "dxy": lambda x, y: x * y, "lap": lambda x, y: (x * x + y * y) / 4}
    >>> [round(float(pattern_response(idealized_templates(m, 15, 1.0), f)), 4) for m, f in patterns.items()]
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    check_type(type_name)
    k = check_kernel_size(k)
    sigma_x = np.asarray(sigma_x, dtype=np.float64)
    sigma_y = sigma_x if sigma_y is None else np.asarray(sigma_y, dtype=np.float64)
    if type_name not in AXIS_OPERATORS and not np.array_equal(*np.broadcast_arrays(sigma_x, sigma_y)):
        raise ValueError(f"type {type_name!r} has a single scale; sigma_y must equal sigma_x")
    return templates_from_profiles(
        type_name, gaussian_profiles(k, sigma_x), gaussian_profiles(k, sigma_y), alpha
    )
