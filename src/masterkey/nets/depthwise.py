"""Find every depthwise convolution of a network, extract its kernels and write kernels back.

A convolution is *depthwise* when ``groups == in_channels == out_channels``
and its spatial size is at least 3 in some direction (1x1 "depthwise" layers
carry no spatial filter).  This is a structural test, so it works for any
timm model (ConvNeXt, ConvNeXt V2, EfficientNet, MobileNetV3, InceptionNeXt,
...), not only ConvNeXt.

Kernels are stored as in the weight tensor, ``h[row, col]``, one array per
kernel shape, in the kernel store of :mod:`masterkey.kernels.store` (coordinates:
docs/methods.md section 1).  :func:`apply_kernels` is the inverse of
:func:`extract_kernels`: it writes arrays of the same layout into the network.

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

from ..core.errors import ConfigError, StaleFileError
from ..kernels.store import INDEX_COLUMNS, kernel_key
from .niff_convnext import central_kernels, niff_layers, spatial_kernels

__all__ = [
    "DepthwiseLayer",
    "is_depthwise_conv",
    "find_depthwise_convs",
    "count_depthwise_kernels",
    "stage_and_block",
    "extract_kernels",
    "apply_kernels",
]


@dataclass(frozen=True)
class DepthwiseLayer:
    """A depthwise convolution found in a model."""

    name: str
    module: nn.Conv2d

    @property
    def kernel_key(self) -> str:
        return kernel_key(*self.module.kernel_size)

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


def _layer_kernels(model: nn.Module, model_name: str, input_size, crop: int) -> dict[str, np.ndarray]:
    """``{layer: (C, kh, kw)}``: the weights of every depthwise convolution, or, for a network with
    NIFF layers ([D]), the central ``crop x crop`` of each layer's spatial kernels at the feature
    map size ``input_size`` gives (layers with smaller maps hold no such kernel and are left out)."""
    if niff_layers(model):
        if input_size is None:
            why = f"model {model_name} has NIFF layers: its kernels need the sidecar's input_size"
            raise ConfigError("models", f"{why}; retrain it with this version of the workflow")
        return central_kernels(spatial_kernels(model, tuple(input_size)), crop)
    with torch.no_grad():
        return {
            layer.name: layer.module.weight.detach().to("cpu", torch.float32).numpy()[:, 0]  # (C, 1, kh, kw)
            for layer in find_depthwise_convs(model)
        }


def extract_kernels(model: nn.Module, model_name: str, input_size=None, crop: int | None = 7
                    ) -> tuple[dict[str, np.ndarray], pd.DataFrame]:  # fmt: skip
    """Every depthwise kernel of ``model``.

    Returns ``(arrays, index)``: ``arrays[key]`` is float32 of shape
    ``(N_key, kh, kw)`` in layer order then channel order; ``index`` has one
    row per kernel with :data:`INDEX_COLUMNS` (``row`` is the kernel's row in
    ``arrays[kernel_size]``).  A network with NIFF layers gives the central ``crop x crop`` of
    its spatial kernels at input size ``input_size`` ``(C, H, W)`` (docs/methods.md section 7).
    Raises :class:`~masterkey.core.errors.ConfigError` (key ``models``)
    if the model has no depthwise convolution, ``ValueError`` if a kernel is not finite.
    """
    layers = _layer_kernels(model, model_name, input_size, crop)
    if not layers:
        raise ConfigError(
            "models",
            f"model {model_name} has no depthwise convolution "
            "(groups == in_channels == out_channels, size >= 3; or NIFF maps >= the crop); "
            "nothing to extract",
        )
    chunks: dict[str, list[np.ndarray]] = {}
    rows = []
    for name, kernels in layers.items():
        kernels = np.ascontiguousarray(kernels, dtype=np.float32)
        if not np.isfinite(kernels).all():
            raise ValueError(f"model {model_name}: layer {name} has non-finite kernel weights")
        key = kernel_key(*kernels.shape[-2:])
        offset = sum(len(c) for c in chunks.get(key, []))
        chunks.setdefault(key, []).append(kernels)
        stage, block = stage_and_block(name)
        flat = kernels.reshape(len(kernels), -1).astype(np.float64)
        rows.append(
            pd.DataFrame(
                {
                    "model": model_name,
                    "layer": name,
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


def _stale_index(index_path, reason: str) -> Exception:
    """A stale kernel index: :class:`StaleFileError` naming its file, or ``ValueError`` without one."""
    return StaleFileError(index_path, reason) if index_path else ValueError(f"the kernel index {reason}")


def apply_kernels(
    model: nn.Module, arrays: dict[str, np.ndarray], index: pd.DataFrame, index_path=None
) -> nn.Module:
    """Write ``arrays`` into the depthwise convolutions of ``model`` (in place; returns it).

    The inverse of :func:`extract_kernels`: layers and channels are matched through the kernel
    index (``arrays[kernel_size][row]`` goes to channel ``channel`` of layer ``layer``).  When the
    model's depthwise layers and the index differ, raises
    :class:`~masterkey.core.errors.StaleFileError` naming ``index_path`` (``ValueError`` when no
    path is given).
    """
    layers = {layer.name: layer for layer in find_depthwise_convs(model)}
    indexed = set(index["layer"].unique())
    if set(layers) != indexed:
        missing = sorted(set(layers) ^ indexed)[:3]
        raise _stale_index(
            index_path, f"does not match the model's depthwise layers (e.g. {missing}); the kernels are stale"
        )
    with torch.no_grad():
        for name, part in index.groupby("layer", sort=False):
            module = layers[name].module
            part = part.sort_values("channel")
            key = part["kernel_size"].iloc[0]
            if key != layers[name].kernel_key or len(part) != module.out_channels:
                raise _stale_index(
                    index_path,
                    f"lists {len(part)} kernels of {key} for layer {name}, the model differs; the kernels "
                    "are stale",
                )
            kernels = np.asarray(arrays[key])[part["row"].to_numpy()]
            weight = torch.from_numpy(np.ascontiguousarray(kernels)).to(module.weight.dtype)
            module.weight.copy_(weight.unsqueeze(1).to(module.weight.device))
    return model
