"""Spread measures, :mod:`masterkey.scalespace.spread` (methods.md section 2)."""

from __future__ import annotations

import numpy as np
import pytest

from masterkey.kernels.conventions import kernel_coordinates
from masterkey.scalespace.spread import (
    reference_sigma,
    reference_template,
    separability_correlation,
    spread_moments,
    spread_table,
)

PUBLISHED_TYPES = ["dy+", "dx-", "dy-", "dx+", "dx", "dy", "id-lap", "T"]


def _sampled_gaussian(k, sigma):
    x, y = kernel_coordinates(k)
    return np.exp(-(x**2 + y**2) / (2 * sigma**2)), x, y


def test_point_and_two_point_weights():
    w = np.zeros((7, 7))
    w[1, 5] = 2.0  # x = 2, y = 2
    mean, variance = spread_moments(w)
    assert np.allclose(mean, [2, 2]) and np.allclose(variance, 0)
    w = np.zeros((7, 7))
    w[3, 2] = w[3, 4] = 1.0  # x = -1 and x = +1 on the centre row
    mean, variance = spread_moments(w)
    assert np.allclose(mean, 0) and np.allclose(variance, [[1, 0], [0, 0]])


def test_batched_shapes_and_nan_for_empty_weight():
    w = np.abs(np.random.default_rng(0).normal(size=(5, 3, 9, 9)))
    w[0, 0] = 0.0
    mean, variance = spread_moments(w)
    assert mean.shape == (5, 3, 2) and variance.shape == (5, 3, 2, 2)
    assert np.isnan(mean[0, 0]).all() and np.isfinite(mean[1:]).all()
    assert np.allclose(variance, np.swapaxes(variance, -1, -2), equal_nan=True)


@pytest.mark.parametrize("sigma", [20.0, 40.0])
def test_continuous_gaussian_identities(sigma):
    # a Gaussian sampled finely relative to its scale behaves as the continuous one
    g, x, _ = _sampled_gaussian(int(16 * sigma) + 1, sigma)
    _, variance = spread_moments(g)
    assert np.allclose(variance, sigma**2 * np.eye(2), rtol=1e-9)
    g_x = -x / sigma**2 * g
    _, variance = spread_moments(np.abs(g_x))
    assert np.allclose(variance, np.diag([2 * sigma**2, sigma**2]), rtol=2e-3)


def test_separability_correlation():
    g, x, y = _sampled_gaussian(21, 2.0)
    _, variance = spread_moments(g)
    assert separability_correlation(variance) == pytest.approx(0.0, abs=1e-12)
    _, variance = spread_moments(g * np.exp(0.3 * x * y / 4.0))  # correlated weight
    assert separability_correlation(variance) > 0.1


def test_reference_templates():
    assert reference_sigma("id-lap") == pytest.approx(1 / np.sqrt(2))
    assert reference_sigma("dx") == 1.0
    assert reference_template("dx+", 7).shape == (7, 7)


def test_spread_table_columns_and_offsets():
    rng = np.random.default_rng(1)
    kernels = rng.normal(size=(3, 7, 7))
    table = spread_table(kernels, ["dx+", "T", None])
    assert list(table.columns) == ["filter", "type", "m_x", "m_y", "V_xx", "V_xy", "V_yy", "mg_x", "mg_y",
                                   "Vg_xx", "Vg_xy", "Vg_yy", "correlation", "correlation_g", "offset",
                                   "offset_g"]  # fmt: skip
    assert table["filter"].tolist() == [1, 2, 3]
    assert table.loc[0, "offset"] == pytest.approx(table.loc[0, "m_x"])
    assert np.isnan(table.loc[1, "offset"]) and np.isnan(table.loc[2, "Vg_xx"])
    with pytest.raises(ValueError):
        spread_table(kernels, ["dx", "nope", "T"])


