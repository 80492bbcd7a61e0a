"""First layers of trained networks for the shift-invariance analysis ([C] Sec. 6;
docs/methods.md section 8), and the networks the workflow trains on the demo crops for it.

:func:`first_layer` runs the network once on a dummy input and follows the order in which its
modules execute: the first ``Conv2d`` is the first layer (its kernels ``(F, C, k, k)`` and stride
``m``); a ``MaxPool2d`` that runs before the next convolution is the max pooling of RMax.  Between
them only per-channel monotone maps may run (batch norm with positive scale, ReLU): they commute
with the maximum up to those maps, which the theory sets aside.  The theorem applies when that
pool is a ``(2q+1) x (2q+1)`` grid with stride 2 (ResNet's 3x3/2, AlexNet's); otherwise - ConvNeXt's
4x4/4 patchify stem, EfficientNet's 3x3/2 stem, both without max pooling - only the aliasing
part applies (the strided convolution and its modulus), and :attr:`FirstLayer.reason` says why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.demo import DemoSettings
from ..nets.demo import DemoTraining, train_demo_model
from .settings import ShiftinvRun

__all__ = ["FirstLayer", "first_layer", "train_demo_network"]


@dataclass(frozen=True)
class FirstLayer:
    """The first convolution of a network and the pooling after it.

    ``kernels`` float64 ``(F, C, k1, k2)``; ``stride`` ``m``; ``layer`` its module name; ``pool``
    the name of the max pooling that follows (None: none); ``q`` its half-width when it is a
    ``(2q+1)^2``/2 grid (None otherwise); ``reason`` why the theorem does not apply (None when it
    does)."""

    layer: str
    kernels: np.ndarray
    stride: int
    pool: str | None
    q: int | None
    reason: str | None

    @property
    def applies(self) -> bool:
        return self.reason is None


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _pool_half_width(pool: nn.MaxPool2d) -> int | None:
    """``q`` of a ``(2q+1) x (2q+1)`` max pooling with stride 2 and no dilation, else None."""
    size, stride, dilation = (
        _pair(pool.kernel_size),
        _pair(pool.stride or pool.kernel_size),
        _pair(pool.dilation),
    )
    if size[0] != size[1] or size[0] % 2 == 0 or stride != (2, 2) or dilation != (1, 1):
        return None
    return size[0] // 2


def first_layer(model: nn.Module, input_size=(3, 224, 224)) -> FirstLayer:
    """The first layer of ``model`` (see the module docstring); ``input_size`` ``(C, H, W)`` of
    the dummy input.  ``ValueError`` when the network runs no ``Conv2d`` or its first one is
    grouped, dilated or strided unequally along the two axes; the model's train/eval mode is restored."""
    order: list[tuple[str, nn.Module]] = []
    names = {module: name for name, module in model.named_modules()}
    hooks = [m.register_forward_pre_hook(lambda m, _: order.append((names[m], m)))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]  # fmt: skip
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size))
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    convs = [i for i, (_, m) in enumerate(order) if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the network runs no Conv2d: it has no first convolution to analyse")
    name, conv = order[convs[0]]
    stride = _pair(conv.stride)
    if conv.groups != 1 or stride[0] != stride[1] or _pair(conv.dilation) != (1, 1):
        raise ValueError(
            f"first convolution '{name}' is grouped, dilated or strided unequally ({conv}); not supported"
        )
    following = order[convs[0] + 1 : convs[1] if len(convs) > 1 else None]
    pool = next((m for _, m in following if isinstance(m, nn.MaxPool2d)), None)
    pool_name = names[pool] if pool is not None else None
    q = _pool_half_width(pool) if pool is not None else None
    if pool is None:
        size = "x".join(str(k) for k in _pair(conv.kernel_size))
        reason = f"no max pooling after the {size}/{stride[0]} convolution: only the aliasing part applies"
    elif q is None:
        reason = f"max pooling '{pool_name}' is not a (2q+1)^2 grid with stride 2"
    else:
        reason = None
    kernels = conv.weight.detach().double().cpu().numpy()
    return FirstLayer(name, kernels, int(stride[0]), pool_name, q, reason)


def train_demo_network(run: ShiftinvRun, demo: DemoSettings, seed: int,
                       references: np.ndarray) -> tuple[DemoTraining, DemoSettings]:  # fmt: skip
    """Train ``run.architecture`` on the demo crops exactly like the demo network (recipe, budget,
    data order and seed: :func:`masterkey.nets.demo.train_demo_model`); the demo's
    ``model_kwargs`` (options of its ConvNeXt) are not carried over."""
    settings = dataclasses.replace(demo, architecture=run.architecture, model_kwargs={})
    return train_demo_model(settings, seed, references), settings
