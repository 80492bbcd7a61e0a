"""Kernel mass ratio ([D] Sec. 5): how much of a spatial kernel's l1 mass lies near its centre.

For a centred kernel ``k`` of size ``H x W`` (origin at index ``(H//2, W//2)``, as
:meth:`~.layer.NIFFConv2d.spatial_kernels` and every odd ``k x k`` convolution weight have it),
``KMR(s) = sum_{centred s x s} |k| / sum |k|`` for odd ``s = 1, 3, ..., <= min(H, W)``; the
effective size at level ``q`` is the smallest such ``s`` with ``KMR(s) >= q`` (``min(H, W)``, the
whole kernel, when none reaches it, which only an even-sized kernel whose last row or column
carries mass can do).  Sizes are in grid spacings of the layer's feature map.  docs/methods.md
section 7.
"""

from __future__ import annotations

import numpy as np

from ..kernels.conventions import kernel_mass_ratio, mass_ratio_sizes

# kernel_mass_ratio and mass_ratio_sizes live with the other kernel conventions; re-exported here
__all__ = ["LEVELS", "mass_ratio_sizes", "kernel_mass_ratio", "effective_size", "central_crop"]

LEVELS = (0.5, 0.9)
"""The effective-size levels reported ([D]: 50 % and 90 % of the l1 mass)."""


def effective_size(
    sizes: np.ndarray, ratios: np.ndarray, level: float, full_size: int | None = None
) -> np.ndarray:
    """Smallest ``sizes[i]`` with ``ratios[:, i] >= level`` per kernel (float; ``full_size``, default
    ``max(sizes) + 1`` for an even kernel, where none reaches the level; NaN for NaN ratios)."""
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], got {level}")
    sizes = np.asarray(sizes)
    ratios = np.asarray(ratios, dtype=np.float64)
    reached = ratios >= level - 1e-12
    first = np.argmax(reached, axis=1)
    fallback = float(full_size if full_size is not None else sizes.max() + 1)
    result = np.where(reached.any(axis=1), sizes[first].astype(float), fallback)
    return np.where(np.isnan(ratios).any(axis=1), np.nan, result)


def central_crop(kernels, size: int) -> np.ndarray:
    """The centred ``size x size`` part of centred kernels ``(N, H, W)`` (``size`` odd, ``<= H, W``)."""
    array = np.asarray(kernels)
    if size % 2 == 0 or size > min(array.shape[-2:]):
        raise ValueError(f"crop size must be odd and <= {min(array.shape[-2:])}, got {size}")
    cy, cx, r = array.shape[-2] // 2, array.shape[-1] // 2, size // 2
    return array[..., cy - r : cy + r + 1, cx - r : cx + r + 1]
