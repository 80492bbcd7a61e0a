"""Filter descriptors of [C] (masterkey.shiftinv.descriptors): planted Gabor frequencies and orientations,
planted rank-1 RGB kernels, the analytic companion's identities, Gabor-likeness and bandwidth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from masterkey.shiftinv.descriptors import (
    analytic_spectrum,
    bandwidth,
    characteristic_frequency,
    describe_filters,
    frequency_grid,
    gabor_likeness,
    is_lowpass,
    monochrome_part,
    orientation,
    spectrum_on_grid,
)

HALF_BIN = math.pi / 64  # half the resolution 2 pi / 64 of the default descriptor grid


def gabor(theta, sigma: float, k: int, analytic: bool = False) -> np.ndarray:
    """``exp(-|x|^2 / (2 sigma^2)) exp(i <theta, x>)`` on a ``k x k`` grid centred at index ``k // 2``;
    its real part (a cosine Gabor) unless ``analytic``."""
    r = np.arange(k) - k // 2
    rows, cols = np.meshgrid(r, r, indexing="ij")
    z = np.exp(-(rows**2 + cols**2) / (2 * sigma**2)) * np.exp(1j * (theta[0] * rows + theta[1] * cols))
    return z if analytic else z.real


PLANTED = [(1.0, 0.3), (2.0, -1.0), (1.5, 1.2), (2.5, 0.0), (1.2, math.pi / 2), (2.9, 0.8), (1.7, -1.4)]


def test_planted_gabor_frequencies_and_orientations_are_recovered():
    thetas = np.array([f * np.array([math.sin(a), math.cos(a)]) for f, a in PLANTED])
    kernels = np.stack([gabor(t, 3.0, 21) for t in thetas])
    found = characteristic_frequency(kernels)
    assert isinstance(found, np.ndarray) and found.shape == (len(PLANTED), 2)
    # the planted theta has omega_2 > 0 or lies on omega_2 = 0 with omega_1 >= 0: same member of +-theta
    assert np.all(np.abs(found - thetas) <= HALF_BIN + 1e-9)
    for (freq, angle), got in zip(PLANTED, orientation(found), strict=True):
        assert abs(got - angle) <= math.atan(math.sqrt(2) * HALF_BIN / freq) + 1e-9
    table = describe_filters(kernels, m=2)
    np.testing.assert_allclose(table["frequency"], [f for f, _ in PLANTED], atol=math.sqrt(2) * HALF_BIN)
    assert (~table["lowpass"]).all() and (table["share"] == 1).all()


def test_half_plane_choice_and_orientation_range():
    for theta in [(1.0, -2.0), (-1.0, 0.0), (0.5, 2.0)]:
        got = characteristic_frequency(gabor(theta, 3.0, 21)[None])[0]
        assert got[1] > 0 or (got[1] == 0 and got[0] >= 0)
        assert min(np.abs(got - theta).max(), np.abs(got + theta).max()) <= HALF_BIN + 1e-9
    angles = orientation(np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, -1.0], [-1.0, -1.0], [0.0, 1.0]]))
    np.testing.assert_allclose(angles, [math.pi / 2, math.pi / 2, -math.pi / 4, math.pi / 4, 0.0])


def test_monochrome_part_recovers_a_planted_rank1_rgb_kernel():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(2, 5, 5))
    weights = np.array([[0.5, 0.3, 0.2], [-0.6, -0.1, -0.3]])  # gray response +base, then -base
    kernels = weights[:, :, None, None] * base[:, None]
    v, share = monochrome_part(kernels)
    np.testing.assert_allclose(share, 1.0, atol=1e-12)
    for f in range(2):
        gray = kernels[f].sum(0)  # response to a gray input
        np.testing.assert_allclose(
            v[f], np.linalg.norm(weights[f]) * np.sign(weights[f].sum()) * base[f], atol=1e-12
        )
        assert np.sum(v[f] * gray) > 0
    noisy, noisy_share = monochrome_part(kernels + 0.3 * rng.normal(size=kernels.shape))
    assert np.all((noisy_share > 0.5) & (noisy_share < 1))
    single, single_share = monochrome_part(torch.as_tensor(base))
    assert torch.equal(single, torch.as_tensor(base)) and torch.all(single_share == 1)


def test_analytic_companion_real_part_and_one_sided_spectrum():
    theta = np.array([[0.7, 1.6], [-2.0, 0.4], [math.pi, 0.0]])
    kernels = np.stack([gabor(t, 1.5, 9) for t in theta])
    shape = (32, 30)
    w_hat = analytic_spectrum(kernels, theta, shape)
    assert w_hat.shape == (3, *shape) and np.iscomplexobj(w_hat)
    v_hat = spectrum_on_grid(kernels, shape)
    # Re W = V exactly, Nyquist lines included (the sign is antisymmetrised)
    np.testing.assert_allclose(np.fft.ifft2(w_hat).real, np.fft.ifft2(v_hat).real, atol=1e-12)
    o1, o2 = (o.numpy() for o in frequency_grid(shape))
    for f in range(2):  # no bin of these is on a Nyquist line and on the far side at once
        u = theta[f] / np.linalg.norm(theta[f])
        far = (o1 * u[0] + o2 * u[1]) < -1e-9
        far &= (o1 != -math.pi) & (o2 != -math.pi)
        assert np.abs(w_hat[f][far]).max() == 0
    # the same from the spectrum, and torch in -> torch out
    from_spectrum = analytic_spectrum(torch.as_tensor(v_hat), torch.as_tensor(theta), shape)
    assert isinstance(from_spectrum, torch.Tensor)
    np.testing.assert_allclose(from_spectrum.numpy(), w_hat, atol=1e-12)


def test_spectrum_on_grid_puts_the_origin_at_index_k_over_2():
    delta = np.zeros((1, 5, 5))
    delta[0, 2, 2] = 1.0
    np.testing.assert_allclose(spectrum_on_grid(delta, (8, 8)), np.ones((1, 8, 8)))
    even = np.zeros((1, 4, 4))
    even[0, 2, 2] = 1.0  # the origin of an even kernel is index k // 2
    np.testing.assert_allclose(spectrum_on_grid(even, (8, 8)), np.ones((1, 8, 8)))


def test_gabor_likeness_and_bandwidth_agree():
    theta = np.array([[0.7, 1.6], [1.0, -1.0]])
    kernels = np.stack([gabor(theta[0], 3.0, 21), gabor(theta[1], 0.8, 21)])
    w_hat = analytic_spectrum(kernels, theta, (64, 64))
    level = 0.9
    width = bandwidth(w_hat, theta, level)
    step = 4 * math.pi / 64  # window sides on a grid centred off-bin change by at most 2 bins
    assert np.all(gabor_likeness(w_hat, theta, width) >= level - 1e-12)
    assert np.all(gabor_likeness(w_hat, theta, width - 1e-9) < level)
    assert width[0] < math.pi / 2 < width[1] - step
    np.testing.assert_allclose(gabor_likeness(w_hat, theta, 2 * math.pi), 1.0)
    rho = gabor_likeness(w_hat, theta, np.array([0.5, 1.0]))
    assert rho.shape == (2,) and np.all((rho >= 0) & (rho <= 1))


def test_lowpass_and_broadband_filters_are_flagged():
    rng = np.random.default_rng(2)
    r = np.arange(15) - 7
    gaussian = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    kernels = np.stack(
        [gabor((0.7, 1.6), 3.0, 15), gabor((0.7, 1.6), 0.7, 15), gaussian, np.pad(rng.normal(size=(7, 7)), 4)]
    )
    table = describe_filters(kernels, m=2)
    assert list(table.columns) == [
        "filter", "theta_1", "theta_2", "frequency", "orientation", "share",
        "kappa", "rho", "bandwidth", "lowpass", "admissible",
    ]  # fmt: skip
    assert table["admissible"].tolist() == [True, False, False, False]
    assert table["lowpass"].tolist() == [False, False, True, False]
    assert table.loc[2, ["theta_1", "theta_2"]].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(table["kappa"], math.pi / 2)
    assert is_lowpass(np.array([[0.3, -0.7], [0.3, 0.9]]), math.pi / 2).tolist() == [True, False]


def test_complex_filters_keep_the_side_of_their_spectrum():
    theta = np.array([[0.9, -1.5], [1.0, 1.0]])  # the first one outside the canonical half-plane
    w = np.stack([gabor(t, 3.0, 21, analytic=True) for t in theta])
    table = describe_filters(w, m=2)
    np.testing.assert_allclose(table[["theta_1", "theta_2"]], theta, atol=HALF_BIN + 1e-9)
    assert (table["rho"] > 0.99).all() and table["admissible"].all()


@pytest.mark.parametrize(
    "kernels, match",
    [
        (np.zeros((5, 5)), "shape"),
        (np.zeros((2, 5, 4)), "square"),
        (np.zeros((2, 3, 3, 5, 5)), "shape"),
        (np.full((2, 5, 5), np.nan), "NaN"),
    ],
)
def test_bad_kernels_are_rejected(kernels, match):
    with pytest.raises(ValueError, match=match):
        describe_filters(kernels, m=2)


def test_other_bad_inputs_are_rejected():
    kernels = np.stack([gabor((0.7, 1.6), 3.0, 15)])
    with pytest.raises(ValueError, match="grid must be >= 64"):
        characteristic_frequency(kernels, grid=32)
    with pytest.raises(ValueError, match="level"):
        bandwidth(spectrum_on_grid(kernels, (64, 64)), np.array([[0.7, 1.6]]), level=0.0)
    with pytest.raises(ValueError, match="do not fit"):
        spectrum_on_grid(kernels, (8, 8))
    with pytest.raises(ValueError, match="real"):
        monochrome_part(kernels.astype(complex))
    with pytest.raises(ValueError, match="must be an integer"):
        describe_filters(kernels, m=0)
