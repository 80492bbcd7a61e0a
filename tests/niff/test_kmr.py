"""Kernel mass ratio and effective size ([D] Sec. 5): analytic values (delta, constant kernels),
planted sizes recovered, the centre convention of even kernels, bad kernels rejected; the NIFF
network analysis: feature map sizes per stage, spatial kernels, the per-stage summary of a planted
frame."""

import numpy as np
import pandas as pd
import pytest
import timm
import torch

from masterkey.niff import (
    central_crop,
    central_kernels,
    effective_size,
    feature_sizes,
    kernel_mass_ratio,
    mass_ratio_sizes,
    niff_layers,
    spatial_kernels,
)
from masterkey.niff.analysis import (
    effective_sizes,
    kmr_frame,
    load_state_kernels,
    save_state_kernels,
    stage_summary,
)

ATTO_DIMS = (40, 80, 160, 320)


def delta(height, width, row=None, col=None, value=1.0) -> np.ndarray:
    """A ``(height, width)`` kernel with one non-zero tap (default: at the origin ``(H//2, W//2)``)."""
    kernel = np.zeros((height, width))
    kernel[height // 2 if row is None else row, width // 2 if col is None else col] = value
    return kernel


def planted(size, offset, centre=0.6, side=-0.4) -> np.ndarray:
    """``size x size`` kernel: ``centre`` at the origin and ``side`` at ``offset`` (dy, dx) from it, so
    the effective size at 50 % is 1 and at 90 % ``2 max(|dy|, |dx|) + 1``."""
    kernel = delta(size, size, value=centre)
    kernel[size // 2 + offset[0], size // 2 + offset[1]] += side
    return kernel


@pytest.mark.parametrize("height, width", [(7, 7), (8, 8), (9, 12), (6, 5), (1, 1)])
def test_delta_kernel_ratio_is_one(height, width):
    sizes, ratios = kernel_mass_ratio(np.stack([delta(height, width), delta(height, width, value=-3.0)]))
    np.testing.assert_array_equal(sizes, np.arange(1, min(height, width) + 1, 2))
    np.testing.assert_array_equal(sizes, mass_ratio_sizes(height, width))
    np.testing.assert_allclose(ratios, 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [5, 8, 9, 56])
def test_constant_kernel_ratio_is_area_share(size):
    sizes, ratios = kernel_mass_ratio(np.full((1, size, size), -0.25))
    np.testing.assert_allclose(ratios[0], (sizes / size) ** 2, rtol=1e-12)


def test_constant_non_square_kernel():
    sizes, ratios = kernel_mass_ratio(np.ones((1, 6, 11)))
    np.testing.assert_array_equal(sizes, [1, 3, 5])
    np.testing.assert_allclose(ratios[0], sizes**2 / 66, rtol=1e-12)


def test_effective_size_recovers_planted_sizes():
    offsets = [(0, 0), (1, 0), (0, -2), (-3, 3), (4, -1), (-4, -4)]
    kernels = np.stack([planted(9, offset) for offset in offsets])
    sizes, ratios = kernel_mass_ratio(kernels)
    expected_90 = [2 * max(abs(dy), abs(dx)) + 1 for dy, dx in offsets]
    np.testing.assert_array_equal(effective_size(sizes, ratios, 0.5), 1.0)
    np.testing.assert_array_equal(effective_size(sizes, ratios, 0.9), expected_90)
    np.testing.assert_array_equal(effective_size(sizes, ratios, 1.0), expected_90)
    # a level between the planted shares: the side tap holds 0.4 of the mass
    np.testing.assert_array_equal(effective_size(sizes, ratios, 0.6), 1.0)
    np.testing.assert_array_equal(effective_size(sizes, ratios, 0.61), expected_90)


def test_effective_size_of_constant_kernel():
    """A constant 9x9 kernel: KMR(s) = s^2/81, so 50 % at s = 7 (49/81) and 90 % at s = 9."""
    sizes, ratios = kernel_mass_ratio(np.ones((1, 9, 9)))
    assert effective_size(sizes, ratios, 0.5)[0] == 7 and effective_size(sizes, ratios, 0.9)[0] == 9


def test_even_kernel_uses_centre_convention():
    """The origin of an even ``8 x 8`` kernel is index ``(4, 4)``; windows up to 7 reach offsets
    -3..3, so a tap in row or column 0 (offset -4) is never inside one, a tap in row 7 (+3) is."""
    kernels = np.stack([
        delta(8, 8),                          # origin: every window
        delta(8, 8, 3, 3),                    # offset (-1, -1): from s = 3
        delta(8, 8, 7, 4),                    # offset (+3, 0): from s = 7
        0.5 * delta(8, 8) + delta(8, 8, 0, 4, 0.5),  # half the mass at offset (-4, 0): never
    ])  # fmt: skip
    sizes, ratios = kernel_mass_ratio(kernels)
    np.testing.assert_array_equal(sizes, [1, 3, 5, 7])
    np.testing.assert_allclose(ratios, [[1, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 1], [0.5, 0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(effective_size(sizes, ratios, 0.9), [1, 3, 7, 8])  # 8: the whole kernel
    np.testing.assert_array_equal(effective_size(sizes, ratios, 0.9, full_size=10), [1, 3, 7, 10])


def test_non_finite_kernels_rejected():
    kernel = delta(5, 5)[None].copy()
    kernel[0, 0, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        kernel_mass_ratio(kernel)
    with pytest.raises(ValueError, match="non-finite"):
        kernel_mass_ratio(np.stack([delta(5, 5), delta(5, 5, value=np.inf)]))
    sizes, ratios = kernel_mass_ratio(np.concatenate([kernel, delta(5, 5)[None]]), check_finite=False)
    assert np.isnan(ratios[0]).all() and np.isnan(effective_size(sizes, ratios, 0.5)[0])
    assert effective_size(sizes, ratios, 0.5)[1] == 1


def test_all_zero_kernel_has_undefined_ratio():
    sizes, ratios = kernel_mass_ratio(np.zeros((1, 5, 5)))
    assert np.isnan(ratios).all() and np.isnan(effective_size(sizes, ratios, 0.9)).all()


@pytest.mark.parametrize("shape, sizes, message", [
    ((5, 5), None, r"\(N, H, W\)"),
    ((1, 5, 5), [2], "odd"),
    ((1, 5, 7), [7], "odd and in"),
    ((1, 5, 5), [-1], "odd and in"),
])  # fmt: skip
def test_bad_shapes_and_window_sizes_rejected(shape, sizes, message):
    with pytest.raises(ValueError, match=message):
        kernel_mass_ratio(np.ones(shape), sizes=sizes)


@pytest.mark.parametrize("level", [0.0, -0.5, 1.5])
def test_bad_level_rejected(level):
    with pytest.raises(ValueError, match="level"):
        effective_size(np.array([1, 3]), np.ones((1, 2)), level)


@pytest.mark.parametrize(
    "height, width, size", [(9, 9, 5), (8, 8, 3), (8, 8, 7), (6, 11, 5), (7, 7, 7), (5, 5, 1)]
)
def test_central_crop_keeps_origin(height, width, size):
    cropped = central_crop(np.stack([delta(height, width), delta(height, width, value=2.0)]), size)
    assert cropped.shape == (2, size, size)
    np.testing.assert_array_equal(cropped[:, size // 2, size // 2], [1.0, 2.0])
    assert np.count_nonzero(cropped) == 2


def test_central_crop_is_the_kmr_window():
    kernels = np.random.default_rng(0).normal(size=(4, 8, 11))
    sizes, ratios = kernel_mass_ratio(kernels)
    for i, s in enumerate(sizes):
        crop = central_crop(kernels, s)
        np.testing.assert_allclose(np.abs(crop).sum((1, 2)) / np.abs(kernels).sum((1, 2)), ratios[:, i])


@pytest.mark.parametrize("size", [4, 9])
def test_bad_crop_rejected(size):
    with pytest.raises(ValueError, match="odd and <= 8"):
        central_crop(np.ones((1, 8, 8)), size)


@pytest.fixture(scope="module")
def niff_atto():
    torch.manual_seed(0)
    return timm.create_model("niff_convnext_atto", num_classes=5)


@pytest.mark.parametrize("height, width", [(64, 64), (64, 96)])
def test_feature_sizes_per_stage(niff_atto, height, width):
    niff_atto.train()
    sizes = feature_sizes(niff_atto, (3, height, width))
    assert niff_atto.training  # mode restored
    assert list(sizes) == [name for name, _ in niff_layers(niff_atto)] and len(sizes) == 12
    for name, size in sizes.items():
        stage = int(name.split(".")[1])
        assert size == (height // 4 // 2**stage, width // 4 // 2**stage), name
    if height != width:
        assert all(h != w for h, w in sizes.values())


def test_spatial_kernels_of_network(niff_atto):
    kernels = spatial_kernels(niff_atto, (3, 64, 96))
    layers = dict(niff_layers(niff_atto))
    assert list(kernels) == list(layers)
    for name, k in kernels.items():
        stage = int(name.split(".")[1])
        assert k.dtype == np.float32 and k.shape == (ATTO_DIMS[stage], 16 // 2**stage, 24 // 2**stage), name
    name = "stages.1.blocks.1.conv_dw"
    with torch.no_grad():
        np.testing.assert_array_equal(kernels[name], layers[name].spatial_kernels(8, 12).numpy())
    same = spatial_kernels(niff_atto, sizes=feature_sizes(niff_atto, (3, 64, 96)))
    assert all(np.array_equal(same[name], k) for name, k in kernels.items())
    central = central_kernels(kernels, 7)  # stages 2 and 3 (4x6, 2x3 maps) hold no 7x7 kernel
    assert {int(name.split(".")[1]) for name in central} == {0, 1}
    assert all(k.shape[1:] == (7, 7) for k in central.values())


def test_feature_sizes_need_niff_layers():
    with pytest.raises(ValueError, match="no NIFF layer"):
        feature_sizes(timm.create_model("convnext_atto"), (3, 32, 32))


def planted_kernels() -> dict[str, np.ndarray]:
    """Stage 0: 9x9 kernels of effective sizes (50 %, 90 %) (1, 3), (1, 7), (1, 1); stage 1: a
    constant 5x5 kernel, sizes (5, 5), and a delta, (1, 1)."""
    return {
        "stages.0.blocks.0.conv_dw": np.stack([planted(9, (1, 0)), planted(9, (-3, 2))]),
        "stages.0.blocks.1.conv_dw": delta(9, 9)[None],
        "stages.1.blocks.0.conv_dw": np.stack([np.ones((5, 5)), delta(5, 5)]),
    }


def test_kmr_frame_and_effective_sizes():
    frame = kmr_frame(planted_kernels(), state="trained")
    assert list(frame.columns) == ["state", "layer", "stage", "block", "channel", "kernel_size", "s", "kmr"]
    assert len(frame) == 3 * 5 + 2 * 3
    sizes = effective_sizes(frame)
    np.testing.assert_array_equal(sizes["size_50"], [1, 1, 1, 5, 1])
    np.testing.assert_array_equal(sizes["size_90"], [3, 7, 1, 5, 1])
    np.testing.assert_array_equal(sizes["stage"], [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(sizes["block"], [0, 0, 1, 0, 0])


def test_stage_summary_on_planted_frame():
    initial = kmr_frame({"stages.0.blocks.0.conv_dw": np.ones((2, 9, 9))}, state="init")
    frame = pd.concat([kmr_frame(planted_kernels(), state="trained"), initial])
    summary = stage_summary(frame).set_index(["state", "stage"])
    assert list(summary.index) == [("init", 0), ("trained", 0), ("trained", 1)]
    init, stage0, stage1 = (summary.loc[key] for key in summary.index)
    assert (stage0["kernels"], stage0["kernel_size"]) == (3, "9x9")
    assert (stage1["kernels"], stage1["kernel_size"]) == (2, "5x5")
    assert (init["kernels"], init["size_50_mean"], init["size_90_mean"], init["size_90_std"]) == (2, 7, 9, 0)
    np.testing.assert_allclose(init["kmr_3_mean"], 9 / 81)
    np.testing.assert_allclose([stage0["size_50_mean"], stage0["size_50_std"]], [1, 0])
    np.testing.assert_allclose(
        [stage0["size_90_mean"], stage0["size_90_std"]], [11 / 3, np.std([3, 7, 1], ddof=1)]
    )
    np.testing.assert_allclose(
        [stage0["kmr_3_mean"], stage0["kmr_5_mean"], stage0["kmr_7_mean"]], [2.6 / 3, 2.6 / 3, 1]
    )
    np.testing.assert_allclose([stage1["size_50_mean"], stage1["size_90_mean"]], [3, 3])
    np.testing.assert_allclose(
        [stage1["kmr_3_mean"], stage1["kmr_3_std"]], [(9 / 25 + 1) / 2, np.std([0.36, 1], ddof=1)]
    )
    np.testing.assert_allclose(stage1["kmr_5_mean"], 1)
    assert np.isnan(stage1["kmr_7_mean"])  # a 5x5 map holds no 7x7 window


def test_state_kernels_round_trip(tmp_path):
    kernels = {
        "trained": planted_kernels(),
        "init": {"stages.0.blocks.0.conv_dw": np.ones((2, 9, 9), np.float32)},
    }
    save_state_kernels(kernels, tmp_path / "kernels.npz")
    loaded = load_state_kernels(tmp_path / "kernels.npz")
    assert list(loaded) == list(kernels)
    for state, layers in kernels.items():
        assert list(loaded[state]) == list(layers)
        for name, array in layers.items():
            np.testing.assert_array_equal(loaded[state][name], array)


def test_effective_size_of_a_non_square_kernel_never_reached_is_its_larger_side():
    """Windows stop at the shorter side (9 of a 9x12 kernel): mass in the outer columns means no
    window reaches 90 %, and the whole kernel (12) is the effective size, not 9."""
    kernel = np.zeros((1, 9, 12))
    kernel[0, 4, 6] = 1.0  # the origin (H//2, W//2)
    kernel[0, 4, 0] = kernel[0, 4, 11] = 1.0  # outside every centred window of odd size <= 9
    frame = kmr_frame({"stages.0.blocks.0.conv_dw": kernel}, state="trained")
    sizes = effective_sizes(frame)
    assert sizes["size_90"].iloc[0] == 12.0 and sizes["size_50"].iloc[0] == 12.0
    kernel[0, 4, 0] = kernel[0, 4, 11] = 0.0
    assert effective_sizes(kmr_frame({"l": kernel}, state="trained"))["size_90"].iloc[0] == 1.0
