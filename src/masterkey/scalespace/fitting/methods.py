"""The per-filter fitting methods A, B, C1, C2, D1, D2 (docs/methods.md section 3), :func:`fit_filters`.

* ``A``: variance matching through continuous relations.  From ``V_g = V(|h_n| |g|)`` with ``g``
  the template at ``sigma_ref`` (:func:`masterkey.scalespace.spread.reference_template`):
  ``sigma = sqrt(V_g / kappa)`` per axis with ``kappa = 1/2`` along a smoothing direction and
  ``3/2`` along a first-derivative direction ([B]'s ``sqrt(2 V_g)`` and ``sqrt(2 V_g/3)``).
  Not fixed by [B], derived the same way for the continuous Gaussian weighted by itself:
  ``kappa = 7/6`` along a second-derivative direction (``dxx``, ``dyy``) and, for ``lap``,
  ``V_xx = V_yy = sigma^2/2``, hence ``sigma = sqrt(V_xx + V_yy)``.  These relations are exact
  only for a continuous filter with ``sigma = sigma_ref``; elsewhere A is an approximation
  (e.g. a filter with sigma 1.5 gives about 1.2).  No search, so ``on_bound`` flags a value
  outside ``[0.01, 3]`` (values are not clipped).
* ``B``: variance matching against the discrete templates: ``sigma_x`` solves
  ``V_xx(|t(sigma_x, sigma_ref)| |t(sigma_ref, sigma_ref)|) = V_g,xx(h_n)`` (likewise y); for
  separable templates this is a 1-D relation, tabulated on the fine sigma grid (monotone for
  ``k = 7``; otherwise its increasing branch up to its maximum is used) and inverted by linear
  interpolation in ``log sigma``.  Near sigma -> 0 the relation is flat (the template tends to the
  bare difference mask), so small scales are poorly determined by B.  ``lap`` matches the mean of
  ``V_xx`` and ``V_yy`` with a single sigma.  ``on_bound`` when the target is out of reach.
* ``C1`` / ``C2``: minimise ``l1`` with separate / the same scale along x and y.
* ``D1`` / ``D2``: minimise ``l2`` with separate / the same scale.
* ``lap`` has a single scale (C1 = C2, D1 = D2).  ``id-lap`` is fitted in ``(sigma, alpha)``
  (C1 = C2 is the l1 fit, D1 = D2 the l2 fit; the variance methods A, B report the l2 fit); the
  search runs over both, and at the final sigma ``alpha`` is profiled out exactly with the exact
  template (l2: clipped least squares ``alpha = <delta - h_n, L> / ||L||^2``; l1: clipped weighted
  median of ``(delta - h_n)/L`` with weights ``|L|``; ``L = lap5 T``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..spread import reference_template, spread_moments
from ..templates import AXIS_OPERATORS, DERIVATIVE_ORDER, TYPE_NAMES, check_type
from .continuous import search_l1, search_l2
from .grid import TemplateGrid, exact_templates, template_grid
from .normalisation import normalise_for_fitting
from .settings import DEFAULT_SETTINGS, FIT_COLUMNS, METHODS, SIGMA_BOUNDS, SearchSettings, chunks
from .types import select_types

__all__ = [
    "KAPPA",
    "residuals",
    "as_type_array",
    "fit_filters",
]

KAPPA = {0: 0.5, 1: 1.5, 2: 7.0 / 6.0}
"""Method A: ``V_g = kappa sigma^2`` at ``sigma = sigma_ref``, per derivative order along an axis."""


def residuals(templates: np.ndarray, normalised: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residuals ``l1 = sum |t - h_n|`` and ``l2 = sqrt(sum (t - h_n)^2)`` over the last two axes.

    docs/methods.md section 3.5 ([B] Sec. 4).

    Parameters
    ----------
    templates, normalised : arrays ``(..., k, k)``
        Templates ``t`` and normalised kernels ``h_n``; they broadcast against each other.

    Returns
    -------
    l1, l2 : float64 arrays ``(...)``

    >>> import numpy as np
    >>> h = np.zeros((1, 3, 3)); h[0, 0, 0], h[0, 1, 1] = 3.0, -4.0
    >>> [float(r[0]) for r in residuals(np.zeros((1, 3, 3)), h)]
    [7.0, 5.0]
    """
    difference = templates - normalised
    return np.abs(difference).sum(axis=(-2, -1)), np.sqrt((difference * difference).sum(axis=(-2, -1)))


