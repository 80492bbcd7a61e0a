"""NIFF figures ([D]): planted data drawn as given, bad inputs rejected, a real network at paper scale.

The KMR panels must show the per-stage mean and +-1 standard deviation of a planted frame; the
gallery the largest-norm channels of each stage's last layer on a symmetric scale per kernel; the
PCA the components numpy/scikit-learn find, as many as the map allows.
"""

from __future__ import annotations

import hashlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.image import AxesImage
from PIL import Image

from masterkey.plotting import niff as figures
from masterkey.plotting import style


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def planted_frame() -> pd.DataFrame:
    """Stage 0 (map 5x5): three kernels per NIFF state; stage 1 (map 2x2): only s = 1; plain 7x7
    kernels of both stages (s = 1..7)."""
    rows = []
    values = {
        ("trained", 0): [[0.2, 0.7, 1.0], [0.4, 0.9, 1.0], [0.3, 0.5, 1.0]],
        ("init", 0): [[0.1, 0.3, 1.0], [0.1, 0.5, 1.0], [0.2, 0.4, 1.0]],
        ("trained", 1): [[0.6], [0.8]],
        ("init", 1): [[0.3], [0.5]],
        ("plain", 0): [[0.05, 0.2, 0.5, 1.0], [0.15, 0.4, 0.7, 1.0]],
        ("plain", 1): [[0.1, 0.3, 0.6, 1.0], [0.1, 0.5, 0.8, 1.0]],
    }
    for (state, stage), kernels in values.items():
        size = "7x7" if state == "plain" else ("5x5" if stage == 0 else "2x2")
        for channel, ratios in enumerate(kernels):
            for s, kmr in zip(range(1, 2 * len(ratios), 2), ratios, strict=True):
                layer = f"stages.{stage}.blocks.0.conv_dw"
                rows.append({"state": state, "layer": layer, "stage": stage, "block": 0, "channel": channel,
                             "kernel_size": size, "s": s, "kmr": kmr})  # fmt: skip
    return pd.DataFrame(rows), values


def _line(ax, label):
    """The data line labelled ``label``: a plotted line or an error bar container's markers."""
    for container in ax.containers:  # error bars carry their label on the container
        if container.get_label() == label:
            return container.lines[0]
    return next(line for line in ax.get_lines() if line.get_label() == label)


def test_kmr_curves_show_planted_means_and_bands():
    frame, values = planted_frame()
    fig = figures.plot_kmr_curves(frame, "planted-run")
    assert len(fig.axes) == 2  # one panel per stage, nothing else
    assert "planted-run" in fig._suptitle.get_text()
    assert [ax.get_title() for ax in fig.axes] == ["stage 0: map 5x5", "stage 1: map 2x2"]
    assert "1 s.d." in fig.legends[0].get_title().get_text()
    ax = fig.axes[0]
    for state in ("trained", "init"):
        kmr = np.array(values[(state, 0)])
        mean, std = kmr.mean(axis=0), kmr.std(axis=0, ddof=1)
        line = _line(ax, figures.STATE_LABELS[state])
        np.testing.assert_allclose(line.get_xdata(), [1, 3, 5])
        np.testing.assert_allclose(line.get_ydata(), mean)
        colour = to_rgb(line.get_color())
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        (band,) = [c for c in bands if np.allclose(c.get_facecolor()[0][:3], colour)]
        vertices = band.get_paths()[0].vertices
        for s, low, high in zip([1, 3, 5], mean - std, mean + std, strict=True):
            for y in (low, high):
                assert np.isclose(vertices, [s, y]).all(axis=1).any(), (state, s, y)
    # the plain network's kernels: markers at s = 3, 5, 7 only, at their means
    plain = np.array(values[("plain", 0)])
    marker = _line(ax, figures.STATE_LABELS["plain"])
    np.testing.assert_allclose(marker.get_xdata(), figures.PLAIN_SIZES)
    np.testing.assert_allclose(marker.get_ydata(), plain.mean(axis=0)[1:])
    levels = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == ":")
    assert levels == [0.5, 0.9]


