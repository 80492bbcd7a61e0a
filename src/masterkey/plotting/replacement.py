"""Figures of the replacement experiment (docs/methods.md section 5).

* :func:`plot_replacement_accuracy`: top-1 accuracy drop (learned minus variant, percentage
  points) per variant; one bar per model when there are few models, else a box per variant with
  one dot per model.  The learned top-1 of each model is given in the legend.
* :func:`plot_replacement_stages`: top-1 drop when only stage ``i`` is replaced (best idealized
  method of the model), one line per model.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .style import COLUMN_WIDTH, TEXT_WIDTH, apply_style

__all__ = ["plot_replacement_accuracy", "plot_replacement_stages"]

MAX_MODELS_AS_BARS = 4


def _model_labels(table: pd.DataFrame) -> dict[str, str]:
    learned = table[table["variant"] == "learned"].set_index("model")
    return {m: f"{m} (learned {100 * learned.loc[m, 'top1']:.1f} %)" for m in dict.fromkeys(table["model"])}


def plot_replacement_accuracy(table: pd.DataFrame) -> Figure:
    """Top-1 drop per variant (rows of :func:`masterkey.replacement.replacement_table`)."""
    import seaborn as sns

    apply_style()
    data = table[table["variant"] != "learned"].copy()
    data["drop_pp"] = 100 * data["top1_drop"]
    variants = list(dict.fromkeys(data["variant"]))
    models = list(dict.fromkeys(table["model"]))
    width = min(TEXT_WIDTH, max(COLUMN_WIDTH, 0.45 * len(variants) + 1.2))
    fig, ax = plt.subplots(figsize=(width, 2.6))
    labels = _model_labels(table)
    if len(models) <= MAX_MODELS_AS_BARS:
        data["model_label"] = data["model"].map(labels)
        sns.barplot(
            data=data,
            x="variant",
            y="drop_pp",
            hue="model_label",
            order=variants,
            ax=ax,
            hue_order=[labels[m] for m in models],
            errorbar=None,
        )
        if len(models) == 1:
            for container in ax.containers:
                ax.bar_label(container, fmt="%.1f", fontsize=6, padding=1)
        ax.legend(title=None, frameon=False, loc="upper left")
    else:
        sns.boxplot(
            data=data,
            x="variant",
            y="drop_pp",
            order=variants,
            ax=ax,
            color="0.85",
            fliersize=0,
            linewidth=0.6,
        )
        sns.stripplot(
            data=data, x="variant", y="drop_pp", order=variants, ax=ax, size=2.5, color="C0", jitter=0.2
        )
        ax.set_title(f"{len(models)} models", loc="left")
    ax.axhline(0, color="0.3", linewidth=0.6)
    ax.set_xlabel("")
    ax.set_ylabel("top-1 drop (pp)")
    ax.tick_params(axis="x", rotation=45)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    return fig


def plot_replacement_stages(table: pd.DataFrame) -> Figure:
    """Top-1 drop per replaced stage (rows of :func:`masterkey.replacement.stages_table`)."""
    apply_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.2))
    models = list(dict.fromkeys(table["model"]))
    for i, (model, part) in enumerate(table.groupby("model", sort=False)):
        part = part.sort_values("stage")
        method = ", ".join(dict.fromkeys(part["method"]))
        ax.plot(
            part["stage"],
            100 * part["top1_drop"],
            marker="o",
            markersize=3,
            linewidth=1,
            color=f"C{i % 10}",
            label=f"{model} (idealized-{method})",
        )
    stages = np.unique(table["stage"].to_numpy())
    ax.set_xticks(stages)
    ax.axhline(0, color="0.3", linewidth=0.6)
    ax.set_xlabel("replaced stage (others learned)")
    ax.set_ylabel("top-1 drop (pp)")
    if len(models) <= 8:
        ax.legend(frameon=False, fontsize=6)
    return fig
