"""Figures of the replacement experiment (docs/methods.md section 5).

* :func:`plot_replacement_accuracy`: per variant, one panel each for the top-1 accuracy drop on
  the labelled sets (learned minus variant, percentage points; left out when no model has
  labels), the top-1 agreement with the unmodified network on the natural-image set (%) and the
  mean ``KL(p_orig || p_replaced)`` there (nats, log scale).  One bar per model when there are few
  models, else a box per variant with one dot per model; the legend gives each model's learned
  top-1 where it has labels.
* :func:`plot_replacement_stages`: top-1 drop (labelled sets) and agreement (natural set) when
  only stage ``i`` is replaced (best idealized method of the model and set), one line per model.
* :func:`plot_learnable_scales`: [B]'s learnable-scale experiment for one model: top-1 after
  fine-tuning of the learned kernels frozen, the idealized ones frozen and the idealized ones with
  learnable scales (discrete analogue of the Gaussian, sampled Gaussian); and per stage the
  distribution of the scales at initialisation and after training.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from ..data.natural import NATURAL_SET
from .style import COLUMN_WIDTH, TEXT_WIDTH, apply_style

__all__ = [
    "plot_replacement_accuracy",
    "plot_replacement_stages",
    "plot_frozen_keys",
    "plot_learnable_scales",
]

MAX_MODELS_AS_BARS = 4
KL_FLOOR = 1e-6  # nats; smaller mean KL values are drawn at this floor of the log axis
PLAIN = FuncFormatter(lambda value, _: f"{value:g}")
TWO_FIVE = FuncFormatter(lambda value, _: f"{value:g}" if f"{value:e}"[0] in "25" else "")


def _model_labels(table: pd.DataFrame) -> dict[str, str]:
    learned = table[(table["variant"] == "learned") & table["top1"].notna()]
    top1 = dict(zip(learned["model"], learned["top1"], strict=True))
    return {
        m: f"{m} (learned {100 * top1[m]:.1f} %)" if m in top1 else m for m in dict.fromkeys(table["model"])
    }


def _per_variant(ax, data: pd.DataFrame, column: str, variants: list, models: list, labels: dict) -> None:
    """``column`` per variant: bars per model (few models) or a box with one dot per model."""
    import seaborn as sns

    if len(models) <= MAX_MODELS_AS_BARS:
        data = data.assign(model_label=data["model"].map(labels))
        sns.barplot(data=data, x="variant", y=column, hue="model_label", order=variants, ax=ax,
                    hue_order=[labels[m] for m in models], errorbar=None)  # fmt: skip
        if len(models) == 1 and ax.get_yscale() == "linear":
            for container in ax.containers:
                ax.bar_label(container, fmt="%.1f", fontsize=6, padding=1)
    else:
        sns.boxplot(data=data, x="variant", y=column, order=variants, ax=ax, color="0.85", fliersize=0,
                    linewidth=0.6)  # fmt: skip
        sns.stripplot(data=data, x="variant", y=column, order=variants, ax=ax, size=2.5, color="C0",
                      jitter=0.2)  # fmt: skip
    ax.set_xlabel("")


def plot_replacement_accuracy(table: pd.DataFrame) -> Figure:
    """Accuracy drop and fidelity per variant (rows of :func:`masterkey.replacement.replacement_table`;
    see the module docstring)."""
    apply_style()
    data = table[table["variant"] != "learned"].copy()
    labelled = data[data["top1"].notna()].assign(drop_pp=lambda d: 100 * d["top1_drop"])
    natural = data[(data["dataset"] == NATURAL_SET) & data["agreement"].notna()]
    natural = natural.assign(agreement_pct=100 * natural["agreement"], kl_floor=natural["kl"].clip(KL_FLOOR))
    panels = [(labelled, "drop_pp", "top-1 drop (pp)\nlabelled set")] if len(labelled) else []
    if len(natural):
        panels += [(natural, "agreement_pct", "agreement (%)\nnatural set"),
                   (natural, "kl_floor", "KL (nats)\nnatural set")]  # fmt: skip
    if not panels:
        raise ValueError("the replacement table has no accuracy and no natural-set fidelity to plot")
    variants = list(dict.fromkeys(data["variant"]))
    models = list(dict.fromkeys(table["model"]))
    labels = _model_labels(table)
    width = min(TEXT_WIDTH, max(COLUMN_WIDTH, 0.45 * len(variants) + 1.2))
    height = 0.6 + 1.6 * len(panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, height), sharex=True, squeeze=False)
    for ax, (part, column, ylabel) in zip(axes[:, 0], panels, strict=True):
        if column == "kl_floor":
            ax.set_yscale("log")
        _per_variant(ax, part, column, variants, models, labels)
        if column == "kl_floor":  # plain numbers (0.01, 1); minor 2 and 5 (0.2, 0.5) below two decades
            low, high = ax.get_ylim()
            ax.yaxis.set_major_formatter(PLAIN)
            ax.yaxis.set_minor_formatter(TWO_FIVE if high / low < 100 else NullFormatter())
        ax.set_ylabel(ylabel)
        if column == "drop_pp":
            ax.axhline(0, color="0.3", linewidth=0.6)
        if column == "agreement_pct":
            ax.set_ylim(0, 105)
    top = axes[0, 0]
    if len(models) <= MAX_MODELS_AS_BARS:
        handles, names = top.get_legend_handles_labels()
        for ax in axes[:, 0]:
            ax.get_legend().remove()
        top.legend(handles, names, frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0),
                   ncol=min(2, len(models)))  # fmt: skip
    else:
        top.set_title(f"{len(models)} models", loc="left")
    bottom = axes[-1, 0]
    bottom.tick_params(axis="x", rotation=45)
    for label in bottom.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.align_ylabels(axes[:, 0])
    return fig


def plot_replacement_stages(table: pd.DataFrame) -> Figure:
    """Per replaced stage (rows of :func:`masterkey.replacement.stages_table`): the top-1 drop on the
    labelled sets and the top-1 agreement on the natural-image set, one line per model; a panel
    is left out when no row has its numbers."""
    apply_style()
    labelled = table[table["top1_drop"].notna()].assign(value=lambda d: 100 * d["top1_drop"])
    natural = table[(table["dataset"] == NATURAL_SET) & table["agreement"].notna()]
    natural = natural.assign(value=100 * natural["agreement"])
    candidates = [(labelled, "top-1 drop (pp)\nlabelled set"), (natural, "agreement (%)\nnatural set")]
    panels = [(part, label) for part, label in candidates if len(part)]
    if not panels:
        raise ValueError("the stages table has no accuracy and no natural-set fidelity to plot")
    fig, axes = plt.subplots(len(panels), 1, figsize=(COLUMN_WIDTH, 0.4 + 1.8 * len(panels)), sharex=True,
                             squeeze=False)  # fmt: skip
    models = list(dict.fromkeys(table["model"]))
    for ax, (part, ylabel) in zip(axes[:, 0], panels, strict=True):
        for model, rows in part.groupby("model", sort=False):
            rows = rows.sort_values("stage")
            method = ", ".join(dict.fromkeys(rows["method"]))
            ax.plot(rows["stage"], rows["value"], marker="o", markersize=3, linewidth=1,
                    color=f"C{models.index(model) % 10}", label=f"{model} (idealized-{method})")  # fmt: skip
        ax.axhline(0 if part is labelled else 100, color="0.3", linewidth=0.6)
        ax.set_ylabel(ylabel)
    if len(models) <= 8:
        axes[0, 0].legend(frameon=False, fontsize=6)
    axes[-1, 0].set_xticks(np.unique(table["stage"].to_numpy()))
    axes[-1, 0].set_xlabel("replaced stage (others learned)")
    fig.align_ylabels(axes[:, 0])
    return fig


def plot_frozen_keys(curves: pd.DataFrame) -> Figure:
    """[Q]: validation accuracy over training updates for each run (learned, frozen keys, frozen
    random filters), one panel per model (``curves``:
    :func:`masterkey.replacement.tables.frozen_keys_curves`)."""
    apply_style()
    models = list(dict.fromkeys(curves["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(COLUMN_WIDTH * max(1, len(models)), 2.6), squeeze=False)
    styles = {"learned": dict(color="black", lw=1.6)}
    for ax, model in zip(axes[0], models, strict=True):
        data = curves[(curves["model"] == model) & curves["val_accuracy"].notna()]
        for run, log in data.groupby("run", sort=False):
            style = styles.get(run, dict(ls="--" if run.startswith("random") else "-", lw=1.2))
            ax.plot(log["step"], 100 * log["val_accuracy"], marker="o", ms=2.5, label=run, **style)
        ax.set_title(model)
        ax.set_xlabel("training update")
        ax.set_ylabel("validation top-1 (%)")
        ax.set_ylim(bottom=0)
        ax.legend(title="depthwise filters", fontsize="small")
    fig.tight_layout()
    return fig


def plot_learnable_scales(scales: pd.DataFrame, table: pd.DataFrame, model: str) -> Figure:
    """[B]'s learnable-scale experiment for ``model``: ``scales`` the long frame of
    :func:`masterkey.replacement.learnable.scales_frame`, ``table`` the rows of
    :func:`masterkey.replacement.learnable.learnable_table`.  Left: top-1 (%) after fine-tuning,
    per learnable variant its two frozen baselines and itself.  Right: per stage, box plots of the
    scales sigma (grid spacings) at initialisation and trained, one colour per Gaussian."""
    apply_style()
    scales = scales[scales["model"] == model]
    rows = table[(table["model"] == model) & (table["stage"] == "all")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(TEXT_WIDTH, TEXT_WIDTH * 0.36), layout="constrained",
                                      width_ratios=[1, 2])  # fmt: skip
    bars = {"learned\nfrozen": rows["top1 learned frozen"].iloc[0] if len(rows) else np.nan,
            "idealized\nfrozen": rows["top1 idealized frozen"].iloc[0] if len(rows) else np.nan}  # fmt: skip
    bars.update(
        {
            variant.replace("learnable-", "learnable\n"): top1
            for variant, top1 in zip(rows["variant"], rows["top1"], strict=True)
        }
    )
    left.bar(
        range(len(bars)),
        100 * np.asarray(list(bars.values()), float),
        color=[f"C{i}" for i in range(len(bars))],
    )
    left.set_xticks(range(len(bars)), list(bars), rotation=0, fontsize=6)
    left.set_ylabel("top-1 after fine-tuning (%)")
    finite = [v for v in bars.values() if np.isfinite(v)]
    if finite:
        left.set_ylim(max(0, 100 * min(finite) - 10), min(100, 100 * max(finite) + 5))
    variants = list(dict.fromkeys(scales["variant"]))
    stages = sorted(scales["stage"].unique())
    width = 0.8 / max(2 * len(variants), 1)
    for i, variant in enumerate(variants):
        part = scales[scales["variant"] == variant]
        for j, state in enumerate(("initial", "trained")):
            offset = (2 * i + j - len(variants) + 0.5) * width
            data = [part.loc[part["stage"] == stage, state].to_numpy() for stage in stages]
            boxes = right.boxplot(data, positions=np.arange(len(stages)) + offset, widths=width * 0.9,
                                  patch_artist=True, showfliers=False, manage_ticks=False)  # fmt: skip
            for box in boxes["boxes"]:
                box.set(facecolor=f"C{i + 2}", alpha=0.35 if state == "initial" else 0.9, linewidth=0.5)
            right.plot([], [], "s", color=f"C{i + 2}", alpha=0.35 if state == "initial" else 0.9,
                       label=f"{variant}, {state}")  # fmt: skip
    right.set_xticks(range(len(stages)), [f"stage {s}" for s in stages])
    right.set_ylabel("scale sigma (grid spacings)")
    right.legend(frameon=False, fontsize=6, ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(f"{model}: idealized depthwise filters with learnable scales ([B] Sec. 5)")
    return fig
