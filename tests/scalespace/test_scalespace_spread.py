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
