"""Coordinate and sign conventions for depthwise kernels (docs/methods.md section 1).

This is the only module that defines them; everything else imports from here, and docstrings
elsewhere refer to "the convention of docs/methods.md section 1".

* A kernel is a ``k x k`` array ``h[row, col]`` with ``k`` odd and centre
  ``c = (k - 1) / 2``.
* Spatial coordinates of an entry: ``x = col - c`` (to the right) and
  ``y = c - row`` (**upwards**: the top row has ``y = +c``).  This is the
  convention of the published master key filters and of scale-space theory.
  A band kernel ``kh x kw`` (e.g. ``1 x 9``) has the same rule per axis:
  ``x = col - (kw - 1) / 2``, ``y = (kh - 1) / 2 - row`` (:func:`grid_coordinates`).
* A kernel is analysed exactly as stored in the network's weight tensor
  (PyTorch computes cross-correlation; that does not change what is stored).
* The response of a kernel to a test pattern ``f`` is the convolution response
  at the centre, ``R_f(h) = sum_p h(p) f(-p)``.  With this convention a
  first-derivative template along x has response +1 to the unit ramp
  ``f(x, y) = x``; it is positive for ``x < 0`` and negative for ``x > 0``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "check_kernel_size",
    "kernel_coordinates",
    "grid_coordinates",
    "pattern_response",
    "centre_share",
    "mass_ratio_sizes",
    "kernel_mass_ratio",
    "central_crop",
]


def check_kernel_size(k: int) -> int:
    """Validate an odd positive kernel size (docs/methods.md section 1: centre ``c = (k - 1) / 2``).

    Parameters
    ----------
    k : int
        Proposed kernel size (an integral float such as ``7.0`` is accepted).

    Returns
    -------
    int
        ``k`` as a Python ``int``.

    Raises
    ------
    ValueError
        If ``k`` is not integral, not positive, or even.

    >>> check_kernel_size(7.0), [check_kernel_size(k) for k in (1, 3)]
    (7, [1, 3])
    >>> check_kernel_size(4)
    Traceback (most recent call last):
    ...
    ValueError: kernel size must be an odd positive integer, got 4
    """
    if int(k) != k or k < 1 or k % 2 == 0:
        raise ValueError(f"kernel size must be an odd positive integer, got {k!r}")
    return int(k)


def kernel_coordinates(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate grids ``(x, y)`` of a ``k x k`` kernel (the convention of docs/methods.md section 1).

    ``x[row, col] = col - c`` and ``y[row, col] = c - row`` with ``c = (k - 1) / 2``,
    so ``y`` points upwards (the top row has ``y = +c``).  Units: grid spacings.

    Parameters
    ----------
    k : int
        Odd kernel size.

    Returns
    -------
    x, y : float64 arrays ``(k, k)``
        Coordinates of every entry ``h[row, col]``.

    Raises
    ------
    ValueError
        If ``k`` is not an odd positive integer (:func:`check_kernel_size`).

    The top-left entry sits at ``(-c, +c)``, the bottom-right one at ``(+c, -c)``:

    >>> x, y = kernel_coordinates(3)
    >>> [(float(x[r, c]), float(y[r, c])) for r, c in ((0, 0), (2, 2))]
    [(-1.0, 1.0), (1.0, -1.0)]
    """
    k = check_kernel_size(k)
    return grid_coordinates(k, k)


