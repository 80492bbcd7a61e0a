"""Depthwise convolutions: extraction counts checked against each architecture, ordering, write-back."""

import numpy as np
import pytest
import timm
import torch
from torch import nn

from masterkey.core.errors import ConfigError, StaleFileError
from masterkey.kernels.store import INDEX_COLUMNS, load_index, save_kernels
from masterkey.nets.depthwise import (
    apply_kernels,
    count_depthwise_kernels,
    extract_kernels,
    find_depthwise_convs,
    is_depthwise_conv,
    stage_and_block,
)


def convnext_counts(depths, dims):
    """ConvNeXt: one 7x7 depthwise conv of width dims[i] per block of stage i."""
    return {"7x7": sum(d * w for d, w in zip(depths, dims, strict=True))}, {
        i: d * w for i, (d, w) in enumerate(zip(depths, dims, strict=True))
    }


# Expected counts derived by hand from the architecture definitions (papers' tables):
# EfficientNet-B0 (Tan & Le 2019, Table 1): expansion 6 except stage 1; depthwise width = in * expansion.
EFFICIENTNET_B0 = {
    "3x3": 32 + (96 + 144) + (240 + 2 * 480) + 1152,
    "5x5": (144 + 240) + (480 + 2 * 672) + (672 + 3 * 1152),
}
# MobileNetV3-Large (Howard et al. 2019, Table 1): the "exp size" column is the depthwise width.
MOBILENETV3_L = {
    "3x3": 16 + 64 + 72 + 240 + 200 + 184 + 184 + 480 + 672,
    "5x5": 72 + 120 + 120 + 672 + 960 + 960,
}
# InceptionNeXt-atto: dims (40, 80, 160, 320), depths (2, 2, 6, 2), a quarter of the channels go
# through each of a 3x3 square, a 1x9 and a 9x1 band depthwise conv.
INCEPTION_NEXT_ATTO = {key: 2 * 10 + 2 * 20 + 6 * 40 + 2 * 80 for key in ("3x3", "1x9", "9x1")}


@pytest.mark.parametrize(
    "architecture, expected, stages",
    [
        ("convnext_atto", *convnext_counts((2, 2, 6, 2), (40, 80, 160, 320))),
        ("convnextv2_atto", *convnext_counts((2, 2, 6, 2), (40, 80, 160, 320))),
        ("convnext_tiny", *convnext_counts((3, 3, 9, 3), (96, 192, 384, 768))),
        ("efficientnet_b0", EFFICIENTNET_B0, {0: 32, 1: 240, 2: 384, 3: 1200, 4: 1824, 5: 4128, 6: 1152}),
        ("mobilenetv3_large_100", MOBILENETV3_L, None),
        ("inception_next_atto", INCEPTION_NEXT_ATTO, {0: 60, 1: 120, 2: 720, 3: 480}),
    ],
)
def test_counts_match_the_architecture(architecture, expected, stages):
    model = timm.create_model(architecture, pretrained=False)
    arrays, index = extract_kernels(model, architecture)
    assert {key: len(array) for key, array in arrays.items()} == expected
    assert len(index) == sum(expected.values())
    if stages is not None:
        assert index.groupby("stage").size().to_dict() == stages


def test_arrays_and_index_follow_layer_then_channel_order():
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_b0", pretrained=False)
    arrays, index = extract_kernels(model, "m")
    assert list(index.columns) == INDEX_COLUMNS
    layers = find_depthwise_convs(model)
    assert list(dict.fromkeys(index["layer"])) == [layer.name for layer in layers]
    for layer in layers:
        rows = index[index["layer"] == layer.name]
        assert rows["channel"].tolist() == list(range(layer.channels))
        weight = layer.module.weight.detach().numpy()[:, 0]
        np.testing.assert_array_equal(arrays[layer.kernel_key][rows["row"].to_numpy()], weight)
        np.testing.assert_allclose(
            rows["l2_norm"], np.sqrt((weight.astype(np.float64) ** 2).sum((1, 2))), rtol=1e-6
        )
        np.testing.assert_allclose(rows["mean"], weight.astype(np.float64).mean((1, 2)), atol=1e-7)
    for key, array in arrays.items():  # every row of every array is indexed exactly once
        assert sorted(index.loc[index["kernel_size"] == key, "row"]) == list(range(len(array)))
        assert array.dtype == np.float32


