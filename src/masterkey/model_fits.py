"""Scale-space analysis of every depthwise kernel of a model (issue 3, stage "fits"/"spread").

Joins the numerical core (:mod:`masterkey.fitting`, :mod:`masterkey.spread`) with the kernel
index written by ``extract_kernels``.  Only square kernels of odd size are analysed (band kernels
such as ``1x9`` have no 2-D scale-space model).

Energy explained by the idealized model: for each filter the best method (smallest relative
residual ``rel_l2 = l2 / ||h_n||``) gives ``explained = 1 - rel_l2^2``, the share of the
normalised filter's energy that the template reproduces (negative when the template is worse
than zero).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import UserError
from .fitting import METHODS, fit_filters, select_types
from .spread import spread_table

INDEX_KEYS = ["layer", "stage", "block", "channel", "kernel_size"]
EXPLAINED_THRESHOLDS = (0.5, 0.75, 0.9)


def square_kernel_sizes(arrays: dict[str, np.ndarray]) -> list[str]:
    """Keys of ``arrays`` holding square kernels of odd size ``>= 3`` (e.g. ``"7x7"``)."""
    keys = []
    for key, array in arrays.items():
        kh, kw = array.shape[1:]
        if kh == kw and kh % 2 == 1 and kh >= 3:
            keys.append(key)
    return keys


def _checked(arrays: dict[str, np.ndarray], model: str) -> list[str]:
    keys = square_kernel_sizes(arrays)
    if not keys:
        raise UserError(f"model {model}: no square odd-sized depthwise kernels to analyse")
    for key in keys:
        if not np.isfinite(arrays[key]).all():
            raise UserError(f"model {model}: kernels {key} contain NaN/inf; re-extract the kernels")
    return keys


def fit_model_kernels(arrays: dict[str, np.ndarray], index: pd.DataFrame, model: str, methods=METHODS):
    """Fit every square kernel of a model with every method.

    Returns a long DataFrame, one row per (kernel, method): the index columns (``layer``,
    ``stage``, ``block``, ``channel``, ``kernel_size``), ``type`` (automatic selection) and
    ``type_cosine`` (its |cosine|), then the columns of :func:`masterkey.fitting.fit_filters`.
    """
    frames = []
    for key in _checked(arrays, model):
        kernels = arrays[key].astype(np.float64)
        rows = index[index["kernel_size"] == key].sort_values("row")
        types, cosine = select_types(kernels)
        fits = fit_filters(kernels, types, methods=list(methods))
        meta = rows[INDEX_KEYS].reset_index(drop=True).assign(type_cosine=cosine)
        fits = fits.join(meta, on="filter")
        frames.append(fits)
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "model", model)
    order = ["model", *INDEX_KEYS, "filter", "type", "type_cosine"]
    return table[order + [c for c in table.columns if c not in order]]


def spread_model_kernels(arrays: dict[str, np.ndarray], index: pd.DataFrame, fits: pd.DataFrame, model: str):
    """Spread measures of every square kernel, weighted by its fitted type's reference template."""
    frames = []
    for key in _checked(arrays, model):
        rows = index[index["kernel_size"] == key].sort_values("row").reset_index(drop=True)
        types = (
            fits[fits["kernel_size"] == key].drop_duplicates("filter").set_index("filter")["type"]
            .reindex(range(len(rows)))
        )
        table = spread_table(arrays[key].astype(np.float64), types.tolist(), filter_labels=range(len(rows)))
        frames.append(pd.concat([rows[INDEX_KEYS], table], axis=1))
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "model", model)
    return table


def best_fits(fits: pd.DataFrame) -> pd.DataFrame:
    """One row per kernel: the method with the smallest ``rel_l2`` and ``explained = 1 - rel_l2^2``."""
    valid = fits[~fits["degenerate"] & fits["rel_l2"].notna()]
    best = valid.loc[valid.groupby(["kernel_size", "filter"])["rel_l2"].idxmin()].copy()
    best["explained"] = 1.0 - best["rel_l2"] ** 2
    return best.reset_index(drop=True)


def explained_share(fits: pd.DataFrame, thresholds=EXPLAINED_THRESHOLDS) -> pd.DataFrame:
    """Share of kernels per stage whose best idealized model explains at least each threshold.

    Degenerate kernels count as not explained.  Columns: ``stage``, ``threshold``, ``share``,
    ``kernels`` (one row per stage and threshold, plus ``stage = "all"``).
    """
    per_kernel = fits.drop_duplicates(["kernel_size", "filter"])[["kernel_size", "filter", "stage"]]
    best = best_fits(fits)[["kernel_size", "filter", "explained"]]
    merged = per_kernel.merge(best, on=["kernel_size", "filter"], how="left")
    merged["explained"] = merged["explained"].fillna(-np.inf)
    rows = []
    groups = [(str(stage), part) for stage, part in merged.groupby("stage")] + [("all", merged)]
    for stage, part in groups:
        for threshold in thresholds:
            rows.append(
                {
                    "stage": stage,
                    "threshold": threshold,
                    "share": float((part["explained"] >= threshold).mean()),
                    "kernels": len(part),
                }
            )
    return pd.DataFrame(rows)
