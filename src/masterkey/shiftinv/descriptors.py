"""Filter descriptors for the shift-invariance theory of [C]: frequency, orientation, Gabor-likeness.

Conventions of the whole :mod:`masterkey.shiftinv` package (docs/methods.md section 8)
-----------------------------------------------------------------------------------------
* 2-D arrays are ``(rows, cols)``, rows growing downwards (array order, not the upward ``y`` of
  docs/methods.md section 1); a layer's filters are ``(F, k, k)`` or ``(F, C, k, k)``.
* A frequency vector is ``omega = (omega_1, omega_2)`` = (row / vertical, column / horizontal) in
  radians per sample, in ``[-pi, pi]^2``; the DFT bins of an ``(H, W)`` grid are ``2 pi fftfreq``
  (in ``[-pi, pi)``, see :func:`frequency_grid`).
* Convolution ``(X * V)[p] = sum_k X[p - k] V[k]`` with the kernel's origin at index ``k // 2`` along each
  axis: the centre for odd ``k``, the lower-right of the four central entries for even ``k``.  The
  spectrum is ``V^(omega) = sum_k V[k] exp(-i <omega, k>)`` (``k`` relative to that origin), computed by
  zero-padding, a circular shift of the origin to index ``(0, 0)`` and ``torch.fft`` (FFT-based circular
  convolution on the image grid).
* numpy in, numpy out; torch in, torch out on the input's device.  float32 stays float32 (complex64
  spectra), float64 stays float64.

Descriptors ([C]): the characteristic frequency ``theta`` is the peak of ``|V^|``; the analytic
companion ``W = V + i H(V)`` has ``W^ = (1 + sign<omega, u>) V^``, ``u = theta / |theta|``; the
Gabor-likeness ``rho(kappa)`` is the share of ``W^``'s energy in the ``kappa x kappa`` window centred at
``theta``; RGB kernels are reduced to their rank-1 ("monochrome") part across input channels.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from .bounds import check_factors

__all__ = [
    "analytic_spectrum",
    "bandwidth",
    "characteristic_frequency",
    "describe_filters",
    "frequency_grid",
    "gabor_likeness",
    "is_lowpass",
    "monochrome_part",
    "orientation",
    "spectrum_on_grid",
]


def _tensor(x) -> tuple[torch.Tensor, bool]:
    """(tensor, came_from_numpy); integer input becomes float32."""
    numpy_in = not isinstance(x, torch.Tensor)
    t = torch.as_tensor(np.array(x)) if numpy_in else x
    if not (t.is_floating_point() or t.is_complex()):
        t = t.to(torch.float32)
    return t, numpy_in


def _back(t: torch.Tensor, numpy_out: bool):
    return t.detach().cpu().numpy() if numpy_out else t


def _kernels(t: torch.Tensor, ndims=(3, 4), real: bool = False) -> torch.Tensor:
    shape = tuple(t.shape)
    if t.ndim not in ndims or shape[0] < 1 or shape[-1] < 1 or shape[-1] != shape[-2]:
        wanted = " or ".join({3: "(F, k, k)", 4: "(F, C, k, k)"}[n] for n in ndims)
        raise ValueError(f"kernels must have shape {wanted} with square k x k filters, got {shape}")
    if real and t.is_complex():
        raise ValueError("kernels must be real here")
    if not torch.isfinite(t).all():
        raise ValueError("kernels contain NaN or infinite values")
    return t


def _theta(theta, like: torch.Tensor) -> torch.Tensor:
    th = theta if isinstance(theta, torch.Tensor) else torch.as_tensor(np.array(theta, dtype=np.float64))
    th = th.to(device=like.device, dtype=torch.float64)
    if th.shape[-1:] != (2,):
        raise ValueError(f"theta must have shape (F, 2), got {tuple(th.shape)}")
    return th.reshape(-1, 2)


def frequency_grid(shape, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """DFT bin frequencies of an ``(H, W)`` grid: ``omega_1`` ``(H, 1)``, ``omega_2`` ``(1, W)``, float64,
    radians per sample in ``[-pi, pi)`` (unshifted FFT order)."""
    h, w = (int(s) for s in shape)
    o1 = 2 * math.pi * torch.fft.fftfreq(h, device=device, dtype=torch.float64)
    o2 = 2 * math.pi * torch.fft.fftfreq(w, device=device, dtype=torch.float64)
    return o1[:, None], o2[None, :]


def spectrum_on_grid(kernels, shape):
    """DFT ``(..., H, W)`` of real or complex kernels ``(..., k, k)`` zero-padded to ``shape = (H, W)``,
    origin (index ``k // 2``) moved to ``(0, 0)``.  Raises ``ValueError`` when a kernel exceeds the grid."""
    t, numpy_in = _tensor(kernels)
    if t.ndim < 2 or not torch.isfinite(t).all():
        raise ValueError(f"kernels must be finite arrays (..., k, k), got shape {tuple(t.shape)}")
    (kh, kw), (h, w) = t.shape[-2:], (int(s) for s in shape)
    if kh > h or kw > w:
        raise ValueError(f"kernels of size {kh}x{kw} do not fit on a {h}x{w} grid")
    padded = t.new_zeros(*t.shape[:-2], h, w)
    padded[..., :kh, :kw] = t
    padded = torch.roll(padded, (-(kh // 2), -(kw // 2)), dims=(-2, -1))
    return _back(torch.fft.fft2(padded), numpy_in)


def monochrome_part(kernels):
    """Rank-1 part across input channels: ``(F, C, k, k)`` -> ``(V (F, k, k), share (F,))``.

    Per filter, the SVD ``K = sum_j s_j u_j v_j^T`` of its ``(C, k*k)`` matrix gives ``V = s_0 v_0`` with
    the sign making ``sum(u_0) >= 0``, so that ``V`` correlates positively with the response to a gray
    input (all channels equal); it *is* that response, up to a positive factor, only when
    ``share = 1``.  ``share = s_0^2 / sum_j s_j^2`` (0 for a zero filter).  Real ``(F, k, k)``
    input passes through with share 1.  Raises ``ValueError`` for other shapes, complex or NaN input."""
    t, numpy_in = _tensor(kernels)
    t = _kernels(t, real=True)
    if t.ndim == 3:
        return _back(t, numpy_in), _back(torch.ones(t.shape[0], dtype=t.dtype, device=t.device), numpy_in)
    f, c, k, _ = t.shape
    u, s, vh = torch.linalg.svd(t.reshape(f, c, k * k), full_matrices=False)
    sign = torch.where(u[:, :, 0].sum(-1) < 0, -1.0, 1.0).to(t.dtype)
    v = ((sign * s[:, 0])[:, None] * vh[:, 0]).reshape(f, k, k)
    energy = (s**2).sum(-1)
    share = torch.where(energy > 0, s[:, 0] ** 2 / energy.clamp_min(torch.finfo(t.dtype).tiny), 0.0)
    return _back(v, numpy_in), _back(share, numpy_in)


def characteristic_frequency(V, grid: int = 64):
    """Peak of ``|V^|`` on a ``G x G`` DFT grid, ``G = max(grid, k)``: ``theta`` ``(F, 2)`` float64.

    ``V`` real ``(F, k, k)``.  Of the pair ``+-theta`` the one with ``omega_2 > 0`` or
    (``omega_2 == 0`` and ``omega_1 >= 0``) is returned, a Nyquist component as ``+pi``; the resolution is
    ``2 pi / G``.  Raises ``ValueError`` for ``grid < 64`` or bad kernels."""
    if grid < 64:
        raise ValueError(f"grid must be >= 64 (a fine DFT grid, docs/methods.md section 8), got {grid}")
    t, numpy_in = _tensor(V)
    t = _kernels(t, ndims=(3,), real=True)
    g = max(int(grid), t.shape[-1])
    peak = spectrum_on_grid(t, (g, g)).abs().reshape(t.shape[0], -1).argmax(-1)
    o1, o2 = frequency_grid((g, g), t.device)
    theta = torch.stack([o1[peak // g, 0], o2[0, peak % g]], dim=-1)
    flip = (theta[:, 1] < 0) | ((theta[:, 1] == 0) & (theta[:, 0] < 0))
    theta = torch.where(flip[:, None], -theta, theta)
    theta[:, 0] = torch.where(theta[:, 0] == -math.pi, math.pi, theta[:, 0])
    return _back(theta, numpy_in)


def orientation(theta):
    """``atan2(omega_1, omega_2)`` of ``theta`` ``(..., 2)`` wrapped to ``(-pi/2, pi/2]`` (``theta`` and
    ``-theta`` give the same orientation): 0 for a purely horizontal frequency (vertical stripes)."""
    t, numpy_in = _tensor(theta)
    a = torch.atan2(t[..., 0], t[..., 1])
    a = torch.where(a > math.pi / 2, a - math.pi, a)
    return _back(torch.where(a <= -math.pi / 2, a + math.pi, a), numpy_in)


def analytic_spectrum(V_hat_or_V, theta, shape):
    """Spectrum ``(F, H, W)`` of the analytic companion ``W = V + i H(V)`` on the ``shape = (H, W)`` grid.

    ``W^(omega) = (1 + s(omega)) V^(omega)``, ``s = sign<omega, u>``, ``u = theta / |theta|``: doubled on the
    side of ``theta``, zeroed on the other, kept on the line ``<omega, u> = 0`` (and everywhere when
    ``theta = 0``).  ``s`` is antisymmetrised, ``(s(omega) - s(-omega)) / 2``, so that ``Re W = V`` exactly
    also on the Nyquist lines, where the bins ``omega`` and ``-omega`` have representatives that are not
    each other's negatives.  Input whose last two dimensions equal ``shape`` is taken as the spectrum
    ``V^``, anything else as real kernels ``(F, k, k)`` (pass the spectrum,
    :func:`spectrum_on_grid`, when ``k`` may equal the grid).  ``theta`` ``(F, 2)`` in radians per
    sample."""
    t, numpy_in = _tensor(V_hat_or_V)
    shape = tuple(int(s) for s in shape)
    if tuple(t.shape[-2:]) != shape:
        t = spectrum_on_grid(_kernels(t, ndims=(3,), real=True), shape)
    th = _theta(theta, t)
    u = th / th.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    o1, o2 = frequency_grid(shape, t.device)
    s = torch.sign(o1 * u[:, 0, None, None] + o2 * u[:, 1, None, None])
    s = (s - torch.roll(torch.flip(s, dims=(-2, -1)), (1, 1), dims=(-2, -1))) / 2
    return _back((1 + s).to(t.real.dtype) * t.to(torch.promote_types(t.dtype, torch.complex64)), numpy_in)


def _distance(theta: torch.Tensor, shape) -> torch.Tensor:
    """Chebyshev distance ``(F, H, W)`` on the torus from ``theta`` ``(F, 2)`` to every DFT bin."""
    o1, o2 = frequency_grid(shape, theta.device)

    def wrap(x):
        return torch.remainder(x + math.pi, 2 * math.pi) - math.pi

    d1 = wrap(o1[None] - theta[:, 0, None, None]).abs()
    d2 = wrap(o2[None] - theta[:, 1, None, None]).abs()
    return torch.maximum(d1, d2)


def gabor_likeness(W_hat, theta, kappa):
    """``rho(kappa)`` ``(F,)``: energy of ``W^`` ``(F, H, W)`` in the closed ``kappa x kappa`` window centred
    at ``theta`` ``(F, 2)`` (periodic on the torus ``[-pi, pi)^2``) over its total energy, in ``[0, 1]``
    (NaN for a zero filter).  ``kappa`` scalar or ``(F,)``, radians per sample."""
    w, numpy_in = _tensor(W_hat)
    th = _theta(theta, w)
    energy = w.abs().to(torch.float64) ** 2
    kap = kappa if isinstance(kappa, torch.Tensor) else torch.as_tensor(np.array(kappa, dtype=np.float64))
    kap = kap.to(device=w.device, dtype=torch.float64).reshape(-1, 1, 1)
    inside = _distance(th, w.shape[-2:]) <= kap / 2
    return _back((energy * inside).sum((-2, -1)) / energy.sum((-2, -1)), numpy_in)


def bandwidth(W_hat, theta, level: float = 0.9):
    """Smallest window side ``kappa`` ``(F,)`` (radians per sample) with ``gabor_likeness >= level``.

    Exact over the grid's window sides (twice the Chebyshev distances from ``theta`` to the bins): bins
    are sorted by distance and the energy accumulated, all filters at once.  ``level`` in ``(0, 1]``."""
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], got {level}")
    w, numpy_in = _tensor(W_hat)
    th = _theta(theta, w)
    d, order = _distance(th, w.shape[-2:]).reshape(th.shape[0], -1).sort(dim=-1)
    energy = (w.abs().to(torch.float64) ** 2).reshape(th.shape[0], -1).gather(-1, order)
    share = energy.cumsum(-1) / energy.sum(-1, keepdim=True)
    first = (share < level).sum(-1).clamp(max=d.shape[-1] - 1)
    return _back(2 * d.gather(-1, first[:, None])[:, 0], numpy_in)


def is_lowpass(theta, kappa):
    """Whether the ``kappa``-window centred at ``theta`` ``(..., 2)`` contains the origin,
    ``max(|omega_1|, |omega_2|) < kappa / 2``: the analytic companion is ill-defined and [C] does not
    apply.  Returns bool ``(...)``."""
    t, numpy_in = _tensor(theta)
    return _back(t.abs().amax(-1) < torch.as_tensor(kappa, dtype=t.dtype, device=t.device) / 2, numpy_in)


def describe_filters(kernels, m: int, grid: int = 64, level: float = 0.9) -> pd.DataFrame:
    """One row per filter of a layer: the [C] descriptors on a ``G x G`` grid, ``G = max(grid, k)``.

    ``kernels``: real ``(F, C, k, k)`` (reduced by :func:`monochrome_part`) or ``(F, k, k)``, or complex
    ``(F, k, k)`` filters ``W`` used as the analytic companion directly (``V = Re W``; of ``+-theta`` the
    one whose window holds more of ``W^``'s energy, so ``theta`` may leave the canonical half-plane).
    ``m``: subsampling factor.  Columns: ``filter``, ``theta_1``, ``theta_2``, ``frequency`` (``|theta|``),
    ``orientation``, ``share`` (monochrome energy share), ``kappa`` (``pi / m``, the largest admissible
    bandwidth), ``rho`` (Gabor-likeness at ``kappa``), ``bandwidth`` (at ``level``), ``lowpass`` (the
    ``kappa``-window contains the origin), ``admissible`` (``bandwidth <= pi / m`` and not low-pass)."""
    m, _ = check_factors(m, 0)
    t, _ = _tensor(kernels)
    t = _kernels(t.detach().cpu())
    if t.is_complex():
        w, v, share = _kernels(t, ndims=(3,)), t.real, torch.ones(t.shape[0], dtype=torch.float64)
    else:
        w, (v, share) = None, monochrome_part(t)
    theta = characteristic_frequency(v, grid)
    g = max(int(grid), t.shape[-1])
    kappa = math.pi / m
    if w is None:
        w_hat = analytic_spectrum(spectrum_on_grid(v, (g, g)), theta, (g, g))  # k may equal g
    else:
        w_hat = spectrum_on_grid(w, (g, g))
        flip = gabor_likeness(w_hat, -theta, kappa) > gabor_likeness(w_hat, theta, kappa)
        theta = torch.where(flip[:, None], -theta, theta)
    width = bandwidth(w_hat, theta, level)
    lowpass = is_lowpass(theta, kappa)
    return pd.DataFrame(
        {
            "filter": np.arange(t.shape[0]),
            "theta_1": theta[:, 0].numpy(),
            "theta_2": theta[:, 1].numpy(),
            "frequency": theta.norm(dim=-1).numpy(),
            "orientation": orientation(theta).numpy(),
            "share": share.to(torch.float64).numpy(),
            "kappa": kappa,
            "rho": gabor_likeness(w_hat, theta, kappa).numpy(),
            "bandwidth": width.numpy(),
            "lowpass": lowpass.numpy(),
            "admissible": ((width <= kappa + 1e-12) & ~lowpass).numpy(),
        }
    )
