"""Reparameterisable networks: the kernels a network applies are those of its fused (deploy) form.

Networks such as RepViT, MobileOne and FastViT train with parallel branches (a kxk convolution,
a 1x1 convolution, an identity, each with its own BatchNorm) that are fused into one convolution
for inference.  The depthwise kernel that acts on the image is the fused one, so extraction and
replacement work on the fused network: timm's own
``timm.utils.model.reparameterize_model`` fuses it (every module with ``fuse``,
``reparameterize`` or ``switch_to_deploy``).  Checkpoints stay in the published, training-time
form; :func:`masterkey.nets.checkpoints.load_checkpoint` fuses after loading.  In eval mode the
fused network computes the same function (up to rounding).
"""

from __future__ import annotations

from timm.utils.model import reparameterize_model
from torch import nn

__all__ = ["REPARAMETERIZE_METHODS", "is_reparameterizable", "deploy_form"]

REPARAMETERIZE_METHODS = ("fuse", "reparameterize", "switch_to_deploy")
"""Module methods through which timm's ``reparameterize_model`` fuses a network."""


def is_reparameterizable(model: nn.Module) -> bool:
    """True when some module of ``model`` has a timm fusing method (:data:`REPARAMETERIZE_METHODS`)."""
    return any(hasattr(m, name) for m in model.modules() for name in REPARAMETERIZE_METHODS)


def deploy_form(model: nn.Module) -> tuple[nn.Module, bool]:
    """The fused (deploy) form of ``model`` in eval mode, and whether anything was fused.

    Fuses in place with ``timm.utils.model.reparameterize_model``; a network without fusing
    methods (ConvNeXt, EfficientNet, the demo) is returned unchanged with ``False``.  Fusing
    folds BatchNorm statistics, so ``model`` is put in eval mode first.
    """
    model.eval()
    if not is_reparameterizable(model):
        return model, False
    model = reparameterize_model(model, inplace=True)
    return model.eval(), True
