"""NIFF ConvNeXt ([D] Sec. 3): the timm names, their parameter counts against the plain networks,
``niffify`` keeping every other weight, options passed through ``create_model``, bad uses rejected."""

import pytest
import timm
import torch

from masterkey.niff import (
    NIFFConv2d,
    base_architecture,
    is_niff_architecture,
    niff_layers,
    niff_parameter_count,
    niffify,
    registered_architectures,
)

ATTO_DEPTHS, ATTO_DIMS = (2, 2, 6, 2), (40, 80, 160, 320)
"""ConvNeXt(-V2)-atto: blocks per stage and stage widths."""


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("base", ["convnext_atto", "convnextv2_atto"])
def test_parameter_count_against_plain_network(base):
    """NIFF network = plain network - 50 C per 7x7 depthwise conv (with bias) + (12704 + 66 C) per layer."""
    plain = timm.create_model(base)
    niff = timm.create_model(f"niff_{base}")
    widths = [dim for depth, dim in zip(ATTO_DEPTHS, ATTO_DIMS, strict=True) for _ in range(depth)]
    dw_widths = [m.in_channels for name, m in plain.named_modules() if name.endswith("conv_dw")]
    assert dw_widths == widths
    assert count(niff) == count(plain) - sum(50 * c for c in widths) + sum(12704 + 66 * c for c in widths)
    assert [layer.channels for _, layer in niff_layers(niff)] == widths
    assert all(count(layer) == niff_parameter_count(layer.channels) for _, layer in niff_layers(niff))


def test_niffify_keeps_every_other_weight():
    torch.manual_seed(5)
    model = timm.create_model("convnext_atto", num_classes=10)
    original = {key: value.clone() for key, value in model.state_dict().items()}
    widths = {name: m.in_channels for name, m in model.named_modules() if name.endswith("conv_dw")}
    assert niffify(model) is model
    state = model.state_dict()
    kept = {key for key in original if ".conv_dw." not in key}
    assert kept == {key for key in state if ".conv_dw." not in key}
    for key in kept:
        assert torch.equal(state[key], original[key]), key
    for name, width in widths.items():
        layer = model.get_submodule(name)
        assert isinstance(layer, NIFFConv2d) and layer.channels == width, name
    assert [name for name, _ in niff_layers(model)] == list(widths)
    assert len(widths) == sum(ATTO_DEPTHS)
    assert model(torch.randn(1, 3, 40, 56)).shape == (1, 10)


def test_niffify_rejects_network_without_block_depthwise_convs():
    with pytest.raises(ValueError, match="conv_dw"):
        niffify(timm.create_model("resnet18"))


def test_options_pass_through_create_model():
    model = timm.create_model("niff_convnext_atto", num_classes=7, niff_coordinates="cycles",
                              niff_padding="zeros", niff_route="complex")  # fmt: skip
    layers = [layer for _, layer in niff_layers(model)]
    assert {(m.coordinates, m.padding, m.route) for m in layers} == {("cycles", "zeros", "complex")}
    assert model.pretrained_cfg["architecture"] == "niff_convnext_atto"
    assert model(torch.randn(2, 3, 32, 48)).shape == (2, 7)
    default = timm.create_model("niff_convnext_atto")
    assert {(m.coordinates, m.padding, m.route) for _, m in niff_layers(default)} == {
        ("index", "circular", "rfft")
    }


def test_same_seed_same_network():
    torch.manual_seed(11)
    first = timm.create_model("niff_convnextv2_atto", num_classes=3)
    torch.manual_seed(11)
    second = timm.create_model("niff_convnextv2_atto", num_classes=3)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key


def test_names():
    names = registered_architectures()
    assert {
        "niff_convnext_atto",
        "niff_convnext_tiny",
        "niff_convnextv2_atto",
        "niff_convnextv2_tiny",
    } <= set(names)
    assert all(name in timm.list_models("niff_*") for name in names)
    assert is_niff_architecture("niff_convnext_tiny") and is_niff_architecture("niff_convnext_tiny.some_tag")
    assert not is_niff_architecture("convnext_tiny") and not is_niff_architecture("niff_resnet18")
    assert base_architecture("niff_convnextv2_atto") == "convnextv2_atto"
    with pytest.raises(ValueError, match="not a NIFF architecture"):
        base_architecture("convnext_atto")


def test_no_pretrained_weights():
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("niff_convnext_atto", pretrained=True)


@pytest.mark.parametrize("option, value", [("niff_coordinates", "radians"), ("niff_padding", "reflect"),
                                           ("niff_route", "dct")])  # fmt: skip
def test_bad_option_through_create_model(option, value):
    with pytest.raises(ValueError, match=rf"{option.removeprefix('niff_')}.*{value}"):
        timm.create_model("niff_convnext_atto", **{option: value})
