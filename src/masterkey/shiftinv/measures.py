"""The per-filter measures of the workflow ([C]; docs/methods.md section 8): a filter bank - the
DT-CWPT's complex filters, or a network's first layer - described and measured on the grayscale
crops by :func:`~.analysis.filter_analysis`, with the facts of where it comes from.

The crops carry ``context`` pixels around their central part; outputs are measured where their
input positions lie in the central part (``margin = context``), so a filter whose reach does not fit
in the context is refused (``ValueError`` naming the context it needs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.io import atomic_paths, read_parquet
from .analysis import filter_analysis
from .dtcwpt import DTCWPT, equivalent_filters
from .networks import FirstLayer, first_layer
from .tables import dtcwpt_label

__all__ = [
    "load_images",
    "save_filters",
    "load_filters",
    "measure_dtcwpt",
    "measure_first_layer",
    "filter_banks",
]


def load_images(path) -> np.ndarray:
    """The grayscale crops ``(B, S, S)`` float32 of rule shiftinv_images."""
    with np.load(path) as data:
        return data["images"]


def save_filters(path, **arrays) -> None:
    """Write named arrays (a filter bank, the crops) as one npz, atomically."""
    with atomic_paths(path) as (temp,):
        with open(temp, "wb") as handle:
            np.savez(handle, **arrays)


def load_filters(path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _device(device: str | None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _measure(images, filters, m, *, q, shifts, context, device, batch_size, pool=True) -> pd.DataFrame:
    return filter_analysis(
        images, filters, m, q=q, shifts=tuple(tuple(u) for u in shifts), pool=pool,
        device=_device(device), batch_size=batch_size, margin=context,
    )  # fmt: skip


def measure_dtcwpt(depth: int, images: np.ndarray, **params) -> tuple[np.ndarray, pd.DataFrame]:
    """The DT-CWPT of ``depth``: its equivalent complex filters ``(F, k, k)`` and their table
    (columns of :func:`~.analysis.filter_analysis` plus ``depth`` and ``subsampling``).
    ``params``: ``q``, ``shifts``, ``context``, ``device``, ``batch_size``."""
    transform = DTCWPT(depth)
    filters = equivalent_filters(depth)
    frame = _measure(images, filters, transform.subsampling, **params)
    return filters, frame.assign(depth=depth, subsampling=transform.subsampling)


def measure_first_layer(model: nn.Module, meta: dict, images: np.ndarray,
                        **params) -> tuple[FirstLayer, pd.DataFrame]:  # fmt: skip
    """The first layer of ``model`` (:func:`~.networks.first_layer`) and its table: RMax with the
    network's own max pooling when the theorem applies, else the aliasing part only (no pooling).
    The stored weights are flipped first: ``torch.nn.functional.conv2d`` computes a correlation,
    so the network's operator is the convolution with the flipped kernel (tested);
    columns of :func:`~.analysis.filter_analysis` plus ``network``, ``layer``, ``kernel_size``, ``stride``,
    ``pool``, ``applies`` and ``reason``.  The DT-CWPT's ``q`` is replaced by the pool's."""
    layer = first_layer(model, tuple(meta.get("input_size") or (3, 224, 224)))
    params = {**params, "q": params["q"] if layer.q is None else layer.q}
    # torch's conv2d correlates: the network convolves with the kernel flipped in both axes
    flipped = np.ascontiguousarray(layer.kernels[..., ::-1, ::-1])
    frame = _measure(images, flipped, layer.stride, pool=layer.applies, **params)
    return layer, frame.assign(
        network=meta["name"], layer=layer.layer, kernel_size="x".join(map(str, layer.kernels.shape[-2:])),
        stride=layer.stride, pool=layer.pool or "none",
        applies=layer.applies, reason=layer.reason or "",
    )  # fmt: skip


def filter_banks(depths, dtcwpt_paths, networks, network_paths) -> dict[str, pd.DataFrame]:
    """Label -> per-filter frame of every filter bank: the DT-CWPT depths, then the networks."""
    banks = {dtcwpt_label(d): read_parquet(p) for d, p in zip(depths, dtcwpt_paths, strict=True)}
    return banks | {n: read_parquet(p) for n, p in zip(networks, network_paths, strict=True)}
