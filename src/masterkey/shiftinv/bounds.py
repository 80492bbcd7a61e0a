"""The bounds of [C] on RMax-CMod discrepancy and RMax shift instability (docs/methods.md section 8).

For one output channel with characteristic frequency ``theta``, bandwidth ``kappa`` (side of the square
Fourier window centred at ``theta`` that holds the analytic companion's spectrum), subsampling factor ``m``
of the strided convolution and max pooling ``MaxPool_q`` over a ``(2q+1)^2`` grid with stride 2, [C]
shows, under ``kappa <= pi / m`` and for random inputs ``X``,

* ``E[P~^2] <= (beta_q(m kappa) + gamma_q(m theta))^2`` with ``P~ = ||CMod X - RMax X|| / ||CMod X||``;
* ``E[R~] <= 2 (beta_q(m kappa) + gamma_q(m theta)) + alpha(kappa u)`` with
  ``R~ = ||RMax(T_u X) - RMax X|| / ||CMod X||`` for a translation ``T_u``,

where ``alpha(tau) = ||tau||_1 / 2``, ``beta_q(k) = q k`` and
``gamma_q(w) = sqrt(3/2 + (1/(4 pi)) sum_i [sin d_i - 8 sin(d_i / 2)])``, ``d_i`` the arcs between the
consecutive sorted phases ``<w, p> mod 2 pi``, ``p in {-q..q}^2``, on the unit circle (the wrap-around
arc included: they sum to ``2 pi``).  ``gamma_q`` is ``sqrt(3/2)`` when all phases coincide and tends
to 0 when they spread evenly over the circle.

Conventions as in :mod:`masterkey.shiftinv.descriptors`: frequencies ``(omega_1, omega_2)`` = (row,
column) in radians per sample, shifts ``u = (rows, cols)`` in pixels.  Everything is numpy and
vectorised over any leading shape.  Source: [C] (its discrepancy and shift-instability theorems).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "alpha",
    "beta",
    "check_factors",
    "discrepancy_bound",
    "gamma",
    "gamma_from_phases",
    "instability_bound",
]


def check_factors(m: int = 1, q: int = 0) -> tuple[int, int]:
    """Validate the subsampling factor ``m >= 1`` and pooling half-width ``q >= 0`` (both integers).

    Any positive integer ``m`` is allowed (``m = 2, 4`` are the paper's cases); ``q = 0`` is pooling over
    a single sample.  Returns ``(m, q)`` as Python ints; raises ``ValueError`` otherwise."""
    for name, value, low in (("m", m, 1), ("q", q, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(m), int(q)


def _frequencies(omega) -> np.ndarray:
    omega = np.asarray(omega, dtype=np.float64)
    if omega.ndim == 0 or omega.shape[-1] != 2:
        raise ValueError(f"frequencies must have shape (..., 2), got {omega.shape}")
    return omega


def alpha(tau) -> np.ndarray:
    """``alpha(tau) = ||tau||_1 / 2`` for ``tau`` ``(..., 2)``; returns ``(...)``."""
    return np.abs(_frequencies(tau)).sum(-1) / 2


def beta(k, q: int = 1) -> np.ndarray:
    """``beta_q(k) = q k`` (``k`` in radians per sample, any shape); ``q >= 0`` integer."""
    _, q = check_factors(1, q)
    return q * np.asarray(k, dtype=np.float64)


def gamma_from_phases(phases) -> np.ndarray:
    """``sqrt(3/2 + (1/(4 pi)) sum_i [sin d_i - 8 sin(d_i / 2)])`` for phases ``(..., P)`` in radians.

    The phases are taken mod ``2 pi`` and sorted; ``d_i`` are the ``P`` arcs between consecutive ones on
    the circle, the wrap-around arc included.  Every term is ``<= 0``, so the result lies in
    ``[0, sqrt(3/2)]``; tiny negative values under the root (rounding, evenly spread phases) are
    clipped to 0.  Returns ``(...)``."""
    phases = np.sort(np.mod(np.asarray(phases, dtype=np.float64), 2 * np.pi), axis=-1)
    if phases.ndim == 0 or phases.shape[-1] == 0:
        raise ValueError("phases must have shape (..., P) with P >= 1")
    wrap = 2 * np.pi - (phases[..., -1] - phases[..., 0])
    arcs = np.concatenate([np.diff(phases, axis=-1), wrap[..., None]], axis=-1)
    value = 1.5 + (np.sin(arcs) - 8 * np.sin(arcs / 2)).sum(-1) / (4 * np.pi)
    return np.sqrt(np.maximum(value, 0.0))


def gamma(omega, q: int = 1) -> np.ndarray:
    """``gamma_q(omega)`` for frequencies ``omega`` ``(..., 2)`` (radians per sample); returns ``(...)``.

    The phases are ``<omega, p>`` for the ``(2q+1)^2`` offsets ``p in {-q..q}^2``.  ``gamma_q`` is even
    and ``2 pi``-periodic in each component.  [C] evaluates it at ``m theta``."""
    _, q = check_factors(1, q)
    offsets = np.arange(-q, q + 1, dtype=np.float64)
    grid = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 2)
    return gamma_from_phases(_frequencies(omega) @ grid.T)


def discrepancy_bound(theta, kappa, m: int, q: int = 1) -> np.ndarray:
    """``beta_q(m kappa) + gamma_q(m theta)``: bounds ``sqrt(E[P~^2])`` when ``kappa <= pi / m``.

    ``theta`` ``(..., 2)`` and ``kappa`` (broadcast with ``theta[..., 0]``) in radians per sample."""
    m, q = check_factors(m, q)
    return beta(m * np.asarray(kappa, dtype=np.float64), q) + gamma(m * _frequencies(theta), q)


def instability_bound(theta, kappa, m: int, q: int = 1, shift=(1, 0)) -> np.ndarray:
    """``2 (beta_q(m kappa) + gamma_q(m theta)) + alpha(kappa u)``: bounds ``E[R~]`` for the shift ``u``.

    ``theta`` ``(..., 2)`` and ``kappa`` as in :func:`discrepancy_bound`; ``shift`` ``u = (rows, cols)``
    in pixels."""
    kappa = np.asarray(kappa, dtype=np.float64)
    shift = _frequencies(shift)
    return 2 * discrepancy_bound(theta, kappa, m, q) + alpha(kappa[..., None] * shift)
