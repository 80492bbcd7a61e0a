"""[B]'s learnable-scale experiment: how far the scales of idealized depthwise filters move when they
train, and what that buys (docs/methods.md section 5).

The fine-tuned ``learnable-<method>`` and ``learnable-sampled-<method>`` networks
(:func:`~masterkey.replacement.finetune.finetune_frozen_task`) keep their initial and trained scales
in their sidecar (``scales``: :func:`~masterkey.nets.scalespace_conv.scale_frame` before and after).
:func:`scales_frame` turns them into one long frame; :func:`learnable_table` summarises the movement
per stage next to the top-1 of the four-way comparison of the replacement table: the learned kernels
frozen (``finetuned-learned``), the idealized ones frozen (``finetuned-idealized-<method>``) and the
two learnable ones, same recipe and budget.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..nets.depthwise import stage_and_block
from .variants import FINETUNED_PREFIX, idealized_name, parse_variant

__all__ = ["MOVED", "scales_frame", "comparison_variants", "learnable_table", "CAPTION"]

MOVED = 0.1
"""A scale has *moved* when ``|sigma_trained - sigma_initial| > MOVED`` grid spacings."""
CAPTION = (
    "[B]'s learnable-scale experiment: per model, learnable variant and stage, the channels with a "
    "template, the median initial and trained scale sigma (grid spacings, both axes), the median and "
    f"90th percentile of |change|, the share of scales that moved by more than {MOVED}, the smallest "
    "trained scale; on the 'all' rows the top-1 after fine-tuning of this variant, of the same idealized "
    "kernels frozen and of the learned kernels frozen (same recipe and budget)"
)


def scales_frame(sidecars: Mapping[tuple[str, str], dict]) -> pd.DataFrame:
    """Long frame of every scale: ``(model, variant) -> sidecar`` of a fine-tuned learnable network ->
    columns ``model``, ``variant``, ``gaussian``, ``layer``, ``stage``, ``channel``, ``type``, ``axis``
    (``x``/``y``; one row for ``lap``/``id-lap``, whose scale is single), ``initial``, ``trained``.
    Constant channels (no template) have no scale and no row.  ``KeyError`` for a sidecar without
    ``scales`` (not a learnable fine-tuning)."""
    frames = []
    for (model, variant), meta in sidecars.items():
        initial, trained = (pd.DataFrame(meta["scales"][k]) for k in ("initial", "trained"))
        gaussian = parse_variant(variant).gaussian
        base = initial[["layer", "channel", "type"]].assign(model=model, variant=variant, gaussian=gaussian)
        base["stage"] = [stage_and_block(name)[0] for name in base["layer"]]
        for axis in ("x", "y"):
            part = base.assign(axis=axis, initial=initial[f"sigma_{axis}"], trained=trained[f"sigma_{axis}"])
            keep = part["type"].ne("constant") & (axis == "x" or ~part["type"].isin(["lap", "id-lap"]))
            frames.append(part[keep])
    columns = [
        "model",
        "variant",
        "gaussian",
        "layer",
        "stage",
        "channel",
        "type",
        "axis",
        "initial",
        "trained",
    ]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def comparison_variants(variant: str) -> list[str]:
    """The fine-tuned results a learnable variant is compared with, itself last.

    >>> comparison_variants("learnable-sampled-D1")
    ['finetuned-learned', 'finetuned-idealized-D1', 'finetuned-learnable-sampled-D1']
    """
    method = parse_variant(variant).method
    return [
        f"{FINETUNED_PREFIX}learned",
        f"{FINETUNED_PREFIX}{idealized_name(method)}",
        f"{FINETUNED_PREFIX}{variant}",
    ]


def _movement(group: pd.DataFrame) -> dict:
    change = (group["trained"] - group["initial"]).abs()
    return {
        "channels": group[["layer", "channel"]].drop_duplicates().shape[0],
        "sigma initial": group["initial"].median(), "sigma trained": group["trained"].median(),
        "change median": change.median(), "change p90": change.quantile(0.9),
        "moved": float((change > MOVED).mean()), "sigma trained min": group["trained"].min(),
    }  # fmt: skip


def learnable_table(
    scales: pd.DataFrame, replacement: pd.DataFrame, datasets: Mapping[str, str]
) -> pd.DataFrame:
    """Per model, variant and stage (and ``all``) the movement of the scales; on the ``all`` rows the
    top-1 after fine-tuning (``replacement``: the replacement table, on ``datasets[model]``, the
    model's labelled set) of the variant, of its idealized kernels frozen and of the learned kernels
    frozen (NaN where not evaluated)."""
    rows = []
    for (model, variant), part in scales.groupby(["model", "variant"], sort=False):
        dataset = datasets.get(model)
        top1 = replacement[(replacement["model"] == model) & (replacement["dataset"] == dataset)]
        top1 = top1.set_index("variant")["top1"]
        learned, idealized, own = (top1.get(name, np.nan) for name in comparison_variants(variant))
        for stage, group in part.groupby("stage"):
            rows.append({"model": model, "variant": variant, "stage": str(stage), **_movement(group)})
        accuracy = {"dataset": dataset, "top1": own, "top1 idealized frozen": idealized,
                    "top1 learned frozen": learned}  # fmt: skip
        rows.append({"model": model, "variant": variant, "stage": "all", **_movement(part), **accuracy})
    return pd.DataFrame(rows)
