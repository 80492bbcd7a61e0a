"""Per-filter analysis of [C] (masterkey.shiftinv.analysis): a Gabor filter within the theorem's
conditions measures below its bounds and is flagged admissible, broadband and low-pass ones are not."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from masterkey.shiftinv.analysis import filter_analysis, required_margin
from masterkey.shiftinv.bounds import discrepancy_bound, gamma, instability_bound

RNG = np.random.default_rng(11)
IMAGES = RNG.normal(size=(16, 96, 96))  # white noise, float64


def gabor(theta, sigma: float, k: int, analytic: bool = False) -> np.ndarray:
    r = np.arange(k) - k // 2
    rows, cols = np.meshgrid(r, r, indexing="ij")
    z = np.exp(-(rows**2 + cols**2) / (2 * sigma**2)) * np.exp(1j * (theta[0] * rows + theta[1] * cols))
    return z if analytic else z.real


def test_gabor_filters_within_the_conditions_stay_below_the_bounds():
    # sigma = 3: the spectrum's Gaussian (std 1/3 rad/sample) fits a pi/2 window (m = 2); sigma = 0.7 does not
    thetas = [(0.7, 1.66), (-1.2, 1.1)]
    kernels = np.stack([gabor(thetas[0], 3.0, 19), gabor(thetas[1], 3.0, 19), gabor(thetas[0], 0.7, 19),
                        np.pad(RNG.normal(size=(7, 7)), 6)])  # fmt: skip
    table = filter_analysis(IMAGES, kernels, m=2, q=1)
    assert table["admissible"].tolist() == [True, True, False, False]
    good = table.iloc[:2]
    assert (good["rho"] > 0.99).all() and (good["bandwidth"] <= math.pi / 2).all()
    assert (good["instability"] < good["instability_bound"]).all() and good["below_bound"].all()
    assert (good["discrepancy"] < good["discrepancy_bound"]).all()
    assert (good["instability_cmod"] < good["instability"]).all()  # CMod is the more stable one
    theta = good[["theta_1", "theta_2"]].to_numpy()
    np.testing.assert_allclose(theta, thetas, atol=math.pi / 64 + 1e-9)
    np.testing.assert_allclose(good["gamma"], gamma(2 * theta, 1))
    np.testing.assert_allclose(good["beta"], math.pi)  # beta_q(m kappa) = q pi at kappa = pi / m
    np.testing.assert_allclose(good["alpha"], math.pi / 4)  # alpha(kappa (1, 0)) = kappa / 2
    np.testing.assert_allclose(good["discrepancy_bound"], discrepancy_bound(theta, math.pi / 2, 2, 1))
    np.testing.assert_allclose(good["instability_bound"], instability_bound(theta, math.pi / 2, 2, 1))
    assert np.all(table[["discrepancy", "instability", "instability_cmod"]].to_numpy() > 0)


def test_complex_rgb_and_float32_inputs():
    theta = (-0.9, 1.4)
    w = gabor(theta, 3.0, 15, analytic=True)[None]
    real = filter_analysis(IMAGES[:4], w.real, m=2)
    complex_ = filter_analysis(IMAGES[:4], w, m=2)
    # the analytic companion of a Gabor of wide envelope is (nearly) the complex Gabor itself
    np.testing.assert_allclose(complex_[["theta_1", "theta_2"]], real[["theta_1", "theta_2"]])
    np.testing.assert_allclose(complex_["instability"], real["instability"], rtol=1e-3)
    rgb = np.array([0.2, 0.5, 0.3])[None, :, None, None] * w.real[:, None]
    colour = filter_analysis(IMAGES[:4].astype(np.float32), rgb, m=2)
    np.testing.assert_allclose(colour["share"], 1.0, atol=1e-6)
    np.testing.assert_allclose(colour["instability"], real["instability"], rtol=1e-4)


def test_without_pooling_only_the_aliasing_part_is_reported():
    kernels = gabor((0.7, 1.66), 3.0, 19)[None]
    table = filter_analysis(IMAGES[:4], kernels, m=2, pool=False, shifts=((1, 0), (0, 1), (1, 1)))
    for column in ("gamma", "beta", "discrepancy_bound", "instability_bound", "discrepancy"):
        assert table[column].isna().all()
    assert table["below_bound"].isna().all()
    np.testing.assert_allclose(table["alpha"], (math.pi / 4 + math.pi / 4 + math.pi / 2) / 3)
    assert (table["instability"] > 0).all() and (table["instability_cmod"] < table["instability"]).all()


def test_margin_batches_and_chunks_do_not_change_the_result():
    kernels = np.stack([gabor((0.7, 1.66), 3.0, 19), gabor((1.5, 0.2), 2.0, 19)])
    assert required_margin(19, ((1, 0), (0, -2))) == 11
    whole = filter_analysis(IMAGES[:6], kernels, m=2)
    split = filter_analysis(IMAGES[:6], torch.as_tensor(kernels), m=2, chunk=1, batch_size=4, margin=10)
    pd.testing.assert_frame_equal(split, whole, check_exact=False, rtol=1e-12)


def test_bad_inputs_are_rejected():
    kernels = gabor((0.7, 1.66), 3.0, 19)[None]
    with pytest.raises(ValueError, match="too small for margin"):
        filter_analysis(IMAGES[:2, :24, :24], kernels, m=2)
    with pytest.raises(ValueError, match="margin 5 is too small"):
        filter_analysis(IMAGES[:2], kernels, m=2, margin=5)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        filter_analysis(IMAGES[0], kernels, m=2)
    with pytest.raises(ValueError, match="NaN"):
        filter_analysis(IMAGES[:2], np.full_like(kernels, np.nan), m=2)
    with pytest.raises(ValueError, match="m must be an integer"):
        filter_analysis(IMAGES[:2], kernels, m=0)
    with pytest.raises(ValueError, match="q must be an integer"):
        filter_analysis(IMAGES[:2], kernels, m=2, q=-1)
    with pytest.raises(ValueError, match="shape"):
        filter_analysis(IMAGES[:2], kernels[0], m=2)
