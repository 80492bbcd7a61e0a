"""Normalisation, similarity and the affine fit of kernels (docs/methods.md sections 4 and 5).

Written once here and used by the clustering, the master key selection and the replacement:

* :func:`centre_norm` ("center norm" of [A]): subtract each kernel's mean, divide by its l2 norm;
* :func:`max_abs_cosine` and :func:`best_match`: ``|cosine|`` between centred kernels and centred
  references (sign-free: a filter and its negation are equally similar);
* :func:`affine_fit` / :func:`affine_map`: the least-squares map ``a t + b`` of a template ``t``
  onto a kernel ``h``, which keeps the kernel's mean and its best-fitting amplitude and sign.
  Its squared residual is ``||h_c||^2 (1 - cos^2)`` with ``h_c`` the centred kernel and ``cos``
  the cosine of the centred arrays, so the best reference by :func:`best_match` is also the one
  with the smallest affine residual.

Kernels are arrays ``(N, kh, kw)`` in the layout of docs/methods.md section 1.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NEAR_ZERO", "centre_norm", "max_abs_cosine", "best_match", "affine_fit", "affine_map"]

NEAR_ZERO = 1e-4
"""Kernels with ``max |h| <= NEAR_ZERO`` count as near zero and are dropped by the clustering."""


def centre_norm(kernels: np.ndarray) -> np.ndarray:
    """Subtract each kernel's mean and divide by its l2 norm ("center norm" of [A]; docs/methods.md s. 4.1).

    ``x_hat = (h - mean h) / ||h - mean h||_2`` over the last two axes.

    Parameters
    ----------
    kernels : array ``(..., kh, kw)``
        Kernels (any leading shape).

    Returns
    -------
    float64 array ``(..., kh, kw)``
        Zero mean and unit l2 norm per kernel; a constant kernel (zero centred norm) becomes NaN.

    >>> import numpy as np
    >>> h = centre_norm(np.arange(9.0).reshape(1, 3, 3))
    >>> bool(np.isclose(h.sum(), 0.0)), bool(np.isclose((h * h).sum(), 1.0))
    (True, True)
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    centred = kernels - kernels.mean(axis=(-2, -1), keepdims=True)
    norm = np.sqrt((centred**2).sum(axis=(-2, -1), keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / norm


def _centred_rows(arrays: np.ndarray) -> np.ndarray:
    flat = np.asarray(arrays, dtype=np.float64).reshape(len(arrays), -1)
    return flat - flat.mean(axis=1, keepdims=True)


def max_abs_cosine(kernels: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Largest ``|cosine|`` between each centred kernel and the centred references (docs/methods.md s. 4.1).

    Sign-free and invariant to affine maps ``a h + b`` (``a != 0``) of either argument.

    Parameters
    ----------
    kernels : array ``(N, k, k)``
    references : array ``(R, k, k)``
        Same ``k`` as ``kernels``.

    Returns
    -------
    float64 array ``(N,)``
        Values in ``[0, 1]`` (NaN for constant kernels or references).

    >>> import numpy as np
    >>> h = np.random.default_rng(0).normal(size=(2, 5, 5))
    >>> max_abs_cosine(-3.0 * h + 1.0, h).round(12).tolist()
    [1.0, 1.0]
    """
    a = centre_norm(kernels).reshape(len(kernels), -1)
    b = centre_norm(references).reshape(len(references), -1)
    return np.abs(a @ b.T).max(axis=1)


def best_match(kernels: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the reference with the largest ``|cosine|`` (centred arrays) per kernel, and that value.

    The reference chosen is also the one with the smallest residual of the affine fit
    :func:`affine_fit` (docs/methods.md sections 4.1 and 5; master key replacement of [Q]).

    Parameters
    ----------
    kernels : array ``(N, kh, kw)``
    references : array ``(R, kh, kw)``
        None of them constant.

    Returns
    -------
    index : int array ``(N,)``
        Best reference per kernel (ties to the lower index); 0 for a constant kernel.
    abs_cosine : float64 array ``(N,)``
        Its ``|cosine|`` in ``[0, 1]``; 0 for a constant kernel.

    Raises
    ------
    ValueError
        If a reference is constant or not finite.

    Kernels that are affine images (any sign) of permuted references find their reference:

    >>> import numpy as np
    >>> refs = np.random.default_rng(3).normal(size=(3, 5, 5))
    >>> index, cosine = best_match(-2.0 * refs[[2, 0, 1]] + 0.3, refs)
    >>> index.tolist(), cosine.round(12).tolist()
    ([2, 0, 1], [1.0, 1.0, 1.0])
    """
    h = _centred_rows(kernels)
    x = _centred_rows(references)
    x_norm = np.linalg.norm(x, axis=1)
    if (x_norm <= 1e-12).any() or not np.isfinite(x).all():
        raise ValueError("the references contain a constant or non-finite array")
    h_norm = np.linalg.norm(h, axis=1)
    cosine = (h @ (x / x_norm[:, None]).T) / np.where(h_norm > 0, h_norm, 1.0)[:, None]
    best = np.abs(cosine).argmax(axis=1)
    return best, np.abs(cosine[np.arange(len(h)), best])


def affine_fit(templates: np.ndarray, kernels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, ``(a, b) = argmin_{a, b} ||a t + b - h||_2`` over the entries of the kernel.

    ``a = <t - mean t, h - mean h> / ||t - mean t||^2`` and ``b = mean h - a mean t``; the squared
    residual is ``||h_c||^2 (1 - cos^2)`` (docs/methods.md section 4.1; the ``a x + b`` of [Q]).

    Parameters
    ----------
    templates, kernels : arrays ``(N, kh, kw)``
        Of the same shape; row ``i`` of ``templates`` is fitted onto row ``i`` of ``kernels``.

    Returns
    -------
    a, b : float64 arrays ``(N,)``
        Slope and offset; a constant or non-finite template gets ``a = 0, b = mean h`` (the
        kernel's mean).

    Raises
    ------
    ValueError
        If the shapes differ.

    A planted affine map is recovered:

    >>> import numpy as np
    >>> t = np.random.default_rng(1).normal(size=(1, 3, 3))
    >>> [round(float(v[0]), 12) for v in affine_fit(t, 2.5 * t - 0.5)]
    [2.5, -0.5]
    """
    t = np.asarray(templates, dtype=np.float64).reshape(len(templates), -1)
    h = np.asarray(kernels, dtype=np.float64).reshape(len(kernels), -1)
    if t.shape != h.shape:
        raise ValueError(f"templates {t.shape} and kernels {h.shape} differ in shape")
    usable = np.isfinite(t).all(axis=1)
    t = np.where(usable[:, None], t, 0.0)
    t_c = t - t.mean(axis=1, keepdims=True)
    h_mean = h.mean(axis=1)
    denominator = (t_c**2).sum(axis=1)
    ok = usable & (denominator > 1e-12 * np.maximum(1.0, (t**2).sum(axis=1)))
    a = np.where(ok, (t_c * (h - h_mean[:, None])).sum(axis=1) / np.where(ok, denominator, 1.0), 0.0)
    b = h_mean - a * t.mean(axis=1)
    return a, b


def affine_map(templates: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """The least-squares ``a t + b`` of every template onto its kernel (:func:`affine_fit`).

    Used by the replacement (docs/methods.md section 5, [B] Sec. 5, [Q]): the result keeps the
    kernel's mean exactly and its amplitude and sign by the best scalar.

    Parameters
    ----------
    templates, kernels : arrays ``(N, kh, kw)``
        Of the same shape.

    Returns
    -------
    float64 array ``(N, kh, kw)``
        ``a t + b`` per row; a constant or non-finite template gives the kernel's mean.

    Raises
    ------
    ValueError
        If the shapes differ.

    The map preserves the kernel's mean, and reproduces an exact affine image:

    >>> import numpy as np
    >>> t, h = np.random.default_rng(2).normal(size=(2, 1, 3, 3))
    >>> same_mean = np.isclose(affine_map(t, h).mean(), h.mean())
    >>> bool(same_mean), bool(np.allclose(affine_map(t, 2 * t + 1), 2 * t + 1))
    (True, True)
    """
    a, b = affine_fit(templates, kernels)
    t = np.nan_to_num(np.asarray(templates, dtype=np.float64))
    return a[:, None, None] * t + b[:, None, None]