def _variance_method(method: str, type_name: str, h_n: np.ndarray, grid: TemplateGrid):
    """Methods A and B for non-id-lap types: returns ``(sigma_x, sigma_y, on_bound)``."""
    k = grid.k
    _, variance = spread_moments(np.abs(h_n) * np.abs(reference_template(type_name, k)))
    v_xx, v_yy = variance[:, 0, 0], variance[:, 1, 1]
    lo, hi = SIGMA_BOUNDS
    if method == "A":
        if type_name == "lap":
            sigma_x = sigma_y = np.sqrt(v_xx + v_yy)
        else:
            order_x, order_y = DERIVATIVE_ORDER[type_name]
            sigma_x = np.sqrt(v_xx / KAPPA[order_x])
            sigma_y = np.sqrt(v_yy / KAPPA[order_y])
        on_bound = (sigma_x <= lo) | (sigma_x >= hi) | (sigma_y <= lo) | (sigma_y >= hi)
        return sigma_x, sigma_y, on_bound
    phi_x, phi_y = grid.variance_relation(type_name)
    targets = (0.5 * (v_xx + v_yy), 0.5 * (v_xx + v_yy)) if type_name == "lap" else (v_xx, v_yy)
    log_sigma = np.log(grid.sigma)
    out, on_bound = [], np.zeros(len(h_n), dtype=bool)
    for phi, target in zip((phi_x, phi_y), targets, strict=True):
        # invert the increasing branch up to the maximum of phi (phi is monotone for k = 7; for larger k
        # the second-difference relation turns down beyond sigma ~ 1.7)
        top = int(np.argmax(phi)) + 1
        branch = np.maximum.accumulate(phi[:top])
        value = np.exp(np.interp(target, branch, log_sigma[:top]))
        on_bound |= (target <= branch[0]) | (target >= branch[-1]) | ~np.isfinite(target)
        out.append(value)
    return out[0], out[1], on_bound


def _fit_type(type_name: str, h_n: np.ndarray, methods, grid: TemplateGrid, settings: SearchSettings):
    """All ``methods`` for filters of one type.

    Returns a dict method -> ``(sigma_x, sigma_y, alpha, on_bound)``.
    """
    flat = h_n.reshape(len(h_n), grid.k * grid.k)
    results = {}
    cache = {}

    def search(criterion, mode):
        if type_name not in AXIS_OPERATORS:
            mode = "same"
        if (criterion, mode) not in cache:  # continuous scales; the l2 optimum is one of the l1 starts
            if criterion == "l1":
                cache[criterion, mode] = (*search_l1(grid, type_name, flat, mode, settings), None)
            else:
                sx, sy, alpha, bound, u = search_l2(grid, type_name, flat, mode, settings)
                cache[criterion, mode] = (sx, sy, alpha, bound, u)
        return cache[criterion, mode]

    for method in methods:
        if method in ("A", "B"):
            if type_name == "id-lap":
                results[method] = search("l2", "same")[:4]
            else:
                sx, sy, bound = _variance_method(method, type_name, h_n, grid)
                results[method] = (sx, sy, np.full(len(h_n), np.nan), bound)
        elif method in ("C1", "C2", "D1", "D2"):
            criterion = "l1" if method[0] == "C" else "l2"
            results[method] = search(criterion, "separate" if method[1] == "1" else "same")[:4]
        else:
            raise ValueError(f"unknown fitting method {method!r}; choose from {METHODS}")
    return results


def as_type_array(types, n: int) -> np.ndarray:
    """Validated object array of ``n`` scale-space types (``None`` = to be selected automatically).

    Parameters
    ----------
    types : sequence of ``n`` str or None, or None
        Model names (docs/methods.md section 3.3); ``None`` stands for ``n`` unknown types.
    n : int
        Number of kernels.

    Returns
    -------
    object array ``(n,)``

    Raises
    ------
    ValueError
        If the length differs from ``n`` or a name is unknown.

    >>> as_type_array(["dx", None], 2).tolist(), as_type_array(None, 1).tolist()
    (['dx', None], [None])
    """
    types = np.array([None] * n if types is None else list(types), dtype=object)
    if len(types) != n:
        raise ValueError(f"got {len(types)} types for {n} kernels")
    for name in set(types.tolist()) - {None}:
        check_type(name)
    return types


