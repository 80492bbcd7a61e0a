"""Figures of the clustering stage (docs/methods.md section 4), one row group per kernel size.

Every kernel size has its own pool, clusters and master keys, so each figure shows the sizes one
below the other (ascending), each with its own colour scale where kernels are drawn (centre-normed
kernels of different sizes have entries of different magnitude) and its own cluster legend.

* :func:`plot_prototypes`: the cluster prototypes (member mean on top, decoded centroid below)
  with automatic labels, sizes and classified shares.
* :func:`plot_cluster_membership`: per layer of one model, stacked bars of the share of kernels
  in each cluster (classified members only; the unclassified rest in grey); one panel per size.
* :func:`plot_latent_histograms`: histogram of the (first) latent coordinate per size and model,
  with the cluster boundaries (midpoints between neighbouring centroids) and cluster labels.
* :func:`plot_master_keys`: the K selected master key filters of each size with their type and
  latent code; for the published filters' size (7x7) also the closest published filter and
  ``|cosine|``.
* :func:`plot_error_curve`: mean approximation error against the number of kept candidates, one
  panel per size.
* :func:`plot_share_vs_accuracy`: classified share against published top-1, per model and size,
  and per stage ([A] Section 4; :mod:`masterkey.clustering.accuracy`).

The tables are those of :mod:`masterkey.clustering` (each with a ``kernel_size`` column, keys
``"7x7"``); arrays come as ``{"7x7": array}``.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .style import COLUMN_WIDTH, TEXT_WIDTH, apply_style, show_kernel

__all__ = [
    "cluster_colours",
    "plot_prototypes",
    "plot_cluster_membership",
    "plot_latent_histograms",
    "plot_master_keys",
    "plot_error_curve",
    "plot_share_vs_accuracy",
]

UNCLASSIFIED = "#d0d0d0"


def cluster_colours(k: int) -> list:
    """One colour per cluster (colorblind palette, extended by husl beyond 10)."""
    import seaborn as sns

    return sns.color_palette("colorblind", k) if k <= 10 else sns.color_palette("husl", k)


def _sizes(keys) -> list[str]:
    """Kernel size keys (``"7x7"``) once each, ascending."""
    return sorted(dict.fromkeys(str(key) for key in keys), key=lambda key: int(key.split("x")[0]))


def _of_size(table: pd.DataFrame, size: str) -> pd.DataFrame:
    return table[table["kernel_size"] == size].reset_index(drop=True)


def _cluster_names(clusters: pd.DataFrame) -> list[str]:
    return [f"C{int(c)} {label}" for c, label in zip(clusters["cluster"], clusters["type"], strict=True)]


def _shared_colorbar(fig, image, axes, label="weight (centre-normed)"):
    bar = fig.colorbar(image, ax=axes, fraction=0.025, pad=0.01, shrink=0.9, panchor=False)
    bar.set_label(label, fontsize=6)
    bar.ax.tick_params(labelsize=6)
    return bar


HEADER = 0.45
"""Inches above each size's kernel grid for its heading and the first row of panel titles."""


def _size_block_title(subfig, text: str) -> None:
    """The bold title at the top left of one kernel size's block of a figure."""
    subfig.suptitle(text, fontsize=7, fontweight="bold", x=0.01, y=0.995, ha="left", va="top")


