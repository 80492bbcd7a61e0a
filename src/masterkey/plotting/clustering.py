"""Figures of the clustering stage (docs/methods.md section 4).

* :func:`plot_prototypes`: the cluster prototypes (member mean on top, decoded centroid below)
  with automatic labels, sizes and classified shares; one colour scale shared by all panels.
* :func:`plot_cluster_membership`: per layer of one model, stacked bars of the share of kernels
  in each cluster (classified members only; the unclassified rest in grey).
* :func:`plot_latent_histograms`: histogram of the (first) latent coordinate per model, with
  the cluster boundaries (midpoints between neighbouring centroids) and cluster labels.
* :func:`plot_master_keys`: the K selected master key filters (shared colour scale) with their
  closest published filter and ``|cosine|``.
* :func:`plot_error_curve`: mean approximation error against the number of kept candidates.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .style import COLUMN_WIDTH, TEXT_WIDTH, apply_style, show_kernel

__all__ = [
    "cluster_colours",
    "plot_prototypes",
    "plot_cluster_membership",
    "plot_latent_histograms",
    "plot_master_keys",
    "plot_error_curve",
]

UNCLASSIFIED = "#d0d0d0"


def cluster_colours(k: int) -> list:
    """One colour per cluster (colorblind palette, extended by husl beyond 10)."""
    import seaborn as sns

    return sns.color_palette("colorblind", k) if k <= 10 else sns.color_palette("husl", k)


def _cluster_names(clusters: pd.DataFrame) -> list[str]:
    return [f"C{int(c)} {label}" for c, label in zip(clusters["cluster"], clusters["type"], strict=True)]


def _shared_colorbar(fig, image, axes, label="weight (centre-normed)"):
    bar = fig.colorbar(image, ax=axes, fraction=0.025, pad=0.01, shrink=0.9)
    bar.set_label(label)
    bar.ax.tick_params(labelsize=6)
    return bar


def plot_prototypes(
    prototypes: np.ndarray,
    clusters: pd.DataFrame,
    decoded: np.ndarray | None,
    per_row: int = 8,
) -> Figure:
    """Prototype grid: member mean (and decoded centroid) per cluster, labelled ``C<i> <type>``."""
    apply_style()
    k = len(prototypes)
    blocks = -(-k // per_row)
    rows_per_block = 2 if decoded is not None else 1
    columns = min(k, per_row)
    width = min(TEXT_WIDTH, 0.85 * columns + 0.7)
    fig, axes = plt.subplots(
        blocks * rows_per_block, columns, figsize=(width, 1.05 * blocks * rows_per_block + 0.3), squeeze=False
    )
    fig.subplots_adjust(wspace=0.15, hspace=0.45)
    stack = prototypes if decoded is None else np.concatenate([prototypes, decoded])
    vmax = float(np.nanmax(np.abs(stack)))
    image = None
    for i in range(blocks * columns):
        block, column = divmod(i, columns)
        top = axes[block * rows_per_block, column]
        bottom = axes[block * rows_per_block + 1, column] if decoded is not None else None
        if i >= k:
            top.axis("off")
            if bottom is not None:
                bottom.axis("off")
            continue
        row = clusters.iloc[i]
        image = show_kernel(top, prototypes[i], vmax=vmax)
        top.set_title(
            f"C{int(row['cluster'])} {row['type']} ({row['type_cosine']:.2f})\n"
            f"n={int(row['size']):,}  {100 * row['classified_share']:.0f}% cl.",
            fontsize=6,
            pad=2,
        )
        if bottom is not None:
            show_kernel(bottom, decoded[i], vmax=vmax)
        if column == 0:
            top.set_ylabel("member mean")
            if bottom is not None:
                bottom.set_ylabel("decoded")
    fig.suptitle(
        "Cluster prototypes: type (|cos| with fitted template), size n, classified share", fontsize=8, y=1.0
    )
    _shared_colorbar(fig, image, axes.ravel().tolist())
    return fig


def _layer_tick(layer: str, stage: int, block: int) -> str:
    return f"{stage}.{block}" if stage >= 0 and block >= 0 else layer


def plot_cluster_membership(
    assignments: pd.DataFrame, clusters: pd.DataFrame, model: str
) -> Figure:
    """Stacked bars per layer of ``model``: share of kernels in each cluster (classified only)."""
    apply_style()
    part = assignments[assignments["model"] == model]
    layers = list(dict.fromkeys(part["layer"]))
    k = len(clusters)
    shares = np.zeros((len(layers), k))
    unclassified = np.zeros(len(layers))
    ticks = []
    for i, layer in enumerate(layers):
        rows = part[part["layer"] == layer]
        classified = rows["classified"].to_numpy(bool)
        shares[i] = np.bincount(rows["cluster"].to_numpy()[classified], minlength=k) / len(rows)
        unclassified[i] = 1.0 - classified.mean()
        ticks.append(_layer_tick(layer, int(rows["stage"].iloc[0]), int(rows["block"].iloc[0])))
    colours = cluster_colours(k)
    width = min(TEXT_WIDTH, max(COLUMN_WIDTH, 0.16 * len(layers) + 2.2))
    fig, ax = plt.subplots(figsize=(width, 2.4))
    positions = np.arange(len(layers))
    bottom = np.zeros(len(layers))
    for cluster, name in enumerate(_cluster_names(clusters)):
        ax.bar(
            positions,
            shares[:, cluster],
            bottom=bottom,
            color=colours[cluster],
            width=0.85,
            label=name,
            linewidth=0,
        )
        bottom += shares[:, cluster]
    ax.bar(
        positions,
        unclassified,
        bottom=bottom,
        color=UNCLASSIFIED,
        width=0.85,
        label="unclassified",
        linewidth=0,
    )
    ax.set_xticks(positions)
    ax.set_xticklabels(ticks, rotation=90 if len(layers) > 12 else 0, fontsize=6)
    ax.set_xlim(-0.6, len(layers) - 0.4)
    ax.set_ylim(0, 1)
    ax.set_xlabel("layer (stage.block)")
    ax.set_ylabel("share of kernels")
    ax.set_title(f"{model}: cluster membership per layer ({len(part):,} kernels)")
    ax.legend(
        loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=6, ncol=1 if k <= 14 else 2
    )
    return fig


def plot_latent_histograms(
    assignments: pd.DataFrame, clusters: pd.DataFrame, bins: int = 60
) -> Figure:
    """Histogram of the first latent coordinate per model with cluster boundaries."""
    apply_style()
    models = list(dict.fromkeys(assignments["model"]))
    centroids = clusters["centroid_0"].to_numpy(float)
    order = np.argsort(centroids)
    boundaries = (centroids[order][1:] + centroids[order][:-1]) / 2
    colours = cluster_colours(len(clusters))
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig, axes = plt.subplots(
        len(models), 1, figsize=(COLUMN_WIDTH * 1.4, 0.25 + 1.1 * len(models)), sharex=True, squeeze=False
    )
    for ax, model in zip(axes[:, 0], models, strict=True):
        part = assignments[assignments["model"] == model]
        values = part["latent_0"].to_numpy(float)
        counts = [values[part["cluster"].to_numpy() == c] for c in range(len(clusters))]
        ax.hist(counts, bins=edges, stacked=True, color=colours, linewidth=0)
        for boundary in boundaries:
            ax.axvline(boundary, color="0.3", linewidth=0.5, linestyle=":")
        ax.set_ylabel("kernels")
        ax.set_title(f"{model} ({len(part):,} kernels)", loc="left", pad=2, fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in range(len(clusters))]
    axes[0, 0].legend(
        handles,
        _cluster_names(clusters),
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=6,
        title="k-means cluster",
        title_fontsize=6,
    )
    axes[-1, 0].set_xlabel("latent code $z$ (sigmoid output)")
    axes[-1, 0].set_xlim(0, 1)
    axes[0, 0].annotate(
        "dotted: cluster boundaries",
        (1.0, 1.0),
        xycoords="axes fraction",
        ha="right",
        va="bottom",
        fontsize=6,
        color="0.3",
    )
    return fig


def plot_master_keys(keys: np.ndarray, comparison: pd.DataFrame) -> Figure:
    """The K master key filters with type, latent code, closest published filter and |cos|
    (shared colour scale); ``comparison`` is the table of
    :func:`masterkey.clustering.master_keys.compare_with_published`."""
    apply_style()
    k = len(keys)
    per_row = min(k, 8)
    rows = -(-k // per_row)
    fig, axes = plt.subplots(
        rows, per_row, figsize=(min(TEXT_WIDTH, 0.85 * per_row + 0.7), 1.25 * rows + 0.3), squeeze=False
    )
    fig.subplots_adjust(wspace=0.15, hspace=0.6)
    vmax = float(np.abs(keys).max())
    image = None
    for i, ax in enumerate(axes.ravel()):
        if i >= k:
            ax.axis("off")
            continue
        row = comparison.iloc[i]
        z = f"  z={row['latent_0']:.2f}" if "latent_0" in comparison else ""
        image = show_kernel(ax, keys[i], vmax=vmax)
        ax.set_title(
            f"{i + 1}: {row['type']}{z}\nP{int(row['closest_published'])}  |cos| {row['abs_cosine']:.2f}",
            fontsize=6,
            pad=2,
        )
    fig.suptitle(
        f"{k} master key filters; Pi: closest published filter ([Q]) and its |cos|", fontsize=8, y=1.0
    )
    _shared_colorbar(fig, image, axes.ravel().tolist())
    return fig


def plot_error_curve(curve: pd.DataFrame, num_keys: int) -> Figure:
    """Mean relative approximation error ``1 - cos^2`` against the number of kept candidates."""
    apply_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.2))
    ax.plot(curve["size"], curve["mean_error"], marker="o", markersize=2, linewidth=1)
    chosen = curve[curve["size"] == num_keys]
    if len(chosen):
        ax.plot(
            chosen["size"],
            chosen["mean_error"],
            marker="o",
            markersize=5,
            color="C3",
            linestyle="none",
            label=f"K = {num_keys}: {chosen['mean_error'].iloc[0]:.3f}",
        )
        ax.legend(frameon=False)
    ax.set_xlabel("number of kept candidates")
    ax.set_ylabel(r"mean error $1 - \cos^2$")
    ax.set_xlim(0, curve["size"].max() + 1)
    ax.set_ylim(bottom=0)
    ax.set_title("Greedy removal of decoded candidates")
    return fig