def test_published_filters_have_half_grid_offsets(published_filters):
    table = spread_table(published_filters, PUBLISHED_TYPES)
    offsets = table["offset"].to_numpy()
    assert np.all(offsets[[0, 3]] < -0.4) and np.all(offsets[[1, 2]] > 0.4)  # dy+, dx+ / dx-, dy-
    assert np.all(np.abs(offsets[[4, 5]]) < 0.15)  # centred dx, dy
    assert np.all(np.abs(table["correlation"]) < 0.1)  # near separable


# -- band kernels (1 x k, k x 1): docs/methods.md section 2 ----------------------------------------


def _binomial(n):
    """Binomial weights C(n, j): variance n/4 about the centre, the analytic 1-D reference."""
    from math import comb

    return np.array([comb(n, j) for j in range(n + 1)], dtype=np.float64)


@pytest.mark.parametrize("k", [5, 9, 11])
def test_band_kernels_spread_along_their_long_axis_only(k):
    profile = _binomial(k - 1) * np.where(np.arange(k) % 2, -1.0, 1.0)  # signs do not matter (|h|)
    horizontal, vertical = profile[None, None, :], profile[None, :, None]  # (1, 1, k), (1, k, 1)
    for band, long_axis in ((horizontal, 0), (vertical, 1)):
        table = spread_table(band, [None])
        v = {"V_xx": table["V_xx"][0], "V_yy": table["V_yy"][0]}
        along, across = ("V_xx", "V_yy") if long_axis == 0 else ("V_yy", "V_xx")
        assert v[along] == pytest.approx((k - 1) / 4, rel=1e-12)  # binomial variance n p (1 - p)
        assert v[across] == 0 and table["V_xy"][0] == 0
        assert table[["m_x", "m_y"]].to_numpy() == pytest.approx(0, abs=1e-12)
        # undefined correlation, no type: no weighted measures, no offset
        assert table[["correlation", "mg_x", "Vg_xx", "offset", "offset_g"]].isna().all(axis=None)


def test_band_mean_uses_the_conventions_of_section_1():
    band = np.zeros((2, 1, 9))
    band[0, 0, 0] = 1.0  # leftmost column: x = -4
    band[1, 0, 6] = band[1, 0, 8] = 1.0  # x = 2 and x = 4: mean 3, variance 1
    mean, variance = spread_moments(np.abs(band))
    assert mean.tolist() == [[-4.0, 0.0], [3.0, 0.0]]
    assert variance[1].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    column = np.zeros((9, 1))
    column[0, 0] = 1.0  # top row: y = +4 (y points up)
    assert spread_moments(column)[0].tolist() == [0.0, 4.0]


def test_band_equals_a_square_kernel_with_the_same_centre_row():
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(6, 9))
    square = np.zeros((6, 9, 9))
    square[:, 4, :] = rows
    band, full = spread_table(rows[:, None, :], [None] * 6), spread_table(square, [None] * 6)
    columns = ["m_x", "m_y", "V_xx", "V_xy", "V_yy"]
    np.testing.assert_allclose(band[columns].to_numpy(), full[columns].to_numpy(), atol=1e-12)


def test_band_kernels_cannot_have_a_type():
    with pytest.raises(ValueError, match="band kernels 1x7 have no scale-space type"):
        spread_table(np.ones((1, 1, 7)), ["dx"])


def test_untyped_square_kernels_get_nan_weighted_measures():
    """Degenerate kernels (e.g. all-zero channels of EfficientNet-Lite0) have no type (NaN in the fits)."""
    from masterkey.scalespace.spread import spread_table
    from masterkey.scalespace.templates import idealized_templates

    kernels = np.stack([idealized_templates("dx", 3, 1.0), np.zeros((3, 3))])
    table = spread_table(kernels, ["dx", float("nan")])
    weighted = ["mg_x", "mg_y", "Vg_xx", "Vg_xy", "Vg_yy"]
    assert table[weighted].iloc[1].isna().all() and np.isfinite(table[weighted].iloc[0]).all()
    with pytest.raises(ValueError, match="unknown scale-space types \\['dz'\\]"):
        spread_table(kernels, ["dx", "dz"])