def test_kmr_single_window_drawn_as_bars_side_by_side():
    frame, values = planted_frame()
    ax = figures.plot_kmr_curves(frame, "r").axes[1]  # map 2x2: only s = 1
    trained, init = (_line(ax, figures.STATE_LABELS[s]) for s in ("trained", "init"))
    assert trained.get_ydata()[0] == pytest.approx(0.7) and init.get_ydata()[0] == pytest.approx(0.4)
    assert trained.get_xdata()[0] < 1 < init.get_xdata()[0]  # dodged around s = 1


def test_kmr_without_plain_rows_has_two_legend_entries():
    frame, _ = planted_frame()
    fig = figures.plot_kmr_curves(frame[frame["state"] != "plain"], "r")
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == [figures.STATE_LABELS["trained"], figures.STATE_LABELS["init"]]


@pytest.mark.parametrize("column", ["state", "stage", "kernel_size", "s", "kmr"])
def test_kmr_frame_without_a_required_column_is_rejected(column):
    frame, _ = planted_frame()
    with pytest.raises(ValueError, match=f"no column '{column}'"):
        figures.plot_kmr_curves(frame.drop(columns=column), "r")


def test_kmr_frame_without_niff_rows_is_rejected():
    frame, _ = planted_frame()
    with pytest.raises(ValueError, match="no rows of state trained or init"):
        figures.plot_kmr_curves(frame[frame["state"] == "plain"], "r")


def planted_kernels(rng) -> dict:
    """Stage 0 (9x9, two layers), stage 1 (5x5); channel c of a last layer has l2 norm ~ c + 1."""

    def layer(channels, size, scale):
        noise = rng.normal(size=(channels, size, size))
        noise /= np.linalg.norm(noise, axis=(1, 2), keepdims=True)
        return (noise * scale[:, None, None]).astype(np.float32)

    trained = {
        "stages.0.blocks.0.conv_dw": layer(8, 9, np.full(8, 100.0)),  # largest norms, not the last layer
        "stages.0.blocks.1.conv_dw": layer(8, 9, np.arange(1.0, 9.0)),
        "stages.1.blocks.0.conv_dw": layer(4, 5, np.array([3.0, 1.0, 4.0, 2.0])),
    }
    init = {name: layer(len(k), k.shape[-1], np.ones(len(k))) for name, k in trained.items()}
    return {"init": init, "trained": trained}


def test_gallery_shows_largest_channels_of_last_layer_full_and_zoomed():
    kernels = planted_kernels(np.random.default_rng(0))
    fig = figures.plot_kernel_gallery(kernels, "r", per_stage=3, zoom=7)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    # per state: stage 0 three (full, zoom) pairs; stage 1 (5x5 <= 7) three full kernels
    assert len(images) == 2 * (3 * 2 + 3)
    expected = []
    for state in ("trained", "init"):  # trained block first, same channels in both
        for channel in (7, 6, 5):
            kernel = kernels[state]["stages.0.blocks.1.conv_dw"][channel]
            expected += [kernel, kernel[1:8, 1:8]]
        expected += [kernels[state]["stages.1.blocks.0.conv_dw"][c] for c in (2, 0, 3)]
    for image, kernel, i in zip(images, expected, range(len(expected)), strict=True):
        np.testing.assert_allclose(image.get_array(), kernel, rtol=1e-6, err_msg=str(i))
    for image, kernel in zip(images[::2][:3], expected[::2][:3], strict=True):  # zoom uses the full scale
        assert image.get_clim() == pytest.approx((-np.abs(kernel).max(), np.abs(kernel).max()))
    titles = [ax.get_title() for ax in fig.axes if ax.images][:2]
    assert titles == ["ch 7", "centre 7x7"]


