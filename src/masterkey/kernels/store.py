"""The kernel store: every depthwise kernel of a model in one ``.npz`` plus a parquet index.

``results/kernels/{model}.npz`` holds one float32 array per kernel shape, keyed ``"{kh}x{kw}"``
(``"7x7"``: ``(N, 7, 7)``; band kernels such as ``"1x11"`` get their own key), each kernel stored
exactly as in the weight tensor, ``h[row, col]`` (docs/methods.md section 1).  The index
``results/kernels/{model}.parquet`` has one row per kernel with :data:`INDEX_COLUMNS`; ``row`` is
the kernel's row in ``arrays[kernel_size]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import StaleFileError
from ..core.io import atomic_paths, read_parquet

__all__ = [
    "INDEX_COLUMNS",
    "INDEX_KEYS",
    "kernel_key",
    "save_kernels",
    "load_kernels",
    "load_index",
    "parse_kernel_key",
    "has_scale_space_model",
    "square_kernel_sizes",
]

INDEX_COLUMNS = ["model", "layer", "stage", "block", "channel", "kernel_size", "row", "l2_norm", "mean"]
"""Columns of a kernel index, in this order."""
INDEX_KEYS = ["layer", "stage", "block", "channel", "kernel_size"]
"""The columns that identify a kernel within a model (carried into per-kernel result tables)."""


def kernel_key(height: int, width: int) -> str:
    """The key of a kernel shape's array in the store.

    Parameters
    ----------
    height, width : int
        Kernel rows and columns (``h[row, col]``, docs/methods.md section 1).

    Returns
    -------
    str
        ``"{height}x{width}"``.

    >>> kernel_key(7, 7), kernel_key(1, 11)
    ('7x7', '1x11')
    """
    return f"{int(height)}x{int(width)}"


def parse_kernel_key(key: str) -> tuple[int, int]:
    """The shape ``(height, width)`` of a store key, the inverse of :func:`kernel_key`.

    Raises ``ValueError`` for a string that is not ``"{height}x{width}"``.

    >>> parse_kernel_key("1x11")
    (1, 11)
    """
    height, sep, width = str(key).partition("x")
    if not (sep and height.isdigit() and width.isdigit()):
        raise ValueError(f"not a kernel shape key: {key!r} (expected e.g. '7x7' or '1x11')")
    return int(height), int(width)


def has_scale_space_model(height: int, width: int) -> bool:
    """True for the shapes the 2-D analyses use: square, odd, at least 3x3 (docs/methods.md s. 3.9).

    Every other shape (band kernels such as ``1x9``) gets only the spread measures of
    docs/methods.md section 2; it is not fitted, clustered or replaced by a fitted template.

    >>> has_scale_space_model(7, 7), has_scale_space_model(1, 9), has_scale_space_model(4, 4)
    (True, False, False)
    """
    return height == width and height % 2 == 1 and height >= 3


def save_kernels(arrays: dict[str, np.ndarray], index: pd.DataFrame, npz_path, index_path) -> None:
    """Write the kernel arrays (``.npz``, one array per kernel size) and the index (``.parquet``)."""
    with atomic_paths(npz_path, index_path) as (npz_temp, index_temp):
        with open(npz_temp, "wb") as handle:
            np.savez(handle, **arrays)
        index.to_parquet(index_temp, index=False)


def load_kernels(npz_path) -> dict[str, np.ndarray]:
    """The kernel arrays written by :func:`save_kernels`; a missing or corrupt file raises
    :class:`~masterkey.core.errors.StaleFileError`."""
    try:
        with np.load(npz_path) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise StaleFileError(npz_path, "does not exist") from None
    except (ValueError, OSError) as err:
        raise StaleFileError(npz_path, f"is unreadable ({err})") from None


def load_index(index_path) -> pd.DataFrame:
    """The kernel index written by :func:`save_kernels` (checked for its columns)."""
    index = read_parquet(index_path)
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise StaleFileError(index_path, f"is not a kernel index (no column {', '.join(missing)})")
    return index


def square_kernel_sizes(arrays: dict[str, np.ndarray]) -> list[str]:
    """Keys of ``arrays`` holding square kernels of odd size ``>= 3`` (those with a 2-D
    scale-space model, docs/methods.md section 3.9).

    Parameters
    ----------
    arrays : dict of str to array ``(N, kh, kw)``
        Kernel arrays as returned by :func:`load_kernels`.

    Returns
    -------
    list of str
        The qualifying keys, in the order of ``arrays``.

    >>> import numpy as np
    >>> square_kernel_sizes({"7x7": np.zeros((2, 7, 7)), "1x11": np.zeros((2, 1, 11))})
    ['7x7']
    """
    return [key for key, array in arrays.items() if has_scale_space_model(*array.shape[1:])]
