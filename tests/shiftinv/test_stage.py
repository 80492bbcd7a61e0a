"""The shift-invariance stage ([C]): settings, grayscale crops, measures per filter bank, tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from masterkey.core.errors import ConfigError, UserError
from masterkey.shiftinv import describe_filters, filter_analysis, responses, rmax
from masterkey.shiftinv.descriptors import spectrum_on_grid
from masterkey.shiftinv.images import centre_gray, imagenet_gray_crops, natural_gray_crops
from masterkey.shiftinv.measures import measure_dtcwpt, measure_first_layer
from masterkey.shiftinv.settings import ShiftinvSettings
from masterkey.shiftinv.tables import bounds_table, first_layers_table, gabor_table

PARAMS = {"q": 1, "shifts": [[1, 0], [0, 1]], "context": 16, "device": "cpu", "batch_size": 2}


def test_settings_runs_and_fetched_networks():
    settings = ShiftinvSettings.from_section(
        {"networks": ["r", "demo", "resnet18.tv_in1k"], "runs": [{"name": "r", "architecture": "resnet18"}]}
    )
    runs = settings.run_list(["demo"])
    assert [run.name for run in runs] == ["r"] and settings.shifts == ((1, 0), (0, 1))
    assert [spec.name for spec in settings.fetched_networks(["demo"], ["r"])] == ["resnet18.tv_in1k"]
    for runs, key in (([{"name": "demo", "architecture": "resnet18"}], "runs[0].name"),
                      ([{"name": "a", "architecture": "resnet18"}] * 2, "runs[1].name"),
                      ([{"name": "a", "architecture": "resnet_nope"}], "runs[0].architecture")):  # fmt: skip
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            ShiftinvSettings.from_section({"runs": runs}).run_list(["demo"])


def test_centre_gray_is_the_luma_of_the_central_square():
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, 10:50] = (255, 0, 0)  # the central 40x40 of a 40x60 image: pure red
    gray = centre_gray(Image.fromarray(rgb), 40)
    assert gray.shape == (40, 40) and gray.dtype == np.float32
    np.testing.assert_allclose(gray, round(0.299 * 255) / 255, atol=1 / 255)  # ITU-R 601-2 luma of red


def test_natural_crops_are_seeded_and_start_with_whole_photographs():
    first, sources = natural_gray_crops(17, 48, seed=3)
    again, _ = natural_gray_crops(17, 48, seed=3)
    other, other_sources = natural_gray_crops(17, 48, seed=4)
    assert first.shape == (17, 48, 48) and 0 <= first.min() and first.max() <= 1
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[:15], other[:15])  # the 15 whole photographs
    assert sources[:15] == other_sources[:15] and sources[16] != other_sources[16]
    with pytest.raises(ValueError, match="at least one image"):
        natural_gray_crops(0, 48, seed=0)


def test_imagenet_crops_are_evenly_spaced_in_the_sorted_folder(tmp_path):
    folder = tmp_path / "val" / "n01440764"
    folder.mkdir(parents=True)
    for i in range(5):
        Image.new("L", (30, 20), color=40 * i).save(folder / f"img{i}.JPEG")
    images, names = imagenet_gray_crops(tmp_path / "val", 3, 16)
    assert names == ["img0.JPEG", "img2.JPEG", "img4.JPEG"]
    np.testing.assert_allclose(images.mean(axis=(1, 2)), [0, 80 / 255, 160 / 255], atol=2 / 255)
    with pytest.raises(UserError, match="holds 5 images"):
        imagenet_gray_crops(tmp_path / "val", 6, 16)


def test_measures_of_a_dtcwpt_and_a_first_layer_and_their_tables():
    rng = np.random.default_rng(0)
    images = rng.random((2, 64, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="need"):  # J=2 filters are 31x31: a context of 16 is enough ...
        measure_dtcwpt(3, images, **PARAMS)  # ... but not for the 67x67 filters of J=3
    filters, frame = measure_dtcwpt(2, images, **PARAMS)
    assert filters.shape == (32, 31, 31) and len(frame) == 32 and (frame["subsampling"] == 2).all()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 7, stride=2, padding=3), torch.nn.ReLU(),
                                torch.nn.MaxPool2d(3, 2, 1), torch.nn.Conv2d(6, 6, 3))  # fmt: skip
    layer, net = measure_first_layer(model, {"name": "toy", "input_size": [3, 32, 32]}, images, **PARAMS)
    assert (
        layer.applies and len(net) == 6 and (net["pool"] == "2").all() and (net["kernel_size"] == "7x7").all()
    )
    gabor = gabor_table({2: frame})
    assert gabor.loc[0, "filters"] == 32 and gabor.loc[0, "kappa"] == pytest.approx(np.pi / 2)
    assert gabor.loc[0, "rho min"] <= gabor.loc[0, "rho median"] <= 1
    stem = net.assign(applies=False, instability_bound=np.nan)
    table = bounds_table({"J=2": frame, "toy": net, "stem": stem})
    kept = frame[frame["admissible"]]
    assert table.loc[0, "analysed"] == len(kept) > 0
    assert table.loc[0, "instability below bound"] == pytest.approx(
        (kept["instability"] <= kept["instability_bound"]).mean()
    )
    assert table.loc[2, "analysed"] == 0 and np.isnan(table.loc[2, "instability"])
    layers = first_layers_table({"toy": net, "stem": stem})
    assert list(layers["theorem applies"]) == [True, False] and np.isnan(layers.loc[1, "above bound"])
    assert layers.loc[0, "instability max"] == pytest.approx(net["instability"].max())


def test_bounds_table_planted_shares():
    frame = pd.DataFrame({
        "lowpass": [False, False, False, True], "admissible": [True, True, True, False],
        "instability": [0.1, 0.5, 0.9, 5.0],
        "instability_bound": [1.0, 0.4, 1.0, 1.0], "discrepancy": [0.1, 0.2, 0.3, 5.0],
        "discrepancy_bound": [0.5, 0.5, 0.25, 1.0], "instability_cmod": [0.1] * 4,
        "gamma": [0.1, 0.2, 0.3, 0.0],
    })  # fmt: skip
    row = bounds_table({"planted": frame}).iloc[0]
    assert row["analysed"] == 3 and row["instability below bound"] == pytest.approx(2 / 3)
    assert row["discrepancy below bound"] == pytest.approx(2 / 3)
    assert row["spearman(instability, gamma)"] == pytest.approx(1.0)


def test_measures_ignore_the_image_mean():
    """A constant added to every image changes no measure: each image is centred."""
    rng = np.random.default_rng(3)
    images = rng.random((3, 48, 48))
    kernels = rng.normal(size=(4, 3, 5, 5))
    a, b = (filter_analysis(x, kernels, 2) for x in (images, images + 7.0))
    for column in ("discrepancy", "instability", "instability_cmod"):
        np.testing.assert_allclose(a[column], b[column], rtol=1e-9)


def test_measured_rmax_is_the_networks_conv_and_max_pooling():
    """The network's conv2d (a correlation) + 3x3/2 max pooling equals RMax of the flipped kernel on
    the valid grid: what measure_first_layer measures."""
    torch.manual_seed(1)
    conv, m, margin = torch.nn.Conv2d(1, 3, 7, stride=2, padding=3, bias=False).double(), 2, 6
    x = torch.randn(2, 40, 40, dtype=torch.float64)
    pooled = torch.nn.functional.max_pool2d(conv(x[:, None]), 3, 2, 1).detach()
    flipped = conv.weight.detach()[:, 0].flip(-2, -1)
    real = responses(x, spectrum_on_grid(flipped, (40, 40))).real
    ours = rmax(real, m, 1, margin=margin)
    lo = -(-(margin + m) // (2 * m))
    torch.testing.assert_close(ours, pooled[:, :, lo : lo + ours.shape[-2], lo : lo + ours.shape[-1]])


@pytest.mark.parametrize("k", [63, 64, 65])
def test_large_kernels_are_described_as_kernels(k):
    """A kernel as large as the descriptor grid (64) is not mistaken for a spectrum."""
    r = np.arange(k) - k // 2
    y, x = np.meshgrid(r, r, indexing="ij")
    gabor = np.exp(-(x**2 + y**2) / (2 * 8.0**2)) * np.cos(1.0 * x)
    row = describe_filters(gabor[None], 2).iloc[0]
    assert row["rho"] > 0.99 and row["admissible"] and row["theta_2"] == pytest.approx(1.0, abs=0.1)