def test_gallery_channel_choice_and_bad_arguments():
    norms = np.array([1.0, 3.0, 2.0, 3.0])
    kernels = norms[:, None, None] * np.eye(3)[None] / np.sqrt(3)
    np.testing.assert_array_equal(figures.gallery_channels(kernels, 3), [1, 3, 2])  # ties: lower first
    np.testing.assert_array_equal(figures.gallery_channels(kernels, 10), [1, 3, 2, 0])
    good = planted_kernels(np.random.default_rng(1))
    with pytest.raises(ValueError, match="zoom must be a positive odd size"):
        figures.plot_kernel_gallery(good, "r", zoom=6)
    with pytest.raises(ValueError, match="per_stage must be at least 1"):
        figures.plot_kernel_gallery(good, "r", per_stage=0)
    with pytest.raises(ValueError, match="no kernels"):
        figures.plot_kernel_gallery({"trained": {}}, "r")
    with pytest.raises(ValueError, match=r"must be \(C, H, W\)"):
        figures.plot_kernel_gallery({"trained": {"stages.0.blocks.0.conv_dw": np.ones((3, 3))}}, "r")


def test_kernel_pca_matches_scikit_learn():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(2)
    kernels = rng.normal(size=(40, 5, 5)) * np.exp(-np.arange(25) / 8).reshape(5, 5)
    mean, pcs, ratio = figures.kernel_pca(kernels, 6)
    flat = kernels.reshape(40, -1)
    flat = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    reference = PCA(n_components=6).fit(flat)
    np.testing.assert_allclose(mean.ravel(), reference.mean_, atol=1e-12)
    np.testing.assert_allclose(ratio, reference.explained_variance_ratio_, rtol=1e-9)
    signs = np.sign((pcs.reshape(6, -1) * reference.components_).sum(axis=1))
    np.testing.assert_allclose(pcs.reshape(6, -1), signs[:, None] * reference.components_, atol=1e-9)
    peaks = np.abs(pcs.reshape(6, -1)).argmax(axis=1)
    assert (pcs.reshape(6, -1)[np.arange(6), peaks] > 0).all()  # sign convention


def test_kernel_pca_of_a_planted_plane_and_a_scale_invariance():
    rng = np.random.default_rng(3)
    u, v = np.linalg.qr(rng.normal(size=(49, 2)))[0].T
    coefficients = rng.normal(size=(30, 2))
    kernels = (coefficients @ np.stack([u, v])).reshape(30, 7, 7)
    kernels *= rng.uniform(0.1, 10, size=(30, 1, 1))  # l2-normalised first: the scale is irrelevant
    _, pcs, ratio = figures.kernel_pca(kernels, 4)
    assert ratio[:2].sum() == pytest.approx(1.0) and ratio[2:] == pytest.approx(0, abs=1e-12)
    basis = np.stack([u, v])
    for pc in pcs[:2].reshape(2, -1):  # the two components span the planted plane
        assert np.linalg.norm(basis @ pc) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least two nonzero kernels"):
        figures.kernel_pca(np.zeros((3, 5, 5)), 2)


def test_pca_figure_rows_columns_crop_and_small_maps():
    rng = np.random.default_rng(4)
    centre = np.zeros((21, 21))
    centre[8:13, 8:13] = 1  # every kernel lives in the central 5x5 of a 21x21 map
    kernels = {
        "trained": {
            "stages.0.blocks.0.conv_dw": (rng.normal(size=(10, 21, 21)) * centre).astype(np.float32),
            "stages.1.blocks.0.conv_dw": rng.normal(size=(6, 2, 2)).astype(np.float32),
            "stages.1.blocks.1.conv_dw": rng.normal(size=(6, 2, 2)).astype(np.float32),
        }
    }
    fig = figures.plot_kernel_pca(kernels, "r", components=6)
    rows = np.array(fig.axes).reshape(2, 7)
    stage0 = [ax.images[0] for ax in rows[0]]
    assert all(image.get_array().shape == (7, 7) for image in stage0)  # cropped to the minimum 7x7
    assert "centre 7x7\nof 21x21" in rows[0, 0].get_ylabel()
    _, _, ratio = figures.kernel_pca(np.concatenate(list(kernels["trained"].values())[1:]), 6)
    assert len(ratio) == 4  # a 2x2 map has 4 pixels: 4 components of 6 asked
    shown = [ax for ax in rows[1] if ax.images]
    assert len(shown) == 1 + 4 and not any(ax.axison for ax in rows[1, 5:])
    assert [ax.get_title() for ax in shown[1:]] == [
        f"PC{i + 1}: {100 * r:.1f} %" for i, r in enumerate(ratio)
    ]
    assert "12 kernels" in rows[1, 0].get_ylabel()  # both layers of the stage pooled
    for image in stage0:
        low, high = image.get_clim()
        assert low == pytest.approx(-high)
    assert figures.display_window(np.ones((2, 5, 5)), smallest=7) == 5  # small maps are never cropped


