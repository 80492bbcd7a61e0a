"""First layers of networks ([C]): which convolution, which pooling, whether the theorem applies."""

import numpy as np
import pytest
import timm
import torch
from torch import nn

from masterkey.shiftinv.networks import first_layer


@pytest.mark.parametrize(
    ("architecture", "layer", "shape", "stride", "pool", "q"),
    [
        ("resnet18", "conv1", (64, 3, 7, 7), 2, "maxpool", 1),
        ("convnext_atto", "stem.0", (40, 3, 4, 4), 4, None, None),
        ("tf_efficientnet_lite0", "conv_stem", (32, 3, 3, 3), 2, None, None),
        ("resnet18d", "conv1.0", (32, 3, 3, 3), 2, None, None),  # deep stem: the pool follows conv1.6
    ],
)
def test_first_layer_of_timm_networks(architecture, layer, shape, stride, pool, q):
    model = timm.create_model(architecture)
    found = first_layer(model, (3, 64, 64))
    assert (found.layer, found.kernels.shape, found.stride, found.pool, found.q) == (
        layer,
        shape,
        stride,
        pool,
        q,
    )
    assert found.applies == (pool is not None)
    assert np.array_equal(found.kernels, model.get_submodule(layer).weight.detach().double().numpy())
    if not found.applies:
        assert "no max pooling" in found.reason and "aliasing" in found.reason


def test_alexnet_pool_without_padding_applies():
    import torchvision

    found = first_layer(torchvision.models.alexnet(), (3, 224, 224))
    assert (found.layer, found.stride, found.pool, found.q, found.applies) == (
        "features.0",
        4,
        "features.2",
        1,
        True,
    )


def test_pool_that_is_not_a_stride_2_grid_is_named():
    model = nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(4, 4, 3))
    found = first_layer(model, (1, 32, 32))
    assert found.pool == "2" and found.q is None and not found.applies
    assert "not a (2q+1)^2 grid with stride 2" in found.reason


def test_networks_without_a_convolution_or_with_a_grouped_one_are_refused():
    with pytest.raises(ValueError, match="runs no Conv2d"):
        first_layer(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), (3, 2, 2))
    with pytest.raises(ValueError, match="grouped"):
        first_layer(nn.Sequential(nn.Conv2d(4, 4, 3, groups=4)), (4, 8, 8))
    model = nn.Sequential(nn.Conv2d(3, 2, 3, stride=2))
    assert first_layer(model, (3, 8, 8)).reason.startswith("no max pooling after the 3x3/2")
    assert torch.is_grad_enabled()
