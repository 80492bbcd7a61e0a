"""Kernel mass ratio ([D] Sec. 5): how much of a spatial kernel's l1 mass lies near its centre.

For a centred kernel ``k`` of size ``H x W`` (origin at index ``(H//2, W//2)``, as
:meth:`masterkey.nets.niff.NIFFConv2d.spatial_kernels` and every odd ``k x k`` convolution weight
have it), ``KMR(s) = sum_{centred s x s} |k| / sum |k|`` for odd ``s = 1, 3, ..., <= min(H, W)``;
the effective size at level ``q`` is the smallest such ``s`` with ``KMR(s) >= q``.  When no window
reaches it (the windows stop at the shorter side, so only an even or non-square kernel with mass
outside them can fail) the whole kernel is needed and its size is ``max(H, W)``.  Sizes are in grid
spacings of the layer's feature map.  docs/methods.md section 7.
"""

from __future__ import annotations

import numpy as np

from ..kernels.conventions import central_crop, kernel_mass_ratio, mass_ratio_sizes

# kernel_mass_ratio, mass_ratio_sizes and central_crop live with the other kernel conventions; re-exported
__all__ = ["LEVELS", "mass_ratio_sizes", "kernel_mass_ratio", "effective_size", "central_crop"]

LEVELS = (0.5, 0.9)
"""The effective-size levels reported ([D]: 50 % and 90 % of the l1 mass)."""


def effective_size(
    sizes: np.ndarray, ratios: np.ndarray, level: float, full_size: int | None = None
) -> np.ndarray:
    """Effective size per kernel: the smallest ``sizes[i]`` with ``ratios[:, i] >= level``.

    ``sizes`` ``(S,)`` odd window sizes and ``ratios`` ``(N, S)`` as :func:`kernel_mass_ratio`
    returns them; ``level`` in ``(0, 1]``.  Returns float ``(N,)`` in grid spacings: ``full_size``
    (the kernel's larger side ``max(H, W)``; default ``max(sizes) + 1``) where no window reaches the
    level, NaN where the ratios are NaN.  Raises ``ValueError`` for a level outside ``(0, 1]``."""
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], got {level}")
    sizes = np.asarray(sizes)
    ratios = np.asarray(ratios, dtype=np.float64)
    reached = ratios >= level - 1e-12
    first = np.argmax(reached, axis=1)
    fallback = float(full_size if full_size is not None else sizes.max() + 1)
    result = np.where(reached.any(axis=1), sizes[first].astype(float), fallback)
    return np.where(np.isnan(ratios).any(axis=1), np.nan, result)