def _kernel_grid(subfig, count: int, rows_per_block: int, per_row: int, height: float):
    """Axes for ``count`` kernels in blocks of ``per_row`` columns, ``rows_per_block`` rows each, in a
    subfigure ``height`` inches high (its top :data:`HEADER` inches left for the titles)."""
    blocks = -(-count // per_row)
    columns = min(count, per_row)
    axes = subfig.subplots(blocks * rows_per_block, columns, squeeze=False)
    subfig.subplots_adjust(
        wspace=0.15, hspace=0.45, top=1 - HEADER / height, bottom=0.02, left=0.07, right=0.97
    )
    for ax in axes.flat:
        ax.set_anchor("N")  # square panels sit right under their titles
    return axes, columns


def plot_prototypes(
    prototypes: Mapping[str, np.ndarray],
    clusters: pd.DataFrame,
    decoded: Mapping[str, np.ndarray] | None,
    per_row: int = 8,
) -> Figure:
    """Prototype grid per kernel size: member mean (and decoded centroid) per cluster, labelled
    ``C<i> <type> (|cos|)``, with the cluster's size and classified share.

    ``prototypes`` / ``decoded``: ``{"7x7": (k, 7, 7)}`` (the ``.npz`` files of the rule
    ``cluster``); ``clusters``: the cluster table (``kernel_size``, ``cluster``, ``type``,
    ``type_cosine``, ``size``, ``classified_share``).
    """
    apply_style()
    sizes = _sizes(prototypes)
    rows_per_block = 2 if decoded is not None else 1
    heights = [0.9 * rows_per_block * -(-len(prototypes[s]) // per_row) + HEADER for s in sizes]
    columns = min(per_row, max(len(prototypes[s]) for s in sizes))
    fig = plt.figure(figsize=(min(TEXT_WIDTH, 0.85 * columns + 0.9), sum(heights) + 0.2))
    subfigs = np.atleast_1d(fig.subfigures(len(sizes), 1, height_ratios=heights, hspace=0.04))
    for subfig, size, height in zip(subfigs, sizes, heights, strict=True):
        protos, table = prototypes[size], _of_size(clusters, size)
        decoded_size = None if decoded is None else decoded[size]
        stack = protos if decoded_size is None else np.concatenate([protos, decoded_size])
        vmax = float(np.nanmax(np.abs(stack)))
        axes, width = _kernel_grid(subfig, len(protos), rows_per_block, per_row, height)
        image = None
        for i in range(axes.shape[0] // rows_per_block * width):
            block, column = divmod(i, width)
            top = axes[block * rows_per_block, column]
            bottom = axes[block * rows_per_block + 1, column] if decoded_size is not None else None
            if i >= len(protos):
                for ax in (top, bottom):
                    if ax is not None:
                        ax.axis("off")
                continue
            row = table.iloc[i]
            image = show_kernel(top, protos[i], vmax=vmax)
            top.set_title(
                f"C{int(row['cluster'])} {row['type']} ({row['type_cosine']:.2f})\n"
                f"n={int(row['size']):,}  {100 * row['classified_share']:.0f}% cl.",
                fontsize=6,
                pad=2,
            )
            if bottom is not None:
                show_kernel(bottom, decoded_size[i], vmax=vmax)
            if column == 0:
                top.set_ylabel("member mean", fontsize=6)
                if bottom is not None:
                    bottom.set_ylabel("decoded", fontsize=6)
        _size_block_title(
            subfig, f"{size} kernels: {len(protos)} clusters of {int(table['size'].sum()):,} kernels"
        )
        _shared_colorbar(subfig, image, axes.ravel().tolist())
    fig.suptitle(
        "Cluster prototypes per kernel size\ntype (|cos| with fitted template), size n, classified share",
        fontsize=8,
        y=1.0,
        va="bottom",
    )
    return fig


def _layer_tick(layer: str, stage: int, block: int) -> str:
    return f"{stage}.{block}" if stage >= 0 and block >= 0 else layer


def _membership_panel(ax, part: pd.DataFrame, clusters: pd.DataFrame) -> None:
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
    ax.set_ylabel("share of kernels")
    ax.legend(
        loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=6, ncol=1 if k <= 14 else 2
    )


def plot_cluster_membership(assignments: pd.DataFrame, clusters: pd.DataFrame, model: str) -> Figure:
    """Stacked bars per layer of ``model``: share of kernels in each cluster (classified only), one
    panel per kernel size the model has (its layers of that size, its clusters)."""
    apply_style()
    part = assignments[assignments["model"] == model]
    sizes = _sizes(part["kernel_size"])
    most = max(part[part["kernel_size"] == s]["layer"].nunique() for s in sizes)
    width = min(TEXT_WIDTH, max(COLUMN_WIDTH, 0.16 * most + 2.2))
    fig, axes = plt.subplots(len(sizes), 1, figsize=(width, 2.3 * len(sizes) + 0.2), squeeze=False)
    for ax, size in zip(axes[:, 0], sizes, strict=True):
        in_size = part[part["kernel_size"] == size]
        _membership_panel(ax, in_size, _of_size(clusters, size))
        ax.set_title(f"{size} kernels ({len(in_size):,})", loc="left", fontsize=7, pad=2)
    axes[-1, 0].set_xlabel("layer (stage.block)")
    fig.suptitle(f"{model}: cluster membership per layer ({len(part):,} kernels)", fontsize=8)
    fig.tight_layout(h_pad=1.0)
    return fig


PANEL_HEIGHT = 1.2
"""Inches per panel of :func:`plot_latent_histograms`."""
LEGEND_ROW = 0.12
"""Inches per legend entry at font size 6."""


def plot_latent_histograms(assignments: pd.DataFrame, clusters: pd.DataFrame, bins: int = 60) -> Figure:
    """Histogram of the first latent coordinate per kernel size and model, with the cluster
    boundaries of the size; one legend (its clusters) per size."""
    apply_style()
    panels = [
        (size, model)
        for size in _sizes(assignments["kernel_size"])
        for model in dict.fromkeys(assignments[assignments["kernel_size"] == size]["model"])
    ]
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(COLUMN_WIDTH * 1.4, 0.3 + PANEL_HEIGHT * len(panels)),
        sharex=True,
        squeeze=False,
        gridspec_kw={"hspace": 0.45},
    )
    for i, (ax, (size, model)) in enumerate(zip(axes[:, 0], panels, strict=True)):
        table = _of_size(clusters, size)
        centroids = np.sort(table["centroid_0"].to_numpy(float))
        colours = cluster_colours(len(table))
        part = assignments[(assignments["kernel_size"] == size) & (assignments["model"] == model)]
        values = part["latent_0"].to_numpy(float)
        counts = [values[part["cluster"].to_numpy() == c] for c in range(len(table))]
        ax.hist(counts, bins=edges, stacked=True, color=colours, linewidth=0)
        for boundary in (centroids[1:] + centroids[:-1]) / 2:
            ax.axvline(boundary, color="0.3", linewidth=0.5, linestyle=":")
        ax.set_ylabel("kernels")
        ax.set_title(f"{size}  {model} ({len(part):,} kernels)", loc="left", pad=2, fontsize=7)
        if i == 0 or panels[i - 1][0] != size:
            handles = [plt.Rectangle((0, 0), 1, 1, color=colour) for colour in colours]
            group = sum(1 for other, _ in panels if other == size) * PANEL_HEIGHT - 0.25
            ax.legend(
                handles,
                _cluster_names(table),
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                frameon=False,
                fontsize=6,
                title=f"{size} clusters",
                title_fontsize=6,
                ncol=max(1, int(np.ceil(len(table) * LEGEND_ROW / group))),  # within the size's panels
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


def plot_master_keys(
    keys: Mapping[str, np.ndarray], descriptions: pd.DataFrame, comparison: pd.DataFrame
) -> Figure:
    """The K master key filters of every kernel size, one row group per size (own colour scale).

    ``keys``: ``{"7x7": (K, 7, 7)}`` (the ``.npz`` of the rule ``select_master_keys``);
    ``descriptions``: :func:`masterkey.clustering.master_keys.keys_table` (type, latent code);
    ``comparison``: :func:`masterkey.clustering.master_keys.published_comparison` (closest published
    filter ``Pi`` and ``|cos|``, for the keys of the published size only).
    """
    apply_style()
    sizes = _sizes(keys)
    per_row = min(8, max(len(keys[s]) for s in sizes))
    heights = [0.9 * -(-len(keys[s]) // per_row) + HEADER for s in sizes]
    fig = plt.figure(figsize=(min(TEXT_WIDTH, 0.85 * per_row + 0.9), sum(heights) + 0.2))
    subfigs = np.atleast_1d(fig.subfigures(len(sizes), 1, height_ratios=heights, hspace=0.04))
    compared = comparison if "kernel_size" in comparison else pd.DataFrame(columns=["kernel_size"])
    for subfig, size, height in zip(subfigs, sizes, heights, strict=True):
        filters, table, published = keys[size], _of_size(descriptions, size), _of_size(compared, size)
        axes, _ = _kernel_grid(subfig, len(filters), 1, per_row, height)
        vmax = float(np.abs(filters).max())
        image = None
        for i, ax in enumerate(axes.ravel()):
            if i >= len(filters):
                ax.axis("off")
                continue
            row = table.iloc[i]
            z = f"  z={row['latent_0']:.2f}" if "latent_0" in table else ""
            title = f"{i + 1}: {row['type']}{z}"
            if len(published):
                match = published.iloc[i]
                title += f"\nP{int(match['closest_published'])}  |cos| {match['abs_cosine']:.2f}"
            image = show_kernel(ax, filters[i], vmax=vmax)
            ax.set_title(title, fontsize=6, pad=2)
        where = (
            "Pi: closest published filter ([Q]), |cos|"
            if len(published)
            else "no published filters of this size"
        )
        _size_block_title(subfig, f"{size}: {len(filters)} master keys ({where})")
        _shared_colorbar(subfig, image, axes.ravel().tolist())
    fig.suptitle(
        "Master key filters per kernel size: automatic type and latent code z", fontsize=8, y=1.0, va="bottom"
    )
    return fig


def plot_error_curve(curve: pd.DataFrame, num_keys: int) -> Figure:
    """Mean relative approximation error ``1 - cos^2`` against the number of kept candidates, one
    panel per kernel size (shared error axis)."""
    apply_style()
    sizes = _sizes(curve["kernel_size"])
    fig, axes = plt.subplots(
        1,
        len(sizes),
        figsize=(min(TEXT_WIDTH, COLUMN_WIDTH * (0.5 + 0.5 * len(sizes))), 2.2),
        sharey=True,
        squeeze=False,
    )
    for ax, size in zip(axes[0], sizes, strict=True):
        part = _of_size(curve, size)
        ax.plot(part["size"], part["mean_error"], marker="o", markersize=2, linewidth=1)
        chosen = part[part["size"] == num_keys]
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
        ax.set_xlim(0, part["size"].max() + 1)
        ax.set_title(f"{size} kernels", fontsize=7)
    axes[0, 0].set_ylim(0, 1.05 * float(curve["mean_error"].max()))  # shared by every size's panel
    axes[0, 0].set_ylabel(r"mean error $1 - \cos^2$")
    fig.suptitle("Greedy removal of decoded candidates", fontsize=8)
    fig.tight_layout()
    return fig


def plot_share_vs_accuracy(table: pd.DataFrame, classification: pd.DataFrame) -> Figure:
    """Classified share against published top-1, per model and size, and per stage ([A] Section 4).

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`masterkey.clustering.accuracy.share_vs_accuracy` (one row per model and size).
    classification : pandas.DataFrame
        The classification table (its ``level == "stage"`` rows give panel c).

    Returns
    -------
    matplotlib.figure.Figure
        (a) share vs published ImageNet top-1 (%), one colour per kernel size, models labelled
        (models without a published top-1 are left out of this panel only); (b) share per model
        and kernel size (every model); (c) share per stage, all square sizes pooled, one line per
        model.  Chance levels (``chance_share``, random kernels against the same prototypes)
        are black ticks in (b).
    """
    apply_style()
    sizes = list(dict.fromkeys(table["kernel_size"]))
    colours = dict(zip(sizes, plt.get_cmap("tab10").colors, strict=False))
    fig, axes = plt.subplots(1, 3, figsize=(TEXT_WIDTH, 2.9), gridspec_kw={"width_ratios": [1.1, 1, 1]})
    ax = axes[0]
    known = table.dropna(subset=["published_top1"])
    for size, part in known.groupby("kernel_size", sort=False):
        part = part.sort_values("published_top1")
        ax.plot(
            part["published_top1"], 100 * part["share"], "o-", ms=3.5, lw=1, color=colours[size], label=size
        )
    for model, part in known.groupby("model", sort=False):
        row = part.iloc[-1]
        ax.annotate(
            model,
            (row["published_top1"], 100 * row["share"]),
            xytext=(2, 3),
            textcoords="offset points",
            fontsize=6,
            color="0.3",
        )
    ax.set_xlabel("published ImageNet top-1 (%)")
    ax.set_ylabel("classified kernels (%)")
    ax.set_title("(a) share vs accuracy")
    if known.empty:
        ax.text(
            0.5, 0.5, "no published top-1\nin the config", ha="center", va="center", transform=ax.transAxes
        )
    else:
        ax.legend(frameon=False, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    ax = axes[1]
    models = list(dict.fromkeys(table["model"]))
    width = 0.8 / max(1, len(sizes))
    for i, size in enumerate(sizes):
        part = table[table["kernel_size"] == size].set_index("model").reindex(models)
        rows = np.arange(len(models)) + (i - (len(sizes) - 1) / 2) * width
        ax.barh(rows, 100 * part["share"], height=width, color=colours[size], label=size)
        if "chance_share" in part:
            ax.plot(
                100 * part["chance_share"],
                rows,
                "|",
                color="k",
                ms=5,
                mew=1,
                label="chance" if i == 0 else None,
            )
    ax.set_yticks(np.arange(len(models)), models, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("classified kernels (%)")
    ax.set_title("(b) per model and size")
    ax.legend(frameon=False, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    ax = axes[2]
    stages = classification[classification["level"] == "stage"]
    shades = plt.get_cmap("viridis")(np.linspace(0, 0.85, max(1, len(models))))
    for model, shade, marker in zip(models, shades, "osD^vP*X" * len(models), strict=False):
        part = stages[stages["model"] == model].groupby("stage")[["kernels", "classified"]].sum()
        if not part.empty:
            share = 100 * part["classified"] / part["kernels"]
            ax.plot(part.index, share, marker=marker, ms=3, lw=1, color=shade, label=model)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("stage")
    ax.set_ylabel("classified kernels (%)")
    ax.set_ylim(0, 100)
    ax.set_title("(c) per stage (square sizes pooled)")
    ax.legend(frameon=False, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    fig.tight_layout()
    return fig
