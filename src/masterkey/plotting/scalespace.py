"""Figures of the scale-space analysis: the published 8 and every model's fits."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from ..kernels.conventions import kernel_coordinates
from ..scalespace.fitting import METHODS, normalise_for_fitting
from ..scalespace.models import templates_from_fits
from .style import COLUMN_WIDTH, TEXT_WIDTH, apply_style, show_kernel

__all__ = [
    "plot_published_models",
    "plot_published_spread",
    "plot_fitted_scales",
    "plot_residuals",
    "plot_explained_share",
]


def plot_published_models(filters: np.ndarray, fits: pd.DataFrame, methods=METHODS) -> Figure:
    """Grid: each published filter (normalised as for fitting) beside its idealized model per method.

    One row per filter, columns: the normalised filter ``h_n`` then the template of each method.
    Each row shares one symmetric colour scale (colour bar at the right), so a filter and its
    models are directly comparable.
    """
    apply_style()
    n, k = len(filters), filters.shape[-1]
    columns = 1 + len(methods)
    fig, axes = plt.subplots(n, columns + 1, figsize=(TEXT_WIDTH * 0.8, 0.85 * n),
                             gridspec_kw={"width_ratios": [1] * columns + [0.08]})  # fmt: skip
    for i in range(n):
        rows = fits[fits["filter"] == i + 1].set_index("method")
        type_name = rows["type"].iloc[0]
        normalised = normalise_for_fitting(filters[i : i + 1], type_name).kernels
        images = [normalised[0], *templates_from_fits(rows.loc[list(methods)], k)]
        vmax = max(float(np.nanmax(np.abs(img))) for img in images)
        for j, image in enumerate(images):
            handle = show_kernel(axes[i, j], image, vmax=vmax)
            if i == 0:
                axes[i, j].set_title("learned $h_n$" if j == 0 else f"method {methods[j - 1]}")
            if j > 0:
                fit = rows.loc[methods[j - 1]]
                single = type_name in ("lap", "id-lap")
                label = f"{fit['sigma_x']:.2f},{fit['sigma_y']:.2f}" if not single else (
                    f"{fit['sigma_x']:.2f}" + (f", a={fit['alpha']:.2f}" if type_name == "id-lap" else ""))
                axes[i, j].set_xlabel(label + (" *" if fit["on_bound"] else ""), fontsize=6, labelpad=1)
        axes[i, 0].set_ylabel(f"{i + 1}: {type_name}", rotation=0, ha="right", va="center")
        fig.colorbar(handle, cax=axes[i, -1])
        axes[i, -1].tick_params(labelsize=5)
    fig.suptitle(r"Published master key filters and their idealized models (labels: $\sigma_x,\sigma_y$;"
                 " * = on a search bound)", fontsize=8)  # fmt: skip
    fig.subplots_adjust(wspace=0.08, hspace=0.45)
    return fig


def plot_published_spread(filters: np.ndarray, spread: pd.DataFrame) -> Figure:
    """|h| of each published filter with its mean M(|h|) (dot) and 1-sigma ellipse of V(|h|)."""
    apply_style()
    n, k = len(filters), filters.shape[-1]
    cols = 4
    rows_n = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(TEXT_WIDTH * 0.75, 1.75 * rows_n), squeeze=False)
    c = (k - 1) / 2
    x, y = kernel_coordinates(k)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        row = spread.iloc[i]
        ax.imshow(np.abs(filters[i]), cmap="Greys", extent=(x.min() - 0.5, x.max() + 0.5, -c - 0.5, c + 0.5),
                  interpolation="nearest")  # fmt: skip
        cov = np.array([[row["V_xx"], row["V_xy"]], [row["V_xy"], row["V_yy"]]])
        values, vectors = np.linalg.eigh(cov)
        angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
        ax.add_patch(Ellipse((row["m_x"], row["m_y"]), 2 * np.sqrt(values[1]), 2 * np.sqrt(values[0]),
                             angle=angle, fill=False, color="tab:red", lw=1))  # fmt: skip
        ax.plot(row["m_x"], row["m_y"], "o", color="tab:red", ms=3)
        ax.axhline(0, color="tab:blue", lw=0.4, ls=":")
        ax.axvline(0, color="tab:blue", lw=0.4, ls=":")
        ax.set_title(f"{row['filter']}: {row['type']}\nM=({row['m_x']:.2f}, {row['m_y']:.2f}) "
                     f"r={row['correlation']:.2f}", fontsize=7)  # fmt: skip
        ax.set_xticks(range(int(-c), int(c) + 1, max(1, int(c))))
        ax.set_yticks(range(int(-c), int(c) + 1, max(1, int(c))))
        ax.set_xlabel("x")
        ax.set_ylabel("y (up)")
    fig.suptitle("Spatial spread of the published filters: |h| with mean M(|h|) and 1-sd ellipse of V(|h|)",
                 fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def plot_fitted_scales(fits: pd.DataFrame, model: str, methods=METHODS) -> Figure:
    """Fitted sigma_x and sigma_y per stage, one panel per method (box plots over kernels)."""
    apply_style()
    data = fits[~fits["degenerate"]].melt(
        id_vars=["stage", "method"], value_vars=["sigma_x", "sigma_y"], var_name="scale", value_name="sigma"
    )
    data["stage"] = data["stage"].astype(str)
    cols = 3
    rows_n = int(np.ceil(len(methods) / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(TEXT_WIDTH, 1.9 * rows_n), sharey=True, squeeze=False)
    for ax, method in zip(axes.flat, methods, strict=False):
        part = data[data["method"] == method]
        sns.boxplot(data=part, x="stage", y="sigma", hue="scale", ax=ax, fliersize=1, linewidth=0.6,
                    order=sorted(part["stage"].unique(), key=int))  # fmt: skip
        ax.set_title(f"method {method}")
        ax.set_ylabel(r"fitted $\sigma$")
        if ax is not axes.flat[0]:
            ax.get_legend().remove()
    for ax in axes.flat[len(methods):]:
        ax.axis("off")
    fig.suptitle(f"{model}: fitted scales of the depthwise kernels per stage", fontsize=8)
    fig.tight_layout()
    return fig


def plot_residuals(fits: pd.DataFrame, model: str, methods=METHODS) -> Figure:
    """Cumulative distribution of the relative residual l2/||h_n|| per method, and per type (method D1)."""
    apply_style()
    valid = fits[~fits["degenerate"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(TEXT_WIDTH * 0.8, 2.3))
    for method in methods:
        values = np.sort(valid.loc[valid["method"] == method, "rel_l2"].to_numpy())
        left.plot(values, np.arange(1, len(values) + 1) / max(1, len(values)), label=method, lw=1)
    left.set_xlabel(r"relative residual $\|t - h_n\|_2 / \|h_n\|_2$")
    left.set_ylabel("share of kernels")
    left.set_xlim(0, min(2.0, float(np.nanquantile(valid["rel_l2"], 0.99)) * 1.05))
    left.legend(title="method", ncols=2)
    left.set_title("all kernels")
    d1 = valid[valid["method"] == "D1"]
    order = d1["type"].value_counts().index.tolist()
    sns.boxplot(data=d1, y="type", x="rel_l2", order=order, ax=right, fliersize=1, linewidth=0.6,
                color="tab:blue")  # fmt: skip
    counts = d1["type"].value_counts()
    right.set_yticks(range(len(order)), [f"{t} (n={counts[t]})" for t in order])
    right.set_xlabel("relative residual (method D1)")
    right.set_ylabel("")
    right.set_title("by selected type")
    fig.suptitle(f"{model}: residuals of the idealized models", fontsize=8)
    fig.tight_layout()
    return fig


def plot_explained_share(share: pd.DataFrame, model: str) -> Figure:
    """Share of kernels per stage whose best idealized model explains >= 50/75/90 % of their energy."""
    apply_style()
    data = share.assign(threshold=(share["threshold"] * 100).round().astype(int).astype(str) + " %")
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.2))
    sns.barplot(data=data, x="stage", y="share", hue="threshold", ax=ax, palette="Blues")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of kernels")
    ax.set_xlabel("stage")
    ax.legend(title="energy explained at least", ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.3))
    ax.set_title(f"{model}: kernels explained by their best idealized model", pad=28)
    fig.tight_layout()
    return fig