def fit_filters(kernels: np.ndarray, types=None, methods=METHODS,
                settings: SearchSettings = DEFAULT_SETTINGS) -> pd.DataFrame:  # fmt: skip
    """Fit every kernel with every method (see module docstring; [B] Sec. 4, docs/methods.md s. 3.6).

    Parameters
    ----------
    kernels : array ``(N, k, k)``
        Filters ``h[row, col]`` in the convention of docs/methods.md section 1.
    types : sequence of ``N`` str or None, or None
        Model names; ``None`` entries (or ``types=None``) are selected automatically with
        :func:`select_types`.
    methods : sequence of str
        Subset of :data:`~.settings.METHODS` (default all: A, B, C1, C2, D1, D2).
    settings : SearchSettings
        Grid sizes, iteration limits and chunking of the searches.

    Returns
    -------
    pandas.DataFrame
        One row per (filter, method), filter-major: ``filter`` (0-based index), ``type``,
        ``method``, ``sigma_x``, ``sigma_y`` (grid spacings, ``s = sigma^2``), ``alpha`` (NaN except
        id-lap), ``l1``, ``l2``, ``rel_l2`` (``l2 / ||h_n||``), ``on_bound``, ``degenerate``.
        Degenerate kernels get NaN numbers and ``degenerate=True``.

    Raises
    ------
    ValueError
        For kernels not of shape ``(N, k, k)``, an unknown method or type, or a wrong number of
        types.

    A planted template (any amplitude and sign) is recovered where truncation is negligible:

    >>> from masterkey.scalespace.templates import idealized_templates
    >>> planted = -3 * idealized_templates("dx", 15, 1.3, 0.8)[None]
    >>> fits = fit_filters(planted, ["dx"], methods=["B", "C1", "D1"])
    >>> fits[["method", "sigma_x", "sigma_y"]].round(3).values.tolist()
    [['B', 1.3, 0.8], ['C1', 1.3, 0.8], ['D1', 1.3, 0.8]]
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2]:
        raise ValueError(f"kernels must have shape (N, k, k), got {kernels.shape}")
    methods = list(methods)
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown fitting method {method!r}; choose from {METHODS}")
    n, k = len(kernels), kernels.shape[-1]
    type_array = as_type_array(types, n)
    missing = np.flatnonzero(pd.isna(type_array))
    if len(missing):
        selected, _ = select_types(kernels[missing], settings=settings)
        type_array[missing] = np.array(selected, dtype=object)
    grid = template_grid(k, settings.fine_points)
    shape = (n, len(methods))
    columns = {name: np.full(shape, np.nan) for name in ("sigma_x", "sigma_y", "alpha", "l1", "l2", "rel_l2")}
    on_bound = np.zeros(shape, dtype=bool)
    degenerate = np.ones(n, dtype=bool)
    for type_name in TYPE_NAMES:
        rows = np.flatnonzero(type_array == type_name)
        if len(rows) == 0:
            continue
        normalised = normalise_for_fitting(kernels[rows], type_name, settings)
        h_n, bad = normalised.kernels, normalised.degenerate
        degenerate[rows] = bad
        rows, h_n = rows[~bad], h_n[~bad]
        if len(rows) == 0:
            continue
        norm = np.sqrt((h_n * h_n).sum(axis=(1, 2)))
        fits = _fit_type(type_name, h_n, methods, grid, settings)
        for method, (sx, sy, alpha, bound) in fits.items():
            l1 = np.empty(len(rows))
            l2 = np.empty(len(rows))
            for sl in chunks(len(rows), 4 * k * k, settings):  # exact templates at the fitted scales
                template = exact_templates(type_name, k, sx[sl], sy[sl], alpha[sl])
                l1[sl], l2[sl] = residuals(template, h_n[sl])
            column = methods.index(method)
            for name, values in (("sigma_x", sx), ("sigma_y", sy), ("alpha", alpha), ("l1", l1), ("l2", l2),
                                 ("rel_l2", l2 / norm)):  # fmt: skip
                columns[name][rows, column] = values
            on_bound[rows, column] = bound
    frame = pd.DataFrame(
        {
            "filter": np.repeat(np.arange(n), len(methods)),
            "type": np.repeat(type_array, len(methods)),
            "method": np.tile(np.array(methods, dtype=object), n),
            **{name: values.ravel() for name, values in columns.items()},
            "on_bound": on_bound.ravel(),
            "degenerate": np.repeat(degenerate, len(methods)),
        }
    )
    return frame[FIT_COLUMNS]