def test_structural_test_rejects_non_depthwise_convs():
    assert is_depthwise_conv(nn.Conv2d(8, 8, 7, groups=8))
    assert not is_depthwise_conv(nn.Conv2d(8, 8, 7))  # dense
    assert not is_depthwise_conv(nn.Conv2d(8, 16, 3, groups=8))  # channel multiplier 2
    assert not is_depthwise_conv(nn.Conv2d(8, 8, 1, groups=8))  # no spatial extent
    assert not is_depthwise_conv(nn.Conv2d(8, 8, 3, groups=4))  # grouped, not depthwise
    assert is_depthwise_conv(nn.Conv2d(8, 8, (1, 11), groups=8))  # band kernel


def test_stage_and_block_from_module_path():
    assert stage_and_block("stages.2.blocks.5.conv_dw") == (2, 5)
    assert stage_and_block("blocks.3.1.conv_dw") == (3, 1)
    assert stage_and_block("stem.conv_dw") == (-1, -1)


def test_nan_kernels_and_models_without_depthwise_convs_rejected(tmp_path):
    model = timm.create_model("convnext_atto", pretrained=False)
    with torch.no_grad():
        model.stages[1].blocks[0].conv_dw.weight[3, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"model broken: layer stages\.1\.blocks\.0\.conv_dw has non-finite"):
        extract_kernels(model, "broken")
    with pytest.raises(ConfigError, match="config key models: model dense has no depthwise convolution"):
        extract_kernels(nn.Sequential(nn.Conv2d(3, 8, 3)), "dense")


def test_count_matches_the_extraction():
    model = timm.create_model("efficientnet_b0", pretrained=False)
    arrays, _ = extract_kernels(model, "m")
    assert count_depthwise_kernels(model) == sum(len(a) for a in arrays.values())


def test_apply_inverts_extract():
    torch.manual_seed(0)
    model = timm.create_model("inception_next_atto", pretrained=False)  # square and band kernels
    before = {k: v.clone() for k, v in model.state_dict().items()}
    arrays, index = extract_kernels(model, "m")
    assert apply_kernels(model, arrays, index) is model
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    # onto another network of the same architecture: its depthwise kernels become ours, nothing else
    torch.manual_seed(1)
    other = timm.create_model("inception_next_atto", pretrained=False)
    other_before = {k: v.clone() for k, v in other.state_dict().items()}
    shuffled = index.sample(frac=1.0, random_state=0)  # the index, not its order, decides
    apply_kernels(other, arrays, shuffled)
    depthwise = {f"{layer.name}.weight" for layer in find_depthwise_convs(other)}
    for key, value in other.state_dict().items():
        expected = before[key] if key in depthwise else other_before[key]
        torch.testing.assert_close(value, expected, rtol=0, atol=0)
    assert depthwise and not any(torch.equal(before[k], other_before[k]) for k in depthwise)


def test_stale_index_raises(tmp_path):
    model = timm.create_model("convnext_atto", pretrained=False)
    arrays, index = extract_kernels(model, "m")
    save_kernels(arrays, index, tmp_path / "k.npz", tmp_path / "k.parquet")
    stored = load_index(tmp_path / "k.parquet")
    other = timm.create_model("convnextv2_atto", pretrained=False)  # same layers, same sizes
    apply_kernels(other, arrays, stored, tmp_path / "k.parquet")
    efficientnet = timm.create_model("efficientnet_b0", pretrained=False)
    with pytest.raises(StaleFileError) as info:
        apply_kernels(efficientnet, arrays, stored, tmp_path / "k.parquet")
    assert info.value.path == tmp_path / "k.parquet"
    assert "does not match the model's depthwise layers" in str(info.value)
    wider = timm.create_model("convnext_atto", pretrained=False, dims=(48, 80, 160, 320))
    with pytest.raises(StaleFileError, match=r"lists 40 kernels of 7x7 for layer stages\.0\.blocks\.0"):
        apply_kernels(wider, arrays, stored, tmp_path / "k.parquet")
    with pytest.raises(ValueError) as info:  # an index not read from a file names no file
        apply_kernels(efficientnet, arrays, index)
    assert str(info.value).startswith("the kernel index does not match")
