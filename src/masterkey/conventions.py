"""Coordinate and sign conventions for depthwise kernels (methods.md section 1).

This is the only module that defines them; everything else imports from here.

* A kernel is a ``k x k`` array ``h[row, col]`` with ``k`` odd and centre
  ``c = (k - 1) / 2``.
* Spatial coordinates of an entry: ``x = col - c`` (to the right) and
  ``y = c - row`` (**upwards**: the top row has ``y = +c``).  This is the
  convention of the published master key filters and of scale-space theory.
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
    "pattern_response",
    "centre_share",
]


def check_kernel_size(k: int) -> int:
    """Return ``k`` if it is an odd positive kernel size, else raise ``ValueError``."""
    if int(k) != k or k < 1 or k % 2 == 0:
        raise ValueError(f"kernel size must be an odd positive integer, got {k!r}")
    return int(k)


def kernel_coordinates(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate grids ``(x, y)`` of a ``k x k`` kernel, each of shape ``(k, k)``.

    ``x[row, col] = col - c`` and ``y[row, col] = c - row`` with ``c = (k - 1) / 2``,
    so ``y`` points upwards (the top row has ``y = +c``).
    """
    k = check_kernel_size(k)
    c = (k - 1) // 2
    offsets = np.arange(k, dtype=np.float64) - c
    x = np.broadcast_to(offsets[None, :], (k, k)).copy()
    y = np.broadcast_to(-offsets[:, None], (k, k)).copy()
    return x, y


def pattern_response(kernels: np.ndarray, pattern) -> np.ndarray:
    """Convolution response at the centre, ``R_f(h) = sum_p h(p) f(-p)``.

    ``kernels`` has shape ``(..., k, k)``; ``pattern`` is a callable
    ``f(x, y)`` on the coordinate grids of :func:`kernel_coordinates`
    (or a ready ``k x k`` array of ``f(-p)``).  Returns shape ``(...)``.
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    k = kernels.shape[-1]
    if callable(pattern):
        x, y = kernel_coordinates(k)
        reflected = np.asarray(pattern(-x, -y), dtype=np.float64)
    else:
        reflected = np.asarray(pattern, dtype=np.float64)
    return np.einsum("...ij,ij->...", kernels, reflected)


def centre_share(kernels: np.ndarray, size: int = 3) -> np.ndarray:
    """Share of ``sum |h|`` that lies in the central ``size x size`` window.

    For ``kernels`` of shape ``(N, k, k)`` returns ``N`` values in [0, 1]
    (NaN for an all-zero kernel).  A 7x7 kernel with i.i.d. entries has an
    expected share of ``9 / 49 ~ 0.18``; learned ConvNeXt kernels are far
    more concentrated.
    """
    kernels = np.abs(np.asarray(kernels, dtype=np.float64))
    k = kernels.shape[-1]
    check_kernel_size(k)
    size = min(check_kernel_size(size), k)
    lo = (k - size) // 2
    inner = kernels[..., lo : lo + size, lo : lo + size].sum(axis=(-2, -1))
    total = kernels.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return inner / total