def test_pca_rejects_bad_inputs():
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="no 'trained' kernels"):
        figures.plot_kernel_pca({"init": {"stages.0.blocks.0.conv_dw": rng.normal(size=(4, 3, 3))}}, "r")
    mixed = {"trained": {"stages.0.blocks.0.conv_dw": rng.normal(size=(4, 3, 3)),
                         "stages.0.blocks.1.conv_dw": rng.normal(size=(4, 5, 5))}}  # fmt: skip
    with pytest.raises(ValueError, match="different map sizes"):
        figures.plot_kernel_pca(mixed, "r")
    with pytest.raises(ValueError, match="components must be at least 1"):
        figures.plot_kernel_pca({"trained": mixed["trained"]}, "r", components=0)


@pytest.fixture(scope="module")
def network_inputs():
    """A NIFF ConvNeXt-atto (at init, and scaled as a stand-in for trained) at 64 and 224 pixels,
    with the plain ConvNeXt-atto's 7x7 kernels."""
    import timm
    import torch

    from masterkey.niff import spatial_kernels  # importing masterkey.niff registers niff_convnext_atto
    from masterkey.niff.analysis import kmr_frame

    torch.manual_seed(0)
    niff = timm.create_model("niff_convnext_atto", num_classes=16).eval()
    plain = timm.create_model("convnext_atto", num_classes=16)
    plain_kernels = {
        n: m.weight[:, 0].detach().numpy() for n, m in plain.named_modules() if n.endswith("conv_dw")
    }
    inputs = {}
    for size in (64, 224):
        init = spatial_kernels(niff, (3, size, size))
        trained = {name: 2 * k for name, k in init.items()}
        kernels = {"trained": trained, "init": init}
        frame = pd.concat([kmr_frame(trained, state="trained"), kmr_frame(init, state="init"),
                           kmr_frame(plain_kernels, state="plain")], ignore_index=True)  # fmt: skip
        inputs[size] = kernels, frame
    return inputs


@pytest.mark.parametrize("size", [64, 224])
def test_real_network_figures_fit_the_page(network_inputs, size, tmp_path):
    kernels, frame = network_inputs[size]
    maps = {64: ["16x16", "8x8", "4x4", "2x2"], 224: ["56x56", "28x28", "14x14", "7x7"]}[size]
    makers = {
        "kmr": lambda: figures.plot_kmr_curves(frame, "atto"),
        "gallery": lambda: figures.plot_kernel_gallery(kernels, "atto"),
        "pca": lambda: figures.plot_kernel_pca(kernels, "atto"),
    }
    for name, make in makers.items():
        fig = make()
        if name == "kmr":
            assert [ax.get_title() for ax in fig.axes] == [f"stage {i}: map {m}" for i, m in enumerate(maps)]
        image_axes = [ax for ax in fig.axes if any(isinstance(i, AxesImage) for i in ax.images)]
        if name == "gallery":  # 6 kernels x 2 states per stage, zoomed where the map exceeds 7
            zoomed = sum(int(m.split("x")[0]) > 7 for m in maps)
            assert len(image_axes) == 2 * 6 * (4 + zoomed)
        if name == "pca":
            assert len(image_axes) == sum(1 + min(6, int(m.split("x")[0]) ** 2) for m in maps)
        paths = [tmp_path / f"{name}.png", tmp_path / f"{name}-again.png"]
        style.save_figure(fig, paths[0])
        style.save_figure(make(), paths[1])
        digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
        assert len(digests) == 1, name  # byte-identical reruns
        with Image.open(paths[0]) as png:
            inches = png.size[0] / style.RC_PARAMS["savefig.dpi"]
        assert 0.5 * style.COLUMN_WIDTH <= inches <= 1.15 * style.TEXT_WIDTH, (name, inches)
