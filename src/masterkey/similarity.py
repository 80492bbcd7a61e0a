"""Kernel normalisation and similarity (methods.md section 4)."""

from __future__ import annotations

import numpy as np

NEAR_ZERO = 1e-4
"""Kernels with ``max |h| <= NEAR_ZERO`` count as near zero and are dropped."""


def center_norm(kernels: np.ndarray) -> np.ndarray:
    """ "Center norm": subtract each kernel's mean, divide by its l2 norm.

    ``kernels`` has shape ``(N, k, k)``; returns float64 of the same shape.
    A kernel whose centred norm is zero (a constant kernel) becomes NaN.
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    centred = kernels - kernels.mean(axis=(-2, -1), keepdims=True)
    norm = np.sqrt((centred**2).sum(axis=(-2, -1), keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / norm


def max_abs_cosine(kernels: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Largest |cosine| between each centred kernel and the centred references.

    ``kernels``: ``(N, k, k)``; ``references``: ``(R, k, k)`` of the same ``k``.
    Returns ``N`` values in [0, 1] (NaN for constant kernels).  The absolute
    value makes a filter and its negation equally similar.
    """
    a = center_norm(kernels).reshape(len(kernels), -1)
    b = center_norm(references).reshape(len(references), -1)
    return np.abs(a @ b.T).max(axis=1)
