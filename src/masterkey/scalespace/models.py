"""Scale-space analysis of every depthwise kernel of a model ([B]; docs/methods.md sections 2-3).

Joins the numerical core (:mod:`masterkey.scalespace.fitting`, :mod:`masterkey.scalespace.spread`)
with the kernel store (:mod:`masterkey.kernels.store`).  Only square kernels of odd size are
fitted (band kernels such as ``1x9`` have no 2-D scale-space model; the fit log counts them,
:func:`masterkey.kernels.shapes.not_analysed_message`); the spread measures cover every kernel.

Energy explained by the idealized model: for each filter the best method (smallest relative
residual ``rel_l2 = l2 / ||h_n||``) gives ``explained = 1 - rel_l2^2``, the share of the
normalised filter's energy that the template reproduces (negative when the template is worse
than zero).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import ConfigError
from ..kernels.store import INDEX_KEYS, square_kernel_sizes
from .fitting import METHODS, fit_filters, select_types
from .fitting.grid import exact_templates
from .spread import spread_table

__all__ = [
    "EXPLAINED_THRESHOLDS",
    "fit_model_kernels",
    "spread_model_kernels",
    "templates_from_fits",
    "best_fits",
    "explained_share",
    "explained_share_caption",
]

EXPLAINED_THRESHOLDS = (0.5, 0.75, 0.9)


def _checked(arrays: dict[str, np.ndarray], model: str) -> list[str]:
    keys = square_kernel_sizes(arrays)
    if not keys:
        raise ConfigError("models", f"model {model}: no square odd-sized depthwise kernels to analyse")
    for key in keys:
        if not np.isfinite(arrays[key]).all():
            raise ValueError(f"model {model}: kernels {key} contain NaN/inf")
    return keys


def fit_model_kernels(arrays: dict[str, np.ndarray], index: pd.DataFrame, model: str, methods=METHODS):
    """Fit every square kernel of a model with every method ([B] Secs. 3-4; docs/methods.md s. 3.9).

    Parameters
    ----------
    arrays : dict of str to array ``(N, kh, kw)``
        The model's kernel store (:mod:`masterkey.kernels.store`; docs/methods.md section 1);
        only square, odd-sized keys (``k >= 3``) are analysed.
    index : pandas.DataFrame
        The kernel index (at least ``layer, stage, block, channel, kernel_size, row``).
    model : str
        Model name (first column of the result, and named in errors).
    methods : sequence of str
        Fitting methods (default all of :data:`~masterkey.scalespace.fitting.METHODS`).

    Returns
    -------
    pandas.DataFrame
        One row per (kernel, method): ``model``, the index columns (``layer``, ``stage``,
        ``block``, ``channel``, ``kernel_size``), ``filter`` (the kernel's row), ``type``
        (automatic selection) and ``type_cosine`` (its |cosine|), then the columns of
        :func:`masterkey.scalespace.fitting.fit_filters` (scales in grid spacings, ``s = sigma^2``).

    Raises
    ------
    ConfigError
        (``models``) If the model has no square odd-sized kernels.
    ValueError
        If the kernels contain NaN/inf.

    Planted templates get their type and scales back:

    >>> import numpy as np, pandas as pd
    >>> from masterkey.scalespace.templates import idealized_templates
    >>> kernels = np.stack([idealized_templates("dx+", 15, 1.2, 0.9), -idealized_templates("lap", 15, 0.8)])
    >>> index = pd.DataFrame({"layer": ["a", "b"], "stage": [0, 1], "block": 0, "channel": 0,
    ...                       "kernel_size": "15x15", "row": [0, 1]})
    >>> fits = fit_model_kernels({"15x15": kernels}, index, "toy", methods=["D1"])
    >>> fits[["type", "sigma_x", "sigma_y"]].round(3).values.tolist()
    [['dx+', 1.2, 0.9], ['lap', 0.8, 0.8]]
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
    """Spread measures of every kernel; square ones also weighted by their fitted type's template.

    [B] Sec. 2; docs/methods.md section 2 (coordinates of section 1, grid spacings).  Band kernels
    (``1x9``, ...) have no type: their weighted measures and offsets are NaN.

    Parameters
    ----------
    arrays : dict of str to array ``(N, kh, kw)``
        The model's kernel store, every key (square odd-sized keys are typed from ``fits``).
    index : pandas.DataFrame
        The kernel index.
    fits : pandas.DataFrame
        The model's :func:`fit_model_kernels` table (for each kernel's ``type``).
    model : str
        Model name.

    Returns
    -------
    pandas.DataFrame
        One row per kernel (``kernel_size`` names its shape): ``model``, the index columns, then
        the columns of :func:`masterkey.scalespace.spread.spread_table`.

    Raises
    ------
    ConfigError
        (``models``) If the model has no square odd-sized kernels.
    ValueError
        If the kernels contain NaN/inf.

    >>> import numpy as np, pandas as pd
    >>> from masterkey.scalespace.templates import idealized_templates
    >>> arrays = {"7x7": idealized_templates("dx+", 7, 1.0)[None]}
    >>> index = pd.DataFrame({"layer": ["a"], "stage": [0], "block": [0], "channel": [0],
    ...                       "kernel_size": ["7x7"], "row": [0]})
    >>> fits = pd.DataFrame({"kernel_size": ["7x7"], "filter": [0], "type": ["dx+"]})
    >>> round(float(spread_model_kernels(arrays, index, fits, "toy")["offset"].iloc[0]), 12)
    -0.5
    """
    frames = []
    squares = _checked(arrays, model)
    for key in arrays:
        rows = index[index["kernel_size"] == key].sort_values("row").reset_index(drop=True)
        if key in squares:
            typed = fits[fits["kernel_size"] == key].drop_duplicates("filter").set_index("filter")["type"]
            types = typed.reindex(range(len(rows))).tolist()
        elif np.isfinite(arrays[key]).all():
            types = [None] * len(rows)
        else:
            raise ValueError(f"model {model}: kernels {key} contain NaN/inf")
        table = spread_table(arrays[key].astype(np.float64), types, filter_labels=range(len(rows)))
        frames.append(pd.concat([rows[INDEX_KEYS], table], axis=1))
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "model", model)
    return table


