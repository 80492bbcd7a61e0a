"""DT-CWPT ([C], spec section 8): filter counts and shapes, the fully decimated real trees are
orthogonal (Parseval and adjoint reconstruction), forward == strided circular convolution with the
equivalent filters, spectra one-sided and centred on the nominal frequencies, bad inputs rejected."""

import math

import numpy as np
import pytest
import torch

from masterkey.shiftinv.dtcwpt import DTCWPT, equivalent_filters, nominal_frequencies


def side(angle):
    """1 on the positive side, 1/2 on the line 0, 0 on the negative side."""
    return (1 + np.sign(angle)) / 2


def wrap(angle):
    """Angles to ``[-pi, pi)``."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def spectra(depth, size=129):
    """Normalised energy spectra ``(F, size, size)`` of the equivalent filters and the DFT grid (odd
    ``size``: no frequency on the line ``-pi``)."""
    power = np.abs(np.fft.fft2(equivalent_filters(depth), (size, size))) ** 2
    omega = 2 * np.pi * np.fft.fftfreq(size)
    rows, cols = np.meshgrid(omega, omega, indexing="ij")
    return power / power.sum((1, 2), keepdims=True), rows, cols


@pytest.mark.parametrize("depth, filters, k", [(1, 8, 13), (2, 32, 31), (3, 128, 67)])
def test_counts_shapes_and_properties(depth, filters, k):
    layer = DTCWPT(depth)
    m = 2 ** (depth - 1)
    assert (layer.num_filters, layer.subsampling, layer.bandwidth) == (filters, m, math.pi / m)
    x = torch.randn(2, 1, 48, 64, dtype=torch.float64)
    out = layer(x)
    assert out.shape == (2, filters, 48 // m, 64 // m) and out.dtype == torch.complex128
    torch.testing.assert_close(layer(x[:, 0]), out, rtol=0, atol=0)
    assert equivalent_filters(depth).shape == (filters, k, k)
    assert nominal_frequencies(depth).shape == (filters, 2)


@pytest.mark.parametrize("depth", [2, 3])
def test_decimated_real_trees_are_orthogonal(depth):
    x = torch.randn(3, 32, 48, dtype=torch.float64, requires_grad=True)
    trees = DTCWPT(depth).real_trees(x, decimated=True)
    n = 2**depth
    assert trees.shape == (3, 2, 2, n, n, 32 // n, 48 // n)
    energy = (x**2).sum((1, 2))
    torch.testing.assert_close((trees**2).sum((3, 4, 5, 6)), energy[:, None, None].expand(-1, 2, 2))
    # square and norm preserving, so orthogonal: the adjoint (autograd) of each tree reconstructs x
    for s in range(2):
        for t in range(2):
            (back,) = torch.autograd.grad(trees[:, s, t], x, trees[:, s, t], retain_graph=True)
            torch.testing.assert_close(back, x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_forward_is_strided_convolution_with_equivalent_filters(depth):
    height, width, m = 72, 80, 2 ** (depth - 1)
    x = np.random.default_rng(depth).standard_normal((2, height, width))
    filters = equivalent_filters(depth)
    centre = filters.shape[-1] // 2
    # the filters as circular kernels on the image grid, origin at pixel (0, 0)
    kernels = np.zeros((len(filters), height, width), dtype=complex)
    kernels[:, : filters.shape[1], : filters.shape[2]] = filters
    kernels = np.roll(kernels, (-centre, -centre), (1, 2))
    expected = np.fft.ifft2(np.fft.fft2(x)[:, None] * np.fft.fft2(kernels)[None])[..., ::m, ::m]
    out = DTCWPT(depth)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)


# measured minima (129 x 129 DFT): one-sided share 0.9984 / 0.9975, corner filters 0.829 / 0.852,
# energy in the kappa_J square 0.936 / 0.811 for J = 2 / 3
@pytest.mark.parametrize("depth, corner_share, rho", [(2, 0.82, 0.93), (3, 0.84, 0.80)])
def test_spectra_one_sided_and_at_nominal_frequencies(depth, corner_share, rho):
    power, rows, cols = spectra(depth)
    nominal = nominal_frequencies(depth)
    band = np.pi / 2**depth
    # energy on the side of an axis through the origin given by the nominal frequency
    right = (power * side(cols)).sum((1, 2))
    upper = (power * side(np.sign(nominal[:, 0, None, None]) * rows)).sum((1, 2))
    share = np.maximum(right, upper)
    # the 8 filters whose 1-D bands both straddle 0 or pi (low-pass, Nyquist) are not one-sided
    edge = np.abs(np.abs(nominal) - np.pi / 2) > np.pi / 2 - band
    corner = edge.all(1)
    assert corner.sum() == 8
    assert share[~corner].min() > 0.995 and share[corner].min() > corner_share
    assert right.min() > 0.8  # convention: the nominal column frequency is positive
    # the spectrum peaks within a quarter band of the nominal centre
    peak = np.unravel_index(power.reshape(len(power), -1).argmax(1), rows.shape)
    assert np.abs(wrap(rows[peak] - nominal[:, 0])).max() < band / 4
    assert np.abs(wrap(cols[peak] - nominal[:, 1])).max() < band / 4
    # most energy within the square of side kappa_J = pi / m_J around the nominal centre (rho [C])
    kappa = DTCWPT(depth).bandwidth
    inside = (np.abs(wrap(rows - nominal[:, 0, None, None])) < kappa / 2) & (
        np.abs(wrap(cols - nominal[:, 1, None, None])) < kappa / 2
    )
    assert (power * inside).sum((1, 2)).min() > rho


@pytest.mark.parametrize("depth", [2, 3])
def test_nominal_squares_cover_the_plane(depth):
    centres = nominal_frequencies(depth)
    centres = np.concatenate([centres, -centres])  # the conjugate filters
    kappa = np.pi / 2 ** (depth - 1)
    grid = np.linspace(-np.pi, np.pi, 97)
    points = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 1, 2)
    covered = (np.abs(wrap(points - centres)) <= kappa / 2 + 1e-12).all(-1)
    assert covered.sum(1).min() >= 1
    # each point (away from the edges of squares) lies in 4 overlapping squares
    assert np.median(covered.sum(1)) == 4


def test_float32_matches_float64():
    x = torch.randn(2, 32, 32, dtype=torch.float64)
    layer = DTCWPT(2)
    out32 = layer(x.float())
    assert out32.dtype == torch.complex64
    torch.testing.assert_close(out32.to(torch.complex128), layer(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: DTCWPT(0), "depth must be an integer >= 1"),
        (lambda: DTCWPT(1.5), "depth must be an integer >= 1"),
        (lambda: equivalent_filters(-1), "depth must be an integer >= 1"),
        (lambda: nominal_frequencies(0), "depth must be an integer >= 1"),
        (lambda: DTCWPT(2, qshift="near_sym_a"), "use one of qshift_06, qshift_a"),
        (lambda: equivalent_filters(2, qshift="qshift_z"), "use one of"),
        (lambda: DTCWPT(3)(torch.zeros(1, 1, 32, 36)), r"multiples of 2\*\*depth = 8.*crop or pad"),
        (lambda: DTCWPT(2)(torch.zeros(1, 3, 32, 32)), r"real floating \(B, 1, H, W\)"),
        (lambda: DTCWPT(2)(torch.zeros(1, 32, 32, dtype=torch.complex64)), "real floating"),
    ],
)
def test_bad_inputs_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()
