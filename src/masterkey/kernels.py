"""Find and extract every depthwise convolution kernel of a network.

A convolution is *depthwise* when ``groups == in_channels == out_channels``
and its spatial size is at least 3 in some direction (1x1 "depthwise" layers
carry no spatial filter).  This is a structural test, so it works for any
timm model (ConvNeXt, ConvNeXt V2, EfficientNet, MobileNetV3, InceptionNeXt,
...), not only ConvNeXt.

Kernels are stored as in the weight tensor, ``h[row, col]``, one array per
kernel shape (see :mod:`masterkey.conventions` for coordinates).  Kernel
arrays are keyed ``"{kh}x{kw}"`` (``"7x7"``; band kernels such as
InceptionNeXt's ``"1x11"`` get their own key).

Stage and block of a layer are read from its module path: the first integer
component is the stage, the second the block within it
(``stages.2.blocks.5.conv_dw`` -> stage 2, block 5; EfficientNet's
``blocks.3.1.conv_dw`` -> stage 3, block 1).  Missing components are -1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import UserError
from .io import atomic_paths

INDEX_COLUMNS = [
    "model",
    "layer",
    "stage",
    "block",
    "channel",
    "kernel_size",
    "row",
    "l2_norm",
    "mean",
]


@dataclass(frozen=True)
class DepthwiseLayer:
    """A depthwise convolution found in a model."""

    name: str
    module: nn.Conv2d

    @property
    def kernel_key(self) -> str:
        kh, kw = self.module.kernel_size
        return f"{kh}x{kw}"

    @property
    def channels(self) -> int:
        return self.module.out_channels


def is_depthwise_conv(module: nn.Module, min_size: int = 3) -> bool:
    """True for a 2-D convolution with ``groups == in == out`` and a spatial size >= ``min_size``."""
    if not isinstance(module, nn.Conv2d):
        return False
    return module.groups == module.in_channels == module.out_channels and max(module.kernel_size) >= min_size


def find_depthwise_convs(model: nn.Module) -> list[DepthwiseLayer]:
    """All depthwise convolutions of ``model`` in module (forward-definition) order."""
    return [DepthwiseLayer(name, m) for name, m in model.named_modules() if is_depthwise_conv(m)]


def count_depthwise_kernels(model: nn.Module) -> int:
    """Number of depthwise kernels (one per channel of every depthwise layer)."""
    return sum(layer.channels for layer in find_depthwise_convs(model))


def stage_and_block(layer_name: str) -> tuple[int, int]:
    """(stage, block) from the first two integer components of a module path (-1 if absent)."""
    numbers = [int(part) for part in layer_name.split(".") if part.isdigit()]
    numbers += [-1, -1]
    return numbers[0], numbers[1]


def extract_kernels(model: nn.Module, model_name: str) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Every depthwise kernel of ``model``.

    Returns ``(arrays, index)``: ``arrays[key]`` is float32 of shape
    ``(N_key, kh, kw)`` in layer order then channel order; ``index`` has one
    row per kernel with :data:`INDEX_COLUMNS` (``row`` is the kernel's row in
    ``arrays[kernel_size]``).  Raises :class:`UserError` if the model has no
    depthwise convolution or a kernel is not finite.
    """
    layers = find_depthwise_convs(model)
    if not layers:
        raise UserError(
            f"model {model_name} has no depthwise convolution "
            "(groups == in_channels == out_channels, size >= 3); nothing to extract"
        )
    chunks: dict[str, list[np.ndarray]] = {}
    rows = []
    for layer in layers:
        with torch.no_grad():
            weight = layer.module.weight.detach().to("cpu", torch.float32).numpy()
        kernels = weight[:, 0]  # (C, 1, kh, kw) -> (C, kh, kw)
        if not np.isfinite(kernels).all():
            raise UserError(
                f"model {model_name}: layer {layer.name} has non-finite (NaN/inf) kernel weights; "
                "the checkpoint is broken - fetch or train it again"
            )
        key = layer.kernel_key
        offset = sum(len(c) for c in chunks.get(key, []))
        chunks.setdefault(key, []).append(kernels)
        stage, block = stage_and_block(layer.name)
        flat = kernels.reshape(len(kernels), -1).astype(np.float64)
        rows.append(
            pd.DataFrame(
                {
                    "model": model_name,
                    "layer": layer.name,
                    "stage": stage,
                    "block": block,
                    "channel": np.arange(len(kernels)),
                    "kernel_size": key,
                    "row": offset + np.arange(len(kernels)),
                    "l2_norm": np.sqrt((flat**2).sum(axis=1)),
                    "mean": flat.mean(axis=1),
                }
            )
        )
    arrays = {
        key: np.ascontiguousarray(np.concatenate(parts), dtype=np.float32) for key, parts in chunks.items()
    }
    index = pd.concat(rows, ignore_index=True)
    index = index.astype({"stage": "int32", "block": "int32", "channel": "int32", "row": "int64"})
    return arrays, index[INDEX_COLUMNS]


def save_kernels(arrays: dict[str, np.ndarray], index: pd.DataFrame, npz_path, index_path) -> None:
    """Write the kernel arrays (``.npz``, one array per kernel size) and the index (``.parquet``)."""
    with atomic_paths(npz_path, index_path) as (npz_temp, index_temp):
        with open(npz_temp, "wb") as handle:
            np.savez(handle, **arrays)
        index.to_parquet(index_temp, index=False)


def load_kernels(npz_path) -> dict[str, np.ndarray]:
    """Read the kernel arrays written by :func:`save_kernels`."""
    try:
        with np.load(npz_path) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise UserError(f"kernel file {npz_path} does not exist; run the extract_kernels rule") from None
    except (ValueError, OSError) as err:
        raise UserError(f"kernel file {npz_path} is unreadable ({err}); delete it and rerun") from None
