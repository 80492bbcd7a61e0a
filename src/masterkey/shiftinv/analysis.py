"""Per-filter shift-invariance analysis of a filter bank ([C]; docs/methods.md section 8).

For every filter of a layer: the descriptors of :func:`~masterkey.shiftinv.descriptors.describe_filters`,
the bounds of :mod:`~masterkey.shiftinv.bounds` at its ``theta`` and ``kappa = pi / m``, and the measured
RMax-CMod discrepancy and shift instabilities of :func:`~masterkey.shiftinv.operators.shift_measures` on
grayscale images.  Conventions as in :mod:`masterkey.shiftinv.descriptors`.

Each image is centred (its mean subtracted): a constant would add ``mean * V^(0)`` to every output of
RMax and CMod alike and dominate the measures of filters with a non-zero sum.  Real kernels are
reduced to their monochrome part ``V`` (the response to gray images, up to a positive
factor) and measured through the analytic companion ``W`` (:func:`~.descriptors.analytic_spectrum`,
direction from the ``theta`` found on the descriptor grid); complex filters (e.g. DT-CWPT equivalent
filters, whose real part is the RMax kernel) are used as ``W`` directly.  The bounds are evaluated for
every filter but hold only where the filter is ``admissible`` (``bandwidth <= pi / m``, not low-pass).
Without max pooling (``pool=False``) only the aliasing part applies: the bound columns are NaN except
``alpha``, ``discrepancy`` is NaN and ``instability`` is that of the strided real output.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from .bounds import alpha, beta, check_factors, discrepancy_bound, gamma, instability_bound
from .descriptors import analytic_spectrum, describe_filters, monochrome_part, spectrum_on_grid
from .operators import as_images, shift_measures

__all__ = ["filter_analysis", "required_margin"]


def required_margin(kernel_size: int, shifts) -> int:
    """Smallest margin (pixels) keeping circular wrap out: ``kernel_size // 2`` plus the largest shift
    component (the pooling footprint ``m q`` is added by the output grid itself)."""
    return int(kernel_size) // 2 + int(np.abs(np.asarray(shifts, dtype=np.float64)).max(initial=0))


def filter_analysis(
    images, kernels_or_complex_filters, m: int, q: int = 1, shifts=((1, 0), (0, 1)), pool: bool = True,
    device="cpu", chunk: int = 16, batch_size: int | None = None, margin: int | None = None,
    grid: int = 64, level: float = 0.9,
) -> pd.DataFrame:  # fmt: skip
    """One row per filter: descriptors, bounds and measures of [C] (docs/methods.md section 8).

    Parameters
    ----------
    images : float array ``(B, H, W)``, grayscale; float64 is kept, anything else runs in float32.
    kernels_or_complex_filters : real ``(F, C, k, k)`` or ``(F, k, k)``, or complex ``(F, k, k)``.
    m, q : subsampling factor of the strided convolution, max pooling half-width (``(2q+1)^2`` grid).
    shifts : ``(S, 2)`` integer translations (rows, cols) in pixels.
    pool : False for a stem without max pooling (aliasing part only, see the module docstring).
    device, chunk, batch_size : torch device; filters and images (all by default) per pass.
    margin : pixels kept off the border (default :func:`required_margin`; a smaller one raises).
    grid, level : descriptor DFT grid and bandwidth level (:func:`~.descriptors.describe_filters`).

    Returns
    -------
    DataFrame with the columns of :func:`~.descriptors.describe_filters` plus ``gamma``
    (``gamma_q(m theta)``), ``beta`` (``beta_q(m kappa)``), ``alpha`` (mean over the shifts of
    ``alpha(kappa u)``), ``discrepancy_bound``, ``instability_bound`` (mean over the shifts, which bounds
    the mean instability; the first shift's for the default unit shifts),
    ``discrepancy`` (root of the mean of ``P~^2`` over the images), ``instability`` (mean ``R~`` over
    images and shifts), ``instability_cmod`` (the same for CMod) and ``below_bound`` (nullable bool).

    Raises
    ------
    ValueError
        Bad ``m``, ``q``, kernels, images, non-integer shifts, a margin below :func:`required_margin`
        or images too small for it.
    """
    m, q = check_factors(m, q)
    table = describe_filters(kernels_or_complex_filters, m, grid=grid, level=level)
    kernels = torch.as_tensor(np.array(kernels_or_complex_filters)) if not isinstance(
        kernels_or_complex_filters, torch.Tensor) else kernels_or_complex_filters  # fmt: skip
    x = as_images(images)
    x = x.to(device=device, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    x = x - x.mean(dim=(-2, -1), keepdim=True)  # centred: a mean would add mean * V^(0) to RMax and CMod
    shifts = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    needed = required_margin(kernels.shape[-1], shifts)
    if margin is None:
        margin = needed
    elif margin < needed:
        k = kernels.shape[-1]
        raise ValueError(
            f"margin {margin} is too small: {k}x{k} kernels and these shifts need {needed} pixels"
        )
    theta = table[["theta_1", "theta_2"]].to_numpy()
    shape = tuple(x.shape[-2:])
    if kernels.is_complex():
        w_hat = spectrum_on_grid(kernels.to(device), shape)
    else:
        v, _ = monochrome_part(kernels.to(device=device, dtype=x.dtype))
        w_hat = analytic_spectrum(spectrum_on_grid(v, shape), theta, shape)
    batch = x.shape[0] if batch_size is None else max(int(batch_size), 1)
    parts = [
        shift_measures(x[s : s + batch], w_hat, m, q, shifts, margin=margin, pool=pool, chunk=chunk)
        for s in range(0, x.shape[0], batch)
    ]
    measured = {key: np.concatenate([p[key] for p in parts], axis=0) for key in parts[0]}
    kappa = table["kappa"].to_numpy()
    table["gamma"] = gamma(m * theta, q)
    table["beta"] = beta(m * kappa, q)
    table["alpha"] = alpha(kappa[:, None, None] * shifts).mean(-1)
    table["discrepancy_bound"] = discrepancy_bound(theta, kappa, m, q)
    table["instability_bound"] = np.mean([instability_bound(theta, kappa, m, q, u) for u in shifts], axis=0)
    table["discrepancy"] = np.sqrt(np.mean(measured["discrepancy"] ** 2, axis=0))
    table["instability"] = measured["instability"].mean(axis=(0, 2))
    table["instability_cmod"] = measured["instability_cmod"].mean(axis=(0, 2))
    if not pool:
        table[["gamma", "beta", "discrepancy_bound", "instability_bound", "discrepancy"]] = math.nan
    table["below_bound"] = pd.array(
        np.where(table["instability_bound"].isna(), None, table["instability"] <= table["instability_bound"]),
        dtype="boolean",
    )
    return table
