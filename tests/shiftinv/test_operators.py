"""RMax, CMod and translations of [C] (masterkey.shiftinv.operators): the exact shift invariance of
CMod's norm, alignment on analytic signals, integer shifts by cropping, Fourier shifts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from masterkey.shiftinv.descriptors import spectrum_on_grid
from masterkey.shiftinv.operators import cmod, fourier_shift, responses, rmax, shift_measures

RNG = np.random.default_rng(7)


def block_spectrum(n: int, start: tuple[int, int], side: int) -> torch.Tensor:
    """A random complex spectrum ``(1, n, n)`` supported on ``side x side`` consecutive DFT bins."""
    w_hat = np.zeros((1, n, n), dtype=complex)
    rows, cols = (np.arange(s, s + side) % n for s in start)
    w_hat[0][np.ix_(rows, cols)] = RNG.normal(size=(side, side)) + 1j * RNG.normal(size=(side, side))
    return torch.as_tensor(w_hat)


def cmod_energies(images, w_hat, m, shifts):
    """``||CMod(T_u X)||^2`` on the full periodic grid (``q = 0``, no margin) for Fourier shifts ``u``."""
    return np.array(
        [(cmod(responses(fourier_shift(images, u), w_hat), m, q=0) ** 2).sum().item() for u in shifts]
    )


@pytest.mark.parametrize("m", [1, 2, 3])
def test_cmod_norm_is_exactly_invariant_to_fourier_shifts(m):
    """Statement (periodic ``N x N`` grid, ``2m`` divides ``N``): if ``W^`` vanishes outside a block of
    ``N / (2m)`` consecutive DFT bins along each axis - i.e. inside a square of side ``kappa < pi / m``, or
    a half-open one of side ``pi / m`` - and on no Nyquist bin, then for every image ``X`` and every ``u``
    in ``R^2``: ``||CMod(T_u X)||^2 = ||T_u X * W||^2 / (2m)^2 = ||X * W||^2 / (2m)^2``.

    Proof: ``|Y|^2`` (``Y = T_u X * W``) has its spectrum in the difference set of the block, whose
    components lie strictly between ``-pi / m`` and ``pi / m``; subsampling by ``2m`` aliases the spectrum
    by multiples of ``pi / m`` (Poisson summation), so the sum over the subsampled grid is the DFT of
    ``|Y|^2`` at 0 over ``(2m)^2``, i.e. ``||Y||^2 / (2m)^2``; the Fourier shift multiplies ``Y^`` by a
    unimodular phase ramp (``W^`` is 0 on the Nyquist lines) and Parseval gives ``||Y|| = ||X * W||``.
    W needs no analyticity here; a block one bin wider (a closed square of side ``pi / m``) breaks it.
    """
    n = 2 * m * 12
    images = torch.as_tensor(RNG.normal(size=(3, n, n)))
    shifts = [(0.0, 0.0), (0.5, 0.0), (0.3, -0.7), (1.0, 2.0), (-2.25, 0.6)]
    w_hat = block_spectrum(n, (n // 2 + 1, n - 7), n // (2 * m))  # wraps around 0, avoids the Nyquist bin
    energies = cmod_energies(images, w_hat, m, shifts)
    full = (responses(images, w_hat).abs() ** 2).sum().item()
    np.testing.assert_allclose(energies, full / (2 * m) ** 2, rtol=1e-10)
    wider = cmod_energies(images, block_spectrum(n, (n // 2 + 1, n - 7), n // (2 * m) + 1), m, shifts)
    assert np.ptp(wider) / wider.mean() > 1e-3


def test_responses_are_circular_convolutions_with_the_origin_at_the_centre():
    images = RNG.normal(size=(2, 12, 10))
    kernels = RNG.normal(size=(3, 5, 5)) + 1j * RNG.normal(size=(3, 5, 5))
    got = responses(torch.as_tensor(images), torch.as_tensor(spectrum_on_grid(kernels, (12, 10))), chunk=2)
    expected = np.zeros((2, 3, 12, 10), dtype=complex)
    for f in range(3):
        for a in range(5):
            for b in range(5):  # (X * V)[p] = sum_k X[p - k] V[k], k = (a - 2, b - 2)
                expected[:, f] += kernels[f, a, b] * np.roll(images, (a - 2, b - 2), axis=(-2, -1))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    single = responses(torch.as_tensor(images, dtype=torch.float32), spectrum_on_grid(kernels, (12, 10)))
    assert single.dtype == torch.complex64


def test_rmax_and_cmod_of_a_complex_exponential_match_the_analytic_values():
    size, m, q, margin, amplitude = 40, 2, 1, 3, 1.7
    theta = np.array([0.9, -2.3])
    x = np.arange(size)
    phase = theta[0] * x[:, None] + theta[1] * x[None, :]
    y = torch.as_tensor(amplitude * np.exp(1j * phase))[None, None]
    positions = 2 * m * np.arange(2, 9)  # n from ceil((3 + 2) / 4) = 2 to (39 - 3 - 2) // 4 = 8
    expected = np.full((positions.size, positions.size), -np.inf)
    for p1 in range(-q, q + 1):
        for p2 in range(-q, q + 1):
            arg = theta[0] * (positions[:, None] + m * p1) + theta[1] * (positions[None, :] + m * p2)
            expected = np.maximum(expected, amplitude * np.cos(arg))
    np.testing.assert_allclose(rmax(y.real, m, q, margin=margin)[0, 0].numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(cmod(y, m, q, margin=margin)[0, 0].numpy(), amplitude, atol=1e-12)
    strided = m * np.arange(2, 19)  # no pooling: n from ceil(3 / 2) to (39 - 3) // 2
    no_pool = amplitude * np.cos(theta[0] * strided[:, None] + theta[1] * strided[None, :])
    np.testing.assert_allclose(
        rmax(y.real, m, q, margin=margin, pool=False)[0, 0].numpy(), no_pool, atol=1e-12
    )
    assert cmod(y, m, q, margin=margin, pool=False).shape == (1, 1, 17, 17)


@pytest.mark.parametrize("pool", [True, False])
def test_integer_shift_by_cropping_equals_offsetting_the_grid(pool):
    big = RNG.normal(size=(2, 72, 72))
    kernels = RNG.normal(size=(2, 7, 7)) + 1j * RNG.normal(size=(2, 7, 7))
    w_hat = torch.as_tensor(spectrum_on_grid(kernels, (64, 64)))
    margin, m = 3 + 2, 2  # kernel radius + largest shift component
    reference = responses(torch.as_tensor(big[:, 4:68, 4:68]), w_hat)
    for u in [(1, 0), (0, -2), (2, 1)]:
        cropped = torch.as_tensor(big[:, 4 - u[0] : 68 - u[0], 4 - u[1] : 68 - u[1]])  # T_u X, no wrap
        moved = responses(cropped, w_hat)
        offset = (-u[0], -u[1])
        torch.testing.assert_close(
            rmax(moved.real, m, margin=margin, pool=pool),
            rmax(reference.real, m, offset=offset, margin=margin, pool=pool),
        )
        torch.testing.assert_close(
            cmod(moved, m, margin=margin, pool=pool),
            cmod(reference, m, offset=offset, margin=margin, pool=pool),
        )


def test_fourier_shift_integer_subpixel_and_nyquist():
    images = torch.as_tensor(RNG.normal(size=(2, 16, 15)))
    torch.testing.assert_close(fourier_shift(images, (3, -2)), torch.roll(images, (3, -2), dims=(-2, -1)))
    rows, cols = np.meshgrid(np.arange(16), np.arange(15), indexing="ij")
    wave = np.cos(2 * np.pi * (3 * rows / 16 + 5 * cols / 15))
    shifted = fourier_shift(torch.as_tensor(wave), (0.5, -0.3))
    assert not shifted.is_complex()
    expected = np.cos(2 * np.pi * (3 * (rows - 0.5) / 16 + 5 * (cols + 0.3) / 15))
    np.testing.assert_allclose(shifted.numpy(), expected, atol=1e-12)
    nyquist = torch.as_tensor((-1.0) ** rows)  # the bin -pi stands for +-pi: half a pixel cancels it
    np.testing.assert_allclose(fourier_shift(nyquist, (0.5, 0.0)).numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(
        fourier_shift(nyquist, (0.25, 0.0)).numpy(), math.cos(math.pi / 4) * nyquist.numpy(), atol=1e-12
    )


def test_shift_measures_match_their_definitions():
    images = torch.as_tensor(RNG.normal(size=(3, 40, 40)))
    kernels = RNG.normal(size=(2, 5, 5)) + 1j * RNG.normal(size=(2, 5, 5))
    w_hat = torch.as_tensor(spectrum_on_grid(kernels, (40, 40)))
    shifts, margin = ((1, 0), (0, 0), (-1, 1)), 3
    got = shift_measures(images, w_hat, 2, 1, shifts, margin=margin, chunk=1)
    assert got["discrepancy"].shape == (3, 2) and got["instability"].shape == (3, 2, 3)
    np.testing.assert_array_equal(got["instability"][..., 1], 0.0)
    np.testing.assert_array_equal(got["instability_cmod"][..., 1], 0.0)
    y = responses(images, w_hat)
    c0, r0 = cmod(y, 2, margin=margin), rmax(y.real, 2, margin=margin)
    norm = torch.linalg.vector_norm(c0, dim=(-2, -1))
    np.testing.assert_allclose(
        got["discrepancy"], (torch.linalg.vector_norm(c0 - r0, dim=(-2, -1)) / norm).numpy()
    )
    moved = rmax(y.real, 2, offset=(1, -1), margin=margin)
    np.testing.assert_allclose(
        got["instability"][..., 2], (torch.linalg.vector_norm(moved - r0, dim=(-2, -1)) / norm).numpy()
    )


def test_bad_inputs_are_rejected():
    images = torch.zeros(2, 20, 20)
    w_hat = torch.zeros(1, 20, 20, dtype=torch.complex64)
    with pytest.raises(ValueError, match="too small for margin"):
        shift_measures(images, w_hat, 2, 1, margin=8)
    with pytest.raises(ValueError, match="must not exceed the margin"):
        shift_measures(images, w_hat, 2, 1, shifts=((3, 0),), margin=2)
    with pytest.raises(ValueError, match="integer pixel pairs"):
        shift_measures(images, w_hat, 2, 1, shifts=((0.5, 0),), margin=2)
    with pytest.raises(ValueError, match="m must be an integer"):
        rmax(images, 0)
    with pytest.raises(ValueError, match="q must be an integer"):
        cmod(images, 2, q=-1)
    with pytest.raises(ValueError, match="real response"):
        rmax(w_hat, 2)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        responses(torch.zeros(20, 20), w_hat)
    with pytest.raises(ValueError, match="NaN"):
        responses(torch.full((1, 20, 20), math.nan), w_hat)
    with pytest.raises(ValueError, match="grid"):
        responses(images, torch.zeros(1, 16, 16, dtype=torch.complex64))
    with pytest.raises(ValueError, match="rows, cols"):
        fourier_shift(images, (0.5,))
