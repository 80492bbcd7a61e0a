"""Automatic selection of the scale-space type of a kernel (docs/methods.md section 3).

The type whose template, at its best scales, leaves the smallest l2 residual in a free fit
``a t + b``, i.e. the largest ``|cosine|`` between the centred filter and the centred template.
The absolute value matters: negated filters (two of the 8 published ones) keep their type.  All
types are scored on the coarse grid, the best ``refine_top`` (default 2) are refined by zoom.
"""

from __future__ import annotations

import numpy as np

from ..templates import TYPE_NAMES, check_type
from .discrete import coarse_search, zoom
from .grid import template_grid
from .normalisation import basic_degenerate
from .settings import DEFAULT_SETTINGS, SearchSettings

__all__ = [
    "select_types",
]

def _centred_unit(kernels: np.ndarray):
    flat = kernels.reshape(len(kernels), -1)
    degenerate = basic_degenerate(kernels)
    centred = np.where(degenerate[:, None], 0.0, np.nan_to_num(flat))
    centred = centred - centred.mean(axis=1, keepdims=True)
    norm = np.sqrt((centred * centred).sum(axis=1))
    degenerate |= ~(norm > 0)
    centred = centred / np.where(degenerate, 1.0, norm)[:, None]
    return centred, degenerate


def select_types(kernels: np.ndarray, candidates=TYPE_NAMES, refine_top: int = 2,
                 settings: SearchSettings = DEFAULT_SETTINGS):  # fmt: skip
    """Automatic scale-space type of each kernel (docs/methods.md section 3.4; types of [B] Secs. 3-4).

    The type whose template at its best scales has the largest ``|cosine|`` with the centred
    kernel (equivalently the smallest residual of a free fit ``a t + b``); see module docstring.
    Scales are searched in ``SIGMA_BOUNDS`` (grid spacings, ``s = sigma^2``).

    Parameters
    ----------
    kernels : array ``(N, k, k)``
        Filters ``h[row, col]`` in the convention of docs/methods.md section 1.
    candidates : sequence of str
        Types to choose from (default all of
        :data:`~masterkey.scalespace.templates.TYPE_NAMES`).
    refine_top : int
        Number of best coarse-grid types per kernel refined on the fine grid.
    settings : SearchSettings
        Grid sizes and chunking.

    Returns
    -------
    types : list of ``N`` str or None
        ``None`` for degenerate (non-finite or constant) kernels.
    abs_cosine : float64 array ``(N,)``
        ``|cosine|`` in [0, 1] at the best scales; NaN for degenerate kernels.

    Raises
    ------
    ValueError
        For an unknown candidate type.

    Templates under an affine map of either sign keep their type:

    >>> from masterkey.scalespace.templates import idealized_templates
    >>> import numpy as np
    >>> kernels = np.stack([-2 * idealized_templates("dy+", 7, 1.2, 0.8) + 0.1,
    ...                     3 * idealized_templates("dxx", 7, 0.9, 1.4),
    ...                     idealized_templates("id-lap", 7, 0.8, alpha=0.6)])
    >>> types, cosine = select_types(kernels)
    >>> types, cosine.round(6).tolist()
    (['dy+', 'dxx', 'id-lap'], [1.0, 1.0, 1.0])
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    candidates = [check_type(c) for c in candidates]
    n, k = len(kernels), kernels.shape[-1]
    grid = template_grid(k, settings.fine_points)
    h, degenerate = _centred_unit(kernels)
    good = np.flatnonzero(~degenerate)
    hg = h[good]
    # coarse score of every candidate type
    scores = np.full((len(good), len(candidates)), np.inf)
    coarse = {}
    for column, type_name in enumerate(candidates):
        if len(hg) == 0:
            break
        i1, i2, spacing, scores[:, column] = coarse_search(grid, type_name, hg, "cos", "separate", settings)
        coarse[type_name] = (i1, i2, spacing)
    # zoom-refine the best few types per filter, starting from their coarse optimum
    top = np.argsort(scores, axis=1)[:, : max(1, refine_top)]
    for column, type_name in enumerate(candidates):
        rows = np.flatnonzero((top == column).any(axis=1))
        if len(rows):
            i1, i2, spacing = coarse[type_name]
            _, _, value, _ = zoom(grid, type_name, hg[rows], i1[rows], i2[rows], "cos", "separate", spacing,
                                   settings)  # fmt: skip
            scores[rows, column] = np.minimum(scores[rows, column], value)
    types: list = [None] * n
    abs_cosine = np.full(n, np.nan)
    if len(good):
        best = scores.argmin(axis=1)
        names = np.array(candidates, dtype=object)[best]
        for index, name in zip(good.tolist(), names.tolist(), strict=True):
            types[index] = name
        abs_cosine[good] = np.sqrt(np.clip(-scores[np.arange(len(good)), best], 0.0, 1.0))
    return types, abs_cosine
