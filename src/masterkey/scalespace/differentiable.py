"""Differentiable Gaussian profiles in torch for learnable scales ([B] Secs. 3 and 5; docs/methods.md s. 3).

Two smoothing kernels on the ``k`` taps ``n = -c .. c`` (``c = (k - 1) / 2``, coordinate order,
docs/methods.md section 1), both differentiable with respect to their scale:

* :func:`discrete_gaussian_profiles`: the discrete analogue of the Gaussian
  ``T(n; s) = exp(-s) I_n(s)`` (docs/methods.md section 3.1;
  :func:`~masterkey.scalespace.templates.gaussian_profiles` in numpy), truncated and *not*
  renormalised, exactly as the templates of :mod:`masterkey.scalespace.templates`.  Its gradient
  follows from the semi-discrete heat equation
  ``dT(n; s)/ds = (T(n-1; s) - 2 T(n; s) + T(n+1; s)) / 2``, so it costs one extra tap on each side.
* :func:`sampled_gaussian_profiles`: ``exp(-n^2 / (2 sigma^2))`` normalised to sum 1 on the ``k``
  taps, the kernel [B] Sec. 5 trained with because ``T`` was not differentiable in their toolbox.

Units: ``sigma`` in grid spacings, ``s = sigma^2``.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from ..kernels.conventions import check_kernel_size

__all__ = ["ALIAS_LOG_BOUND", "discrete_gaussian_profiles", "sampled_gaussian_profiles"]

ALIAS_LOG_BOUND = 60 * math.log(2.0)
"""The quadrature length is chosen so that the aliasing error is below ``2**-60`` (see below)."""


def _log_tail_bound(m: float, s: float) -> float:
    """Chernoff bound ``-log P(X >= m)`` for ``X`` with law ``T(.; s)``, ``m > 0``.

    ``T(.; s)`` is the law of the difference of two Poisson(``s/2``) variables, whose moment
    generating function is ``exp(s (cosh theta - 1))``; the optimal ``theta = asinh(m / s)`` gives
    ``P(X >= m) <= exp(-(m asinh(m / s) - sqrt(m^2 + s^2) + s))``.
    """
    if s <= 0.0:
        return math.inf
    return m * math.asinh(m / s) - math.hypot(m, s) + s


def _quadrature_length(reach: int, s_max: float) -> int:
    """Smallest even ``M`` whose aliases of ``|n| <= reach`` are below ``2**-60`` in total.

    The aliases of ``n`` are ``n + j M`` (``j != 0``), at least ``M - reach`` away from 0 and all
    distinct, so their sum is at most ``2 P(X >= M - reach)``; ``M - reach`` is the smallest integer
    ``m`` with ``2 exp(-bound(m)) <= 2**-60`` (the bound increases with ``m``).
    """
    target = ALIAS_LOG_BOUND + math.log(2.0)
    high = 1
    while _log_tail_bound(high, s_max) < target:
        high *= 2
    low = high // 2
    while high - low > 1:  # invariant: bound(low) < target <= bound(high), or low = 0
        middle = (low + high) // 2
        low, high = (low, middle) if _log_tail_bound(middle, s_max) >= target else (middle, high)
    length = reach + high
    return length + length % 2


def _checked_scales(values: torch.Tensor, name: str) -> tuple[float, float]:
    """``(min, max)`` of a 1-D floating tensor of scales (one device synchronisation), or ValueError."""
    if not isinstance(values, torch.Tensor) or values.ndim != 1 or not values.is_floating_point():
        got = f"{type(values).__name__} {getattr(values, 'dtype', '')} {tuple(getattr(values, 'shape', ()))}"
        raise ValueError(f"{name} must be a 1-D floating-point tensor (C,), got {got}")
    if values.numel() == 0:
        return 0.0, 0.0
    low, high = torch.stack([values.min(), values.max()]).tolist()
    if not (low >= 0.0 and math.isfinite(high)):
        raise ValueError(f"{name} must be finite and >= 0, got values in [{low}, {high}]")
    return low, high


def _discrete_gaussian_half(s: torch.Tensor, reach: int, s_max: float) -> torch.Tensor:
    """``T(n; s)`` for ``n = 0 .. reach`` in float64, ``(C, reach + 1)``, by the trapezoid rule.

    ``T(n; s) = (1/2 pi) int_{-pi}^{pi} exp(-2 s sin^2(w/2)) cos(n w) dw`` on ``M`` equispaced
    nodes gives ``sum_j T(n + j M; s)`` exactly (the integrand is the generating function of ``T``),
    i.e. ``T(n; s)`` plus an aliasing error below ``2**-60`` for the ``M`` of
    :func:`_quadrature_length`.  The integrand is even, so the nodes ``w_j = 2 pi j / M``,
    ``j = 0 .. M/2`` suffice (weights ``1, 2, ..., 2, 1`` over ``M``).  ``s = 0`` gives the exact
    unit impulse (the quadrature would leave rounding noise of about 1e-16 on it).
    """
    length = _quadrature_length(reach, s_max)
    options = {"dtype": torch.float64, "device": s.device}
    j = torch.arange(length // 2 + 1, **options)
    weights = torch.full_like(j, 2.0 / length)
    weights[0] = weights[-1] = 1.0 / length
    n = torch.arange(reach + 1, **options)
    phase = torch.remainder(j[:, None] * n[None, :], length)  # exact integers: cos of a reduced angle
    basis = weights[:, None] * torch.cos((2.0 * math.pi / length) * phase)
    s = s.to(torch.float64)[:, None]
    generating = torch.exp(-2.0 * s * torch.sin((math.pi / length) * j) ** 2)
    return torch.where(s == 0, (n == 0).to(torch.float64), generating @ basis)  # T(n; 0): exact impulse


class _DiscreteGaussian(torch.autograd.Function):
    """``T(n; s)``, ``n = -c .. c``, with the heat-equation gradient ``dT/ds = delta2 T / 2``."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, c: int, s_max: float) -> torch.Tensor:
        half = _discrete_gaussian_half(s, c + 1, s_max)  # n = 0 .. c + 1
        wide = half[:, torch.arange(-(c + 1), c + 2, device=s.device).abs()]  # n = -(c+1) .. c+1
        ctx.save_for_backward(wide)
        return wide[:, 1:-1].to(s.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        (wide,) = ctx.saved_tensors
        heat = (wide[:, :-2] - 2.0 * wide[:, 1:-1] + wide[:, 2:]) / 2.0  # dT(n; s)/ds, n = -c .. c
        grad_s = (grad_out.to(torch.float64) * heat).sum(dim=1)
        return grad_s.to(grad_out.dtype), None, None


def discrete_gaussian_profiles(k: int, s: torch.Tensor) -> torch.Tensor:
    """``T(n; s) = exp(-s) I_n(s)`` on ``n = -c .. c``, differentiable in ``s`` ([B] Sec. 3).

    docs/methods.md section 3.1: the discrete analogue of the Gaussian, truncated to the ``k`` taps
    of a kernel and not renormalised; equal to
    :func:`masterkey.scalespace.templates.gaussian_profiles` at ``sigma = sqrt(s)``.

    Evaluation: the trapezoid rule on ``M`` equispaced nodes for
    ``T(n; s) = (1/2 pi) int exp(s (cos w - 1)) cos(n w) dw`` (a cosine transform of the
    generating function), in float64 for every input dtype, then cast to the dtype of ``s``.  The
    rule is exact up to aliasing, ``sum_{j != 0} T(n + j M; s)``, and ``M`` is chosen from ``k``
    and ``max(s)`` by a Chernoff bound on the tail of ``T`` so that the aliasing stays below
    ``2**-60``.  Every term is at most ``2 / M``, so the *absolute* error is a few float64 ulps
    (measured <= 1e-15 against ``scipy.special.ive`` for ``s`` up to 1e4, ``k`` up to 31; float32
    results are the rounded float64 values); tail values below about 1e-16 are not relatively
    accurate.  Why not Miller's backward recurrence normalised by ``sum T = 1``: it is relatively
    accurate in the far tail, but runs a sequential loop over ``n`` whose start also grows with
    ``s``, and its ratios ``2 n / s`` overflow float32 for small ``s``; the quadrature is one
    batched matrix product on any device.  ``M`` (about ``c + 9 sqrt(max s) + 10``) depends on the
    data: one device synchronisation per call (which also checks ``s``).

    Gradient: a custom :class:`torch.autograd.Function` evaluates ``T`` on ``n = -(c+1) .. c+1``
    in the forward pass and returns ``dL/ds = sum_n dL/dT(n) (T(n-1) - 2 T(n) + T(n+1)) / 2``
    (the heat equation ``dT/ds = delta2 T / 2``).  Double backward is not supported.

    Parameters
    ----------
    k : int
        Odd number of taps.
    s : torch.Tensor ``(C,)``
        Scale parameters ``s = sigma^2 >= 0`` (grid spacings squared), float32 or float64, any device.

    Returns
    -------
    torch.Tensor ``(C, k)``
        Profiles in coordinate order (``n = -c .. c``), dtype and device of ``s``.

    Raises
    ------
    ValueError
        For an even or non-positive ``k``, or ``s`` not a 1-D floating tensor of finite values >= 0.

    >>> import numpy as np, torch
    >>> from scipy.special import ive
    >>> p = discrete_gaussian_profiles(5, torch.tensor([0.0, 2.25], dtype=torch.float64)).numpy()
    >>> p[0].tolist(), bool(np.abs(p[1] - ive(np.abs(np.arange(-2, 3)), 2.25)).max() < 1e-15)
    ([0.0, 0.0, 1.0, 0.0, 0.0], True)
    """
    k = check_kernel_size(k)
    _, s_max = _checked_scales(s, "s")
    return _DiscreteGaussian.apply(s, (k - 1) // 2, s_max)


def sampled_gaussian_profiles(k: int, sigma: torch.Tensor) -> torch.Tensor:
    """The normalised sampled Gaussian ``exp(-n^2 / (2 sigma^2)) / sum_n`` on ``n = -c .. c``.

    [B] Sec. 5 trained ConvNeXt V2 with this kernel in place of ``T`` (which their toolbox could not
    differentiate); unlike :func:`discrete_gaussian_profiles` it sums to 1 on the ``k`` taps and its
    variance is not ``sigma^2`` for small ``sigma``.  Plain autograd.

    Parameters
    ----------
    k : int
        Odd number of taps.
    sigma : torch.Tensor ``(C,)``
        Standard deviations in grid spacings, ``> 0``.

    Returns
    -------
    torch.Tensor ``(C, k)``
        Profiles in coordinate order, dtype and device of ``sigma``.

    Raises
    ------
    ValueError
        For an even or non-positive ``k``, or ``sigma`` not a 1-D floating tensor of finite values > 0.

    >>> import torch
    >>> p = sampled_gaussian_profiles(5, torch.tensor([1.0], dtype=torch.float64))
    >>> round(float(p.sum()), 12), bool(torch.allclose(p[0], p[0].flip(0)))
    (1.0, True)
    """
    k = check_kernel_size(k)
    low, _ = _checked_scales(sigma, "sigma")
    if sigma.numel() and low <= 0.0:
        raise ValueError(f"sigma must be > 0 for the sampled Gaussian, got {low}")
    c = (k - 1) // 2
    n = torch.arange(-c, c + 1, dtype=sigma.dtype, device=sigma.device)
    weights = torch.exp(-(n[None, :] ** 2) / (2.0 * sigma[:, None] ** 2))
    return weights / weights.sum(dim=1, keepdim=True)
