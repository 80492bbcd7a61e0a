"""The replacement tables: per-variant and per-stage accuracy with drops against the learned kernels.

They read the JSON records of :mod:`masterkey.replacement.evaluation` (one file per model and
variant, ``results/replacement/{model}/{variant}.json``; one per model for the stages).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..core.io import read_json
from .variants import LEARNED

__all__ = [
    "TABLE_COLUMNS",
    "STAGES_COLUMNS",
    "CAPTIONS",
    "replacement_table",
    "stages_table",
    "read_replacement_table",
    "read_stages_table",
]

TABLE_COLUMNS = [
    "model",
    "variant",
    "dataset",
    "top1",
    "top5",
    "top1_drop",
    "top5_drop",
    "images",
    "replaced",
    "kept",
    "relative_change_median",
]
STAGES_COLUMNS = ["model", "stage", "method", "variant", "top1", "top5", "top1_drop", "top5_drop", "replaced"]
CAPTIONS = {
    "variants": (
        "Accuracy with the learned depthwise kernels replaced (no retraining); "
        "drops are learned minus variant"
    ),
    "stages": "Accuracy with one stage's depthwise kernels replaced by the best idealized method",
}


def _with_drops(table: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    learned = baseline.set_index("model")
    table = table.copy()
    for metric in ("top1", "top5"):
        table[f"{metric}_drop"] = table["model"].map(learned[metric]) - table[metric]
    return table


def replacement_table(results: list[dict], variants: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per model and variant (:data:`TABLE_COLUMNS`), the learned baseline first; drops are
    baseline minus variant (in accuracy units, positive = worse).  ``results`` are the per-variant
    records; ``variants`` fixes the row order within a model."""
    table = pd.DataFrame.from_records(results)
    missing = set(table["model"]) - set(table.loc[table["variant"] == LEARNED, "model"])
    if missing:
        raise ValueError(f"no learned baseline for model(s) {sorted(missing)}; evaluate variant 'learned'")
    order = list(variants or [])
    order = [LEARNED] + [v for v in order if v != LEARNED]
    rank = {name: i for i, name in enumerate(order)}
    table["_rank"] = table["variant"].map(lambda v: rank.get(v, len(rank)))
    model_rank = {name: i for i, name in enumerate(dict.fromkeys(table["model"]))}
    table["_model"] = table["model"].map(model_rank)
    table = table.sort_values(["_model", "_rank", "variant"], kind="stable").drop(columns=["_rank", "_model"])
    table = _with_drops(table, table[table["variant"] == LEARNED])
    return table[TABLE_COLUMNS].reset_index(drop=True)


def stages_table(stage_results: list[dict], baselines: list[dict]) -> pd.DataFrame:
    """Per model and stage (:data:`STAGES_COLUMNS`): accuracy with only that stage replaced by the
    best idealized method, and the drop against the model's learned baseline."""
    table = pd.DataFrame.from_records(stage_results)
    table = _with_drops(table, pd.DataFrame.from_records(baselines))
    return table[STAGES_COLUMNS].sort_values(["model", "stage"], kind="stable").reset_index(drop=True)


def read_replacement_table(paths: Sequence, variants: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`replacement_table` of the per-variant JSON records in ``paths``."""
    return replacement_table([read_json(path) for path in paths], variants)


def read_stages_table(stage_paths: Sequence, baseline_paths: Sequence) -> pd.DataFrame:
    """:func:`stages_table` of the per-model stage records and the learned baselines' records."""
    stages = [record for path in stage_paths for record in read_json(path)["stages"]]
    return stages_table(stages, [read_json(path) for path in baseline_paths])
