"""Tables of spread measures and model fits for the 8 published master key filters ([Q], [B]).

* :func:`published_spread_table` -> ``spread.csv``: ``filter, type, m_x, m_y, V_xx, V_xy, V_yy,
  mg_x, mg_y, Vg_xx, Vg_xy, Vg_yy, correlation, correlation_g, offset, offset_g`` (see
  :func:`masterkey.scalespace.spread.spread_table`).
* :func:`published_fits_table` -> ``fits.csv`` with exactly the columns :data:`FITS_COLUMNS`
  (``filter`` 1..8 in file order, ``type`` the scale-space type, ``method`` one of ``A, B, C1, C2,
  D1, D2`` and the pooled ``A-joint, B-joint, C-joint, D-joint``; ``alpha`` empty except
  ``id-lap``).
* Writing them as CSV, Markdown or LaTeX (booktabs): :func:`masterkey.core.tables.write_table`.

Types come from automatic selection (:func:`masterkey.scalespace.fitting.select_types`) unless given;
for the published filters this yields ``dy+, dx-, dy-, dx+, dx, dy, id-lap, T``.  The pooled fits
use the groups of [B]: filters {1, 2, 3, 4, 8} and {5, 6} (:data:`PUBLISHED_JOINT_GROUPS`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .fitting import JOINT_METHODS, METHODS, fit_filters, fit_joint, select_types
from .spread import spread_table

__all__ = [
    "SPREAD_CAPTION",
    "FITS_CAPTION",
    "FITS_COLUMNS",
    "PUBLISHED_JOINT_GROUPS",
    "published_types",
    "published_spread_table",
    "published_fits_table",
]

SPREAD_CAPTION = "Spatial spread measures of the 8 published filters"
FITS_CAPTION = "Idealized scale-space models fitted to the 8 published filters"
FITS_COLUMNS = ["filter", "type", "method", "sigma_x", "sigma_y", "alpha", "l1", "l2", "on_bound"]
PUBLISHED_JOINT_GROUPS: dict[str, list[int]] = {"1,2,3,4,8": [1, 2, 3, 4, 8], "5,6": [5, 6]}
"""Pooled groups of [B], 1-based filter numbers."""


def published_types(filters: np.ndarray, types=None) -> list[str]:
    """The model type of each filter: ``types`` if given, else automatic selection."""
    if types is not None:
        return list(types)
    selected, _ = select_types(filters)
    return selected


def published_spread_table(filters: np.ndarray, types=None) -> pd.DataFrame:
    """Spread measures of every filter (``filter`` 1..N) and its ``type``."""
    return spread_table(filters, published_types(filters, types))


def published_fits_table(
    filters: np.ndarray,
    types=None,
    methods=METHODS,
    joint_methods=JOINT_METHODS,
    groups: dict[str, list[int]] | None = None,
) -> pd.DataFrame:
    """All fits of the filters as a DataFrame with exactly :data:`FITS_COLUMNS`.

    ``groups`` (1-based filter numbers, default :data:`PUBLISHED_JOINT_GROUPS`) define the pooled
    fits; filters in no group get no joint rows.  Rows: filter 1..N in order, then the methods in
    the order given (per-filter methods first, then joint ones).
    """
    filters = np.asarray(filters, dtype=np.float64)
    types = published_types(filters, types)
    groups = PUBLISHED_JOINT_GROUPS if groups is None else groups
    per_filter = fit_filters(filters, types, methods=list(methods))
    frames = [per_filter]
    if joint_methods:
        zero_based = {label: [i - 1 for i in members] for label, members in groups.items()}
        variance = [m[0] for m in joint_methods if m in ("A-joint", "B-joint") and m[0] not in methods]
        source = per_filter
        if variance:
            source = pd.concat([per_filter, fit_filters(filters, types, methods=variance)], ignore_index=True)
        joint = fit_joint(filters, types, zero_based, methods=list(joint_methods), per_filter=source)
        frames.append(joint.drop(columns=["group"]))
    table = pd.concat(frames, ignore_index=True)
    order = {name: i for i, name in enumerate(list(methods) + list(joint_methods))}
    table = table.assign(_order=table["method"].map(order)).sort_values(["filter", "_order"], kind="stable")
    table["filter"] = table["filter"] + 1
    return table[FITS_COLUMNS].reset_index(drop=True)