def templates_from_fits(fits: pd.DataFrame, k: int) -> np.ndarray:
    """The fitted template of every row of a fits table (docs/methods.md sections 3.3 and 5).

    Parameters
    ----------
    fits : pandas.DataFrame
        Columns ``type``, ``sigma_x``, ``sigma_y`` (grid spacings, ``s = sigma^2``) and ``alpha``
        (used for ``id-lap`` only; ``lap`` and ``id-lap`` have the single scale ``sigma_x``).
    k : int
        Odd kernel size.

    Returns
    -------
    float64 array ``(len(fits), k, k)``
        Templates ``h[row, col]`` (docs/methods.md section 1); rows without a finite fit
        (degenerate kernels) or without a type give NaN templates.

    Raises
    ------
    ValueError
        For an unknown type or an invalid ``k``.

    >>> import numpy as np, pandas as pd
    >>> from masterkey.scalespace.templates import idealized_templates
    >>> row = pd.DataFrame({"type": ["dx"], "sigma_x": [1.0], "sigma_y": [0.7], "alpha": [np.nan]})
    >>> bool(np.allclose(templates_from_fits(row, 5)[0], idealized_templates("dx", 5, 1.0, 0.7)))
    True
    """
    templates = np.full((len(fits), k, k), np.nan)
    positions = np.arange(len(fits))
    types = fits["type"].to_numpy(dtype=object)
    for type_name in sorted({t for t in types if isinstance(t, str)}):
        part = fits[types == type_name]
        rows = positions[types == type_name]
        sx, sy = part["sigma_x"].to_numpy(float), part["sigma_y"].to_numpy(float)
        alpha = part["alpha"].to_numpy(float)
        finite = np.isfinite(sx) & np.isfinite(sy)
        if type_name == "id-lap":
            finite &= np.isfinite(alpha)
        if finite.any():
            templates[rows[finite]] = exact_templates(type_name, k, sx[finite], sy[finite], alpha[finite])
    return templates


def best_fits(fits: pd.DataFrame) -> pd.DataFrame:
    """One row per kernel: its best method and the energy its idealized model explains.

    docs/methods.md section 3.9: the method with the smallest ``rel_l2`` and
    ``explained = 1 - rel_l2^2`` (negative when the template is worse than zero).

    Parameters
    ----------
    fits : pandas.DataFrame
        A fits table with at least ``kernel_size``, ``filter``, ``rel_l2`` and ``degenerate``.

    Returns
    -------
    pandas.DataFrame
        The best row of every non-degenerate kernel with a finite ``rel_l2``, plus ``explained``.

    >>> import pandas as pd
    >>> fits = pd.DataFrame({"kernel_size": "7x7", "filter": [0, 0], "method": ["C1", "D1"],
    ...                      "rel_l2": [0.5, 0.2], "degenerate": False})
    >>> best_fits(fits)[["method", "explained"]].round(12).values.tolist()
    [['D1', 0.96]]
    """
    valid = fits[~fits["degenerate"] & fits["rel_l2"].notna()]
    best = valid.loc[valid.groupby(["kernel_size", "filter"])["rel_l2"].idxmin()].copy()
    best["explained"] = 1.0 - best["rel_l2"] ** 2
    return best.reset_index(drop=True)


def explained_share(fits: pd.DataFrame, thresholds=EXPLAINED_THRESHOLDS) -> pd.DataFrame:
    """Share of kernels per stage whose best idealized model explains at least each threshold.

    docs/methods.md section 3.9 (a summary of this project, in the spirit of [B] and [A]).

    Parameters
    ----------
    fits : pandas.DataFrame
        A fits table with at least ``kernel_size``, ``filter``, ``stage``, ``rel_l2`` and
        ``degenerate``.
    thresholds : sequence of float
        Shares of explained energy (default :data:`EXPLAINED_THRESHOLDS` = 0.5, 0.75, 0.9).

    Returns
    -------
    pandas.DataFrame
        Columns ``stage`` (str), ``threshold``, ``share``, ``kernels``: one row per stage and
        threshold, plus ``stage = "all"``.  Degenerate kernels count as not explained.

    >>> import numpy as np, pandas as pd
    >>> fits = pd.DataFrame({"kernel_size": "7x7", "filter": [0, 1], "stage": [0, 1],
    ...                      "rel_l2": [0.2, 0.9], "degenerate": False})
    >>> explained_share(fits, thresholds=(0.5,))[["stage", "share"]].values.tolist()
    [['0', 1.0], ['1', 0.0], ['all', 0.5]]
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


def explained_share_caption(model: str) -> str:
    """Caption of the explained-share table of ``model``."""
    return f"{model}: share of kernels explained by their idealized model"