def grid_coordinates(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate grids ``(x, y)`` of a ``height x width`` kernel, square or band (docs/methods.md s. 1).

    ``x[row, col] = col - (width - 1) / 2`` and ``y[row, col] = (height - 1) / 2 - row``: the
    convention of :func:`kernel_coordinates` along each axis, so a ``1 x k`` band lies on
    ``y = 0`` and a ``k x 1`` band on ``x = 0``.  Units: grid spacings.

    Parameters
    ----------
    height, width : int
        Odd positive numbers of rows and columns.

    Returns
    -------
    x, y : float64 arrays ``(height, width)``

    Raises
    ------
    ValueError
        If a size is not an odd positive integer.

    >>> x, y = grid_coordinates(1, 5)
    >>> x.tolist(), y.tolist()
    ([[-2.0, -1.0, 0.0, 1.0, 2.0]], [[0.0, 0.0, 0.0, 0.0, 0.0]])
    """
    height, width = check_kernel_size(height), check_kernel_size(width)
    cols = np.arange(width, dtype=np.float64) - (width - 1) // 2
    rows = (height - 1) // 2 - np.arange(height, dtype=np.float64)
    x = np.broadcast_to(cols[None, :], (height, width)).copy()
    y = np.broadcast_to(rows[:, None], (height, width)).copy()
    return x, y


def pattern_response(kernels: np.ndarray, pattern) -> np.ndarray:
    """Convolution response at the centre, ``R_f(h) = sum_p h(p) f(-p)`` (docs/methods.md section 1).

    This response fixes every sign of the project: a first-difference template has response +1 to
    the unit ramp in its direction, so the x-difference is positive for ``x < 0`` and the
    y-difference positive for ``y < 0`` (the lower rows, since ``y`` points upwards).

    Parameters
    ----------
    kernels : array ``(..., k, k)``
        Kernels ``h[row, col]`` in the convention of docs/methods.md section 1.
    pattern : callable or array
        A callable ``f(x, y)`` evaluated at the reflected coordinates ``-p`` of
        :func:`kernel_coordinates`, or a ready array of ``f(-p)`` that broadcasts against
        ``kernels`` (``(k, k)``, or one per kernel).

    Returns
    -------
    float64 array ``(...)``
        One response per kernel.

    >>> import numpy as np
    >>> dx = np.array([[0, 0, 0], [0.5, 0, -0.5], [0, 0, 0]])  # central x-difference
    >>> dy = dx.T[::-1]  # central y-difference: positive in the bottom row (y = -1)
    >>> [float(pattern_response(dx, lambda x, y: x)), float(pattern_response(dy, lambda x, y: y))]
    [1.0, 1.0]
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    k = kernels.shape[-1]
    if callable(pattern):
        x, y = kernel_coordinates(k)
        reflected = np.asarray(pattern(-x, -y), dtype=np.float64)
    else:
        reflected = np.asarray(pattern, dtype=np.float64)
    return (kernels * reflected).sum(axis=(-2, -1))


def centre_share(kernels: np.ndarray, size: int = 3) -> np.ndarray:
    """Share of ``sum |h|`` that lies in the central ``size x size`` window.

    A 7x7 kernel with i.i.d. entries has an expected share of ``9 / 49 ~ 0.18``; learned ConvNeXt
    kernels are far more concentrated.  This is the kernel mass ratio ``KMR(size)`` of
    docs/methods.md section 7 ([D]).

    Parameters
    ----------
    kernels : array ``(..., k, k)``
        Square kernels of odd size ``k``.
    size : int
        Odd window size; a window larger than the kernel is clipped to ``k``.

    Returns
    -------
    float64 array ``(...)``
        Values in [0, 1]; NaN for an all-zero kernel.

    Raises
    ------
    ValueError
        If ``k`` or ``size`` is not an odd positive integer.

    >>> import numpy as np
    >>> round(float(centre_share(np.ones((1, 7, 7)))[0] * 49), 9)  # uniform mass: 9 of 49 entries
    9.0
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    k = kernels.shape[-1]
    check_kernel_size(k)
    size = min(check_kernel_size(size), k)
    flat = kernels.reshape(-1, *kernels.shape[-2:])
    return kernel_mass_ratio(flat, [size], check_finite=False)[1][:, 0].reshape(kernels.shape[:-2])


def mass_ratio_sizes(height: int, width: int) -> np.ndarray:
    """The window sizes ``s = 1, 3, ..., <= min(height, width)`` (int)."""
    return np.arange(1, min(height, width) + 1, 2)


def kernel_mass_ratio(kernels, sizes=None, check_finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Kernel mass ratio ([D] Sec. 5; docs/methods.md section 7) of centred kernels of any size.

    ``KMR(s) = sum_{centred s x s} |k| / sum |k|``, the window centred on the kernel's origin at
    index ``(H // 2, W // 2)`` (the centre of an odd kernel; a NIFF kernel's zero offset).

    Returns ``(sizes, ratios)``: ``ratios[n, i] = KMR_n(sizes[i])`` for kernels ``(N, H, W)``.
    ``sizes`` defaults to :func:`mass_ratio_sizes`; each must be odd and ``<= min(H, W)``.  An
    all-zero kernel has ratio NaN.  Raises ``ValueError`` for other shapes or sizes, and for
    non-finite kernels when ``check_finite``.
    """
    array = np.abs(np.asarray(kernels, dtype=np.float64))
    if array.ndim != 3 or min(array.shape[1:]) < 1:
        raise ValueError(f"kernels must be (N, H, W), got shape {array.shape}")
    if check_finite and not np.isfinite(array).all():
        raise ValueError("kernels hold non-finite values; the kernel mass ratio is undefined")
    _, height, width = array.shape
    sizes = mass_ratio_sizes(height, width) if sizes is None else np.asarray(sizes, dtype=int)
    if np.any(sizes % 2 == 0) or np.any(sizes < 1) or np.any(sizes > min(height, width)):
        raise ValueError(f"window sizes must be odd and in [1, {min(height, width)}], got {sizes.tolist()}")
    # a 2-D cumulative sum: any centred window's mass in O(1)
    table = np.zeros((len(array), height + 1, width + 1))
    table[:, 1:, 1:] = array.cumsum(axis=1).cumsum(axis=2)
    cy, cx = height // 2, width // 2
    top, left = cy - sizes // 2, cx - sizes // 2
    bottom, right = cy + sizes // 2 + 1, cx + sizes // 2 + 1
    window = table[:, bottom, right] - table[:, top, right] - table[:, bottom, left] + table[:, top, left]
    total = table[:, -1, -1][:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(total > 0, window / total, np.nan)
    return sizes, ratios


def central_crop(kernels, size: int) -> np.ndarray:
    """The centred ``size x size`` part of centred kernels ``(N, H, W)`` (``size`` odd, ``<= H, W``)."""
    array = np.asarray(kernels)
    if size % 2 == 0 or size > min(array.shape[-2:]):
        raise ValueError(f"crop size must be odd and <= {min(array.shape[-2:])}, got {size}")
    cy, cx, r = array.shape[-2] // 2, array.shape[-1] // 2, size // 2
    return array[..., cy - r : cy + r + 1, cx - r : cx + r + 1]
