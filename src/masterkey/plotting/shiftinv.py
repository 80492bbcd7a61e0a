"""Figures of the shift-invariance study ([C]; docs/methods.md section 8).

* :func:`plot_gamma_map`: ``gamma_q(m theta)`` over the frequency plane ``theta in [-pi, pi]^2``
  ([C]'s "pathological frequencies": where the phases of the pooling grid cluster, max pooling
  is far from the modulus);
* :func:`plot_fourier_layout`: one marker per filter at its characteristic frequency ``theta``
  (and at ``-theta``: the real filter's spectrum is symmetric) coloured by a measured quantity,
  with panels for the RMax-CMod discrepancy, RMax's shift instability and the frequency term of
  the bound;
* :func:`plot_bounds_scatter`: measured against bound, one point per filter, every filter bank;
* :func:`plot_first_layer`: a network's first-layer filters (monochrome part), sorted by RMax
  instability, beside their Fourier-plane layout.

Inputs are the per-filter frames of :func:`masterkey.shiftinv.analysis.filter_analysis`
(``theta_1``/``theta_2`` = row/column frequency in radians per sample).  Axes of the Fourier
plane: ``omega_2`` (columns) horizontal, ``omega_1`` (rows) vertical, in units of ``pi``.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .style import COLUMN_WIDTH, TEXT_WIDTH, apply_style, show_kernel

__all__ = ["plot_gamma_map", "plot_fourier_layout", "plot_bounds_scatter", "plot_first_layer"]

LAYOUT_PANELS = (
    ("discrepancy", "RMax vs CMod discrepancy\n$\\sqrt{E[\\tilde P^2]}$"),
    ("instability", "RMax shift instability\n$E[\\tilde R]$, 1-pixel shifts"),
    ("gamma", "frequency term of the bound\n$\\gamma_q(m\\theta)$"),
)
FIRST_LAYER_SHOWN = 64
"""Filters drawn by :func:`plot_first_layer` (the most unstable first)."""


def _fourier_axes(ax, title: str) -> None:
    ax.set_xlim(-1.02, 1.02)
    ax.set_ylim(-1.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xticks([-1, 0, 1], ["$-\\pi$", "0", "$\\pi$"])
    ax.set_yticks([-1, 0, 1], ["$-\\pi$", "0", "$\\pi$"])
    ax.set_xlabel("$\\omega_2$ (columns)")
    ax.set_ylabel("$\\omega_1$ (rows)")
    ax.axhline(0, color="0.8", lw=0.4, zorder=0)
    ax.axvline(0, color="0.8", lw=0.4, zorder=0)
    ax.set_title(title, pad=3)


def plot_gamma_map(m: int, q: int = 1, resolution: int = 401) -> Figure:
    """``gamma_q(m theta)`` on a ``resolution`` x ``resolution`` grid of ``[-pi, pi]^2`` (its range:
    0 where the ``(2q+1)^2`` phases ``<m theta, p>`` spread evenly, ``sqrt(3/2)`` where they
    coincide)."""
    from ..shiftinv.bounds import gamma

    apply_style()
    axis = np.linspace(-np.pi, np.pi, resolution)
    theta = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)
    values = gamma(m * theta, q)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * 0.9), layout="constrained")
    image = ax.imshow(values, origin="lower", extent=(-1, 1, -1, 1), cmap="magma", vmin=0,
                      vmax=np.sqrt(1.5), interpolation="nearest")  # fmt: skip
    _fourier_axes(ax, f"$\\gamma_{{{q}}}(m\\theta)$, m = {m}")
    ax.axhline(0, color="w", lw=0.3)
    ax.axvline(0, color="w", lw=0.3)
    fig.colorbar(image, ax=ax, shrink=0.85, label="$\\gamma_q$ (bright = pathological frequency)")
    return fig


def _scatter_plane(ax, frame: pd.DataFrame, column: str, vmax: float, marker_size: float):
    theta = frame[["theta_2", "theta_1"]].to_numpy() / np.pi
    both = np.concatenate([theta, -theta])
    values = np.concatenate([frame[column].to_numpy()] * 2)
    lowpass = np.concatenate([frame["lowpass"].to_numpy()] * 2)
    points = ax.scatter(both[~lowpass, 0], both[~lowpass, 1], c=values[~lowpass], s=marker_size, marker="s",
                        cmap="viridis", vmin=0, vmax=vmax, linewidths=0)  # fmt: skip
    ax.scatter(both[lowpass, 0], both[lowpass, 1], s=marker_size, marker="x", color="0.3", linewidths=0.6)
    return points


def plot_fourier_layout(frame: pd.DataFrame, title: str) -> Figure:
    """Per filter of ``frame``, the discrepancy, the instability and ``gamma`` at ``+-theta``
    (:data:`LAYOUT_PANELS`); low-pass filters as crosses.  The first two share one colour scale."""
    apply_style()
    fig, axes = plt.subplots(1, 3, figsize=(TEXT_WIDTH, TEXT_WIDTH * 0.4), layout="constrained")
    size = float(np.clip(3000 / max(len(frame), 1), 4, 60))
    measured = frame[["discrepancy", "instability"]].to_numpy(dtype=float)
    vmax = float(np.nanmax(measured)) if np.isfinite(measured).any() else 1.0
    for ax, (column, label) in zip(axes, LAYOUT_PANELS, strict=True):
        top = np.sqrt(1.5) if column == "gamma" else vmax
        points = _scatter_plane(ax, frame, column, top, size)
        _fourier_axes(ax, label)
        fig.colorbar(points, ax=ax, shrink=0.7)
    fig.suptitle(f"{title} (crosses: low-pass filters, outside the theory)")
    return fig


def plot_bounds_scatter(frames: Mapping[str, pd.DataFrame]) -> Figure:
    """Measured against bound, one point per admissible filter (the theorem's hypothesis) of a bank
    with max pooling (banks without such filters are left out):
    ``E[R~]`` against ``2 (beta + gamma) + alpha``, ``sqrt(E[P~^2])`` against ``beta + gamma``, and
    ``E[R~]`` against ``gamma`` alone (the frequency dependence the bound predicts) and against
    the discrepancy (RMax is stable where it is close to CMod).  ``frames``: label -> per-filter
    frame."""
    apply_style()
    fig, axes = plt.subplots(1, 4, figsize=(TEXT_WIDTH, TEXT_WIDTH * 0.3), layout="constrained")
    panels = (
        (
            "instability_bound",
            "instability",
            "bound $2(\\beta_q+\\gamma_q)+\\alpha$",
            "measured $E[\\tilde R]$",
        ),
        (
            "discrepancy_bound",
            "discrepancy",
            "bound $\\beta_q+\\gamma_q$",
            "measured $\\sqrt{E[\\tilde P^2]}$",
        ),
        ("gamma", "instability", "$\\gamma_q(m\\theta)$", "measured $E[\\tilde R]$"),
        ("discrepancy", "instability", "measured $\\sqrt{E[\\tilde P^2]}$", "measured $E[\\tilde R]$"),
    )
    shown_banks = {
        label: frame[frame["admissible"] & frame["instability_bound"].notna()]
        for label, frame in frames.items()
    }
    for i, (label, shown) in enumerate((k, v) for k, v in shown_banks.items() if len(v)):
        for ax, (x, y, _, _) in zip(axes, panels, strict=True):
            ax.scatter(shown[x], shown[y], s=6, color=f"C{i}", alpha=0.7, linewidths=0, label=label)
    for ax, (x, _, xlabel, ylabel) in zip(axes, panels, strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if x.endswith("_bound"):
            limits = [0, max(ax.get_xlim()[1], ax.get_ylim()[1])]
            ax.plot(limits, limits, color="0.4", lw=0.6, ls="--", label="measured = bound")
            ax.set_xlim(left=0)
            ax.set_ylim(bottom=0)
    axes[0].legend(frameon=False, fontsize=6)
    return fig


def plot_first_layer(monochrome: np.ndarray, frame: pd.DataFrame, network: str) -> Figure:
    """The monochrome parts ``(F, k, k)`` of a first layer, most unstable first (title: ``E[R~]``),
    up to :data:`FIRST_LAYER_SHOWN`, and the Fourier-plane layout of the instability."""
    apply_style()
    order = np.argsort(-frame["instability"].to_numpy(), kind="stable")[:FIRST_LAYER_SHOWN]
    columns = 8
    rows = int(np.ceil(len(order) / columns))
    fig = plt.figure(figsize=(TEXT_WIDTH, max(2.6, 0.5 * rows + 0.6)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.25, 1])
    axes = left.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, f in zip(axes.flat, order, strict=False):
        ax.set_axis_on()
        show_kernel(ax, monochrome[f], title=f"{frame['instability'].iloc[f]:.2f}")
    applies = bool(frame["applies"].iloc[0]) if "applies" in frame else True
    what = "RMax" if applies else "strided conv. (no max pooling)"
    left.suptitle(
        f"{network}: first-layer filters, most unstable first\n(title: {what} instability $E[\\tilde R]$)"
    )
    ax = right.subplots()
    vmax = float(np.nanmax(frame["instability"])) or 1.0
    points = _scatter_plane(ax, frame, "instability", vmax, 30)
    _fourier_axes(ax, f"{what} instability at $\\pm\\theta$")
    right.colorbar(points, ax=ax, shrink=0.7)
    return fig
