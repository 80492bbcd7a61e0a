"""NIFF versions of timm's ConvNeXt and ConvNeXt V2, registered with timm as ``niff_<architecture>``.

:func:`niffify` replaces every stride-1 depthwise convolution of a ConvNeXt block (``conv_dw``)
by a :class:`~.niff.NIFFConv2d` of the same width; the stem, the downsampling layers and every
other weight stay as they are.  Importing this module registers ``niff_convnext_atto``,
``niff_convnext_tiny``, ``niff_convnextv2_tiny``, ... (one per timm ConvNeXt / ConvNeXt V2
architecture) so that ``timm.create_model("niff_convnext_atto", num_classes=16)`` and every config
of this project can name them; options ``niff_coordinates``, ``niff_padding``, ``niff_route`` are
passed through ``create_model`` (they are recorded in a checkpoint's ``model_kwargs``).  There
are no pretrained NIFF weights.  :func:`spatial_kernels` gives every NIFF layer's kernels at the
feature-map sizes of an input size (what extraction and the kernel mass ratio analysis read).
[D] Sec. 3; docs/methods.md section 7.
"""

from __future__ import annotations

import sys

import numpy as np
import timm
import torch
from timm.models import register_model
from torch import nn

from ..kernels.conventions import central_crop
from .niff import NIFFConv2d

__all__ = [
    "PREFIX",
    "niff_layers",
    "niffify",
    "niff_parameter_count",
    "base_architecture",
    "plain_architecture",
    "is_niff_architecture",
    "registered_architectures",
    "feature_sizes",
    "spatial_kernels",
    "central_kernels",
]

PREFIX = "niff_"
_BASE_FAMILIES = ("convnext_*", "convnextv2_*")


def niff_parameter_count(channels: int) -> int:
    """Parameters of one NIFF layer of ``channels`` channels: ``12704 + 66 C`` (two MLPs)."""
    return 12704 + 66 * channels


def _is_block_dw(name: str, module: nn.Module) -> bool:
    return (
        name.rsplit(".", 1)[-1] == "conv_dw"
        and isinstance(module, nn.Conv2d)
        and module.groups == module.in_channels == module.out_channels
        and tuple(module.stride) == (1, 1)
    )


def niffify(model: nn.Module, *, coordinates: str = "index", padding: str = "circular",
            route: str = "rfft") -> nn.Module:  # fmt: skip
    """Replace every stride-1 depthwise ``conv_dw`` of ``model`` by a NIFF layer (in place;
    returns ``model``).  The new layers are initialised by PyTorch's defaults from the current
    random state.  Raises ``ValueError`` when the model has no such layer (not a ConvNeXt)."""
    targets = [(name, m) for name, m in model.named_modules() if _is_block_dw(name, m)]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no stride-1 depthwise 'conv_dw' to turn into NIFF")
    for name, conv in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = NIFFConv2d(conv.in_channels, coordinates=coordinates, padding=padding, route=route)
        setattr(parent, attr, layer.to(device=conv.weight.device, dtype=conv.weight.dtype))
    return model


def niff_layers(model: nn.Module) -> list[tuple[str, NIFFConv2d]]:
    """``(module path, layer)`` of every NIFF layer of ``model``, in forward-definition order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, NIFFConv2d)]


def is_niff_architecture(name: str) -> bool:
    """True for a registered ``niff_<architecture>`` name (a pretrained tag is ignored)."""
    return name.split(".", 1)[0] in set(registered_architectures())


def base_architecture(name: str) -> str:
    """``niff_convnext_atto`` -> ``convnext_atto``; raises ``ValueError`` for other names."""
    if not is_niff_architecture(name):
        raise ValueError(f"{name!r} is not a NIFF architecture (known: niff_<timm ConvNeXt / ConvNeXt V2>)")
    return name.split(".", 1)[0][len(PREFIX) :]


def plain_architecture(name: str) -> str:
    """The architecture without NIFF layers: ``base_architecture`` of a NIFF name, else ``name``."""
    return base_architecture(name) if is_niff_architecture(name) else name


def _entrypoint(base: str):
    def create(pretrained: bool = False, niff_coordinates: str = "index", niff_padding: str = "circular",
               niff_route: str = "rfft", **kwargs) -> nn.Module:  # fmt: skip
        if pretrained:
            raise ValueError(
                f"there are no pretrained weights for {PREFIX}{base}: train it (docs/methods.md 7)"
            )
        for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
            kwargs.pop(key, None)
        model = timm.create_model(base, pretrained=False, **kwargs)
        # its own name (checkpoints record and rebuild it); the base's preprocessing, no weights
        model.pretrained_cfg = {**model.pretrained_cfg, "architecture": f"{PREFIX}{base}", "tag": None,
                                "hf_hub_id": None, "url": None, "file": None}  # fmt: skip
        return niffify(model, coordinates=niff_coordinates, padding=niff_padding, route=niff_route)

    create.__name__ = f"{PREFIX}{base}"
    create.__qualname__ = create.__name__
    create.__module__ = __name__
    create.__doc__ = f"timm {base} with NIFF depthwise layers ([D])."
    return create


def _register() -> list[str]:
    names = []
    bases = sorted({n for family in _BASE_FAMILIES for n in timm.list_models(family)})
    module = sys.modules[__name__]
    for base in bases:
        name = f"{PREFIX}{base}"
        if name not in timm.list_models(name):
            fn = register_model(_entrypoint(base))
            setattr(module, name, fn)
        names.append(name)
    return names


_REGISTERED = tuple(_register())


def registered_architectures() -> tuple[str, ...]:
    """Every ``niff_<architecture>`` name registered with timm by this module."""
    return _REGISTERED


@torch.no_grad()
def feature_sizes(model: nn.Module, input_size) -> dict[str, tuple[int, int]]:
    """``{layer path: (H, W)}`` of every NIFF layer for an input of ``input_size`` ``(C, H, W)``.
    Raises ``ValueError`` when the model has no NIFF layer."""
    layers = niff_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no NIFF layer")
    sizes: dict[str, tuple[int, int]] = {}

    def record(name):
        def hook(module, args):  # returns None: the input is left as it is
            sizes.setdefault(name, tuple(args[0].shape[-2:]))

        return hook

    hooks = [layer.register_forward_pre_hook(record(name)) for name, layer in layers]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return sizes


@torch.no_grad()
def spatial_kernels(model: nn.Module, input_size=None, sizes: dict | None = None) -> dict[str, np.ndarray]:
    """``{layer path: k}`` with ``k`` float32 ``(C, H, W)`` centred, every NIFF layer at its map
    size for ``input_size`` ``(C, H, W)`` (or the ``sizes`` of :func:`feature_sizes`)."""
    sizes = sizes if sizes is not None else feature_sizes(model, input_size)
    return {
        name: layer.spatial_kernels(*sizes[name]).cpu().numpy().astype(np.float32)
        for name, layer in niff_layers(model)
    }


def central_kernels(kernels: dict[str, np.ndarray], size: int = 7) -> dict[str, np.ndarray]:
    """The centred ``size x size`` part of each layer's kernels; layers whose maps are smaller
    than ``size`` are left out (they hold no such kernel)."""
    return {name: central_crop(k, size) for name, k in kernels.items() if min(k.shape[-2:]) >= size}
