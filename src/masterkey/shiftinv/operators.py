"""RMax and CMod operators of [C], translations and the measured discrepancy and shift instability.

Conventions as in :mod:`masterkey.shiftinv.descriptors` (``(rows, cols)``, frequencies in radians per
sample, ``(X * V)[p] = sum_k X[p - k] V[k]``, circular FFT convolution on the image grid).  Images are
grayscale ``(B, H, W)`` float tensors (float32 or float64, any device); filters are given by their spectra
``W^`` ``(F, H, W)`` on the same grid (:func:`~masterkey.shiftinv.descriptors.analytic_spectrum`,
:func:`~masterkey.shiftinv.descriptors.spectrum_on_grid`).

With ``Y = X * W`` (complex) and stride-2 max pooling over ``(2q+1)^2`` samples ([C])::

    RMax X[n] = max_{p in {-q..q}^2} Re Y[m (2n + p) + offset]      CMod X[n] = |Y[2 m n + offset]|

both with total subsampling ``2m``, output ``n`` at input position ``2mn``.  Only the valid outputs are
kept: those whose every (un-offset) input sample ``m (2n + p)`` lies at least ``margin`` pixels from the
border; with ``margin >= k // 2 + |offset|`` circular wrap never enters.  An integer translation
``T_u X(x) = X(x - u)`` (an image cropped from a larger one) is an offset of the sampling grid:
``RMax(T_u X)[n] = max_p Re Y[m (2n + p) - u]``.  ``pool=False`` is a stem without max pooling: the
strided real output ``Re Y[m n]`` and its modulus ``|Y[m n]|``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .bounds import check_factors
from .descriptors import frequency_grid

__all__ = ["as_images", "cmod", "fourier_shift", "responses", "rmax", "shift_measures"]


def as_images(images) -> torch.Tensor:
    """Grayscale images ``(B, H, W)`` as a float tensor (numpy arrays converted); ``ValueError`` for
    another shape, an integer type or non-finite values."""
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.array(images))
    if x.ndim != 3 or not x.is_floating_point():
        raise ValueError(f"images must be a float array (B, H, W), got {x.dtype} {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    return x


def responses(images, W_hat, chunk: int | None = None) -> torch.Tensor:
    """Circular convolutions ``X * W``: complex ``(B, F, H, W)`` on the images' device and precision.

    ``images`` ``(B, H, W)``; ``W_hat`` ``(F, H, W)`` spectra on the same grid.  ``chunk`` filters are
    transformed at a time (all by default) to bound the temporaries."""
    x = as_images(images)
    w = W_hat if isinstance(W_hat, torch.Tensor) else torch.as_tensor(np.array(W_hat))
    if w.ndim != 3 or tuple(w.shape[-2:]) != tuple(x.shape[-2:]):
        raise ValueError(
            f"W_hat must be (F, H, W) on the images' {tuple(x.shape[-2:])} grid, got {tuple(w.shape)}"
        )
    spectra = torch.fft.fft2(x)
    w = w.to(device=x.device, dtype=spectra.dtype)
    chunk = w.shape[0] if chunk is None else max(int(chunk), 1)
    out = torch.empty(x.shape[0], w.shape[0], *x.shape[-2:], dtype=spectra.dtype, device=x.device)
    for start in range(0, w.shape[0], chunk):
        out[:, start : start + chunk] = torch.fft.ifft2(spectra[:, None] * w[None, start : start + chunk])
    return out


def _positions(shape, m: int, q: int, offset, margin: int, pool: bool):
    """Row and column sample positions (without the pooling offsets ``m p``) of the valid output grid."""
    m, q = check_factors(m, q)
    offset = tuple(int(o) for o in offset)
    if any(abs(o) > margin for o in offset):
        raise ValueError(f"|offset| {offset} must not exceed the margin {margin}")
    step, reach = (2 * m, m * q) if pool else (m, 0)
    axes = []
    for size, o in zip(shape, offset, strict=True):
        lo, hi = math.ceil((margin + reach) / step), (size - 1 - margin - reach) // step
        if hi < lo:
            raise ValueError(
                f"images of size {tuple(shape)} are too small for margin {margin} (m={m}, q={q}, pool={pool})"
            )
        axes.append(torch.arange(lo, hi + 1) * step + o)
    return axes


def rmax(real_response, m: int, q: int = 1, offset=(0, 0), margin: int = 0, pool: bool = True):
    """``max_{p in {-q..q}^2} Y[m (2n + p) + offset]`` over the valid grid: ``(..., N1, N2)``.

    ``real_response`` ``(..., H, W)`` real (``Re(X * W)``).  ``pool=False``: ``Y[m n + offset]``.  Raises
    ``ValueError`` for complex input, bad ``m``, ``q``, an offset beyond the margin or too small images."""
    y = real_response
    if y.is_complex():
        raise ValueError("rmax takes the real response Re(X * W)")
    rows, cols = _positions(y.shape[-2:], m, q, offset, margin, pool)
    rows, cols = rows.to(y.device), cols.to(y.device)
    if not pool:
        return y[..., rows[:, None], cols[None, :]]
    out = None
    for p1 in range(-q, q + 1):
        for p2 in range(-q, q + 1):
            sample = y[..., (rows + m * p1)[:, None], (cols + m * p2)[None, :]]
            out = sample if out is None else torch.maximum(out, sample)
    return out


def cmod(response, m: int, q: int = 1, offset=(0, 0), margin: int = 0, pool: bool = True):
    """``|Y[2 m n + offset]|`` ``(..., N1, N2)`` on the same valid grid as :func:`rmax` (``q`` only sets the
    grid).  ``response`` ``(..., H, W)`` complex ``X * W``.  ``pool=False``: ``|Y[m n + offset]|``."""
    rows, cols = _positions(response.shape[-2:], m, q, offset, margin, pool)
    return response[..., rows.to(response.device)[:, None], cols.to(response.device)[None, :]].abs()


def fourier_shift(images, u) -> torch.Tensor:
    """Sub-pixel translation ``T_u X(x) = X(x - u)`` ``(..., H, W)`` by a Fourier phase ramp.

    Shannon interpolation on the periodic grid: ``(T_u X)^(omega) = exp(-i <omega, u>) X^(omega)``, except
    on a Nyquist line (even size), whose bin ``-pi`` stands for ``+-pi`` and gets ``cos(pi u_i)`` (the
    mean of both ramps) so that real images stay real.  Integer ``u`` is an exact circular shift.
    ``u = (rows, cols)`` in pixels."""
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.array(images))
    u = [float(ui) for ui in np.asarray(u, dtype=np.float64).reshape(-1)]
    if len(u) != 2 or x.ndim < 2:
        raise ValueError(
            f"u must be a (rows, cols) pair and images (..., H, W), got {u} and {tuple(x.shape)}"
        )
    factors = []
    for axis, omega in enumerate(frequency_grid(x.shape[-2:], x.device)):
        ramp = torch.exp(-1j * omega * u[axis])
        n = x.shape[axis - 2]
        if n % 2 == 0:
            ramp.narrow(axis, n // 2, 1).fill_(math.cos(math.pi * u[axis]))
        factors.append(ramp)
    spectra = torch.fft.fft2(x)
    out = torch.fft.ifft2(spectra * (factors[0] * factors[1]).to(spectra.dtype))
    return out if x.is_complex() else out.real


def shift_measures(
    images,
    W_hat,
    m: int,
    q: int = 1,
    shifts=((1, 0), (0, 1)),
    *,
    margin: int,
    pool: bool = True,
    chunk: int = 16,
) -> dict[str, np.ndarray]:
    """Measured RMax-CMod discrepancy and shift instabilities per image and filter ([C]).

    ``images`` ``(B, H, W)``; ``W_hat`` ``(F, H, W)``; ``shifts`` ``(S, 2)`` integer translations (rows,
    cols) in pixels, made by offsetting the sampling grid (see the module docstring); ``margin`` in pixels,
    at least ``k // 2`` plus the largest shift component so that circular wrap never enters.  Filters are
    processed ``chunk`` at a time.  Returns numpy arrays, norms over the valid output grid:

    * ``discrepancy`` ``(B, F)``: ``P~ = ||CMod X - RMax X|| / ||CMod X||``;
    * ``instability`` ``(B, F, S)``: ``R~ = ||RMax(T_u X) - RMax X|| / ||CMod X||``;
    * ``instability_cmod`` ``(B, F, S)``: ``||CMod(T_u X) - CMod X|| / ||CMod X||``.
    """
    m, q = check_factors(m, q)
    chunk = max(int(chunk), 1)
    shifts = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    if shifts.size == 0 or not np.all(shifts == np.round(shifts)):
        raise ValueError(
            f"shifts must be integer pixel pairs (use fourier_shift for sub-pixel), got {shifts}"
        )
    x = as_images(images)
    w = W_hat if isinstance(W_hat, torch.Tensor) else torch.as_tensor(np.array(W_hat))
    grid = dict(m=m, q=q, margin=int(margin), pool=pool)
    results = {"discrepancy": [], "instability": [], "instability_cmod": []}
    for start in range(0, w.shape[0], chunk):
        y = responses(x, w[start : start + chunk])
        real = y.real
        c0, r0 = cmod(y, **grid), rmax(real, **grid)
        norm = torch.linalg.vector_norm(c0, dim=(-2, -1))
        results["discrepancy"].append(torch.linalg.vector_norm(c0 - r0, dim=(-2, -1)) / norm)
        for key, op, ref, arr in (("instability", rmax, r0, real), ("instability_cmod", cmod, c0, y)):
            moved = [op(arr, offset=(-int(a), -int(b)), **grid) for a, b in shifts]
            results[key].append(
                torch.stack([torch.linalg.vector_norm(v - ref, dim=(-2, -1)) / norm for v in moved], dim=-1)
            )
    return {key: torch.cat(parts, dim=1).cpu().numpy() for key, parts in results.items()}
