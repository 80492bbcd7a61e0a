"""Pooled ("joint") fits: one scale shared by a group of filters (docs/methods.md section 3).

One scale ``sigma_joint`` (``sigma_x = sigma_y``) is shared by the filters of a group:

* ``A-joint``, ``B-joint``: ``sigma_joint = sqrt(geomean_n(sigma_x,n sigma_y,n))`` over the
  members' own A (resp. B) fits, i.e. the geometric mean of the per-filter ``sigma_x sigma_y`` is
  taken as ``sigma_joint^2``.
* ``C-joint``: minimiser of the summed l1 residuals; ``D-joint``: minimiser of the summed squared
  l2 residuals (same fine grid, 1-D coarse + zoom, vectorised across groups).
* ``id-lap`` members keep their own ``alpha`` (profiled at ``sigma_joint``: l1 for C, l2 otherwise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..templates import TYPE_NAMES
from .discrete import evaluate_criterion, idlap_alpha
from .grid import exact_templates, template_grid
from .methods import as_type_array, fit_filters, residuals
from .normalisation import normalise_for_fitting
from .settings import DEFAULT_SETTINGS, FIT_COLUMNS, JOINT_METHODS, SIGMA_BOUNDS, SearchSettings, chunks
from .types import select_types

__all__ = [
    "fit_joint",
]

def _group_membership(groups, n: int):
    """``(group_labels, member_group, member_filter)`` from a dict or a sequence of index lists."""
    items = list(groups.items()) if isinstance(groups, dict) else list(enumerate(groups))
    labels, member_group, member_filter = [], [], []
    for position, (label, indices) in enumerate(items):
        indices = np.asarray(list(indices), dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"group {label!r} has filter indices outside 0..{n - 1}")
        labels.append(label)
        member_group.append(np.full(len(indices), position))
        member_filter.append(indices)
    if not labels:
        return [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return labels, np.concatenate(member_group), np.concatenate(member_filter)


def fit_joint(
    kernels: np.ndarray,
    types,
    groups,
    methods=JOINT_METHODS,
    settings: SearchSettings = DEFAULT_SETTINGS,
    per_filter: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Pooled fits: one scale ``sigma_joint`` (``sigma_x = sigma_y``) per group of filters.

    The joint fits of [B] Sec. 4 (docs/methods.md section 3.8); see the module docstring.

    Parameters
    ----------
    kernels : array ``(N, k, k)``
        Filters ``h[row, col]`` in the convention of docs/methods.md section 1.
    types : sequence of ``N`` str or None, or None
        Model names; ``None`` entries are selected automatically.
    groups : sequence of index lists, or dict of label to index list
        0-based filter indices of each group (a sequence gets the labels ``0, 1, ...``).
    methods : sequence of str
        Subset of :data:`JOINT_METHODS` (``A-joint``, ``B-joint``, ``C-joint``, ``D-joint``).
    settings : SearchSettings
        Grid sizes and chunking.
    per_filter : pandas.DataFrame, optional
        An existing :func:`fit_filters` result with methods A and/or B (needed for A-/B-joint;
        computed if missing).

    Returns
    -------
    pandas.DataFrame
        One row per (method, group member): ``group``, ``filter``, ``type``, ``method``,
        ``sigma_x = sigma_y = sigma_joint`` (grid spacings, ``s = sigma^2``), ``alpha`` (id-lap
        only), ``l1``, ``l2``, ``rel_l2`` (each member's residuals at ``sigma_joint``),
        ``on_bound`` (A-/B-joint: ``sigma_joint`` outside the bounds, or any member's own fit on a
        bound; C-/D-joint: the optimum on a bound of the fine grid), ``degenerate``.  Degenerate
        members are ignored in the pooling.

    Raises
    ------
    ValueError
        For an unknown method or type, a wrong number of types, or a group index outside
        ``0 .. N-1``.

    Two filters planted at the same scale share it (C-/D-joint to the fine-grid resolution):

    >>> from masterkey.scalespace.templates import idealized_templates
    >>> import numpy as np
    >>> kernels = np.stack([idealized_templates("dx", 15, 1.1), -2 * idealized_templates("dy", 15, 1.1)])
    >>> fits = fit_joint(kernels, ["dx", "dy"], {"pair": [0, 1]}, methods=["B-joint", "D-joint"])
    >>> sorted(set(zip(fits["method"], fits["sigma_x"].round(2))))
    [('B-joint', 1.1), ('D-joint', 1.1)]
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    n, k = len(kernels), kernels.shape[-1]
    methods = list(methods)
    for method in methods:
        if method not in JOINT_METHODS:
            raise ValueError(f"unknown joint method {method!r}; choose from {JOINT_METHODS}")
    type_array = as_type_array(types, n)
    missing = np.flatnonzero(pd.isna(type_array))
    if len(missing):
        selected, _ = select_types(kernels[missing], settings=settings)
        type_array[missing] = np.array(selected, dtype=object)
    labels, member_group, member_filter = _group_membership(groups, n)
    n_groups, n_members = len(labels), len(member_filter)
    grid = template_grid(k, settings.fine_points)
    kk = k * k

    # normalised members (each for its own type)
    member_type = type_array[member_filter]
    h_n = np.full((n_members, k, k), np.nan)
    bad = np.ones(n_members, dtype=bool)
    for type_name in TYPE_NAMES:
        rows = np.flatnonzero(member_type == type_name)
        if len(rows):
            normalised = normalise_for_fitting(kernels[member_filter[rows]], type_name, settings)
            h_n[rows], bad[rows] = normalised.kernels, normalised.degenerate
    flat = np.nan_to_num(h_n.reshape(n_members, kk))

    def member_values(index: np.ndarray, criterion: str):
        """Criterion and alpha of every member at its group's candidate indices ``(n_members, m)``."""
        value = np.zeros(index.shape)
        alpha = np.full(index.shape, np.nan)
        for type_name in TYPE_NAMES:
            rows = np.flatnonzero((member_type == type_name) & ~bad)
            for sl in chunks(len(rows), index.shape[1] * kk * 3, settings):
                r = rows[sl]
                value[r], alpha[r] = evaluate_criterion(
                    grid, type_name, flat[r], index[r], index[r], criterion
                )
        return value, alpha

    def pooled(value: np.ndarray) -> np.ndarray:
        total = np.zeros((n_groups, value.shape[1]))
        np.add.at(total, member_group[~bad], value[~bad])
        return total

    sigma_joint = {}
    bound_joint = {}
    need_variance = [m for m in methods if m in ("A-joint", "B-joint")]
    if need_variance and per_filter is None:
        variance_methods = [m[0] for m in need_variance]
        per_filter = fit_filters(kernels, type_array, methods=variance_methods, settings=settings)
    for method in methods:
        if method in ("A-joint", "B-joint"):
            table = per_filter[per_filter["method"] == method[0]].set_index("filter")
            product = table["sigma_x"].to_numpy() * table["sigma_y"].to_numpy()
            own = product[member_filter]
            own_bound = table["on_bound"].to_numpy()[member_filter]
            usable = ~bad & np.isfinite(own) & (own > 0)
            log_sum = np.zeros(n_groups)
            count = np.zeros(n_groups)
            any_bound = np.zeros(n_groups, dtype=bool)
            np.add.at(log_sum, member_group[usable], np.log(own[usable]))
            np.add.at(count, member_group[usable], 1.0)
            np.logical_or.at(any_bound, member_group[usable], own_bound[usable])
            with np.errstate(invalid="ignore", divide="ignore"):
                sigma = np.sqrt(np.exp(log_sum / count))
            sigma_joint[method] = sigma
            bound_joint[method] = any_bound | (sigma <= SIGMA_BOUNDS[0]) | (sigma >= SIGMA_BOUNDS[1])
        else:
            criterion = "l1" if method == "C-joint" else "l2"
            axis = np.round(np.linspace(0, grid.size - 1, settings.coarse_1d)).astype(int)
            value, _ = member_values(np.broadcast_to(axis, (n_members, len(axis))), criterion)
            best = axis[pooled(value).argmin(axis=1)] if n_groups else np.zeros(0, dtype=int)
            # compass search per group (same rule as zoom), all groups at once
            step = np.full(n_groups, max(1, ((grid.size - 1) // (settings.coarse_1d - 1)) // 2))
            done = np.zeros(n_groups, dtype=bool)
            for _ in range(settings.max_iterations):
                if done.all():
                    break
                candidates = np.clip(best[:, None] + step[:, None] * np.array([0, -1, 1]), 0, grid.size - 1)
                value, _ = member_values(candidates[member_group], criterion)
                j = pooled(value).argmin(axis=1)
                j[done] = 0
                done |= (j == 0) & (step == 1)
                step = np.where(j == 0, np.maximum(step // 2, 1), step)
                best = candidates[np.arange(n_groups), j]
            sigma_joint[method] = grid.sigma[best]
            bound_joint[method] = (best == 0) | (best == grid.size - 1)

    frames = []
    for method in methods:
        sigma = sigma_joint[method][member_group]
        alpha = np.full(n_members, np.nan)
        l1 = np.full(n_members, np.nan)
        l2 = np.full(n_members, np.nan)
        criterion = "l1" if method == "C-joint" else "l2"
        for type_name in TYPE_NAMES:
            rows = np.flatnonzero((member_type == type_name) & ~bad & np.isfinite(sigma))
            if not len(rows):
                continue
            if type_name == "id-lap":
                lap = exact_templates("lap", k, sigma[rows], None, None).reshape(len(rows), kk)
                residual = grid.delta.reshape(kk) - flat[rows]
                alpha[rows] = idlap_alpha(residual, lap, criterion)
            template = exact_templates(type_name, k, sigma[rows], sigma[rows], alpha[rows])
            l1[rows], l2[rows] = residuals(template, h_n[rows])
        norm = np.sqrt(np.nansum(h_n * h_n, axis=(1, 2)))
        frames.append(
            pd.DataFrame(
                {
                    "group": np.array(labels, dtype=object)[member_group] if n_members else [],
                    "filter": member_filter,
                    "type": member_type,
                    "method": method,
                    "sigma_x": np.where(bad, np.nan, sigma),
                    "sigma_y": np.where(bad, np.nan, sigma),
                    "alpha": alpha,
                    "l1": l1,
                    "l2": l2,
                    "rel_l2": l2 / np.where(bad, np.nan, norm),
                    "on_bound": bound_joint[method][member_group] & ~bad,
                    "degenerate": bad,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["group"] + FIT_COLUMNS)
    return pd.concat(frames, ignore_index=True)
