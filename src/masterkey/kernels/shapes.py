"""Kernel shapes of a model and which analyses use them (docs/methods.md sections 2 and 3.9).

Every depthwise kernel is extracted and stored, whatever its shape (:mod:`masterkey.kernels.store`).
The spread measures (docs/methods.md section 2) are defined for every shape; the 2-D idealized
models, and so the fits, the clustering, the master keys and the replacement by fitted templates,
only for square kernels of odd size >= 3 (:func:`~masterkey.kernels.store.has_scale_space_model`).
Band kernels, such as the ``1x9``/``9x1`` pairs of InceptionNeXt, are therefore counted and
reported here and in the log of every analysis that leaves them out, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .store import has_scale_space_model, parse_kernel_key

__all__ = ["SHAPE_ANALYSES", "kernel_shape_table", "kernel_shapes_caption", "not_analysed_message"]

SHAPE_ANALYSES = {
    "spread": "spread measures (docs/methods.md section 2)",
    "fits": "idealized-model fits (section 3)",
    "clustering": "autoencoder clustering (section 4)",
    "master_keys": "master key filters (section 4.5)",
    "replacement_by_fit": "replacement by the fitted template (section 5)",
}
"""The per-kernel analyses, in the column order of :func:`kernel_shape_table`."""


def _uses(height: int, width: int) -> dict[str, str]:
    modelled = "yes" if has_scale_space_model(height, width) else "no"
    return {name: ("yes" if name == "spread" else modelled) for name in SHAPE_ANALYSES}


def kernel_shape_table(index: pd.DataFrame) -> pd.DataFrame:
    """One row per kernel shape of a model: its layers, kernels, share and the analyses that use it.

    Parameters
    ----------
    index : pandas.DataFrame
        A kernel index (:func:`masterkey.kernels.store.load_index`: at least ``layer`` and
        ``kernel_size``, the store key ``"{height}x{width}"``).

    Returns
    -------
    pandas.DataFrame
        Columns ``shape``, ``layers`` (depthwise layers of that shape), ``kernels``, ``share`` (of
        the model's kernels, in [0, 1]) and one ``"yes"``/``"no"`` column per analysis of
        :data:`SHAPE_ANALYSES`.  Rows: the shapes with a 2-D model first, then the others, each by
        size.

    Raises
    ------
    ValueError
        For an empty index or a ``kernel_size`` that is not a shape key.

    >>> import pandas as pd
    >>> index = pd.DataFrame({"layer": ["a", "a", "b", "c", "c", "c"],
    ...                       "kernel_size": ["3x3", "3x3", "1x9", "9x1", "9x1", "9x1"]})
    >>> kernel_shape_table(index)[["shape", "layers", "kernels", "share", "spread", "fits"]].values.tolist()
    [['3x3', 1, 2, 0.3333333333333333, 'yes', 'yes'], ['1x9', 1, 1, 0.16666666666666666, 'yes', 'no'], \
['9x1', 1, 3, 0.5, 'yes', 'no']]
    """
    if index.empty:
        raise ValueError("the kernel index is empty")
    rows = []
    for key, part in index.groupby("kernel_size", sort=False):
        height, width = parse_kernel_key(key)
        order = (not has_scale_space_model(height, width), height * width, height)
        row = {"shape": key, "layers": int(part["layer"].nunique()), "kernels": len(part)}
        rows.append((order, {**row, "share": len(part) / len(index), **_uses(height, width)}))
    return pd.DataFrame([row for _, row in sorted(rows, key=lambda item: item[0])])


def kernel_shapes_caption(model: str) -> str:
    """Caption of the kernel-shape table of ``model``."""
    return f"{model}: depthwise kernels per shape and the analyses that use them"


def not_analysed_message(
    arrays: Mapping[str, np.ndarray], what: str, analysed: Iterable[str] | None = None
) -> str:
    """One log line: how many kernels of which shapes an analysis leaves out (or that it uses all).

    Parameters
    ----------
    arrays : dict of str to array ``(N, kh, kw)``
        A model's kernel store (:func:`masterkey.kernels.store.load_kernels`).
    what : str
        The analysis in the past participle, e.g. ``"fitted"`` or ``"clustered"``.
    analysed : iterable of str, optional
        The keys the analysis uses (default: the shapes with a 2-D model,
        :func:`~masterkey.kernels.store.has_scale_space_model`).

    Returns
    -------
    str
        E.g. ``"920 of 1,380 kernels not fitted (no 2-D scale-space model): 1x9: 460, 9x1: 460"``,
        or ``"all 1,380 kernels fitted"``.

    >>> import numpy as np
    >>> arrays = {"3x3": np.zeros((4, 3, 3)), "1x9": np.zeros((4, 1, 9)), "9x1": np.zeros((4, 9, 1))}
    >>> not_analysed_message(arrays, "fitted")
    '8 of 12 kernels not fitted (no 2-D scale-space model): 1x9: 4, 9x1: 4'
    >>> not_analysed_message(arrays, "clustered", analysed=["3x3", "1x9", "9x1"])
    'all 12 kernels clustered'
    """
    if analysed is None:
        analysed = [key for key, array in arrays.items() if has_scale_space_model(*array.shape[1:])]
    analysed = set(analysed)
    left_out = {key: len(array) for key, array in arrays.items() if key not in analysed}
    total = sum(len(array) for array in arrays.values())
    if not left_out:
        return f"all {total:,} kernels {what}"
    modelled = any(has_scale_space_model(*arrays[key].shape[1:]) for key in left_out)
    reason = "" if modelled else " (no 2-D scale-space model)"
    shapes = ", ".join(f"{key}: {count:,}" for key, count in left_out.items())
    return f"{sum(left_out.values()):,} of {total:,} kernels not {what}{reason}: {shapes}"
